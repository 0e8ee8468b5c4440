"""Twin of the AMETEK / California Instruments three-phase AC source (driver
``instruments.vendors.ametek_ci``): the manuals' syntax, acting on the simulated world.

Per phase: the programmed rms (``[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]``, alias
``[SOURce:]VOLTage:AC``), to every phase under ``INSTrument:COUPle ALL`` and to the one
``INSTrument:NSELect`` chose under ``NONE``; ``[SOURce:]PHASe`` always to the selected phase only
(Lx II manual 4.20), positive leading, stored in the world as degrees in [-180, 180).

Wave shapes: the sine (``SIN``) and user traces (``TRACe:DEFine``, ``TRACe[:DATA]`` with exactly
1024 points, up to 50 of them, Sequoia manual 4.29) selected with ``[SOURce:]FUNCtion[:SHAPe]``.
A trace is analysed with the bench's own FFT (``bench.metrology.harmonics.spectrum``) after its DC
is removed, as the source removes it: the programmed rms is the whole wave's, so the world's
voltage (the fundamental's rms) is the setting times the trace's fundamental over its rms, and
``world.source.harmonics`` holds orders 2..511 at or above 0.01 % of the fundamental, phases
referred to the fundamental as ``bench.metrology.harmonics.analyse`` gives them. 0.01 % is below
any harmonic a meter test programs and above what the driver's five-decimal points leave in the
other orders: at most 0.001 % times the wave's peak over its fundamental's (0.002 % while the
harmonics add up to no more than the fundamental).

What the simulated board cannot do is refused with a device error, as an instrument refuses a
conflicting setting: one wave shape serves every phase on the board, so a shape that would make
one phase differ from the others is error -221 ("Settings conflict"). The square and clipped sine
the manuals also name are not simulated (-224). Redefining a defined trace is refused (-221): the
manual read does not say what the instrument does.

Protection: ``STATus:QUEStionable:CONDition?`` has OCP (bit 1, value 2) while the world's source is
tripped; ``OUTPut:PROTection:CLEar`` clears it (Lx II manual, p. 14 example).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from bench.metrology.harmonics import Harmonic, spectrum
from bench.servers.scpi import (
    ScpiError,
    ScpiServer,
    illegal_value,
    out_of_range,
    parse_bool,
    parse_number,
    parse_whole,
    scpi,
)
from bench.sim.instruments import WorldDevice
from bench.sim.twins import Served
from bench.sim.world import World

IDN = "CALIFORNIA INSTRUMENTS,4500LX,0,0.1"  # the shape of the Lx II manual's example (5.3)
TRACE_POINTS = 1024
MAX_USER_WAVEFORMS = 50  # per group (Sequoia manual 4.29)
HARMONIC_FLOOR_PCT = 0.01
FUNDAMENTAL_FLOOR = 1e-3  # a trace whose fundamental is below 0.1 % of its rms has no usable fundamental
PHASE_RANGE_DEG = 360.0
FREQUENCY_RANGE_HZ = (16.0, 500.0)
SINE = "SIN"
SINE_NAMES = {"SIN", "SINUSOID"}
NOT_SIMULATED = {"SQU", "SQUARE", "CSIN", "CSINUSOID"}
TRACE_LINE_BYTES = 16384  # a 1024-point TRACe line is about 9 KB; the house devices take 4 KB lines
_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,11}")


@dataclass(frozen=True)
class Shape:
    """What a wave shape does to the world: the fundamental's share of the rms, and its harmonics."""

    fundamental_share: float
    harmonics: dict[int, Harmonic] = field(default_factory=dict)


SINE_SHAPE = Shape(1.0)


