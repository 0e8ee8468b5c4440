"""The example vendor benches, end to end on their instruments' twins: `bench check` accepts each
profile, and the whole plan gives the same verdicts as the house bench on the same simulated meters,
both ways a lab runs it: `--sim-bench PROFILE` (twins in the pytest process) and `bench sim
--profile-kind PROFILE` in a process of its own with `pytest test_plans/ --bench` on the profile it
writes (the instruments across sockets and a pty, as on the real board).

The boards: the AMETEK + ZERA bench runs the mixed board (one known fault per position, so the
verdicts compared include failures); the Fluke 6105A bench, whose current outputs stop far below
200 A, runs the same meters as Form 9S CL20 transformer-rated meters.
"""
from __future__ import annotations

import datetime as dt
import json

import pytest

from bench.plans.limits import default_table, load_table
from bench.procedures.gating import AccuracyPoint
from bench.sim import SimulatedBench
from bench.station.profile import load_profile
from tests.helpers import (
    REPO,
    bench_cli,
    edited_toml,
    families_without_points,
    in_calibration,
    run_plans,
    start_bench_sim,
)

pytestmark = pytest.mark.slow

BENCHES = [("ametek_zera_3phase", "mixed"), ("fluke_6105a", "transformer_9s")]


@pytest.mark.parametrize("name", [name for name, _ in BENCHES])
def test_bench_check_accepts_the_example_profile(name, tmp_path):
    example = edited_toml(REPO / "examples" / f"{name}.toml", lambda d: in_calibration(d, dt.date.today()),
                          tmp_path / f"{name}.toml")  # its stated calibrations fall due; the check must not
    checked = bench_cli("check", str(example))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _verdicts(tmp_path, *args: str) -> tuple[dict[str, str], dict[str, tuple[str, bool]], dict]:
    """(pytest outcome of every item, each meter's verdict in the run record, the record)."""
    run, cases, _ = run_plans(tmp_path, *args, plans="test_plans/")
    outcomes = {}
    for name, case in cases.items():
        outcome = "passed"
        for kind in ("failure", "error", "skipped"):
            if case.find(kind) is not None:
                outcome = kind
        outcomes[name] = outcome
    record = json.loads(next((tmp_path / "reports").glob("run-*.json")).read_text())["record"]
    assert record["status"] == "complete", run.stdout[-3000:]
    meters = {m["serial"]: (m["verdict"], m["certified"]) for m in record["meters"]}
    return outcomes, meters, record


@pytest.mark.parametrize(("name", "board"), BENCHES)
def test_a_vendor_bench_gives_the_house_benchs_verdicts(tmp_path, name, board):
    example = REPO / "examples" / f"{name}.toml"
    lab = load_profile(example)
    house_items, house_meters, house = _verdicts(tmp_path / "house", "--sim-scenario", board)
    # every item ran but those of the accuracy plan's modules that have no points for this meter (one
    # skipped item per meter each), hiding no result
    empty = families_without_points({r["family"] for m in house["meters"] for r in m["results"]})
    skipped = [item for item, outcome in house_items.items() if outcome == "skipped"]
    assert len(house_items) > 100 and len(skipped) == len(empty) * len(house_meters)
    assert all("[not-applicable-pos" in item for item in skipped)

    vendor_items, vendor_meters, record = _verdicts(tmp_path / "in-process", "--sim-scenario", board,
                                                    "--sim-bench", str(example))
    # The lab's meter type (the example's) may declare fewer quantities than the simulated one (no
    # varh output): the house bench's points of those are the only items the vendor bench has not.
    table = load_table(default_table(lab.meter_type.form))
    simulated = table.points(SimulatedBench(board).meter_type())
    lacking = {p.id for p in simulated if isinstance(p, AccuracyPoint) and lab.meter_type.lacks(p.quantity)}
    assert {p.id for p in simulated} - {p.id for p in table.points(lab.meter_type)} == lacking
    house_shared = {item: outcome for item, outcome in house_items.items()
                    if not any(f"[{point}-pos" in item for point in lacking) and "[not-applicable-pos" not in item}
    vendor_shared = {item: outcome for item, outcome in vendor_items.items() if "[not-applicable-pos" not in item}
    assert (vendor_shared, vendor_meters) == (house_shared, house_meters)
    assert record["bench"]["id"] == f"SIM-{lab.bench_id}"
    assert "simulator" in record["lab"]["name"]  # a simulated run is never the example lab's certificate

    profile = tmp_path / "sim-bench" / "profile.toml"
    twins, _ = start_bench_sim(profile, "--profile-kind", str(example), "--sim-scenario", board)
    try:
        written = load_profile(profile)
        assert lab.drivers().items() <= written.drivers().items()  # the board adds its thermometer
        assert written.source.stability_pct == lab.source.stability_pct
        vendor_items, vendor_meters, _ = _verdicts(tmp_path / "across-processes", "--bench", str(profile),
                                                   "--inspection", str(profile.with_name("inspection.toml")))
    finally:
        twins.terminate()
        assert twins.wait(timeout=10) == 0
    vendor_shared = {item: outcome for item, outcome in vendor_items.items() if "[not-applicable-pos" not in item}
    assert (vendor_shared, vendor_meters) == (house_shared, house_meters)
