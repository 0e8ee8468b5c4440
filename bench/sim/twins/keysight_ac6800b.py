"""Simulated Keysight AC6800B basic AC source, from the *Keysight AC6800B Series Operating and Service
Guide*, chapter 3 (SCPI Programming Reference), its data sheet (155 V / 310 V ranges) and, for the
earlier AC680xA models, the *Keysight AC6800 Series Operating and Service Guide* (VOLTage Subsystem:
135 V range to 137.5 V, 270 V range to 275.0 V; one or three arguments to VOLTage).

One output, wired to phase 1 of the simulated board: the twin drives ``world.source`` phase 1 and
holds the other phases at 0 V, so the board's elements 2 and 3 see no voltage. It outputs a sine
(the instrument programs no harmonics), and clears the world's harmonic content when it starts.

What the guide leaves open is chosen here, and said: the power-on range is the high one; replies to
numeric queries are NR3 (``+1.200000E+02``) and to the status register NR1 (``+2``); the range
command takes the nominal range value (or MIN|MAX); error codes are SCPI-99's (-104, -108, -109,
-221, -222, -224), since the guide's error list was not read. The world's one source trip stands for
the overcurrent protection (Questionable bit 1, OC); as on Keysight sources, a protection holds
the output off without changing its programmed state, and OUTPut:PROTection:CLEar restores it.
Soft limits are enforced while VOLTage:LIMit:STATe is ON; the frequency's are stored and range
checked only (their state command was not read). The frequency's implied node is taken to be
SCPI-99's ``[:CW]`` (the FREQuency page was not read): it is what makes the guide's
``FREQuency 100,90,110;MODE FIXed`` the same as ``FREQuency:MODE FIXed``.
"""
from __future__ import annotations

from bench.servers.scpi import (
    ScpiError,
    ScpiServer,
    illegal_value,
    out_of_range,
    parse_bool,
    parse_number,
    scpi,
)
from bench.sim.instruments import WorldDevice
from bench.sim.twins import Served
from bench.sim.world import World

# Nominal range -> highest setting in it, by the series letter ending the model name.
RANGES = {"A": {135.0: 137.5, 270.0: 275.0}, "B": {155.0: 155.0, 310.0: 310.0}}
FREQUENCY_HZ = (40.0, 500.0)
VOLT_UNITS = (("MV", 1e-3), ("KV", 1e3), ("V", 1.0))
FREQ_UNITS = (("KHZ", 1e3), ("HZ", 1.0))
OC = 1 << 1  # Questionable Status: output disabled by the overcurrent protection
MINIMUM, MAXIMUM = ("MIN", "MINIMUM"), ("MAX", "MAXIMUM")


def _nr3(value: float) -> str:
    return f"{value:+.6E}"


def _arguments(arg: str | None) -> list[str]:
    """A value alone, or a value with its low and high soft limits (never one limit alone)."""
    args = [] if arg is None else [a.strip() for a in arg.split(",")]
    if len(args) in (0, 2):
        raise ScpiError(-109, "Missing parameter;a value, or a value with both its limits")
    if len(args) > 3:
        raise ScpiError(-108, "Parameter not allowed")
    return args


def _value(token: str, low: float, high: float, units: tuple[tuple[str, float], ...]) -> float:
    """A numeric parameter: MIN|MAX, or a decimal with an optional unit suffix; within low..high."""
    text = token.strip().upper()
    if text in MINIMUM:
        return low
    if text in MAXIMUM:
        return high
    scale = 1.0
    for suffix, factor in units:
        if text.endswith(suffix):
            text, scale = text[: -len(suffix)], factor
            break
    value = parse_number(text) * scale
    if not low <= value <= high:
        raise out_of_range(token)
    return value


def _query_value(arg: str | None, present: float, low: float, high: float) -> float:
    if arg is None:
        return present
    token = arg.strip().upper()
    if token in MINIMUM:
        return low
    if token in MAXIMUM:
        return high
    raise illegal_value(arg)


