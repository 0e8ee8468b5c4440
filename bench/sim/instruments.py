"""The simulated instruments: each one's SCPI command set, acting on the shared world.

Command sets follow the conventions of programmable AC sources, phantom loads and reference
standards (SCPI-99 headers, error queue, strict parameters); drivers in ``instruments/`` speak
exactly these.
"""
from __future__ import annotations

import heapq
import itertools
import math
import re
from collections.abc import Mapping

import numpy as np

from bench.metrology.harmonics import (
    Harmonic,
    active_power,
    analyse,
    power_by_order,
    synthesize,
    thd_pct,
)
from bench.metrology.quantities import ACTIVE, QUANTITIES
from bench.servers.scpi import (
    LINK_FAULTS,
    ScpiDevice,
    ScpiError,
    illegal_value,
    out_of_range,
    parse_bool,
    parse_number,
    parse_whole,
    scpi,
)
from bench.sim.world import World

OVER_RANGE = "9.91E37"  # SCPI-99: the value of a measurement over range or not a number
_MEASURE_QUERY = re.compile(r"MEAS(?:URE)?:.*\?", re.IGNORECASE)


def _fmt(value: float) -> str:
    return format(value, ".10g")


def parse_harmonic(arg: str | None, lowest_order: int) -> Harmonic:
    """``order,pct,phase_deg``; DC (order 0) only where ``lowest_order`` allows it."""
    fields = (arg or "").split(",")
    if len(fields) != 3:
        raise ScpiError(-109, "Missing parameter;order,pct,phase expected")
    order, pct, phase = parse_whole(fields[0]), parse_number(fields[1]), parse_number(fields[2])
    if order == 1 or not lowest_order <= order <= 50 or not 0 <= pct <= 200 or not -360 <= phase <= 360:
        raise out_of_range(arg)
    return Harmonic(order, pct, phase)


def format_harmonics(harmonics: dict[int, Harmonic]) -> str:
    in_order = sorted(harmonics.values(), key=lambda h: h.order)
    return ",".join(f"{h.order},{_fmt(h.pct)},{_fmt(h.phase_deg)}" for h in in_order) or "NONE"


class WorldDevice(ScpiDevice):
    """A device acting on the world, catching up scaled time before each command."""

    def __init__(self, world: World, extensions: tuple[object, ...] = ()) -> None:
        super().__init__(world.lock, world.sync, extensions)
        self.world = world


class SimSource(WorldDevice):
    idn = "MeterBench,SIM-ACS-3,ACS0001,1.0"

    @scpi("[SOURce:]VOLTage[:LEVel]")
    def set_voltage(self, arg: str | None) -> None:
        value = parse_number(arg)
        if not 0 <= value <= self.world.source.max_voltage_v:
            raise out_of_range(arg)
        self.world.source.voltage_v = value

    @scpi("[SOURce:]VOLTage[:LEVel]?")
    def get_voltage(self, _: str | None) -> str:
        return _fmt(self.world.source.voltage_v)

    @scpi("[SOURce:]FREQuency")
    def set_frequency(self, arg: str | None) -> None:
        value = parse_number(arg)
        if not 45 <= value <= 65:
            raise out_of_range(arg)
        self.world.source.frequency_hz = value

    @scpi("[SOURce:]FREQuency?")
    def get_frequency(self, _: str | None) -> str:
        return _fmt(self.world.source.frequency_hz)

    @scpi("OUTPut[:STATe]")
    def set_output(self, arg: str | None) -> None:
        on = parse_bool(arg)
        if on and self.world.source.tripped:  # a tripped source stays off until the trip is cleared
            raise ScpiError(-221, "Settings conflict;protection tripped")
        self.world.source.output = on

    @scpi("OUTPut[:STATe]?")
    def get_output(self, _: str | None) -> str:
        return "1" if self.world.source.output else "0"

    @scpi("OUTPut:PROTection:TRIPped?")
    def get_tripped(self, _: str | None) -> str:
        return "1" if self.world.source.tripped else "0"

    @scpi("OUTPut:PROTection:CLEar")
    def clear_trip(self, _: str | None) -> None:
        self.world.source.tripped = False

    @scpi("SYSTem:PHASes?")
    def get_phases(self, _: str | None) -> str:
        return str(self.world.source.phases)

    @scpi("[SOURce:]VOLTage:HARMonic")
    def set_harmonic(self, arg: str | None) -> None:
        harmonic = parse_harmonic(arg, lowest_order=2)
        self.world.source.harmonics[harmonic.order] = harmonic

    @scpi("[SOURce:]VOLTage:HARMonic:CLEar")
    def clear_harmonics(self, _: str | None) -> None:
        self.world.source.harmonics.clear()

    @scpi("[SOURce:]VOLTage:HARMonic?")
    def get_harmonics(self, _: str | None) -> str:
        return format_harmonics(self.world.source.harmonics)


