"""Reference standard meter (SCPI): true V, I, P, PF, f, an energy register and a pulse output.

Commands: ``MEAS:VOLT?``, ``MEAS:CURR?``, ``MEAS:POW?``, ``MEAS:PFAC?``, ``MEAS:FREQ?``,
``ENER:RES``, ``ENER?`` (Wh since reset), ``PULS:CONS?`` (Wh per output pulse), ``SYST:ERR?``.
"""
from __future__ import annotations

from dataclasses import dataclass

from instruments.scpi import ScpiInstrument, control
from instruments.transport import VisaLine


@dataclass(frozen=True)
class Readings:
    voltage_v: float
    current_a: float
    power_w: float
    power_factor: float
    frequency_hz: float


class ScpiReferenceStandard(ScpiInstrument):
    voltage = control("MEAS:VOLT?", None, "RMS voltage", unit="V")
    current = control("MEAS:CURR?", None, "RMS current", unit="A")
    power = control("MEAS:POW?", None, "Active power", unit="W")
    power_factor = control("MEAS:PFAC?", None, "Power factor")
    frequency = control("MEAS:FREQ?", None, "Frequency", unit="Hz")
    energy = control("ENER?", None, "Active energy since ENER:RES", unit="Wh")
    pulse_constant = control("PULS:CONS?", None, "Energy per output pulse", unit="Wh")

    def __init__(self, address: str, *, name: str = "reference", timeout_s: float = 2.0) -> None:
        super().__init__(name, lambda: VisaLine(address, timeout_s), address)

    def readings(self) -> Readings:
        return Readings(self.voltage, self.current, self.power, self.power_factor, self.frequency)
