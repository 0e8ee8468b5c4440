"""The certificate plots show what the record says: every load point (or that it was not measured),
points outside their limit or not PASS marked, labelled limits, a legend off the data, readable
current ticks, harmonic bars on their orders, and the same bytes for the same data."""
from __future__ import annotations

import itertools
import math
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from types import SimpleNamespace
from typing import Any

import pytest

from bench.metrology.harmonics import Harmonic, HarmonicProfile
from bench.metrology.stimulus import Stimulus, pf_label
from bench.metrology.uncertainty import Budget, Component, Rule, Verdict, decide
from bench.procedures.results import FaultResult, Measured, PositionResult, ShiftResult
from bench.pytest_plugin import start_checks
from bench.records import curve_svg, plots
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


def boxes_overlap(a: Any, b: Any) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def curve(entries: list[dict[str, Any]]) -> ET.Element:
    svg = plots.error_curve_svg(entries, TA)
    assert svg is not None
    return ET.fromstring(svg)


def group(root: ET.Element, gid: str) -> ET.Element | None:
    found = [g for g in root.iter(f"{SVG}g") if g.get("id") == gid]
    assert len(found) <= 1, gid
    return found[0] if found else None


def centres(element: ET.Element) -> list[tuple[float, float]]:
    """Where each marker in ``element`` is drawn (SVG units)."""
    return [tuple(map(float, TRANSLATE.fullmatch(m.get("transform")).groups()))
            for m in element.iter(f"{SVG}path") if m.get("class") == "marker"]


TRANSLATE = re.compile(r"translate\(([-\d.]+),([-\d.]+)\)")


def legend_texts(root: ET.Element) -> list[str]:
    return [t.text for t in group(root, "legend").iter(f"{SVG}text")]


def area(root: ET.Element) -> tuple[float, float, float, float]:
    """The plot area's left, top, right and bottom edges."""
    rect = [r for r in root.iter(f"{SVG}rect") if r.get("id") == "plot-area"][0]
    x, y, w, h = (float(rect.get(k)) for k in ("x", "y", "width", "height"))
    return x, y, x + w, y + h


def ticks(root: ET.Element, axis: str) -> list[float]:
    """The tick marks' positions along ``axis`` ("x" or "y"), in drawing order."""
    return [float(line.get(f"{axis}1")) for line in group(root, f"{axis}-ticks").iter(f"{SVG}line")
            if line.get("class") == "tick"]


class DataAxes:
    """The chart's data coordinates read back as a reader reads them: the error from the y tick
    labels (linear), the current from the x ticks, which sit at the lowest and highest currents
    (log)."""

    def __init__(self, root: ET.Element, lowest: float, highest: float) -> None:
        ys = ticks(root, "y")
        values = [float(t.text.replace("−", "-")) for t in group(root, "y-ticks").iter(f"{SVG}text")]
        assert len(values) == len(ys) >= 3
        (self.y0, self.v0), (y1, v1) = (ys[0], values[0]), (ys[-1], values[-1])
        self.per_unit = (v1 - self.v0) / (y1 - self.y0)
        tolerance = 1e-3 * abs(v1 - self.v0)  # the coordinates have two decimals
        assert all(v == pytest.approx(self.value(y), abs=tolerance) for y, v in zip(ys, values))  # evenly spaced
        xs = ticks(root, "x")
        self.x0, self.x1, self.lowest, self.highest = xs[0], xs[-1], lowest, highest

    def value(self, y: float) -> float:
        return self.v0 + (y - self.y0) * self.per_unit

    def current(self, x: float) -> float:
        return self.lowest * (self.highest / self.lowest) ** ((x - self.x0) / (self.x1 - self.x0))

    def data(self, x: float, y: float) -> tuple[float, float]:
        return self.current(x), self.value(y)


