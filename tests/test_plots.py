"""The certificate plots show what the record says: every load point (or that it was not measured),
points outside their limit or not PASS marked, labelled limits, a legend off the data, readable
current ticks, harmonic bars on their orders, and the same bytes for the same data."""
from __future__ import annotations

import math
import subprocess
import sys
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from bench.metrology.harmonics import Harmonic, HarmonicProfile
from bench.metrology.stimulus import Stimulus, pf_label
from bench.metrology.uncertainty import Budget, Component, Rule, Verdict, decide
from bench.procedures.results import FaultResult, Measured, PositionResult, ShiftResult
from bench.records import plots
from bench.records.record import entry
from bench.station.profile import Position
from instruments.reference_standard import Readings
from tests.helpers import REPO

TA = 30.0
POSITION = Position(1, "SIM16A00001", "127.0.0.1:5020", {"Wh": 1})
READINGS = Readings((120.0,) * 3, (3.0,) * 3, 1080.0, 1.0, 60.0, 0.0, 0.0, ((1, 1080.0),), 22.8)
PF_ANGLE = {"PF 1.0": 0.0, "PF 0.5 lag": 60.00000000000001, "PF 0.8 lead": -36.86989764584401}
SVG = "{http://www.w3.org/2000/svg}"


def measured(error: float, u: float, limit: float, rule: Rule = Rule.SIMPLE) -> Measured:
    return Measured(error, Budget((Component("reference standard", u / 2, "test budget"),)),
                    decide(error, u, limit, rule))


def load_entry(point: str, amps: float, pf: str, error: float | None, limit: float, u: float = 0.012,
               rule: Rule = Rule.SIMPLE, harmonics: HarmonicProfile | None = None) -> dict[str, Any]:
    """A record entry exactly as a run writes it (bench.record.entry of a real PositionResult)."""
    result = PositionResult(point, f"{point} {amps:g} A {pf}", POSITION,
                            Stimulus(120.0, amps, PF_ANGLE[pf], 60.0, 3, None, harmonics), READINGS, limit, rule,
                            pulses=None if error is None else measured(error, u, limit, rule),
                            note="" if error is not None else "gate did not complete")
    return entry(point, "load_performance", result)


def fault_entry(point: str) -> dict[str, Any]:
    return entry(point, "load_performance", FaultResult(point, point, POSITION, "source did not settle"))


def plan(errors: dict[str, float | None] | None = None) -> list[dict[str, Any]]:
    """The C12.20 load points (0.1 TA, TA, Imax at three PFs) with the given errors by point id."""
    errors = errors or {}
    entries = []
    for pf, suffix, limit in (("PF 1.0", "PF1", 0.2), ("PF 0.5 lag", "PF05", 0.3), ("PF 0.8 lead", "PF08C", 0.3)):
        for prefix, amps in (("LL", 3.0), ("FL", 30.0), ("MAX", 200.0)):
            point = f"{prefix}-{suffix}"
            entries.append(load_entry(point, amps, pf, errors.get(point, 0.05), limit))
    return entries


def drawn(figure: Any) -> Any:
    figure.draw_without_rendering()
    return figure


def line(figure: Any, gid: str) -> Any:
    [found] = [a for a in figure.axes[0].lines if a.get_gid() == gid]
    return found


def legend_texts(figure: Any) -> list[str]:
    [legend] = figure.legends
    return [t.get_text() for t in legend.get_texts()]


def boxes_overlap(a: Any, b: Any) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_the_builder_makes_entries_with_the_record_keys():
    e = load_entry("LL-PF1", 3.0, "PF 1.0", 0.1, 0.2)
    assert set(e) == {"point", "family", "name", "verdict", "value_pct", "u_pct", "cells", "evidence",
                      "discarded_attempts"}
    assert e["evidence"]["stimulus"]["current_a"] == 3.0 and e["evidence"]["limit_pct"] == 0.2
    assert e["verdict"] == "PASS" and e["u_pct"] == pytest.approx(0.012)


def test_points_outside_their_limit_are_red_crosses_at_their_values():
    figure = plots.error_curve_figure(plan({"LL-PF05": 0.62, "FL-PF05": -0.35, "LL-PF1": 0.19}), TA)
    crosses = line(figure, "outside-limit")
    assert crosses.get_marker() == "X" and crosses.get_color() == plots.OUTSIDE["color"]
    assert sorted(zip(crosses.get_xdata(), crosses.get_ydata())) == [(10.0, 0.62), (100.0, -0.35)]
    assert "outside limit" in legend_texts(figure)
    assert not [a for a in figure.axes[0].lines if a.get_gid() == "not-pass"]  # 0.19 within ±0.2 is a PASS


