"""What the source and load apply to the board: voltage, currents, phase angle, frequency, and
harmonic content."""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

from bench.metrology.forms import CircuitMap
from bench.metrology.harmonics import HarmonicProfile
from instruments.roles import Capability

UNITY_PF_DEG = 1e-6  # a phase angle smaller than this is labelled PF 1.0
REACTIVE_PF = 0.1  # below this PF a stimulus is described by its var as well as its W


def pf_label(phase_deg: float) -> str:
    """The power factor as plots and legends name it: "PF 1.0", else the PF to two significant
    digits and whether the current lags (behind the voltage: a positive angle) or leads:
    "PF 0.5 lag" at +60°, "PF 0.8 lead" at -36.87°; "sin φ 1 lag" at +90°, and "received" where
    active energy flows back (beyond ±90°: "PF 1.0 received" at 180°)."""
    received = " received" if abs(phase_deg) > 90.0 + UNITY_PF_DEG else ""
    cos_phi = abs(math.cos(math.radians(phase_deg)))
    if abs(cos_phi - 1.0) < UNITY_PF_DEG:
        return "PF 1.0" + received
    if cos_phi < UNITY_PF_DEG:
        return f"sin φ 1 {'lead' if phase_deg < 0 else 'lag'}"
    lag = (phase_deg > 0) == (abs(phase_deg) <= 90.0)  # received energy: lag and lead as seen from the customer
    return f"PF {cos_phi:.2g} {'lag' if lag else 'lead'}{received}"


