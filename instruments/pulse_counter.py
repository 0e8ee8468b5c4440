"""Pulse counter / error calculator board on a serial line; protocol in PULSE_COUNTER.md.

One channel per board position counts the meter's test-output pulses; the reference standard's
high-frequency pulses go to the reference input. A gate opens on a MUT edge and closes N MUT
edges later; the board latches the reference count and the edge timestamps of its own timebase,
a counter that wraps (2^32 ticks, 429.5 s at 10 MHz).
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from instruments.errors import ReplyError
from instruments.registry import DriverSettings
from instruments.roles import Capability
from instruments.scpi import ScpiInstrument, control
from instruments.transport import LineTransport, SerialLine

GATE_STATES = ("IDLE", "ARMED", "GATING", "DONE")
MAX_WHOLE = 2 ** 64 - 1  # counts and tick values are unsigned 64-bit on the board
_WHOLE = re.compile(r"[0-9]{1,20}")  # strict: no sign, no spaces, no other scripts' digits
_IDN_FIELD = re.compile(r"[\x20-\x7e]+")  # printable ASCII: a noise-prefixed line fails here
ERROR_QUERY = "SYST:ERR?"
_ERROR_REPLY = re.compile(r'[+-]?[0-9]+,".*"')  # the error queue's reply; no other reply holds a quote
LINE_BYTES = 256  # the longest line the bench sends, LF included (PULSE_COUNTER.md, "Link")


@dataclass(frozen=True)
class GateResult:
    """Raw evidence of one gated measurement: counts, edge timestamps and MUT periods in ticks.

    ``start_ticks``/``stop_ticks`` are the board's wrapped timestamps as read; ``duration_ticks``
    is the gate's length with the timebase's whole wraps resolved.
    """

    mut_pulses: int
    ref_pulses: int
    start_ticks: int
    stop_ticks: int
    duration_ticks: int
    timebase_hz: int
    rejected_glitches: int
    min_period_ticks: int
    max_period_ticks: int

    @property
    def gate_time_s(self) -> float:
        return self.duration_ticks / self.timebase_hz

    @property
    def min_period_s(self) -> float:
        return self.min_period_ticks / self.timebase_hz

    @property
    def max_period_s(self) -> float:
        return self.max_period_ticks / self.timebase_hz

    def irregularity(self, max_ratio: float = 1.5) -> str | None:
        """Why this pulse train is not the steady one a meter at constant power gives, or None.

        A missed pulse makes one period about twice the others, a spurious one makes one short:
        either way the longest period exceeds ``max_ratio`` times the shortest.
        """
        if self.max_period_ticks <= max_ratio * self.min_period_ticks:
            return None
        rejected = f"; {self.rejected_glitches} glitches rejected" if self.rejected_glitches else ""
        return (f"irregular pulse train: MUT periods from {self.min_period_s:.6g} s to {self.max_period_s:.6g} s "
                f"over {self.mut_pulses} pulses (more than {max_ratio:g}x apart: a missed or spurious pulse){rejected}")


@dataclass(frozen=True)
class GateState:
    state: str
    mut_pulses: int


def resolve_duration(raw_ticks: int, wrap_ticks: int, approx_ticks: float | None,
                     bounds: tuple[int, int] | None = None) -> int:
    """The duration ``raw_ticks + k * wrap_ticks`` (k >= 0). A gate is the sum of its MUT periods:
    when exactly one k puts it within ``bounds`` (n_mut periods of p_min..p_max), that one; else
    the one nearest the approximate duration, or the one shorter than a wrap without it."""
    if bounds is not None:
        low, high = bounds
        first = max(0, -(-(low - raw_ticks) // wrap_ticks))
        fitting = [k for k in range(first, first + 2) if low <= raw_ticks + k * wrap_ticks <= high]
        if len(fitting) == 1:
            return raw_ticks + fitting[0] * wrap_ticks
    if approx_ticks is None:
        return raw_ticks
    return raw_ticks + max(0, round((approx_ticks - raw_ticks) / wrap_ticks)) * wrap_ticks


class SerialPulseCounter(ScpiInstrument):
    """The counter board over a serial line (or a pyserial URL); every reply parsed strictly."""

    ROLES = frozenset({"counter"})
    CAPABILITIES = frozenset({Capability.GATED_COUNT, Capability.FREE_COUNT, Capability.INTERLOCK})
    MANUAL = "instruments/PULSE_COUNTER.md (the counter protocol, served by `bench counterd`)"

    # The board's default is 0.5 ms. Keep it below the meters' pulse width (10 ms for the simulated
    # ones), or every pulse is rejected.
    min_pulse_width_s = control("CONF:FILT?", "CONF:FILT", "Glitch filter: narrower input pulses are rejected",
                                low=0.0, high=0.1, unit="s")

    def __init__(self, address: str, *, name: str = "counter", timeout_s: float = 2.0,
                 baudrate: int = 115200) -> None:
        super().__init__(name, self._open_line, address)
        self._timeout_s, self._baudrate = timeout_s, baudrate
        self.timebase_hz = 0
        self.wrap_ticks = 0
        self.channels = 0

    @classmethod
    def from_settings(cls, settings: DriverSettings) -> SerialPulseCounter:
        return cls(settings.address, name=settings.name, timeout_s=settings.timeout_s,
                   baudrate=int(settings.options.get("baudrate", 115200)))

    def _open_line(self) -> LineTransport:
        """A fresh serial line, cleared of noise and of any partial line the board holds."""
        return SerialLine(self.address, self._timeout_s, self._baudrate).resynchronise()

    def open(self) -> SerialPulseCounter:
        super().open()
        try:
            self._check_identity()
            self.timebase_hz = self._query_whole("CONF:TIM?", low=1)
            self.wrap_ticks = self._query_whole("CONF:TIM:WRAP?", low=2)
            self.channels = self._query_whole("CONF:CHAN?", low=1)
        except ReplyError:
            self.close()
            raise
        return self

    def _garbled(self, command: str, reply: str, why: str = "") -> ReplyError:
        return ReplyError(self.name, self.address,
                          f"garbled reply to '{command}': {reply!r}" + (f" ({why})" if why else ""))

    def _check_identity(self) -> None:
        """Four fields of printable ASCII: noise glued to the reply fails here."""
        fields = self.idn.split(",")
        if len(fields) != 4 or not all(_IDN_FIELD.fullmatch(f) for f in fields):
            raise self._garbled("*IDN?", self.idn, "expected four printable fields")

    def _whole(self, command: str, reply: str, text: str, low: int = 0, high: int = MAX_WHOLE) -> int:
        if not _WHOLE.fullmatch(text) or not low <= int(text) <= high:
            raise self._garbled(command, reply, f"expected a whole number in {low}..{high}, got {text!r}")
        return int(text)

    def _query_whole(self, command: str, low: int = 0) -> int:
        reply = self.query(command)
        return self._whole(command, reply, reply, low)

    def arm(self, channel: int, pulses: int) -> None:
        """Open a gate on the next MUT edge of ``channel``; close it ``pulses`` edges later."""
        self.set(f"GATE:ARM {channel},{pulses}")

    def arm_each(self, channels: Sequence[int], pulses: int) -> None:
        """``arm`` every channel, several to a line: a board's gates cost a few exchanges, not one each."""
        for commands in self._lines([f"GATE:ARM {channel},{pulses}" for channel in channels]):
            self.set(";:".join(commands))

    def abort(self) -> None:
        self.set("GATE:ABOR")

    def states(self) -> list[GateState]:
        command = "GATE:STAT?"
        reply = self.query(command)
        states = []
        for token in reply.split(","):
            state, _, count = token.partition(":")
            if state not in GATE_STATES:
                raise self._garbled(command, reply, f"unknown state {state!r}")
            states.append(GateState(state, self._whole(command, reply, count)))
        if len(states) != self.channels:
            raise self._garbled(command, reply, f"{len(states)} channels, expected {self.channels}")
        return states

    def results(self, channels: Sequence[int], approx_duration_s: float | None = None) -> list[GateResult]:
        """``result`` of every channel, in order, several to a line."""
        return [self._gate(f"GATE:RES? {channel}", reply, approx_duration_s)
                for channel, reply in zip(channels, self._queries([f"GATE:RES? {c}" for c in channels]))]

    def mut_counts(self, channels: Sequence[int]) -> list[int]:
        """``mut_count`` of every channel, in order, several to a line."""
        commands = [f"COUN:MUT? {channel}" for channel in channels]
        return [self._whole(command, reply, reply) for command, reply in zip(commands, self._queries(commands))]

    def result(self, channel: int, approx_duration_s: float | None = None) -> GateResult:
        """A DONE gate's evidence. A gate may outlast one timebase wrap: its own MUT periods resolve
        the whole wraps when they admit one count only (a caller's window is held open by the
        slowest position, so it is only the tie-breaker); ``approx_duration_s``, the gate's length
        as the caller timed it (within half a wrap), decides otherwise; a gate whose MUT periods do
        not add up to the duration is refused rather than given a wrong one."""
        command = f"GATE:RES? {channel}"
        return self._gate(command, self.query(command), approx_duration_s)

    def _gate(self, command: str, reply: str, approx_duration_s: float | None) -> GateResult:
        """A ``GATE:RES?`` reply, parsed strictly and its whole wraps resolved."""
        if approx_duration_s is not None and not (math.isfinite(approx_duration_s) and approx_duration_s >= 0):
            raise ValueError(f"approx_duration_s must be a finite duration, not {approx_duration_s!r}")
        fields = reply.split(",")
        if len(fields) != 7:
            raise self._garbled(command, reply, "expected n_mut,n_ref,t_start,t_stop,rejected,p_min,p_max")
        mut, ref, start, stop, rejected, p_min, p_max = (self._whole(command, reply, f) for f in fields)
        if mut < 1 or p_min > p_max or max(start, stop) >= self.wrap_ticks:
            raise self._garbled(command, reply, "needs n_mut >= 1, p_min <= p_max, timestamps below the wrap")
        approx = None if approx_duration_s is None else approx_duration_s * self.timebase_hz
        bounds = (mut * p_min - mut, mut * p_max + mut)  # a tick of rounding per period
        duration = resolve_duration((stop - start) % self.wrap_ticks, self.wrap_ticks, approx, bounds)
        if not bounds[0] <= duration <= bounds[1]:
            hint = ("" if approx_duration_s is not None
                    else "; a gate longer than one timebase wrap needs approx_duration_s")
            raise ReplyError(self.name, self.address, f"'{command}': {mut} MUT periods of {p_min}..{p_max} ticks "
                                                      f"cannot make a gate of {duration} ticks{hint}")
        return GateResult(mut, ref, start, stop, duration, self.timebase_hz, rejected, p_min, p_max)

    def mut_count(self, channel: int) -> int:
        """MUT edges seen on a channel since power-up (creep and starting tests count these)."""
        return self._query_whole(f"COUN:MUT? {channel}")

    def reference_count(self) -> int:
        """Reference pulses since power-up: the reference's energy where it keeps no register."""
        return self._query_whole("COUN:REF?")

    def _lines(self, commands: list[str]) -> Iterator[list[str]]:
        """The commands grouped into lines the board takes (PULSE_COUNTER.md, "Link"): each line,
        joined by ``;:`` and ended by the error query, at most ``LINE_BYTES`` long."""
        line: list[str] = []
        for command in commands:
            if line and len(";:".join([*line, command, ERROR_QUERY])) + 1 > LINE_BYTES:
                yield line
                line = []
            line.append(command)
        if line:
            yield line

    def _queries(self, commands: list[str]) -> list[str]:
        """Each query's reply, the queries sharing lines. A query the board refuses answers no
        line and queues its error, so each line ends with the error query: its reply tells the
        count of replies before it. A line that is neither a reply nor the error queue's closes the
        link, as a failed read does: its replies must never be taken for a later query's."""
        replies: list[str] = []
        for line in self._lines(commands):
            command = ";:".join([*line, ERROR_QUERY])
            self.write(command)
            answered: list[str] = []
            while True:
                reply = self.read_reply(command)
                if _ERROR_REPLY.fullmatch(reply):
                    break
                if len(answered) == len(line):
                    self.close()
                    raise self._garbled(ERROR_QUERY, reply, f"more replies than the {len(line)} queries sent")
                answered.append(reply)
            self._check_errors(command, reply)
            if len(answered) != len(line):  # only a refused query goes unanswered, and that queued an error
                self.close()
                raise self._garbled(ERROR_QUERY, reply, f"{len(answered)} replies to {len(line)} queries")
            replies.extend(answered)
        return replies

    def interlock_closed(self) -> bool:
        reply = self.query("INT?")
        if reply not in ("OPEN", "CLOSED"):
            raise self._garbled("INT?", reply, "expected OPEN or CLOSED")
        return reply == "CLOSED"
