"""Fluke 6100B / 6105A Electrical Power Standard: voltage source, phantom load and reference in one
instrument (up to three phases: a 6100B/6105A master with 6101B/6106A auxiliary units), with the
optional energy timer/counter (pulse comparison) option.

Followed, by section (the manual numbers its sections "5-92." and its pages "5-58"; both are given):

- *Fluke 6100B/6105A Electrical Power Standards, Users Manual* (Fluke Corporation; the part number is
  not legible in the copy read), chapter 5 "Remote Operation":
  - page 5-32, section 5-53: ``SOURce:PHASe<x>:FITTed?`` (1 if the phase is present),
    ``SOURce:PHASe<x>:POWer:WATT?`` and ``:VA?`` ("standard scientific format (24.3 kW would be
    returned as 2.43E4)"; WATT? "always the same irrespective of the reactive power calculation").
  - pages 5-36/5-37, section 5-55 (voltage) and pages 5-44/5-45, section 5-69 (current):
    ``SOURce:PHASe<x>:<VOLTage|CURRent>:MHARmonics:CLEar`` (all harmonics but the fundamental),
    ``...:MHARmonics:AMPLitude?`` (RMS of the composite wave), ``...:MHARmonics:HARMonic<y>
    <amplitude>,<phase>`` for y = 0..100, "DC is represented by harmonic number zero", amplitude "in
    the presently selected ... amplitude units", "the phase angle for the 0th harmonic (DC) must be
    zero"; ``...:HARMonic<y>:PANGle?``; ``...:MHARmonics:ALL?`` (amplitude,phase of harmonic 1, 2, ...
    as a comma separated list; the examples list harmonics 1 to 5 and print the reply in quotes).
    The tail of the MHARmonics:STATe description is on page 5-36 ("the query command will return 1
    if the harmonics are applied").
  - page 5-43: ``SOURce:PHASe<x>:CURRent:AMPLitude?`` (query only: the phase's output amplitude in
    RMS amps, "14.4 A would be returned as 1.44E1"); current ranges 0.25 A to 21 A, 50 A and 80 A.
  - pages 5-58 to 5-61, sections 5-92 to 5-108, the ENERgy tree: ``ENERgy:ABORt`` (5-92: "similar
    to hitting the STBY key or sending :OUTPut OFF"; only ``:OUTPut OFF`` turns every channel off
    whatever "Maintain Voltage" says), ``ENERgy:MUT:CONStant`` and ``:UNIT`` (5-94, 5-95),
    ``ENERgy:MUT:DEBounce`` (5-96), ``ENERgy:MUT:SOURce`` (5-97: defining a MUT source that uses a
    reference channel silently moves the reference to a default, "typically MAIN": define the MUT
    first), ``ENERgy:MUT:PULLup`` (5-98), ``ENERgy:REFerence:DEBounce``, ``:CONStant``, ``:UNIT``,
    ``:SOURce`` (MAIN = "equivalent pulse count of the power outputs", an error if the channel is a
    MUT's), ``:PULLup`` (5-100 to 5-104), ``ENERgy:OUTPut:CONStant`` and ``:UNIT`` (5-106, 5-107: the
    pulse out channel, "a pulse stream that is proportional to the active power outputs", generated
    when the energy option is selected and the output is on), ``ENERgy:OUTPut:PULLup`` (5-108).
    Units: ``IPWH|IPKWH|IPMWH|WHPI|KWHPI|MWHPI``, "no short form" (the manual's tables misspell
    some as IPKMH, WHIP, KWHIP, KMHIP; the syntax lines are followed).
  - page 5-64, section 5-117: ``*OPT?``, eight comma-separated NR1 (phase 1 V, phase 1 I, phase 2 V,
    phase 2 I, phase 3 V, phase 3 I, neutral V, neutral I); bit 0 the 80 A option, bit 2 the energy
    timer/counter, bit 4 the version II energy timer/counter, bit 6 the 50 A option.
  - section 5-110 ``*CLS``.
- The same manual, chapter 7, section 7-4 (pages 7-3/7-4): the confidence check at 120 V, 5 A,
  60 Hz, power factor 0.5, and the cross-check procedure "set L2 voltage phase angle to zero ... set
  the L2 current phase angle to zero. Now the L1 voltage and the L2 current are in phase".
- Chapter 1, section 1-29 (page 1-15): the distortion specifications run from 16 Hz to 850 Hz.

Commands sent (short forms): ``*IDN?``, ``*CLS``, ``*OPT?``, ``SOUR:PHAS<x>:FITT?``,
``UNIT:MHAR:VOLT ABS``, ``UNIT:MHAR:CURR ABS``, ``SOUR:FREQ <Hz>`` / ``SOUR:FREQ?``,
``SOUR:PHAS<x>:<VOLT|CURR>:MHAR:STAT ON``, ``...:MHAR:CLE``, ``...:MHAR:HARM<y> <amplitude>,<degrees>``,
``SOUR:PHAS<x>:VOLT:MHAR:AMPL?``, ``SOUR:PHAS<x>:CURR:AMPL?``, ``SOUR:PHAS<x>:VOLT:MHAR:HARM1:PANG?``,
``SOUR:PHAS<x>:<VOLT|CURR>:MHAR:ALL?``, ``SOUR:PHAS<x>:POW:WATT?``, ``SOUR:PHAS<x>:POW:VA?``,
``OUTP ON|OFF``, ``OUTP:STAT?``, the ENERgy commands above, and ``SYST:ERR?`` after every setting.

How it uses them:

- One output for every channel: ``OUTP ON`` energises the voltage and the current channels
  together (5-92 speaks of one output for "all channels"), so the source and the load share it:
  ``switch_on`` from either role energises both, and ``safe_state`` from either switches both off.
- Harmonics: the bench gives them in % of the fundamental; the instrument takes absolute amplitudes,
  so each is sent as pct/100 times that phase's fundamental (DC likewise, at phase 0).
- Current angle: the bench gives the lag behind the phase's own voltage; the instrument's current
  HARMonic1 angle is taken as measured from the same phase's voltage, leading positive (the
  section 7-4 procedure aligns L1 voltage with L2 current by zeroing the L2 voltage angle as well
  as the L2 current angle, which only matters if the current angle is referred to its own phase's
  voltage). The angle sent is therefore -lag.
- Reference readings are what the instrument reports about its own outputs (a power standard's
  outputs are the reference): per phase the composite RMS voltage and current, WATT? and VA?, the
  voltage fundamental's angle; power factor is the sum of WATT? over the sum of VA?; THD from
  phase 1's ALL? lists.
- The pulse output constant (ENERgy:OUTPut:CONStant with its unit) is the bench's reference pulse
  constant; the output goes to the counter's reference input.

Left open by what was read, said here rather than guessed:

- The UNIT subsystem page was not read. ``UNIT:MHARmonics:VOLTage ABSolute`` and ``...:CURRent``
  are sent at open as a published control program for a 6105A spells them; if the instrument
  rejects them, opening fails loudly. The phase-angle unit command was not read: angles are sent
  in degrees, the unit the manual's examples show.
- ``SOURce:FREQuency`` and ``OUTPut[:STATe]`` pages were not read: the frequency command is spelled
  as that program spells it, ``OUTPut OFF`` as section 5-92 does; the query is ``OUTP:STAT?``.
- The per-channel enable (``...:VOLTage:STATe``) was not read; channels are assumed enabled.
- The voltage range table was not read: 1008 V (the top of the highest range) is the driver's
  bound, the frequency's 16 Hz to 850 Hz that of the specifications (1-29); the profile's ranges
  narrow both, and the instrument's own range error stands behind them.
- The reference of a harmonic's phase angle (its channel's fundamental, in the fundamental's own
  time base, as the bench's harmonics are) is not stated in the pages read.
- *IDN? and the SYSTem:ERRor? reply were not read: the IEEE 488.2 four fields and SCPI
  ``<code>,"<message>"`` (the manual states IEEE 488.2 conformance, 5-2) are expected.
- Protection: no trip status is documented in the pages read, so ``protection_tripped`` says it
  cannot tell and PROTECTION_READBACK is not declared.
- Energy register: the instrument keeps none (its energy option compares pulse streams), so
  ``energy_wh`` raises. No power-by-order query is documented: HARMONIC_POWER is not declared.
- Energy test start, duration, pulse source (``MUT:TEST:PSOUrce``, sections 5-86 to 5-91 on pages
  5-56/5-57) and any result query were not in the copy read, so no test is started or read here,
  and the counter role (per channel MUT and reference counts on the instrument's timebase) is not
  claimed.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from instruments.errors import InstrumentError, RangeError, ReplyError
from instruments.reference_standard import Readings
from instruments.registry import DriverSettings
from instruments.roles import Capability, Harmonic, PhaseCurrent, PhaseVoltage
from instruments.scpi import ScpiInstrument, control, parse_bool, parse_float, parse_floats, parse_int
from instruments.transport import VisaLine

MANUAL = ("Fluke 6100B/6105A Electrical Power Standards Users Manual (part number not legible in the copy "
          "read), ch. 5 Remote Operation: p. 5-32 (5-53 Power Values), pp. 5-36/5-37 (5-55 voltage "
          "MHARmonics), pp. 5-43..5-45 (current range, AMPLitude?, 5-69 current MHARmonics), pp. 5-58..5-61 "
          "(5-92..5-108 ENERgy tree), p. 5-64 (5-117 *OPT?); ch. 7, 7-4 Confidence Check (p. 7-4)")

MAX_PHASES = 3
MAX_ORDER = 100  # HARMonic<y>, y = 0..100 (page 5-36)
MAX_VOLTAGE_V = 1008.0  # the top of the highest voltage range (not on a page read: a profile narrows it)
STANDARD_CURRENT_A = 21.0  # the highest current range without the 50 A or 80 A option (page 5-43)
OPTION_80A, OPTION_ENERGY, OPTION_ENERGY_II, OPTION_50A = 1 << 0, 1 << 2, 1 << 4, 1 << 6  # *OPT? bits (5-117)

# Meter constant units (5-95, 5-102, 5-107): Wh per pulse is factor / constant for impulses per
# energy, factor * constant for energy per impulse.
IMPULSES_PER = {"IPWH": 1.0, "IPKWH": 1e3, "IPMWH": 1e6}
ENERGY_PER_IMPULSE = {"WHPI": 1.0, "KWHPI": 1e3, "MWHPI": 1e6}
CONSTANT_UNITS = (*IMPULSES_PER, *ENERGY_PER_IMPULSE)
MUT_SOURCES = ("CH1", "CH1TO2", "CH1TO3", "CH1TO4", "CH1TO5", "CH1TO6", "SUM123")  # 5-97
REFERENCE_SOURCES = ("CH6", "SUM456", "MEAN456", "MEAN56", "MMUT", "MAIN")  # 5-103
PULLUPS = ("R150", "R1000")  # 5-98, 5-104
GROUPS = {"MUT": "MUT", "REFERENCE": "REF", "OUTPUT": "OUTP"}  # the ENERgy sub-trees with a meter constant


def wh_per_pulse(constant: float, unit: str) -> float:
    """Energy per pulse of a meter constant in one of the manual's units."""
    if unit in IMPULSES_PER:
        return IMPULSES_PER[unit] / constant
    return ENERGY_PER_IMPULSE[unit] * constant


