"""Every meter position's comms, all at once where the transport allows.

Positions on links of their own (Modbus TCP) are served together from a pool of threads, so a
board's read costs about one meter's answer, not one per position; positions sharing one line
(an RS-485 bus) are served one after another. A register read from every position is timed
where it happens, so whoever pairs it with the reference's energy uses its own time, and a meter
whose comms fail spoils only its own position.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

from instruments.errors import InstrumentError

T = TypeVar("T")
MAX_THREADS = 32  # enough to have every read of an 80-position board in flight within a few answers' time


class RegisterReader(Protocol):
    def read(self, name: str) -> float | int | str: ...


@dataclass(frozen=True)
class TimedRead:
    """A register's value and when it was read: from the request going out (``t0``) to the reply
    decoded (``t1``), on the read clock (``MeterReads.now``)."""

    value: float | int | str
    t0: float
    t1: float

    @property
    def midpoint(self) -> float:
        return (self.t0 + self.t1) / 2

    @property
    def half_width(self) -> float:
        return (self.t1 - self.t0) / 2


@dataclass(frozen=True)
class BoardRead:
    """Every position's read of one register: the ones that answered, and why the others did not."""

    reads: dict[int, TimedRead]
    failed: dict[int, str]


class MeterReads:
    """Works on every position's meter. ``in_order``: one after another (positions on one shared
    line); else all at once. ``now`` is the read clock (monotonic seconds by default)."""

    def __init__(self, meters: Mapping[int, RegisterReader], *, in_order: bool = False,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.meters, self.in_order, self.now = meters, in_order, now
        self._pool: ThreadPoolExecutor | None = None

    def each(self, work: Callable[[int], T]) -> dict[int, T]:
        """``work(position)`` for every position, by position; what ``work`` raises is raised here
        (the first position's, in position order), once every position's work has been handed out."""
        if self.in_order or len(self.meters) < 2:
            return {n: work(n) for n in self.meters}
        pool = self._threads()
        futures = {n: pool.submit(work, n) for n in self.meters}
        return {n: future.result() for n, future in futures.items()}

    def read(self, name: str) -> BoardRead:
        """One register from every position, each read timed."""
        outcomes = self.each(lambda n: self._timed(self.meters[n], name))
        return BoardRead({n: o for n, o in outcomes.items() if isinstance(o, TimedRead)},
                         {n: o for n, o in outcomes.items() if isinstance(o, str)})

    def _timed(self, meter: RegisterReader, name: str) -> TimedRead | str:
        """The timed read, or why it failed: a failure on one position is that position's alone."""
        t0 = self.now()
        try:
            value = meter.read(name)
        except InstrumentError as error:
            return str(error)
        return TimedRead(value, t0, self.now())

    def _threads(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(min(len(self.meters), MAX_THREADS), thread_name_prefix="meter-read")
        return self._pool

    def close(self) -> None:
        """Stop the threads (a read still in flight ends within its driver's timeout)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

