"""The house ambient thermometer at the board (SCPI), part of the documented reference design:
``MEAS:TEMP?`` in °C, for reference conditions."""
from __future__ import annotations

from instruments.ac_source import HOUSE_MANUAL
from instruments.registry import DriverSettings
from instruments.scpi import ScpiInstrument, control
from instruments.transport import VisaLine


class ScpiThermometer(ScpiInstrument):
    ROLES = frozenset({"environment"})
    CAPABILITIES: frozenset = frozenset()
    MANUAL = HOUSE_MANUAL

    temperature = control("MEAS:TEMP?", None, "Ambient temperature", unit="°C")

    def __init__(self, address: str, *, name: str = "environment", timeout_s: float = 2.0) -> None:
        super().__init__(name, lambda: VisaLine(address, timeout_s), address)

    @classmethod
    def from_settings(cls, settings: DriverSettings) -> ScpiThermometer:
        return cls(settings.address, name=settings.name, timeout_s=settings.timeout_s)
