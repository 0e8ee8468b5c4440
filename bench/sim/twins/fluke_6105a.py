"""Simulated Fluke 6100B/6105A Electrical Power Standard, from the *Fluke 6100B/6105A Electrical Power
Standards Users Manual*, chapter 5 (pages 5-32, 5-36/5-37, 5-43..5-45, 5-58..5-61 and 5-64: see the
driver, ``instruments/vendors/fluke_6105a.py``, for the sections).

One device in three roles on the world: its voltage channels are ``world.source`` (phase x feeds
element x), its current channels the phantom load ``world.load`` (each current's angle is referred
to its own phase's voltage, leading positive, so the world's lag is minus that angle), and its
reports about its own outputs are the reference: WATT? and VA? are the outputs' true power times
``1 + world.reference.error_pct / 100``, as the house reference samples the world through its
error, and the pulse out channel is the world's reference pulse output, whose energy per pulse
``ENERgy:OUTPut:CONStant`` and its unit set (``world.reference.pulse_constant_wh``).

The simulated board has one wave shape (``world.source.harmonics`` and ``world.load.harmonics`` are
one content for every phase). Each phase's harmonics are kept in the instrument's absolute units
as received; the world takes their content relative to the fundamental when every phase carrying
a fundamental agrees (to 1e-4 % and 1e-3 degree). While phases differ, or a phase carries
harmonics without a fundamental, the world keeps the last common shape and ``OUTPut ON`` is refused
with -221 "Settings conflict;phases' harmonic content differs (one wave shape on the simulated
board)": the driver programs all phases alike, so a difference only lasts between its commands.

Chosen where the pages read leave it open, and said: the reply format is the manual's "standard
scientific format" (``2.43E4``, ``9.0E1``, ``0.0E0``); ALL? lists harmonics 1 to the highest one set
(as the manual's examples), without DC, unquoted; only absolute harmonic units are simulated
(``UNIT:MHARmonics:VOLTage|CURRent ABSolute``; anything else is -224); ``SOURce:FREQuency`` and
``OUTPut[:STATe]`` follow the driver's spellings; ``*IDN?`` is ``FLUKE,6105A,<serial>,<version>``;
errors are SCPI-99's (-109, -114, -221, -222, -224, -241). ENERgy:ABORt switches every channel off
(Maintain Voltage is not simulated). The energy test itself (start, duration, results) is not
simulated: its pages were not in the copy read.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from bench.metrology.harmonics import Harmonic
from bench.servers.scpi import (
    ScpiError,
    ScpiServer,
    illegal_value,
    out_of_range,
    parse_bool,
    parse_number,
    scpi,
    undefined_header,
)
from bench.sim.instruments import WorldDevice
from bench.sim.meter_model import Conditions
from bench.sim.twins import Served
from bench.sim.world import World

MAX_PHASES = 3
MAX_ORDER = 100
MAX_VOLTAGE_V = 1008.0
FREQUENCY_HZ = (16.0, 850.0)
STANDARD_CURRENT_A, OPTION_CURRENT_A = 21.0, 80.0
PCT_TOLERANCE, DEG_TOLERANCE = 1e-4, 1e-3
WH_PER_UNIT = {"IPWH": 1.0, "IPKWH": 1e3, "IPMWH": 1e6, "WHPI": 1.0, "KWHPI": 1e3, "MWHPI": 1e6}
MUT_CHANNELS = {"CH1": {1}, "CH1TO2": {1, 2}, "CH1TO3": {1, 2, 3}, "CH1TO4": {1, 2, 3, 4},
                "CH1TO5": {1, 2, 3, 4, 5}, "CH1TO6": {1, 2, 3, 4, 5, 6}, "SUM123": {1, 2, 3}}
REFERENCE_CHANNELS: dict[str, set[int]] = {"CH6": {6}, "SUM456": {4, 5, 6}, "MEAN456": {4, 5, 6},
                                           "MEAN56": {5, 6}, "MMUT": set(), "MAIN": set()}
_SUFFIXED = re.compile(r"(PHAS(?:E)?|HARM(?:ONIC)?)([0-9]+)(?=:|\?|$)", re.IGNORECASE)


def sci(value: float) -> str:
    """The manual's "standard scientific format": 24.3 kW as 2.43E4, 90 as 9.0E1, 0 as 0.0E0."""
    if value == 0:
        return "0.0E0"
    mantissa, exponent = f"{value:.9e}".split("e")
    mantissa = mantissa.rstrip("0")
    return f"{mantissa}0E{int(exponent)}" if mantissa.endswith(".") else f"{mantissa}E{int(exponent)}"