def plotted(root: ET.Element, gid: str, lowest: float = 10.0, highest: float = 2000 / 3) -> list[tuple[float, float]]:
    """The (current, error) of each marker of group ``gid``, read back through the axes."""
    axes = DataAxes(root, lowest, highest)
    return [(pytest.approx(c, rel=1e-3), pytest.approx(v, abs=1e-3))
            for c, v in (axes.data(x, y) for x, y in centres(group(root, gid)))]


def test_the_builder_makes_entries_with_the_record_keys():
    e = load_entry("LL-PF1", 3.0, "PF 1.0", 0.1, 0.2)
    assert set(e) == {"point", "family", "name", "verdict", "value_pct", "u_pct", "cells", "evidence",
                      "discarded_attempts"}
    assert e["evidence"]["stimulus"]["current_a"] == 3.0 and e["evidence"]["limit_pct"] == 0.2
    assert e["verdict"] == "PASS" and e["u_pct"] == pytest.approx(0.012)


def test_points_outside_their_limit_are_red_crosses_at_their_values():
    root = curve(plan({"LL-PF05": 0.62, "FL-PF05": -0.35, "LL-PF1": 0.19}))
    crosses = group(root, "outside-limit")
    assert crosses.get("fill") == curve_svg.RED and len(centres(crosses)) == 2
    assert sorted(plotted(root, "outside-limit"), key=lambda cv: cv[0].expected) == [(10.0, 0.62), (100.0, -0.35)]
    assert "outside limit" in legend_texts(root)
    assert group(root, "not-pass") is None  # 0.19 within ±0.2 is a PASS
    colours = [c for c, _ in (*curve_svg.PF_STYLE.values(), *curve_svg.SPARE_STYLES)]
    assert all(not (int(c[1:3], 16) > 160 and int(c[3:5], 16) < 110 and int(c[5:], 16) < 110) for c in colours)


def test_a_verdict_other_than_pass_within_the_limit_is_marked_too():
    """Under the guarded rule an error within the limit by less than U is not a PASS."""
    entries = plan()
    entries[0] = load_entry("LL-PF1", 3.0, "PF 1.0", 0.19, 0.2, u=0.05, rule=Rule.GUARDED)
    assert entries[0]["verdict"] == "INDETERMINATE"
    root = curve(entries)
    assert group(root, "not-pass").get("stroke") == curve_svg.RED
    assert plotted(root, "not-pass") == [(10.0, 0.19)]
    assert "within limit, verdict INDETERMINATE" in legend_texts(root)
    assert group(root, "outside-limit") is None


def test_every_load_point_is_plotted_or_listed_as_not_measured():
    entries = plan({"FL-PF05": None})  # the gate did not complete: a FAIL with no value
    entries[7] = fault_entry("FL-PF08C")  # faulted: no stimulus, no current to place it at
    entries.append(load_entry("Z-PF1", 0.0, "PF 1.0", 0.05, 0.2))  # measured, but its current not recorded
    root = curve(entries)
    series = {gid: plotted(root, gid) for gid in ("series-PF 1.0", "series-PF 0.5 lag", "series-PF 0.8 lead")}
    assert {gid: [c for c, _ in xy] for gid, xy in series.items()} == {
        "series-PF 1.0": [10.0, 100.0, 2000 / 3],
        "series-PF 0.5 lag": [10.0, 2000 / 3],
        "series-PF 0.8 lead": [10.0, 2000 / 3]}
    assert all(v == 0.05 for xy in series.values() for _, v in xy)
    gate = group(root, "not-measured-FL-PF05")
    [(x, y)] = centres(gate)
    assert DataAxes(root, 10.0, 2000 / 3).current(x) == pytest.approx(100.0, rel=1e-3)
    assert y == area(root)[3]  # on the bottom edge of the data area, whatever the errors' range: not read as a value
    texts = legend_texts(root)
    assert {"not measured: FL-PF05 (FAIL)", "not measured: FL-PF08C (ERROR)",
            "not plotted (no current recorded): Z-PF1 (PASS)"} <= set(texts)
    drawn_ids = {g.get("id") for g in root.iter(f"{SVG}g")}
    assert "not-measured-FL-PF08C" not in drawn_ids and "not-measured-Z-PF1" not in drawn_ids  # listed only
    accounted = sum(len(xy) for xy in series.values()) + sum(t.startswith("not ") for t in texts)
    assert accounted == len(entries)
    alone = curve([fault_entry("FL-PF1")])  # even with nothing measured
    assert legend_texts(alone) == ["not measured: FL-PF1 (ERROR)"]


