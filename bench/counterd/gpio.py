"""The thin libgpiod v2 layer of `bench counterd`: one line request for every input, edge events put
back in the order they happened, and the events the kernel dropped found and counted.

gpiod (PyPI: the libgpiod v2 bindings, ``gpiod.request_lines``) is imported only when a chip is
opened, so the bench and its tests run without it. Kernel behaviour relied on (gpiolib-cdev,
Documentation/userspace-api/gpio/gpio-v2-line-event-read.rst):

- an edge's timestamp and its request-wide sequence number are taken together in the hard
  interrupt handler, but the event is queued by the interrupt's thread, so two lines' events can
  reach the queue out of order: ``Sequencer`` restores the sequence-number order, which is the
  order of the timestamps;
- a full event queue drops its oldest event, which shows as a gap in the sequence numbers (a u32,
  so they wrap); a gap still open after ``reorder_ns`` is a loss, and every gate armed or open
  then is refused;
- with ``Clock.MONOTONIC`` the timestamps are CLOCK_MONOTONIC nanoseconds, the clock of
  ``time.monotonic_ns``, so the daemon can tell how old an event is.
"""
from __future__ import annotations

import heapq
import importlib
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from types import ModuleType
from typing import Any, Protocol

from bench.counterd.config import CounterdConfig, LineConfig
from bench.counterd.gate import Board, Channel, Timebase

SEQNO_MODULUS = 2 ** 32  # struct gpio_v2_line_event: __u32 seqno, __u32 line_seqno
MAX_BATCHES = 8  # reads per pass under the lock: a flood of edges cannot starve the protocol

_log = logging.getLogger(__name__)


class GpioError(Exception):
    """The GPIO side cannot run: no bindings, no chip, lines busy."""


class EdgeEventLike(Protocol):
    """gpiod.EdgeEvent's fields."""

    @property
    def event_type(self) -> Any: ...
    @property
    def timestamp_ns(self) -> int: ...
    @property
    def line_offset(self) -> int: ...
    @property
    def global_seqno(self) -> int: ...
    @property
    def line_seqno(self) -> int: ...


@dataclass(frozen=True)
class Gap:
    """``count`` events the kernel numbered but never delivered."""

    count: int


class Sequencer:
    """Edge events in the order of their request-wide sequence numbers, with the gaps in it.

    A missing number is waited for until the event after it is ``hold_ns`` old (by the events'
    own clock); then it is lost. An event that turns up after its number was given up is dropped
    and counted in ``late``: its loss was already reported.
    """

    def __init__(self, hold_ns: int) -> None:
        self.hold_ns = hold_ns
        self.late = 0
        self._next = 1  # the kernel numbers a request's events from 1
        self._held: list[tuple[int, int, EdgeEventLike]] = []
        self._order = itertools.count()

    @property
    def idle(self) -> bool:
        """Nothing held back: every event numbered so far has been released or given up."""
        return not self._held

    def _unwrap(self, seqno: int) -> int:
        ahead = (seqno - self._next) % SEQNO_MODULUS
        return self._next + ahead if ahead < SEQNO_MODULUS // 2 else self._next + ahead - SEQNO_MODULUS

    def push(self, events: Sequence[EdgeEventLike]) -> None:
        for event in events:
            number = self._unwrap(event.global_seqno)
            if number < self._next:
                self.late += 1
            else:
                heapq.heappush(self._held, (number, next(self._order), event))

    def release(self, now_ns: int) -> list[EdgeEventLike | Gap]:
        """What can be passed on at ``now_ns``: events in order, a Gap where numbers were lost."""
        out: list[EdgeEventLike | Gap] = []
        while self._held:
            number, _, event = self._held[0]
            if number < self._next:  # the same number twice: the kernel never does this
                heapq.heappop(self._held)
                self.late += 1
                continue
            if number > self._next:
                if now_ns - event.timestamp_ns < self.hold_ns:
                    break
                out.append(Gap(number - self._next))
            heapq.heappop(self._held)
            out.append(event)
            self._next = number + 1
        return out


def load_gpiod() -> ModuleType:
    """The libgpiod v2 bindings (PyPI ``gpiod`` 2.x), or a GpioError saying how to get them."""
    try:
        gpiod = importlib.import_module("gpiod")
    except ImportError:
        raise GpioError("the libgpiod v2 Python bindings are not installed: pip install 'gpiod>=2.1' "
                        "(the distribution's python3-libgpiod 1.x has another API)") from None
    if not hasattr(gpiod, "request_lines"):
        raise GpioError(f"gpiod {getattr(gpiod, '__version__', '?')} is the libgpiod v1 API; "
                        "bench counterd needs gpiod 2.x (pip install 'gpiod>=2.1')")
    return gpiod