def _wrap(angle: float) -> float:
    return (angle + 180.0) % 360.0 - 180.0


@dataclass
class Channel:
    """One voltage or current channel: harmonic order -> (amplitude, degrees), as received."""

    limit: float
    harmonics: dict[int, tuple[float, float]] = field(default_factory=dict)
    applied: bool = True  # MHARmonics:STATe: harmonics other than the fundamental are output

    @property
    def fundamental(self) -> tuple[float, float]:
        return self.harmonics.get(1, (0.0, 0.0))

    def output_harmonics(self) -> dict[int, tuple[float, float]]:
        return {o: hp for o, hp in self.harmonics.items() if o != 1 and hp[0] != 0 and self.applied}

    def rms(self) -> float:
        return math.sqrt(self.fundamental[0] ** 2 + sum(a * a for a, _ in self.output_harmonics().values()))

    def shape(self) -> dict[int, tuple[float, float]] | None:
        """Content in % of the fundamental; {} for none; None when it cannot be one (no fundamental)."""
        fundamental, rest = self.fundamental[0], self.output_harmonics()
        if fundamental == 0:
            return {} if not rest else None
        return {o: (a / fundamental * 100.0, p) for o, (a, p) in rest.items()}


def common_shape(channels: list[Channel]) -> dict[int, Harmonic] | None:
    """The one wave shape of every phase carrying a fundamental, or None if they differ."""
    shapes = []
    for channel in channels:
        shape = channel.shape()
        if shape is None:
            return None
        if channel.fundamental[0] != 0:
            shapes.append(shape)
    if not shapes:
        return {}
    first = shapes[0]
    for other in shapes[1:]:
        if other.keys() != first.keys():
            return None
        for order, (pct, phase) in other.items():
            if abs(pct - first[order][0]) > PCT_TOLERANCE or abs(_wrap(phase - first[order][1])) > DEG_TOLERANCE:
                return None
    return {order: Harmonic(order, pct, phase) for order, (pct, phase) in sorted(first.items())}