def test_a_verdict_other_than_pass_within_the_limit_is_marked_too():
    """Under the guarded rule an error within the limit by less than U is not a PASS."""
    entries = plan()
    entries[0] = load_entry("LL-PF1", 3.0, "PF 1.0", 0.19, 0.2, u=0.05, rule=Rule.GUARDED)
    assert entries[0]["verdict"] == "INDETERMINATE"
    figure = plots.error_curve_figure(entries, TA)
    marked = line(figure, "not-pass")
    assert list(zip(marked.get_xdata(), marked.get_ydata())) == [(10.0, 0.19)]
    assert "within limit, verdict INDETERMINATE" in legend_texts(figure)
    assert not [a for a in figure.axes[0].lines if a.get_gid() == "outside-limit"]


def test_every_load_point_is_plotted_or_listed_as_not_measured():
    entries = plan({"FL-PF05": None})  # the gate did not complete: a FAIL with no value
    entries[7] = fault_entry("FL-PF08C")  # faulted: no stimulus, no current to place it at
    figure = plots.error_curve_figure(entries, TA)
    series = {a.get_gid(): list(zip(a.get_xdata(), a.get_ydata())) for a in figure.axes[0].lines
              if (a.get_gid() or "").startswith("series-")}
    assert {gid: [x for x, _ in xy] for gid, xy in series.items()} == {
        "series-PF 1.0": [10.0, 100.0, pytest.approx(666.667, abs=1e-3)],
        "series-PF 0.5 lag": [10.0, pytest.approx(666.667, abs=1e-3)],
        "series-PF 0.8 lead": [10.0, pytest.approx(666.667, abs=1e-3)]}
    gate = line(figure, "not-measured-FL-PF05")
    assert list(gate.get_xdata()) == [100.0] and list(gate.get_ydata()) == [0.0]  # on the current axis
    drawn(figure)  # on the bottom edge of the data area, whatever the errors' range: not read as a value
    assert gate.get_transform().transform((100.0, 0.0))[1] == pytest.approx(figure.axes[0].get_window_extent().y0)
    texts = legend_texts(figure)
    assert "not measured: FL-PF05 (FAIL)" in texts and "not measured: FL-PF08C (ERROR)" in texts
    assert plots.error_curve_figure([fault_entry("FL-PF1")], TA) is not None  # even with nothing measured


def test_limit_lines_are_labelled_and_steps_sit_on_their_currents():
    entries = plan() + [load_entry("X-PF1", 60.0, "PF 1.0", 0.05, 0.4)]
    figure = plots.error_curve_figure(entries, TA)
    texts = legend_texts(figure)
    assert "limit ±0.2 to ±0.4 % (PF 1.0)" in texts
    assert "limit ±0.3 % (PF 0.5 lag, PF 0.8 lead)" in texts  # one line for equal limits, not one hiding another
    [pf1] = [p for p in figure.axes[0].patches if p.get_label() == "limit ±0.2 to ±0.4 % (PF 1.0)"]
    values, edges = pf1.get_data().values, pf1.get_data().edges
    currents = [10.0, 100.0, 200.0, 2000 / 3]
    assert list(values) == [0.2, 0.2, 0.4, 0.2]
    # each step spans its own current and changes midway (on the log axis) to the next one
    assert list(edges) == pytest.approx([10 / plots.X_MARGIN]
                                        + [math.sqrt(a * b) for a, b in zip(currents, currents[1:])]
                                        + [2000 / 3 * plots.X_MARGIN])
    [low] = [p for p in figure.axes[0].patches if p.get_gid() == pf1.get_gid() + "-low"]
    assert list(low.get_data().values) == [-0.2, -0.2, -0.4, -0.2]


@pytest.mark.parametrize("figure_of", [
    lambda: plots.error_curve_figure(plan({"LL-PF05": 0.62}) + [fault_entry("F1"), fault_entry("F2")], TA),
    lambda: plots.harmonic_spectrum_figure(harmonic_entries()),
])
def test_the_legend_is_outside_the_data_area(figure_of):
    figure = drawn(figure_of())
    [legend] = figure.legends
    assert not boxes_overlap(legend.get_window_extent(), figure.axes[0].get_window_extent())


