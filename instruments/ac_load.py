"""Phantom-load current source (SCPI): sets the test current and its phase angle to the voltage.

Commands: ``CURR <A>`` / ``CURR?``, ``PHAS <deg>`` / ``PHAS?`` (positive = current lagging),
``OUTP ON|OFF`` / ``OUTP?``, ``SYST:ERR?``.
"""
from __future__ import annotations

from instruments.scpi import ScpiInstrument, control, parse_bool
from instruments.transport import VisaLine


class ScpiPhantomLoad(ScpiInstrument):
    current = control("CURR?", "CURR", "RMS test current per phase", low=0, high=200, unit="A", fmt="{:.5f}")
    phase = control("PHAS?", "PHAS", "Current phase angle, lagging positive", low=-180, high=180, unit="deg", fmt="{:.4f}")
    output = control("OUTP?", "OUTP", "Output state", parse=parse_bool)

    def __init__(self, address: str, *, name: str = "load", timeout_s: float = 2.0,
                 ranges: dict[str, tuple[float, float]] | None = None) -> None:
        super().__init__(name, lambda: VisaLine(address, timeout_s), address, ranges)

    def safe_state(self) -> None:
        """Current to zero and output off, both read back. Idempotent."""
        self.current = 0.0
        self.output = False
        if self.output or self.current != 0.0:
            raise self.error("output not safe after CURR 0; OUTP OFF")
