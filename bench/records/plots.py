"""Certificate plots as SVG: error curves (drawn directly, ``curve_svg``), harmonic spectra
(matplotlib, imported only for a spectrum: it costs half a second, so a run that will draw one
imports it as its bench opens, ``load_chart_library``), and the session report's one-value plots.

The SVG text is deterministic for the same data (no date; matplotlib's ids from a fixed salt), so
a certificate can be re-rendered from its record and compared byte for byte. A spectrum is built
as a Figure first (``harmonic_spectrum_figure``) so what it shows can be checked before it is
serialised.
"""
from __future__ import annotations

import io
import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from bench.procedures.results import Result
from bench.records.curve_points import CurvePoint, curve_points
from bench.records.curve_svg import draw_error_curve

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SHOWN_DECIMALS = 4  # a result's cells show its value and U to this many decimals of a percent


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
    import matplotlib  # here, not with the module: only a run with distortion points pays for it
    from matplotlib.figure import Figure
    matplotlib.rcParams.update({"svg.hashsalt": "meter-bench", "svg.fonttype": "none", "font.size": 9})
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


def load_chart_library() -> None:
    """Import what a spectrum is drawn with (half a second, the first time): a run whose
    certificates will draw one does so as its bench opens, so that the wait is not added after
    the last point, and a missing library stops the run before it measures, not after."""
    import matplotlib.backends.backend_svg  # noqa: F401 - what _spectrum_figure and _svg import
    import matplotlib.figure  # noqa: F401


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    svg = buffer.getvalue()
    return svg[svg.index("<svg"):]  # inline: no XML prolog or doctype


# Charts are drawn once per distinct input and the SVG reused: every meter of a run has the same
# harmonic chart, and drawing one costs about 0.1 s of matplotlib.
DRAWN_CHARTS_KEPT = 64


def error_curve_svg(results: list[dict[str, Any]], test_amperes: float) -> str | None:
    """The meter's error curve (``curve_svg.draw_error_curve``) as inline SVG; None without load points."""
    return _curve_svg(tuple(curve_points(results, test_amperes)))


@lru_cache(maxsize=DRAWN_CHARTS_KEPT)
def _curve_svg(points: tuple[CurvePoint, ...]) -> str | None:
    return draw_error_curve(points)


def error_curve_svgs(boards: list[tuple[list[dict[str, Any]], float]]) -> list[str | None]:
    """``error_curve_svg`` of each (results, test amperes), each distinct one drawn once."""
    return [error_curve_svg(results, amperes) for results, amperes in boards]


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
