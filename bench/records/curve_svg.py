"""A meter's error curve as SVG text, written directly: a curve costs a fraction of a millisecond
where matplotlib took 0.15 s (and half a second to import), so a board's curves need no workers.

The curve must not hide what the certificate's table says: every planned point is on it or listed
in its legend as not measured, a point outside its limit or without a PASS looks different from a
passing one, and the legend sits below the data so it can never cover a point. The same points
give the same bytes (fixed float formatting, no date), so a certificate re-renders byte for byte.
Its parts carry ids readers and tests find them by: ``series-<PF>``, ``limit-<k>`` and
``limit-<k>-low``, ``outside-limit``, ``not-pass``, ``not-measured-<point>``, ``legend``,
``plot-area``, ``x-ticks``, ``y-ticks``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from bench.records.curve_points import CurvePoint

# No red or orange among the series colours: red marks a point outside its limit or not PASS.
# The keys are ``pf_label``'s labels; the markers are those of ``_MARKERS``.
PF_STYLE = {"PF 1.0": ("#1f77b4", "o"), "PF 0.5 lag": ("#2ca02c", "s"), "PF 0.8 lead": ("#9467bd", "^"),
            "PF not recorded": ("#666666", "o")}
SPARE_STYLES = (("#8c564b", "D"), ("#17becf", "v"), ("#bcbd22", "P"), ("#e377c2", "h"), ("#7f7f7f", "<"))
RED, DARK_RED = "#d00000", "#600000"  # a point outside its limit (filled X) or not PASS (hollow diamond)
SHARED_LIMIT = "#595959"  # a limit line that applies to several PFs
DASHES = ("6,3", "1.5,2.5", "6,2.5,1.5,2.5")  # the limit lines' styles, in turn
X_MARGIN = 1.6  # the x axis reaches this factor beyond the lowest and highest current (log axis)

# Layout, in SVG user units (the certificate shows the chart 150 mm wide at most).
WIDTH = 560.0
LEFT, RIGHT, TOP, BOTTOM = 58.0, 544.0, 30.0, 260.0  # the plot area
FONT, TITLE_FONT, LEGEND_FONT = 11.0, 13.0, 10.5
# A label's width is estimated, not measured (no font is loaded, so the bytes do not depend on
# the machine): characters x font size x CHAR_EM. DejaVu Sans's digits are 0.636 em wide, most
# of its letters and the decimal point narrower, so this overestimates the tick labels a little.
CHAR_EM = 0.64
TICK_GAP = 5.0  # least space between two current labels before one is left blank
ROW = 15.0  # a legend row
HANDLE = 24.0  # a legend entry's line or marker, before its text
STACK = 0.07 * (BOTTOM - TOP)  # not-measured markers sharing a current, one above the other
GRID, TICK = 'stroke="#d9d9d9" stroke-width="0.6"', 'stroke="#333333" stroke-width="0.8"'

_CROSS = ((-0.33, -1), (0.33, -1), (0.33, -0.33), (1, -0.33), (1, 0.33), (0.33, 0.33), (0.33, 1), (-0.33, 1),
          (-0.33, 0.33), (-1, 0.33), (-1, -0.33), (-0.33, -0.33))
# Unit outlines of the markers (y down); "o" is a circle.
_MARKERS: dict[str, tuple[tuple[float, float], ...]] = {
    "s": ((-0.85, -0.85), (0.85, -0.85), (0.85, 0.85), (-0.85, 0.85)),
    "^": ((0, -1), (0.95, 0.75), (-0.95, 0.75)),
    "v": ((0, 1), (0.95, -0.75), (-0.95, -0.75)),
    "<": ((-1, 0), (0.75, -0.95), (0.75, 0.95)),
    "D": ((0, -1), (0.8, 0), (0, 1), (-0.8, 0)),
    "h": ((0, -1), (0.87, -0.5), (0.87, 0.5), (0, 1), (-0.87, 0.5), (-0.87, -0.5)),
    "P": _CROSS,
    "X": tuple(((x - y) / math.sqrt(2), (x + y) / math.sqrt(2)) for x, y in _CROSS),
}


def text_width(text: str, size: float) -> float:
    """The estimated width of ``text`` at font ``size`` (see CHAR_EM)."""
    return len(text) * size * CHAR_EM


def _n(value: float) -> str:
    """A coordinate, always with two decimals (never "-0.00")."""
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text


def _attr(text: str) -> str:
    return escape(text, {'"': "&quot;"})


@dataclass(frozen=True)
class _Axes:
    """The plot area's data ranges: current in % of TA on a log axis, error in %."""

    x_low: float
    x_high: float
    y_low: float
    y_high: float

    def x(self, current: float) -> float:
        return LEFT + (RIGHT - LEFT) * math.log(current / self.x_low) / math.log(self.x_high / self.x_low)

    def y(self, value: float) -> float:
        return BOTTOM - (BOTTOM - TOP) * (value - self.y_low) / (self.y_high - self.y_low)


