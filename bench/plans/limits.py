"""Test points and limits as data (bench/standards/*.toml, or a lab's own with --limits).

A table is validated whole when it is loaded (a bad row is one line naming the file and row),
states which meter forms and accuracy classes it applies to, and is resolved into concrete
points for the meter type on the bench: its class picks each row's tolerance, its form expands
"each element" and "each circuit" rows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from bench.datafiles import STANDARDS, Section, load_toml
from bench.metrology.conditions import (
    ReferenceConditions,
    default_reference_conditions,
    parse_reference_conditions,
)
from bench.metrology.forms import Form, forms
from bench.metrology.harmonics import HarmonicProfile, load_profiles
from bench.metrology.quantities import ACTIVE, QUANTITIES, Quantity
from bench.metrology.uncertainty import Rule
from bench.procedures.counting import CreepPoint, StartingPoint
from bench.procedures.gating import AccuracyPoint, DwellRules, Load
from bench.procedures.nameplate import KH_REGISTER, NameplatePoint
from bench.procedures.runner import Point
from bench.records.record import PlanInfo
from bench.station.profile import MAX_CLASS, MIN_CLASS, MeterType, Profile

# The shipped tables, in the order a meter's form picks its default: ANSI C12.20 governs the forms
# it applies to (Blondel-compliant), ANSI C12.1 every other.
SHIPPED_TABLES = (STANDARDS / "c12_20.toml", STANDARDS / "c12_1.toml")
DEFAULT_TABLE = SHIPPED_TABLES[0]
# IEC 62058-11 acceptance inspection: the measurement uncertainty at a point not above one fifth of
# the limit. A table states its own with [dwell] target_u_fraction.
DEFAULT_TARGET_U_FRACTION = 0.2
# Physical ranges of a row's numbers: a test point is near nominal voltage and frequency (the
# variation tests move them by a few percent), at most a few times TA or Imax, and a tolerance
# is a few percent at most. Anything outside is a typo in the table.
MAX_VOLTAGE_PCT = 150.0
MIN_FREQUENCY_PCT, MAX_FREQUENCY_PCT = 80.0, 120.0
MAX_CURRENT_FRACTION = 2.0
MAX_TOLERANCE_PCT = 20.0
MAX_PERIOD_CONSTANT = 1e12  # creep period C / (k m Un Imax) minutes; IEC 62053-22 uses 900e6
HARMONICS_FILE = STANDARDS / "harmonics.toml"
NOT_GATED = ("creep", "starting", "nameplate")  # families whose rows are not gated accuracy points
_ROW_KEYS = {"id", "family", "name", "current", "of", "pf", "lead", "voltage_pct", "frequency_pct", "harmonics",
             "elements", "circuits", "shift_from", "tolerance", "max_pulses", "period_constant", "min_pulses",
             "time_factor", "voltages", "sequence", "provenance", "quantity", "sin_phi"}


@dataclass(frozen=True)
class Row:
    """One validated row, before a meter class is chosen."""

    id: str
    family: str
    name: str
    load: Load
    elements: str | tuple[float, ...] | None  # "each", per-element weights, or all elements
    circuits: bool  # each current circuit of a multi-circuit element alone (equality of current circuits)
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
    forms: tuple[str, ...]  # the meter forms the table applies to
    classes: tuple[float, ...]  # the accuracy classes it holds limits for
    weighted_average: WeightedAverage | None = None

    def plan_info(self) -> PlanInfo:
        return PlanInfo(self.name, self.version, self.standard, self.source, self.provenance, self.conditions.__dict__,
                        self.weighted_average.to_dict() if self.weighted_average else None)

    def not_applicable(self, mt: MeterType) -> list[str]:
        """Why this table cannot judge this meter type (its form or class is not the table's), one
        line each; empty when it applies."""
        why = []
        if mt.form not in self.forms:
            why.append(f"{self.source}: '{self.name}' applies to Forms {', '.join(self.forms)}, not to the "
                       f"meter's Form {mt.form} (table.forms); choose the table for it with --limits")
        if not any(math.isclose(mt.accuracy_class, c) for c in self.classes):
            why.append(f"{self.source}: '{self.name}' holds limits for classes "
                       f"{', '.join(f'{c:g}' for c in self.classes)}, not for the meter's class "
                       f"{mt.accuracy_class:g} (table.classes)")
        return why

    def points(self, mt: MeterType, rule: Rule | None = None) -> list[Point]:
        """Every point of the table for this meter type, in table order."""
        settle = self.dwell.number("settle_s", low=0, high=3600.0)
        found: list[Point] = []
        for row in self.rows:
            if mt.lacks(QUANTITIES[row.load.quantity]):  # a meter without a varh output has no varh points
                continue
            if row.family == "nameplate":
                if KH_REGISTER in mt.registers:  # a meter that does not report its Kh cannot be checked
                    found.append(NameplatePoint(row.id, row.name, row.family))
            elif row.family == "creep":
                found.append(CreepPoint(row.id, row.name, row.family, row.load.voltage_pct, row.max_pulses,
                                        _for_class(row, mt.accuracy_class), settle, self.conditions))
            elif row.family == "starting":
                found.append(StartingPoint(row.id, row.name, row.family, row.load, row.min_pulses, row.time_factor,
                                           settle, self.conditions))
            else:
                value = _for_class(row, mt.accuracy_class)
                min_dwell_s = self.dwell.number("min_dwell_s", low=0, high=86400.0)
                dwell = DwellRules(settle, self.dwell.integer("min_pulses", low=1, high=100_000), min_dwell_s,
                                   value * self.dwell.number("target_u_fraction", DEFAULT_TARGET_U_FRACTION,
                                                             positive=True, high=1.0),
                                   self.dwell.number("min_dwell_test_mode_s", min_dwell_s, low=0, high=86400.0))
                for suffix, label, weights in _expand(row, forms()[mt.form]):
                    load = Load(**{**row.load.__dict__, "weights": weights})
                    found.append(AccuracyPoint(row.id + suffix, row.name + label, row.family, load, value, dwell,
                                               rule or self.rule, self.conditions, row.shift_from))
        return found


def beyond_ranges(profile: Profile, points: list[Point]) -> list[str]:
    """One line per point the profile's source or load cannot apply (its stated range): what a
    bench must be refused for before anything is energised."""
    mt, source, load = profile.meter_type, profile.source, profile.load
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


def _expand(row: Row, form: Form) -> list[tuple[str, str, tuple[float, ...] | None]]:
    """(id suffix, name suffix, per-circuit weights) for each point a row becomes on a meter of
    this form. Element-alone and unbalanced rows mean nothing on a one-element meter, circuit-alone
    rows nothing on a meter whose elements each have one circuit: they yield no point."""
    def on_circuits(element_weights: list[float]) -> tuple[float, ...]:
        return tuple(element_weights[form.element_of(c)] for c in range(form.circuits))

    if row.circuits:
        alone = [c for e in range(form.elements) if len(form.circuits_of(e)) > 1 for c in form.circuits_of(e)]
        return [(f"-C{c + 1}", f": current circuit {c + 1}",
                 tuple(1.0 if j == c else 0.0 for j in range(form.circuits)))
                for c in alone]
    if row.elements is None:
        return [("", "", None)]
    if form.elements == 1:
        return []
    if isinstance(row.elements, str):  # "each", the one word _elements accepts
        return [(f"-E{k}", f": element {k}", on_circuits([1.0 if j == k else 0.0 for j in range(1, form.elements + 1)]))
                for k in range(1, form.elements + 1)]
    return [("", "", on_circuits(list(row.elements[:form.elements])))]


def default_table(form: str) -> Path:
    """The shipped table a meter of this form is judged against when no --limits is given: the
    first that states the form."""
    for path in SHIPPED_TABLES:
        if form in load_table(path).forms:
            return path
    return DEFAULT_TABLE


@dataclass(frozen=True)
class WeightedAverage:
    """A weighted average registration a table asks for: 100 % + each point's error, weighted."""

    name: str
    weights: dict[str, float]  # point id -> weight
    provenance: str

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "weights": dict(self.weights), "provenance": self.provenance}


