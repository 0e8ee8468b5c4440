"""What one test point found on one position: evidence, error or count, uncertainty, limit, verdict.

Five shapes of result share one reporting interface (verdict, summary, cells, to_dict): an error
measured by gating, the shift of that error from a reference point, a pulse count (creep,
starting), a functional check, and a point that could not be measured.

Each also carries its numbers as numbers (``value_pct``, ``u_pct``, ``limit_pct``: None where
the result has none), so what plots and records need is never parsed back out of ``cells()``,
which is display text only. They are properties, not fields: ``asdict`` (the evidence a record
keeps) is unchanged by them.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, fields, is_dataclass
from enum import Enum
from typing import Any, TypeAlias

from bench.metrology.quantities import QUANTITIES
from bench.metrology.stimulus import Stimulus
from bench.metrology.uncertainty import Budget, Rule, Verdict, worst
from bench.station.profile import Position
from instruments.pulse_counter import GateResult
from instruments.reference_standard import Readings

COLUMNS = ("Point", "Stimulus", "Measured", "U (k=2)", "Register", "Limit", "Verdict", "Diagnosis")


@dataclass(frozen=True)
class Measured:
    """A value (an error or a shift, %) with its budget and verdict against a limit."""

    error_pct: float
    budget: Budget
    verdict: Verdict

    @property
    def expanded_pct(self) -> float:
        return self.budget.expanded_pct


@dataclass(frozen=True)
class RegisterEvidence:
    """The meter's energy register against the reference over one point; the readings and the
    register's resolution let the record alone give back the register error and its budget."""

    meter_wh: float  # energy register delta between the two snapshots
    reference_wh: float  # reference energy over the same interval, interpolated to the read times
    skew_s: float  # half-width of the uncertainty in read timing, bench clock
    start_wh: float | None = None  # the meter's register as read before the gate ...
    end_wh: float | None = None  # ... and after it
    resolution_wh: float | None = None  # the register's smallest step near end_wh (its budget's term)


@dataclass(frozen=True)
class PulseConstants:
    """The constants a gated error is computed with, named in the result so that the record alone
    gives the error back: E_mut = mut_pulses x meter_wh_per_pulse, E_ref = ref_pulses x
    reference_wh_per_pulse, error = (E_mut - E_ref) / E_ref x 100."""

    meter_wh_per_pulse: float  # the Kt of the meter's test output the gate was counted on (varh per pulse for varh)
    reference_wh_per_pulse: float  # the reference standard's output constant, as it reported it
    test_mode: bool = False  # the meter's Kt was its test mode's (a high-resolution test output)


class _Reported:
    """What every result shares: its record entry's evidence, with its verdict and display cells."""

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


class _NoPercentages(_Reported):
    """A result judged by something other than a percentage (a pulse count, a check, or nothing
    measured): it has no value, U or limit in %."""

    @property
    def value_pct(self) -> None:
        return None

    @property
    def u_pct(self) -> None:
        return None

    @property
    def limit_pct(self) -> None:
        return None


def _where(point_name: str, position: Position) -> str:
    return f"{point_name}, position {position.number} ({position.serial})"


# What ``copy.deepcopy`` returns as it is: ``_plain`` returns these without calling it.
_IMMUTABLE = frozenset({type(None), bool, int, float, complex, str, bytes})
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}  # each dataclass's field names, looked up once


def _plain(value: Any) -> Any:
    """``dataclasses.asdict``'s conversion, without its deep copy of every number and string, which
    gives back the very same object (Python 3.12's ``asdict`` skips it too): before 3.12 the
    copying was most of building a 40-position run's record."""
    kind = type(value)
    if kind in _IMMUTABLE:
        return value
    names = _FIELD_NAMES.get(kind)
    if names is None and is_dataclass(kind):
        names = _FIELD_NAMES[kind] = tuple(f.name for f in fields(kind))
    if names is not None:  # a number or text field kept as it is here: no call per leaf
        return {name: field_value if type(field_value) in _IMMUTABLE else _plain(field_value)
                for name in names for field_value in (getattr(value, name),)}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple, rebuilt field by field
        return kind(*[_plain(v) for v in value])
    if isinstance(value, (list, tuple)):
        return kind([v if type(v) in _IMMUTABLE else _plain(v) for v in value])
    if isinstance(value, dict):
        return kind((_plain(k), _plain(v)) for k, v in value.items())
    if isinstance(value, Enum):  # what deepcopy gives an enum member: the member itself
        return value
    return copy.deepcopy(value)


def _to_dict(result: Any) -> dict[str, Any]:
    data = _plain(result)
    data["verdict"] = result.verdict.value
    data["cells"] = result.cells()
    return data


