"""Certificate plots as SVG (matplotlib): error curves with limit lines, harmonic spectra.

The SVG text is deterministic for the same data (fixed id salt, no date), so a certificate can be
re-rendered from its record and compared byte for byte. Each plot is built as a Figure first
(``*_figure``) so what it shows can be checked before it is serialised.

A plot on a certificate must not hide what the table says: every planned point is on it or listed
in its legend as not measured, a point outside its limit or without a PASS looks different from a
passing one, and the legend sits outside the data so it can never cover a point.
"""
from __future__ import annotations

import io
import json
import math
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import matplotlib

matplotlib.use("Agg")
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

from bench.metrology.stimulus import pf_label  # noqa: E402
from bench.procedures.results import Result  # noqa: E402

matplotlib.rcParams.update({"svg.hashsalt": "meter-bench", "svg.fonttype": "none", "font.size": 9})
# No red or orange among the series colours: red marks a point outside its limit or not PASS.
# The keys are ``pf_label``'s labels.
PF_STYLE = {"PF 1.0": ("tab:blue", "o"), "PF 0.5 lag": ("tab:green", "s"), "PF 0.8 lead": ("tab:purple", "^"),
            "PF not recorded": ("0.4", "o")}
SPARE_STYLES = (("tab:brown", "D"), ("tab:cyan", "v"), ("tab:olive", "P"), ("tab:pink", "h"), ("tab:gray", "<"))
# Keyword arguments of Axes.plot (Line2D properties), of several types.
OUTSIDE: dict[str, Any] = {"marker": "X", "color": "#d00000", "markeredgecolor": "#600000", "markersize": 10,
                           "linestyle": "none"}
NOT_PASS: dict[str, Any] = {"marker": "D", "color": "#d00000", "markerfacecolor": "none", "markeredgewidth": 1.5,
                            "markersize": 10, "linestyle": "none"}
SHOWN_DECIMALS = 4  # a result's cells show its value and U to this many decimals of a percent
X_MARGIN = 1.6  # the x axis reaches this factor beyond the lowest and highest current (log axis)
TICK_GAP_PT = 4.0  # least space between two current labels before one is left blank


@dataclass(frozen=True)
class CurvePoint:
    """One load-performance entry as the error curve needs it (current in % of TA)."""

    point: str
    pf: str
    current_pct: float | None  # None: the entry does not say which current (a point that faulted)
    value_pct: float | None  # None: not measured
    u_pct: float
    limit_pct: float | None
    verdict: str

    @property
    def outside_limit(self) -> bool:
        return self.value_pct is not None and self.limit_pct is not None and abs(self.value_pct) > self.limit_pct

    @property
    def not_pass(self) -> bool:
        return self.verdict != "PASS"


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def curve_points(results: list[dict[str, Any]], test_amperes: float) -> list[CurvePoint]:
    """Every load-performance entry, measured or not, in the record's order."""
    points = []
    for entry in results:
        if entry["family"] != "load_performance":
            continue
        evidence = entry["evidence"]
        stimulus = evidence.get("stimulus") or {}
        current = _finite(stimulus.get("current_a"))
        value = _finite(entry["value_pct"])
        points.append(CurvePoint(
            point=entry["point"],
            pf=pf_label(stimulus["phase_deg"]) if "phase_deg" in stimulus else "PF not recorded",
            current_pct=100 * current / test_amperes if current and current > 0 else None,
            value_pct=value,
            u_pct=(_finite(entry["u_pct"]) or 0.0) if value is not None else 0.0,
            limit_pct=_finite(evidence.get("limit_pct")),
            verdict=entry["verdict"]))
    return points


def _styles(labels: list[str]) -> dict[str, tuple[str, str]]:
    spare = iter(SPARE_STYLES)
    return {label: PF_STYLE[label] if label in PF_STYLE else next(spare, ("black", "o")) for label in labels}


def _limit_label(limits: list[float], pfs: list[str]) -> str:
    low, high = min(limits), max(limits)
    span = f"±{low:g} %" if low == high else f"±{low:g} to ±{high:g} %"
    return f"limit {span} ({', '.join(pfs)})"


