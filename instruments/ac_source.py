"""Programmable AC voltage source (SCPI over LAN socket or any VISA resource).

Commands: ``VOLT <V>`` / ``VOLT?``, ``FREQ <Hz>`` / ``FREQ?``, ``OUTP ON|OFF`` / ``OUTP?``,
``SYST:PHAS?``, ``VOLT:HARM <order>,<pct>,<deg>`` / ``VOLT:HARM:CLE`` / ``VOLT:HARM?``, ``SYST:ERR?``;
voltage applies to every phase.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from instruments.scpi import ScpiInstrument, control, parse_bool, parse_int
from instruments.transport import VisaLine


class Harmonic(Protocol):
    """One harmonic to program: order (0 = DC), magnitude in % of the fundamental, phase in degrees."""

    order: int
    pct: float
    phase_deg: float


class ScpiAcSource(ScpiInstrument):
    voltage = control("VOLT?", "VOLT", "RMS output voltage per phase", low=0, high=300, unit="V", fmt="{:.4f}")
    frequency = control("FREQ?", "FREQ", "Output frequency", low=45, high=65, unit="Hz", fmt="{:.5f}")
    output = control("OUTP?", "OUTP", "Output relay state", parse=parse_bool)
    phases = control("SYST:PHAS?", None, "Number of output phases", parse=parse_int)
    protection_tripped = control("OUTP:PROT:TRIP?", None, "Output switched off by its own protection",
                                 parse=parse_bool)

    def __init__(self, address: str, *, name: str = "source", timeout_s: float = 2.0,
                 ranges: dict[str, tuple[float, float]] | None = None) -> None:
        super().__init__(name, lambda: VisaLine(address, timeout_s), address, ranges)

    def set_harmonics(self, harmonics: Iterable[Harmonic]) -> None:
        """Replace the voltage's harmonic content (orders 2..50, % of fundamental, degrees)."""
        self.set("VOLT:HARM:CLE")
        for h in harmonics:
            self.set(f"VOLT:HARM {h.order},{h.pct:.4f},{h.phase_deg:.3f}")

    def safe_state(self) -> None:
        """Output off, read back. Idempotent."""
        self.output = False
        if self.output:
            raise self.error("output still on after OUTP OFF")