class SimLoad(WorldDevice):
    idn = "MeterBench,SIM-PHL-3,PHL0001,1.0"

    def _check_current(self, arg: str) -> float:
        value = parse_number(arg)
        if not 0 <= value <= self.world.load.max_current_a:
            raise out_of_range(arg)
        return value

    @scpi("[SOURce:]CURRent[:LEVel]")
    def set_current(self, arg: str | None) -> None:
        value = self._check_current(arg or "")
        self.world.load.currents_a = [value] * self.world.load.phases

    @scpi("[SOURce:]CURRent:LIST")
    def set_currents(self, arg: str | None) -> None:
        values = [self._check_current(a) for a in (arg or "").split(",")]
        if len(values) != self.world.load.phases:
            raise ScpiError(-109, f"Missing parameter;{self.world.load.phases} currents expected")
        self.world.load.currents_a = values

    @scpi("[SOURce:]CURRent:LIST?")
    def get_currents(self, _: str | None) -> str:
        return ",".join(_fmt(i) for i in self.world.load.currents_a)

    @scpi("[SOURce:]CURRent:HARMonic")
    def set_harmonic(self, arg: str | None) -> None:
        harmonic = parse_harmonic(arg, lowest_order=0)
        self.world.load.harmonics[harmonic.order] = harmonic

    @scpi("[SOURce:]CURRent:HARMonic:CLEar")
    def clear_harmonics(self, _: str | None) -> None:
        self.world.load.harmonics.clear()

    @scpi("[SOURce:]CURRent:HARMonic?")
    def get_harmonics(self, _: str | None) -> str:
        return format_harmonics(self.world.load.harmonics)

    @scpi("[SOURce:]PHASe")
    def set_phase(self, arg: str | None) -> None:
        value = parse_number(arg)
        if not -180 <= value <= 180:
            raise out_of_range(arg)
        self.world.load.phase_deg = value

    @scpi("[SOURce:]PHASe?")
    def get_phase(self, _: str | None) -> str:
        return _fmt(self.world.load.phase_deg)

    @scpi("OUTPut[:STATe]")
    def set_output(self, arg: str | None) -> None:
        self.world.load.output = parse_bool(arg)

    @scpi("OUTPut[:STATe]?")
    def get_output(self, _: str | None) -> str:
        return "1" if self.world.load.output else "0"


