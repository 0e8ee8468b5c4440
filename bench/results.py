"""What one test point found on one position: evidence, error, uncertainty, limit, verdict."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bench.metrology import Budget, Rule, Verdict
from bench.profile import Position
from bench.stimulus import Stimulus
from instruments.pulse_counter import GateResult
from instruments.reference_standard import Readings


@dataclass(frozen=True)
class Measured:
    """An error with its budget and verdict against a limit."""

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


@dataclass(frozen=True)
class PositionResult:
    point: str
    position: Position
    stimulus: Stimulus
    conditions: Readings  # the reference standard's readings when the point started
    limit_pct: float
    rule: Rule
    gate: GateResult | None
    pulses: Measured | None  # None when the gate did not complete
    register: RegisterEvidence
    register_check: Measured
    note: str = ""

    @property
    def verdict(self) -> Verdict:
        verdicts = {self.register_check.verdict, self.pulses.verdict if self.pulses else Verdict.FAIL}
        for worst in (Verdict.FAIL, Verdict.INDETERMINATE):
            if worst in verdicts:
                return worst
        return Verdict.PASS

    def summary(self) -> str:
        where = f"{self.point}, position {self.position.number} ({self.position.serial})"
        if self.pulses is None:
            return f"{where}: {self.verdict.value}: {self.note}"
        return (f"{where}: {self.verdict.value}: pulse error {self.pulses.error_pct:+.4f} % "
                f"± {self.pulses.expanded_pct:.4f} % (k=2), register error {self.register_check.error_pct:+.4f} % "
                f"± {self.register_check.expanded_pct:.4f} %, limit ±{self.limit_pct:g} % ({self.rule.value})"
                + (f"; {self.note}" if self.note else ""))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["verdict"] = self.verdict.value
        data["stimulus"]["description"] = self.stimulus.describe()
        for key in ("pulses", "register_check"):
            if data[key] is not None:
                measured = getattr(self, key)
                data[key]["expanded_pct"] = measured.expanded_pct
        return data
