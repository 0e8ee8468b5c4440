"""Board-wide functional checks (the commissioning audit, firmware behaviour): a step is an object
a plan module imports by name, so a typo fails at import and the procedure is one click away."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from bench.metrology.forms import forms
from bench.metrology.stimulus import Stimulus
from bench.procedures.results import CheckResult, FaultResult, PositionResult
from bench.station.bench import Bench
from bench.station.profile import Position

_NOT_READ = object()  # no value read ahead (None is a value a register map may give)


@dataclass(frozen=True)
class Finding:
    """What a check saw on one position, judged: ``code`` names the troubleshooting entry a
    failure carries; ``note`` is recorded, not judged."""

    passed: bool
    observed: str
    expected: str
    code: str = ""
    note: str = ""


StepResult = CheckResult | PositionResult | FaultResult
Checks = TypeVar("Checks", bound="BoardChecks")


@dataclass(frozen=True)
class BoardStep(Generic[Checks]):
    """One step of a board-wide procedure: its id in the records, its name on reports, and the
    procedure that examines every position at once (findings, or measured results)."""

    id: str
    name: str
    procedure: Callable[[Checks], Mapping[int, Finding | PositionResult | FaultResult]]

    def run(self, checks: Checks) -> dict[int, StepResult]:
        found = self.procedure(checks)
        return {number: checks.judged(self, number, f) if isinstance(f, Finding) else f for number, f in found.items()}


class BoardChecks:
    """What every board-wide check shares: the bench, its positions, meter reads, the settle
    before a check, and the troubleshooting matrix's entry for a failure's code."""

    def __init__(self, bench: Bench, settle_s: float, matrix: Mapping[str, str] | None = None) -> None:
        self.bench, self.settle_s = bench, settle_s
        self.matrix: Mapping[str, str] = matrix or {}
        self._read_ahead: dict[tuple[int, str], Any] = {}  # (position, register) -> value, for ``read``

    def each(self, check: Callable[[Position], Finding], reads: Sequence[str] = ()) -> dict[int, Finding]:
        """``check`` for every position in turn; ``reads``: as for ``each_at_once``."""
        positions = {pos.number: pos for pos in self.bench.profile.positions}
        return self._reading_ahead(reads, lambda: {n: check(pos) for n, pos in positions.items()})

    def each_at_once(self, check: Callable[[Position], Finding], reads: Sequence[str] = ()) -> dict[int, Finding]:
        """``each``, with every position checked at once where the meters' transport allows: for a
        check that talks to its own position's meter only (nothing board-wide, no shared record).
        ``reads``: registers the check reads with ``read``, read from every position together
        first (a round of requests each, not a request per position and register)."""
        positions = {pos.number: pos for pos in self.bench.profile.positions}
        return self._reading_ahead(reads, lambda: self.bench.meter_reads.each(lambda n: check(positions[n])))

    def _reading_ahead(self, reads: Sequence[str], checks: Callable[[], dict[int, Finding]]) -> dict[int, Finding]:
        self._read_ahead = {(n, name): read.value for name in reads
                            for n, read in self.bench.meter_reads.read(name).reads.items()}
        try:
            return checks()
        finally:
            self._read_ahead = {}

    def judged(self, step: BoardStep[Any], number: int, finding: Finding) -> CheckResult:
        pos = next(p for p in self.bench.profile.positions if p.number == number)
        failed = not finding.passed
        return CheckResult(step.id, step.name, pos, finding.passed, finding.observed, finding.expected,
                           finding.code if failed else "", self.hint(finding.code, pos) if failed else "", finding.note)

    def hint(self, code: str, pos: Position) -> str:
        """The matrix's entry, its command filled in for this meter on this bench, ready to paste."""
        source = self.bench.profile.source_file
        profile = source if Path(source).is_file() else "PROFILE"
        return self.matrix.get(code, "").replace("{serial}", pos.serial).replace("{profile}", profile)

    def read(self, pos: Position, name: str) -> Any:
        """The register as read ahead for the check in progress (once: a second read asks the meter
        again), else from the meter now; a position the board-wide read missed asks its own meter,
        so its error is its own."""
        value = self._read_ahead.pop((pos.number, name), _NOT_READ)
        return self.bench.meters[pos.number].read(name) if value is _NOT_READ else value

    def settle_at(self, stimulus: Stimulus, during: str) -> None:
        """Apply ``stimulus`` and settle; the wait watches the interlock and the source's protection."""
        self.bench.apply(stimulus)
        self.bench.wait(self.settle_s, during)

    def energise_nominal(self) -> None:
        """Nominal voltage, no load: the meters are powered for their functional checks. A point
        left at 1 kW, or a sag, is not "no load"."""
        mt = self.bench.profile.meter_type
        nominal = Stimulus(mt.nominal_voltage_v, 0.0, 0.0, mt.frequency_hz, mt.elements,
                           circuit_map=forms()[mt.form].circuit_map)
        if self.bench.stimulus != nominal:
            self.settle_at(nominal, "settling at nominal voltage")
