"""The demand register test: the simulated meters' block-interval demand, the plan's demand errors
against the simulator's ground truth, a meter with a faulty demand timer failing alone and not
certified, meters without demand registers skipped with the reason, and a hostile demand table
refused in one line."""
from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path

import pytest
import tomli_w
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.datafiles import ConfigError
from bench.metrology.conditions import default_reference_conditions
from bench.metrology.uncertainty import Rule, Verdict
from bench.plans.demand import DEFAULT_TABLE, FAMILY, REGISTERS, DemandChecks, DemandResult, load_demand_table
from bench.plans.limits import load_table
from bench.procedures.gating import AccuracyPoint, measure_point
from bench.procedures.results import FaultResult, Result
from bench.records import store
from bench.records.documents import write_documents
from bench.records.record import RunRecorder, Scope
from bench.records.signing import Signer
from bench.sim import SimulatedBench
from bench.sim.board import shared_meter_type
from bench.sim.meter_model import Demand
from bench.station.bench import Bench
from bench.station.profile import REQUIRED_REGISTERS, Signatory
from tests.helpers import EXACT, ITEM, REPO, edited_toml, plan_command, properties, run_plans

PLAN = "test_plans/demand/"


def measured_against_truth(board: Path | str) -> dict[tuple[str, int], tuple[DemandResult | FaultResult, float]]:
    """Every demand point measured in-process on ``board``: {(point, position): (result, the meter's
    true demand error under the point's conditions, from the simulator's model)}."""
    found = {}
    with SimulatedBench(board) as sim, Bench(sim.profile()) as bench:
        checks = DemandChecks(bench, load_demand_table(), Rule.SIMPLE, default_reference_conditions())
        for point in checks.points:
            results = checks.measure(point)  # the point's stimulus stays applied: truth is taken under it
            with sim.world.lock:
                conditions = sim.world.conditions()
                truth = {m.position: m.true_demand_error_pct(conditions) for m in sim.world.meters}
            for number, result in results.items():
                if not sim.world.meters[number - 1].demand.clock_error_pct:  # demand truth is energy truth
                    assert truth[number] == pytest.approx(bench.sim_control.true_error_pct(number), abs=1e-9)
                found[(point.id, number)] = (result, truth[number])
    return found


def test_the_simulated_demand_register_closes_block_intervals_and_a_reset_starts_one():
    demand = Demand(interval_s=900.0)
    demand.advance(1000.0, 3600.0)  # one interval at 3.6 kW, then 100 s into the next
    assert (demand.closed, demand.last_w, demand.max_w) == (1, pytest.approx(3600.0), pytest.approx(3600.0))
    demand.advance(800.0, 7200.0)  # the second holds 100 s at 3.6 kW and 800 s at 7.2 kW
    assert (demand.closed, demand.last_w, demand.max_w) == (2, pytest.approx(6800.0), pytest.approx(6800.0))
    demand.advance(450.0, 1000.0)
    assert demand.present_w == pytest.approx(1000.0) and demand.max_w == pytest.approx(6800.0)
    demand.reset()  # a new interval from here: nothing of the half-interval before it counts
    assert (demand.closed, demand.last_w, demand.max_w, demand.present_w) == (0, 0.0, 0.0, 0.0)
    demand.advance(900.0, 2000.0)
    assert (demand.closed, demand.last_w) == (1, pytest.approx(2000.0))
    fast = Demand(interval_s=900.0, clock_error_pct=3.0)  # the timer runs 3 % fast: short intervals
    fast.advance(900.0 / 1.03, 2000.0)
    assert fast.closed == 1 and fast.last_w == pytest.approx(2000.0 / 1.03)


def test_on_the_default_board_every_demand_error_is_the_meters_true_error_within_its_u():
    found = measured_against_truth("default")
    assert {point for point, _ in found} == {"DM-10TA", "DM-TA"} and len(found) == 2 * 8
    for (point, number), (result, truth) in found.items():
        assert isinstance(result, DemandResult) and result.verdict is Verdict.PASS, result.summary()
        assert result.pulses is not None and result.register_check is not None and result.demand is not None
        # the maximum-demand and last-interval registers, each within U of the truth
        assert abs(result.pulses.error_pct - truth) <= result.pulses.expanded_pct, (point, number)
        assert abs(result.register_check.error_pct - truth) <= result.register_check.expanded_pct, (point, number)
        assert result.limit_pct == 2.0 and result.demand.intervals_closed == 1
        evidence = result.demand  # the record alone gives the error back
        reference_w = (evidence.reference_end_wh - evidence.reference_start_wh) * 3600.0 / evidence.interval_s
        assert evidence.interval_s == 900.0 and reference_w == pytest.approx(evidence.reference_power_w)
        assert result.value_pct == pytest.approx((evidence.max_demand_w / reference_w - 1) * 100)
    # the meters really differ (the match is not everyone near zero): their truths spread wider than U
    truths = [truth for _, truth in found.values()]
    assert max(truths) - min(truths) > 4 * max(r.u_pct or 0.0 for r, _ in found.values())