def _with_derived(result: PositionResult, data: dict[str, Any]) -> dict[str, Any]:
    """What the budget used that is derived, not stated: the gate's length in seconds and the
    stimulus's power factor (the reference's certified U is taken at it; for reactive energy its
    sin φ, as ``budget_factor``), so a reader of the record need not re-derive them."""
    data["power_factor"] = result.stimulus.power_factor
    data["budget_factor"] = QUANTITIES[result.quantity].factor(result.stimulus.phase_deg)
    if result.gate is not None:
        data["gate"]["gate_time_s"] = result.gate.gate_time_s
    return data


@dataclass(frozen=True)
class PositionResult(_Reported):
    point: str
    name: str
    position: Position
    stimulus: Stimulus
    conditions: Readings  # as the reference standard (and thermometer) read them when the point started
    limit_pct: float
    rule: Rule
    gate: GateResult | None = None
    pulses: Measured | None = None  # None when the gate did not complete, or the point did not count
    register: RegisterEvidence | None = None
    register_check: Measured | None = None
    register_counts: bool = False  # the register's error is part of the verdict (payload checks)
    note: str = ""
    counted: bool = True  # False: the board was not at reference conditions, nothing was judged
    diagnosis: str = ""  # the troubleshooting matrix's entry, when the audit found one
    constants: PulseConstants | None = None  # what the error was computed with (None: no gate, or not named)
    quantity: str = "Wh"  # what was measured (bench/metrology/quantities.py): Wh, Wh-received, varh, varh-received

    def to_dict(self) -> dict[str, Any]:
        return _with_derived(self, _to_dict(self))

    @property
    def verdict(self) -> Verdict:
        if not self.counted:
            return Verdict.INDETERMINATE
        verdicts = {self.pulses.verdict if self.pulses else Verdict.FAIL}
        if self.register_counts and self.register_check:
            verdicts.add(self.register_check.verdict)
        return worst(verdicts)

    @property
    def value_pct(self) -> float | None:
        """The pulse error, % (None when it was not measured)."""
        return self.pulses.error_pct if self.pulses else None

    @property
    def u_pct(self) -> float | None:
        """The pulse error's expanded uncertainty (k=2), %."""
        return self.pulses.expanded_pct if self.pulses else None

    def summary(self) -> str:
        where = _where(self.name, self.position)
        diagnosis = f"; {self.diagnosis}" if self.diagnosis else ""
        if self.pulses is None:
            return f"{where}: {self.verdict.value}: {self.note}{diagnosis}"
        r = self.register_check
        register = f", register error {r.error_pct:+.4f} % ± {r.expanded_pct:.4f} %" if r else ""
        return (f"{where}: {self.verdict.value}: pulse error {self.pulses.error_pct:+.4f} % "
                f"± {self.pulses.expanded_pct:.4f} % (k=2){register}, "
                f"limit ±{self.limit_pct:g} % ({self.rule.value})"
                + (f"; {self.note}" if self.note else "") + diagnosis)

    def cells(self) -> dict[str, str]:
        m, r = self.pulses, self.register_check
        return {
            "Point": self.name,
            "Stimulus": self.stimulus.describe(),
            "Measured": f"{m.error_pct:+.4f} %" if m else "n/a",
            "U (k=2)": f"{m.expanded_pct:.4f} %" if m else "n/a",
            "Register": f"{r.error_pct:+.4f} %" if r else "n/a",
            "Limit": f"±{self.limit_pct:g} %",
            "Verdict": self.verdict.value,
            "Diagnosis": self.diagnosis,
        }


@dataclass(frozen=True)
class ShiftResult(_Reported):
    """The shift of a position's error from its error at a reference point (influence tests)."""

    measured: PositionResult
    reference: PositionResult
    shift: Measured | None  # None when either error is missing

    def to_dict(self) -> dict[str, Any]:
        data = _to_dict(self)
        _with_derived(self.measured, data["measured"])
        _with_derived(self.reference, data["reference"])
        return data

    @property
    def position(self) -> Position:
        return self.measured.position

    @property
    def point(self) -> str:
        return self.measured.point

    @property
    def stimulus(self) -> Stimulus:
        return self.measured.stimulus

    @property
    def verdict(self) -> Verdict:
        if self.shift is not None:
            return self.shift.verdict
        counted = self.measured.counted and self.reference.counted
        return Verdict.FAIL if counted else Verdict.INDETERMINATE

    @property
    def value_pct(self) -> float | None:
        """The shift, % (None when either error is missing)."""
        return self.shift.error_pct if self.shift else None

    @property
    def u_pct(self) -> float | None:
        """The shift's expanded uncertainty (k=2), %."""
        return self.shift.expanded_pct if self.shift else None

    @property
    def limit_pct(self) -> float:
        """The most the error may shift from the reference point's, %."""
        return self.measured.limit_pct

    def summary(self) -> str:
        where = _where(self.measured.name, self.position)
        here, there = self.measured.pulses, self.reference.pulses
        if self.shift is None or here is None or there is None:  # a shift exists only with both errors
            why = self.measured.note or self.reference.note or "an error is missing"
            return f"{where}: {self.verdict.value}: no shift: {why}"
        return (f"{where}: {self.verdict.value}: error {here.error_pct:+.4f} % against "
                f"{there.error_pct:+.4f} % at {self.reference.name}: shift {self.shift.error_pct:+.4f} % "
                f"± {self.shift.expanded_pct:.4f} % (k=2), "
                f"limit ±{self.measured.limit_pct:g} % ({self.measured.rule.value})")

    def cells(self) -> dict[str, str]:
        cells = self.measured.cells()
        cells["Measured"] = f"shift {self.shift.error_pct:+.4f} %" if self.shift else "n/a"
        cells["U (k=2)"] = f"{self.shift.expanded_pct:.4f} %" if self.shift else "n/a"
        cells["Limit"] = f"±{self.measured.limit_pct:g} % shift from {self.reference.point}"
        cells["Verdict"] = self.verdict.value
        return cells


