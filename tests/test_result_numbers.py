"""Results carry their numbers as numbers (value, U and limit in %, the stimulus's power factor and
its direction), and what is drawn or recorded is made from those, never parsed back out of the
display cells; one roll-up (``worst``) sums up verdicts everywhere."""
from __future__ import annotations

import dataclasses
import itertools
import math
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from bench.metrology.stimulus import Stimulus, pf_label
from bench.metrology.uncertainty import SEVERITY, Budget, Component, Rule, Verdict, decide, worst
from bench.procedures.results import CheckResult, CountResult, FaultResult, Measured, PositionResult, ShiftResult
from bench.procedures.runner import shift_result
from bench.records import plots
from bench.records.record import entry, meter_verdict
from bench.station.profile import Position
from instruments.reference_standard import Readings

POSITION = Position(1, "SIM16A00001", "127.0.0.1:5020", {"Wh": 1})
READINGS = Readings((120.0,) * 3, (3.0,) * 3, 1080.0, 1.0, 60.0, 0.0, 0.0, ((1, 1080.0),), 22.8)
SVG = "{http://www.w3.org/2000/svg}"


def measured(error: float, u: float, limit: float, rule: Rule = Rule.SIMPLE) -> Measured:
    budget = Budget((Component("reference standard", u / 2, "test budget"),))
    return Measured(error, budget, decide(error, budget.expanded_pct, limit, rule))


def stimulus(power_factor: float = 1.0, leading: bool = False) -> Stimulus:
    return Stimulus.at_power(1080.0, 120.0, power_factor, 60.0, 3, leading)


def position_result(error: float | None, u: float = 0.0123, limit: float = 0.2, rule: Rule = Rule.SIMPLE,
                    point: str = "FL-PF1", power_factor: float = 1.0, leading: bool = False) -> PositionResult:
    return PositionResult(point, f"{point} full load", POSITION, stimulus(power_factor, leading), READINGS, limit,
                          rule, pulses=None if error is None else measured(error, u, limit, rule),
                          note="" if error is not None else "gate did not complete")


def count_result(pulses: int = 0) -> CountResult:
    return CountResult("CREEP", "no-load creep", POSITION, Stimulus(132.0, 0.0, 0.0, 60.0, 3), READINGS, 600.0,
                       pulses, "at most 1 pulse", pulses <= 1)


def check_result() -> CheckResult:
    return CheckResult("A-KEY", "key rotation", POSITION, False, "key status 2", "key status 1", "E210",
                       "E210 key rejected: re-provision the meter")


def fault_result() -> FaultResult:
    return FaultResult("FL-PF1", "FL-PF1 full load", POSITION, "source did not settle")


def gated(error: float, limit: float, *standard_u_pct: float) -> Measured:
    """An error with the reference standard's term and the dwell's own terms in its budget."""
    names = ("reference standard", "reference quantization", "edge timing")
    budget = Budget(tuple(Component(name, u, "test budget") for name, u in zip(names, standard_u_pct)))
    return Measured(error, budget, decide(error, budget.expanded_pct, limit, Rule.SIMPLE))


def a_shift() -> ShiftResult:
    """The shift of +0.1834 % from -0.0566 % to +0.1268 %, judged against ±0.5 %."""
    here = dataclasses.replace(position_result(0.1268, limit=0.5, point="V90"),
                               pulses=gated(0.1268, 0.5, 0.005, 0.004, 0.002))
    reference = dataclasses.replace(position_result(-0.0566, limit=0.2, point="FL-PF1"),
                                    pulses=gated(-0.0566, 0.2, 0.005, 0.003, 0.001))
    return shift_result(here, reference)


def shown(cells: dict[str, str], column: str) -> float:
    """The first number in a display cell (what the plot used to parse)."""
    return float(next(word for word in cells[column].lstrip("±").split() if word[0] in "+-0123456789"))


# numbers, and the cells that display them --------------------------------------------------------------------

@pytest.mark.parametrize("result", [position_result(0.0834), position_result(-0.2468, u=0.031, limit=0.3),
                                    a_shift()], ids=["pass", "fail", "shift"])
def test_the_numbers_are_what_the_cells_show(result: Any) -> None:
    cells = result.cells()
    assert result.value_pct == pytest.approx(shown(cells, "Measured"), abs=5e-5)
    assert result.u_pct == pytest.approx(shown(cells, "U (k=2)"), abs=5e-5)
    assert result.limit_pct == shown(cells, "Limit")


