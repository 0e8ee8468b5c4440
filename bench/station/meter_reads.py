"""Every meter position's comms, all at once where the transport allows.

Positions on links of their own (Modbus TCP) are served together, so a board's read costs about
one meter's answer, not one per position; positions sharing one line (an RS-485 bus) are served
one after another. A register from every position goes through the driver's ``read_at_once``
where it has one: every request sent, then every reply read, on one thread. Other work for every
position goes to a pool of threads, which pays only where a meter takes time to answer: it is done
in turn until a pass shows its median position taking ``IN_TURN_BELOW_S`` or more (the first pass
shows it for meters on real links). A register read from every position is timed where it
happens, so whoever pairs it with the reference's energy uses its own time, and a meter whose
comms fail spoils only its own position.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from instruments.errors import InstrumentError

T = TypeVar("T")
MAX_THREADS = 32  # enough to have every read of an 80-position board in flight within a few answers' time
# Working value: work on meters whose median position, in a pass in turn, takes less is done in
# turn. Measured on the simulated bench (2 cores, meters answering at once): a read handed to a
# thread cost 0.25-0.5 ms more than one made in turn (hand-offs of the interpreter lock), so a
# 40-position read took 20 ms through the pool and 11 ms in turn. A meter on a real link takes
# several ms to answer a Modbus request (its own processing), and work on its board goes to the pool.
IN_TURN_BELOW_S = 0.001


class RegisterReader(Protocol):
    def read(self, name: str) -> float | int | str: ...


# A driver's reads of one register from many meters, all in flight at once: position -> (value, sent
# at, answered at) on the given clock, or None for a position to read the usual way.
Answer = tuple[float | int | str, float, float]
AtOnce = Callable[[Mapping[int, Any], str, Callable[[], float]], Mapping[int, "Answer | None"]]


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
    line); else all at once. ``now`` is the read clock (monotonic seconds by default): reads are
    timed on it, and so is a pass in turn."""

    def __init__(self, meters: Mapping[int, RegisterReader], *, in_order: bool = False,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.meters, self.in_order, self.now = meters, in_order, now
        self.in_turn = True  # served in turn until a pass shows the meters slow enough for threads to pay
        self._pool: ThreadPoolExecutor | None = None

    def each(self, work: Callable[[int], T], only: Collection[int] | None = None) -> dict[int, T]:
        """``work(position)`` for every position (or those ``only`` names), by position; what
        ``work`` raises is raised here (the first position's, in position order), once every
        position's work has been done."""
        numbers = self._numbers(only)
        if self.in_order or self.in_turn or len(numbers) < 2:
            return self._in_turn(work, numbers)
        pool = self._threads()
        futures = {n: pool.submit(work, n) for n in numbers}
        return {n: future.result() for n, future in futures.items()}

    def _numbers(self, only: Collection[int] | None) -> list[int]:
        return list(self.meters) if only is None else [n for n in self.meters if n in only]

    def _in_turn(self, work: Callable[[int], T], numbers: list[int]) -> dict[int, T]:
        """Every position's work one after another. A pass whose median position took
        ``IN_TURN_BELOW_S`` or more hands the next passes to threads (positions on a shared line
        stay in turn); the median, so that one slow moment (a collection, a busy machine) does not.
        Timed on the read clock, as the reads are."""
        done, failed, took = {}, {}, []
        for n in numbers:
            started = self.now()
            try:
                done[n] = work(n)
            except Exception as error:  # noqa: BLE001 - raised below, once every position has had its turn
                failed[n] = error
            took.append(self.now() - started)
        if took and statistics.median(took) >= IN_TURN_BELOW_S:
            self.in_turn = False
        if failed:
            raise next(iter(failed.values()))
        return done

    def read(self, name: str, only: Collection[int] | None = None) -> BoardRead:
        """One register from every position (or those ``only`` names), each read timed. Meters whose
        driver sends reads without waiting (``read_at_once``: Modbus TCP) have them all in flight on
        this thread; the positions it leaves unread, and every other driver's, are read one by one
        as ``each`` does."""
        at_once = self._at_once()
        if at_once is None:
            outcomes = self.each(lambda n: self._timed(self.meters[n], name), only)
        else:
            answers = at_once({n: self.meters[n] for n in self._numbers(only)}, name, self.now)
            outcomes = {n: TimedRead(*answer) if answer is not None else self._timed(self.meters[n], name)
                        for n, answer in answers.items()}
        return BoardRead({n: o for n, o in sorted(outcomes.items()) if isinstance(o, TimedRead)},
                         {n: o for n, o in sorted(outcomes.items()) if isinstance(o, str)})

    def _at_once(self) -> AtOnce | None:
        """The drivers' way to have every read in flight on one thread, where all positions share
        one driver that has it and their links are their own."""
        kinds = {type(meter) for meter in self.meters.values()}
        if self.in_order or len(self.meters) < 2 or len(kinds) != 1:
            return None
        at_once: AtOnce | None = getattr(kinds.pop(), "read_at_once", None)
        return at_once

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

