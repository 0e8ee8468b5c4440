"""AMETEK / California Instruments three-phase AC source (Lx/Ls Series II; the Asterion, MX and
Sequoia families share the command set), SCPI over LAN (raw socket), GPIB, USB or RS-232 through VISA.

Followed, by section:

- *Lx \\ Ls Series II AC Power Source Programming Manual*, AMETEK Programmable Power, document
  7004-981 (rev. S, March 2011): the SCPI header-path rules (p. 14: ``;`` keeps the path, ``;:``
  returns to the root); 4.20 "Source Subsystem - Phase" (p. 86: ``[SOURce:]PHASe[:IMMediate]
  <NRf+>``, -360 to +360 degrees, "positive phase angles are used to program the leading phase,
  and negative phase angles are used to program the lagging phase"; not influenced by
  ``INSTrument:COUPle ALL``, it applies only to the phase selected by ``INSTrument:NSELect``;
  ``*RST`` gives phase 1 = 0°, phase 2 = 240°, phase 3 = 120°); 4.23 Status subsystem, Table 4-4
  "Bit Configuration of Questionable Registers" (p. 100: OV bit 0, OCP bit 1, UNR bit 3, TO bit 4,
  RI bit 9, Rail bit 11, CL rms bit 12, Isum bit 13) and ``STATus:QUEStionable:CONDition?`` (p. 101:
  the real-time, unlatched register); 5.3 ``*IDN?`` (p. 120: four fields, e.g.
  ``CALIFORNIA INSTRUMENTS,4500LX,12435,0.1``).
- *Sequoia Series Programming Manual* (AMETEK / California Instruments), 4.29 "Trace Subsystem
  Commands" (p. 136): ``TRACe:CATalog?``, ``TRACe:DEFine <waveform_name>[,<waveform_name>|1024]``,
  ``TRACe[:DATA] <waveform_name>,<NRf>{,<NRf>}`` with exactly 1024 points of one cycle, the first
  at 0° of the phase reference, "in any arbitrary units": the source "removes the dc component and
  ensures that the correct ac rms voltage is output when the waveform is selected"; a waveform is
  selected with ``FUNCtion:SHAPe``. The document number was not shown in the copy read.

Commands sent (short forms on the wire): ``*IDN?``, ``*CLS``, ``FREQ <f>``,
``INST:COUP NONE;:INST:NSEL <n>;:VOLT <v>;:PHAS <deg>`` per phase, ``INST:COUP ALL;:FUNC:SHAP
SIN|<name>``, ``FUNC?``, ``TRAC:CAT?``, ``TRAC:DEF <name>``, ``TRAC <name>,<1024 points>``,
``OUTP ON|OFF``, ``OUTP?``, ``STAT:QUES:COND?``, and ``SYST:ERR?`` after every setting.

How it uses them:

- Angles: the manual's convention is the bench's (positive leads), measured from the internal
  reference rather than from phase 1. ``PHAS`` is sent as ``PhaseVoltage.angle_deg`` modulo 360,
  so a positive sequence 0/-120/+120 goes as ``PHAS 0/240/120``, the manual's ``*RST`` values
  (240° leading is 120° lagging): a modulo, not a change of sign.
- Harmonics: synthesised here into the 1024-point trace, ``sin(θ) + Σ pct/100 · sin(hθ + φh)``
  (φh referred to the fundamental in the wave's own time base, as the bench's harmonic profiles
  give it), scaled to a peak of 1 and sent with five decimals. The programmed ``VOLT`` is the rms of
  the whole DC-free wave (the manual's scaling), so the driver sends the fundamental's rms times
  the sent trace's rms over its fundamental's. Orders 2..511 are held exactly by 1024 points;
  order 0 (DC, which the source removes), order 1 (the fundamental) and orders from 512 (the
  Nyquist limit) are refused. Two trace names take turns, so the waveform on the output is never
  the one being rewritten; the shape is selected on every phase at once (``INST:COUP ALL``).
- Order of settings: from the sine to a trace the shape goes before the levels, back to the sine
  after them, so the fundamental passes through the lower of the two settings. Between two traces
  the shape goes first: for that moment the fundamental is the old setting times the new trace's
  share (off the old fundamental by the ratio of the two traces' rms factors).
- Protection: OV, OCP and TO of the Questionable Condition register mean the output was switched
  off by that protection; UNR, RI, Rail and CL rms are conditions, not trips.

Left open by what was read, said here rather than guessed:

- The pages of ``INSTrument:COUPle``, ``INSTrument:NSELect``, ``[SOURce:]VOLTage``,
  ``[SOURce:]FREQuency``, ``[SOURce:]FUNCtion`` and ``SYSTem:ERRor?`` were not read: the syntax
  used is the one the phase and trace sections and the header-path examples refer to, and the one
  sunspec/svp_energy_lab's ``gridsim_ametek.py`` sends these sources. Errors are parsed in the
  SCPI ``<code>,"<message>"`` form.
- Voltage and frequency limits: the data sheets were not read. The driver allows 0..300 V and
  16..500 Hz; a profile narrows them, and the instrument's own range check (its error) stands
  behind both. Whether a trace's crest factor is limited was not read either.
- Whether a trace may be redefined or rewritten while it is on the output: the driver never does
  either (it defines a name only when ``TRAC:CAT?`` lacks it, and writes the name not in use).
- What ``FUNC?`` answers for the sine and how ``TRAC:CAT?`` quotes names: any name is accepted,
  quoted or not.
- The number of outputs is not read from the instrument: the driver drives three phases.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from instruments.errors import RangeError
from instruments.registry import DriverSettings
from instruments.roles import Capability, Harmonic, PhaseVoltage
from instruments.scpi import ScpiInstrument, control, parse_bool, parse_int
from instruments.transport import VisaLine

MANUAL = ("AMETEK Lx \\ Ls Series II AC Power Source Programming Manual, doc. 7004-981 rev. S: 4.20 Source "
          "Subsystem - Phase, Table 4-4 Questionable Registers, 5.3 *IDN?; AMETEK Sequoia Series Programming "
          "Manual, 4.29 Trace Subsystem Commands")

PHASES = 3
TRACE_POINTS = 1024  # one cycle (Sequoia manual 4.29)
HIGHEST_ORDER = TRACE_POINTS // 2 - 1  # 511: a sine of order 512 samples to zero
TRACE_NAMES = ("BENCH1", "BENCH2")  # taken in turn: the one on the output is never rewritten
PROTECTION_BITS = {0: "OV", 1: "OCP", 4: "TO"}  # Table 4-4: the output was switched off by it
_NAME = re.compile(r'"?([A-Za-z][A-Za-z0-9_]*)"?')


def parse_register(reply: str) -> int:
    """A 16-bit status register in NR1."""
    value = parse_int(reply)
    if not 0 <= value <= 0xFFFF:
        raise ValueError("not a 16-bit register value")
    return value


def parse_name(reply: str) -> str:
    """A waveform name (quoted or not), upper case as SCPI names compare."""
    match = _NAME.fullmatch(reply.strip())
    if match is None:
        raise ValueError("not a waveform name")
    return match.group(1).upper()


def parse_catalog(reply: str) -> set[str]:
    """TRAC:CAT?: comma-separated waveform names; an empty reply is an empty catalog."""
    return {parse_name(field) for field in reply.split(",")} if reply.strip() else set()


def harmonic_trace(harmonics: Sequence[Harmonic]) -> tuple[str, float]:
    """The 1024 points of one cycle as sent, and the rms of the sent (DC-free) wave over its
    fundamental's: the factor from the fundamental's rms to the ``VOLT`` the source takes."""
    theta = 2 * np.pi * np.arange(TRACE_POINTS) / TRACE_POINTS
    wave = np.sin(theta)
    for h in harmonics:
        wave = wave + h.pct / 100.0 * np.sin(h.order * theta + np.radians(h.phase_deg))
    wave = wave / np.max(np.abs(wave))
    text = [f"{x:.5f}" for x in wave]
    sent = np.array([float(t) for t in text])
    sent = sent - sent.mean()  # the source removes the DC component
    fundamental_rms = abs(np.fft.rfft(sent)[1]) * math.sqrt(2) / TRACE_POINTS
    return ",".join(text), float(np.sqrt(np.mean(sent ** 2)) / fundamental_rms)


class AmetekCiSource(ScpiInstrument):
    """Three phases, each its own magnitude and angle; one harmonic content (a trace) for all."""

    ROLES = frozenset({"source"})
    CAPABILITIES = frozenset({Capability.VOLTAGE_PER_PHASE, Capability.VOLTAGE_ANGLE_PER_PHASE,
                              Capability.VOLTAGE_HARMONICS, Capability.PROTECTION_READBACK})
    MANUAL = MANUAL

    voltage = control("VOLT?", "VOLT", "Programmed rms voltage of the selected phase (of the whole wave)",
                      low=0.0, high=300.0, unit="V", fmt="{:.4f}")
    frequency = control("FREQ?", "FREQ", "Output frequency, every phase", low=16.0, high=500.0, unit="Hz",
                        fmt="{:.5f}")
    output = control("OUTP?", "OUTP", "Output relay state", parse=parse_bool)
    questionable = control("STAT:QUES:COND?", None, "Questionable Condition register (Table 4-4)",
                           parse=parse_register)

    def __init__(self, address: str, *, name: str = "source", timeout_s: float = 2.0,
                 ranges: dict[str, tuple[float, float]] | None = None) -> None:
        super().__init__(name, lambda: VisaLine(address, timeout_s), address, ranges)
        self.phases = PHASES

    @classmethod
    def from_settings(cls, settings: DriverSettings) -> AmetekCiSource:
        return cls(settings.address, name=settings.name, timeout_s=settings.timeout_s, ranges=dict(settings.ranges))

    def check_voltage(self, rms_v: float, frequency_hz: float) -> None:
        self.check("voltage", rms_v)
        self.check("frequency", frequency_hz)

    def program_voltages(self, phases: Sequence[PhaseVoltage], frequency_hz: float,
                         harmonics: Sequence[Harmonic]) -> None:
        """Every phase's magnitude and angle, the frequency and the wave shape; output unchanged.
        Everything is checked before the first command goes."""
        if len(phases) != self.phases:
            raise RangeError(self.name, self.address, f"has {self.phases} phases; {len(phases)} were asked for")
        self.check("frequency", frequency_hz)
        for phase in phases:
            self.check("voltage", phase.voltage_v)
            if not math.isfinite(phase.angle_deg):
                raise RangeError(self.name, self.address, f"phase angle {phase.angle_deg!r} is not a finite number")
        trace, factor = harmonic_trace(self._representable(harmonics)) if harmonics else (None, 1.0)
        settings = [phase.voltage_v * factor for phase in phases]
        _, high = type(self).voltage.limits(self)
        for number, (phase, setting) in enumerate(zip(phases, settings), start=1):
            if setting > high:
                raise RangeError(self.name, self.address,
                                 f"phase {number}: {phase.voltage_v:g} V of fundamental with these harmonics is "
                                 f"{setting:g} V rms, above the instrument range of {high:g} V")
        self.frequency = frequency_hz
        if trace is None:
            self._program_phases(phases, settings)
            self.set("INST:COUP ALL;:FUNC:SHAP SIN")
        else:
            self.set(f"INST:COUP ALL;:FUNC:SHAP {self._load_trace(trace)}")
            self._program_phases(phases, settings)

    def switch_on(self) -> None:
        self.output = True

    def output_on(self) -> bool:
        return bool(self.output)

    def protection_tripped(self) -> bool:
        return bool(self.protections())

    def protections(self) -> list[str]:
        """The protections that switched the output off (Questionable Condition, Table 4-4)."""
        condition = self.questionable
        return [name for bit, name in PROTECTION_BITS.items() if condition & (1 << bit)]

    def safe_state(self) -> None:
        """Output off, read back. Idempotent."""
        self.output = False
        if self.output:
            raise self.error("output still on after OUTP OFF")

    def _representable(self, harmonics: Sequence[Harmonic]) -> Sequence[Harmonic]:
        orders = [h.order for h in harmonics]
        for h in harmonics:
            if isinstance(h.order, bool) or not isinstance(h.order, int) or not 2 <= h.order <= HIGHEST_ORDER:
                raise RangeError(self.name, self.address,
                                 f"harmonic order {h.order!r} cannot be programmed: a {TRACE_POINTS}-point trace "
                                 f"holds orders 2..{HIGHEST_ORDER}, and the source removes DC (order 0)")
            if not (math.isfinite(h.pct) and h.pct >= 0 and math.isfinite(h.phase_deg)):
                raise RangeError(self.name, self.address,
                                 f"harmonic {h.order}: {h.pct!r} % at {h.phase_deg!r}° is not a finite magnitude "
                                 f"and phase")
        if len(set(orders)) != len(orders):
            raise RangeError(self.name, self.address, f"a harmonic order appears twice: {orders}")
        return harmonics

    def _load_trace(self, trace: str) -> str:
        """Write the trace under the name not on the output (defining it once); return that name."""
        name = TRACE_NAMES[1] if self.query_as("FUNC?", parse_name) == TRACE_NAMES[0] else TRACE_NAMES[0]
        if name not in self.query_as("TRAC:CAT?", parse_catalog):
            self.set(f"TRAC:DEF {name}")
        self.set(f"TRAC {name},{trace}")
        return name

    def _program_phases(self, phases: Sequence[PhaseVoltage], settings: Sequence[float]) -> None:
        for number, (phase, setting) in enumerate(zip(phases, settings), start=1):
            self.set(f"INST:COUP NONE;:INST:NSEL {number};:VOLT {setting:.4f};:PHAS {phase.angle_deg % 360.0:.3f}")
