"""What the source and load apply to the board: voltage, currents, phase angle, frequency, and
harmonic content."""
from __future__ import annotations

import math
from dataclasses import dataclass

from bench.metrology.harmonics import HarmonicProfile

UNITY_PF_DEG = 1e-6  # a phase angle smaller than this is labelled PF 1.0


def pf_label(phase_deg: float) -> str:
    """The power factor as plots and legends name it: "PF 1.0", else the PF to two significant
    digits and whether the current lags (behind the voltage: a positive angle) or leads:
    "PF 0.5 lag" at +60°, "PF 0.8 lead" at -36.87°."""
    if abs(phase_deg) < UNITY_PF_DEG:
        return "PF 1.0"
    return f"PF {math.cos(math.radians(phase_deg)):.2g} {'lead' if phase_deg < 0 else 'lag'}"


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
    def leading(self) -> bool:
        """The current leads the voltage (a negative phase angle); at PF 1 it neither leads nor lags."""
        return self.phase_deg < 0

    @property
    def pf_label(self) -> str:
        """``pf_label`` of this stimulus: "PF 1.0", "PF 0.5 lag", "PF 0.8 lead"."""
        return pf_label(self.phase_deg)

    @property
    def harmonic_ratio(self) -> float:
        return self.harmonics.harmonic_power_ratio() if self.harmonics else 0.0

    @property
    def power_w(self) -> float:
        """Total active power, every harmonic included (harmonic profiles are applied at PF 1)."""
        return sum(self.voltage_v * i * (self.power_factor + self.harmonic_ratio)
                   for i in self.element_currents_a)

    @property
    def rms_voltage_v(self) -> float:
        return self.voltage_v * (self.harmonics.rms_factor("voltage") if self.harmonics else 1.0)

    @property
    def rms_current_a(self) -> float:
        """RMS on the most loaded element, harmonics and DC included: what the ratings limit."""
        return self.current_a * (self.harmonics.rms_factor("current") if self.harmonics else 1.0)

    def describe(self) -> str:
        # A table cell, not a legend label (``pf_label``): three decimals, and lag or lead at any angle off zero.
        direction = "" if abs(self.phase_deg) < 1e-9 else " lead" if self.leading else " lag"
        pf = f"PF {self.power_factor:.3f}{direction}"
        parts = [f"{self.voltage_v:.2f} V", f"{self.current_a:.4g} A", pf, f"{self.frequency_hz:g} Hz"]
        if self.weights and len(set(self.weights)) > 1:
            parts.append("element currents " + "/".join(f"{w:g}" for w in self.weights))
        if self.harmonics:
            parts.append(self.harmonics.name.replace("_", " "))
        return ", ".join(parts) + f" = {self.power_w:.1f} W"