@dataclass(frozen=True)
class Stimulus:
    voltage_v: float  # fundamental RMS per element
    current_a: float  # fundamental RMS on the most loaded element
    phase_deg: float  # current lagging voltage; negative = leading
    frequency_hz: float
    elements: int
    weights: tuple[float, ...] | None = None  # each current circuit's current relative to current_a
    harmonics: HarmonicProfile | None = None
    voltage_weights: tuple[float, ...] | None = None  # each element's voltage relative to voltage_v (unbalance)
    voltage_angles_deg: tuple[float, ...] | None = None  # each element's voltage angle; None: the form's own
    lags_deg: tuple[float, ...] | None = None  # each element's current lag; None: phase_deg on every element
    circuit_map: CircuitMap | None = None  # the form's: which circuits each element adds up; None: one each

    @classmethod
    def at_power(cls, power_w: float, voltage_v: float, power_factor: float, frequency_hz: float,
                 elements: int, leading: bool = False, circuit_map: CircuitMap | None = None) -> Stimulus:
        """The balanced sinusoidal current that gives ``power_w`` in total."""
        if not 0 < power_factor <= 1:
            raise ValueError(f"power factor {power_factor} must be in (0, 1]")
        angle = math.degrees(math.acos(power_factor))
        current = power_w / (elements * voltage_v * power_factor)
        return cls(voltage_v, current, -angle if leading else angle, frequency_hz, elements, circuit_map=circuit_map)

    @property
    def circuits(self) -> int:
        return len(self.circuit_map[0]) if self.circuit_map else self.elements

    @property
    def circuit_currents_a(self) -> tuple[float, ...]:
        """What the load drives into each current circuit (what a terminal's rating limits)."""
        weights = self.weights or (1.0,) * self.circuits
        return tuple(self.current_a * w for w in weights)

    @property
    def element_currents_a(self) -> tuple[float, ...]:
        """The current each element sees: its circuits' currents by their shares (all of an
        element's circuits carry its phase angle)."""
        circuits = self.circuit_currents_a
        if self.circuit_map is None:
            return circuits
        return tuple(sum(share * i for share, i in zip(row, circuits)) for row in self.circuit_map)

    @property
    def circuit_lags_deg(self) -> tuple[float, ...]:
        """Each circuit's current lag: its element's."""
        lags = self.element_lags_deg
        if self.circuit_map is None:
            return lags
        return tuple(next(lags[e] for e, row in enumerate(self.circuit_map) if row[c] != 0)
                     for c in range(self.circuits))

    @property
    def element_voltages_v(self) -> tuple[float, ...]:
        weights = self.voltage_weights or (1.0,) * self.elements
        return tuple(self.voltage_v * w for w in weights)

    @property
    def element_lags_deg(self) -> tuple[float, ...]:
        return self.lags_deg or (self.phase_deg,) * self.elements

    @cached_property  # a frozen stimulus: asked for every position's result, worked out once
    def power_factor(self) -> float:
        """Total fundamental P over total apparent power (cos phase_deg when every element is alike)."""
        p = q = s = 0.0
        for v, i, lag in zip(self.element_voltages_v, self.element_currents_a, self.element_lags_deg):
            p += v * i * math.cos(math.radians(lag))
            q += v * i * math.sin(math.radians(lag))
            s += v * i
        return p / s if s else math.cos(math.radians(self.phase_deg))

    def needs(self, form_angles_deg: tuple[float, ...]) -> dict[Capability, str]:
        """What the source and load must be able to do for this stimulus, and why."""
        needed: dict[Capability, str] = {}
        if len(set(self.element_voltages_v)) > 1:
            needed[Capability.VOLTAGE_PER_PHASE] = "unbalanced voltages"
        if self.voltage_angles_deg is not None and tuple(self.voltage_angles_deg) != tuple(form_angles_deg):
            needed[Capability.VOLTAGE_ANGLE_PER_PHASE] = "voltage angles other than the form's (phase sequence)"
        if len(set(self.circuit_currents_a)) > 1:
            needed[Capability.CURRENT_PER_PHASE] = "a different current in each current circuit"
        if len(set(self.element_lags_deg)) > 1:
            needed[Capability.CURRENT_ANGLE_PER_PHASE] = "a different phase angle on each element"
        if self.harmonics and self.harmonics.voltage:
            needed[Capability.VOLTAGE_HARMONICS] = f"harmonics in the voltage ({self.harmonics.name})"
        if self.harmonics and self.harmonics.current:
            needed[Capability.CURRENT_HARMONICS] = f"harmonics in the current ({self.harmonics.name})"
            if any(h.order == 0 for h in self.harmonics.current):
                needed[Capability.CURRENT_DC] = f"DC in the current ({self.harmonics.name})"
        return needed

    @property
    def reactive_power_var(self) -> float:
        """Total fundamental Q: positive when the current lags (inductive, delivered varh)."""
        return sum(v * i * math.sin(math.radians(lag))
                   for v, i, lag in zip(self.element_voltages_v, self.element_currents_a, self.element_lags_deg))

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
        return sum(v * i * (math.cos(math.radians(lag)) + self.harmonic_ratio)
                   for v, i, lag in zip(self.element_voltages_v, self.element_currents_a, self.element_lags_deg))

    @property
    def rms_voltage_v(self) -> float:
        return max(self.element_voltages_v) * (self.harmonics.rms_factor("voltage") if self.harmonics else 1.0)

    @property
    def rms_current_a(self) -> float:
        """RMS on the most loaded element, harmonics and DC included: what the ratings limit."""
        return self.current_a * (self.harmonics.rms_factor("current") if self.harmonics else 1.0)

    def describe(self) -> str:
        return self._description

    @cached_property  # every position's result cell: worked out once for the point's stimulus
    def _description(self) -> str:
        # A table cell, not a legend label (``pf_label``): three decimals, and lag or lead at any angle off zero.
        direction = "" if abs(self.phase_deg) < 1e-9 else " lead" if self.leading else " lag"
        pf = f"PF {self.power_factor:.3f}{direction}"
        if abs(self.phase_deg) > 90.0 + UNITY_PF_DEG:
            pf = f"PF {abs(self.power_factor):.3f} received"
        apparent = sum(v * i for v, i in zip(self.element_voltages_v, self.element_currents_a))
        if abs(self.power_factor) < REACTIVE_PF and apparent > 0:
            pf = f"sin φ {abs(self.reactive_power_var) / apparent:.3f}{direction}"
        parts = [f"{self.voltage_v:.2f} V", f"{self.current_a:.4g} A", pf, f"{self.frequency_hz:g} Hz"]
        if self.weights and len(set(self.weights)) > 1:
            what = "element" if self.circuit_map is None else "circuit"
            parts.append(f"{what} currents " + "/".join(f"{w:g}" for w in self.weights))
        if self.voltage_weights and len(set(self.voltage_weights)) > 1:
            parts.append("element voltages " + "/".join(f"{w:g}" for w in self.voltage_weights))
        if self.voltage_angles_deg is not None:
            parts.append("voltage angles " + "/".join(f"{a:g}" for a in self.voltage_angles_deg))
        if self.lags_deg and len(set(self.lags_deg)) > 1:
            parts.append("element angles " + "/".join(f"{a:g}" for a in self.lags_deg))
        if self.harmonics:
            parts.append(self.harmonics.name.replace("_", " "))
        # A reactive point (sin φ near 1) is about its var, which the W alone would not show.
        reactive = f", {self.reactive_power_var:.1f} var" if abs(self.power_factor) < REACTIVE_PF else ""
        return ", ".join(parts) + f" = {self.power_w:.1f} W{reactive}"