def load_table(path: Path = DEFAULT_TABLE) -> LimitTable:
    doc = load_toml(path)
    doc.unknown({"table", "dwell", "reference_conditions", "weighted_average", "point"})
    table, dwell = doc.table("table"), doc.table("dwell")
    table.unknown({"name", "version", "standard", "decision_rule", "forms", "classes", "provenance"})
    dwell.unknown({"settle_s", "min_pulses", "min_dwell_s", "min_dwell_test_mode_s", "target_u_fraction",
                   "provenance"})
    dwell.number("settle_s", low=0, high=3600.0)
    dwell.number("min_dwell_s", low=0, high=86400.0)
    dwell.number("min_dwell_test_mode_s", 0.0, low=0, high=86400.0)
    dwell.integer("min_pulses", low=1, high=100_000)
    dwell.number("target_u_fraction", DEFAULT_TARGET_U_FRACTION, positive=True, high=1.0)
    dwell.text("provenance")
    table_forms = table.texts("forms")
    unknown_forms = [f for f in table_forms if f not in forms()]
    if not table_forms or unknown_forms:
        raise table.error("forms", f"expected meter forms of bench/standards/forms.toml "
                                   f"({', '.join(forms())}), got {table_forms!r}")
    classes = table.numbers("classes", low=MIN_CLASS, high=MAX_CLASS)
    if not classes:
        raise table.error("classes", "expected one or more accuracy classes")
    conditions = (parse_reference_conditions(doc.table("reference_conditions")) if "reference_conditions" in doc
                  else default_reference_conditions())
    profiles = load_profiles(HARMONICS_FILE)
    rows = _rows(doc, profiles, classes)
    weighted = _weighted_average(doc.table("weighted_average"), rows) if "weighted_average" in doc else None
    return LimitTable(doc.source, table.text("name"), table.text("version"), table.text("standard"),
                      table.text("provenance"), Rule(table.text("decision_rule", choices=tuple(r.value for r in Rule))),
                      dwell, conditions, rows, tuple(table_forms), tuple(classes), weighted)