@dataclass(frozen=True)
class _Key:
    """A legend entry: its label and how its handle is drawn (a line, a marker, or both)."""

    label: str
    stroke: str
    fill: str
    marker: str | None
    dash: str | None  # None: no line; "": a solid one


def _styles(labels: list[str]) -> dict[str, tuple[str, str]]:
    spare = iter(SPARE_STYLES)
    return {label: PF_STYLE[label] if label in PF_STYLE else next(spare, ("#000000", "o")) for label in labels}


def _limit_label(limits: list[float], pfs: list[str]) -> str:
    low, high = min(limits), max(limits)
    span = f"±{low:g} %" if low == high else f"±{low:g} to ±{high:g} %"
    return f"limit {span} ({', '.join(pfs)})"


def _limit_groups(series: dict[str, list[CurvePoint]]) -> list[tuple[dict[float, float], list[str]]]:
    """The limit at each current, by PF: PFs whose limits agree at every current they share get one
    line, so no line hides under another of a different meaning."""
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
    return groups


def _plotted(points: Sequence[CurvePoint]) -> list[tuple[float, float, float]]:
    """(current, value, U) of each point that has both a current and a value, in the same order."""
    return [(p.current_pct, p.value_pct, p.u_pct) for p in points
            if p.current_pct is not None and p.value_pct is not None]


def _marker(shape: str, x: float, y: float, size: float) -> str:
    """A marker centred on (x, y), ``size`` from its centre to its outline."""
    if shape == "o":
        r = _n(size)
        outline = f"M-{r},0A{r},{r} 0 1,0 {r},0A{r},{r} 0 1,0 -{r},0Z"
    else:
        outline = "M" + "L".join(f"{_n(u * size)},{_n(v * size)}" for u, v in _MARKERS[shape]) + "Z"
    return f'<path class="marker" transform="translate({_n(x)},{_n(y)})" d="{outline}"/>'


def _nice_step(span: float) -> float:
    """A tick step of 1, 2, 2.5 or 5 times a power of ten giving about six ticks over ``span``."""
    raw = span / 6
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))


def _y_axis(points: Sequence[CurvePoint], groups: list[tuple[dict[float, float], list[str]]]) -> tuple[float, float]:
    """A range that holds every value ± U, every limit line and zero, with a margin."""
    ends = [0.0] + [v for _, y, u in _plotted(points) for v in (y - u, y + u)]
    ends += [s * limit for steps, _ in groups for limit in steps.values() for s in (1, -1)]
    low, high = min(ends), max(ends)
    if high == low:
        low, high = low - 1, high + 1
    margin = 0.05 * (high - low)
    return low - margin, high + margin


def _y_ticks(axes: _Axes) -> list[str]:
    step = _nice_step(axes.y_high - axes.y_low)
    mantissa = step / 10.0 ** math.floor(math.log10(step) + 1e-9)
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) + (1 if abs(mantissa - 2.5) < 1e-9 else 0)
    parts = []
    for k in range(math.ceil(axes.y_low / step - 1e-9), math.floor(axes.y_high / step + 1e-9) + 1):
        y = _n(axes.y(k * step))
        label = f"{k * step:.{decimals}f}".replace("-", "−") if k else "0"
        parts.append(f'<line x1="{_n(LEFT)}" y1="{y}" x2="{_n(RIGHT)}" y2="{y}" {GRID}/>'
                     f'<line class="tick" x1="{_n(LEFT - 4)}" y1="{y}" x2="{_n(LEFT)}" y2="{y}" {TICK}/>'
                     f'<text x="{_n(LEFT - 6)}" y="{_n(float(y) + FONT * 0.35)}" text-anchor="end">{label}</text>')
    return parts


def _x_ticks(axes: _Axes, currents: list[float]) -> list[str]:
    """A tick at every current; a label left blank where it would run into the previous one."""
    parts, right = [], -math.inf
    for current in currents:
        x, label = axes.x(current), f"{current:.4g}"
        parts.append(f'<line x1="{_n(x)}" y1="{_n(TOP)}" x2="{_n(x)}" y2="{_n(BOTTOM)}" {GRID}/>'
                     f'<line class="tick" x1="{_n(x)}" y1="{_n(BOTTOM)}" x2="{_n(x)}" y2="{_n(BOTTOM + 4)}" {TICK}/>')
        half = text_width(label, FONT) / 2
        if x - half >= right + TICK_GAP:
            parts.append(f'<text x="{_n(x)}" y="{_n(BOTTOM + 6 + FONT)}" text-anchor="middle">{label}</text>')
            right = x + half
    return parts