class Fluke6105aTwin(WorldDevice):
    idn = "FLUKE,6105A,SIM6105A,1.0"

    def __init__(self, world: World) -> None:
        super().__init__(world)
        source, load = world.source, world.load
        self.phases = min(source.phases, load.phases, MAX_PHASES)
        self.current_limit_a = OPTION_CURRENT_A if load.max_current_a > STANDARD_CURRENT_A else STANDARD_CURRENT_A
        self.channels: dict[str, list[Channel]] = {"VOLT": [], "CURR": []}
        for x in range(self.phases):
            v, i = source.voltages_v[x], load.currents_a[x]
            volt = Channel(min(MAX_VOLTAGE_V, source.max_voltage_v), {1: (v, source.angles_deg[x])})
            volt.harmonics.update({h.order: (v * h.pct / 100, h.phase_deg) for h in source.harmonics.values()})
            curr = Channel(min(self.current_limit_a, load.max_current_a), {1: (i, _wrap(-load.lags_deg[x]))})
            curr.harmonics.update({h.order: (i * h.pct / 100, h.phase_deg) for h in load.harmonics.values()})
            self.channels["VOLT"].append(volt)
            self.channels["CURR"].append(curr)
        self.mut_source, self.reference_source = "CH1", "MAIN"
        self.constants = {"MUT": (1.0, "IPWH"), "REF": (1.0, "IPWH"),
                          "OUTP": (world.reference.pulse_constant_wh, "WHPI")}
        self.debounce = {"MUT": False, "REF": False}
        self.pullups = {"MUT": "R1000", "REF": "R1000"}
        self.pulse_output_pullup = False
        self._phase = 1
        self._order = 1

    # -- headers with numeric suffixes (PHASe<x>, HARMonic<y>) ---------------------------------------

    def _dispatch(self, header: str, argument: str | None) -> str | None:
        found: dict[str, int] = {}

        def strip(match: re.Match[str]) -> str:
            found[match.group(1)[:4].upper()] = int(match.group(2))
            return match.group(1)

        canonical = _SUFFIXED.sub(strip, header)
        method = self._handler(canonical)
        if method is None:
            raise undefined_header(header)
        self._phase, self._order = found.get("PHAS", 1), found.get("HARM", 1)
        if not 1 <= self._phase <= MAX_PHASES or not 0 <= self._order <= MAX_ORDER:
            raise ScpiError(-114, f"Header suffix out of range;{header}")
        return method(argument)

    def _channel(self, kind: str) -> Channel:
        if self._phase > self.phases:
            raise ScpiError(-241, f"Hardware missing;phase {self._phase}")
        return self.channels[kind][self._phase - 1]

    def _publish(self) -> None:
        """The channels' settings, as the world's source and load (one wave shape, if the phases agree)."""
        source, load = self.world.source, self.world.load
        for x in range(self.phases):
            source.voltages_v[x], source.angles_deg[x] = self.channels["VOLT"][x].fundamental
            amps, angle = self.channels["CURR"][x].fundamental
            load.currents_a[x], load.lags_deg[x] = amps, _wrap(-angle)
        voltage_shape, current_shape = common_shape(self.channels["VOLT"]), common_shape(self.channels["CURR"])
        if voltage_shape is not None:
            source.harmonics = voltage_shape
        if current_shape is not None:
            load.harmonics = current_shape

    # -- channel commands, shared by VOLTage and CURRent ---------------------------------------------

    def _set_state(self, kind: str, arg: str | None) -> None:
        self._channel(kind).applied = parse_bool(arg)
        self._publish()

    def _get_state(self, kind: str) -> str:
        return "1" if self._channel(kind).applied else "0"

    def _clear(self, kind: str, arg: str | None) -> None:
        if arg is not None:
            raise illegal_value(arg)
        channel = self._channel(kind)
        channel.harmonics = {1: channel.fundamental}
        self._publish()

    def _set_rms(self, kind: str, arg: str | None) -> None:
        """MHARmonics:AMPLitude: scale every component to keep the wave shape (page 5-36)."""
        channel, value = self._channel(kind), parse_number(arg)
        present = channel.rms()
        if value < 0 or value > channel.limit:
            raise out_of_range(arg)
        if present == 0:
            raise ScpiError(-221, "Settings conflict;no waveform to scale")
        channel.harmonics = {o: (a * value / present, p) for o, (a, p) in channel.harmonics.items()}
        self._publish()

    def _set_harmonic(self, kind: str, arg: str | None) -> None:
        channel, order = self._channel(kind), self._order
        fields = (arg or "").split(",")
        if len(fields) != 2:
            raise ScpiError(-109, "Missing parameter;amplitude,phase expected")
        amplitude, phase = parse_number(fields[0]), parse_number(fields[1])
        if not 0 <= amplitude <= channel.limit or not -360 <= phase <= 360:
            raise out_of_range(arg)
        if order == 0 and phase != 0:
            raise ScpiError(-224, "Illegal parameter value;the DC phase angle must be zero")
        if amplitude == 0 and order != 1:
            channel.harmonics.pop(order, None)
        else:
            channel.harmonics[order] = (amplitude, phase)
        self._publish()

    def _get_harmonic(self, kind: str, arg: str | None, part: str | None = None) -> str:
        amplitude, phase = self._channel(kind).harmonics.get(self._order, (0.0, 0.0))
        which = part or (arg or "").strip().upper() or "BOTH"
        if which in ("AMPL", "AMPLITUDE"):
            return sci(amplitude)
        if which in ("PANG", "PANGLE"):
            return sci(phase)
        if which != "BOTH":
            raise illegal_value(arg)
        return f"{sci(amplitude)},{sci(phase)}"

    def _get_all(self, kind: str, arg: str | None) -> str:
        channel = self._channel(kind)
        which = (arg or "").strip().upper()
        if which not in ("", "AMPL", "AMPLITUDE", "PANG", "PANGLE"):
            raise illegal_value(arg)
        top = max((o for o in channel.harmonics if o >= 1), default=1)
        rows = [channel.harmonics.get(o, (0.0, 0.0)) for o in range(1, top + 1)]
        if which.startswith("AMPL"):
            return ",".join(sci(a) for a, _ in rows)
        if which.startswith("PANG"):
            return ",".join(sci(p) for _, p in rows)
        return ",".join(f"{sci(a)},{sci(p)}" for a, p in rows)

    @scpi("SOURce:PHASe:FITTed?")
    def fitted(self, _: str | None) -> str:
        return "1" if self._phase <= self.phases else "0"

    @scpi("SOURce:PHASe:VOLTage:MHARmonics:STATe")
    def voltage_state(self, arg: str | None) -> None:
        self._set_state("VOLT", arg)

    @scpi("SOURce:PHASe:VOLTage:MHARmonics:STATe?")
    def voltage_state_query(self, _: str | None) -> str:
        return self._get_state("VOLT")

    @scpi("SOURce:PHASe:VOLTage:MHARmonics:CLEar")
    def voltage_clear(self, arg: str | None) -> None:
        self._clear("VOLT", arg)

    @scpi("SOURce:PHASe:VOLTage:MHARmonics:AMPLitude")
    def voltage_rms(self, arg: str | None) -> None:
        self._set_rms("VOLT", arg)

    @scpi("SOURce:PHASe:VOLTage:MHARmonics:AMPLitude?")
    def voltage_rms_query(self, _: str | None) -> str:
        return sci(self._channel("VOLT").rms())

    @scpi("SOURce:PHASe:VOLTage:MHARmonics:HARMonic")
    def voltage_harmonic(self, arg: str | None) -> None:
        self._set_harmonic("VOLT", arg)

    @scpi("SOURce:PHASe:VOLTage:MHARmonics:HARMonic?")
    def voltage_harmonic_query(self, arg: str | None) -> str:
        return self._get_harmonic("VOLT", arg)

    @scpi("SOURce:PHASe:VOLTage:MHARmonics:HARMonic:AMPLitude?")
    def voltage_harmonic_amplitude(self, arg: str | None) -> str:
        return self._get_harmonic("VOLT", arg, "AMPL")

    @scpi("SOURce:PHASe:VOLTage:MHARmonics:HARMonic:PANGle?")
    def voltage_harmonic_angle(self, arg: str | None) -> str:
        return self._get_harmonic("VOLT", arg, "PANG")

    @scpi("SOURce:PHASe:VOLTage:MHARmonics:ALL?")
    def voltage_all(self, arg: str | None) -> str:
        return self._get_all("VOLT", arg)

    @scpi("SOURce:PHASe:CURRent:MHARmonics:STATe")
    def current_state(self, arg: str | None) -> None:
        self._set_state("CURR", arg)

    @scpi("SOURce:PHASe:CURRent:MHARmonics:STATe?")
    def current_state_query(self, _: str | None) -> str:
        return self._get_state("CURR")

    @scpi("SOURce:PHASe:CURRent:MHARmonics:CLEar")
    def current_clear(self, arg: str | None) -> None:
        self._clear("CURR", arg)

    @scpi("SOURce:PHASe:CURRent:MHARmonics:AMPLitude")
    def current_rms(self, arg: str | None) -> None:
        self._set_rms("CURR", arg)

    @scpi("SOURce:PHASe:CURRent:MHARmonics:AMPLitude?")
    def current_rms_query(self, _: str | None) -> str:
        return sci(self._channel("CURR").rms())

    @scpi("SOURce:PHASe:CURRent:AMPLitude?")
    def current_amplitude(self, _: str | None) -> str:
        """Query only: the phase's output amplitude in RMS amps (page 5-43)."""
        return sci(self._channel("CURR").rms())

    @scpi("SOURce:PHASe:CURRent:MHARmonics:HARMonic")
    def current_harmonic(self, arg: str | None) -> None:
        self._set_harmonic("CURR", arg)

    @scpi("SOURce:PHASe:CURRent:MHARmonics:HARMonic?")
    def current_harmonic_query(self, arg: str | None) -> str:
        return self._get_harmonic("CURR", arg)

    @scpi("SOURce:PHASe:CURRent:MHARmonics:HARMonic:AMPLitude?")
    def current_harmonic_amplitude(self, arg: str | None) -> str:
        return self._get_harmonic("CURR", arg, "AMPL")

    @scpi("SOURce:PHASe:CURRent:MHARmonics:HARMonic:PANGle?")
    def current_harmonic_angle(self, arg: str | None) -> str:
        return self._get_harmonic("CURR", arg, "PANG")

    @scpi("SOURce:PHASe:CURRent:MHARmonics:ALL?")
    def current_all(self, arg: str | None) -> str:
        return self._get_all("CURR", arg)

    # -- what the instrument reports about its outputs: the reference ---------------------------------

    def _outputs(self) -> Conditions:
        """The outputs of every phase now (zero where the output is off), whatever the board's form."""
        source, load, n = self.world.source, self.world.load, self.phases
        return Conditions.from_phases(
            source.output_voltages_v()[:n], source.angles_deg[:n], load.output_currents_a()[:n], load.lags_deg[:n],
            source.frequency_hz,
            tuple(sorted(source.harmonics.values(), key=lambda h: h.order)) if source.output else (),
            tuple(sorted(load.harmonics.values(), key=lambda h: h.order)) if load.output else ())

    def _gain(self) -> float:
        return 1.0 + self.world.reference.error_pct / 100.0

    @scpi("SOURce:PHASe:POWer:WATT?")
    def watts(self, _: str | None) -> str:
        self._channel("VOLT")
        c, x = self._outputs(), self._phase - 1
        return sci(float(c.element_fundamental_power_w()[x] + c.element_harmonic_power_w()[x]) * self._gain())

    @scpi("SOURce:PHASe:POWer:VA?")
    def volt_amperes(self, _: str | None) -> str:
        self._channel("VOLT")
        c, x = self._outputs(), self._phase - 1

        def rms_factor(harmonics: tuple[Harmonic, ...]) -> float:
            return math.sqrt(1.0 + sum((h.pct / 100.0) ** 2 for h in harmonics))

        apparent = abs(c.voltages[x]) * rms_factor(c.voltage_harmonics) * abs(c.currents[x]) * rms_factor(
            c.current_harmonics)
        return sci(float(apparent) * self._gain())

    # -- frequency, output, units, fitment ------------------------------------------------------------

    @scpi("[SOURce:]FREQuency")
    def set_frequency(self, arg: str | None) -> None:
        value = parse_number(arg)
        if not FREQUENCY_HZ[0] <= value <= FREQUENCY_HZ[1]:
            raise out_of_range(arg)
        self.world.source.frequency_hz = value

    @scpi("[SOURce:]FREQuency?")
    def get_frequency(self, _: str | None) -> str:
        return sci(self.world.source.frequency_hz)

    @scpi("OUTPut[:STATe]")
    def set_output(self, arg: str | None) -> None:
        on = parse_bool(arg)
        if on and (common_shape(self.channels["VOLT"]) is None or common_shape(self.channels["CURR"]) is None):
            raise ScpiError(-221, "Settings conflict;phases' harmonic content differs "
                                  "(one wave shape on the simulated board)")
        self.world.source.output = self.world.load.output = on

    @scpi("OUTPut[:STATe]?")
    def get_output(self, _: str | None) -> str:
        return "1" if self.world.source.output or self.world.load.output else "0"

    @scpi("UNIT:MHARmonics:VOLTage")
    def voltage_units(self, arg: str | None) -> None:
        self._absolute_only(arg)

    @scpi("UNIT:MHARmonics:CURRent")
    def current_units(self, arg: str | None) -> None:
        self._absolute_only(arg)

    @scpi("UNIT:MHARmonics:VOLTage?")
    def voltage_units_query(self, _: str | None) -> str:
        return "ABS"

    @scpi("UNIT:MHARmonics:CURRent?")
    def current_units_query(self, _: str | None) -> str:
        return "ABS"

    @staticmethod
    def _absolute_only(arg: str | None) -> None:
        if (arg or "").strip().upper() not in ("ABS", "ABSOLUTE"):
            raise illegal_value(arg)

    @scpi("*OPT?")
    def options(self, _: str | None) -> str:
        """Energy timer/counter on phase 1's voltage channel; the 80 A option on the current channels
        when the board's load goes beyond 21 A (5-117)."""
        values = [0] * 8
        values[0] = 1 << 2
        for x in range(self.phases):
            values[2 * x + 1] = 1 if self.current_limit_a > STANDARD_CURRENT_A else 0
        return ",".join(str(v) for v in values)

    # -- the ENERgy tree (5-92 .. 5-108) ---------------------------------------------------------------

    @scpi("ENERgy:ABORt")
    def abort(self, arg: str | None) -> None:
        if arg is not None:
            raise illegal_value(arg)
        self.world.source.output = self.world.load.output = False

    def _set_constant(self, group: str, arg: str | None) -> None:
        value = parse_number(arg)
        if not 0 < value < math.inf:
            raise out_of_range(arg)
        self.constants[group] = (value, self.constants[group][1])
        self._publish_pulse_constant()

    def _set_unit(self, group: str, arg: str | None) -> None:
        unit = (arg or "").strip().upper()
        if unit not in WH_PER_UNIT:  # "no short form of these parameters"
            raise illegal_value(arg)
        self.constants[group] = (self.constants[group][0], unit)
        self._publish_pulse_constant()

    def _publish_pulse_constant(self) -> None:
        value, unit = self.constants["OUTP"]
        per_unit = WH_PER_UNIT[unit]
        self.world.reference.pulse_constant_wh = per_unit / value if unit.startswith("IP") else per_unit * value

    @scpi("ENERgy:MUT:CONStant")
    def mut_constant(self, arg: str | None) -> None:
        self._set_constant("MUT", arg)

    @scpi("ENERgy:MUT:CONStant?")
    def mut_constant_query(self, _: str | None) -> str:
        return sci(self.constants["MUT"][0])

    @scpi("ENERgy:MUT:CONStant:UNIT")
    def mut_unit(self, arg: str | None) -> None:
        self._set_unit("MUT", arg)

    @scpi("ENERgy:MUT:CONStant:UNIT?")
    def mut_unit_query(self, _: str | None) -> str:
        return self.constants["MUT"][1]

    @scpi("ENERgy:REFerence:CONStant")
    def reference_constant(self, arg: str | None) -> None:
        self._set_constant("REF", arg)

    @scpi("ENERgy:REFerence:CONStant?")
    def reference_constant_query(self, _: str | None) -> str:
        return sci(self.constants["REF"][0])

    @scpi("ENERgy:REFerence:CONStant:UNIT")
    def reference_unit(self, arg: str | None) -> None:
        self._set_unit("REF", arg)

    @scpi("ENERgy:REFerence:CONStant:UNIT?")
    def reference_unit_query(self, _: str | None) -> str:
        return self.constants["REF"][1]

    @scpi("ENERgy:OUTPut:CONStant")
    def output_constant(self, arg: str | None) -> None:
        self._set_constant("OUTP", arg)

    @scpi("ENERgy:OUTPut:CONStant?")
    def output_constant_query(self, _: str | None) -> str:
        return sci(self.constants["OUTP"][0])

    @scpi("ENERgy:OUTPut:CONStant:UNIT")
    def output_unit(self, arg: str | None) -> None:
        self._set_unit("OUTP", arg)

    @scpi("ENERgy:OUTPut:CONStant:UNIT?")
    def output_unit_query(self, _: str | None) -> str:
        return self.constants["OUTP"][1]

    @scpi("ENERgy:OUTPut:PULLup[:STATe]")
    def output_pullup(self, arg: str | None) -> None:
        self.pulse_output_pullup = parse_bool(arg)

    @scpi("ENERgy:MUT:DEBounce[:STATe]")
    def mut_debounce(self, arg: str | None) -> None:
        self.debounce["MUT"] = parse_bool(arg)

    @scpi("ENERgy:MUT:DEBounce[:STATe]?")
    def mut_debounce_query(self, _: str | None) -> str:
        return "1" if self.debounce["MUT"] else "0"

    @scpi("ENERgy:REFerence:DEBounce[:STATe]")
    def reference_debounce(self, arg: str | None) -> None:
        self.debounce["REF"] = parse_bool(arg)

    @scpi("ENERgy:REFerence:DEBounce[:STATe]?")
    def reference_debounce_query(self, _: str | None) -> str:
        return "1" if self.debounce["REF"] else "0"

    def _set_pullup(self, group: str, arg: str | None) -> None:
        resistor = (arg or "").strip().upper()
        if resistor not in ("R150", "R1000"):
            raise illegal_value(arg)
        self.pullups[group] = resistor

    @scpi("ENERgy:MUT:PULLup")
    def mut_pullup(self, arg: str | None) -> None:
        self._set_pullup("MUT", arg)

    @scpi("ENERgy:REFerence:PULLup")
    def reference_pullup(self, arg: str | None) -> None:
        self._set_pullup("REF", arg)

    @scpi("ENERgy:MUT:SOURce")
    def set_mut_source(self, arg: str | None) -> None:
        """A MUT using a reference channel sends the reference back to MAIN (5-97)."""
        source = (arg or "").strip().upper()
        if source not in MUT_CHANNELS:
            raise illegal_value(arg)
        self.mut_source = source
        if MUT_CHANNELS[source] & REFERENCE_CHANNELS[self.reference_source]:
            self.reference_source = "MAIN"

    @scpi("ENERgy:MUT:SOURce?")
    def get_mut_source(self, _: str | None) -> str:
        return self.mut_source

    @scpi("ENERgy:REFerence:SOURce")
    def set_reference_source(self, arg: str | None) -> None:
        """A reference on a MUT's channel is an error (5-103)."""
        source = (arg or "").strip().upper()
        if source not in REFERENCE_CHANNELS:
            raise illegal_value(arg)
        if REFERENCE_CHANNELS[source] & MUT_CHANNELS[self.mut_source]:
            raise ScpiError(-221, f"Settings conflict;{source} is in use by the MUT source {self.mut_source}")
        self.reference_source = source

    @scpi("ENERgy:REFerence:SOURce?")
    def get_reference_source(self, _: str | None) -> str:
        return self.reference_source


def serve(world: World) -> Served:
    device = Fluke6105aTwin(world)
    server = ScpiServer(device).start()
    return Served(server.resource, device, [server])