def test_a_tick_at_every_current_and_no_two_labels_overlap():
    currents = (0.3, 0.45, 0.6, 1.5, 3.0, 30.0, 31.5, 33.0, 200.0)
    entries = [load_entry(f"P{k}", amps, "PF 1.0", 0.05, 0.2) for k, amps in enumerate(currents)]
    figure = drawn(plots.error_curve_figure(entries, TA))
    axes = figure.axes[0]
    assert list(axes.get_xticks()) == pytest.approx([100 * a / TA for a in currents])
    shown = [t for t in axes.get_xticklabels() if t.get_text()]
    boxes = [t.get_window_extent() for t in shown]
    assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:]))
    texts = [t.get_text() for t in axes.get_xticklabels()]
    assert texts[0] == "1" and "100" in texts and "666.7" in texts and "" in texts  # thinned, not dropped


def test_the_error_curve_svg_is_the_same_for_the_same_data_and_carries_the_marks():
    entries = plan({"MAX-PF1": -0.25})
    svg = plots.error_curve_svg(entries, TA)
    assert svg == plots.error_curve_svg(entries, TA) and svg.startswith("<svg")
    root = ET.fromstring(svg)
    assert root.find(f".//{SVG}g[@id='outside-limit']") is not None
    assert root.find(f".//{SVG}g[@id='legend']") is not None
    assert "dc:date" not in svg and "outside limit" in svg


def harmonic_entries() -> list[dict[str, Any]]:
    """The reference point and three distortion points, as ShiftResults like the harmonics plan's."""
    fifth = HarmonicProfile("fifth_in_phase", "", (Harmonic(5, 10.0, 0.0),), (Harmonic(5, 40.0, 0.0),), "test")
    odd = HarmonicProfile("phase_fired", "", (), tuple(Harmonic(h, 60.0 / h, 0.0) for h in (3, 5, 7)), "test")
    even = HarmonicProfile("half_wave", "", (), (Harmonic(0, 90.0, 0.0), Harmonic(2, 42.4, -90.0)), "test")
    reference = load_entry("H-REF", 100.0, "PF 1.0", 0.01, 0.5)
    entries = [{**reference, "family": "harmonics"}]
    ref_result = PositionResult("H-REF", "ref", POSITION, Stimulus(120.0, 100.0, 0.0, 60.0, 3), READINGS, 0.5,
                                Rule.SIMPLE, pulses=measured(0.01, 0.012, 0.5))
    for point, profile in (("H5", fifth), ("H-ODD", odd), ("H-EVEN", even)):
        distorted = PositionResult(point, point, POSITION, Stimulus(120.0, 100.0, 0.0, 60.0, 3, None, profile),
                                   READINGS, 0.5, Rule.SIMPLE, pulses=measured(0.02, 0.012, 0.5))
        entries.append(entry(point, "harmonics", ShiftResult(distorted, ref_result, measured(0.01, 0.02, 0.5))))
    return entries


def test_harmonic_bars_group_centred_on_their_orders_with_ticks_at_the_orders():
    figure = plots.harmonic_spectrum_figure(harmonic_entries())
    axes = figure.axes[0]
    assert list(axes.get_xticks()) == [0, 2, 3, 5, 7]
    assert [t.get_text() for t in axes.get_xticklabels()] == ["DC", "2", "3", "5", "7"]
    by_order: dict[int, list[float]] = {}
    for bars in (c.patches for c in axes.containers):
        for bar in bars:
            centre = bar.get_x() + bar.get_width() / 2
            by_order.setdefault(round(centre), []).append(centre)
    assert sorted(by_order) == [0, 2, 3, 5, 7]
    for order, centres in by_order.items():
        assert sum(centres) / len(centres) == pytest.approx(order)  # the group is centred on its order
        assert all(abs(c - order) < 0.45 for c in centres)
    assert by_order[3] == [pytest.approx(3.0)]  # alone on 3
    assert len(by_order[5]) == 3  # fifth I, V and phase-fired I on 5
    [dc] = [b for c in axes.containers for b in c.patches if round(b.get_x() + b.get_width() / 2) == 0]
    assert dc.get_height() == 90.0 and dc.get_x() + dc.get_width() / 2 == pytest.approx(0.0)
    labels = legend_texts(figure)
    assert labels == ["H5 fifth in phase: current", "H5 fifth in phase: voltage", "H-ODD phase fired: current",
                      "H-EVEN half wave: current"]


def test_harmonic_svg_is_deterministic_and_absent_without_distortion():
    entries = harmonic_entries()
    assert plots.harmonic_spectrum_svg(entries) == plots.harmonic_spectrum_svg(entries)
    assert plots.harmonic_spectrum_svg(entries[:1]) is None and plots.error_curve_svg(entries[:1], TA) is None


@pytest.mark.parametrize("phase, label", [(0.0, "PF 1.0"), (60.00000000000001, "PF 0.5 lag"),
                                          (-36.86989764584401, "PF 0.8 lead"), (30.0, "PF 0.87 lag")])
