"""Runs test points on the bench, each once for the whole board, and remembers the results, so a
shift point finds its reference point's errors and the report finds every point's evidence."""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeAlias

from bench.metrology.uncertainty import Budget, Component, decide
from bench.procedures.counting import CreepPoint, StartingPoint, count_pulses
from bench.procedures.gating import AccuracyPoint, Progress, measure_point
from bench.procedures.nameplate import NameplatePoint, check_nameplate
from bench.procedures.results import FaultResult, Measured, PositionResult, Result, ShiftResult
from bench.station.bench import Bench
from bench.station.profile import Position
from bench.station.safety import SafetyError
from instruments.errors import InstrumentError

log = logging.getLogger("bench.procedures.runner")


@dataclass(frozen=True)
class FunctionalCheck:
    """A check that is not a metrology point (audit step, firmware behaviour): its procedure
    is a function that examines the whole board and returns each position's result."""

    id: str
    name: str
    family: str
    measure: Callable[[], Mapping[int, Result]]


Point: TypeAlias = AccuracyPoint | CreepPoint | StartingPoint | NameplatePoint | FunctionalCheck


class LinkLost(SafetyError):
    """An instrument's link failed and would not come back: the session must stop."""


UNMEASURED_POINTS_TO_STOP = 2  # points in a row that no position could be measured on


class Certification:
    """Measures each point once for the whole board and keeps what it found, faults included.

    A transient fault (a lost line, a timeout, a garbled reply, an irregular pulse train) is
    logged, the links are reopened and the point is measured again from a fresh gate, at most
    ``attempts`` times in all; what was discarded is kept in ``faults``. A point that cannot be
    measured is an ERROR with its cause, and it stays so: a later shift point never re-measures it.
    """

    def __init__(self, bench: Bench, points: dict[str, Point], progress: Progress | None = None,
                 attempts: int = 2) -> None:
        self.bench = bench
        self.points = points  # by id: where shift points find their reference
        self.progress = progress
        self.attempts = attempts
        self.results: dict[str, Mapping[int, Result]] = {}
        self.ran: dict[str, Point] = {}  # every point measured, the table's and any other (payload)
        self.faults: dict[str, list[str]] = {}  # point id -> why earlier measurements were discarded
        self.stop_reason = ""  # set when the bench evidently cannot measure: the session should end
        self._unmeasured_in_a_row = 0

    def run(self, point: Point) -> Mapping[int, Result]:
        """The point's result for every position, measured on first request."""
        if point.id not in self.results:
            found = self._measure_with_retries(point)
            self.results[point.id] = found
            self.ran[point.id] = point
            self._watch_for_a_bench_that_cannot_measure(point, found)
        return self.results[point.id]

    def _watch_for_a_bench_that_cannot_measure(self, point: Point, found: Mapping[int, Result]) -> None:
        """A fault that outlives its retries on every position, point after point, is the
        bench's: going on would only switch the board on again for nothing."""
        if found and all(isinstance(r, FaultResult) for r in found.values()):
            self._unmeasured_in_a_row += 1
            if self._unmeasured_in_a_row >= UNMEASURED_POINTS_TO_STOP:
                cause = next(r.cause for r in found.values() if isinstance(r, FaultResult))
                self.stop_reason = (f"{self._unmeasured_in_a_row} points in a row could not be measured on any "
                                    f"position (last, {point.id}: {cause})")
        else:
            self._unmeasured_in_a_row = 0

    def _measure_with_retries(self, point: Point) -> Mapping[int, Result]:
        causes = self.faults.setdefault(point.id, [])
        attempt = 1
        while True:
            found, retry = self._attempt(point)
            faulty = sorted({r.cause for r in found.values() if isinstance(r, FaultResult)})
            if not faulty or not retry or attempt == self.attempts:
                return found
            causes.extend(faulty)
            log.warning("%s: attempt %d of %d discarded (%s); measuring again from a fresh gate",
                        point.id, attempt, self.attempts, "; ".join(faulty))
            self._recover()
            attempt += 1

    def _attempt(self, point: Point) -> tuple[Mapping[int, Result], bool]:
        """One measurement, and whether measuring again could help (a fault, not a bug or a
        reference point that was never measured)."""
        try:
            found = self._measure(point)
        except InstrumentError as fault:
            return {pos.number: FaultResult(point.id, point.name, pos, str(fault)) for pos in self._positions}, True
        except SafetyError:  # the session stops: safe state now, nothing to measure again
            self.bench.safe_state()
            raise
        except Exception as bug:  # noqa: BLE001 - no verdict from code that failed; the cause is recorded
            log.exception("%s could not be measured", point.id)
            return {pos.number: FaultResult(point.id, point.name, pos, f"{type(bug).__name__}: {bug}")
                    for pos in self._positions}, False
        except BaseException:  # Ctrl-C, SIGTERM, SIGHUP: safe state now, not when pytest has unwound
            self.bench.safe_state()
            raise
        return found, not _inherited(found)

    @property
    def _positions(self) -> tuple[Position, ...]:
        return self.bench.profile.positions

    def _recover(self) -> None:
        """Links a fault closed are reopened, and the board is made safe before the next attempt."""
        try:
            reopened = self.bench.reconnect()
        except InstrumentError as lost:
            try:
                self.bench.safe_state()
            finally:
                raise LinkLost(f"link lost and not recovered: {lost}") from None
        if reopened:
            log.warning("reopened %s", ", ".join(reopened))
        self.bench.safe_state()

    def _measure(self, point: Point) -> Mapping[int, Result]:
        if isinstance(point, FunctionalCheck):
            return point.measure()
        if isinstance(point, NameplatePoint):
            return check_nameplate(self.bench, point)
        if isinstance(point, (CreepPoint, StartingPoint)):
            return count_pulses(self.bench, point, self.progress)
        if point.shift_from is None:
            return measure_point(self.bench, point, self.progress)
        reference = self.run(self.points[point.shift_from])
        unmeasured = [r for r in reference.values() if isinstance(r, FaultResult)]
        if unmeasured:
            return {pos.number: FaultResult(point.id, point.name, pos, f"reference point {point.shift_from} "
                                            f"was not measured ({unmeasured[0].cause}){_INHERITED}")
                    for pos in self._positions}
        measured = measure_point(self.bench, point, self.progress)
        return {n: result if isinstance(result, FaultResult) else shift_result(result, _measured(reference[n]))
                for n, result in measured.items()}