def test_each_number_comes_from_its_own_field() -> None:
    result = position_result(0.0834, u=0.0123, limit=0.2)
    assert (result.value_pct, result.u_pct, result.limit_pct) == (0.0834, pytest.approx(0.0123), 0.2)
    shift = a_shift()
    assert shift.value_pct == pytest.approx(0.1268 - -0.0566)  # the shift, not either error
    # both dwells' terms count, the reference standard's (the same instrument) once
    assert shift.u_pct == pytest.approx(2 * math.sqrt(0.005**2 + 0.004**2 + 0.002**2 + 0.003**2 + 0.001**2))
    assert shift.limit_pct == 0.5  # the measured point's limit, not the reference point's


@pytest.mark.parametrize("result", [position_result(None), count_result(3), check_result(), fault_result()],
                         ids=["not measured", "count", "check", "fault"])
def test_a_result_without_a_measured_percentage_has_none(result: Any) -> None:
    assert (result.value_pct, result.u_pct) == (None, None)
    assert result.limit_pct == (0.2 if isinstance(result, PositionResult) else None)


def test_the_record_entry_takes_the_numbers_and_the_evidence_is_unchanged_by_them() -> None:
    for result in (position_result(0.0834), a_shift(), count_result(), check_result(), fault_result()):
        e = entry(result.point, "load_performance", result)
        assert (e["value_pct"], e["u_pct"]) == (result.value_pct, result.u_pct)
        assert "value_pct" not in e["evidence"] and "u_pct" not in e["evidence"]  # properties, not fields
    assert "limit_pct" not in entry("V90", "influence", a_shift())["evidence"]


# the session report's plot -----------------------------------------------------------------------------------

def svg(result: Any) -> ET.Element:
    drawn = plots.result_svg(result)
    assert drawn is not None
    return ET.fromstring(drawn)


def marker_x(root: ET.Element) -> float:
    """Where the value is drawn: a dot's centre, or the middle of a cross."""
    if (dot := root.find(f"{SVG}circle")) is not None:
        return float(dot.get("cx", "nan"))
    path = root.find(f"{SVG}path")
    assert path is not None
    left = float(path.get("d", "").split()[0].lstrip("M").split(",")[0])
    return left + 4


def expected_x(value: float, u: float, limit: float, at: float | None = None) -> float:
    """Where ``at`` (default: the value) sits on the plot of this value, U and limit."""
    span = 1.5 * max(limit, abs(value) + u)
    return 20 + 280 * ((value if at is None else at) + span) / (2 * span)


def test_a_value_outside_its_limit_is_a_cross_at_that_value() -> None:
    result = position_result(0.2468, u=0.0123, limit=0.2)
    root = svg(result)
    assert root.find(f"{SVG}circle") is None and root.find(f"{SVG}path") is not None
    title = root.find(f"{SVG}title")
    assert title is not None and title.text == "+0.2468 % ± 0.0123 %, limit ±0.2 %: FAIL (outside limit)"
    assert marker_x(root) == pytest.approx(expected_x(0.2468, 0.0123, 0.2), abs=0.06)


def test_a_passing_value_is_a_dot_at_that_value_inside_the_band() -> None:
    root = svg(position_result(-0.0834, u=0.0123, limit=0.2))
    assert root.find(f"{SVG}path") is None
    assert marker_x(root) == pytest.approx(expected_x(-0.0834, 0.0123, 0.2), abs=0.06)
    band = root.find(f"{SVG}rect")
    assert band is not None
    assert float(band.get("x", "nan")) == pytest.approx(expected_x(-0.0834, 0.0123, 0.2, at=-0.2), abs=0.06)


def test_a_value_within_its_limit_without_a_pass_is_a_cross_not_outside() -> None:
    result = position_result(0.19, u=0.05, limit=0.2, rule=Rule.GUARDED)
    assert result.verdict is Verdict.INDETERMINATE
    root = svg(result)
    title = root.find(f"{SVG}title")
    assert root.find(f"{SVG}path") is not None and title is not None
    assert title.text is not None and title.text.endswith(": INDETERMINATE")


def test_a_shift_is_drawn_at_the_shift_against_its_own_limit() -> None:
    shift = a_shift()
    root = svg(shift)
    title = root.find(f"{SVG}title")
    assert title is not None and title.text is not None
    assert title.text.startswith(f"{shift.value_pct:+.4f} % ± {shift.u_pct:.4f} %, limit ±0.5 %")
    assert marker_x(root) == pytest.approx(expected_x(0.1834, shift.u_pct or 0.0, 0.5), abs=0.06)


@pytest.mark.parametrize("result", [position_result(None), count_result(3), check_result(), fault_result()],
                         ids=["not measured", "count", "check", "fault"])
