"""What the source and load apply to the board: voltage, currents, phase angle, frequency, and
harmonic content."""
from __future__ import annotations

import math
from dataclasses import dataclass

from bench.metrology.harmonics import HarmonicProfile


@dataclass(frozen=True)
class Stimulus:
    voltage_v: float  # fundamental RMS per element
    current_a: float  # fundamental RMS on the most loaded element
    phase_deg: float  # current lagging voltage; negative = leading
    frequency_hz: float
    elements: int
    weights: tuple[float, ...] | None = None  # each element's current relative to current_a
    harmonics: HarmonicProfile | None = None

    @classmethod
    def at_power(cls, power_w: float, voltage_v: float, power_factor: float, frequency_hz: float,
                 elements: int, leading: bool = False) -> Stimulus:
        """The balanced sinusoidal current that gives ``power_w`` in total."""
        if not 0 < power_factor <= 1:
            raise ValueError(f"power factor {power_factor} must be in (0, 1]")
        angle = math.degrees(math.acos(power_factor))
        current = power_w / (elements * voltage_v * power_factor)
        return cls(voltage_v, current, -angle if leading else angle, frequency_hz, elements)

    @property
    def element_currents_a(self) -> tuple[float, ...]:
        weights = self.weights or (1.0,) * self.elements
        return tuple(self.current_a * w for w in weights)

    @property
    def power_factor(self) -> float:
        return math.cos(math.radians(self.phase_deg))

    @property
    def harmonic_ratio(self) -> float:
        return self.harmonics.harmonic_power_ratio() if self.harmonics else 0.0

    @property
    def power_w(self) -> float:
        """Total active power, every harmonic included (harmonic profiles are applied at PF 1)."""
        return sum(self.voltage_v * i * (self.power_factor + self.harmonic_ratio) for i in self.element_currents_a)

    @property
    def rms_voltage_v(self) -> float:
        return self.voltage_v * (self.harmonics.rms_factor("voltage") if self.harmonics else 1.0)

    @property
    def rms_current_a(self) -> float:
        """RMS on the most loaded element, harmonics and DC included: what the ratings limit."""
        return self.current_a * (self.harmonics.rms_factor("current") if self.harmonics else 1.0)

    def describe(self) -> str:
        pf = f"PF {self.power_factor:.3f}" + ("" if abs(self.phase_deg) < 1e-9 else " lead" if self.phase_deg < 0 else " lag")
        parts = [f"{self.voltage_v:.2f} V", f"{self.current_a:.4g} A", pf, f"{self.frequency_hz:g} Hz"]
        if self.weights and len(set(self.weights)) > 1:
            parts.append("element currents " + "/".join(f"{w:g}" for w in self.weights))
        if self.harmonics:
            parts.append(self.harmonics.name.replace("_", " "))
        return ", ".join(parts) + f" = {self.power_w:.1f} W"
