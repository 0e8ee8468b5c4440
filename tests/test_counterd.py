"""`bench counterd`: the shared gate logic, the libgpiod v2 layer against a stand-in of the gpiod 2.x
bindings, the whole daemon driven by the unchanged SerialPulseCounter on a pty and on TCP, and real
lines through the kernel's gpio-sim where the kernel has it."""
from __future__ import annotations

import argparse
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import serial

from bench.counterd import cli
from bench.counterd.config import MAX_EVENT_BUFFER, CounterdConfig, LineConfig, load_config
from bench.counterd.daemon import Daemon
from bench.counterd.gate import WRAP_TICKS, Board, Channel, LostEvents, Timebase
from bench.counterd.gpio import SEQNO_MODULUS, Gap, GpioBoard, GpioError, Sequencer, load_gpiod
from bench.datafiles import ConfigError
from instruments.errors import InstrumentError
from instruments.pulse_counter import SerialPulseCounter
from tests.helpers import REPO

MS = 1_000_000  # ns
S = 1_000_000_000
WRAP_NS = WRAP_TICKS * 100  # at 10 MHz a tick is 100 ns: the 32-bit timestamp wraps every 429.5 s
CHIP = "/dev/gpiochip-test"


# -- a stand-in for the gpiod 2.x bindings ----------------------------------------------------
#
# The same module layout, names and signatures as gpiod 2.5 (PyPI): gpiod.request_lines(path, config,
# consumer=None, event_buffer_size=None, output_values=None) -> LineRequest; LineRequest's
# wait_edge_events(timeout), read_edge_events(max_events), get_value(line), fileno(), release();
# gpiod.EdgeEvent (frozen, built from an int event type, as the C extension builds it) and its Type;
# gpiod.LineSettings' fields; the enums in gpiod.line. Behind it, a chip that behaves as
# gpiolib-cdev does: edges by the line's logical level (active_low inverts), only the edges asked
# for, a FIFO of event_buffer_size (default 16 per line, rounded up to a power of two, at most 1024)
# that drops its OLDEST event when full, u32 sequence numbers per request and per line.

def fake_gpiod() -> types.ModuleType:
    gpiod: Any = types.ModuleType("gpiod")
    line: Any = types.ModuleType("gpiod.line")

    class Value(Enum):
        INACTIVE = 0
        ACTIVE = 1

        def __bool__(self) -> bool:
            return self == self.ACTIVE

    class Direction(Enum):
        AS_IS = 1
        INPUT = 2
        OUTPUT = 3

    class Bias(Enum):
        AS_IS = 1
        UNKNOWN = 2
        DISABLED = 3
        PULL_UP = 4
        PULL_DOWN = 5

    class Drive(Enum):
        PUSH_PULL = 1
        OPEN_DRAIN = 2
        OPEN_SOURCE = 3

    class Edge(Enum):
        NONE = 1
        RISING = 2
        FALLING = 3
        BOTH = 4

    class Clock(Enum):
        MONOTONIC = 1
        REALTIME = 2
        HTE = 3

    for enum in (Value, Direction, Bias, Drive, Edge, Clock):
        setattr(line, enum.__name__, enum)

    @dataclass(repr=False)
    class LineSettings:
        direction: Direction = Direction.AS_IS
        edge_detection: Edge = Edge.NONE
        bias: Bias = Bias.AS_IS
        drive: Drive = Drive.PUSH_PULL
        active_low: bool = False
        debounce_period: timedelta = timedelta()
        event_clock: Clock = Clock.MONOTONIC
        output_value: Value = Value.INACTIVE

    @dataclass(frozen=True, init=False, repr=False)
    class EdgeEvent:
        class Type(Enum):
            RISING_EDGE = 1
            FALLING_EDGE = 2

        event_type: Type
        timestamp_ns: int
        line_offset: int
        global_seqno: int
        line_seqno: int

        def __init__(self, event_type: int, timestamp_ns: int, line_offset: int, global_seqno: int,
                     line_seqno: int):
            object.__setattr__(self, "event_type", EdgeEvent.Type(event_type))
            object.__setattr__(self, "timestamp_ns", timestamp_ns)
            object.__setattr__(self, "line_offset", line_offset)
            object.__setattr__(self, "global_seqno", global_seqno)
            object.__setattr__(self, "line_seqno", line_seqno)

    class RequestReleasedError(Exception):
        pass

    class LineRequest:
        def __init__(self, chip: FakeChip, settings: dict[int, LineSettings], capacity: int, consumer: str | None):
            self.chip, self.settings, self.capacity, self.consumer = chip, settings, capacity, consumer
            self.fifo: deque[tuple[int, int, int, int, int]] = deque()
            self.seqno = 0
            self.line_seqnos = dict.fromkeys(settings, 0)
            self._read_fd, self._write_fd = os.pipe()
            self.released = False

        def _check_released(self) -> None:
            if self.released:
                raise RequestReleasedError()

        def wait_edge_events(self, timeout: timedelta | float | None = None) -> bool:
            self._check_released()
            seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
            return self._read_fd in select.select([self._read_fd], [], [], seconds)[0]

        def read_edge_events(self, max_events: int | None = None) -> list[EdgeEvent]:
            self._check_released()
            with self.chip.lock:  # libgpiod reads 64 at most unless told otherwise
                taken = [self.fifo.popleft() for _ in range(min(max_events or 64, len(self.fifo)))]
                if taken and not self.fifo:
                    os.read(self._read_fd, 1)
            return [EdgeEvent(*raw) for raw in taken]

        def get_value(self, line: int | str) -> Value:
            self._check_released()
            if not isinstance(line, int):
                raise ValueError(f"unknown line name: {line}")  # the stand-in's lines have no names
            return Value.ACTIVE if self.chip.logical(line) else Value.INACTIVE

        def fileno(self) -> int:
            self._check_released()
            return self._read_fd

        def release(self) -> None:
            if not self.released:
                self.released = True
                os.close(self._read_fd)
                os.close(self._write_fd)
                self.chip.request = None

        def put(self, rising: bool, timestamp_ns: int, offset: int) -> None:
            """gpiolib-cdev's linereq_put_event: a full FIFO drops its oldest event."""
            self.seqno = (self.seqno + 1) % SEQNO_MODULUS
            self.line_seqnos[offset] = (self.line_seqnos[offset] + 1) % SEQNO_MODULUS
            kind = EdgeEvent.Type.RISING_EDGE if rising else EdgeEvent.Type.FALLING_EDGE
            if len(self.fifo) == self.capacity:
                self.fifo.popleft()
            elif not self.fifo:
                os.write(self._write_fd, b"!")
            self.fifo.append((kind.value, timestamp_ns, offset, self.seqno, self.line_seqnos[offset]))

    def request_lines(path: str, config: dict[Any, LineSettings | None], consumer: str | None = None,
                      event_buffer_size: int | None = None, output_values: dict[Any, Value] | None = None,
                      ) -> LineRequest:
        chip = gpiod.chips.get(path)
        if chip is None:
            raise FileNotFoundError(2, "No such file or directory", path)
        if chip.request is not None:
            raise OSError(16, "Device or resource busy")
        settings = {offset: s or LineSettings() for offset, s in config.items()}
        size = min(event_buffer_size or 16 * len(settings), 1024)
        chip.calls.append({"path": path, "config": settings, "consumer": consumer,
                           "event_buffer_size": event_buffer_size})
        chip.request = LineRequest(chip, settings, 1 << (size - 1).bit_length(), consumer)
        for offset, s in settings.items():  # the bias sets the level of a line nothing drives
            chip.levels.setdefault(offset, s.bias is Bias.PULL_UP)
        return chip.request

    gpiod.line = line
    gpiod.LineSettings = LineSettings
    gpiod.EdgeEvent = EdgeEvent
    gpiod.LineRequest = LineRequest
    gpiod.RequestReleasedError = RequestReleasedError
    gpiod.request_lines = request_lines
    gpiod.__version__ = "2.5.0"
    gpiod.api_version = "2.2"
    gpiod.chips = {}  # the stand-in's own: the chips its request_lines opens, by path
    return gpiod


