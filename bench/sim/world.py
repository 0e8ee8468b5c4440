"""The one world model every simulated instrument shares.

Stimulus is piecewise constant: it changes only when an instrument receives a command, so
integrating energy and placing pulse edges between commands is exact. Time advances only when
the bench's clock asks (stepped mode) or with the wall clock times a factor (scaled mode).
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

from bench.harmonics import Harmonic
from bench.sim.meter_model import Conditions, MeterModel


@dataclass
class SourceState:
    """Programmable AC voltage source. ``gain_error`` is how far its output is from the setpoint."""

    phases: int
    max_voltage_v: float
    voltage_v: float = 0.0
    frequency_hz: float = 60.0
    output: bool = False
    gain_error: float = 0.0
    harmonics: dict[int, Harmonic] = field(default_factory=dict)

    @property
    def output_voltage_v(self) -> float:
        return self.voltage_v * (1.0 + self.gain_error) if self.output else 0.0


@dataclass
class LoadState:
    """Phantom-load current source: a current per phase, one phase angle, harmonics."""

    phases: int
    max_current_a: float
    currents_a: list[float] = field(default_factory=list)
    phase_deg: float = 0.0
    output: bool = False
    gain_error: float = 0.0
    harmonics: dict[int, Harmonic] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.currents_a:
            self.currents_a = [0.0] * self.phases

    def output_currents_a(self) -> list[float]:
        return [i * (1.0 + self.gain_error) if self.output else 0.0 for i in self.currents_a]


@dataclass
class ReferenceState:
    """Reference standard: its own small error and a high-frequency energy pulse output."""

    error_pct: float
    pulse_constant_wh: float
    total_wh: float = 0.0  # drives the pulse output; never reset
    accumulator_wh: float = 0.0  # the ENERgy register, reset on command

    def pulses_at(self, energy_wh: float) -> int:
        return math.floor(energy_wh / self.pulse_constant_wh)


@dataclass
class Gate:
    """One counter channel: reference pulses counted between MUT pulse edges."""

    state: str = "IDLE"  # IDLE | ARMED | GATING | DONE
    target: int = 0
    mut_edges: int = 0
    ref_start: int = 0
    ref_stop: int = 0
    t_start: float = 0.0
    t_stop: float = 0.0
    total_edges: int = 0

    def arm(self, pulses: int) -> None:
        self.state, self.target, self.mut_edges = "ARMED", pulses, 0

    def edge(self, t: float, ref_count: int) -> None:
        self.total_edges += 1
        if self.state == "ARMED":
            self.state, self.t_start, self.ref_start = "GATING", t, ref_count
        elif self.state == "GATING":
            self.mut_edges += 1
            if self.mut_edges == self.target:
                self.state, self.t_stop, self.ref_stop = "DONE", t, ref_count


@dataclass
class World:
    """Board, instruments and time. Callers hold ``lock`` for every access (the servers do so
    per command) and call ``sync`` first."""

    source: SourceState
    load: LoadState
    reference: ReferenceState
    meters: list[MeterModel]
    angles_deg: tuple[float, ...]  # the voltage each element sees, from the meter's form
    scale: float | None = None  # None: stepped; else simulated seconds per wall second
    time_s: float = 0.0
    interlock_closed: bool = True
    gates: list[Gate] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _wall_mark: float = field(default_factory=time.monotonic, repr=False)

    def __post_init__(self) -> None:
        if not self.gates:
            self.gates = [Gate() for _ in self.meters]

    @property
    def elements(self) -> int:
        return len(self.angles_deg)

    def conditions(self) -> Conditions:
        """The phasors the meters' elements see now (zero where an output is off)."""
        currents = self.load.output_currents_a()[: self.elements]
        peak = max(currents)
        weights = tuple(i / peak for i in currents) if peak else None
        return Conditions.balanced(self.source.output_voltage_v, peak, self.load.phase_deg, self.source.frequency_hz,
                                   self.angles_deg, weights,
                                   tuple(sorted(self.source.harmonics.values(), key=lambda h: h.order)) if self.source.output else (),
                                   tuple(sorted(self.load.harmonics.values(), key=lambda h: h.order)) if self.load.output else ())

    def true_power_w(self) -> float:
        return self.conditions().active_power_w

    def reference_power_w(self) -> float:
        return self.true_power_w() * (1.0 + self.reference.error_pct / 100.0)

    def sync(self) -> None:
        """In scaled mode, catch up with the wall clock; stepped time only moves on advance()."""
        if self.scale is None:
            return
        now = time.monotonic()
        elapsed, self._wall_mark = now - self._wall_mark, now
        self._integrate(elapsed * self.scale)

    def advance(self, seconds: float) -> None:
        if self.scale is not None:
            raise RuntimeError("the simulated clock runs scaled; it cannot be stepped")
        if seconds < 0:
            raise ValueError("time cannot go backwards")
        self._integrate(seconds)

    def _integrate(self, dt: float) -> None:
        c = self.conditions()
        t0, ref = self.time_s, self.reference
        ref_power = self.reference_power_w() if c.active_power_w > 0 else 0.0
        for meter in self.meters:
            for t_edge in meter.advance(t0, dt, c):
                ref_energy = ref.total_wh + ref_power * (t_edge - t0) / 3600.0
                self.gates[meter.position - 1].edge(t_edge, ref.pulses_at(ref_energy))
        ref.total_wh += ref_power * dt / 3600.0
        ref.accumulator_wh += ref_power * dt / 3600.0
        self.time_s = t0 + dt

    def reference_pulses(self) -> int:
        return self.reference.pulses_at(self.reference.total_wh)
