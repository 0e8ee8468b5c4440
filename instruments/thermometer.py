"""Ambient thermometer at the board (SCPI): ``MEAS:TEMP?`` in °C, for reference conditions."""
from __future__ import annotations

from instruments.scpi import ScpiInstrument, control
from instruments.transport import VisaLine


class ScpiThermometer(ScpiInstrument):
    temperature = control("MEAS:TEMP?", None, "Ambient temperature", unit="°C")

    def __init__(self, address: str, *, name: str = "environment", timeout_s: float = 2.0) -> None:
        super().__init__(name, lambda: VisaLine(address, timeout_s), address)
