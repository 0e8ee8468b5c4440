"""The whole plan on simulated boards: compliant meters pass, each faulty meter fails exactly
where its fault shows, and points the board cannot count are shown as such."""
import re

import pytest

from bench.metrology.uncertainty import Budget, Component, Rule, Verdict
from bench.plans import audit, firmware
from bench.plans.demand import board_points, load_demand_table
from bench.plans.limits import load_table
from bench.procedures.gating import measure_point
from bench.procedures.results import Measured, PositionResult
from bench.procedures.runner import shift_result
from bench.sim import SimulatedBench
from bench.sim.board import load_board
from bench.sim.simbench import board_path
from bench.station.bench import Bench
from tests.helpers import EXACT, families_without_points, properties, run_plans


def failed_points(run):
    """{(point or step id, position)} of every item that failed: accuracy points, audit and
    firmware steps alike, by the id the run record gives each result. The pytest items that
    failed must be exactly as many, so nothing the record holds hides behind another id."""
    found = {(result["point"], meter["position"]) for meter in run.record["meters"]
             for result in meter["results"] if result["verdict"] == "FAIL"}
    failed_items = [name for name, case in run.cases.items() if case.find("failure") is not None]
    assert len(failed_items) == len(found), sorted(failed_items)
    return found


@pytest.mark.slow
def test_default_board_passes_the_whole_plan(whole_plan):
    run = whole_plan("default")
    assert run.process.returncode == 0, run.process.stdout[-3000:]
    sim = SimulatedBench()
    points = load_table().points(sim.meter_type())
    demand = board_points(load_demand_table(), sim.meter_type())
    items = len(points) + len(audit.STEPS) + len(firmware.STEPS) + len(demand)
    positions = len(sim.board.world.meters)
    # every item on every position; the only skipped ones are those of a family C12.20 has no points of
    # for this meter (the equality of current circuits, of meters with two current circuits per element;
    # reactive and received energy, of meters with a varh output or a received-energy register)
    skipped = [case.find("skipped") for case in run.cases.values() if case.find("skipped") is not None]
    assert len(skipped) == len(families_without_points({p.family for p in points})) * positions
    assert all(s.get("message").startswith("not applicable: ") for s in skipped)
    assert len(run.cases) == items * positions + len(skipped)
    assert re.search(r"bench time covered: \d+\.\d s", run.process.stdout)


@pytest.mark.slow
def test_mixed_board_fails_exactly_the_faulty_meters_where_their_faults_show(whole_plan):
    board = load_board(board_path("mixed"))
    expected = {(point, position) for position, points in board.expected_failures.items() for point in points}
    run = whole_plan("mixed")
    assert run.process.returncode == 1
    failed = failed_points(run)
    assert failed == expected
    healthy = [p for p, points in board.expected_failures.items() if not points]
    assert healthy and not any(position in healthy for _, position in failed)


@pytest.mark.slow
def test_a_board_outside_reference_conditions_counts_nothing(tmp_path, make_board):
    board = make_board(board={"ambient_c": 30.0})
    run, cases, _ = run_plans(tmp_path, "--sim-scenario", str(board),
                              plans="test_plans/accuracy/test_load_performance.py")
    points = load_table().points(SimulatedBench().meter_type())
    load_performance = sum(1 for p in points if p.family == "load_performance")
    assert run.returncode == 1 and len(cases) == load_performance * 8
    for case in cases.values():
        assert properties(case)["Verdict"] == "INDETERMINATE"
        assert ("not at reference conditions: temperature 30.0 °C is outside 21..25 °C"
                in case.find("failure").get("message"))