def _draw_limits(axes: Any, series: dict[str, list[CurvePoint]], styles: dict[str, tuple[str, str]]) -> None:
    """Limit lines as steps centred (on the log axis) on each current, labelled with the limit and
    the PFs it applies to: PFs whose limits agree at every current they share get one line, so no
    line hides under another of a different meaning."""
    groups: list[tuple[dict[float, float], list[str]]] = []
    for pf, points in series.items():
        steps: dict[float, float] = {}
        for p in points:
            if p.current_pct is not None and p.limit_pct is not None:
                steps[p.current_pct] = max(p.limit_pct, steps.get(p.current_pct, 0.0))
        if not steps:
            continue
        same = next((g for g in groups if steps.keys() & g[0].keys()
                     and all(g[0][c] == v for c, v in steps.items() if c in g[0])), None)
        if same:
            same[0].update(steps)
            same[1].append(pf)
        else:
            groups.append((steps, [pf]))
    for k, (steps, pfs) in enumerate(groups):
        x = sorted(steps)
        limits = [steps[c] for c in x]
        edges = [x[0] / X_MARGIN] + [math.sqrt(a * b) for a, b in zip(x, x[1:])] + [x[-1] * X_MARGIN]
        color = styles[pfs[0]][0] if len(pfs) == 1 else "0.35"
        style = ("--", ":", "-.")[k % 3]
        label = _limit_label(limits, pfs)
        axes.stairs(limits, edges, baseline=None, color=color, linestyle=style, linewidth=1.0, label=label,
                    gid=f"limit-{k}")
        axes.stairs([-v for v in limits], edges, baseline=None, color=color, linestyle=style, linewidth=1.0,
                    gid=f"limit-{k}-low")


def _thin_tick_labels(figure: Figure, axes: Any, currents: list[float]) -> None:
    """A tick at every current; a label left blank where it would run into the previous one."""
    labels = [f"{c:.4g}" for c in currents]
    axes.set_xticks(currents, labels)
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw_without_rendering()
    kept, right = [], -math.inf
    for text, label in zip(axes.get_xticklabels(), labels):
        box = text.get_window_extent(renderer)
        if box.x0 >= right + TICK_GAP_PT * figure.dpi / 72:
            kept.append(label)
            right = box.x1
        else:
            kept.append("")
    axes.set_xticks(currents, kept)


def error_curve_figure(results: list[dict[str, Any]], test_amperes: float) -> Figure | None:
    """Error vs current (% of TA, log scale) at each PF, with ±U bars and the limit lines; points
    outside their limit or not PASS marked, points not measured listed. None without load points."""
    return _curve_figure(tuple(curve_points(results, test_amperes)))


def _curve_figure(points: tuple[CurvePoint, ...]) -> Figure | None:
    if not points:
        return None
    series: dict[str, list[CurvePoint]] = {}
    for p in points:
        series.setdefault(p.pf, []).append(p)
    styles = _styles(list(series))
    figure = Figure(figsize=(6.2, 3.4), layout="constrained")
    axes = figure.add_subplot()
    axes.set_xscale("log")
    handles: list[Any] = []
    for pf, members in series.items():
        color, marker = styles[pf]
        measured = sorted(_plotted(members), key=lambda xyu: xyu[0])
        if measured:
            handles.append(axes.errorbar([x for x, _, _ in measured], [y for _, y, _ in measured],
                                         yerr=[u for _, _, u in measured], color=color, marker=marker, capsize=3,
                                         label=pf, gid=f"series-{pf}"))
    _draw_limits(axes, series, styles)
    handles.extend(h for h in axes.patches if _in_legend(h.get_label()))
    outside = _plotted([p for p in points if p.outside_limit])
    if outside:
        handles.extend(axes.plot([x for x, _, _ in outside], [y for _, y, _ in outside], zorder=5,
                                 label="outside limit", gid="outside-limit", **OUTSIDE))
    not_pass = [p for p in points if p.not_pass and not p.outside_limit and p.value_pct is not None
                and p.current_pct is not None]
    if not_pass:
        verdicts = "/".join(sorted({p.verdict for p in not_pass}))
        plotted = _plotted(not_pass)
        handles.extend(axes.plot([x for x, _, _ in plotted], [y for _, y, _ in plotted], zorder=5,
                                 label=f"within limit, verdict {verdicts}", gid="not-pass", **NOT_PASS))
    handles.extend(_not_measured(axes, points, styles))
    axes.axhline(0, color="grey", linewidth=0.5)
    currents = sorted({p.current_pct for p in points if p.current_pct is not None})
    if currents:
        axes.set_xlim(currents[0] / X_MARGIN, currents[-1] * X_MARGIN)
    axes.minorticks_off()
    axes.set_xlabel("current, % of TA")
    axes.set_ylabel("error, %")
    axes.set_title("Registration error with U (k=2) and the limit at each point")
    axes.grid(True, which="major", linewidth=0.3)
    legend = figure.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8)
    legend.set_gid("legend")
    _thin_tick_labels(figure, axes, currents)
    return figure


