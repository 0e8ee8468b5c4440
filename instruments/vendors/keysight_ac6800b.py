"""Keysight AC6800B basic AC source (AC6801B/AC6802B/AC6803B/AC6804B), single phase, SCPI over
LAN (raw socket, port 5025), USB or GPIB through VISA.

Followed, by section (page numbers are the guide's own where the copy read showed them):

- *Keysight AC6800B Series Operating and Service Guide*, chapter 3 "SCPI Programming Reference":
  "Introduction to SCPI" (p. 98: ``FREQuency 100,90,110`` is a frequency with its low and high soft
  limits; ``FREQuency 100,90,110;:OUTPut ON`` returns to the root with ``;:``; p. 99: a boolean
  query always returns 0 or 1, a discrete one its short form in upper case); "Status Overview"
  (p. 103: the Questionable Status bits); "STATus Subsystem" (p. 149:
  ``STATus:QUEStionable:CONDition?``, live and unlatched, not cleared by reading); "VOLTage
  Subsystem" (p. 163: soft limits act only while their limit state is on). The part number of the
  guide was not shown in the copies read.
- *Keysight AC6800B Series Basic AC Power Sources, Data Sheet*, p. 7: the two voltage ranges are
  155 V and 310 V; voltage accuracy ±(0.5 % + 0.35 V) on the low range, ±(0.5 % + 0.7 V) on the high.
- *Keysight AC6800 Series Operating and Service Guide* (the earlier AC680xA models), "VOLTage
  Subsystem": ``[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude] <value>[,<low_limit>,<high_limit>]``
  takes one or three arguments ("you cannot have a low or high limit without the other"); AC mode
  135 V range 0.0 to 137.5 V, 270 V range 0.0 to 275.0 V; ``VOLT:LIM:STAT``.

Commands sent: ``*IDN?``, ``*CLS``, ``OUTPut:COUPling?`` / ``OUTPut:COUPling AC``,
``VOLTage:RANGe?`` / ``VOLTage:RANGe <range>``, ``VOLTage <v>,<low>,<high>``, ``VOLTage?``,
``FREQuency <f>,<low>,<high>``, ``FREQuency?``, ``OUTPut ON|OFF``, ``OUTPut?``,
``STATus:QUEStionable:CONDition?``, ``SYSTem:ERRor?`` after every setting (short forms on the wire).

How it uses them:

- Range: the lowest range that holds the setting (half the high range's fixed accuracy term, per the
  data sheet). Going up, the range is changed before the voltage; going down, after it, so
  the setting is valid in the range it is sent to at every step (the guide: "changing ranges from
  high to low invokes Range Error Checking").
- Soft limits: every voltage and frequency goes in the three-argument form with the profile's
  (narrowed) limits, so an instrument whose limit state the lab has switched on holds them itself.
  The driver does not switch the limit states on: they outlive the session.
- Protection: ``STATus:QUEStionable:CONDition?`` bits OV (0), OC (1), HWF (2), OT (4) and WDOG (5)
  ("output is disabled by ..."), OP (9) and SF (13) (named protections) are trips. CL-PEAK, CL-RMS
  and PL (current or power limiting, "overload state") and LV keep the output on.

Left open by what was read, said here rather than guessed:

- The VOLTage:RANGe page itself was not read: the driver sends and expects the nominal range value
  (155/310 V on a B model, 135/270 V on an A model).
- The highest setting inside each AC6800B range was not read (the A guide gives 137.5/275.0 V):
  on B models the driver allows no more than the nominal 155/310 V.
- Frequency: the data sheet quotes regulation from 40 Hz; the 500 Hz upper bound is not from a page
  read. The instrument's own range check (error -222) stands behind both.
- Whether the range may change while the output is on: the instrument's error, if any, is raised.
- The frequency limit-state command and the guide's error list were not read; errors are parsed in
  the SCPI ``<code>,"<message>"`` form of SYSTem:ERRor? (named in "Status Overview", Status Byte).
- The condition register is live: the guide's bit names ("output is disabled by ...") read as the
  latched state, but whether a bit stays set once the cause has gone and the latch has not been
  cleared is not stated.
- Harmonics: chapter 3's contents list no waveform or harmonic subsystem (ABORt, CALibrate, CURRent,
  DISPlay, FETCh/MEASure, FREQuency, HCOPy, IEEE-488, INITiate, LXI, OUTPut, SENSe, [SOURce:],
  STATus, SYSTem, TRIGger, VOLTage): the driver refuses harmonics, and with one phase, any angle
  but 0.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from instruments.errors import RangeError, ReplyError
from instruments.registry import DriverSettings
from instruments.roles import Capability, Harmonic, PhaseVoltage
from instruments.scpi import ScpiInstrument, control, parse_bool, parse_float, parse_int
from instruments.transport import VisaLine

MANUAL = ("Keysight AC6800B Series Operating and Service Guide, ch. 3 SCPI Programming Reference "
          "(Introduction to SCPI, Status Overview, STATus and VOLTage subsystems); Keysight AC6800B Series "
          "Basic AC Power Sources Data Sheet (voltage ranges); Keysight AC6800 Series Operating and Service "
          "Guide, VOLTage Subsystem (AC680xA ranges)")


@dataclass(frozen=True)
class VoltageRange:
    nominal_v: float  # what VOLTage:RANGe takes and returns
    max_v: float  # the highest AC setting inside it


# By the series letter ending the model name in *IDN?.
RANGES: dict[str, tuple[VoltageRange, ...]] = {
    "A": (VoltageRange(135.0, 137.5), VoltageRange(270.0, 275.0)),  # AC6800 guide, VOLTage Subsystem
    "B": (VoltageRange(155.0, 155.0), VoltageRange(310.0, 310.0)),  # AC6800B data sheet; maxima not read
}
MAKER = "Keysight Technologies"
_MODEL = re.compile(r"AC680[1-4]([AB])")
# Questionable Status bits that mean "output is disabled by" a protection (guide p. 103).
PROTECTION_BITS = {0: "OV", 1: "OC", 2: "HWF", 4: "OT", 5: "WDOG", 9: "OP", 13: "SF"}
COUPLINGS = ("AC", "DC", "ACDC")


def _number(value: float) -> str:
    """A setting as the guide writes them (``100,90,110``): no padding, 6 significant digits."""
    return f"{value:.6g}"


def parse_register(reply: str) -> int:
    """A 16-bit status register in NR1."""
    value = parse_int(reply)
    if not 0 <= value <= 0xFFFF:
        raise ValueError("not a 16-bit register value")
    return value


def parse_coupling(reply: str) -> str:
    token = reply.strip()
    if token not in COUPLINGS:
        raise ValueError(f"not one of {'|'.join(COUPLINGS)}")
    return token


class KeysightAc6800b(ScpiInstrument):
    """One output, programmed as the bench's phase 1 (angle 0)."""

    ROLES = frozenset({"source"})
    CAPABILITIES = frozenset({Capability.PROTECTION_READBACK})
    MANUAL = MANUAL
    CLEAR_ON_OPEN = None  # sent by open() once *IDN? has named a model of this family

    voltage = control("VOLT?", None, "Programmed AC voltage (rms)")
    frequency = control("FREQ?", "FREQ", "Output frequency", low=40.0, high=500.0, unit="Hz", fmt="{:.6g}")
    output = control("OUTP?", "OUTP", "Output state as programmed (a protection holds it off without changing it)",
                     parse=parse_bool)

    def __init__(self, address: str, *, name: str = "source", timeout_s: float = 2.0,
                 ranges: dict[str, tuple[float, float]] | None = None) -> None:
        super().__init__(name, lambda: VisaLine(address, timeout_s), address, ranges)
        self.phases = 1
        self.model = ""
        self.voltage_ranges: tuple[VoltageRange, ...] = ()

    @classmethod
    def from_settings(cls, settings: DriverSettings) -> KeysightAc6800b:
        return cls(settings.address, name=settings.name, timeout_s=settings.timeout_s, ranges=dict(settings.ranges))

    def open(self) -> KeysightAc6800b:
        """Identify the model (its series letter decides the voltage ranges), then clear the status."""
        if self.is_open:
            return self
        super().open()
        maker, model = self.idn.split(",")[:2]
        series = _MODEL.fullmatch(model)
        if maker != MAKER or series is None:
            self.close()
            raise self.error(f"*IDN? names {maker} {model}: not a Keysight AC6800 series source (AC6801A..AC6804B)")
        self.model = model
        self.voltage_ranges = RANGES[series.group(1)]
        self.write("*CLS")
        return self

    # -- ranges --------------------------------------------------------------------------------

    def voltage_limits(self) -> tuple[float, float]:
        """0 to the top of the highest range, narrowed by the profile's ``voltage`` range."""
        if not self.voltage_ranges:
            raise self.error("not identified: its voltage ranges depend on the model *IDN? names (open it first)")
        low, high = 0.0, self.voltage_ranges[-1].max_v
        if "voltage" in self.ranges:
            narrow_low, narrow_high = self.ranges["voltage"]
            low, high = max(low, narrow_low), min(high, narrow_high)
        return low, high

    def range_for(self, rms_v: float) -> VoltageRange:
        """The lowest range that holds the setting: the smaller fixed accuracy term."""
        return next(r for r in self.voltage_ranges if rms_v <= r.max_v)

    def check_voltage(self, rms_v: float, frequency_hz: float) -> None:
        low, high = self.voltage_limits()
        if not (isinstance(rms_v, (int, float)) and math.isfinite(rms_v) and low <= rms_v <= high):
            raise RangeError(self.name, self.address,
                             f"voltage {rms_v!r} V is outside the {self.model}'s range {low:g}..{high:g} V")
        self.check("frequency", frequency_hz)

    # -- Source role -----------------------------------------------------------------------------

    def program_voltages(self, phases: Sequence[PhaseVoltage], frequency_hz: float,
                         harmonics: Sequence[Harmonic]) -> None:
        """Voltage, range and frequency; the output is left as it is."""
        if len(phases) != 1:
            raise self.error(f"has one output phase; {len(phases)} phase voltages were asked for")
        phase = phases[0]
        if phase.angle_deg != 0:
            raise self.error(f"has one phase, the angle reference itself: it cannot be set to {phase.angle_deg:g}°")
        if harmonics:
            orders = ", ".join(str(h.order) for h in harmonics)
            raise self.error(f"outputs a sine only (no harmonic programming); harmonics of order {orders} asked for")
        self.check_voltage(phase.voltage_v, frequency_hz)
        if self.query_as("OUTP:COUP?", parse_coupling) != "AC":
            self.set("OUTP:COUP AC")
        target, present = self.range_for(phase.voltage_v), self._present_range()
        low, high = self.voltage_limits()
        level = f"VOLT {_number(phase.voltage_v)},{_number(low)},{_number(min(high, target.max_v))}"
        if target.nominal_v > present.nominal_v:
            self.set(f"VOLT:RANG {_number(target.nominal_v)}")
        self.set(level)
        if target.nominal_v < present.nominal_v:
            self.set(f"VOLT:RANG {_number(target.nominal_v)}")
        f_low, f_high = type(self).frequency.limits(self)
        self.set(f"FREQ {_number(frequency_hz)},{_number(f_low)},{_number(f_high)}")

    def switch_on(self) -> None:
        """Output on; a latched protection would hold it off while OUTP? reads 1, so ask the status."""
        self.output = True
        tripped = self.protections()
        if tripped:
            raise self.error(f"output switched on but held off by its protection ({', '.join(tripped)})")

    def output_on(self) -> bool:
        return bool(self.output)

    def protection_tripped(self) -> bool:
        return bool(self.protections())

    def protections(self) -> list[str]:
        """The protections holding the output off now (Questionable Status condition, guide p. 103)."""
        condition = self.query_as("STAT:QUES:COND?", parse_register)
        return [name for bit, name in PROTECTION_BITS.items() if condition & (1 << bit)]

    def safe_state(self) -> None:
        """Output off, read back. Idempotent."""
        self.output = False
        if self.output:
            raise self.error("output still on after OUTP OFF")

    def _present_range(self) -> VoltageRange:
        value = self.query_as("VOLT:RANG?", parse_float)
        for candidate in self.voltage_ranges:
            if math.isclose(value, candidate.nominal_v, abs_tol=1e-6):
                return candidate
        known = "/".join(_number(r.nominal_v) for r in self.voltage_ranges)
        raise ReplyError(self.name, self.address, f"'VOLT:RANG?' gave {value:g} V, not a range of the {self.model} "
                                                  f"({known} V)")