class FakeChip:
    """The lines of a chip as the wiring drives them (physical levels), and the request on them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.levels: dict[int, bool] = {}
        self.request: Any = None
        self.calls: list[dict[str, Any]] = []

    def logical(self, offset: int) -> bool:
        return self.levels[offset] != self.request.settings[offset].active_low

    def drive(self, offset: int, active: bool, at_ns: int) -> None:
        """Drive the line to its logical ``active`` level at ``at_ns``; the request sees the edges it asked for."""
        with self.lock:
            settings = self.request.settings[offset]
            high = active != settings.active_low
            if self.levels[offset] == high:
                return
            self.levels[offset] = high
            edge = settings.edge_detection.name
            if edge == "BOTH" or (edge == "RISING" and active) or (edge == "FALLING" and not active):
                self.request.put(active, at_ns, offset)

    def pending(self) -> int:
        with self.lock:
            return len(self.request.fifo) if self.request is not None else 0


@dataclass
class FakeClock:
    now_ns: int = 0

    def __call__(self) -> int:
        return self.now_ns


def config(**overrides: Any) -> CounterdConfig:
    base = CounterdConfig(chip=CHIP, channels=(LineConfig(5), LineConfig(6)), reference=LineConfig(17),
                          interlock=LineConfig(27, debounce_s=0.02), serial="PC0101")
    return replace(base, **overrides)


@pytest.fixture
def gpiod() -> types.ModuleType:
    module = fake_gpiod()
    module.chips[CHIP] = FakeChip()
    return module


@pytest.fixture
def chip(gpiod: types.ModuleType) -> FakeChip:
    chip: FakeChip = gpiod.chips[CHIP]
    return chip


# -- the gate logic, pure ---------------------------------------------------------------------

def pulses(channel: Channel, starts: list[int], width: int = 100_000, ref: int = 0) -> None:
    for t in starts:
        channel.pulse(t, width, ref)


def test_a_gate_opens_on_the_first_edge_after_arming_and_closes_n_edges_later():
    channel = Channel(filter_ticks=5000)
    pulses(channel, [0, 1000_000])  # before arming: counted free-running only
    channel.arm(3)
    assert (channel.state, channel.mut_edges, channel.total_edges) == ("ARMED", 0, 2)
    for k, t in enumerate([2_000_000, 3_000_000, 4_000_000, 5_000_000]):
        channel.pulse(t, 100_000, ref_count=100 * k + 7)
        assert channel.state == ("GATING" if k < 3 else "DONE") and channel.mut_edges == k
    pulses(channel, [6_000_000])  # after DONE: counted, the result kept
    gate = channel.evidence()
    assert (gate.mut_edges, gate.ref_pulses, gate.start_ticks, gate.stop_ticks) == (3, 300, 2_000_000, 5_000_000)
    assert (gate.period_min, gate.period_max, channel.total_edges) == (1_000_000, 1_000_000, 7)
    channel.abort()
    assert channel.state == "DONE"  # a finished gate keeps its result
    channel.arm(2)
    channel.abort()
    assert channel.state == "IDLE"
    with pytest.raises(ValueError, match="n >= 1"):
        channel.arm(0)
    with pytest.raises(ValueError, match="IDLE, not DONE"):
        channel.evidence()


def test_the_reference_count_is_latched_at_the_gates_edges():
    """Reference pulses between the opening and the closing MUT edge, in the order they happened."""
    board = Board(channels=2, filter_ticks=0)
    board.channels[0].arm(2)
    timeline = sorted([(t, "ref") for t in range(5, 400, 10)] + [(t, "mut") for t in (100, 200, 300)])
    for t, kind in timeline:
        if kind == "ref":
            board.reference_pulse()
        else:
            board.mut_edge(0, t, True)
            board.mut_edge(0, t + 1, False)
    gate = board.channels[0].evidence()
    assert gate.ref_pulses == len([t for t in range(5, 400, 10) if 100 < t < 300]) == 20
    assert board.reference_count == 40 and board.channels[1].total_edges == 0


def test_periods_and_durations_do_not_see_the_timestamp_wrap():
    timebase = Timebase()
    start = WRAP_TICKS - 50_000_000  # 5 s before the wrap
    channel = Channel()
    channel.arm(10)
    pulses(channel, [start + k * 36_000_000 for k in range(11)])
    gate = channel.evidence()
    assert timebase.stamp(gate.stop_ticks) < timebase.stamp(gate.start_ticks)
    assert (timebase.stamp(gate.stop_ticks) - timebase.stamp(gate.start_ticks)) % WRAP_TICKS == 360_000_000
    assert gate.period_min == gate.period_max == 36_000_000
    assert timebase.ticks_from_ns(WRAP_NS + 99) == WRAP_TICKS and timebase.stamp(WRAP_TICKS + 5) == 5
    assert timebase.stamp(10, offset=WRAP_TICKS - 4) == 6


def test_pulses_narrower_than_the_filter_are_rejected_and_counted_while_gating():
    channel = Channel(filter_ticks=5000)
    channel.pulse(0, 4999, ref_count=0)  # before the gate: not an edge, not counted
    channel.arm(2)
    channel.pulse(1_000_000, 5000, ref_count=0)  # exactly the filter's width: an edge
    channel.pulse(1_500_000, 4999, ref_count=0)
    channel.pulse(2_000_000, 100_000, ref_count=0)
    channel.pulse(2_500_000, 10, ref_count=0)
    channel.pulse(3_000_000, 100_000, ref_count=0)
    gate = channel.evidence()
    assert (gate.mut_edges, gate.rejected, channel.total_edges) == (2, 2, 3)
    assert gate.period_min == gate.period_max == 1_000_000


def test_a_pulse_that_reports_one_level_twice_is_too_narrow_to_measure():
    """Linux reads a both-edge line's level after the interrupt: a pulse shorter than that latency
    shows as two falling (or two rising) edges. Rejected; counted as an edge only with no filter."""
    channel = Channel(filter_ticks=5000)
    channel.arm(1)
    channel.pulse(0, 100_000, ref_count=0)  # opens
    channel.edge(200_000, False, ref_count=0)  # idle, and "falls" again
    channel.edge(300_000, True, ref_count=0)
    channel.edge(310_000, True, ref_count=0)  # active, and "rises" again: a dropout inside the pulse
    assert channel.rejected == 2 and channel.state == "GATING"
    channel.edge(400_000, False, ref_count=0)
    assert channel.state == "DONE" and channel.evidence().start_ticks == 0 and channel.stop_ticks == 300_000
    unfiltered = Channel(filter_ticks=0)
    unfiltered.edge(10, False, ref_count=0)
    assert unfiltered.total_edges == 1


def test_a_long_pulse_is_an_edge_once_it_has_lasted_the_filters_width():
    channel = Channel(filter_ticks=5000)
    channel.arm(1)
    channel.edge(1000, True, ref_count=3)
    channel.settle(5999)
    assert channel.state == "ARMED"
    channel.settle(6000)
    assert channel.state == "GATING" and channel.ref_start == 3
    channel.edge(9_000_000, False, ref_count=9)  # the pulse ends: nothing more
    assert channel.total_edges == 1


def test_a_pulse_begun_before_arming_is_not_the_gates_next_edge():
    """A pulse still shorter than the filter when the gate is armed becomes an edge after the arming,
    but it began before: the gate opens on the next one."""
    channel = Channel(filter_ticks=5000)
    channel.edge(0, True, ref_count=0)
    channel.arm(1)
    channel.edge(100_000, False, ref_count=0)
    assert channel.state == "ARMED" and channel.total_edges == 1
    channel.pulse(1_000_000, 100_000, ref_count=5)
    assert channel.state == "GATING" and channel.ref_start == 5


def test_a_missed_pulse_makes_one_period_twice_the_others():
    channel = Channel()
    channel.arm(10)
    starts = [k * 36_000_000 for k in range(12)]
    del starts[5]
    pulses(channel, starts)
    gate = channel.evidence()
    assert (gate.period_min, gate.period_max) == (36_000_000, 72_000_000)
    assert gate.stop_ticks - gate.start_ticks == 11 * 36_000_000


def test_events_lost_while_a_gate_is_armed_or_open_refuse_it():
    board = Board(channels=3)
    for channel in board.channels:
        channel.arm(1)
    pulses(board.channels[1], [0])  # channel 2 GATING
    pulses(board.channels[2], [0, 36_000_000])  # channel 3 DONE
    board.lose(4)
    pulses(board.channels[0], [72_000_000, 108_000_000])
    pulses(board.channels[1], [72_000_000])
    for channel in board.channels[:2]:
        assert channel.state == "DONE"
        with pytest.raises(LostEvents, match="4 input events lost while the gate was open"):
            channel.evidence()
    assert board.channels[2].evidence().mut_edges == 1  # done before the loss: good
    assert board.lost_events == 4
    board.channels[0].arm(1)  # a new gate starts clean
    pulses(board.channels[0], [144_000_000, 180_000_000])
    assert board.channels[0].evidence().mut_edges == 1


# -- the sequencer: kernel order back, losses found --------------------------------------------

@dataclass(frozen=True)
class Event:
    global_seqno: int
    timestamp_ns: int
    event_type: Any = None
    line_offset: int = 0
    line_seqno: int = 0


def test_the_sequencer_restores_the_kernels_order():
    """Two lines' interrupt threads may queue their events out of order; the numbers say the order."""
    sequencer = Sequencer(hold_ns=50 * MS)
    sequencer.push([Event(2, 20), Event(1, 10), Event(4, 40)])
    assert [e.global_seqno for e in sequencer.release(now_ns=45)] == [1, 2]
    assert not sequencer.idle  # 3 may still come
    sequencer.push([Event(3, 30)])
    assert [e.global_seqno for e in sequencer.release(now_ns=46)] == [3, 4] and sequencer.idle