def test_errors_far_from_zero_a_slow_timer_and_a_fast_one_are_measured_as_the_truth_says(make_board):
    """Meters with known errors (a light-load tail, a gain error, demand timers 1 % slow and 3 %
    fast, one 10 % slow that never closes its interval in time): each verdict is the one its truth
    calls for, and each measured error is the truth within U."""
    board = make_board(positions=[{**EXACT, "offset_pct": 0.5, "light_load_pct": 1.0},
                                  {**EXACT, "offset_pct": -0.8},
                                  {"demand_clock_error_pct": -1.0},
                                  {"demand_clock_error_pct": 3.0},
                                  {"demand_clock_error_pct": -10.0, "demand_interval_s": 300.0}])
    found = measured_against_truth(board)
    for (point, number), (result, truth) in found.items():
        assert isinstance(result, DemandResult)
        if number == 5:  # its 300 s interval ends at 333 s, past the 315 s the table allows
            assert result.verdict is Verdict.FAIL and result.pulses is None
            assert "no demand interval closed within 315 s of the reset (interval 300 s)" in result.summary()
            continue
        assert result.pulses is not None and abs(result.pulses.error_pct - truth) <= result.pulses.expanded_pct
        assert result.verdict is (Verdict.PASS if abs(truth) <= 2.0 else Verdict.FAIL), (point, number, truth)
    assert found[("DM-10TA", 1)][1] == pytest.approx(1.5, abs=0.01)  # 0.5 % + the 1/I tail of 1 % at 10 % TA
    assert found[("DM-TA", 1)][1] == pytest.approx(0.6, abs=0.01)
    assert found[("DM-TA", 4)][1] < -2.5 and found[("DM-TA", 4)][0].verdict is Verdict.FAIL
    assert found[("DM-TA", 3)][0].demand.closed_after_s > 900.0  # the slow timer closed late, and was waited for


# The plan runs in the meters' test mode, whose demand interval the simulated 16S type states.
TEST_MODE_INTERVAL_S = shared_meter_type("sim_16s_cl200").data["test_mode"]["demand_interval_s"]


@pytest.mark.slow  # a pytest process of its own
def test_a_meter_with_a_fast_demand_timer_fails_both_points_and_no_other_position_does(tmp_path, make_board):
    board = make_board(positions=[{}, {}, {"demand_clock_error_pct": 3.0}, {}])
    run, cases, _ = run_plans(tmp_path, "--sim-scenario", str(board), plans=PLAN)
    failed = {(m.group("point"), int(m.group("position"))) for name, case in cases.items()
              if case.find("failure") is not None and (m := ITEM.search(name))}
    assert run.returncode == 1 and failed == {("DM-10TA", 3), ("DM-TA", 3)}, run.stdout[-3000:]
    assert len(cases) == 2 * 4
    for case in cases.values():
        shown = properties(case)
        assert shown["Limit"] == "±2 % of reading" and shown["Verdict"] in ("PASS", "FAIL")
        kw = r"\d+\.\d{4} kW"
        measured = rf"[+-]\d\.\d{{4}} % \({kw} against {kw} over {TEST_MODE_INTERVAL_S:g} s\)"
        assert re.fullmatch(measured, shown["Measured"])
    message = next(case for name, case in cases.items() if "DM-TA-pos3" in name).find("failure").get("message")
    assert "maximum demand error -2.9" in message and "limit ±2 % of reading" in message
    record = json.loads(next((tmp_path / "reports").glob("run-*.json")).read_text())["record"]
    assert record["status"] == "complete" and record["scope"]["planned"] == 8 == record["scope"]["ran"]
    verdicts = {(r["point"], m["position"]): r["verdict"] for m in record["meters"] for r in m["results"]}
    assert {key for key, verdict in verdicts.items() if verdict != "PASS"} == failed
    entry = next(r for m in record["meters"] if m["position"] == 3 for r in m["results"] if r["point"] == "DM-TA")
    assert entry["family"] == "demand" and entry["evidence"]["demand"]["intervals_closed"] == 1
    names = [c["name"] for c in entry["evidence"]["pulses"]["budget"]["components"]]
    assert names == ["reference standard", "source stability", "demand register resolution", "interval timing",
                     "bench clock rate"]