def test_not_measured_points_sharing_a_current_are_stacked_not_hidden():
    root = curve(plan({"FL-PF1": None, "FL-PF05": None}))
    [(x1, y1)], [(x2, y2)] = centres(group(root, "not-measured-FL-PF1")), centres(group(root, "not-measured-FL-PF05"))
    assert x1 == x2 and y1 == area(root)[3] and y2 < y1 - 8  # the second one above the first


def test_limit_lines_are_labelled_and_steps_sit_on_their_currents():
    entries = plan() + [load_entry("X-PF1", 60.0, "PF 1.0", 0.05, 0.4)]
    root = curve(entries)
    texts = legend_texts(root)
    assert "limit ±0.2 to ±0.4 % (PF 1.0)" in texts
    assert "limit ±0.3 % (PF 0.5 lag, PF 0.8 lead)" in texts  # one line for equal limits, not one hiding another
    limits = {g.find(f"{SVG}title").text: g for g in root.iter(f"{SVG}g")
              if re.fullmatch(r"limit-\d+", g.get("id", ""))}
    assert sorted(limits) == ["limit ±0.2 to ±0.4 % (PF 1.0)", "limit ±0.3 % (PF 0.5 lag, PF 0.8 lead)"]
    axes = DataAxes(root, 10.0, 2000 / 3)

    def steps(element: ET.Element) -> tuple[list[float], list[float]]:
        """The step's edges (current) and its value between each two."""
        corners = [axes.data(*map(float, xy.split(",")))
                   for xy in element.find(f"{SVG}polyline").get("points").split()]
        return [c for c, _ in corners[::2]] + [corners[-1][0]], [v for _, v in corners[::2]]

    pf1 = limits["limit ±0.2 to ±0.4 % (PF 1.0)"]
    edges, values = steps(pf1)
    currents = [10.0, 100.0, 200.0, 2000 / 3]
    assert values == pytest.approx([0.2, 0.2, 0.4, 0.2], abs=1e-3)
    # each step spans its own current and changes midway (on the log axis) to the next one
    assert edges == pytest.approx([10 / curve_svg.X_MARGIN]
                                  + [math.sqrt(a * b) for a, b in zip(currents, currents[1:])]
                                  + [2000 / 3 * curve_svg.X_MARGIN], rel=1e-3)
    low = group(root, pf1.get("id") + "-low")
    assert steps(low)[1] == pytest.approx([-0.2, -0.2, -0.4, -0.2], abs=1e-3)
    y_top, y_bottom = area(root)[1], area(root)[3]
    assert all(y_top <= float(xy.split(",")[1]) <= y_bottom for g in limits.values()
               for xy in g.find(f"{SVG}polyline").get("points").split())  # every limit line within the y range


def legend_boxes(root: ET.Element) -> list[tuple[float, float, float, float]]:
    """Each legend entry's estimated box (its handle and text): left, top, right, bottom."""
    boxes = []
    for text in group(root, "legend").iter(f"{SVG}text"):
        x, y = float(text.get("x")), float(text.get("y"))
        boxes.append((x - curve_svg.HANDLE - 6, y - curve_svg.LEGEND_FONT,
                      x + curve_svg.text_width(text.text, curve_svg.LEGEND_FONT), y + 3))
    return boxes