def _steps(axes: _Axes, steps: dict[float, float], sign: float) -> str:
    """The limit as steps centred (on the log axis) on each current, changing midway to the next."""
    x = sorted(steps)
    edges = [x[0] / X_MARGIN] + [math.sqrt(a * b) for a, b in zip(x, x[1:])] + [x[-1] * X_MARGIN]
    corners = [(edges[i + k], sign * steps[c]) for i, c in enumerate(x) for k in (0, 1)]
    return "<polyline points=\"" + " ".join(f"{_n(axes.x(e))},{_n(axes.y(v))}" for e, v in corners) + "\"/>"


def _group(gid: str, label: str, style: str, body: list[str]) -> str:
    return f'<g id="{_attr(gid)}" {style}><title>{escape(label)}</title>{"".join(body)}</g>'


def _series(axes: _Axes, pf: str, color: str, marker: str, measured: list[tuple[float, float, float]]) -> str:
    """Markers joined in current order, with ±U bars and their caps."""
    xy = [(axes.x(c), axes.y(v)) for c, v, _ in measured]
    bars = "".join(f"M{_n(x)},{_n(axes.y(v - u))}V{_n(axes.y(v + u))}"
                   f"M{_n(x - 4)},{_n(axes.y(v - u))}H{_n(x + 4)}M{_n(x - 4)},{_n(axes.y(v + u))}H{_n(x + 4)}"
                   for (x, _), (_, v, u) in zip(xy, measured) if u > 0)
    body = ['<polyline fill="none" stroke-width="1.8" points="' + " ".join(f"{_n(x)},{_n(y)}" for x, y in xy)
            + '"/>']
    if bars:
        body.append(f'<path class="u" stroke-width="1.2" d="{bars}"/>')
    body += [_marker(marker, x, y, 4.0) for x, y in xy]
    return _group(f"series-{pf}", pf, f'fill="{color}" stroke="{color}"', body)


def _not_measured(axes: _Axes, points: Sequence[CurvePoint],
                  styles: dict[str, tuple[str, str]]) -> tuple[list[str], list[_Key]]:
    """Hollow markers on the current axis line (stacked upwards where several share a current) at
    each point that has no value, each listed in the legend with its verdict; a point without a
    current is listed only."""
    parts, keys = [], []
    stacked: dict[float, int] = {}
    for p in points:
        if p.value_pct is not None and p.current_pct is not None:
            continue
        color, marker = styles[p.pf]
        label = f"not measured: {p.point} ({p.verdict})" if p.value_pct is None else \
            f"not plotted (no current recorded): {p.point} ({p.verdict})"
        keys.append(_Key(label, color, "none", marker, None))
        if p.current_pct is not None:
            row = stacked[p.current_pct] = stacked.get(p.current_pct, -1) + 1
            parts.append(_group(f"not-measured-{p.point}", label, f'fill="none" stroke="{color}" stroke-width="1.5"',
                                [_marker(marker, axes.x(p.current_pct), BOTTOM - STACK * row, 5.0)]))
    return parts, keys


def _legend(keys: list[_Key], top: float) -> tuple[str, float, float]:
    """The legend below the plot, in two columns (one where two are too wide for the chart);
    returns it, its bottom and the width the chart needs to hold it (wider only for an entry too
    long for the chart on its own)."""
    widths = [HANDLE + 6 + text_width(k.label, LEGEND_FONT) + 10 for k in keys]
    for columns in (2, 1):
        rows = math.ceil(len(keys) / columns)
        column_widths = [max(widths[c * rows:(c + 1) * rows]) for c in range(math.ceil(len(keys) / rows))]
        total = sum(column_widths) + 6
        if total + 16 <= WIDTH:
            break
    width = max(WIDTH, total + 16)
    left = (width - total) / 2
    parts = [f'<rect x="{_n(left)}" y="{_n(top)}" width="{_n(total)}" height="{_n(rows * ROW + 6)}" fill="white" '
             f'stroke="#cccccc"/>']
    for i, key in enumerate(keys):
        column, row = divmod(i, rows)
        x = left + 6 + sum(column_widths[:column])
        y = top + 3 + ROW * row + ROW / 2
        style = f'fill="{key.fill}" stroke="{key.stroke}"'
        if key.dash is not None:
            dash = f' stroke-dasharray="{key.dash}"' if key.dash else ""
            parts.append(f'<line x1="{_n(x)}" y1="{_n(y)}" x2="{_n(x + HANDLE)}" y2="{_n(y)}" stroke="{key.stroke}" '
                         f'stroke-width="1.5"{dash}/>')
        if key.marker is not None:
            parts.append(f'<g {style} stroke-width="1.2">{_marker(key.marker, x + HANDLE / 2, y, 4.0)}</g>')
        parts.append(f'<text x="{_n(x + HANDLE + 6)}" y="{_n(y + LEGEND_FONT * 0.35)}">{escape(key.label)}</text>')
    return f'<g id="legend" font-size="{LEGEND_FONT:g}">{"".join(parts)}</g>', top + rows * ROW + 6, width


