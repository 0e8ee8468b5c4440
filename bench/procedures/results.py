"""What one test point found on one position: evidence, error or count, uncertainty, limit, verdict.

Three shapes of result share one reporting interface (verdict, summary, cells, to_dict):
an error measured by gating, the shift of that error from a reference point, and a pulse count
(creep, starting).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bench.metrology.stimulus import Stimulus
from bench.metrology.uncertainty import Budget, Rule, Verdict
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
    meter_wh: float  # energy register delta between the two snapshots
    reference_wh: float  # reference energy over the same interval, interpolated to the read times
    skew_s: float  # half-width of the uncertainty in read timing, bench clock


def _worst(verdicts: set[Verdict]) -> Verdict:
    for worst in (Verdict.FAIL, Verdict.ERROR, Verdict.INDETERMINATE):
        if worst in verdicts:
            return worst
    return Verdict.PASS


def _where(point_name: str, position: Position) -> str:
    return f"{point_name}, position {position.number} ({position.serial})"


def _to_dict(result: Any) -> dict[str, Any]:
    data = asdict(result)
    data["verdict"] = result.verdict.value
    data["cells"] = result.cells()
    return data


@dataclass(frozen=True)
class PositionResult:
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

    @property
    def verdict(self) -> Verdict:
        if not self.counted:
            return Verdict.INDETERMINATE
        verdicts = {self.pulses.verdict if self.pulses else Verdict.FAIL}
        if self.register_counts and self.register_check:
            verdicts.add(self.register_check.verdict)
        return _worst(verdicts)

    def summary(self) -> str:
        where = _where(self.name, self.position)
        if self.pulses is None:
            return f"{where}: {self.verdict.value}: {self.note}" + (f"; {self.diagnosis}" if self.diagnosis else "")
        register = (f", register error {self.register_check.error_pct:+.4f} % ± {self.register_check.expanded_pct:.4f} %"
                    if self.register_check else "")
        return (f"{where}: {self.verdict.value}: pulse error {self.pulses.error_pct:+.4f} % "
                f"± {self.pulses.expanded_pct:.4f} % (k=2){register}, limit ±{self.limit_pct:g} % ({self.rule.value})"
                + (f"; {self.note}" if self.note else "") + (f"; {self.diagnosis}" if self.diagnosis else ""))

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

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


@dataclass(frozen=True)
class ShiftResult:
    """The shift of a position's error from its error at a reference point (influence tests)."""

    measured: PositionResult
    reference: PositionResult
    shift: Measured | None  # None when either error is missing

    @property
    def position(self) -> Position:
        return self.measured.position

    @property
    def point(self) -> str:
        return self.measured.point

    @property
    def verdict(self) -> Verdict:
        if self.shift is not None:
            return self.shift.verdict
        counted = self.measured.counted and self.reference.counted
        return Verdict.FAIL if counted else Verdict.INDETERMINATE

    def summary(self) -> str:
        where = _where(self.measured.name, self.position)
        if self.shift is None:
            why = self.measured.note or self.reference.note or "an error is missing"
            return f"{where}: {self.verdict.value}: no shift: {why}"
        return (f"{where}: {self.verdict.value}: error {self.measured.pulses.error_pct:+.4f} % against "
                f"{self.reference.pulses.error_pct:+.4f} % at {self.reference.name}: shift {self.shift.error_pct:+.4f} % "
                f"± {self.shift.expanded_pct:.4f} % (k=2), limit ±{self.measured.limit_pct:g} % ({self.measured.rule.value})")

    def cells(self) -> dict[str, str]:
        cells = self.measured.cells()
        cells["Measured"] = f"shift {self.shift.error_pct:+.4f} %" if self.shift else "n/a"
        cells["U (k=2)"] = f"{self.shift.expanded_pct:.4f} %" if self.shift else "n/a"
        cells["Limit"] = f"±{self.measured.limit_pct:g} % shift from {self.reference.point}"
        cells["Verdict"] = self.verdict.value
        return cells

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


@dataclass(frozen=True)
class CountResult:
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

    @property
    def verdict(self) -> Verdict:
        if not self.counted:
            return Verdict.INDETERMINATE
        return Verdict.PASS if self.passed else Verdict.FAIL

    def summary(self) -> str:
        return (f"{_where(self.name, self.position)}: {self.verdict.value}: {self.pulses} pulses in "
                f"{self.period_s:.0f} s, {self.limit}" + (f"; {self.note}" if self.note else ""))

    def cells(self) -> dict[str, str]:
        return {"Point": self.name, "Stimulus": self.stimulus.describe(),
                "Measured": f"{self.pulses} pulses in {self.period_s:.0f} s", "U (k=2)": "",
                "Register": "", "Limit": self.limit, "Verdict": self.verdict.value, "Diagnosis": ""}

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


@dataclass(frozen=True)
class CheckResult:
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

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


@dataclass(frozen=True)
class FaultResult:
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

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)