@dataclass(frozen=True)
class CountResult(_NoPercentages):
    """Test-output pulses counted over a period (no-load creep, starting load)."""

    point: str
    name: str
    position: Position
    stimulus: Stimulus
    conditions: Readings
    period_s: float
    pulses: int
    limit: str  # e.g. "at most 1 pulse"
    passed: bool
    note: str = ""
    counted: bool = True
    kt: float | None = None  # Wh per pulse of the test output counted on, as in force (None: not named)
    test_mode: bool = False  # that Kt was the meter's test mode's

    @property
    def verdict(self) -> Verdict:
        if not self.counted:
            return Verdict.INDETERMINATE
        return Verdict.PASS if self.passed else Verdict.FAIL

    @property
    def measured(self) -> str:
        """The count, its period and the Kt it was counted at (the period is a fixed energy, so it
        is read with the Kt)."""
        kt = f" at Kt {self.kt:g} Wh" + (" (test mode)" if self.test_mode else "") if self.kt is not None else ""
        return f"{self.pulses} pulses in {self.period_s:.0f} s{kt}"

    def summary(self) -> str:
        return (f"{_where(self.name, self.position)}: {self.verdict.value}: {self.measured}, {self.limit}"
                + (f"; {self.note}" if self.note else ""))

    def cells(self) -> dict[str, str]:
        return {"Point": self.name, "Stimulus": self.stimulus.describe(),
                "Measured": self.measured, "U (k=2)": "",
                "Register": "", "Limit": self.limit, "Verdict": self.verdict.value, "Diagnosis": ""}


@dataclass(frozen=True)
class CheckResult(_NoPercentages):
    """A functional check on one position (commissioning audit, firmware behaviour): what was
    observed, what was expected, and for a failure the troubleshooting entry for its code."""

    point: str
    name: str
    position: Position
    passed: bool
    observed: str
    expected: str
    code: str = ""
    diagnosis: str = ""  # "CODE meaning: action", from the troubleshooting matrix
    note: str = ""  # recorded, not judged (e.g. THD above 3 %)

    @property
    def verdict(self) -> Verdict:
        return Verdict.PASS if self.passed else Verdict.FAIL

    def summary(self) -> str:
        text = f"{_where(self.name, self.position)}: {self.verdict.value}: {self.observed}; expected {self.expected}"
        return text + (f"; {self.diagnosis}" if self.diagnosis else "") + (f"; {self.note}" if self.note else "")

    def cells(self) -> dict[str, str]:
        measured = self.observed + (f" ({self.note})" if self.note else "")
        return {"Point": self.name, "Stimulus": "", "Measured": measured, "U (k=2)": "", "Register": "",
                "Limit": self.expected, "Verdict": self.verdict.value, "Diagnosis": self.diagnosis}


@dataclass(frozen=True)
class FaultResult(_NoPercentages):
    """A point that could not be measured on a position: its cause, and no verdict on the meter."""

    point: str
    name: str
    position: Position
    cause: str

    @property
    def verdict(self) -> Verdict:
        return Verdict.ERROR

    def summary(self) -> str:
        return f"{_where(self.name, self.position)}: ERROR: not measured: {self.cause}"

    def cells(self) -> dict[str, str]:
        return {"Point": self.name, "Stimulus": "", "Measured": "not measured", "U (k=2)": "", "Register": "",
                "Limit": "", "Verdict": self.verdict.value, "Diagnosis": self.cause}


Result: TypeAlias = PositionResult | ShiftResult | CountResult | CheckResult | FaultResult
