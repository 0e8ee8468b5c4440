"""The simulated pulse counter / error calculator board; protocol in instruments/PULSE_COUNTER.md."""
from __future__ import annotations

from bench.sim.instruments import WorldDevice
from bench.sim.world import World
from bench.sim.scpi import ScpiError, out_of_range, parse_whole, scpi


class SimCounter(WorldDevice):
    """Pulse counter / error calculator board; protocol in instruments/PULSE_COUNTER.md."""

    idn = "MeterBench,SIM-PC,PC0001,1.0"
    timebase_hz = 10_000_000

    def _channel(self, arg: str | None) -> int:
        channel = parse_whole(arg)
        if not 1 <= channel <= len(self.world.gates):
            raise out_of_range(arg)
        return channel

    def _ticks(self, t: float) -> int:
        return round(t * self.timebase_hz)

    @scpi("CONFigure:CHANnels?")
    def channels(self, _: str | None) -> str:
        return str(len(self.world.gates))

    @scpi("CONFigure:TIMebase?")
    def timebase(self, _: str | None) -> str:
        return str(self.timebase_hz)

    @scpi("GATE:ARM")
    def arm(self, arg: str | None) -> None:
        channel_arg, _, pulses_arg = (arg or "").partition(",")
        channel, pulses = self._channel(channel_arg), parse_whole(pulses_arg)
        if pulses < 1:
            raise out_of_range(pulses_arg)
        self.world.gates[channel - 1].arm(pulses)

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
        gate = self.world.gates[self._channel(arg) - 1]
        if gate.state != "DONE":
            raise ScpiError(-221, f"Settings conflict;gate {arg} is {gate.state}")
        return (f"{gate.mut_edges},{gate.ref_stop - gate.ref_start},"
                f"{self._ticks(gate.t_start)},{self._ticks(gate.t_stop)}")

    @scpi("COUNt:MUT?")
    def mut_count(self, arg: str | None) -> str:
        return str(self.world.gates[self._channel(arg) - 1].total_edges)

    @scpi("COUNt:REFerence?")
    def ref_count(self, _: str | None) -> str:
        return str(self.world.reference_pulses())

    @scpi("TIME?")
    def now(self, _: str | None) -> str:
        return str(self._ticks(self.world.time_s))

    @scpi("INTerlock?")
    def interlock(self, _: str | None) -> str:
        return "CLOSED" if self.world.interlock_closed else "OPEN"


class CounterFaults:
    """Fault injection on the counter board's inputs, served on the simulator's control channel."""

    def __init__(self, world: World) -> None:
        self.world = world