def test_power_factor_labels_follow_the_angle(phase, label):
    assert pf_label(phase) == label


class Numbers:
    """What the session report's plot reads of a result: its numbers and its verdict."""

    def __init__(self, value_pct: float | None, u_pct: float | None, limit_pct: float | None, verdict: str) -> None:
        self.value_pct, self.u_pct, self.limit_pct, self.verdict = value_pct, u_pct, limit_pct, Verdict(verdict)


@pytest.mark.parametrize("result, flagged", [
    (Numbers(0.1, 0.012, 0.2, "PASS"), False),
    (Numbers(0.622, 0.016, 0.3, "FAIL"), True),
    (Numbers(-0.7689, 0.02, 0.5, "FAIL"), True),  # a shift
    (Numbers(0.19, 0.05, 0.2, "INDETERMINATE"), True),  # within the limit, not a PASS
])
def test_the_session_report_plot_marks_a_point_outside_or_not_pass(result, flagged):
    root = ET.fromstring(plots.result_svg(result))
    cross, dot = root.findall(f"{SVG}path"), root.findall(f"{SVG}circle")
    assert (len(cross), len(dot)) == ((1, 0) if flagged else (0, 1))
    assert (cross or dot)[0].get("stroke" if flagged else "fill") == ("#b00000" if flagged else "#0a6b0a")
    assert result.verdict.value in root.find(f"{SVG}title").text


def test_the_session_report_plot_is_absent_without_an_uncertainty():
    assert plots.result_svg(Numbers(None, None, None, "FAIL")) is None  # a pulse count
    assert plots.result_svg(Numbers(None, None, 0.2, "FAIL")) is None  # an error not measured


def test_a_chart_is_drawn_once_per_distinct_input_and_reused():
    # Every meter of a run applies the same harmonic profiles: its spectrum chart is drawn once.
    one_meter, next_meter = harmonic_entries(), harmonic_entries()
    one_meter[1]["value_pct"], next_meter[1]["value_pct"] = 0.03, 0.02  # their errors differ, their profiles not
    first, second = plots.harmonic_spectrum_svg(one_meter), plots.harmonic_spectrum_svg(next_meter)
    assert first is not None and first is second  # the same drawing, not a second equal one
    assert plots.harmonic_spectrum_svg(one_meter[:2]) != first  # another input, another chart
    # An error curve is the meter's own: equal inputs share a drawing, a different error draws anew.
    assert plots.error_curve_svg(plan(), TA) is plots.error_curve_svg(plan(), TA)
    assert plots.error_curve_svg(plan({"FL-PF1": 0.11}), TA) != plots.error_curve_svg(plan(), TA)


def test_a_boards_curves_drawn_in_parallel_are_the_curves_drawn_one_by_one():
    boards = [(plan({"FL-PF1": 0.01 * k}), TA) for k in range(plots.PARALLEL_FROM)]
    boards.append(boards[0])  # two meters with the same results share one drawing
    drawn = plots.error_curve_svgs(boards)
    assert drawn == [plots.error_curve_svg(results, amperes) for results, amperes in boards]
    assert len(set(drawn)) == plots.PARALLEL_FROM and drawn[-1] == drawn[0]


def test_curves_set_drawing_before_they_are_asked_for_are_the_curves_drawn_here():
    """A run's end starts its workers and sets its curves drawing before it renders the documents."""
    boards = [(plan({"FL-PF1": 0.01 * k}), TA) for k in range(3)]
    with plots.CurvePool(2) as pool:
        pool.start(boards[:2])  # the third is drawn when asked for
        drawn = plots.error_curve_svgs(boards, pool)
    assert drawn == [plots.error_curve_svg(results, amperes) for results, amperes in boards]
    assert len(set(drawn)) == 3


@pytest.mark.slow
def test_a_process_that_cannot_start_workers_still_draws_every_curve():
    """python reading its program from stdin cannot spawn workers (its main module cannot be imported
    again): setting the curves drawing does not fail, and each curve is then drawn in the process."""
    program = """
import json
from concurrent.futures.process import BrokenProcessPool
from bench.records import plots
from tests.test_plots import TA, plan
boards = [(plan({"FL-PF1": 0.01 * k}), TA) for k in range(3)]
with plots.CurvePool(2) as pool:
    try:
        pool.drawn(())  # waits until the workers have failed to start
    except BrokenProcessPool:
        broken = True
    pool.start(boards)
    drawn = plots.error_curve_svgs(boards, pool)
print(json.dumps([broken, drawn == [plots.error_curve_svg(results, amperes) for results, amperes in boards]]))
"""
    done = subprocess.run([sys.executable, "-"], input=program, capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[true, true]"
