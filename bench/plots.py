"""Certificate plots as SVG (matplotlib): error curves with limit lines, harmonic spectra.

The SVG text is deterministic for the same data (fixed id salt, no date), so a certificate can be
re-rendered from its record and compared byte for byte.
"""
from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

matplotlib.rcParams.update({"svg.hashsalt": "meter-bench", "svg.fonttype": "none", "font.size": 9})
PF_STYLE = {"PF 1.0": ("tab:blue", "o"), "PF 0.5 lag": ("tab:red", "s"), "PF 0.8 lead": ("tab:green", "^")}


def _pf_label(phase_deg: float) -> str:
    if abs(phase_deg) < 1e-6:
        return "PF 1.0"
    return "PF 0.5 lag" if phase_deg > 0 else "PF 0.8 lead"


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(figure)
    svg = buffer.getvalue()
    return svg[svg.index("<svg"):]  # inline: no XML prolog or doctype


def error_curve_svg(results: list[dict[str, Any]], test_amperes: float) -> str | None:
    """Error vs current (% of TA, log scale) at each PF, with ±U bars and the limit at each point."""
    series: dict[str, list[tuple[float, float, float, float]]] = {}
    for entry in results:
        evidence = entry["evidence"]
        if entry["family"] != "load_performance" or entry["value_pct"] is None:
            continue
        stimulus = evidence["stimulus"]
        series.setdefault(_pf_label(stimulus["phase_deg"]), []).append(
            (100 * stimulus["current_a"] / test_amperes, entry["value_pct"], entry["u_pct"], evidence["limit_pct"]))
    if not series:
        return None
    figure, axes = plt.subplots(figsize=(6.2, 3.2))
    for label, points in sorted(series.items()):
        points.sort()
        color, marker = PF_STYLE.get(label, ("black", "o"))
        x = [p[0] for p in points]
        axes.errorbar(x, [p[1] for p in points], yerr=[p[2] for p in points], color=color, marker=marker,
                      capsize=3, label=label)
        axes.step(x, [p[3] for p in points], where="mid", color=color, linestyle="--", linewidth=0.8)
        axes.step(x, [-p[3] for p in points], where="mid", color=color, linestyle="--", linewidth=0.8)
    axes.axhline(0, color="grey", linewidth=0.5)
    axes.set_xscale("log")
    currents = sorted({round(p[0], 3) for points in series.values() for p in points})
    axes.set_xticks(currents, [f"{c:g}" for c in currents])
    axes.minorticks_off()
    axes.set_xlabel("current, % of TA")
    axes.set_ylabel("error, %")
    axes.set_title("Registration error with U (k=2); dashed: limits")
    axes.legend(loc="best", fontsize=8)
    axes.grid(True, which="both", linewidth=0.3)
    return _svg(figure)


def harmonic_spectrum_svg(results: list[dict[str, Any]]) -> str | None:
    """Programmed current (and voltage) harmonics of each distortion point, % of the fundamental."""
    profiles = {}
    for entry in results:
        evidence = entry["evidence"]
        stimulus = evidence.get("stimulus") or evidence.get("measured", {}).get("stimulus") or {}
        if entry["family"] == "harmonics" and stimulus.get("harmonics"):
            profiles[stimulus["harmonics"]["name"]] = stimulus["harmonics"]
    if not profiles:
        return None
    figure, axes = plt.subplots(figsize=(6.2, 3.0))
    width = 0.8 / (2 * len(profiles))
    for k, (name, profile) in enumerate(sorted(profiles.items())):
        for j, (quantity, hatch) in enumerate((("current", ""), ("voltage", "//"))):
            bars = profile[quantity]
            if bars:
                offset = (2 * k + j) * width - 0.4 + width / 2
                axes.bar([h["order"] + offset for h in bars], [h["pct"] for h in bars], width=width, hatch=hatch,
                         color=f"C{k}", label=f"{name.replace('_', ' ')} ({quantity})")
    axes.set_xlabel("harmonic order (0 = DC)")
    axes.set_ylabel("% of fundamental")
    axes.set_title("Harmonic content applied")
    axes.legend(fontsize=7)
    axes.grid(True, axis="y", linewidth=0.3)
    return _svg(figure)


def result_svg(result: Any) -> str | None:
    """A small plot for one item of the session report: the value and its U against the limit band.
    Drawn directly (one value does not need a figure library: 216 items in microseconds)."""
    cells = result.cells()
    if cells["U (k=2)"] in ("", "n/a"):
        return None
    value = float(cells["Measured"].split()[-2])
    u = float(cells["U (k=2)"].split()[0])
    limit = float(cells["Limit"].lstrip("±").split()[0])
    span = 1.5 * max(limit, abs(value) + u)

    def x(v: float) -> float:
        return 20 + 280 * (v + span) / (2 * span)

    ticks = "".join(f'<line x1="{x(t):.1f}" y1="38" x2="{x(t):.1f}" y2="42" stroke="#333"/>'
                    f'<text x="{x(t):.1f}" y="54" font-size="10" text-anchor="middle">{t:+.3g} %</text>'
                    for t in (-limit, 0.0, limit))
    colour = "#0a6b0a" if abs(value) <= limit else "#b00000"
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="320" height="60" viewBox="0 0 320 60">'
            f'<rect x="{x(-limit):.1f}" y="8" width="{x(limit) - x(-limit):.1f}" height="30" fill="#e6f2e6"/>'
            f'<line x1="20" y1="40" x2="300" y2="40" stroke="#333"/>{ticks}'
            f'<line x1="{x(value - u):.1f}" y1="23" x2="{x(value + u):.1f}" y2="23" stroke="{colour}" stroke-width="2"/>'
            f'<circle cx="{x(value):.1f}" cy="23" r="4" fill="{colour}"/></svg>')
