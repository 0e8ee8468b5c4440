"""Phantom-load current source (SCPI): sets the test current and its phase angle to the voltage.

Commands: ``CURR <A>`` (every phase) / ``CURR:LIST <A>,<A>,...`` / ``CURR:LIST?``, ``PHAS <deg>`` /
``PHAS?`` (positive = current lagging), ``CURR:HARM <order>,<pct>,<deg>`` (order 0 = DC) /
``CURR:HARM:CLE``, ``OUTP ON|OFF`` / ``OUTP?``, ``SYST:ERR?``.
"""
from __future__ import annotations

from collections.abc import Iterable

from instruments.ac_source import Harmonic
from instruments.scpi import ScpiInstrument, control, parse_bool, parse_floats
from instruments.transport import VisaLine


class ScpiPhantomLoad(ScpiInstrument):
    current = control("CURR:LIST?", "CURR", "Fundamental RMS current on every phase (reads the largest)",
                      parse=lambda reply: max(parse_floats(reply)), low=0, high=200, unit="A", fmt="{:.5f}")
    phase = control("PHAS?", "PHAS", "Current phase angle, lagging positive", low=-180, high=180, unit="deg",
                    fmt="{:.4f}")
    output = control("OUTP?", "OUTP", "Output state", parse=parse_bool)

    def __init__(self, address: str, *, name: str = "load", timeout_s: float = 2.0,
                 ranges: dict[str, tuple[float, float]] | None = None) -> None:
        super().__init__(name, lambda: VisaLine(address, timeout_s), address, ranges)

    def set_currents(self, currents_a: Iterable[float]) -> None:
        """One fundamental current per phase (unbalanced load, one element alone)."""
        values = list(currents_a)
        for value in values:
            self.check("current", value)
        self.set("CURR:LIST " + ",".join(f"{v:.5f}" for v in values))

    def set_harmonics(self, harmonics: Iterable[Harmonic]) -> None:
        """Replace the current's harmonic content (order 0 = DC, 2..50; % of fundamental, degrees)."""
        self.set("CURR:HARM:CLE")
        for h in harmonics:
            self.set(f"CURR:HARM {h.order},{h.pct:.4f},{h.phase_deg:.3f}")

    def safe_state(self) -> None:
        """Current to zero on every phase and output off, both read back. Idempotent."""
        self.current = 0.0
        self.output = False
        if self.output or self.current != 0.0:
            raise self.error("output not safe after CURR 0; OUTP OFF")