def _weighted_average(section: Section, rows: tuple[Row, ...]) -> WeightedAverage:
    section.unknown({"name", "weights", "provenance"})
    weights = section.table("weights")
    accuracy = {r.id for r in rows if r.family not in NOT_GATED and r.shift_from is None}
    for point in weights.data:
        if point not in accuracy:
            raise weights.error(point, "not an accuracy row of this table (without a shift of its own)")
    return WeightedAverage(section.text("name"),
                           {point: weights.number(point, positive=True, high=100.0) for point in weights.data},
                           section.text("provenance"))


def _rows(doc: Section, profiles: dict[str, HarmonicProfile], classes: tuple[float, ...]) -> tuple[Row, ...]:
    raw = doc.data.get("point")
    if not isinstance(raw, list) or not raw:
        raise doc.error("point", "expected one or more [[point]] rows")
    rows: list[Row] = []
    for i, data in enumerate(raw, start=1):
        label = data.get("id", "") if isinstance(data, dict) else ""
        row = Section(data if isinstance(data, dict) else {}, doc.source, f"point[{i}] {label}".rstrip())
        rows.append(_row(row, profiles, classes))
    ids = [r.id for r in rows]
    for r in rows:
        if ids.count(r.id) > 1:
            raise r.section.error("id", f"'{r.id}' is used by more than one row")
        if r.shift_from is not None:
            target = next((t for t in rows if t.id == r.shift_from), None)
            if target is None or target.shift_from is not None or target.family in NOT_GATED:
                raise r.section.error("shift_from",
                                      f"'{r.shift_from}' is not an accuracy row without a shift of its own")
    return tuple(rows)