def test_no_plot_without_a_value_and_its_uncertainty(result: Any) -> None:
    assert plots.result_svg(result) is None


# power factor: one label, lag = current behind the voltage = positive angle -----------------------------------

@pytest.mark.parametrize("phase, label", [(0.0, "PF 1.0"), (60.0, "PF 0.5 lag"), (-36.87, "PF 0.8 lead"),
                                          (25.84, "PF 0.9 lag"), (-25.84, "PF 0.9 lead"), (30.0, "PF 0.87 lag")])
def test_the_power_factor_label(phase: float, label: str) -> None:
    assert pf_label(phase) == label
    assert Stimulus(120.0, 3.0, phase, 60.0, 3).pf_label == label


@pytest.mark.parametrize("power_factor, leading, label", [(1.0, False, "PF 1.0"), (0.5, False, "PF 0.5 lag"),
                                                          (0.8, True, "PF 0.8 lead"), (0.9, False, "PF 0.9 lag")])
def test_a_stimulus_says_its_power_factor_and_whether_the_current_leads(power_factor: float, leading: bool,
                                                                          label: str) -> None:
    s = stimulus(power_factor, leading)
    assert s.power_factor == pytest.approx(power_factor)
    assert s.leading is leading and (s.phase_deg < 0) is leading
    assert s.pf_label == label
    result = position_result(0.01, power_factor=power_factor, leading=leading)
    assert result.stimulus.pf_label == label
    assert shift_result(result, position_result(0.0)).stimulus is result.stimulus  # the measured point's


def test_the_error_curve_names_its_series_with_the_same_label() -> None:
    entries = [entry(p, "load_performance", position_result(0.05, point=p, power_factor=pf, leading=lead))
               for p, pf, lead in (("FL-PF1", 1.0, False), ("FL-PF09", 0.9, False), ("FL-PF08C", 0.8, True))]
    assert [p.pf for p in plots.curve_points(entries, 30.0)] == ["PF 1.0", "PF 0.9 lag", "PF 0.8 lead"]
    svg = plots.error_curve_svg(entries, 30.0)
    assert svg is not None
    root = ET.fromstring(svg)
    legend = next(g for g in root.iter(f"{SVG}g") if g.get("id") == "legend")
    assert {"PF 1.0", "PF 0.9 lag", "PF 0.8 lead"} <= {t.text for t in legend.iter(f"{SVG}text")}
    assert {"series-PF 1.0", "series-PF 0.9 lag", "series-PF 0.8 lead"} <= {g.get("id") for g in root.iter(f"{SVG}g")}


# one roll-up ----------------------------------------------------------------------------------------------------

def test_worst_ranks_fail_then_error_then_indeterminate_then_pass() -> None:
    assert SEVERITY == (Verdict.FAIL, Verdict.ERROR, Verdict.INDETERMINATE, Verdict.PASS)
    for higher, lower in itertools.combinations(SEVERITY, 2):
        assert worst([lower, higher]) is higher and worst({higher, lower, Verdict.PASS}) is higher
    assert worst([]) is Verdict.PASS and worst(iter([Verdict.PASS, Verdict.PASS])) is Verdict.PASS
    assert worst(v for v in (Verdict.INDETERMINATE, Verdict.ERROR)) is Verdict.ERROR


def test_the_meter_verdict_is_worst_in_the_record_spelling() -> None:
    assert meter_verdict(set()) == "NO RESULTS"
    assert meter_verdict({"PASS", "INDETERMINATE", "ERROR"}) == "ERROR"
    assert meter_verdict({"PASS", "FAIL", "ERROR"}) == "FAIL"
    assert meter_verdict({"PASS"}) == "PASS"


def test_a_point_whose_register_counts_takes_the_worse_of_its_two_verdicts() -> None:
    base = position_result(0.05, limit=0.2)
    for register_error, verdict in ((0.05, Verdict.PASS), (0.5, Verdict.FAIL)):
        checked = PositionResult(base.point, base.name, POSITION, base.stimulus, READINGS, 0.2, Rule.SIMPLE,
                                 pulses=base.pulses, register_check=measured(register_error, 0.01, 0.2),
                                 register_counts=True)
        assert checked.verdict is verdict
    guarded = PositionResult(base.point, base.name, POSITION, base.stimulus, READINGS, 0.2, Rule.GUARDED,
                             pulses=base.pulses, register_check=measured(0.19, 0.05, 0.2, Rule.GUARDED),
                             register_counts=True)
    assert guarded.verdict is Verdict.INDETERMINATE