def test_a_gap_is_a_loss_once_the_event_after_it_is_old_enough():
    sequencer = Sequencer(hold_ns=50 * MS)
    sequencer.push([Event(1, 0), Event(5, 10 * MS)])
    assert [e.global_seqno for e in sequencer.release(now_ns=20 * MS)] == [1]
    released = sequencer.release(now_ns=60 * MS)
    assert released[0] == Gap(3) and released[1].global_seqno == 5
    sequencer.push([Event(3, 5 * MS)])  # too late: already reported lost
    assert sequencer.release(now_ns=61 * MS) == [] and sequencer.late == 1


def test_the_first_event_read_says_what_the_full_fifo_dropped():
    sequencer = Sequencer(hold_ns=50 * MS)
    sequencer.push([Event(25, 0), Event(26, 1)])
    assert sequencer.release(now_ns=100 * MS)[0] == Gap(24)


def test_sequence_numbers_wrap_at_32_bits():
    sequencer = Sequencer(hold_ns=1)
    sequencer.push([Event(n, n) for n in range(1, 4)])
    sequencer.release(now_ns=10)
    sequencer._next = SEQNO_MODULUS - 1  # as after four billion events
    sequencer.push([Event(1, 30), Event(SEQNO_MODULUS - 1, 10), Event(0, 20)])
    assert [e.global_seqno for e in sequencer.release(now_ns=31)] == [SEQNO_MODULUS - 1, 0, 1]
    sequencer.push([Event(SEQNO_MODULUS - 2, 5)])  # an old number, not one four billion ahead
    assert sequencer.release(now_ns=32) == [] and sequencer.late == 1


