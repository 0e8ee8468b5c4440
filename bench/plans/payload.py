"""The installation audit's payload point as data, from bench/standards/payload_accuracy.toml."""
from __future__ import annotations

from pathlib import Path

from bench.datafiles import STANDARDS, load_toml
from bench.metrology.conditions import default_reference_conditions
from bench.metrology.uncertainty import Rule
from bench.procedures.gating import AccuracyPoint, DwellRules, Load

_POINT_KEYS = {"name", "power_w", "power_factor", "voltage_pct", "limit_pct", "settle_s", "min_pulses",
               "min_dwell_s", "target_u_pct", "decision_rule", "leading"}


def load_point(path: Path) -> AccuracyPoint:
    """One power-defined point whose energy register counts too; every value states its provenance."""
    doc = load_toml(path)
    point = doc.table("point").with_provenance(doc.table("provenance"), exempt=("name", "leading"))
    point.unknown(_POINT_KEYS)
    load = Load(power_w=point.number("power_w", positive=True, high=1e6),
                power_factor=point.number("power_factor", low=0.01, high=1.0),
                voltage_pct=point.number("voltage_pct", positive=True, high=150.0),
                leading=point.boolean("leading", False))
    dwell = DwellRules(point.number("settle_s", low=0, high=3600.0),
                       point.integer("min_pulses", low=1, high=100_000),
                       point.number("min_dwell_s", low=0, high=86400.0),
                       point.number("target_u_pct", positive=True, high=20.0))
    return AccuracyPoint("PAYLOAD", point.text("name"), "payload", load,
                         point.number("limit_pct", positive=True, high=20.0), dwell,
                         Rule(point.text("decision_rule", choices=tuple(r.value for r in Rule))),
                         default_reference_conditions(), register_counts=True)


def payload_accuracy_point() -> AccuracyPoint:
    return load_point(STANDARDS / "payload_accuracy.toml")
