"""The example vendor benches, end to end on their instruments' twins: `bench check` accepts each
profile, and the whole plan gives the same verdicts as the house bench on the same simulated meters.

The boards: the AMETEK + ZERA bench runs the mixed board (one known fault per position, so the
verdicts compared include failures); the Fluke 6105A bench, whose current outputs stop far below
200 A, runs the same meters as Form 9S CL20 transformer-rated meters.
"""
from __future__ import annotations

import json

import pytest

from tests.helpers import REPO, bench_cli, run_plans

pytestmark = pytest.mark.slow

BENCHES = [("ametek_zera_3phase", "mixed"), ("fluke_6105a", "transformer_9s")]


@pytest.mark.parametrize("name", [name for name, _ in BENCHES])
def test_bench_check_accepts_the_example_profile(name):
    checked = bench_cli("check", str(REPO / "examples" / f"{name}.toml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _verdicts(tmp_path, *args: str) -> tuple[dict[str, str], dict[str, tuple[str, bool]]]:
    """(pytest outcome of every item, each meter's verdict in the run record)."""
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
    return outcomes, meters


@pytest.mark.parametrize(("name", "board"), BENCHES)
def test_a_vendor_bench_gives_the_house_benchs_verdicts(tmp_path, name, board):
    house_items, house_meters = _verdicts(tmp_path / "house", "--sim-scenario", board)
    vendor_items, vendor_meters = _verdicts(tmp_path / "vendor", "--sim-scenario", board,
                                            "--sim-bench", str(REPO / "examples" / f"{name}.toml"))
    assert len(house_items) > 100 and "skipped" not in house_items.values()
    assert vendor_items == house_items
    assert vendor_meters == house_meters