# -- the libgpiod layer against the stand-in -----------------------------------------------------

def test_the_stand_in_has_the_bindings_exact_shape():
    """The stand-in is only worth its tests if it is gpiod 2.x: the fields and signatures the
    daemon uses, as gpiod 2.5 declares them."""
    gpiod = fake_gpiod()
    assert [f.name for f in fields(gpiod.LineSettings)] == [
        "direction", "edge_detection", "bias", "drive", "active_low", "debounce_period", "event_clock", "output_value"]
    assert [f.name for f in fields(gpiod.EdgeEvent)] == [
        "event_type", "timestamp_ns", "line_offset", "global_seqno", "line_seqno"]
    assert [m.name for m in gpiod.EdgeEvent.Type] == ["RISING_EDGE", "FALLING_EDGE"]
    assert [m.name for m in gpiod.line.Edge] == ["NONE", "RISING", "FALLING", "BOTH"]
    assert [m.name for m in gpiod.line.Bias] == ["AS_IS", "UNKNOWN", "DISABLED", "PULL_UP", "PULL_DOWN"]
    assert [m.name for m in gpiod.line.Clock] == ["MONOTONIC", "REALTIME", "HTE"]
    import inspect
    assert list(inspect.signature(gpiod.request_lines).parameters) == [
        "path", "config", "consumer", "event_buffer_size", "output_values"]
    assert list(inspect.signature(gpiod.LineRequest.wait_edge_events).parameters) == ["self", "timeout"]
    assert list(inspect.signature(gpiod.LineRequest.read_edge_events).parameters) == ["self", "max_events"]


