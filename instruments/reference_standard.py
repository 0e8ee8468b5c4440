"""The house reference standard meter (SCPI), part of the documented reference design: true V, I,
P, PF, f, an energy register and a pulse output.

Commands: ``MEAS:VOLT?``, ``MEAS:CURR?`` (element 1), ``MEAS:VOLT:LIST?``, ``MEAS:CURR:LIST?``
(every element), ``MEAS:POW?`` (total, every harmonic), ``MEAS:PFAC?``, ``MEAS:FREQ?``,
``MEAS:VOLT:ANGL:LIST?`` (degrees from element 1), ``MEAS:THD:VOLT?``, ``MEAS:THD:CURR?`` (element 1, %),
``MEAS:HARM:POW?`` (order,W pairs), ``MEAS:POW:REAC?`` (var, fundamental, lagging positive),
``ENER:RES``, ``ENER?`` (Wh since reset, delivered positive and received negative), ``ENER:REAC?``
(varh since reset, lagging positive), ``PULS:QUAN ACT|REAC`` / ``PULS:QUAN?`` (what the pulse output
counts), ``PULS:CONS?`` (Wh or varh per output pulse, of the quantity selected; the output counts
energy flowing either way), ``SYST:ERR?``. Voltages and currents are true RMS.
"""
from __future__ import annotations

from dataclasses import dataclass

from instruments.ac_source import HOUSE_MANUAL
from instruments.errors import ReplyError
from instruments.registry import DriverSettings
from instruments.roles import Capability
from instruments.scpi import (
    ScpiInstrument,
    control,
    parse_float,
    parse_floats,
    parse_int,
)
from instruments.transport import VisaLine


@dataclass(frozen=True)
class Readings:
    """The board's conditions as the reference standard (and thermometer, if any) saw them."""

    voltages_v: tuple[float, ...]
    currents_a: tuple[float, ...]
    power_w: float
    power_factor: float
    frequency_hz: float
    thd_voltage_pct: float
    thd_current_pct: float
    harmonic_power_w: tuple[tuple[int, float], ...]  # (order, W) for every order carrying power
    temperature_c: float | None = None
    voltage_angles_deg: tuple[float, ...] = ()  # each element's voltage from element 1's (phase sequence)
    reactive_power_var: float | None = None  # fundamental Q, lagging positive, where the reference measures it


class ScpiReferenceStandard(ScpiInstrument):
    ROLES = frozenset({"reference"})
    CAPABILITIES = frozenset({Capability.HARMONIC_POWER, Capability.ENERGY_REGISTER, Capability.REACTIVE_ENERGY,
                              Capability.RECEIVED_ENERGY})
    MANUAL = HOUSE_MANUAL

    voltages = control("MEAS:VOLT:LIST?", None, "True RMS voltage of each element", parse=parse_floats, unit="V")
    currents = control("MEAS:CURR:LIST?", None, "True RMS current of each element", parse=parse_floats, unit="A")
    voltage_angles = control("MEAS:VOLT:ANGL:LIST?", None, "Each element's voltage angle from element 1's",
                             parse=parse_floats, unit="deg")
    power = control("MEAS:POW?", None, "Active power", unit="W")
    power_factor = control("MEAS:PFAC?", None, "Power factor")
    frequency = control("MEAS:FREQ?", None, "Frequency", unit="Hz")
    thd_voltage = control("MEAS:THD:VOLT?", None, "Voltage THD, element 1", unit="%")
    thd_current = control("MEAS:THD:CURR?", None, "Current THD, element 1", unit="%")
    reactive_power = control("MEAS:POW:REAC?", None, "Reactive power, fundamental, lagging positive", unit="var")
    energy = control("ENER?", None, "Active energy since ENER:RES, received negative", unit="Wh")
    reactive_energy = control("ENER:REAC?", None, "Reactive energy since ENER:RES, leading negative", unit="varh")
    pulse_constant = control("PULS:CONS?", None, "Energy per output pulse", unit="Wh")

    def __init__(self, address: str, *, name: str = "reference", timeout_s: float = 2.0) -> None:
        super().__init__(name, lambda: VisaLine(address, timeout_s), address)

    @classmethod
    def from_settings(cls, settings: DriverSettings) -> ScpiReferenceStandard:
        return cls(settings.address, name=settings.name, timeout_s=settings.timeout_s)

    def pulse_constant_wh(self) -> float:
        return float(self.pulse_constant)

    def energy_wh(self) -> float:
        return float(self.energy)

    def reactive_energy_varh(self) -> float:
        return float(self.reactive_energy)

    def select_pulses(self, reactive: bool) -> None:
        """Point the pulse output at active or reactive energy (``PULS:CONS?`` then gives its constant)."""
        self.set(f"PULS:QUAN {'REAC' if reactive else 'ACT'}")

    def harmonic_powers(self) -> tuple[tuple[int, float], ...]:
        """Active power by harmonic order, every element together."""
        reply = self.query("MEAS:HARM:POW?")
        if reply.strip() == "NONE":
            return ()
        fields = reply.split(",")
        try:
            if len(fields) % 2:
                raise ValueError("odd number of fields")
            return tuple((parse_int(fields[k]), parse_float(fields[k + 1])) for k in range(0, len(fields), 2))
        except ValueError as error:
            raise ReplyError(self.name, self.address,
                             f"garbled reply to 'MEAS:HARM:POW?': {reply!r} ({error})") from None

    def readings(self) -> Readings:
        return Readings(tuple(self.voltages), tuple(self.currents), self.power, self.power_factor, self.frequency,
                        self.thd_voltage, self.thd_current, self.harmonic_powers(),
                        voltage_angles_deg=tuple(self.voltage_angles), reactive_power_var=self.reactive_power)
