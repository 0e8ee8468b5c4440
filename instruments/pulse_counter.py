"""Pulse counter / error calculator board on a serial line; protocol in PULSE_COUNTER.md.

One channel per board position counts the meter's test-output pulses; the reference standard's
high-frequency pulses go to the reference input. A gate opens on a MUT edge and closes N MUT
edges later; the board latches the reference count and the edge timestamps of its own timebase.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from instruments.errors import ReplyError
from instruments.scpi import ScpiInstrument, parse_int
from instruments.transport import SerialLine

GATE_STATES = ("IDLE", "ARMED", "GATING", "DONE")


@dataclass(frozen=True)
class GateResult:
    """Raw evidence of one gated measurement: counts and edge timestamps in timebase ticks."""

    mut_pulses: int
    ref_pulses: int
    start_ticks: int
    stop_ticks: int
    timebase_hz: int

    @property
    def gate_time_s(self) -> float:
        return (self.stop_ticks - self.start_ticks) / self.timebase_hz


@dataclass(frozen=True)
class GateState:
    state: str
    mut_pulses: int


class SerialPulseCounter(ScpiInstrument):
    def __init__(self, address: str, *, name: str = "counter", timeout_s: float = 2.0,
                 baudrate: int = 115200) -> None:
        super().__init__(name, lambda: SerialLine(address, timeout_s, baudrate), address)
        self.timebase_hz = 0
        self.channels = 0

    def open(self) -> "SerialPulseCounter":
        super().open()
        self.timebase_hz = self.query_as("CONF:TIM?", parse_int)
        self.channels = self.query_as("CONF:CHAN?", parse_int)
        return self

    def arm(self, channel: int, pulses: int) -> None:
        """Open a gate on the next MUT edge of ``channel``; close it ``pulses`` edges later."""
        self.set(f"GATE:ARM {channel},{pulses}")

    def abort(self) -> None:
        self.set("GATE:ABOR")

    def states(self) -> list[GateState]:
        reply = self.query("GATE:STAT?")
        states = []
        for token in reply.split(","):
            match = re.fullmatch(r"([A-Z]+):(\d+)", token.strip())
            if not match or match.group(1) not in GATE_STATES:
                raise ReplyError(self.name, self.address, f"garbled reply to 'GATE:STAT?': {reply!r}")
            states.append(GateState(match.group(1), int(match.group(2))))
        if len(states) != self.channels:
            raise ReplyError(self.name, self.address, f"'GATE:STAT?' gave {len(states)} channels, expected {self.channels}")
        return states

    def result(self, channel: int) -> GateResult:
        reply = self.query(f"GATE:RES? {channel}")
        fields = reply.split(",")
        if len(fields) != 4 or not all(re.fullmatch(r"\d+", f.strip()) for f in fields):
            raise ReplyError(self.name, self.address, f"garbled reply to 'GATE:RES? {channel}': {reply!r}")
        mut, ref, start, stop = (int(f) for f in fields)
        if stop < start:
            raise ReplyError(self.name, self.address, f"gate {channel} stops before it starts: {reply!r}")
        return GateResult(mut, ref, start, stop, self.timebase_hz)

    def mut_count(self, channel: int) -> int:
        """MUT edges seen on a channel since power-up (creep and starting tests count these)."""
        return self.query_as(f"COUN:MUT? {channel}", parse_int)

    def interlock_closed(self) -> bool:
        reply = self.query("INT?").strip()
        if reply not in ("OPEN", "CLOSED"):
            raise ReplyError(self.name, self.address, f"garbled reply to 'INT?': {reply!r}")
        return reply == "CLOSED"
