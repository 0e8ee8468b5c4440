"""Where each meter's load-profile intervals close, on the bench clock, and the reference's energy
at those moments.

A meter keeps interval records whatever the bench does. Knowing each meter's clock and interval
length, the bench reads the reference's energy at every boundary while it waits, so every record a
meter closes during a run can be checked against the reference over the same window
(bench/plans/firmware.py): the interval check costs minutes instead of an hour of its own.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

from bench.metrology.stimulus import Stimulus

CLOCK_REGISTERS = ("clock_s", "interval_length_s")  # what a meter must map for its intervals to be journaled
ALIGN_STEP_S = 0.1  # how finely a whole-second clock's tick is first located
ALIGN_STEPS = 12  # a whole-second clock ticks within 10 steps; 2 to spare
BISECTIONS = 4  # then halved at each of the next ticks: ±3 ms, and 4 s of bench time
# The lab's own working value, to be confirmed: how fast a meter's clock may run against the bench
# clock, both ways together (a meter RTC of a few ppm, the bench computer's NTP-disciplined clock at
# the 50 ppm the demand test allows it): the clock located at open drifts by this much per second.
CLOCK_RATE_PPM = 50.0
LATEST_MARK_S = 2.0  # a boundary first seen later than this (it passed outside a wait) is not used
INTERVAL_RANGE_S = (60.0, 86400.0)  # load-profile intervals in use run from 1 minute to a day
_EPS_S = 1e-6  # a boundary reached to within rounding counts as reached


@dataclass(frozen=True)
class MeterClock:
    """A meter's clock against the bench clock: ``offset_s`` = meter time − bench time, known to
    ±``uncertainty_s`` at ``located_s`` and less well later; its intervals close at whole
    multiples of ``interval_s`` on its own clock."""

    offset_s: float
    uncertainty_s: float
    interval_s: float
    located_s: float = 0.0  # when the offset was found, on the bench clock

    def uncertainty_at(self, bench_s: float) -> float:
        """The offset's uncertainty at a later time: as located, plus the two clocks' drift since."""
        return self.uncertainty_s + CLOCK_RATE_PPM * 1e-6 * abs(bench_s - self.located_s)

    def interval_number(self, bench_s: float) -> int:
        """The last boundary at or before this bench time, numbered on the meter's clock."""
        return math.floor((bench_s + self.offset_s + _EPS_S) / self.interval_s)

    def boundary_s(self, number: int) -> float:
        """When boundary ``number`` comes, on the bench clock."""
        return number * self.interval_s - self.offset_s


@dataclass(frozen=True)
class Mark:
    """A boundary as the bench saw it: the reference's energy read ``late_s`` after it (None
    where it passed unseen), and the power then (W, what misplacing the boundary misplaces)."""

    number: int
    late_s: float
    reference_wh: float | None
    power_w: float


@dataclass(frozen=True)
class Window:
    """One interval between two seen boundaries: the reference's energy over it, how much energy
    the bench may have put on the wrong side of its ends (each end's timing times the power
    there), and whether energy flowed back in it (a delivered-energy record does not hold that)."""

    closes: int  # the boundary that closed it
    reference_wh: float
    timing_wh: float
    flowed_back: bool