def wrap_deg(angle: float) -> float:
    """An angle in [-180, 180)."""
    return (angle + 180.0) % 360.0 - 180.0


def parse_options(reply: str) -> tuple[int, ...]:
    """*OPT?: eight comma-separated NR1, each a bit-weighted byte (5-117)."""
    fields = reply.split(",")
    if len(fields) != 8:
        raise ValueError(f"{len(fields)} fields, the manual's *OPT? has 8")
    values = tuple(parse_int(field) for field in fields)
    if any(not 0 <= v <= 255 for v in values):
        raise ValueError("an option byte outside 0..255")
    return values


def parse_harmonic_list(reply: str) -> tuple[tuple[int, float, float], ...]:
    """MHARmonics:ALL?: amplitude,phase of harmonics 1, 2, ... (pages 5-37, 5-45). The manual prints
    the reply in double quotes; whether they are on the wire is not stated, so one enclosing pair is
    accepted, and nothing else."""
    text = reply.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    values = parse_floats(text)
    if len(values) % 2:
        raise ValueError("an amplitude without its phase angle")
    return tuple((k // 2 + 1, values[k], values[k + 1]) for k in range(0, len(values), 2))


def parse_token(allowed: Sequence[str]) -> Callable[[str], str]:
    def parse(reply: str) -> str:
        token = reply.strip()
        if token not in allowed:
            raise ValueError(f"not one of {'|'.join(allowed)}")
        return token
    return parse


def thd_pct(spectrum: Sequence[tuple[int, float, float]]) -> float:
    """THD = sqrt(sum over h >= 2 of A_h^2) / A_1, in percent; 0 without a fundamental."""
    amplitudes = {order: amplitude for order, amplitude, _ in spectrum}
    fundamental = amplitudes.get(1, 0.0)
    if fundamental <= 0:
        return 0.0
    return 100.0 * math.sqrt(sum(a * a for order, a in amplitudes.items() if order >= 2)) / fundamental


class Fluke6105a(ScpiInstrument):
    """One instrument in three roles; the bench opens it once for all of them."""

    ROLES = frozenset({"source", "load", "reference"})
    CAPABILITIES = frozenset({
        Capability.VOLTAGE_PER_PHASE, Capability.VOLTAGE_ANGLE_PER_PHASE, Capability.VOLTAGE_HARMONICS,
        Capability.CURRENT_PER_PHASE, Capability.CURRENT_ANGLE_PER_PHASE, Capability.CURRENT_HARMONICS,
        Capability.CURRENT_DC,
    })
    MANUAL = MANUAL

    frequency = control("SOUR:FREQ?", "SOUR:FREQ", "Fundamental frequency of every channel", low=16, high=850,
                        unit="Hz", fmt="{:.9g}")
    output = control("OUTP:STAT?", "OUTP", "Every voltage and current channel's output, together",
                     parse=parse_bool)

    def __init__(self, address: str, *, name: str = "source+load+reference", timeout_s: float = 2.0,
                 ranges: dict[str, tuple[float, float]] | None = None) -> None:
        super().__init__(name, lambda: VisaLine(address, timeout_s), address, ranges)
        self.phases = 0
        self.options: tuple[int, ...] = ()
        self.max_current_a = STANDARD_CURRENT_A
        self.energy_option = False

    @classmethod
    def from_settings(cls, settings: DriverSettings) -> Fluke6105a:
        return cls(settings.address, name=settings.name, timeout_s=settings.timeout_s, ranges=dict(settings.ranges))

    def open(self) -> Fluke6105a:
        """Identify, read the fitment (phases, current options, energy option) and select absolute
        harmonic amplitudes, so every amplitude sent means volts or amps."""
        super().open()
        try:
            self.options = self.query_as("*OPT?", parse_options)
            self.phases = self._fitted_phases()
            current_options = [self.options[2 * k + 1] for k in range(self.phases)]
            self.max_current_a = min(80.0 if o & OPTION_80A else 50.0 if o & OPTION_50A else STANDARD_CURRENT_A
                                     for o in current_options)
            self.energy_option = any(o & (OPTION_ENERGY | OPTION_ENERGY_II) for o in self.options)
            self.set("UNIT:MHAR:VOLT ABS")
            self.set("UNIT:MHAR:CURR ABS")
        except InstrumentError:
            self.close()
            raise
        return self

    def _fitted_phases(self) -> int:
        fitted = [self.query_as(f"SOUR:PHAS{x}:FITT?", parse_bool) for x in range(1, MAX_PHASES + 1)]
        count = fitted.index(False) if False in fitted else MAX_PHASES
        if count == 0 or any(fitted[count:]):
            raise self.error(f"phases fitted {[x + 1 for x, f in enumerate(fitted) if f]}: "
                             f"expected phase 1, then 2, then 3")
        return count

    # -- checks, before anything is sent ------------------------------------------------------------

    def _check_within(self, name: str, value: float, low: float, high: float, unit: str) -> None:
        if name in self.ranges:
            low, high = max(low, self.ranges[name][0]), min(high, self.ranges[name][1])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise RangeError(self.name, self.address, f"{name} {value!r} is not a finite number")
        if not low <= value <= high:
            raise RangeError(self.name, self.address,
                             f"{name} {value:g} {unit} is outside the instrument range {low:g}..{high:g} {unit}")

    def check_voltage(self, rms_v: float, frequency_hz: float) -> None:
        self._check_within("voltage", rms_v, 0.0, MAX_VOLTAGE_V, "V")
        self.check("frequency", frequency_hz)

    def check_current(self, rms_a: float, lag_deg: float) -> None:
        self._check_within("current", rms_a, 0.0, self.max_current_a, "A")
        self._check_within("lag", lag_deg, -360.0, 360.0, "deg")

    def _check_phases(self, count: int) -> None:
        if count != self.phases:
            raise RangeError(self.name, self.address, f"{count} phases given; the instrument has {self.phases}")

    def _spectrum(self, harmonics: Sequence[Harmonic]) -> list[tuple[int, float, float]]:
        """(order, pct, degrees) for each harmonic, checked: orders 0 (DC) and 2..100, once each."""
        found: dict[int, tuple[int, float, float]] = {}
        for h in harmonics:
            order, pct, phase = h.order, h.pct, h.phase_deg
            if isinstance(order, bool) or not isinstance(order, int) or not (order == 0 or 2 <= order <= MAX_ORDER):
                raise RangeError(self.name, self.address, f"harmonic order {order!r} is not 0 (DC) or 2..{MAX_ORDER}")
            if order in found:
                raise RangeError(self.name, self.address, f"harmonic order {order} is given twice")
            self._check_within(f"harmonic {order}", pct, 0.0, math.inf, "%")
            self._check_within(f"harmonic {order} phase", phase, -math.inf, math.inf, "deg")
            found[order] = (order, pct, 0.0 if order == 0 else wrap_deg(phase))
        return sorted(found.values())

    # -- source and load ------------------------------------------------------------------------------

    def program_voltages(self, phases: Sequence[PhaseVoltage], frequency_hz: float,
                         harmonics: Sequence[Harmonic]) -> None:
        """Each phase's fundamental at its angle from phase 1, the frequency and the harmonic content;
        the output is left as it is."""
        self._check_phases(len(phases))
        for p in phases:
            self.check_voltage(p.voltage_v, frequency_hz)
            self._check_within("voltage angle", p.angle_deg, -math.inf, math.inf, "deg")
        spectrum = self._spectrum(harmonics)
        self.frequency = frequency_hz
        for x, p in enumerate(phases, start=1):
            self._program_channel(x, "VOLT", p.voltage_v, wrap_deg(p.angle_deg), spectrum)

    def program_currents(self, phases: Sequence[PhaseCurrent], harmonics: Sequence[Harmonic]) -> None:
        """Each phase's current lagging its own voltage by lag_deg (sent as the leading angle -lag)."""
        self._check_phases(len(phases))
        for p in phases:
            self.check_current(p.current_a, p.lag_deg)
        spectrum = self._spectrum(harmonics)
        for x, p in enumerate(phases, start=1):
            self._program_channel(x, "CURR", p.current_a, wrap_deg(-p.lag_deg), spectrum)

    def _program_channel(self, phase: int, channel: str, rms: float, angle_deg: float,
                         spectrum: Sequence[tuple[int, float, float]]) -> None:
        base = f"SOUR:PHAS{phase}:{channel}:MHAR"
        self.set(f"{base}:STAT ON")
        self.set(f"{base}:CLE")
        self.set(f"{base}:HARM1 {rms:.9g},{angle_deg:.4f}")
        for order, pct, phase_deg in spectrum:
            self.set(f"{base}:HARM{order} {rms * pct / 100.0:.9g},{phase_deg:.4f}")

    def switch_on(self) -> None:
        """Energises every voltage and current channel: the source and the load share this output."""
        self.output = True

    def output_on(self) -> bool:
        return bool(self.output)

    def safe_state(self) -> None:
        """``OUTP OFF`` (every channel off, whatever Maintain Voltage says: 5-92), read back. Idempotent."""
        self.output = False
        if self.output:
            raise self.error("output still on after OUTP OFF")

    def protection_tripped(self) -> bool:
        raise self.error("the manual (pages read) documents no protection trip status: cannot tell")

    # -- reference ------------------------------------------------------------------------------------

    def harmonic_content(self, phase: int, channel: str) -> tuple[tuple[int, float, float], ...]:
        """(order, amplitude, degrees) of harmonics 1.. of a phase's VOLT or CURR channel (MHARmonics:ALL?)."""
        return self.query_as(f"SOUR:PHAS{phase}:{channel}:MHAR:ALL?", parse_harmonic_list)

    def readings(self) -> Readings:
        """What the instrument reports about its own outputs: they are the reference."""
        volts, amps, watts, vas, angles = [], [], [], [], []
        for x in range(1, self.phases + 1):
            volts.append(self.query_as(f"SOUR:PHAS{x}:VOLT:MHAR:AMPL?", parse_float))
            amps.append(self.query_as(f"SOUR:PHAS{x}:CURR:AMPL?", parse_float))
            watts.append(self.query_as(f"SOUR:PHAS{x}:POW:WATT?", parse_float))
            vas.append(self.query_as(f"SOUR:PHAS{x}:POW:VA?", parse_float))
            angles.append(self.query_as(f"SOUR:PHAS{x}:VOLT:MHAR:HARM1:PANG?", parse_float))
        frequency = float(self.frequency)
        thd_v, thd_i = thd_pct(self.harmonic_content(1, "VOLT")), thd_pct(self.harmonic_content(1, "CURR"))
        power, apparent = sum(watts), sum(vas)
        return Readings(tuple(volts), tuple(amps), power, power / apparent if apparent > 0 else 0.0, frequency,
                        thd_v, thd_i, (), voltage_angles_deg=tuple(wrap_deg(a - angles[0]) for a in angles))

    def pulse_constant_wh(self) -> float:
        """Energy per pulse of the pulse out channel (ENERgy:OUTPut:CONStant and its unit)."""
        constant, unit = self.meter_constant("OUTPUT")
        if constant <= 0:
            raise ReplyError(self.name, self.address, f"pulse output constant {constant:g} {unit} is not positive")
        return wh_per_pulse(constant, unit)

    def energy_wh(self) -> float:
        raise self.error("the 6100B/6105A keeps no energy register (its energy option compares pulse "
                         "streams, sections 5-92..5-108): count the pulse output instead")

    # -- energy timer/counter option (sections 5-92 .. 5-108) -----------------------------------------

    def _require_energy_option(self) -> None:
        if not self.energy_option:
            raise self.error("no energy timer/counter option is fitted (*OPT?, 5-117)")

    def _energy_node(self, group: str) -> str:
        self._require_energy_option()
        if group not in GROUPS:
            raise RangeError(self.name, self.address, f"energy group {group!r} is not one of {', '.join(GROUPS)}")
        return f"ENER:{GROUPS[group]}"

    def set_meter_constant(self, group: str, constant: float, unit: str) -> None:
        """MUT, REFERENCE or OUTPUT (the pulse out channel) constant; the unit first, so the number
        is never read in the old one."""
        node = self._energy_node(group)
        if unit not in CONSTANT_UNITS:
            raise RangeError(self.name, self.address, f"meter constant unit {unit!r} is not one of "
                                                      f"{'|'.join(CONSTANT_UNITS)}")
        if isinstance(constant, bool) or not isinstance(constant, (int, float)) or not 0 < constant < math.inf:
            raise RangeError(self.name, self.address, f"{group.lower()} meter constant {constant!r} is not positive")
        self.set(f"{node}:CONS:UNIT {unit}")
        self.set(f"{node}:CONS {constant:.9g}")

    def meter_constant(self, group: str) -> tuple[float, str]:
        node = self._energy_node(group)
        return self.query_as(f"{node}:CONS?", parse_float), self.query_as(f"{node}:CONS:UNIT?",
                                                                        parse_token(CONSTANT_UNITS))

    def set_debounce(self, group: str, on: bool) -> None:
        """Contact-bounce filter of the MUT or REFERENCE inputs (100 Hz pulse rate at most when on)."""
        node = self._input_node(group)
        self.set(f"{node}:DEB {'ON' if on else 'OFF'}")

    def set_pullup(self, group: str, resistor: str) -> None:
        """Internal pull-up of the MUT or REFERENCE inputs: R150 or R1000."""
        node = self._input_node(group)
        if resistor not in PULLUPS:
            raise RangeError(self.name, self.address, f"pull-up {resistor!r} is not one of {'|'.join(PULLUPS)}")
        self.set(f"{node}:PULL {resistor}")

    def _input_node(self, group: str) -> str:
        if group == "OUTPUT":
            raise RangeError(self.name, self.address, "the pulse output's pull-up is set_pulse_output_pullup")
        return self._energy_node(group)

    def set_pulse_output_pullup(self, on: bool) -> None:
        self.set(f"{self._energy_node('OUTPUT')}:PULL {'ON' if on else 'OFF'}")

    def configure_pulse_sources(self, mut: str, reference: str) -> None:
        """MUT source first, then the reference (5-97: a MUT using a reference channel moves the
        reference to a default), both read back."""
        self._require_energy_option()
        if mut not in MUT_SOURCES:
            raise RangeError(self.name, self.address, f"MUT source {mut!r} is not one of {'|'.join(MUT_SOURCES)}")
        if reference not in REFERENCE_SOURCES:
            raise RangeError(self.name, self.address,
                             f"reference source {reference!r} is not one of {'|'.join(REFERENCE_SOURCES)}")
        self.set(f"ENER:MUT:SOUR {mut}")
        self.set(f"ENER:REF:SOUR {reference}")
        read = self.pulse_sources()
        if read != (mut, reference):
            raise self.error(f"pulse sources read back as MUT {read[0]}, reference {read[1]} "
                             f"after setting {mut}, {reference}")

    def pulse_sources(self) -> tuple[str, str]:
        self._require_energy_option()
        return (self.query_as("ENER:MUT:SOUR?", parse_token(MUT_SOURCES)),
                self.query_as("ENER:REF:SOUR?", parse_token(REFERENCE_SOURCES)))

    def abort_energy_test(self) -> None:
        """ENERgy:ABORt: the test sequence is reset and the outputs go to standby (5-92)."""
        self._require_energy_option()
        self.set("ENER:ABOR")