def _plotted(points: Sequence[CurvePoint]) -> list[tuple[float, float, float]]:
    """(current, value, U) of each point that has both a current and a value, in the same order."""
    return [(p.current_pct, p.value_pct, p.u_pct) for p in points
            if p.current_pct is not None and p.value_pct is not None]


def _in_legend(label: object) -> bool:
    """Matplotlib leaves an artist out of the legend when its label is empty or starts with "_"."""
    return isinstance(label, str) and bool(label) and not label.startswith("_")


def _not_measured(axes: Any, points: Sequence[CurvePoint], styles: dict[str, tuple[str, str]]) -> list[Any]:
    """Hollow markers on the current axis line (stacked upwards where several share a current) at
    each point that has no value, each listed in the legend with its verdict; a point without a
    current is listed only."""
    transform = blended_transform_factory(axes.transData, axes.transAxes)
    handles: list[Any] = []
    stacked: dict[float, int] = {}
    for p in points:
        if p.value_pct is not None and p.current_pct is not None:
            continue
        color, marker = styles[p.pf]
        label = f"not measured: {p.point} ({p.verdict})" if p.value_pct is None else \
            f"not plotted (no current recorded): {p.point} ({p.verdict})"
        if p.current_pct is None:
            handles.append(Line2D([], [], color=color, marker=marker, markerfacecolor="none", linestyle="none",
                                  label=label))
            continue
        row = stacked[p.current_pct] = stacked.get(p.current_pct, -1) + 1
        handles.extend(axes.plot([p.current_pct], [0.07 * row], transform=transform,
                                 color=color, marker=marker, markerfacecolor="none", markersize=8, linestyle="none",
                                 clip_on=False, label=label, gid=f"not-measured-{p.point}"))
    return handles


def applied_profiles(results: list[dict[str, Any]]) -> dict[str, tuple[list[str], dict[str, Any]]]:
    """Each harmonic profile the distortion points applied, with the points that applied it: all
    the spectrum chart draws (the same for every meter of a run)."""
    profiles: dict[str, tuple[list[str], dict[str, Any]]] = {}
    for entry in results:
        evidence = entry["evidence"]
        stimulus = evidence.get("stimulus") or evidence.get("measured", {}).get("stimulus") or {}
        if entry["family"] == "harmonics" and stimulus.get("harmonics"):
            profile = stimulus["harmonics"]
            profiles.setdefault(profile["name"], ([], profile))[0].append(entry["point"])
    return profiles


def harmonic_spectrum_figure(results: list[dict[str, Any]]) -> Figure | None:
    """Programmed current (and voltage) harmonics of each distortion point, % of the fundamental:
    at each order the bars present there form a group centred on the order."""
    return _spectrum_figure(applied_profiles(results))


