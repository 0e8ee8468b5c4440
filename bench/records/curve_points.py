"""What a meter's error curve is drawn from: each load-performance entry of its record, measured or
not, as a ``CurvePoint`` (hashable, so equal inputs can share one drawing)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.metrology.stimulus import pf_label


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
