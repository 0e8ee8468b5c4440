"""Test points and limits as data (bench/standards/c12_20.toml, or a lab's own with --limits).

A table is validated whole when it is loaded (a bad row is one line naming the file and row),
then resolved into concrete points for the meter type on the bench: its class picks each row's
tolerance, its element count expands "each element" rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.datafiles import STANDARDS, Section, load_toml
from bench.metrology.conditions import (
    ReferenceConditions,
    default_reference_conditions,
    parse_reference_conditions,
)
from bench.metrology.forms import forms
from bench.metrology.harmonics import HarmonicProfile, load_profiles
from bench.metrology.uncertainty import Rule
from bench.procedures.counting import CreepPoint, StartingPoint
from bench.procedures.gating import AccuracyPoint, DwellRules, Load
from bench.procedures.runner import Point
from bench.records.record import PlanInfo
from bench.station.profile import CLASSES, MeterType, Profile

DEFAULT_TABLE = STANDARDS / "c12_20.toml"
# Physical ranges of a row's numbers: a test point is near nominal voltage and frequency (the
# variation tests move them by a few percent), at most a few times TA or Imax, and a tolerance
# is a few percent at most. Anything outside is a typo in the table.
MAX_VOLTAGE_PCT = 150.0
MIN_FREQUENCY_PCT, MAX_FREQUENCY_PCT = 80.0, 120.0
MAX_CURRENT_FRACTION = 2.0
MAX_TOLERANCE_PCT = 20.0
MAX_PERIOD_CONSTANT = 1e12  # creep period C / (k m Un Imax) minutes; IEC 62053-22 uses 900e6
HARMONICS_FILE = STANDARDS / "harmonics.toml"
_ROW_KEYS = {"id", "family", "name", "current", "of", "pf", "lead", "voltage_pct", "frequency_pct", "harmonics",
             "elements", "shift_from", "tolerance", "max_pulses", "period_constant", "min_pulses", "time_factor",
             "voltages", "sequence", "provenance"}


@dataclass(frozen=True)
class Row:
    """One validated row, before a meter class is chosen."""

    id: str
    family: str
    name: str
    load: Load
    elements: str | tuple[float, ...] | None  # "each", per-element weights, or all elements
    by_class: dict[str, float]  # tolerance, or for creep the period constant
    section: Section  # where the row stands, for errors found when it is resolved
    shift_from: str | None = None
    max_pulses: int = 0
    min_pulses: int = 0
    time_factor: float = 0.0


@dataclass(frozen=True)
class LimitTable:
    source: str
    name: str
    version: str
    standard: str  # the standard and edition the table represents, as printed on certificates
    provenance: str
    rule: Rule
    dwell: Section
    conditions: ReferenceConditions
    rows: tuple[Row, ...]

    def plan_info(self) -> PlanInfo:
        return PlanInfo(self.name, self.version, self.standard, self.source, self.provenance, self.conditions.__dict__)

    def points(self, mt: MeterType, rule: Rule | None = None) -> list[Point]:
        """Every point of the table for this meter type, in table order."""
        settle = self.dwell.number("settle_s", low=0, high=3600.0)
        found: list[Point] = []
        for row in self.rows:
            if row.family == "creep":
                found.append(CreepPoint(row.id, row.name, row.family, row.load.voltage_pct, row.max_pulses,
                                        _for_class(row, mt.accuracy_class), settle, self.conditions))
            elif row.family == "starting":
                found.append(StartingPoint(row.id, row.name, row.family, row.load, row.min_pulses, row.time_factor,
                                           settle, self.conditions))
            else:
                value = _for_class(row, mt.accuracy_class)
                dwell = DwellRules(settle, self.dwell.integer("min_pulses", low=1, high=100_000),
                                   self.dwell.number("min_dwell_s", low=0, high=86400.0),
                                   value * self.dwell.number("target_u_fraction", positive=True, high=1.0))
                for suffix, label, weights in _expand(row.elements, mt.elements):
                    load = Load(**{**row.load.__dict__, "weights": weights})
                    found.append(AccuracyPoint(row.id + suffix, row.name + label, row.family, load, value, dwell,
                                               rule or self.rule, self.conditions, row.shift_from))
        return found


def beyond_ranges(profile: Profile, points: list[Point]) -> list[str]:
    """One line per point the profile's source or load cannot apply (its stated range): what a
    bench must be refused for before anything is energised. None for a form the plan does not
    apply to (C12.20: Blondel-compliant forms only)."""
    mt, source, load = profile.meter_type, profile.source, profile.load
    if not forms()[mt.form].blondel:
        return []
    gaps = []
    for point in points:
        if isinstance(point, CreepPoint):
            stimulus = point.stimulus(mt)
        elif isinstance(point, (AccuracyPoint, StartingPoint)):
            stimulus = point.load.stimulus(mt)
        else:  # a functional check applies what its own procedure says
            continue
        if stimulus.rms_voltage_v > source.max_voltage_v:
            gaps.append(f"{profile.source_file}: source.max_voltage_v = {source.max_voltage_v:g} V cannot apply "
                        f"{point.id}'s {stimulus.rms_voltage_v:g} V")
        if stimulus.rms_current_a > load.max_current_a:
            gaps.append(f"{profile.source_file}: load.max_current_a = {load.max_current_a:g} A cannot apply "
                        f"{point.id}'s {stimulus.rms_current_a:g} A")
    return gaps


def _for_class(row: Row, accuracy_class: float) -> float:
    key = f"{accuracy_class:g}"
    if key not in row.by_class:
        what = "period_constant" if row.family == "creep" else "tolerance"
        raise row.section.error(what, f"no value for class {key}")
    return row.by_class[key]


def _expand(elements: str | tuple[float, ...] | None, count: int) -> list[tuple[str, str, tuple[float, ...] | None]]:
    """(id suffix, name suffix, weights) for each point a row becomes on a meter of ``count`` elements.
    Element-alone and unbalanced rows mean nothing on a one-element meter and yield no point."""
    if elements is None:
        return [("", "", None)]
    if count == 1:
        return []
    if isinstance(elements, str):  # "each", the one word _elements accepts
        return [(f"-E{k}", f": element {k}", tuple(1.0 if j == k else 0.0 for j in range(1, count + 1)))
                for k in range(1, count + 1)]
    return [("", "", tuple(elements[:count]))]


def load_table(path: Path = DEFAULT_TABLE) -> LimitTable:
    doc = load_toml(path)
    doc.unknown({"table", "dwell", "reference_conditions", "point"})
    table, dwell = doc.table("table"), doc.table("dwell")
    table.unknown({"name", "version", "standard", "decision_rule", "provenance"})
    dwell.unknown({"settle_s", "min_pulses", "min_dwell_s", "target_u_fraction", "provenance"})
    dwell.number("settle_s", low=0, high=3600.0)
    dwell.number("min_dwell_s", low=0, high=86400.0)
    dwell.integer("min_pulses", low=1, high=100_000)
    dwell.number("target_u_fraction", positive=True, high=1.0)
    dwell.text("provenance")
    conditions = (parse_reference_conditions(doc.table("reference_conditions")) if "reference_conditions" in doc
                  else default_reference_conditions())
    profiles = load_profiles(HARMONICS_FILE)
    rows = _rows(doc, profiles)
    return LimitTable(doc.source, table.text("name"), table.text("version"), table.text("standard"),
                      table.text("provenance"), Rule(table.text("decision_rule", choices=tuple(r.value for r in Rule))),
                      dwell, conditions, rows)


def _rows(doc: Section, profiles: dict[str, HarmonicProfile]) -> tuple[Row, ...]:
    raw = doc.data.get("point")
    if not isinstance(raw, list) or not raw:
        raise doc.error("point", "expected one or more [[point]] rows")
    rows: list[Row] = []
    for i, data in enumerate(raw, start=1):
        label = data.get("id", "") if isinstance(data, dict) else ""
        row = Section(data if isinstance(data, dict) else {}, doc.source, f"point[{i}] {label}".rstrip())
        rows.append(_row(row, profiles))
    ids = [r.id for r in rows]
    for r in rows:
        if ids.count(r.id) > 1:
            raise r.section.error("id", f"'{r.id}' is used by more than one row")
        if r.shift_from is not None:
            target = next((t for t in rows if t.id == r.shift_from), None)
            if target is None or target.shift_from is not None or target.family in ("creep", "starting"):
                raise r.section.error("shift_from",
                                      f"'{r.shift_from}' is not an accuracy row without a shift of its own")
    return tuple(rows)


def _row(row: Section, profiles: dict[str, HarmonicProfile]) -> Row:
    row.unknown(_ROW_KEYS)
    row.text("provenance")
    family = row.text("family")
    name = row.text("name", row.text("id"))
    harmonics = None
    if "harmonics" in row:
        harmonics = profiles.get(row.text("harmonics"))
        if harmonics is None:
            raise row.error("harmonics", f"no profile '{row.data['harmonics']}' in {HARMONICS_FILE.name} "
                                         f"(have {', '.join(sorted(profiles))})")
    if family == "creep":
        load = Load(voltage_pct=row.number("voltage_pct", positive=True, high=MAX_VOLTAGE_PCT))
        return Row(row.text("id"), family, name, load, None, _by_class(row, "period_constant", MAX_PERIOD_CONSTANT),
                   row, max_pulses=row.integer("max_pulses", low=0, high=1000))
    load = Load(power_factor=row.number("pf", low=0.01, high=1.0), leading=row.boolean("lead", False),
                voltage_pct=row.number("voltage_pct", 100.0, positive=True, high=MAX_VOLTAGE_PCT),
                frequency_pct=row.number("frequency_pct", 100.0, low=MIN_FREQUENCY_PCT, high=MAX_FREQUENCY_PCT),
                current_fraction=row.number("current", positive=True, high=MAX_CURRENT_FRACTION),
                current_of=row.text("of", choices=("TA", "Imax")), harmonics=harmonics,
                voltage_weights=row.numbers("voltages", low=0.0, high=1.0) if "voltages" in row else None,
                reversed_sequence=row.text("sequence", "positive", choices=("positive", "reversed")) == "reversed")
    if family == "starting":
        return Row(row.text("id"), family, name, load, None, {}, row,
                   min_pulses=row.integer("min_pulses", low=1, high=1000),
                   time_factor=row.number("time_factor", low=1.0, high=100.0))
    return Row(row.text("id"), family, name, load, _elements(row), _by_class(row, "tolerance", MAX_TOLERANCE_PCT), row,
               shift_from=row.text("shift_from") if "shift_from" in row else None)


def _by_class(row: Section, key: str, high: float) -> dict[str, float]:
    table = row.table(key)
    for name in table.data:
        if name not in {f"{c:g}" for c in CLASSES}:
            raise table.error(name, f"not an accuracy class (expected {', '.join(f'{c:g}' for c in CLASSES)})")
    return {name: table.number(name, positive=True, high=high) for name in table.data}


def _elements(row: Section) -> str | tuple[float, ...] | None:
    value = row.data.get("elements")
    if value is None or value == "each":
        return value
    if (isinstance(value, list) and value and all(isinstance(w, (int, float)) and 0 <= w <= 1 for w in value)
            and max(value) == 1):
        return tuple(float(w) for w in value)
    raise row.error("elements",
                    f"expected \"each\" or per-element weights in [0, 1] with the largest 1, got {value!r}")