def analyse_trace(points: np.ndarray) -> Shape:
    """The shape of one cycle of points, with its DC removed as the source removes it."""
    wave = points - points.mean()
    rms = float(np.sqrt(np.mean(wave ** 2)))
    phasors = spectrum(wave)
    fundamental = float(abs(phasors[1]))
    if fundamental <= FUNDAMENTAL_FLOOR * rms:
        raise ScpiError(-224, "Illegal parameter value;waveform has no fundamental")
    base = float(np.angle(phasors[1]))
    harmonics = {}
    for order in range(2, TRACE_POINTS // 2):
        pct = float(abs(phasors[order])) / fundamental * 100.0
        if pct >= HARMONIC_FLOOR_PCT:
            phase = math.degrees(float(np.angle(phasors[order])) - order * base)
            harmonics[order] = Harmonic(order, pct, (phase + 180.0) % 360.0 - 180.0)
    return Shape(fundamental / rms, harmonics)


class AmetekCiTwin(WorldDevice):
    idn = IDN
    max_line_bytes = TRACE_LINE_BYTES

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.coupled = True
        self.selected = 1
        self.settings_v = list(world.source.voltages_v)  # a sine at power-up: the world's voltages
        self.shapes = [SINE] * world.source.phases
        self.traces: dict[str, Shape | None] = {}  # defined user waveforms; None until their data arrive

    # -- phase selection ---------------------------------------------------------------------------

    @scpi("INSTrument:COUPle")
    def set_couple(self, arg: str | None) -> None:
        token = (arg or "").strip().upper()
        if token not in ("ALL", "NONE"):
            raise illegal_value(arg)
        self.coupled = token == "ALL"

    @scpi("INSTrument:COUPle?")
    def get_couple(self, _: str | None) -> str:
        return "ALL" if self.coupled else "NONE"

    @scpi("INSTrument:NSELect")
    def set_selected(self, arg: str | None) -> None:
        number = parse_whole(arg)
        if not 1 <= number <= self.world.source.phases:
            raise out_of_range(arg)
        self.selected = number

    @scpi("INSTrument:NSELect?")
    def get_selected(self, _: str | None) -> str:
        return str(self.selected)

    def _targets(self) -> list[int]:
        """The phases a phase-selectable setting reaches (0-based)."""
        return list(range(self.world.source.phases)) if self.coupled else [self.selected - 1]

    # -- levels ------------------------------------------------------------------------------------

    @scpi("[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]")
    def set_voltage(self, arg: str | None) -> None:
        self._set_voltage(arg)

    @scpi("[SOURce:]VOLTage:AC")
    def set_voltage_ac(self, arg: str | None) -> None:
        self._set_voltage(arg)

    def _set_voltage(self, arg: str | None) -> None:
        """The rms of the whole wave, on the phases the coupling reaches."""
        value = parse_number(arg)
        if not 0 <= value <= self.world.source.max_voltage_v:
            raise out_of_range(arg)
        for index in self._targets():
            self.settings_v[index] = value
        self._apply()

    @scpi("[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]?")
    def get_voltage(self, _: str | None) -> str:
        return self._setting()

    @scpi("[SOURce:]VOLTage:AC?")
    def get_voltage_ac(self, _: str | None) -> str:
        return self._setting()

    def _setting(self) -> str:
        return format(self.settings_v[self.selected - 1], ".10g")

    @scpi("[SOURce:]PHASe[:IMMediate]")
    def set_phase(self, arg: str | None) -> None:
        """The selected phase only, whatever the coupling (Lx II manual 4.20)."""
        value = parse_number(arg)
        if not -PHASE_RANGE_DEG <= value <= PHASE_RANGE_DEG:
            raise out_of_range(arg)
        self.world.source.angles_deg[self.selected - 1] = (value + 180.0) % 360.0 - 180.0

    @scpi("[SOURce:]PHASe[:IMMediate]?")
    def get_phase(self, _: str | None) -> str:
        return f"{self.world.source.angles_deg[self.selected - 1] % 360.0:.6E}"  # NR3, as 4.20 returns it

    @scpi("[SOURce:]FREQuency[:IMMediate]")
    def set_frequency(self, arg: str | None) -> None:
        value = parse_number(arg)
        if not FREQUENCY_RANGE_HZ[0] <= value <= FREQUENCY_RANGE_HZ[1]:
            raise out_of_range(arg)
        self.world.source.frequency_hz = value

    @scpi("[SOURce:]FREQuency[:IMMediate]?")
    def get_frequency(self, _: str | None) -> str:
        return format(self.world.source.frequency_hz, ".10g")

    # -- wave shape --------------------------------------------------------------------------------

    @scpi("[SOURce:]FUNCtion[:SHAPe]")
    def set_shape(self, arg: str | None) -> None:
        name = self._selectable(arg)
        shapes = list(self.shapes)
        for index in self._targets():
            shapes[index] = name
        if len(set(shapes)) > 1:
            raise ScpiError(-221, "Settings conflict;one wave shape on every phase of the simulated board")
        self.shapes = shapes
        self._apply()

    @scpi("[SOURce:]FUNCtion[:SHAPe]?")
    def get_shape(self, _: str | None) -> str:
        return self.shapes[self.selected - 1]

    def _selectable(self, arg: str | None) -> str:
        name = (arg or "").strip().upper()
        if name in SINE_NAMES:
            return SINE
        if name in NOT_SIMULATED or name not in self.traces:
            raise illegal_value(arg)
        if self.traces[name] is None:
            raise ScpiError(-221, f"Settings conflict;waveform {name} has no data")
        return name

    @scpi("TRACe:CATalog?")
    def catalog(self, _: str | None) -> str:
        return ",".join([SINE, *self.traces])

    @scpi("TRACe:DEFine")
    def define(self, arg: str | None) -> None:
        """``<name>[,<name>|1024]``: a new waveform, empty or a copy of another."""
        fields = [f.strip().upper() for f in (arg or "").split(",")]
        name, source = fields[0], fields[1] if len(fields) > 1 else None
        if len(fields) > 2 or not _NAME.fullmatch(name) or name in SINE_NAMES | NOT_SIMULATED:
            raise illegal_value(arg)
        if name in self.traces:
            raise ScpiError(-221, f"Settings conflict;waveform {name} is already defined")
        if len(self.traces) >= MAX_USER_WAVEFORMS:
            raise ScpiError(-225, "Out of memory")
        if source is None or source == str(TRACE_POINTS):
            self.traces[name] = None
        elif source in SINE_NAMES:
            self.traces[name] = SINE_SHAPE
        elif source in self.traces:
            self.traces[name] = self.traces[source]
        else:
            raise illegal_value(arg)

    @scpi("TRACe[:DATA]")
    def data(self, arg: str | None) -> None:
        name, _, rest = (arg or "").partition(",")
        name = name.strip().upper()
        if name not in self.traces:
            raise illegal_value(name)
        fields = rest.split(",") if rest.strip() else []
        if len(fields) < TRACE_POINTS:
            raise ScpiError(-109, f"Missing parameter;{TRACE_POINTS} points expected, {len(fields)} sent")
        if len(fields) > TRACE_POINTS:
            raise ScpiError(-108, f"Parameter not allowed;{TRACE_POINTS} points expected, {len(fields)} sent")
        self.traces[name] = analyse_trace(np.array([parse_number(f) for f in fields]))
        if name in self.shapes:
            self._apply()

    def _apply(self) -> None:
        """The world's fundamental voltages and harmonics from the settings and the one shape."""
        shape = SINE_SHAPE if self.shapes[0] == SINE else self.traces[self.shapes[0]]
        assert shape is not None  # a shape without data cannot be selected
        self.world.source.voltages_v = [v * shape.fundamental_share for v in self.settings_v]
        self.world.source.harmonics = dict(shape.harmonics)

    # -- output and status -------------------------------------------------------------------------

    @scpi("OUTPut[:STATe]")
    def set_output(self, arg: str | None) -> None:
        on = parse_bool(arg)
        if on and self.world.source.tripped:  # the output stays off until the protection is cleared
            raise ScpiError(-221, "Settings conflict;output protection tripped")
        self.world.source.output = on

    @scpi("OUTPut[:STATe]?")
    def get_output(self, _: str | None) -> str:
        return "1" if self.world.source.output else "0"

    @scpi("OUTPut:PROTection:CLEar")
    def clear_protection(self, _: str | None) -> None:
        self.world.source.tripped = False

    @scpi("STATus:QUEStionable:CONDition?")
    def questionable(self, _: str | None) -> str:
        return "2" if self.world.source.tripped else "0"  # OCP, Table 4-4


def serve(world: World) -> Served:
    device = AmetekCiTwin(world)
    server = ScpiServer(device).start()
    return Served(server.resource, device, [server])