_INHERITED = "; its shift cannot be judged"


def _measured(reference: Result) -> PositionResult:
    """A shift point's reference result on one position: a measured error (faults were excluded)."""
    if not isinstance(reference, PositionResult):
        raise TypeError(f"a shift's reference must be a measured error, not a {type(reference).__name__}")
    return reference


def _inherited(found: Mapping[int, Result]) -> bool:
    """A shift whose reference was not measured: measuring it again would not help."""
    return any(isinstance(r, FaultResult) and r.cause.endswith(_INHERITED) for r in found.values())


def shift_result(measured: PositionResult, reference: PositionResult) -> ShiftResult:
    """Shift = error here minus error at the reference point. Both dwell-dependent budgets count;
    the reference standard's term counts once (the same instrument, its linearity between the two
    conditions taken as its whole certificate uncertainty)."""
    if measured.pulses is None or reference.pulses is None:
        return ShiftResult(measured, reference, None)
    shift = measured.pulses.error_pct - reference.pulses.error_pct
    components = list(measured.pulses.budget.components) + [
        Component(f"{c.name} at {reference.point}", c.u_pct, c.basis)
        for c in reference.pulses.budget.components if c.name != "reference standard"]
    budget = Budget(tuple(components))
    verdict = decide(shift, budget.expanded_pct, measured.limit_pct, measured.rule)
    return ShiftResult(measured, reference, Measured(shift, budget, verdict))