def test_a_failed_demand_register_alone_withholds_certification_and_the_certificate_says_why(make_board, tmp_path):
    """A complete run of a plan (here its full-load point) and the demand register test: position 2's
    demand timer runs 3 % fast, so only its demand results fail. Certified is position 1 alone, and
    position 2's certificate shows its demand rows and names them as why it is not certified."""
    board = make_board(positions=[{}, {"demand_clock_error_pct": 3.0}])
    with SimulatedBench(board) as sim, Bench(sim.profile()) as bench:
        plan = load_table()
        [full_load] = [p for p in plan.points(sim.meter_type()) if p.id == "FL-PF1"]
        assert isinstance(full_load, AccuracyPoint)
        reported: dict[tuple[str, int], tuple[str, Result]] = {
            (full_load.id, n): (full_load.family, result) for n, result in measure_point(bench, full_load).items()}
        checks = DemandChecks(bench, load_demand_table(), Rule.SIMPLE, default_reference_conditions())
        for point in checks.points:
            reported.update({(point.id, n): (point.family, result) for n, result in checks.measure(point).items()})
        recorder = RunRecorder(bench.profile, plan.plan_info(), Rule.SIMPLE, "tester",
                               Signatory("A. Approver", "Quality Manager"), None)
        scope = Scope("complete", len(reported), len(reported), (), "")
        record = json.loads(store.canonical_json(recorder.record(bench, reported, {}, [full_load], scope)))
    demand_ids = [p.id for p in checks.points]
    verdicts = {(m["position"], r["point"]): (r["family"], r["verdict"])
                for m in record["meters"] for r in m["results"]}
    assert verdicts == {**{(n, full_load.id): (full_load.family, "PASS") for n in (1, 2)},
                        **{(1, point): (FAMILY, "PASS") for point in demand_ids},
                        **{(2, point): (FAMILY, "FAIL") for point in demand_ids}}
    assert [m["certified"] for m in record["meters"]] == [True, False]

    for n, meter in enumerate(record["meters"], start=1):
        meter["certificate"] = {"number": f"T-{n:03d}", "issued": "2026-05-01"}
    write_documents(record, tmp_path, Signer(Ed25519PrivateKey.generate()))
    certified, withheld = (next((tmp_path / "certificates").glob(f"{m['serial']}-*.html")).read_text(encoding="utf-8")
                           for m in record["meters"])
    assert '<span class="verdict ok">CERTIFIED</span>' in certified
    assert f"and so did {', '.join(demand_ids)}" in certified.split('class="verdict ok">')[1].split("</div>")[0]
    assert '<span class="verdict bad">NOT CERTIFIED</span>' in withheld
    why = withheld.split('class="verdict bad">')[1].split("</div>")[0]
    assert all(f"{point} (FAIL)" in why for point in demand_ids) and full_load.id not in why
    for text, verdict in ((certified, "PASS"), (withheld, "FAIL")):
        for point in demand_ids:
            row = re.search(rf'<tr><td class="num">{point}</td>.*?</tr>', text, re.S)
            assert row and f'class="{verdict}">{verdict}<' in row.group(0), (point, verdict)


@pytest.mark.slow
def test_meters_without_demand_registers_skip_it_saying_which_they_lack(tmp_path, make_board):
    registers = shared_meter_type("sim_16s_cl200").data["registers"]
    energy_only = {name: spec for name, spec in registers.items() if name not in REGISTERS}
    board = make_board(positions=[{}, {}], meter_type={"registers": energy_only})
    run, cases, _ = run_plans(tmp_path, "--sim-scenario", str(board), plans=PLAN)
    assert run.returncode == 0 and len(cases) == 2
    reasons = {case.find("skipped").get("message") for case in cases.values()}
    assert reasons == {"no demand register test: meter type SIM-16S-200 has no demand registers in its register "
                       "map (lacks demand_interval_s, demand_reset, demand_count, demand_kw, max_demand_kw)"}