class KeysightAc6800bTwin(WorldDevice):
    def __init__(self, world: World, model: str = "AC6803B", serial: str = "MY00000001",
                 firmware: str = "A.01.00") -> None:
        super().__init__(world)
        self.idn = f"Keysight Technologies,{model},{serial},{firmware}"
        self.ranges = RANGES[model[-1]]
        self.range_v = max(self.ranges)
        self.voltage_v = 0.0
        self.voltage_limits = (0.0, self.ranges[self.range_v])
        self.voltage_limit_state = False
        self.frequency_hz = world.source.frequency_hz
        self.frequency_limits = FREQUENCY_HZ
        self.frequency_mode = "FIX"
        self.coupling = "AC"
        self.output = False  # as programmed; a tripped protection holds the real output off
        with world.lock:
            world.source.harmonics.clear()
            self._drive()

    def _drive(self) -> None:
        """Phase 1 carries the AC setting (none under DC coupling); the other phases none."""
        source = self.world.source
        phase_1 = 0.0 if self.coupling == "DC" else self.voltage_v
        source.voltages_v = [phase_1] + [0.0] * (source.phases - 1)
        source.frequency_hz = self.frequency_hz
        source.output = self.output and not source.tripped

    # -- VOLTage ---------------------------------------------------------------------------------

    @scpi("[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]")
    def set_voltage(self, arg: str | None) -> None:
        top = self.ranges[self.range_v]
        values = [_value(a, 0.0, top, VOLT_UNITS) for a in _arguments(arg)]
        level, limits = values[0], (values[1], values[2]) if len(values) == 3 else self.voltage_limits
        if self.voltage_limit_state and not limits[0] <= level <= limits[1]:
            raise out_of_range(arg)
        self.voltage_v, self.voltage_limits = level, limits
        self._drive()

    @scpi("[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]?")
    def get_voltage(self, arg: str | None) -> str:
        return _nr3(_query_value(arg, self.voltage_v, 0.0, self.ranges[self.range_v]))

    @scpi("[SOURce:]VOLTage:RANGe")
    def set_range(self, arg: str | None) -> None:
        token = (arg or "").strip().upper()
        if token in MINIMUM + MAXIMUM:
            nominal = min(self.ranges) if token in MINIMUM else max(self.ranges)
        else:
            nominal = _value(token, min(self.ranges), max(self.ranges), VOLT_UNITS)
            if nominal not in self.ranges:
                raise illegal_value(arg)
        top = self.ranges[nominal]
        # Range error checking covers the active settings only (inactive soft limits are not checked).
        if self.voltage_v > top or (self.voltage_limit_state and self.voltage_limits[1] > top):
            raise ScpiError(-221, f"Settings conflict;voltage setting above the {nominal:g} V range")
        self.range_v = nominal

    @scpi("[SOURce:]VOLTage:RANGe?")
    def get_range(self, _: str | None) -> str:
        return _nr3(self.range_v)

    @scpi("[SOURce:]VOLTage:LIMit:STATe")
    def set_limit_state(self, arg: str | None) -> None:
        on = parse_bool(arg)
        low, high = self.voltage_limits
        if on and not low <= self.voltage_v <= high:  # enabling soft limits checks the settings
            raise ScpiError(-221, "Settings conflict;voltage outside its soft limits")
        self.voltage_limit_state = on

    @scpi("[SOURce:]VOLTage:LIMit:STATe?")
    def get_limit_state(self, _: str | None) -> str:
        return "1" if self.voltage_limit_state else "0"

    # -- FREQuency -------------------------------------------------------------------------------

    @scpi("[SOURce:]FREQuency[:CW]")
    def set_frequency(self, arg: str | None) -> None:
        values = [_value(a, *FREQUENCY_HZ, FREQ_UNITS) for a in _arguments(arg)]
        self.frequency_hz = values[0]
        if len(values) == 3:
            self.frequency_limits = (values[1], values[2])
        self._drive()

    @scpi("[SOURce:]FREQuency[:CW]?")
    def get_frequency(self, arg: str | None) -> str:
        return _nr3(_query_value(arg, self.frequency_hz, *FREQUENCY_HZ))

    @scpi("[SOURce:]FREQuency:MODE")
    def set_frequency_mode(self, arg: str | None) -> None:
        token = (arg or "").strip().upper()
        if token not in ("FIX", "FIXED", "STEP"):
            raise illegal_value(arg)
        self.frequency_mode = "STEP" if token == "STEP" else "FIX"

    @scpi("[SOURce:]FREQuency:MODE?")
    def get_frequency_mode(self, _: str | None) -> str:
        return self.frequency_mode

    # -- OUTPut and status -------------------------------------------------------------------------

    @scpi("OUTPut[:STATe]")
    def set_output(self, arg: str | None) -> None:
        self.output = parse_bool(arg)
        self._drive()

    @scpi("OUTPut[:STATe]?")
    def get_output(self, _: str | None) -> str:
        return "1" if self.output else "0"

    @scpi("OUTPut:COUPling")
    def set_coupling(self, arg: str | None) -> None:
        token = (arg or "").strip().upper()
        if token not in ("AC", "DC", "ACDC"):
            raise illegal_value(arg)
        self.coupling = token
        self._drive()

    @scpi("OUTPut:COUPling?")
    def get_coupling(self, _: str | None) -> str:
        return self.coupling

    @scpi("OUTPut:PROTection:CLEar")
    def clear_protection(self, _: str | None) -> None:
        """The latch clears and the output returns to its programmed state."""
        self.world.source.tripped = False
        self._drive()

    @scpi("STATus:QUEStionable:CONDition?")
    def questionable_condition(self, _: str | None) -> str:
        return f"{OC if self.world.source.tripped else 0:+d}"


def serve(world: World) -> Served:
    device = KeysightAc6800bTwin(world)
    server = ScpiServer(device).start()
    return Served(server.resource, device, [server])