class SimReference(WorldDevice):
    """Samples the true world through its own error, as a sampling wattmeter does; its HF pulse
    output is wired to the counter."""

    idn = "MeterBench,SIM-RS-3,RS0001,1.0"
    fault_kinds = (*LINK_FAULTS, "OVERRANGE")  # every measurement over range until NONE

    def _dispatch(self, header: str, argument: str | None) -> str | None:
        reply = super()._dispatch(header, argument)
        if self.fault == "OVERRANGE" and _MEASURE_QUERY.fullmatch(header):
            return OVER_RANGE
        return reply

    def _waves(self) -> list[tuple[np.ndarray, np.ndarray]]:
        c = self.world.conditions()
        return [(synthesize(abs(v), math.degrees(np.angle(v)), c.voltage_harmonics),
                 synthesize(abs(i), math.degrees(np.angle(i)), c.current_harmonics))
                for v, i in zip(c.voltages, c.currents)]

    @staticmethod
    def _rms(wave: np.ndarray) -> float:
        return float(np.sqrt(np.mean(wave ** 2)))

    @scpi("MEASure:VOLTage?")
    def voltage(self, _: str | None) -> str:
        return _fmt(self._rms(self._waves()[0][0]))

    @scpi("MEASure:CURRent?")
    def current(self, _: str | None) -> str:
        return _fmt(self._rms(self._waves()[0][1]))

    @scpi("MEASure:VOLTage:LIST?")
    def voltages(self, _: str | None) -> str:
        return ",".join(_fmt(self._rms(v)) for v, _ in self._waves())

    @scpi("MEASure:VOLTage:ANGLe:LIST?")
    def voltage_angles(self, _: str | None) -> str:
        """Angle of each element's voltage fundamental, degrees from element 1's."""
        voltages = self.world.conditions().voltages
        if not np.any(voltages):
            return ",".join("0" for _ in voltages)
        return ",".join(_fmt(float((math.degrees(np.angle(v / voltages[0])) + 180) % 360 - 180)) for v in voltages)

    @scpi("MEASure:CURRent:LIST?")
    def currents(self, _: str | None) -> str:
        return ",".join(_fmt(self._rms(i)) for _, i in self._waves())

    @scpi("MEASure:POWer[:ACTive]?")
    def power(self, _: str | None) -> str:
        true_power = sum(active_power(v, i) for v, i in self._waves())
        return _fmt(true_power * (1.0 + self.world.reference.error_pct / 100.0))

    @scpi("MEASure:PFACtor?")
    def power_factor(self, _: str | None) -> str:
        return _fmt(self.world.conditions().power_factor)

    @scpi("MEASure:FREQuency?")
    def frequency(self, _: str | None) -> str:
        return _fmt(self.world.conditions().frequency_hz)

    @scpi("MEASure:HARMonic:POWer?")
    def harmonic_power(self, _: str | None) -> str:
        """Total active power of each order (all elements), as order,W pairs."""
        totals: dict[int, float] = {}
        for v, i in self._waves():
            for order, watts in power_by_order(v, i).items():
                totals[order] = totals.get(order, 0.0) + watts
        gain = 1.0 + self.world.reference.error_pct / 100.0
        return ",".join(f"{order},{_fmt(watts * gain)}" for order, watts in sorted(totals.items())) or "NONE"

    @scpi("MEASure:THD:VOLTage?")
    def thd_voltage(self, _: str | None) -> str:
        return _fmt(self._thd(0))

    @scpi("MEASure:THD:CURRent?")
    def thd_current(self, _: str | None) -> str:
        return _fmt(self._thd(1))

    def _thd(self, which: int) -> float:
        wave = self._waves()[0][which]
        if not np.any(wave):
            return 0.0
        return thd_pct(analyse(wave)[1])

    @scpi("MEASure:POWer:REACtive?")
    def reactive_power(self, _: str | None) -> str:
        return _fmt(self.world.reference_reactive_power_var())

    @scpi("ENERgy:RESet")
    def reset_energy(self, _: str | None) -> None:
        self.world.reference.accumulator_wh = self.world.reference.accumulator_varh = 0.0

    @scpi("ENERgy[:ACTive]?")
    def energy(self, _: str | None) -> str:
        return _fmt(self.world.reference.accumulator_wh)

    @scpi("ENERgy:REACtive?")
    def reactive_energy(self, _: str | None) -> str:
        return _fmt(self.world.reference.accumulator_varh)

    @scpi("PULSe:QUANtity")
    def select_pulses(self, arg: str | None) -> None:
        choice = (arg or "").strip().upper()
        if choice not in ("ACT", "ACTIVE", "REAC", "REACTIVE"):
            raise illegal_value(arg)
        self.world.reference.pulses_reactive = choice.startswith("REAC")

    @scpi("PULSe:QUANtity?")
    def pulse_quantity(self, _: str | None) -> str:
        return "REAC" if self.world.reference.pulses_reactive else "ACT"

    @scpi("PULSe:CONStant?")
    def pulse_constant(self, _: str | None) -> str:
        return _fmt(self.world.reference.pulse_constant_wh)


class SimThermometer(WorldDevice):
    """Ambient temperature at the board, for the reference-conditions check."""

    idn = "MeterBench,SIM-TH-1,TH0001,1.0"

    def __init__(self, world: World, ambient_c: float) -> None:
        super().__init__(world)
        self.ambient_c = ambient_c

    @scpi("MEASure:TEMPerature?")
    def temperature(self, _: str | None) -> str:
        return _fmt(self.ambient_c)


