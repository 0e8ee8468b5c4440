"""What the source and load apply to the board: voltage, current, phase angle, frequency."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Stimulus:
    voltage_v: float  # RMS per element
    current_a: float  # RMS per element
    phase_deg: float  # current lagging voltage; negative = leading
    frequency_hz: float
    elements: int

    @classmethod
    def at_power(cls, power_w: float, voltage_v: float, power_factor: float, frequency_hz: float,
                 elements: int, leading: bool = False) -> "Stimulus":
        """The current that gives ``power_w`` in total at this voltage and power factor."""
        if not 0 < power_factor <= 1:
            raise ValueError(f"power factor {power_factor} must be in (0, 1]")
        angle = math.degrees(math.acos(power_factor))
        current = power_w / (elements * voltage_v * power_factor)
        return cls(voltage_v, current, -angle if leading else angle, frequency_hz, elements)

    @property
    def power_factor(self) -> float:
        return math.cos(math.radians(self.phase_deg))

    @property
    def power_w(self) -> float:
        return self.elements * self.voltage_v * self.current_a * self.power_factor

    def describe(self) -> str:
        pf = f"PF {self.power_factor:.3f}" + ("" if abs(self.phase_deg) < 1e-9 else " lead" if self.phase_deg < 0 else " lag")
        return (f"{self.voltage_v:.2f} V, {self.current_a:.4g} A, {pf}, {self.frequency_hz:g} Hz"
                f" = {self.power_w:.1f} W")
