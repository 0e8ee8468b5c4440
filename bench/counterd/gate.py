"""The counter board's gate logic, pure: input edges in, gate evidence out.

The protocol is instruments/PULSE_COUNTER.md. This one module is what `bench counterd` runs on
GPIO edges and what the simulated board (bench/sim/world.py) runs on simulated pulses, so the
simulator exercises the very logic of the daemon.

Times are ticks of the board's timebase, free-running and never wrapped here: periods and gate
durations are differences of whole tick counts, as a board that counts its timer overflows has
them. Only a timestamp the protocol shows is reduced modulo the wrap (``Timebase.stamp``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

TIMEBASE_HZ = 10_000_000  # the reference design's timebase (the protocol's examples assume it)
WRAP_TICKS = 2 ** 32  # a 32-bit timestamp: it wraps every 429.5 s at 10 MHz
NS_PER_S = 1_000_000_000
DEFAULT_FILTER_S = 0.0005  # the board's glitch filter at power-up
MAX_FILTER_S = 0.1
GATE_STATES = ("IDLE", "ARMED", "GATING", "DONE")


@dataclass(frozen=True)
class Timebase:
    """Ticks of ``hz`` per second, shown modulo ``wrap``."""

    hz: int = TIMEBASE_HZ
    wrap: int = WRAP_TICKS

    def ticks_from_ns(self, ns: int) -> int:
        """Whole ticks elapsed at ``ns`` nanoseconds of a clock (exact integer arithmetic: a 64-bit
        nanosecond clock never rounds differently from one call to the next)."""
        return ns * self.hz // NS_PER_S

    def ticks_from_s(self, seconds: float) -> int:
        return round(seconds * self.hz)

    def ticks_from_s_array(self, seconds: np.ndarray) -> np.ndarray:
        """``ticks_from_s`` of every element: np.rint rounds half to even as round() does, and the
        rounded doubles are whole numbers that int64 holds exactly (to 29,000 years at 10 MHz)."""
        return np.rint(seconds * self.hz).astype(np.int64)

    def stamp(self, ticks: int, offset: int = 0) -> int:
        """What the wrapping timestamp reads at free-running ``ticks`` (plus a board's ``offset``)."""
        return (ticks + offset) % self.wrap


class LostEvents(Exception):
    """Input events were lost while the gate was open: its counts are not the inputs' and its
    evidence is refused, never reported."""


@dataclass(frozen=True)
class Evidence:
    """A DONE gate, as ``GATE:RES?`` gives it (timestamps still free-running here)."""

    mut_edges: int
    ref_pulses: int
    start_ticks: int
    stop_ticks: int
    rejected: int
    period_min: int
    period_max: int


@dataclass
class Channel:
    """One MUT input and its gate.

    Edges arrive in time order as (ticks, rising). A pulse is an edge only if it lasts at least
    ``filter_ticks``: its rising edge is taken (with the reference count latched at that moment)
    once the pulse has lasted that long, at its falling edge or on ``settle``; a narrower pulse is
    rejected and, while the gate is open, counted. An edge that reports the level the line already
    has (rising while active, falling while idle) is a pulse too narrow for the input to see both
    of its edges (Linux reads the level for a both-edge line after the interrupt, so a pulse shorter
    than that latency reports one level twice): rejected, unless the filter is zero.

    The gate opens on the first edge after ``arm`` and closes ``target`` edges later. Input events
    lost while the gate is armed or open (``lose``) make its evidence refused.
    """

    filter_ticks: int = round(DEFAULT_FILTER_S * TIMEBASE_HZ)
    state: str = "IDLE"
    target: int = 0
    mut_edges: int = 0  # edges inside the gate so far (GATE:STAT?'s k)
    total_edges: int = 0  # since power-up (COUN:MUT?)
    rejected: int = 0  # narrow pulses while the gate was open
    lost: int = 0  # input events lost while the gate was armed or open
    start_ticks: int = 0
    stop_ticks: int = 0
    ref_start: int = 0
    ref_stop: int = 0
    period_min: int = 0
    period_max: int = 0
    active: bool = False  # the input's level
    # A pulse not yet as wide as the filter: (ticks, reference count, whether it may open the gate).
    _rise: tuple[int, int, bool] | None = field(default=None, repr=False)
    _last_edge: int = field(default=0, repr=False)

    def arm(self, pulses: int) -> None:
        if pulses < 1:
            raise ValueError(f"a gate closes on the n-th edge, n >= 1, not {pulses}")
        self.state, self.target, self.mut_edges, self.lost = "ARMED", pulses, 0, 0
        if self._rise is not None:  # begun before the arming: not the gate's "next" edge
            self._rise = (*self._rise[:2], False)

    def abort(self) -> None:
        """Back to IDLE unless DONE: a finished gate keeps its result."""
        if self.state in ("ARMED", "GATING"):
            self.state = "IDLE"

    def edge(self, ticks: int, rising: bool, ref_count: int) -> None:
        """The input changed level at ``ticks``; ``ref_count`` is the reference count at that moment."""
        if rising == self.active:
            if self.filter_ticks:
                self._reject()
            else:
                self._count(ticks, ref_count)
        elif rising:
            self.active, self._rise = True, (ticks, ref_count, True)
            self.settle(ticks)
        else:
            self.active = False
            self.settle(ticks)
            if self._rise is not None:
                self._rise = None
                self._reject()

    def pulse(self, ticks: int, width_ticks: int, ref_count: int) -> None:
        """A whole pulse: both of its edges."""
        self.edge(ticks, True, ref_count)
        self.edge(ticks + width_ticks, False, ref_count)

    def pulse_train(self, rises: np.ndarray, width_ticks: int, ref_count_at: Callable[[int], int]) -> None:
        """Whole pulses of one width, rising at ``rises``, as ``pulse`` would take them one by one,
        but in bulk where that is plain counting: the input idle (so no pulse pending) and each pulse
        at least the filter's width. Pulses that overlap or come out of order are then counted as
        ``pulse`` counts them, each whole pulse before the next begins. ``ref_count_at(i)`` is the
        reference count at the i-th rising edge, asked only where the gate opens or closes. Anything
        else goes pulse by pulse (tests/test_gate_train.py checks both ways end in the same state)."""
        if self.active or width_ticks < self.filter_ticks:
            for i, ticks in enumerate(rises.tolist()):
                self.pulse(ticks, width_ticks, ref_count_at(i))
            return
        first, n = 0, len(rises)
        if n and self.state == "ARMED":
            self._count(int(rises[0]), ref_count_at(0))
            first = 1
        if first < n and self.state == "GATING":
            self._count_into_gate(rises, first, ref_count_at)
        self.total_edges += n - first

    def only_counts(self, width_ticks: int) -> bool:
        """Whether clean pulses this wide would only add to the total (``pulse_train`` does nothing
        else with them): the input idle, each pulse past the filter, no gate armed or open."""
        return not self.active and width_ticks >= self.filter_ticks and self.state in ("IDLE", "DONE")

    def _count_into_gate(self, rises: np.ndarray, first: int, ref_count_at: Callable[[int], int]) -> None:
        """The gate's part of ``_count`` for ``rises[first:]``, one edge after another up to its target."""
        left = self.target - self.mut_edges
        end = len(rises) if left <= 0 else min(len(rises), first + left)
        edges = rises[first:end]
        period = int(edges[0]) - self._last_edge  # the first from the gate's last edge; the rest between these
        shortest, longest = period, period
        if len(edges) > 1:
            periods = edges[1:] - edges[:-1]
            shortest, longest = min(shortest, int(periods.min())), max(longest, int(periods.max()))
        self.period_min = shortest if self.mut_edges == 0 else min(self.period_min, shortest)
        self.period_max = max(self.period_max, longest)
        self.mut_edges += end - first
        self._last_edge = int(rises[end - 1])
        if self.mut_edges == self.target:
            self.state, self.stop_ticks, self.ref_stop = "DONE", self._last_edge, ref_count_at(end - 1)

    def settle(self, ticks: int) -> None:
        """No edge came before ``ticks``: a pulse that has lasted the filter's width by then is an edge."""
        if self._rise is not None and ticks - self._rise[0] >= self.filter_ticks:
            self._count(*self._rise)
            self._rise = None

    def lose(self, count: int) -> None:
        """``count`` input events never arrived (the kernel's buffer overflowed)."""
        if self.state in ("ARMED", "GATING"):
            self.lost += count

    def evidence(self) -> Evidence:
        """A DONE gate's evidence; LostEvents if any input event was lost on the way."""
        if self.state != "DONE":
            raise ValueError(f"the gate is {self.state}, not DONE")
        if self.lost:
            raise LostEvents(f"{self.lost} input events lost while the gate was open")
        return Evidence(self.mut_edges, self.ref_stop - self.ref_start, self.start_ticks, self.stop_ticks,
                        self.rejected, self.period_min, self.period_max)

    def _reject(self) -> None:
        if self.state == "GATING":
            self.rejected += 1

    def _count(self, ticks: int, ref_count: int, may_open: bool = True) -> None:
        self.total_edges += 1
        if self.state == "ARMED" and may_open:
            self.state, self.start_ticks, self.ref_start, self._last_edge = "GATING", ticks, ref_count, ticks
            self.rejected, self.period_min, self.period_max = 0, 0, 0
        elif self.state == "GATING":
            self.mut_edges += 1
            period, self._last_edge = ticks - self._last_edge, ticks
            self.period_min = period if self.mut_edges == 1 else min(self.period_min, period)
            self.period_max = max(self.period_max, period)
            if self.mut_edges == self.target:
                self.state, self.stop_ticks, self.ref_stop = "DONE", ticks, ref_count


class Board:
    """A board's counting inputs: MUT channels, the reference count, and input events lost."""

    def __init__(self, channels: int, filter_ticks: int = round(DEFAULT_FILTER_S * TIMEBASE_HZ)) -> None:
        self.channels = [Channel(filter_ticks) for _ in range(channels)]
        self.reference_count = 0
        self.lost_events = 0

    def reference_pulse(self) -> None:
        self.reference_count += 1

    def mut_edge(self, index: int, ticks: int, rising: bool) -> None:
        """An edge on channel ``index`` (0-based), the reference count latched as it stands: the
        caller feeds every input's edges in the order they happened."""
        self.channels[index].edge(ticks, rising, self.reference_count)

    def lose(self, count: int) -> None:
        """Events lost, on which inputs unknown: every gate armed or open is spoilt."""
        self.lost_events += count
        for channel in self.channels:
            channel.lose(count)

    def settle(self, ticks: int) -> None:
        for channel in self.channels:
            channel.settle(ticks)