class SimControl(WorldDevice):
    """The simulator's own channel: its clock, ground truth and fault injection.

    In stepped mode a control line can be scheduled at a simulated time (``SIM:SCH 20,SIM:SOUR:TRIP``):
    SIM:ADV stops the world at that instant, runs it, and goes on, so a fault lands mid-dwell exactly.
    """

    idn = "MeterBench,SIM-CONTROL,0,1.0"

    def __init__(self, world: World, devices: Mapping[str, ScpiDevice], extensions: tuple[object, ...] = ()) -> None:
        super().__init__(world, extensions)
        self.devices = devices
        self._scheduled: list[tuple[float, int, str]] = []  # (due simulated time, order, control line)
        self._order = itertools.count()

    def _meter(self, arg: str | None):
        position = parse_whole(arg)
        if not 1 <= position <= len(self.world.meters):
            raise out_of_range(arg)
        return self.world.meters[position - 1]

    def _require_stepped_clock(self) -> None:
        if self.world.scale is not None:
            raise ScpiError(-221, "Settings conflict;clock is scaled")

    @scpi("SIMulation:TIME?")
    def time(self, _: str | None) -> str:
        return repr(float(self.world.time_s))

    @scpi("SIMulation:ADVance")
    def advance(self, arg: str | None) -> None:
        seconds = parse_number(arg)
        self._require_stepped_clock()
        if seconds < 0:
            raise out_of_range(arg)
        end = self.world.time_s + seconds
        while self._scheduled and self._scheduled[0][0] <= end:
            due, _, line = heapq.heappop(self._scheduled)
            self.world.advance(max(0.0, due - self.world.time_s))
            self._run_scheduled(line)
        self.world.advance(max(0.0, end - self.world.time_s))

    def _run_scheduled(self, line: str) -> None:
        """Through handle_line, as if sent now: its errors go to this channel's queue, replies nowhere."""
        for _ in self.handle_line(line):
            pass

    @scpi("SIMulation:SCHedule")
    def schedule(self, arg: str | None) -> None:
        """``<delay_s>,<control line>``: the line runs when SIM:ADV reaches now + delay."""
        self._require_stepped_clock()
        delay_text, _, line = (arg or "").partition(",")
        delay = parse_number(delay_text)
        header = line.strip().partition(" ")[0]
        if delay < 0 or not header:
            raise illegal_value(arg)
        if not self.knows(header):
            raise ScpiError(-224, f"Illegal parameter value;unknown command {header}")
        heapq.heappush(self._scheduled, (self.world.time_s + delay, next(self._order), line.strip()))

    @scpi("SIMulation:SCHedule:CLEar")
    def clear_schedule(self, _: str | None) -> None:
        self._scheduled.clear()

    @scpi("SIMulation:SCHedule?")
    def pending(self, _: str | None) -> str:
        return str(len(self._scheduled))

    @scpi("SIMulation:SOURce:TRIP")
    def trip_source(self, _: str | None) -> None:
        """The source's output protection trips: output off until OUTP:PROT:CLE and OUTP ON."""
        self.world.source.output, self.world.source.tripped = False, True

    @scpi("SIMulation:MODE?")
    def mode(self, _: str | None) -> str:
        return "STEP" if self.world.scale is None else f"SCALE,{_fmt(self.world.scale)}"

    @scpi("SIMulation:TRUTh:ERRor?")
    def true_error(self, arg: str | None) -> str:
        """``<position>[,<quantity>]``: a meter's true error of a quantity (Wh unless named) now."""
        position, _, name = (arg or "").partition(",")
        quantity = QUANTITIES.get(name.strip() or ACTIVE.name)
        if quantity is None:
            raise illegal_value(arg)
        return repr(float(self._meter(position).true_error_pct(self.world.conditions(), quantity)))

    @scpi("SIMulation:TRUTh:POWer?")
    def true_power(self, _: str | None) -> str:
        return repr(float(self.world.true_power_w()))

    @scpi("SIMulation:TRUTh:OUTPut?")
    def outputs(self, _: str | None) -> str:
        return f"{int(self.world.source.output)},{int(self.world.load.output)}"

    @scpi("SIMulation:FAULt")
    def inject_device_fault(self, arg: str | None) -> None:
        """``<target>,<kind>[,<arg>]``: a fault of one instrument or of its link. (Not named
        ``inject_fault``: that is this channel's own, as of every ScpiDevice.)"""
        target, _, rest = (arg or "").partition(",")
        kind, comma, fault_arg = rest.partition(",")
        device = self.devices.get(target.strip().upper())
        if device is None:
            raise illegal_value(arg)
        device.inject_fault(kind.strip().upper(), fault_arg.strip() if comma else None)

    @scpi("SIMulation:REFerence:ERRor")
    def reference_error(self, arg: str | None) -> None:
        """The reference standard's true error: tests draw it from its certificate's distribution."""
        self.world.reference.error_pct = parse_number(arg)

    @scpi("SIMulation:INTerlock")
    def interlock(self, arg: str | None) -> None:
        state = (arg or "").upper()
        if state not in ("OPEN", "CLOSED"):
            raise ScpiError(-224, f"Illegal parameter value;{arg}")
        self.world.interlock_closed = state == "CLOSED"
