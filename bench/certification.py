"""Runs test points on the bench, each once for the whole board, and remembers the results, so a
shift point finds its reference point's errors and the report finds every point's evidence."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

from bench.bench import Bench
from bench.counting import CreepPoint, StartingPoint, count_pulses
from bench.gating import AccuracyPoint, Progress, measure_point
from bench.metrology import Budget, Component, decide
from bench.results import CheckResult, CountResult, Measured, PositionResult, ShiftResult

Result = Union[PositionResult, ShiftResult, CountResult, CheckResult]


@dataclass(frozen=True)
class FunctionalCheck:
    """A check that is not a metrology point (audit step, firmware behaviour): its procedure
    is a function that examines the whole board and returns each position's result."""

    id: str
    name: str
    family: str
    measure: Callable[[], dict[int, Result]]


Point = Union[AccuracyPoint, CreepPoint, StartingPoint, FunctionalCheck]


class Certification:
    def __init__(self, bench: Bench, points: dict[str, Point], progress: Progress | None = None) -> None:
        self.bench = bench
        self.points = points  # by id: where shift points find their reference
        self.progress = progress
        self.results: dict[str, dict[int, Result]] = {}
        self.ran: dict[str, Point] = {}  # every point measured, the table's and any other (payload)

    def run(self, point: Point) -> dict[int, Result]:
        """The point's result for every position, measured on first request."""
        if point.id not in self.results:
            self.results[point.id] = self._measure(point)
            self.ran[point.id] = point
        return self.results[point.id]

    def _measure(self, point: Point) -> dict[int, Result]:
        if isinstance(point, FunctionalCheck):
            return point.measure()
        if isinstance(point, (CreepPoint, StartingPoint)):
            return count_pulses(self.bench, point, self.progress)
        if point.shift_from is None:
            return measure_point(self.bench, point, self.progress)
        reference = self.run(self.points[point.shift_from])
        measured = measure_point(self.bench, point, self.progress)
        return {n: shift_result(measured[n], reference[n]) for n in measured}


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