def test_the_error_curve_legend_is_below_the_plot_and_its_labels():
    root = curve(plan({"LL-PF05": 0.62}) + [fault_entry("F1"), fault_entry("F2")])
    frame = [r for r in group(root, "legend").iter(f"{SVG}rect")][0]
    below = max(float(t.get("y")) for t in root.iter(f"{SVG}text") if t.text in ("current, % of TA", "10"))
    assert float(frame.get("y")) > below > area(root)[3]  # below the data, the tick labels and the axis label
    assert all(top > below for _, top, _, _ in legend_boxes(root))


def test_a_long_legend_does_not_collide_or_leave_the_chart():
    entries = plan({"LL-PF1": 0.5, "FL-PF05": None, "MAX-PF08C": None})
    entries[0]["verdict"] = "FAIL"
    entries += [load_entry(f"EXTRA-POINT-{k}", 30.0, "PF 1.0", None, 0.2) for k in range(7)]
    entries += [fault_entry("A-FAULTED-POINT-WITH-A-VERY-LONG-IDENTIFIER-THAT-NEEDS-THE-WHOLE-WIDTH-OF-THE-CHART")]
    root = curve(entries)
    boxes = legend_boxes(root)
    assert len(boxes) == len(legend_texts(root)) == 3 + 2 + 1 + 2 + 7 + 1
    assert not [(a, b) for a, b in itertools.combinations(boxes, 2)
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]]
    width = float(root.get("width"))
    assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}"
    assert all(0 <= left and right <= width and bottom <= float(root.get("height")) for left, _, right, bottom in boxes)
    short = legend_boxes(curve(plan({"FL-PF05": None})))
    assert len({left for left, *_ in short}) == 2  # two columns where they fit
    assert not [(a, b) for a, b in itertools.combinations(short, 2)
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]]


def test_the_spectrum_legend_is_outside_the_data_area():
    figure = drawn(plots.harmonic_spectrum_figure(harmonic_entries()))
    [legend] = figure.legends
    assert not boxes_overlap(legend.get_window_extent(), figure.axes[0].get_window_extent())


def test_a_tick_at_every_current_and_no_two_labels_overlap():
    currents = (0.3, 0.45, 0.6, 1.5, 3.0, 30.0, 31.5, 33.0, 200.0)
    root = curve([load_entry(f"P{k}", amps, "PF 1.0", 0.05, 0.2) for k, amps in enumerate(currents)])
    pct = [100 * a / TA for a in currents]
    xs = ticks(root, "x")
    left, _, right, _ = area(root)
    # on a log axis spanning X_MARGIN beyond the lowest and highest current
    span = math.log(pct[-1] * curve_svg.X_MARGIN) - math.log(pct[0] / curve_svg.X_MARGIN)
    assert xs == pytest.approx([left + (right - left) * (math.log(c) - math.log(pct[0] / curve_svg.X_MARGIN)) / span
                                for c in pct], abs=0.01)
    labels = list(group(root, "x-ticks").iter(f"{SVG}text"))
    extents = [(float(t.get("x")) - curve_svg.text_width(t.text, curve_svg.FONT) / 2,
                float(t.get("x")) + curve_svg.text_width(t.text, curve_svg.FONT) / 2) for t in labels]
    assert all(a_right + curve_svg.TICK_GAP <= b_left for (_, a_right), (b_left, _) in zip(extents, extents[1:]))
    texts = [t.text for t in labels]
    assert texts[0] == "1" and "100" in texts and "666.7" in texts and len(texts) < len(currents)  # thinned
    assert all(float(t.get("x")) in [pytest.approx(x, abs=0.01) for x in xs] for t in labels)  # each under its tick
    assert {t.text for t in labels} <= {f"{c:.4g}" for c in pct}


