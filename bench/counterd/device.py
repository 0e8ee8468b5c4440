"""The pulse counter protocol (instruments/PULSE_COUNTER.md), one command set for every board.

`bench counterd` serves it from GPIO lines and the simulated bench from its world: both hand the
same ``CounterCommands`` a ``CounterBoard`` (channels running bench/counterd/gate.py, a reference
count, a timebase, an interlock) and serve it through the SCPI dispatcher of bench/servers/scpi.py.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from bench.counterd.gate import MAX_FILTER_S, Channel, LostEvents, Timebase
from bench.servers.scpi import ScpiDevice, ScpiError, out_of_range, parse_number, parse_whole, scpi


class CounterBoard(Protocol):
    """What the protocol reads and sets on a counter board, simulated or on GPIO."""

    @property
    def timebase(self) -> Timebase: ...
    @property
    def channels(self) -> Sequence[Channel]: ...
    def now_ticks(self) -> int: ...
    def stamp(self, ticks: int) -> int: ...
    def reference_count(self) -> int: ...
    def lost_events(self) -> int: ...
    def interlock_closed(self) -> bool: ...


def split_fields(arg: str | None, count: int) -> list[str]:
    fields = (arg or "").split(",")
    if len(fields) != count:
        raise ScpiError(-109, f"Missing parameter;{count} parameters expected")
    return fields


def channel_of(channels: Sequence[Channel], arg: str | None) -> Channel:
    """The channel of a number (1..N); anything else is -104 or -222."""
    number = parse_whole(arg)
    if not 1 <= number <= len(channels):
        raise out_of_range(arg)
    return channels[number - 1]


class CounterCommands:
    """The protocol's commands on one board (an extension of a ``ScpiDevice``, which adds
    ``*IDN?``, ``*CLS`` and ``SYST:ERR?``)."""

    def __init__(self, board: CounterBoard) -> None:
        self.board = board

    @scpi("CONFigure:CHANnels?")
    def channels(self, _: str | None) -> str:
        return str(len(self.board.channels))

    @scpi("CONFigure:TIMebase?")
    def timebase(self, _: str | None) -> str:
        return str(self.board.timebase.hz)

    @scpi("CONFigure:TIMebase:WRAP?")
    def wrap(self, _: str | None) -> str:
        return str(self.board.timebase.wrap)

    @scpi("CONFigure:FILTer")
    def set_filter(self, arg: str | None) -> None:
        """The width in seconds, held as whole ticks of the timebase (CONF:FILT? reads those back)."""
        width = parse_number(arg)
        if not 0 <= width <= MAX_FILTER_S:
            raise out_of_range(arg)
        for channel in self.board.channels:
            channel.filter_ticks = self.board.timebase.ticks_from_s(width)

    @scpi("CONFigure:FILTer?")
    def get_filter(self, _: str | None) -> str:
        return format(self.board.channels[0].filter_ticks / self.board.timebase.hz, ".10g")

    @scpi("GATE:ARM")
    def arm(self, arg: str | None) -> None:
        channel_arg, pulses_arg = split_fields(arg, 2)
        channel, pulses = channel_of(self.board.channels, channel_arg), parse_whole(pulses_arg)
        if pulses < 1:
            raise out_of_range(pulses_arg)
        channel.arm(pulses)

    @scpi("GATE:ABORt")
    def abort(self, _: str | None) -> None:
        for channel in self.board.channels:
            channel.abort()

    @scpi("GATE:STATe?")
    def states(self, _: str | None) -> str:
        return ",".join(f"{c.state}:{c.mut_edges}" for c in self.board.channels)

    @scpi("GATE:RESult?")
    def result(self, arg: str | None) -> str:
        """n_mut,n_ref,t_start,t_stop,rejected,p_min,p_max: timestamps wrap, periods do not. A gate
        that lost input events is refused (-230), never given as a result."""
        channel = channel_of(self.board.channels, arg)
        if channel.state != "DONE":
            raise ScpiError(-221, f"Settings conflict;gate {arg} is {channel.state}")
        try:
            gate = channel.evidence()
        except LostEvents as error:
            raise ScpiError(-230, f"Data corrupt or stale;gate {arg}: {error}") from None
        return ",".join(str(v) for v in (
            gate.mut_edges, gate.ref_pulses, self.board.stamp(gate.start_ticks), self.board.stamp(gate.stop_ticks),
            gate.rejected, gate.period_min, gate.period_max))

    @scpi("COUNt:MUT?")
    def mut_count(self, arg: str | None) -> str:
        return str(channel_of(self.board.channels, arg).total_edges)

    @scpi("COUNt:REFerence?")
    def ref_count(self, _: str | None) -> str:
        return str(self.board.reference_count())

    @scpi("COUNt:LOST?")
    def lost_count(self, _: str | None) -> str:
        return str(self.board.lost_events())

    @scpi("TIME?")
    def now(self, _: str | None) -> str:
        return str(self.board.stamp(self.board.now_ticks()))

    @scpi("INTerlock?")
    def interlock(self, _: str | None) -> str:
        return "CLOSED" if self.board.interlock_closed() else "OPEN"


class CounterDevice(ScpiDevice):
    """A counter board served on its own (the daemon); the simulator's ``SimCounter`` serves the
    same ``CounterCommands`` on the world."""

    def __init__(self, board: CounterBoard, idn: str, lock: threading.RLock,
                 before_command: Callable[[], None] = lambda: None) -> None:
        super().__init__(lock, before_command, (CounterCommands(board),))
        self.idn = idn