@pytest.mark.slow
def test_the_declared_demand_registers_are_all_the_test_uses(tmp_path):
    """With only the declared registers mapped (no present demand), every demand item passes."""
    test_mode = {"test_mode"}  # the meter type's test mode names its own register
    declared = set(REQUIRED_REGISTERS) | set(REGISTERS) | test_mode
    with SimulatedBench() as sim:
        data = sim.profile_data()
        data["meter_type"]["registers"] = {k: v for k, v in data["meter_type"]["registers"].items() if k in declared}
        profile = tmp_path / "bench.toml"
        profile.write_text(tomli_w.dumps(data))
        run = subprocess.run(plan_command(tmp_path, PLAN, "--bench", str(profile), "-q"), capture_output=True,
                             text=True, cwd=REPO, timeout=120)
    assert run.returncode == 0 and "16 passed" in run.stdout, run.stdout[-3000:]


def _tolerance(value: object):
    return lambda data: data["point"][0].update(tolerance=value)


HOSTILE = [
    ("point[1].tolerance", _tolerance(math.nan), "expected a finite number"),
    ("point[1].tolerance", _tolerance(math.inf), "expected a finite number"),
    ("point[1].tolerance", _tolerance(-2.0), "must be positive"),
    ("point[1].tolerance", _tolerance(1e9), "is outside [-inf, 20]"),
    ("point[1].tolerance", _tolerance("2 %"), "expected a number"),
    ("point[1].tolerance.0.2", _tolerance({"0.2": math.nan}), "expected a finite number"),
    ("point[1].tolerance.class 0.2", _tolerance({"class 0.2": 2.0}), "keys are accuracy classes"),
    ("point[2].current", lambda data: data["point"][1].update(current=50.0), "is outside [-inf, 2]"),
    ("point[2].current", lambda data: data["point"][1].update(current=-0.1), "must be positive"),
    ("point[1].pf", lambda data: data["point"][0].update(pf=1.5), "is outside [0.01, 1]"),
    ("point[1].of", lambda data: data["point"][0].update(of="In"), "is not one of TA, Imax"),
    ("point[2].id", lambda data: data["point"][1].update(id="DM-10TA"), "already a point of this table"),
    ("point[1].id", lambda data: data["point"][0].update(id="dm 10"), "capitals, digits and hyphens only"),
    ("point[1].lead", lambda data: data["point"][0].update(lead="false"), "expected true or false"),
    ("point[1].tolerence", lambda data: data["point"][0].update(tolerence=2.0), "unknown key"),
    ("procedure.settle_s", lambda data: data["procedure"].update(settle_s=math.nan), "expected a finite number"),
    ("procedure.close_overrun_pct", lambda data: data["procedure"].update(close_overrun_pct=0.0), "must be positive"),
    ("procedure.poll_s", lambda data: data["procedure"].update(poll_s=math.inf), "expected a finite number"),
    ("procedure.bench_clock_ppm", lambda data: data["procedure"].update(bench_clock_ppm=-1.0), "is outside [0, 1000]"),
    ("provenance.poll_s", lambda data: data["provenance"].pop("poll_s"), "every value states where it comes from"),
]


@pytest.mark.parametrize(("key", "edit", "why"), HOSTILE, ids=[f"{key}:{why}" for key, _, why in HOSTILE])
def test_a_hostile_demand_table_is_one_line_naming_file_and_key(tmp_path, key, edit, why):
    path = edited_toml(DEFAULT_TABLE, edit, tmp_path / "demand.toml")
    with pytest.raises(ConfigError) as refused:
        load_demand_table(path).points(SimulatedBench().meter_type())
    message = str(refused.value)
    assert message.startswith(f"{path}: {key}: ") and why in message and "\n" not in message, message


def test_a_binary_demand_table_is_one_line(tmp_path):
    path = tmp_path / "demand.toml"
    path.write_bytes(b"\x00\xff" * 64)
    with pytest.raises(ConfigError, match=r"not UTF-8 text") as refused:
        load_demand_table(path)
    assert str(refused.value).startswith(f"{path}: ") and "\n" not in str(refused.value)


def test_a_class_the_table_does_not_state_is_one_line_naming_the_row(tmp_path):
    path = edited_toml(DEFAULT_TABLE, _tolerance({"0.5": 2.0}), tmp_path / "demand.toml")
    with pytest.raises(ConfigError) as refused:
        load_demand_table(path).points(SimulatedBench().meter_type())  # a class 0.2 meter
    assert str(refused.value) == f"{path}: point[1].tolerance: has no value for accuracy class 0.2 (it has 0.5)"