def _row(row: Section, profiles: dict[str, HarmonicProfile], classes: tuple[float, ...]) -> Row:
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
    quantity = QUANTITIES[row.text("quantity", ACTIVE.name, choices=tuple(QUANTITIES))]
    if quantity.name != ACTIVE.name and family in ("creep", "starting"):
        raise row.error("quantity", f"{family} rows count the Wh test output's pulses; quantity is for accuracy rows")
    if family == "nameplate":
        return Row(row.text("id"), family, name, Load(), None, False, {}, row)
    if family == "creep":
        load = Load(voltage_pct=row.number("voltage_pct", positive=True, high=MAX_VOLTAGE_PCT))
        return Row(row.text("id"), family, name, load, None, False,
                   _by_class(row, "period_constant", MAX_PERIOD_CONSTANT, classes), row,
                   max_pulses=row.integer("max_pulses", low=0, high=1000))
    load = Load(power_factor=_power_factor(row, quantity), leading=row.boolean("lead", False),
                voltage_pct=row.number("voltage_pct", 100.0, positive=True, high=MAX_VOLTAGE_PCT),
                frequency_pct=row.number("frequency_pct", 100.0, low=MIN_FREQUENCY_PCT, high=MAX_FREQUENCY_PCT),
                current_fraction=row.number("current", positive=True, high=MAX_CURRENT_FRACTION),
                current_of=row.text("of", choices=("TA", "Imax")), harmonics=harmonics,
                voltage_weights=row.numbers("voltages", low=0.0, high=1.0) if "voltages" in row else None,
                reversed_sequence=row.text("sequence", "positive", choices=("positive", "reversed")) == "reversed",
                quantity=quantity.name)
    if family == "starting":
        return Row(row.text("id"), family, name, load, None, False, {}, row,
                   min_pulses=row.integer("min_pulses", low=1, high=1000),
                   time_factor=row.number("time_factor", low=1.0, high=100.0))
    circuits = "circuits" in row and row.text("circuits", choices=("each",)) == "each"
    if circuits and "elements" in row:
        raise row.error("circuits", "a row energises each circuit alone or sets elements, not both")
    return Row(row.text("id"), family, name, load, _elements(row), circuits,
               _by_class(row, "tolerance", MAX_TOLERANCE_PCT, classes), row,
               shift_from=row.text("shift_from") if "shift_from" in row else None)


def _power_factor(row: Section, quantity: Quantity) -> float:
    """cos φ of the row's angle: an active row states it as ``pf`` (with ``lead``), a reactive row
    as ``sin_phi``, the lag following the direction (delivered varh lags, received leads)."""
    if not quantity.reactive:
        if "sin_phi" in row:
            raise row.error("sin_phi", f"an active-energy row ({quantity.name}) states pf, not sin_phi")
        return row.number("pf", low=0.01, high=1.0)
    for key in ("pf", "lead"):
        if key in row:
            raise row.error(key, f"a reactive-energy row ({quantity.name}) states sin_phi; its direction sets the lag")
    return math.sqrt(1.0 - row.number("sin_phi", low=0.01, high=1.0) ** 2)


def _by_class(row: Section, key: str, high: float, classes: tuple[float, ...]) -> dict[str, float]:
    """One value per class the table states (a class the table states but a row leaves out would
    only be found when a meter of that class runs)."""
    table = row.table(key)
    names = [f"{c:g}" for c in classes]
    for name in table.data:
        if name not in names:
            raise table.error(name, f"not one of the table's classes (table.classes: {', '.join(names)})")
    for name in names:
        if name not in table.data:
            raise table.error(name, f"no value for class {name}, which table.classes states")
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