@pytest.mark.slow
def test_guard_banded_rule_makes_a_marginal_meter_indeterminate(tmp_path, make_board):
    board = make_board(positions=[{"offset_pct": 0.195, **EXACT}, {"offset_pct": 0.0, **EXACT}],
                       board={"name": "margin"})
    plan = "test_plans/accuracy/test_load_performance.py"
    simple, cases, _ = run_plans(tmp_path, "--sim-scenario", str(board), "-k", "FL-PF1", plans=plan)
    assert simple.returncode == 0 and [properties(c)["Verdict"] for c in cases.values()] == ["PASS", "PASS"]
    guarded, cases, html = run_plans(tmp_path, "--sim-scenario", str(board), "-k", "FL-PF1",
                                     "--decision-rule", "guarded", plans=plan)
    verdicts = {name: properties(c)["Verdict"] for name, c in cases.items()}
    assert guarded.returncode == 1
    assert verdicts == {"test_load_performance[FL-PF1-pos1-SIM16A00001]": "INDETERMINATE",
                        "test_load_performance[FL-PF1-pos2-SIM16A00002]": "PASS"}
    assert "decision rule: guard-banded: pass when |error| + U &lt;= limit" in html


def _measured(error, components, point="X"):
    budget = Budget(tuple(Component(name, u, "") for name, u in components))
    return PositionResult(point, point, None, None, None, 0.1, Rule.SIMPLE,
                          pulses=Measured(error, budget, Verdict.PASS))


def test_a_shift_counts_the_reference_standard_once_and_both_dwells():
    here = _measured(0.13, [("reference standard", 0.005), ("edge timing", 0.003)], "V90")
    there = _measured(0.05, [("reference standard", 0.005), ("edge timing", 0.004)], "FL-PF1")
    shift = shift_result(here, there).shift
    assert shift.error_pct == pytest.approx(0.08)
    assert shift.expanded_pct == pytest.approx(2 * (0.005 ** 2 + 0.003 ** 2 + 0.004 ** 2) ** 0.5)
    assert shift.verdict is Verdict.PASS  # 0.08 within ±0.1


@pytest.mark.parametrize("form, elements, ta, imax", [("1S", 1, 30.0, 200.0), ("12S", 2, 30.0, 200.0),
                                                      ("9S", 3, 2.5, 20.0)])
def test_each_form_is_measured_against_truth(make_board, form, elements, ta, imax):
    """A board of each form at full load and PF 0.5: every element's voltage at the form's
    angle, and the measured error within U of the truth."""
    board = make_board(positions=[{**EXACT, "offset_pct": 0.1, "phase_error_mrad": 1.0,
                                   "element_offsets_pct": [0.05 * k for k in range(elements)]}] * 2,
                       meter_type={"form": form, "elements": elements, "test_amperes": ta, "max_current_a": imax},
                       source={"phases": max(elements, 1)})
    with SimulatedBench(board) as sim, Bench(sim.profile()) as bench:
        point = {p.id: p for p in load_table().points(sim.meter_type())}["FL-PF05"]
        results = measure_point(bench, point)
        assert len(sim.world.conditions().voltages) == elements
        assert sim.world.true_power_w() == pytest.approx(elements * 120 * ta * 0.5, rel=2e-3)
        for number, result in results.items():
            assert abs(result.pulses.error_pct - bench.sim_control.true_error_pct(number)) <= result.pulses.expanded_pct


@pytest.mark.slow
def test_long_points_show_progress_in_the_terminal(tmp_path):
    """On a clock that takes real time (here simulated at 100x), a 750 s creep point reports
    what it is doing every few seconds with ``--progress lines`` (for a log someone tails); a
    stepped simulation stays quiet, and so does a run whose output is not a terminal by default.
    (In normal mode: the meters' test mode would make it a 75 s point.)"""
    args = ("-k", "CREEP", "--sim-scale", "100", "--no-test-mode")
    run, _, _ = run_plans(tmp_path, *args, "--progress", "lines", plans="test_plans/accuracy/test_no_load.py")
    assert run.returncode == 0
    lines = re.findall(r"no load \(creep\), 115 % voltage: counting test-output pulses, (\d+) s of 750 s "
                       r"\(bench time\)", run.stdout)
    assert len(lines) >= 2 and [int(s) for s in lines] == sorted(int(s) for s in lines), run.stdout
    quiet, _, _ = run_plans(tmp_path / "quiet", *args, plans="test_plans/accuracy/test_no_load.py")
    assert quiet.returncode == 0 and "counting test-output pulses" not in quiet.stdout
