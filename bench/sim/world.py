"""The one world model every simulated instrument shares.

Stimulus is piecewise constant: it changes only when an instrument receives a command, so
integrating energy and placing pulse edges between commands is exact. Time advances only when
the bench's clock asks (stepped mode) or with the wall clock times a factor (scaled mode).
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.metrology.harmonics import Harmonic
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
    tripped: bool = False  # output protection tripped: the output is off until OUTP:PROT:CLE

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
    """One counter channel: its input stage, then the gate counting reference pulses between MUT edges.

    The input stage does what the scanning head and the board's glitch filter do to a meter's pulse
    train: edges the head misses are never seen; pulses narrower than the filter (``filter_s``) are
    rejected and counted; anything at least as wide, an injected glitch too, is a MUT edge. The
    board's filter setting and timebase offset are common to all channels; each channel keeps a
    copy, as the world holds no board-wide counter state.
    """

    state: str = "IDLE"  # IDLE | ARMED | GATING | DONE
    target: int = 0
    mut_edges: int = 0
    ref_start: int = 0
    ref_stop: int = 0
    t_start: float = 0.0
    t_stop: float = 0.0
    total_edges: int = 0
    rejected: int = 0  # glitches rejected while the gate was open
    period_min_s: float = math.inf  # shortest and longest MUT period inside the gate
    period_max_s: float = 0.0
    last_edge_s: float = 0.0
    filter_s: float = 0.0005
    timebase_offset_ticks: int = 0
    pulse_width_s: float = 0.010  # the simulated meters' test-output pulses: a stated working value
    misses: int = 0  # the next MUT edges the head will not see
    glitches: list[tuple[float, float]] = field(default_factory=list)  # pending (time, width), in time order

    def arm(self, pulses: int) -> None:
        self.state, self.target, self.mut_edges = "ARMED", pulses, 0

    def add_glitches(self, start_s: float, count: int, width_s: float, span_s: float) -> None:
        """``count`` glitches of ``width_s``, one in the middle of each equal slice of the span."""
        self.glitches.extend((start_s + span_s * (k + 0.5) / count, width_s) for k in range(count))
        self.glitches.sort()

    def feed(self, pulses: list[float], until_s: float, ref_count_at: Callable[[float], int]) -> None:
        """The meter's pulses (rising-edge times) and the glitches due by ``until_s``, in time order."""
        due = [g for g in self.glitches if g[0] <= until_s]
        self.glitches = self.glitches[len(due):]
        events = sorted([(t, self.pulse_width_s, False) for t in pulses] + [(t, w, True) for t, w in due])
        for t, width, glitch in events:
            if not glitch and self.misses:
                self.misses -= 1
            elif width < self.filter_s:
                self._reject()
            else:
                self.edge(t, ref_count_at(t))

    def _reject(self) -> None:
        if self.state == "GATING":
            self.rejected += 1

    def edge(self, t: float, ref_count: int) -> None:
        self.total_edges += 1
        if self.state == "ARMED":
            self.state, self.t_start, self.ref_start = "GATING", t, ref_count
            self.rejected, self.period_min_s, self.period_max_s, self.last_edge_s = 0, math.inf, 0.0, t
        elif self.state == "GATING":
            self.mut_edges += 1
            period, self.last_edge_s = t - self.last_edge_s, t
            self.period_min_s, self.period_max_s = min(self.period_min_s, period), max(self.period_max_s, period)
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
        voltage_harmonics = tuple(sorted(self.source.harmonics.values(), key=lambda h: h.order))
        current_harmonics = tuple(sorted(self.load.harmonics.values(), key=lambda h: h.order))
        return Conditions.balanced(self.source.output_voltage_v, peak, self.load.phase_deg, self.source.frequency_hz,
                                   self.angles_deg, weights,
                                   voltage_harmonics if self.source.output else (),
                                   current_harmonics if self.load.output else ())

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

        def ref_count_at(t: float) -> int:
            return ref.pulses_at(ref.total_wh + ref_power * (t - t0) / 3600.0)

        for meter in self.meters:
            self.gates[meter.position - 1].feed(meter.advance(t0, dt, c), t0 + dt, ref_count_at)
        ref.total_wh += ref_power * dt / 3600.0
        ref.accumulator_wh += ref_power * dt / 3600.0
        self.time_s = t0 + dt

    def reference_pulses(self) -> int:
        return self.reference.pulses_at(self.reference.total_wh)