def draw_error_curve(points: tuple[CurvePoint, ...]) -> str | None:
    """Error vs current (% of TA, log scale) at each PF, with ±U bars and the limit lines; points
    outside their limit or not PASS marked, points not measured listed. None without load points."""
    if not points:
        return None
    series: dict[str, list[CurvePoint]] = {}
    for p in points:
        series.setdefault(p.pf, []).append(p)
    styles = _styles(list(series))
    groups = _limit_groups(series)
    currents = sorted({p.current_pct for p in points if p.current_pct is not None})
    x_low, x_high = (currents[0] / X_MARGIN, currents[-1] * X_MARGIN) if currents else (1.0, 1000.0)
    axes = _Axes(x_low, x_high, *_y_axis(points, groups))
    limits, limit_keys = [], []
    for k, (steps, pfs) in enumerate(groups):
        color = styles[pfs[0]][0] if len(pfs) == 1 else SHARED_LIMIT
        label, dash = _limit_label([steps[c] for c in sorted(steps)], pfs), DASHES[k % len(DASHES)]
        style = f'fill="none" stroke="{color}" stroke-width="1.2" stroke-dasharray="{dash}"'
        limits += [_group(f"limit-{k}", label, style, [_steps(axes, steps, 1)]),
                   _group(f"limit-{k}-low", label, style, [_steps(axes, steps, -1)])]
        limit_keys.append(_Key(label, color, "none", None, dash))
    data, keys = limits, []
    for pf, members in series.items():
        color, marker = styles[pf]
        measured = sorted(_plotted(members), key=lambda cvu: cvu[0])
        if measured:
            data.append(_series(axes, pf, color, marker, measured))
            keys.append(_Key(pf, color, color, marker, ""))
    keys += limit_keys
    outside = _plotted([p for p in points if p.outside_limit])
    if outside:
        data.append(_group("outside-limit", "outside limit", f'fill="{RED}" stroke="{DARK_RED}"',
                           [_marker("X", axes.x(c), axes.y(v), 6.5) for c, v, _ in outside]))
        keys.append(_Key("outside limit", DARK_RED, RED, "X", None))
    not_pass = [p for p in points if p.not_pass and not p.outside_limit and p.value_pct is not None
                and p.current_pct is not None]
    if not_pass:
        label = "within limit, verdict " + "/".join(sorted({p.verdict for p in not_pass}))
        data.append(_group("not-pass", label, f'fill="none" stroke="{RED}" stroke-width="1.5"',
                           [_marker("D", axes.x(c), axes.y(v), 6.5) for c, v, _ in _plotted(not_pass)]))
        keys.append(_Key(label, RED, "none", "D", None))
    missing, missing_keys = _not_measured(axes, points, styles)
    keys += missing_keys
    zero = _n(axes.y(0.0))
    middle = (LEFT + RIGHT) / 2
    legend, bottom, width = _legend(keys, BOTTOM + 46)
    height = _n(bottom + 6)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{_n(width)}" height="{height}" '
            f'viewBox="0 0 {_n(width)} {height}" font-family="sans-serif" font-size="{FONT:g}">'
            f'<rect width="{_n(width)}" height="{height}" fill="white"/>'
            f'<text x="{_n(middle)}" y="{_n(TOP - 11)}" font-size="{TITLE_FONT:g}" text-anchor="middle">'
            f'Registration error with U (k=2) and the limit at each point</text>'
            f'<g id="y-ticks">{"".join(_y_ticks(axes))}</g><g id="x-ticks">{"".join(_x_ticks(axes, currents))}</g>'
            f'<line x1="{_n(LEFT)}" y1="{zero}" x2="{_n(RIGHT)}" y2="{zero}" stroke="grey" stroke-width="0.7"/>'
            f'{"".join(data)}{"".join(missing)}'
            f'<rect id="plot-area" x="{_n(LEFT)}" y="{_n(TOP)}" width="{_n(RIGHT - LEFT)}" '
            f'height="{_n(BOTTOM - TOP)}" fill="none" stroke="#333333" stroke-width="0.8"/>'
            f'<text x="{_n(middle)}" y="{_n(BOTTOM + 6 + FONT + 18)}" text-anchor="middle">current, % of TA</text>'
            f'<text transform="translate(16,{_n((TOP + BOTTOM) / 2)}) rotate(-90)" text-anchor="middle">error, %</text>'
            f'{legend}</svg>')