def test_the_lines_are_requested_as_the_wiring_needs(gpiod, chip):
    board = GpioBoard(config(), gpiod).open()
    (call,) = chip.calls
    assert (call["path"], call["consumer"], call["event_buffer_size"]) == (CHIP, "bench-counterd", MAX_EVENT_BUFFER)
    settings = call["config"]
    line, edges = gpiod.line, {offset: s.edge_detection for offset, s in settings.items()}
    assert edges == {5: line.Edge.BOTH, 6: line.Edge.BOTH, 17: line.Edge.RISING, 27: line.Edge.NONE}
    for s in settings.values():
        assert (s.direction, s.bias, s.active_low, s.event_clock) == \
            (line.Direction.INPUT, line.Bias.PULL_UP, True, line.Clock.MONOTONIC)
    assert settings[27].debounce_period == timedelta(milliseconds=20)
    assert settings[5].debounce_period == settings[17].debounce_period == timedelta(0)
    board.close()
    assert chip.request is None


def test_a_chip_that_cannot_be_opened_is_one_line(gpiod, chip):
    with pytest.raises(GpioError, match=r"^/dev/nothing: cannot request lines \[5, 6, 17, 27\]: .*No such file"):
        GpioBoard(config(chip="/dev/nothing"), gpiod).open()
    GpioBoard(config(), gpiod).open()
    with pytest.raises(GpioError, match="Device or resource busy"):
        GpioBoard(config(), gpiod).open()


def test_without_the_v2_bindings_the_daemon_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gpiod", None)  # not installed
    with pytest.raises(GpioError, match=r"pip install 'gpiod>=2.1'"):
        load_gpiod()
    monkeypatch.setitem(sys.modules, "gpiod", types.ModuleType("gpiod"))  # the v1 API: no request_lines
    with pytest.raises(GpioError, match="is the libgpiod v1 API"):
        load_gpiod()


