"""Test plans as data: load a point and its provenance from bench/standards/."""
from __future__ import annotations

from pathlib import Path

from bench.config import load_toml
from bench.gating import TestPoint
from bench.metrology import Rule

STANDARDS = Path(__file__).parent / "standards"
_POINT_KEYS = {"name", "power_w", "power_factor", "voltage_pct", "limit_pct", "settle_s", "min_pulses",
               "min_dwell_s", "target_u_pct", "decision_rule", "leading"}


def load_point(path: Path) -> TestPoint:
    """One test point; every numeric key must state its provenance."""
    doc = load_toml(path)
    point, provenance = doc.table("point"), doc.table("provenance")
    point.unknown(_POINT_KEYS)
    for key in point.data:
        if key not in ("name", "leading") and key not in provenance:
            raise provenance.error(key, "missing: every value of a plan states where it comes from")
    return TestPoint(
        name=point.text("name"),
        power_w=point.number("power_w", positive=True),
        power_factor=point.number("power_factor", low=0.01, high=1.0),
        voltage_pct=point.number("voltage_pct", positive=True),
        limit_pct=point.number("limit_pct", positive=True),
        settle_s=point.number("settle_s", low=0),
        min_pulses=point.integer("min_pulses", low=1),
        min_dwell_s=point.number("min_dwell_s", low=0),
        target_u_pct=point.number("target_u_pct", positive=True),
        rule=Rule(point.text("decision_rule", choices=tuple(r.value for r in Rule))),
        leading=bool(point.data.get("leading", False)),
    )


def payload_accuracy_point() -> TestPoint:
    return load_point(STANDARDS / "payload_accuracy.toml")
