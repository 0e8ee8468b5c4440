"""The energies a meter registers, and which way each flows.

Active energy is the integral of P, reactive of Q (fundamental), each either delivered (to the
customer: P > 0, or Q > 0 with the current lagging, sin φ > 0) or received (back from the
customer: P < 0, or Q < 0 with the current leading). A meter counts each on a register of its own
and has a test output per kind (its Wh output pulses for delivered and received active energy
alike, its varh output likewise): IEC 62053-23 §3 and IEC 62053-24 §3 define the quadrants,
ANSI C12.20 and C12.1 the test output.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Quantity:
    name: str  # as limits tables and records name it
    reactive: bool
    direction: int  # +1 delivered, -1 received
    register: str  # the meter's register that counts it (register map name)
    output: str  # the meter's test output that pulses for it (meter_type.test_outputs key)

    @property
    def unit(self) -> str:
        return "varh" if self.reactive else "Wh"

    @property
    def power_unit(self) -> str:
        return "var" if self.reactive else "W"

    @property
    def received(self) -> bool:
        return self.direction < 0

    def angle_deg(self, power_factor: float, leading: bool) -> float:
        """The current's lag behind the voltage (degrees in (-180, 180]) for a table row: active
        rows state cos φ (PF and lead or lag), reactive rows sin φ through their PF, the lag
        following the direction (delivered varh lags, received leads). Received active energy is
        the delivered angle turned by 180°."""
        angle = math.degrees(math.acos(power_factor))
        if self.reactive:
            return angle if self.direction > 0 else -angle
        angle = -angle if leading else angle
        if self.received:
            angle = angle + 180.0 if angle <= 0 else angle - 180.0
        return angle

    def factor(self, phase_deg: float) -> float:
        """|cos φ| for active energy, |sin φ| for reactive: what the reference's certified
        uncertainty and the meter's phase sensitivity are stated against."""
        phi = math.radians(phase_deg)
        return abs(math.sin(phi)) if self.reactive else abs(math.cos(phi))

    def of(self, active: float, reactive: float) -> float:
        """This quantity's share of a P (W or Wh) and Q (var or varh): positive when it flows
        this quantity's way, else zero."""
        return max(self.direction * (reactive if self.reactive else active), 0.0)


QUANTITIES = {q.name: q for q in (
    Quantity("Wh", False, +1, "energy_wh", "Wh"),
    Quantity("Wh-received", False, -1, "received_wh", "Wh"),
    Quantity("varh", True, +1, "varh", "varh"),
    Quantity("varh-received", True, -1, "received_varh", "varh"),
)}
ACTIVE = QUANTITIES["Wh"]
