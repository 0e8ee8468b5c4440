"""The simulated pulse counter / error calculator board; protocol in instruments/PULSE_COUNTER.md."""
from __future__ import annotations

from bench.sim.instruments import WorldDevice
from bench.sim.scpi import ScpiError, out_of_range, parse_number, parse_whole, scpi
from bench.sim.world import Gate, World

TIMEBASE_HZ = 10_000_000
WRAP_TICKS = 2 ** 32  # the timebase is a 32-bit counter: it wraps every 429.5 s at 10 MHz
MAX_FILTER_S = 0.1
MAX_GLITCHES = 100_000  # per command: bounds the memory a fault injection can take


def channel_gate(world: World, arg: str | None) -> Gate:
    """The gate of a channel number (1..N); anything else is -104 or -222."""
    channel = parse_whole(arg)
    if not 1 <= channel <= len(world.gates):
        raise out_of_range(arg)
    return world.gates[channel - 1]


def split_fields(arg: str | None, count: int) -> list[str]:
    fields = (arg or "").split(",")
    if len(fields) != count:
        raise ScpiError(-109, f"Missing parameter;{count} parameters expected")
    return fields


def to_ticks(seconds: float) -> int:
    return round(seconds * TIMEBASE_HZ)


class SimCounter(WorldDevice):
    """Pulse counter / error calculator board; protocol in instruments/PULSE_COUNTER.md."""

    idn = "MeterBench,SIM-PC,PC0001,1.0"
    timebase_hz = TIMEBASE_HZ

    def _timestamp(self, t: float) -> int:
        """What the 32-bit timebase reads at simulated time ``t``."""
        return (to_ticks(t) + self.world.gates[0].timebase_offset_ticks) % WRAP_TICKS

    @scpi("CONFigure:CHANnels?")
    def channels(self, _: str | None) -> str:
        return str(len(self.world.gates))

    @scpi("CONFigure:TIMebase?")
    def timebase(self, _: str | None) -> str:
        return str(self.timebase_hz)

    @scpi("CONFigure:TIMebase:WRAP?")
    def wrap(self, _: str | None) -> str:
        return str(WRAP_TICKS)

    @scpi("CONFigure:FILTer")
    def set_filter(self, arg: str | None) -> None:
        width = parse_number(arg)
        if not 0 <= width <= MAX_FILTER_S:
            raise out_of_range(arg)
        for gate in self.world.gates:
            gate.filter_s = width

    @scpi("CONFigure:FILTer?")
    def get_filter(self, _: str | None) -> str:
        return format(self.world.gates[0].filter_s, ".10g")

    @scpi("GATE:ARM")
    def arm(self, arg: str | None) -> None:
        channel_arg, pulses_arg = split_fields(arg, 2)
        gate, pulses = channel_gate(self.world, channel_arg), parse_whole(pulses_arg)
        if pulses < 1:
            raise out_of_range(pulses_arg)
        gate.arm(pulses)

    @scpi("GATE:ABORt")
    def abort(self, _: str | None) -> None:
        for gate in self.world.gates:
            if gate.state in ("ARMED", "GATING"):  # finished gates keep their results
                gate.state = "IDLE"

    @scpi("GATE:STATe?")
    def states(self, _: str | None) -> str:
        return ",".join(f"{g.state}:{g.mut_edges}" for g in self.world.gates)

    @scpi("GATE:RESult?")
    def result(self, arg: str | None) -> str:
        """n_mut,n_ref,t_start,t_stop,rejected,p_min,p_max: timestamps wrap, periods do not."""
        gate = channel_gate(self.world, arg)
        if gate.state != "DONE":
            raise ScpiError(-221, f"Settings conflict;gate {arg} is {gate.state}")
        return ",".join(str(v) for v in (
            gate.mut_edges, gate.ref_stop - gate.ref_start, self._timestamp(gate.t_start), self._timestamp(gate.t_stop),
            gate.rejected, to_ticks(gate.period_min_s), to_ticks(gate.period_max_s)))

    @scpi("COUNt:MUT?")
    def mut_count(self, arg: str | None) -> str:
        return str(channel_gate(self.world, arg).total_edges)

    @scpi("COUNt:REFerence?")
    def ref_count(self, _: str | None) -> str:
        return str(self.world.reference_pulses())

    @scpi("TIME?")
    def now(self, _: str | None) -> str:
        return str(self._timestamp(self.world.time_s))

    @scpi("INTerlock?")
    def interlock(self, _: str | None) -> str:
        return "CLOSED" if self.world.interlock_closed else "OPEN"


class CounterFaults:
    """Fault injection on the counter board's inputs, served on the simulator's control channel."""

    def __init__(self, world: World) -> None:
        self.world = world

    @scpi("SIMulation:COUNter:TIMe")
    def set_time(self, arg: str | None) -> None:
        """Set the board's timebase to read ``ticks`` now, so that a test can put a wrap mid-gate."""
        ticks = parse_whole(arg)
        if not 0 <= ticks < WRAP_TICKS:
            raise out_of_range(arg)
        for gate in self.world.gates:
            gate.timebase_offset_ticks = ticks - to_ticks(self.world.time_s)

    @scpi("SIMulation:COUNter:GLITch")
    def glitches(self, arg: str | None) -> None:
        """``ch,count,width_s,span_s``: glitches spread evenly over the next ``span_s`` seconds."""
        channel_arg, count_arg, width_arg, span_arg = split_fields(arg, 4)
        gate, count = channel_gate(self.world, channel_arg), parse_whole(count_arg)
        width, span = parse_number(width_arg), parse_number(span_arg)
        if not 1 <= count <= MAX_GLITCHES or width <= 0 or span <= 0:
            raise out_of_range(arg)
        gate.add_glitches(self.world.time_s, count, width, span)

    @scpi("SIMulation:COUNter:MISS")
    def miss(self, arg: str | None) -> None:
        """``ch,n``: the scanning head does not see the channel's next ``n`` MUT edges (0 cancels)."""
        channel_arg, count_arg = split_fields(arg, 2)
        gate, count = channel_gate(self.world, channel_arg), parse_whole(count_arg)
        if count < 0:
            raise out_of_range(count_arg)
        gate.misses = count
