"""The house AC source (SCPI over a LAN socket or any VISA resource): the documented reference
design of the simulated bench, whose manual is this docstring.

Commands: ``VOLT <V>`` / ``VOLT?`` (every phase), ``FREQ <Hz>`` / ``FREQ?``, ``OUTP ON|OFF`` /
``OUTP?``, ``OUTP:PROT:TRIP?``, ``SYST:PHAS?``, ``VOLT:HARM <order>,<pct>,<deg>`` /
``VOLT:HARM:CLE`` / ``VOLT:HARM?``, ``SYST:ERR?``. One voltage for every phase, at the angles the
board's wiring gives the form: it cannot unbalance the voltages or reverse the sequence.
"""
from __future__ import annotations

from collections.abc import Sequence

from instruments.registry import DriverSettings
from instruments.roles import Capability, Harmonic, PhaseVoltage
from instruments.scpi import ScpiInstrument, control, parse_bool, parse_int
from instruments.transport import VisaLine

HOUSE_MANUAL = "meter-bench house instruments: the reference design documented in each driver's docstring"


class ScpiAcSource(ScpiInstrument):
    ROLES = frozenset({"source"})
    CAPABILITIES = frozenset({Capability.VOLTAGE_HARMONICS, Capability.PROTECTION_READBACK})
    MANUAL = HOUSE_MANUAL

    voltage = control("VOLT?", "VOLT", "RMS output voltage per phase", low=0, high=300, unit="V", fmt="{:.4f}")
    frequency = control("FREQ?", "FREQ", "Output frequency", low=45, high=65, unit="Hz", fmt="{:.5f}")
    output = control("OUTP?", "OUTP", "Output relay state", parse=parse_bool)
    phase_count = control("SYST:PHAS?", None, "Number of output phases", parse=parse_int)
    tripped = control("OUTP:PROT:TRIP?", None, "Output switched off by its own protection", parse=parse_bool)

    def __init__(self, address: str, *, name: str = "source", timeout_s: float = 2.0,
                 ranges: dict[str, tuple[float, float]] | None = None) -> None:
        super().__init__(name, lambda: VisaLine(address, timeout_s), address, ranges)
        self.phases = 0

    @classmethod
    def from_settings(cls, settings: DriverSettings) -> ScpiAcSource:
        return cls(settings.address, name=settings.name, timeout_s=settings.timeout_s, ranges=dict(settings.ranges))

    def open(self) -> ScpiAcSource:
        super().open()
        self.phases = self.phase_count
        return self

    def check_voltage(self, rms_v: float, frequency_hz: float) -> None:
        self.check("voltage", rms_v)
        self.check("frequency", frequency_hz)

    def program_voltages(self, phases: Sequence[PhaseVoltage], frequency_hz: float,
                         harmonics: Sequence[Harmonic]) -> None:
        """One voltage for every phase: the bench asks for more only where the capability is declared."""
        if len({p.voltage_v for p in phases}) != 1:
            raise self.error("sets one voltage for every phase; per-phase voltages need another source")
        self.voltage = phases[0].voltage_v
        self.frequency = frequency_hz
        self.set_harmonics(harmonics)

    def set_harmonics(self, harmonics: Sequence[Harmonic]) -> None:
        """Replace the voltage's harmonic content (orders 2..50, % of fundamental, degrees)."""
        self.set("VOLT:HARM:CLE")
        for h in harmonics:
            self.set(f"VOLT:HARM {h.order},{h.pct:.4f},{h.phase_deg:.3f}")

    def switch_on(self) -> None:
        self.output = True

    def output_on(self) -> bool:
        return bool(self.output)

    def protection_tripped(self) -> bool:
        return bool(self.tripped)

    def safe_state(self) -> None:
        """Output off, read back. Idempotent."""
        self.output = False
        if self.output:
            raise self.error("output still on after OUTP OFF")