@dataclass
class IntervalJournal:
    """Each position's boundaries seen so far; ``records_at_start`` is its record count when the
    journal began. A position whose clock could not be read has no clock, with the reason."""

    clocks: dict[int, MeterClock]
    records_at_start: dict[int, int]
    started_s: float
    unclocked: dict[int, str] = field(default_factory=dict)
    marks: dict[int, list[Mark]] = field(default_factory=dict)
    _last: dict[int, int] = field(default_factory=dict)
    _flowing_back: bool = False
    _flowed_back: dict[int, bool] = field(default_factory=dict)
    _window_flow: dict[tuple[int, int], bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for n, clock in self.clocks.items():
            self.marks[n] = []
            self._last[n] = clock.interval_number(self.started_s)
            self._flowed_back[n] = False

    def next_due(self, now_s: float, until_s: float) -> float | None:
        """The first boundary of any position after ``now_s`` and no later than ``until_s``."""
        due = [clock.boundary_s(self._last[n] + 1) for n, clock in self.clocks.items()]
        soonest = min(due, default=math.inf)
        return soonest if now_s < soonest <= until_s + _EPS_S else None

    def mark(self, now_s: float, reference_wh: Callable[[], float | None], power_w: float) -> None:
        """Note every boundary reached by ``now_s``, with the board at ``power_w``; the reference
        is read once, only if one was reached just now (None: it could not be read)."""
        read, energy = False, None
        for n, clock in self.clocks.items():
            for number in range(self._last[n] + 1, clock.interval_number(now_s) + 1):
                late = now_s - clock.boundary_s(number)
                seen = late <= LATEST_MARK_S
                if seen and not read:
                    read, energy = True, reference_wh()
                self.marks[n].append(Mark(number, late, energy if seen else None, abs(power_w)))
                self._window_flow[(n, number)] = self._flowed_back[n]
                self._flowed_back[n] = self._flowing_back
                self._last[n] = number

    def note_stimulus(self, stimulus: Stimulus | None) -> None:
        """A stimulus whose energy flows back (any element) spoils the windows it is applied in."""
        self._flowing_back = stimulus is not None and any(
            v * i * math.cos(math.radians(lag)) < 0
            for v, i, lag in zip(stimulus.element_voltages_v, stimulus.element_currents_a, stimulus.element_lags_deg))
        if self._flowing_back:
            self._flowed_back = {n: True for n in self._flowed_back}

    def closed_since_start(self, n: int, now_s: float) -> int:
        """How many intervals position ``n``'s clock has closed since the journal began."""
        return self.clocks[n].interval_number(now_s) - self.clocks[n].interval_number(self.started_s)

    def windows(self, n: int) -> list[Window]:
        """Every interval of position ``n`` with both of its boundaries seen."""
        clock, found = self.clocks[n], []
        for start, end in _pairs(self.marks[n]):
            if start.reference_wh is None or end.reference_wh is None:
                continue
            timing = sum((abs(mark.late_s) + clock.uncertainty_at(clock.boundary_s(mark.number))) * mark.power_w
                         for mark in (start, end)) / 3600.0
            found.append(Window(end.number, end.reference_wh - start.reference_wh, timing,
                                self._window_flow[(n, end.number)]))
        return found


def _pairs(marks: Iterable[Mark]) -> Iterable[tuple[Mark, Mark]]:
    previous: Mark | None = None
    for mark in marks:
        if previous is not None and mark.number == previous.number + 1:
            yield previous, mark
        previous = mark


# Reads one register from the meters at the given positions (all at once where the transport allows):
# position -> value; raises for a position that could not be read.
ReadBoard = Callable[[Collection[int], str], Mapping[int, float | int | str]]


def start_journal(positions: Iterable[int], read: ReadBoard, wait: Callable[[float], None],
                  now: Callable[[], float]) -> IntervalJournal:
    """Read each meter's interval length and record count, and locate the tick of its
    whole-second clock: first to a step, then by bisection over the next ticks (a clock ticks
    every second), to within a few milliseconds plus the reads' own time. The meters are read
    together, not one after another (at 40 positions, 720 reads in turn at every bench opening)."""
    positions = list(positions)
    lengths, unclocked = {}, {}
    for n, value in read(positions, "interval_length_s").items():
        length = float(value)
        low, high = INTERVAL_RANGE_S
        if math.isfinite(length) and low <= length <= high:
            lengths[n] = length
        else:
            unclocked[n] = f"interval_length_s reads {length:g} s, not a load-profile interval ({low:g} to {high:g} s)"
    counts = {n: int(count) for n, count in read(list(lengths), "interval_count").items()}
    ticks = _first_ticks(lengths, read, wait, now)
    stopped = sorted(lengths.keys() - ticks.keys())
    for n, shown in read(stopped, "clock_s").items() if stopped else ():
        unclocked[n] = (f"clock_s stayed at {int(shown)} s for {ALIGN_STEPS * ALIGN_STEP_S:g} s "
                        f"(the meter's clock stopped)")
    for _ in range(BISECTIONS):
        _halve(ticks, read, wait, now)
    located = now()
    clocks = {n: MeterClock(tick.shown - (tick.after + tick.before) / 2, (tick.after - tick.before) / 2, lengths[n],
                            located) for n, tick in ticks.items()}
    return IntervalJournal(clocks, {n: counts[n] for n in clocks}, located, unclocked)


@dataclass
class _Tick:
    """A meter's clock turned to ``shown`` seconds somewhere in (before, after] on the bench clock."""

    shown: int
    before: float
    after: float


def _first_ticks(positions: Iterable[int], read: ReadBoard, wait: Callable[[float], None],
                 now: Callable[[], float]) -> dict[int, _Tick]:
    first = {n: int(shown) for n, shown in read(list(positions), "clock_s").items()}
    ticks: dict[int, _Tick] = {}
    before = now()
    for _ in range(ALIGN_STEPS):
        if len(ticks) == len(first):
            break
        wait(ALIGN_STEP_S)
        after = now()
        for n, value in read(sorted(first.keys() - ticks.keys()), "clock_s").items():
            shown = int(value)
            if shown != first[n]:
                ticks[n] = _Tick(shown, before, after)
        before = after
    return ticks


def _halve(ticks: dict[int, _Tick], read: ReadBoard, wait: Callable[[float], None], now: Callable[[], float]) -> None:
    """Read each clock once at the middle of its tick's window, a whole number of seconds on: it
    has or has not turned yet, which halves the window. Clocks probed at the same moment (ticking
    together, as a board's meters set from one time source do) are read together."""
    t = now()
    probes: dict[float, list[int]] = {}
    for n, tick in ticks.items():
        probes.setdefault(tick.before + (tick.after - tick.before) / 2 + math.floor(t - tick.before) + 1, []).append(n)
    for probe, group in sorted(probes.items()):
        if probe > t:
            wait(probe - t)
            t = now()
        for n, shown in read(sorted(group), "clock_s").items():
            tick = ticks[n]
            seconds = math.floor(t - tick.before)  # whole seconds on from the tick's window
            if int(shown) >= tick.shown + seconds:
                tick.after = min(tick.after, t - seconds)
            else:
                tick.before = max(tick.before, t - seconds)