def _spectrum_figure(profiles: dict[str, tuple[list[str], dict[str, Any]]]) -> Figure | None:
    series = [(f"{', '.join(ids)} {name.replace('_', ' ')}: {quantity}", k, quantity,
               {h["order"]: h["pct"] for h in profile[quantity]})
              for k, (name, (ids, profile)) in enumerate(profiles.items())
              for quantity in ("current", "voltage") if profile[quantity]]
    if not series:
        return None
    orders = sorted({order for *_, bars in series for order in bars})
    groups = {order: [s for s in series if order in s[3]] for order in orders}
    width = 0.8 / max(len(members) for members in groups.values())
    figure = Figure(figsize=(6.2, 3.4), layout="constrained")
    axes = figure.add_subplot()
    for label, k, quantity, bars in series:
        x = [order + (groups[order].index((label, k, quantity, bars)) - (len(groups[order]) - 1) / 2) * width
             for order in bars]
        style: dict[str, Any] = {"color": f"C{k}"} if quantity == "current" else \
            {"facecolor": "white", "edgecolor": f"C{k}", "hatch": "///"}
        axes.bar(x, list(bars.values()), width=width, label=label, gid=f"bars-{k}-{quantity}", **style)
    axes.set_xticks(orders, ["DC" if order == 0 else str(order) for order in orders])
    axes.set_xlim(orders[0] - 0.6, orders[-1] + 0.6)
    axes.set_xlabel("harmonic order")
    axes.set_ylabel("% of fundamental")
    axes.set_title("Harmonic content applied (filled: current, hatched: voltage)")
    axes.grid(True, axis="y", linewidth=0.3)
    figure.legend(loc="outside lower center", ncols=2, fontsize=8).set_gid("legend")
    return figure


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    svg = buffer.getvalue()
    return svg[svg.index("<svg"):]  # inline: no XML prolog or doctype


# Charts are drawn once per distinct input and the SVG reused: every meter of a run has the same
# harmonic chart, and drawing one costs about 0.1 s of matplotlib.
DRAWN_CHARTS_KEPT = 64


def error_curve_svg(results: list[dict[str, Any]], test_amperes: float) -> str | None:
    """The error curve of ``error_curve_figure`` as inline SVG."""
    return _curve_svg(tuple(curve_points(results, test_amperes)))


@lru_cache(maxsize=DRAWN_CHARTS_KEPT)
def _curve_svg(points: tuple[CurvePoint, ...]) -> str | None:
    return _draw_curve_svg(points)


def _draw_curve_svg(points: tuple[CurvePoint, ...]) -> str | None:
    figure = _curve_figure(points)
    return _svg(figure) if figure else None


# Drawing a curve takes about 0.17 s; a worker process costs about half a second to start (it
# imports matplotlib), so a board's curves are drawn in parallel only from this many on.
PARALLEL_FROM = 6


def _started() -> None:
    """Nothing: a worker given it imports this module (and matplotlib) to run it, and is then ready."""


class CurvePool:
    """Worker processes that draw error curves on every core, started before the curves are known
    (a run's end starts them before it builds its record), so that their start-up overlaps the
    parent's own work; ``start`` sets curves drawing while the parent does something else.

    spawn, not fork: the caller may be a pytest process running the simulated bench's threads."""

    def __init__(self, workers: int) -> None:
        self._executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        for _ in range(workers):  # a worker is spawned for each task no idle worker can take
            self._executor.submit(_started)
        self._drawing: dict[tuple[CurvePoint, ...], Future[str | None]] = {}

    @classmethod
    def for_curves(cls, count: int, cores_kept: int = 0) -> CurvePool | None:
        """A pool for up to ``count`` distinct curves, leaving ``cores_kept`` cores to the caller (a
        run that goes on measuring while they draw); None where they are to be drawn here: too few
        to pay for the workers' start-up, no core to spare, or no process to be had (a run's record
        must never be lost to its charts)."""
        workers = min((os.cpu_count() or 1) - cores_kept, count)
        if count < PARALLEL_FROM or workers < (1 if cores_kept else 2):
            return None
        try:
            return cls(workers)
        except OSError:
            return None

    def start(self, boards: list[tuple[list[dict[str, Any]], float]]) -> None:
        """Set the curves of these (results, test amperes) drawing, each distinct one once; with
        workers that could not start, nothing (``drawn`` says so)."""
        try:
            for results, amperes in boards:
                self._drawing_of(tuple(curve_points(results, amperes)))
        except BrokenProcessPool:
            pass

    def drawn(self, points: tuple[CurvePoint, ...]) -> str | None:
        """One curve; raises BrokenProcessPool when the workers could not start."""
        return self._drawing_of(points).result()

    def _drawing_of(self, points: tuple[CurvePoint, ...]) -> Future[str | None]:
        if points not in self._drawing:
            self._drawing[points] = self._executor.submit(_draw_curve_svg, points)
        return self._drawing[points]

    def __enter__(self) -> CurvePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._executor.shutdown(cancel_futures=True)