class GpioBoard:
    """A counter board on one GPIO chip: its channels' and reference's edges counted by the shared
    gate logic, its interlock read from the line. A ``device.CounterBoard``.

    Not thread-safe: the daemon calls ``process`` and the protocol's reads under one lock, and
    only ``wait`` outside it.
    """

    def __init__(self, config: CounterdConfig, gpiod: ModuleType | None = None,
                 clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.config = config
        self._gpiod = gpiod
        self._clock_ns = clock_ns
        self.board = Board(len(config.channels), config.timebase.ticks_from_s(config.filter_s))
        self.sequencer = Sequencer(config.reorder_ns)
        self._roles = {line.offset: index for index, line in enumerate(config.channels)}
        # Each line numbers its own events too (from 1): a jump names the input that lost some.
        self._next_line_seqno = dict.fromkeys([*self._roles, config.reference.offset], 1)
        self.lost_by_line: dict[int, int] = {}
        self._request: Any = None
        self._rising: Any = None  # gpiod.EdgeEvent.Type.RISING_EDGE, once open
        self._active: Any = None  # gpiod.line.Value.ACTIVE

    # -- the lines --------------------------------------------------------------------------------

    def _settings(self, gpiod: ModuleType, line: LineConfig, edge: Any) -> Any:
        return gpiod.LineSettings(
            direction=gpiod.line.Direction.INPUT, edge_detection=edge,
            bias=getattr(gpiod.line.Bias, line.bias.upper().replace("-", "_")), active_low=line.active_low,
            debounce_period=timedelta(seconds=line.debounce_s), event_clock=gpiod.line.Clock.MONOTONIC)

    def open(self) -> GpioBoard:
        """Request every line: both edges of each channel (the glitch filter needs the pulse's
        width), rising edges of the reference, the interlock's level only."""
        gpiod = self._gpiod = self._gpiod or load_gpiod()
        edge, config = gpiod.line.Edge, self.config
        lines = {line.offset: self._settings(gpiod, line, edge.BOTH) for line in config.channels}
        lines[config.reference.offset] = self._settings(gpiod, config.reference, edge.RISING)
        lines[config.interlock.offset] = self._settings(gpiod, config.interlock, edge.NONE)
        try:
            self._request = gpiod.request_lines(config.chip, consumer=config.consumer, config=lines,
                                                event_buffer_size=config.event_buffer_size)
        except (OSError, ValueError) as error:
            raise GpioError(f"{config.chip}: cannot request lines {sorted(lines)}: {error}") from None
        self._rising, self._active = gpiod.EdgeEvent.Type.RISING_EDGE, gpiod.line.Value.ACTIVE
        return self

    def close(self) -> None:
        if self._request is not None:
            self._request.release()
            self._request = None

    def wait(self, timeout_s: float) -> bool:
        """Block until edge events wait (True) or ``timeout_s`` has passed."""
        return bool(self._request.wait_edge_events(timeout_s))

    def process(self) -> None:
        """Read the events waiting, pass on those whose turn has come, and let the filter settle up
        to the time by which every event must have arrived."""
        now, drained = self._clock_ns(), False
        for _ in range(MAX_BATCHES):
            drained = not self._request.wait_edge_events(0)
            if drained:
                break
            self.sequencer.push(self._request.read_edge_events(self.config.event_buffer_size))
        for item in self.sequencer.release(now):
            if isinstance(item, Gap):
                _log.warning("%s: %d edge events lost (the kernel's event buffer overflowed); every gate armed "
                             "or open is refused", self.config.chip, item.count)
                self.board.lose(item.count)
            else:
                self._apply(item)
        if drained and self.sequencer.idle:  # nothing before the horizon can still be on its way
            self.board.settle(self.config.timebase.ticks_from_ns(now - self.config.reorder_ns))

    def _apply(self, event: EdgeEventLike) -> None:
        offset, config = event.line_offset, self.config
        expected = self._next_line_seqno.get(offset)
        if expected is None:  # the interlock has no edge detection: the kernel sends nothing else
            _log.warning("%s: an edge event on line %d, which is no counting input", config.chip, offset)
            return
        missing = (event.line_seqno - expected) % SEQNO_MODULUS
        if missing:
            self.lost_by_line[offset] = self.lost_by_line.get(offset, 0) + missing
            name = "reference" if offset == config.reference.offset else f"channel {self._roles[offset] + 1}"
            _log.warning("%s: line %d (%s) lost %d edge events", config.chip, offset, name, missing)
        self._next_line_seqno[offset] = (event.line_seqno + 1) % SEQNO_MODULUS
        if offset == config.reference.offset:
            self.board.reference_pulse()
        else:
            self.board.mut_edge(self._roles[offset], config.timebase.ticks_from_ns(event.timestamp_ns),
                                event.event_type == self._rising)

    # -- device.CounterBoard ------------------------------------------------------------------------

    @property
    def timebase(self) -> Timebase:
        return self.config.timebase

    @property
    def channels(self) -> Sequence[Channel]:
        return self.board.channels

    def now_ticks(self) -> int:
        return self.config.timebase.ticks_from_ns(self._clock_ns())

    def stamp(self, ticks: int) -> int:
        return self.config.timebase.stamp(ticks)

    def reference_count(self) -> int:
        return self.board.reference_count

    def lost_events(self) -> int:
        return self.board.lost_events

    def interlock_closed(self) -> bool:
        """The line's level now (kernel-debounced): active is CLOSED; a line that cannot be read is OPEN."""
        if self._request is None:
            return False
        try:
            value = self._request.get_value(self.config.interlock.offset)
        except OSError as error:
            _log.error("%s: interlock line %d unreadable (%s): reported OPEN", self.config.chip,
                       self.config.interlock.offset, error)
            return False
        return bool(value == self._active)
