"""The house phantom-load current source (SCPI), part of the documented reference design: sets
the test current of each phase and one phase angle to the voltage for every phase.

Commands: ``CURR <A>`` (every phase) / ``CURR:LIST <A>,<A>,...`` / ``CURR:LIST?``, ``PHAS <deg>`` /
``PHAS?`` (positive = current lagging), ``CURR:HARM <order>,<pct>,<deg>`` (order 0 = DC) /
``CURR:HARM:CLE``, ``OUTP ON|OFF`` / ``OUTP?``, ``SYST:ERR?``.
"""
from __future__ import annotations

from collections.abc import Sequence

from instruments.ac_source import HOUSE_MANUAL
from instruments.registry import DriverSettings
from instruments.roles import Capability, Harmonic, PhaseCurrent
from instruments.scpi import ScpiInstrument, control, parse_bool, parse_floats
from instruments.transport import VisaLine


class ScpiPhantomLoad(ScpiInstrument):
    ROLES = frozenset({"load"})
    CAPABILITIES = frozenset({Capability.CURRENT_PER_PHASE, Capability.CURRENT_HARMONICS, Capability.CURRENT_DC})
    MANUAL = HOUSE_MANUAL

    current = control("CURR:LIST?", "CURR", "Fundamental RMS current on every phase (reads the largest)",
                      parse=lambda reply: max(parse_floats(reply)), low=0, high=200, unit="A", fmt="{:.5f}")
    phase = control("PHAS?", "PHAS", "Current phase angle, lagging positive", low=-180, high=180, unit="deg",
                    fmt="{:.4f}")
    output = control("OUTP?", "OUTP", "Output state", parse=parse_bool)

    def __init__(self, address: str, *, name: str = "load", timeout_s: float = 2.0,
                 ranges: dict[str, tuple[float, float]] | None = None) -> None:
        super().__init__(name, lambda: VisaLine(address, timeout_s), address, ranges)
        self.phases = 0

    @classmethod
    def from_settings(cls, settings: DriverSettings) -> ScpiPhantomLoad:
        return cls(settings.address, name=settings.name, timeout_s=settings.timeout_s, ranges=dict(settings.ranges))

    def open(self) -> ScpiPhantomLoad:
        super().open()
        self.phases = len(self.query_as("CURR:LIST?", parse_floats))
        return self

    def check_current(self, rms_a: float, lag_deg: float) -> None:
        self.check("current", rms_a)
        self.check("phase", lag_deg)

    def program_currents(self, phases: Sequence[PhaseCurrent], harmonics: Sequence[Harmonic]) -> None:
        """One lag for every phase; a current per phase."""
        if len({p.lag_deg for p in phases}) != 1:
            raise self.error("sets one phase angle for every phase; per-phase angles need another load")
        self.phase = phases[0].lag_deg
        self.set_harmonics(harmonics)
        currents = [p.current_a for p in phases]
        if len(set(currents)) == 1:
            self.current = currents[0]
        else:
            self.set_currents(currents)

    def set_currents(self, currents_a: Sequence[float]) -> None:
        """One fundamental current per phase (unbalanced load, one element alone)."""
        for value in currents_a:
            self.check("current", value)
        self.set("CURR:LIST " + ",".join(f"{v:.5f}" for v in currents_a))

    def set_harmonics(self, harmonics: Sequence[Harmonic]) -> None:
        """Replace the current's harmonic content (order 0 = DC, 2..50; % of fundamental, degrees)."""
        self.set("CURR:HARM:CLE")
        for h in harmonics:
            self.set(f"CURR:HARM {h.order},{h.pct:.4f},{h.phase_deg:.3f}")

    def switch_on(self) -> None:
        self.output = True

    def output_on(self) -> bool:
        return bool(self.output)

    def safe_state(self) -> None:
        """Current to zero on every phase and output off, both read back. Idempotent."""
        self.current = 0.0
        self.output = False
        if self.output or self.current != 0.0:
            raise self.error("output not safe after CURR 0; OUTP OFF")