def error_curve_svgs(boards: list[tuple[list[dict[str, Any]], float]],
                     pool: CurvePool | None = None) -> list[str | None]:
    """``error_curve_svg`` of each (results, test amperes), each distinct one drawn once: in
    ``pool``'s workers (or in workers of its own when there are enough distinct ones: a 40-position
    board's end of run), else here. A process whose main module cannot be imported again (python
    reading stdin) cannot spawn workers: its curves are drawn here."""
    inputs = [tuple(curve_points(results, amperes)) for results, amperes in boards]
    if pool is None:
        own = CurvePool.for_curves(len(set(inputs)))
        if own is None:
            return [_curve_svg(points) for points in inputs]
        with own:
            return error_curve_svgs(boards, own)
    try:
        pool.start(boards)
        return [pool.drawn(points) for points in inputs]
    except BrokenProcessPool:
        return [_curve_svg(points) for points in inputs]


def harmonic_spectrum_svg(results: list[dict[str, Any]]) -> str | None:
    """The harmonic chart of ``harmonic_spectrum_figure`` as inline SVG."""
    return _spectrum_svg(json.dumps(applied_profiles(results), sort_keys=True))


@lru_cache(maxsize=DRAWN_CHARTS_KEPT)
def _spectrum_svg(profiles_json: str) -> str | None:
    figure = _spectrum_figure(json.loads(profiles_json))
    return _svg(figure) if figure else None


def result_svg(result: Result) -> str | None:
    """A small plot for one item of the session report: the value and its U against the limit band
    (None for a result without them: a count, a check, a point not measured). Drawn directly (one
    value does not need a figure library: 216 items in microseconds). A value outside its limit or
    without a PASS is a red cross, not a green dot.

    The value and U are drawn as the report's cells beside the plot show them (rounded to
    ``SHOWN_DECIMALS``), so the plot never tells a different story from its row's numbers."""
    if result.value_pct is None or result.u_pct is None or result.limit_pct is None:
        return None
    value, u = round(result.value_pct, SHOWN_DECIMALS), round(result.u_pct, SHOWN_DECIMALS)
    limit = result.limit_pct
    verdict = result.verdict.value
    span = 1.5 * max(limit, abs(value) + u) or 1.0

    def x(v: float) -> float:
        return 20 + 280 * (v + span) / (2 * span)

    ticks = "".join(f'<line x1="{x(t):.1f}" y1="38" x2="{x(t):.1f}" y2="42" stroke="#333"/>'
                    f'<text x="{x(t):.1f}" y="54" font-size="10" text-anchor="middle">{t:+.3g} %</text>'
                    for t in (-limit, 0.0, limit))
    outside = abs(value) > limit
    flagged = outside or verdict != "PASS"
    colour = "#b00000" if flagged else "#0a6b0a"
    cx = x(value)
    mark = (f'<path d="M{cx - 4:.1f},19 L{cx + 4:.1f},27 M{cx - 4:.1f},27 L{cx + 4:.1f},19" stroke="{colour}" '
            f'stroke-width="2.5"/>' if flagged else f'<circle cx="{cx:.1f}" cy="23" r="4" fill="{colour}"/>')
    title = f"{value:+.4f} % ± {u:.4f} %, limit ±{limit:g} %: {verdict}" + (" (outside limit)" if outside else "")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="320" height="60" viewBox="0 0 320 60">'
            f'<title>{title}</title>'
            f'<rect x="{x(-limit):.1f}" y="8" width="{x(limit) - x(-limit):.1f}" height="30" fill="#e6f2e6"/>'
            f'<line x1="20" y1="40" x2="300" y2="40" stroke="#333"/>{ticks}'
            f'<line x1="{x(value - u):.1f}" y1="23" x2="{x(value + u):.1f}" y2="23" stroke="{colour}" '
            f'stroke-width="2"/>{mark}</svg>')
