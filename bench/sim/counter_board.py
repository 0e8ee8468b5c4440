"""The simulated pulse counter / error calculator board; protocol in instruments/PULSE_COUNTER.md.

It serves the command set of `bench counterd` (bench/counterd/device.py) on channels running the
daemon's gate logic (bench/counterd/gate.py, the world's ``Gate``), fed by the simulated meters.
"""
from __future__ import annotations

from collections.abc import Sequence

from bench.counterd.gate import Channel, Timebase
from bench.servers.scpi import ScpiError, out_of_range, parse_number, parse_whole, scpi
from bench.sim.instruments import WorldDevice
from bench.sim.world import Gate, World

MAX_GLITCHES = 100_000  # per command: bounds the memory a fault injection can take


class WorldBoard:
    """The simulated board as the protocol sees it: the world's gates, its reference pulses, its
    interlock, and the timebase counting simulated time (plus the offset a fault sets)."""

    def __init__(self, world: World) -> None:
        self.world = world

    @property
    def timebase(self) -> Timebase:
        return Gate.timebase

    @property
    def channels(self) -> Sequence[Channel]:
        return self.world.gates

    def now_ticks(self) -> int:
        return self.timebase.ticks_from_s(self.world.time_s)

    def stamp(self, ticks: int) -> int:
        return self.timebase.stamp(ticks, self.world.gates[0].timebase_offset_ticks)

    def reference_count(self) -> int:
        return self.world.reference_pulses()

    def lost_events(self) -> int:
        return 0  # the simulated inputs lose nothing

    def interlock_closed(self) -> bool:
        return self.world.interlock_closed


class SimCounter(WorldDevice):
    """Pulse counter / error calculator board; protocol in instruments/PULSE_COUNTER.md."""

    idn = "MeterBench,SIM-PC,PC0001,1.0"

    def __init__(self, world: World) -> None:
        # Imported here, not at the top: the command set uses this package's SCPI dispatcher
        # (bench.servers.scpi), and bench/sim/__init__ imports this module on its way.
        from bench.counterd.device import CounterCommands

        super().__init__(world, (CounterCommands(WorldBoard(world)),))


def _gate(world: World, arg: str | None) -> Gate:
    channel = parse_whole(arg)
    if not 1 <= channel <= len(world.gates):
        raise out_of_range(arg)
    return world.gates[channel - 1]


def _fields(arg: str | None, count: int) -> list[str]:
    fields = (arg or "").split(",")
    if len(fields) != count:
        raise ScpiError(-109, f"Missing parameter;{count} parameters expected")
    return fields


class CounterFaults:
    """Fault injection on the counter board's inputs, served on the simulator's control channel."""

    def __init__(self, world: World) -> None:
        self.world = world

    @scpi("SIMulation:COUNter:TIMe")
    def set_time(self, arg: str | None) -> None:
        """Set the board's timebase to read ``ticks`` now, so that a test can put a wrap mid-gate."""
        ticks, timebase = parse_whole(arg), Gate.timebase
        if not 0 <= ticks < timebase.wrap:
            raise out_of_range(arg)
        for gate in self.world.gates:
            gate.timebase_offset_ticks = ticks - timebase.ticks_from_s(self.world.time_s)

    @scpi("SIMulation:COUNter:GLITch")
    def glitches(self, arg: str | None) -> None:
        """``ch,count,width_s,span_s``: glitches spread evenly over the next ``span_s`` seconds."""
        channel_arg, count_arg, width_arg, span_arg = _fields(arg, 4)
        gate, count = _gate(self.world, channel_arg), parse_whole(count_arg)
        width, span = parse_number(width_arg), parse_number(span_arg)
        if not 1 <= count <= MAX_GLITCHES or width <= 0 or span <= 0:
            raise out_of_range(arg)
        gate.add_glitches(self.world.time_s, count, width, span)

    @scpi("SIMulation:COUNter:MISS")
    def miss(self, arg: str | None) -> None:
        """``ch,n``: the scanning head does not see the channel's next ``n`` MUT edges (0 cancels)."""
        channel_arg, count_arg = _fields(arg, 2)
        gate, count = _gate(self.world, channel_arg), parse_whole(count_arg)
        if count < 0:
            raise out_of_range(count_arg)
        gate.misses = count