def test_the_error_curve_svg_is_the_same_for_the_same_data_and_carries_the_marks():
    entries = plan({"MAX-PF1": -0.25})
    svg = plots.error_curve_svg(entries, TA)
    points = tuple(plots.curve_points(entries, TA))
    again = curve_svg.draw_error_curve(points)
    assert again == svg and again is not curve_svg.draw_error_curve(points)  # drawn anew, the same bytes
    assert svg.startswith("<svg") and "dc:date" not in svg
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg" and root.get("font-family") == "sans-serif"
    assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}"
    assert group(root, "outside-limit") is not None and group(root, "legend") is not None
    assert "outside limit" in legend_texts(root)
    assert [t.text for t in root.iter(f"{SVG}text") if t.text.startswith(("Registration", "current", "error"))] == [
        "Registration error with U (k=2) and the limit at each point", "current, % of TA", "error, %"]
    assert not re.search(r"\d\.\d{3,}", svg.replace("0.5 lag", ""))  # coordinates with two decimals, no float noise


def test_text_from_the_record_is_escaped():
    odd = '<b>"&</b>'
    root = curve(plan() + [load_entry(odd, 30.0, "PF 1.0", None, 0.2)])
    label = f"not measured: {odd} (FAIL)"
    assert label in legend_texts(root) and group(root, f"not-measured-{odd}").find(f"{SVG}title").text == label


def test_the_error_range_holds_every_value_with_its_u_and_every_limit():
    entries = plan({"MAX-PF1": 0.15})
    entries[2] = load_entry("MAX-PF1", 200.0, "PF 1.0", 0.15, 0.2, u=0.5)  # U reaching well beyond the limit
    root = curve(entries)
    axes = DataAxes(root, 10.0, 2000 / 3)
    _, top, _, bottom = area(root)
    [bars] = [b for b in group(root, "series-PF 1.0").iter(f"{SVG}path") if b.get("class") == "u"]
    ys = [float(y) for y in re.findall(r"[MV][-\d.]+,([-\d.]+)|V([-\d.]+)", bars.get("d")) for y in y if y]
    assert all(top <= y <= bottom for y in ys)
    assert min(map(axes.value, ys)) == pytest.approx(0.15 - 0.5, abs=1e-3)  # the bar spans value ± U
    assert max(map(axes.value, ys)) == pytest.approx(0.15 + 0.5, abs=1e-3)
    assert axes.value(bottom) < -0.35 and axes.value(top) > 0.65
    limited = curve(plan({"LL-PF1": 0.0}))  # errors well inside: the limit lines still fit
    lowest = DataAxes(limited, 10.0, 2000 / 3)
    assert lowest.value(area(limited)[3]) < -0.3 and lowest.value(area(limited)[1]) > 0.3


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
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
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


def test_drawing_error_curves_does_not_import_matplotlib():
    """matplotlib costs half a second to import: only a run with a harmonic chart pays for it."""
    program = """
import sys
from bench.records import documents, plots
from tests.test_plots import TA, plan
assert plots.error_curve_svgs([(plan(), TA)])[0] and plots.harmonic_spectrum_svg(plan()) is None
print('matplotlib' in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


def test_a_run_that_draws_a_spectrum_loads_the_chart_library_before_it_measures(monkeypatch):
    """Half a second spent at the bench's opening, not after the last point; and a missing library
    refuses the run in one line then, rather than after hours of measurement."""
    program = """
import sys
from types import SimpleNamespace
from bench.pytest_plugin import start_checks
points = [SimpleNamespace(family="load_performance"), SimpleNamespace(family="harmonics")]
start_checks.load_chart_library(points[:1], {"accuracy"})  # no distortion point
start_checks.load_chart_library(points, {"audit"})  # an audit alone draws no certificate
print('matplotlib' in sys.modules)
start_checks.load_chart_library(points, {"accuracy", "audit"})
print('matplotlib.figure' in sys.modules, 'matplotlib.backends.backend_svg' in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "True", "True"]
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_svg", None)  # as if not installed
    with pytest.raises(pytest.exit.Exception, match="bench cannot start: the certificates' spectrum chart cannot "
                                                    "be drawn: .*matplotlib.backends.backend_svg"):
        start_checks.load_chart_library([SimpleNamespace(family="harmonics")], {"accuracy"})