def test_edges_from_the_lines_reach_the_gate_in_the_order_they_happened(gpiod, chip):
    clock = FakeClock()
    board = GpioBoard(config(), gpiod, clock).open()
    board.channels[0].arm(1)
    for t, offset in [(1 * MS, 17), (2 * MS, 5), (3 * MS, 17), (4 * MS, 17), (5 * MS, 5)]:
        chip.drive(offset, True, t)
        chip.drive(offset, False, t + (MS // 2 if offset == 5 else 1))
    chip.request.fifo.rotate(3)  # the interrupt threads queued them out of order
    clock.now_ns = 6 * MS
    board.process()
    gate = board.channels[0].evidence()
    assert (gate.ref_pulses, gate.start_ticks, gate.stop_ticks) == (2, 20_000, 50_000)
    assert board.reference_count() == 3 and board.lost_events() == 0


def test_the_interlock_is_the_lines_level_now(gpiod, chip):
    board = GpioBoard(config(), gpiod).open()
    assert not board.interlock_closed()  # pulled up, nothing to ground: OPEN
    chip.drive(27, True, 0)  # the door switch closes to ground
    assert board.interlock_closed()
    board.close()
    assert not board.interlock_closed()


def test_an_overflowing_kernel_fifo_is_found_and_refuses_the_gates_open(gpiod, chip):
    clock = FakeClock()
    board = GpioBoard(config(event_buffer_size=16), gpiod, clock).open()
    board.channels[0].arm(2)
    chip.drive(5, True, 1 * MS)
    chip.drive(5, False, 11 * MS)
    board.process()
    for k in range(40):  # 40 reference pulses while nothing reads: 24 dropped
        chip.drive(17, True, 20 * MS + k)
        chip.drive(17, False, 20 * MS + k)
    clock.now_ns = 25 * MS
    board.process()
    assert board.lost_events() == 0 and board.reference_count() == 0  # still waiting for 3..26
    clock.now_ns = 21 * MS + 50 * MS  # the first event after the gap is 50 ms old
    board.process()
    assert board.lost_events() == 24 and board.reference_count() == 16
    assert board.lost_by_line == {17: 24}  # the lines' own sequence numbers say which input lost them
    for t in (100 * MS, 200 * MS):
        chip.drive(5, True, t)
        chip.drive(5, False, t + 10 * MS)
    clock.now_ns = 300 * MS
    board.process()
    assert board.channels[0].state == "DONE"
    with pytest.raises(LostEvents, match="24 input events lost"):
        board.channels[0].evidence()


# -- the whole daemon, driven by the bench's own driver ------------------------------------------

class Wiring:
    """Plays edges on the stand-in chip in time order with the daemon's clock, never faster than the
    daemon reads them (so nothing is lost unless a test means it)."""

    def __init__(self, chip: FakeChip, clock: FakeClock, capacity: int = 1024) -> None:
        self.chip, self.clock, self.capacity = chip, clock, capacity

    def play(self, edges: list[tuple[int, int, bool]]) -> None:
        for t, offset, active in sorted(edges):
            deadline = time.monotonic() + 5
            while self.chip.pending() > self.capacity // 2:
                assert time.monotonic() < deadline, "the daemon stopped reading edges"
                time.sleep(0.001)
            self.clock.now_ns = max(self.clock.now_ns, t)
            self.chip.drive(offset, active, t)


def pulse_edges(offset: int, starts: list[int], width: int) -> list[tuple[int, int, bool]]:
    return [edge for t in starts for edge in ((t, offset, True), (t + width, offset, False))]


@dataclass
class Meter:
    """A meter at 1 kW on Kh = 1 Wh (a pulse every ~3.6 s) and a reference standard at 10 µWh per
    pulse (100 per second), in integer nanoseconds so every expected count is exact."""

    start_ns: int
    period_ns: int = 3_582_089_552  # 3.6 s / 1.005: the meter reads 0.5 % high
    ref_period_ns: int = 10 * MS
    width_ns: int = 20 * MS

    def mut_starts(self, count: int) -> list[int]:
        return [self.start_ns + k * self.period_ns for k in range(count)]

    def ref_starts(self, until_ns: int) -> list[int]:
        first = self.start_ns - self.start_ns % self.ref_period_ns + 3 * MS  # on no MUT edge of these tests
        return list(range(first, until_ns, self.ref_period_ns))

    def expected_ref(self, open_ns: int, close_ns: int) -> int:
        return len([t for t in self.ref_starts(close_ns + S) if open_ns < t < close_ns])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(now_ns=WRAP_NS - 5 * S)  # 5 s before the 32-bit timestamp wraps


@pytest.fixture(params=["pty", "tcp"])
def daemon(request, gpiod, clock) -> Iterator[Daemon]:
    running = Daemon(config(), gpiod, clock).start(tcp=("127.0.0.1", 0) if request.param == "tcp" else None)
    yield running
    running.stop()


@pytest.fixture
def counter(daemon) -> Iterator[SerialPulseCounter]:
    driver = SerialPulseCounter(daemon.address, timeout_s=1.0).open()
    yield driver
    driver.close()


def wait_done(counter: SerialPulseCounter, channel: int = 1) -> None:
    deadline = time.monotonic() + 5
    while counter.states()[channel - 1].state != "DONE":
        assert time.monotonic() < deadline, f"gate still {counter.states()}"
        time.sleep(0.01)


def test_the_driver_opens_the_daemon_and_reads_its_board(daemon, counter, chip):
    assert re.fullmatch(r"/dev/pts/\d+|socket://127\.0\.0\.1:\d+", daemon.address)
    assert counter.idn == "MeterBench,counterd,PC0101,1.0"
    assert (counter.timebase_hz, counter.wrap_ticks, counter.channels) == (10_000_000, WRAP_TICKS, 2)
    assert not counter.interlock_closed()
    chip.drive(27, True, 0)
    assert counter.interlock_closed()
    counter.min_pulse_width_s = 0.002
    assert counter.min_pulse_width_s == 0.002 and daemon.board.channels[1].filter_ticks == 20_000


def test_a_gate_across_the_timestamp_wrap_measured_through_the_daemon(daemon, counter, chip, clock):
    """Ten pulses at ~3.58 s with the 32-bit timestamp wrapping inside the gate: the driver gets
    the exact ticks, periods and reference count the edges give."""
    meter = Meter(start_ns=clock.now_ns + S)
    mut = meter.mut_starts(12)
    counter.arm(1, 10)
    wiring = Wiring(chip, clock)
    wiring.play(pulse_edges(5, mut, meter.width_ns) + pulse_edges(17, meter.ref_starts(mut[-1]), MS))
    wait_done(counter)
    gate = counter.result(1)
    assert gate.stop_ticks < gate.start_ticks  # wrapped
    assert (gate.start_ticks, gate.stop_ticks) == ((mut[0] // 100) % WRAP_TICKS, (mut[10] // 100) % WRAP_TICKS)
    assert gate.duration_ticks == mut[10] // 100 - mut[0] // 100
    assert gate.gate_time_s == pytest.approx(10 * meter.period_ns / S, abs=2e-7)
    assert gate.ref_pulses == meter.expected_ref(mut[0], mut[10])
    assert abs(gate.ref_pulses - gate.gate_time_s / 0.010) <= 1  # 100 reference pulses a second
    assert (gate.mut_pulses, gate.rejected_glitches, gate.irregularity()) == (10, 0, None)
    assert counter.mut_count(1) == 12 and counter.query("COUN:REF?") == str(len(meter.ref_starts(mut[-1])))


def test_glitches_and_a_missed_pulse_through_the_daemon(daemon, counter, chip, clock):
    meter = Meter(start_ns=clock.now_ns + S)
    mut = meter.mut_starts(12)
    del mut[4]  # the scanning head missed one
    glitches = [mut[2] + S, mut[6] + S]  # 0.1 ms wide: below the 0.5 ms filter
    counter.arm(1, 10)
    Wiring(chip, clock).play(pulse_edges(5, mut, meter.width_ns) + pulse_edges(5, glitches, 100_000)
                             + pulse_edges(17, meter.ref_starts(mut[-1]), MS))
    wait_done(counter)
    gate = counter.result(1)
    assert (gate.mut_pulses, gate.rejected_glitches) == (10, 2)
    assert abs(gate.max_period_ticks - 2 * meter.period_ns // 100) <= 1
    assert "missed or spurious pulse" in gate.irregularity()


def test_a_gate_that_lost_events_is_refused_through_the_daemon(gpiod, chip, clock):
    """The kernel FIFO overflows while the daemon is held up: the gate completes, but GATE:RES? is
    refused with -230 and COUN:LOST? says how many; the driver gets no result to trust."""
    running = Daemon(config(event_buffer_size=16), gpiod, clock).start(tcp=("127.0.0.1", 0))
    try:
        counter = SerialPulseCounter(running.address, timeout_s=0.5).open()
        counter.arm(1, 2)
        wiring = Wiring(chip, clock, capacity=16)
        wiring.play(pulse_edges(5, [clock.now_ns + S], 20 * MS))
        assert counter.states()[0].state == "GATING" and chip.pending() == 0  # every edge so far read
        with running.lock:  # the daemon cannot read: 40 reference pulses into a FIFO of 16
            for k in range(40):
                chip.drive(17, True, clock.now_ns + S + k * MS)
                chip.drive(17, False, clock.now_ns + S + k * MS + 1)
        start = clock.now_ns + 2 * S
        wiring.play(pulse_edges(5, [start, start + 4 * S], 20 * MS))
        clock.now_ns += 5 * S
        wait_done(counter)
        with pytest.raises(InstrumentError, match=r"'GATE:RES\? 1': no reply"):
            counter.result(1)
        with serial.serial_for_url(running.address, timeout=1.0) as raw:
            raw.write(b"GATE:RES? 1;:SYST:ERR?;:COUN:LOST?\n")
            assert raw.readline() == b'-230,"Data corrupt or stale;gate 1: 24 input events lost while the gate ' \
                                     b'was open"\n'
            assert raw.readline() == b"24\n"
    finally:
        running.stop()


def test_a_failing_edge_reader_ends_the_daemon_with_the_reason(gpiod, chip, clock):
    running = Daemon(config(), gpiod, clock).start(tcp=("127.0.0.1", 0))
    try:
        def unplugged(max_events: int | None = None) -> list[Any]:
            raise OSError(19, "No such device")

        chip.request.read_edge_events = unplugged  # the chip went away under the reader
        chip.drive(17, True, clock.now_ns)
        assert running.done.wait(2)
        assert re.fullmatch(rf"{CHIP}: reading edge events failed: .*", running.failure)
    finally:
        running.stop()


# -- the event rate the Python side sustains ------------------------------------------------------

def sustained_event_rate(total: int) -> float:
    """Events per second through the Python side: the bindings' EdgeEvent objects built per read (as
    gpiod's C extension builds them), the sequencer, the gate logic. Eight channels and the
    reference; nine events in ten are reference pulses, the rest MUT edges. The kernel's part (the
    interrupt, the FIFO, read()) is not in it."""
    gpiod = fake_gpiod()
    gpiod.chips[CHIP] = chip = FakeChip()
    clock = FakeClock()
    channels = tuple(LineConfig(offset) for offset in range(8))
    board = GpioBoard(config(channels=channels, reference=LineConfig(17)), gpiod, clock).open()
    for channel in board.channels:
        channel.arm(10 ** 9)
    request, spent, t = chip.request, 0.0, 0
    while t < total:
        for _ in range(request.capacity):  # what the kernel queues between two reads
            t += 1
            offset = 17 if t % 10 else (t // 10) % 8
            chip.drive(offset, not chip.logical(offset) if offset != 17 else True, t * 10_000)
            if offset == 17:
                chip.drive(17, False, t * 10_000)
        clock.now_ns = t * 10_000
        began = time.perf_counter()
        board.process()
        spent += time.perf_counter() - began
    assert board.lost_events() == 0 and board.reference_count() > 0.8 * total
    return total / spent


def test_the_python_side_sustains_tens_of_thousands_of_events_per_second():
    rate = sustained_event_rate(100_000)
    print(f"sustained {rate:,.0f} edge events/s")
    assert rate > 20_000


# -- configuration and command line ---------------------------------------------------------------

def test_the_example_configuration_loads():
    loaded = load_config(REPO / "bench" / "counterd" / "example.toml")
    assert [c.offset for c in loaded.channels] == [5, 6, 13]
    assert (loaded.reference.offset, loaded.interlock.offset, loaded.interlock.debounce_s) == (17, 27, 0.02)
    assert loaded.timebase == Timebase(10_000_000) and loaded.event_buffer_size == 1024


@pytest.mark.parametrize("top, tables, message", [
    ("", "[[channel]]\nline = 5\ndebounce_s = 0.01\n", "channel.1..debounce_s: only the interlock may be debounced"),
    ("", "[[channel]]\nline = 17\n", "a line serves two inputs"),
    ("event_buffer_size = 4096\n", "[[channel]]\nline = 5\n", r"event_buffer_size: expected a whole number in \[1, 10"),
    ('serial = "a,b"\n', "[[channel]]\nline = 5\n", "printable ASCII without commas"),
    ("", '[[channel]]\nline = 5\nbias = "up"\n', "'up' is not one of pull-up, pull-down, disabled, as-is"),
    ("", "[[channel]]\nlien = 5\n", "lien: unknown key"),
    ("", "", "counterd.toml: channel: missing"),
])
def test_a_bad_configuration_is_one_line_naming_the_key(tmp_path, top, tables, message):
    path = tmp_path / "counterd.toml"
    path.write_text(f'chip = "/dev/gpiochip0"\n{top}[reference]\nline = 17\n[interlock]\nline = 27\n{tables}')
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def parse(argv: list[str]) -> argparse.Namespace:
    """The command line as bench/cli.py wires it: ``cli.add_parser`` on the bench's subcommands."""
    parser = argparse.ArgumentParser(prog="bench")
    cli.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_the_command_line(capsys, monkeypatch, tmp_path):
    assert parse(["counterd", "c.toml", "--tcp", "5025"]).tcp == ("127.0.0.1", 5025)
    assert parse(["counterd", "c.toml", "--tcp", "0.0.0.0:5025"]).tcp == ("0.0.0.0", 5025)
    assert parse(["counterd", "c.toml", "--pty"]).tcp is None
    for bad in (["counterd", "c.toml"], ["counterd", "c.toml", "--tcp", "host:port"],
                ["counterd", "c.toml", "--pty", "--tcp", "1"]):
        with pytest.raises(SystemExit):
            parse(bad)
    assert cli.run(parse(["counterd", str(tmp_path / "none.toml"), "--pty"])) == 2
    assert "none.toml: cannot read" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "gpiod", None)
    assert cli.run(parse(["counterd", str(REPO / "bench" / "counterd" / "example.toml"), "--pty"])) == 2
    assert "bench counterd: the libgpiod v2 Python bindings are not installed" in capsys.readouterr().err


def test_nothing_imports_gpiod_until_a_chip_is_opened(tmp_path):
    (tmp_path / "gpiod.py").write_text("raise ImportError('gpiod was imported')\n")
    probe = "import bench.counterd.cli, bench.counterd.daemon, bench.sim, bench.cli"
    run = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"})
    assert run.returncode == 0, run.stderr


@pytest.mark.slow
def test_bench_counterd_serves_until_sigterm(tmp_path):
    """The command as a process, on the stand-in bindings: prints where it serves, answers the
    driver there, and stops on SIGTERM with status 0."""
    (tmp_path / "gpiod.py").write_text(
        "import sys\nfrom tests.test_counterd import FakeChip, fake_gpiod\n"
        "module = fake_gpiod()\nmodule.chips['/dev/gpiochip0'] = FakeChip()\nsys.modules['gpiod'] = module\n")
    entry = ("import argparse, sys\nfrom bench.counterd import cli\n"
             "parser = argparse.ArgumentParser(prog='bench')\n"
             "cli.add_parser(parser.add_subparsers(dest='command', required=True))\n"
             "sys.exit(cli.run(parser.parse_args(sys.argv[1:])))\n")
    process = subprocess.Popen(
        [sys.executable, "-c", entry, "counterd", str(REPO / "bench" / "counterd" / "example.toml"),
         "--tcp", "127.0.0.1:0"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"})
    try:
        line = process.stdout.readline()
        match = re.fullmatch(r"counter board PC0101: 3 channels on /dev/gpiochip0, serving (socket://\S+)\n", line)
        assert match, (line, process.stderr.read() if process.poll() is not None else "")
        counter = SerialPulseCounter(match.group(1), timeout_s=1.0).open()
        assert counter.channels == 3 and not counter.interlock_closed()
        counter.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# -- real lines: the kernel's gpio-sim ---------------------------------------------------------------

GPIO_SIM = Path("/sys/kernel/config/gpio-sim")


def gpio_sim_missing() -> str | None:
    """Why a gpio-sim chip cannot be made here, or None."""
    if not GPIO_SIM.is_dir():
        return f"no gpio-sim here: {GPIO_SIM} is absent (kernel module gpio-sim not loaded, or configfs not mounted)"
    if os.geteuid() != 0:
        return "creating a gpio-sim chip needs root"
    try:
        load_gpiod()
    except GpioError as error:
        return str(error)
    return None


@pytest.fixture
def sim_chip() -> Iterator[tuple[str, Path]]:
    """A live gpio-sim chip of 32 lines: (its /dev path, the sysfs folder whose sim_gpioN/pull drives line N)."""
    reason = gpio_sim_missing()
    if reason:
        pytest.skip(reason)
    device = GPIO_SIM / f"counterd-test-{os.getpid()}"
    bank = device / "bank0"
    bank.mkdir(parents=True)
    try:
        (bank / "num_lines").write_text("32")
        (device / "live").write_text("1")
        chip_name, dev_name = (bank / "chip_name").read_text().strip(), (device / "dev_name").read_text().strip()
        yield f"/dev/{chip_name}", Path("/sys/devices/platform") / dev_name / chip_name
    finally:
        if (device / "live").read_text().strip() == "1":
            (device / "live").write_text("0")
        bank.rmdir()
        device.rmdir()


def test_real_lines_through_gpio_sim(sim_chip):
    """The daemon on a kernel GPIO chip with the real gpiod bindings: lines pulled by gpio-sim, edges
    timestamped by the kernel, gated and read by the driver over TCP."""
    path, lines = sim_chip

    def drive(offset: int, active: bool) -> None:  # active low, as the opto-isolated inputs are
        (lines / f"sim_gpio{offset}" / "pull").write_text("pull-down" if active else "pull-up")

    running = Daemon(config(chip=path, filter_s=0.002)).start(tcp=("127.0.0.1", 0))
    try:
        counter = SerialPulseCounter(running.address, timeout_s=1.0).open()
        assert not counter.interlock_closed()
        drive(27, True)
        deadline = time.monotonic() + 1
        while not counter.interlock_closed():  # the kernel debounces it for 20 ms
            assert time.monotonic() < deadline
            time.sleep(0.01)
        counter.arm(1, 3)
        began = time.monotonic()
        for k in range(4):
            drive(5, True)
            time.sleep(0.02)
            drive(5, False)
            for _ in range(5):
                drive(17, True)
                drive(17, False)
                time.sleep(0.005)
            if k == 1:  # a glitch: as short as two sysfs writes, well below 2 ms
                drive(5, True)
                drive(5, False)
            time.sleep(0.05)
        wait_done(counter)
        gate = counter.result(1, approx_duration_s=time.monotonic() - began)
        # The glitch may show as two edges of one level (both read after it ended): once or twice rejected.
        assert (gate.mut_pulses, gate.ref_pulses) == (3, 15) and gate.rejected_glitches in (1, 2)
        assert 0.2 < gate.gate_time_s < 2.0
        assert counter.query("COUN:LOST?") == "0"
        counter.close()
    finally:
        running.stop()
