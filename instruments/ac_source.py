"""Programmable AC voltage source (SCPI over LAN socket or any VISA resource).

Commands: ``VOLT <V>`` / ``VOLT?``, ``FREQ <Hz>`` / ``FREQ?``, ``OUTP ON|OFF`` / ``OUTP?``,
``SYST:PHAS?``, ``SYST:ERR?``; voltage applies to every phase.
"""
from __future__ import annotations

from instruments.scpi import ScpiInstrument, control, parse_bool, parse_int
from instruments.transport import VisaLine


class ScpiAcSource(ScpiInstrument):
    voltage = control("VOLT?", "VOLT", "RMS output voltage per phase", low=0, high=300, unit="V", fmt="{:.4f}")
    frequency = control("FREQ?", "FREQ", "Output frequency", low=45, high=65, unit="Hz", fmt="{:.5f}")
    output = control("OUTP?", "OUTP", "Output relay state", parse=parse_bool)
    phases = control("SYST:PHAS?", None, "Number of output phases", parse=parse_int)

    def __init__(self, address: str, *, name: str = "source", timeout_s: float = 2.0,
                 ranges: dict[str, tuple[float, float]] | None = None) -> None:
        super().__init__(name, lambda: VisaLine(address, timeout_s), address, ranges)

    def safe_state(self) -> None:
        """Output off, read back. Idempotent."""
        self.output = False
        if self.output:
            raise self.error("output still on after OUTP OFF")
