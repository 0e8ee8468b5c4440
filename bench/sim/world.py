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
from typing import Any, ClassVar

import numpy as np

from bench.counterd.gate import Channel, Timebase
from bench.metrology.forms import CircuitMap
from bench.metrology.harmonics import Harmonic
from bench.sim.meter_model import Conditions, MeterModel
from instruments.roles import STANDARD_ANGLES_DEG


@dataclass
class SourceState:
    """Programmable AC voltage source, phase by phase: a magnitude and an angle (degrees from
    phase 1, positive leading) each. ``gain_error`` is how far its output is from the setpoint.
    One harmonic content serves every phase: the simulated board models one wave shape."""

    phases: int
    max_voltage_v: float
    voltages_v: list[float] = field(default_factory=list)
    angles_deg: list[float] = field(default_factory=list)
    frequency_hz: float = 60.0
    output: bool = False
    gain_error: float = 0.0
    harmonics: dict[int, Harmonic] = field(default_factory=dict)
    tripped: bool = False  # output protection tripped: the output is off until OUTP:PROT:CLE

    def __post_init__(self) -> None:
        self.voltages_v = self.voltages_v or [0.0] * self.phases
        self.angles_deg = self.angles_deg or list(STANDARD_ANGLES_DEG[: self.phases])

    @property
    def voltage_v(self) -> float:
        """Phase 1's setpoint (a source that sets every phase at once keeps them equal)."""
        return self.voltages_v[0]

    @voltage_v.setter
    def voltage_v(self, value: float) -> None:
        self.voltages_v = [value] * self.phases

    def output_voltages_v(self) -> list[float]:
        return [v * (1.0 + self.gain_error) if self.output else 0.0 for v in self.voltages_v]


@dataclass
class LoadState:
    """Phantom-load current source: per phase a current and the angle by which it lags that
    phase's voltage (degrees; negative leads), and one harmonic content for every phase."""

    phases: int
    max_current_a: float
    currents_a: list[float] = field(default_factory=list)
    lags_deg: list[float] = field(default_factory=list)
    output: bool = False
    gain_error: float = 0.0
    harmonics: dict[int, Harmonic] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.currents_a = self.currents_a or [0.0] * self.phases
        self.lags_deg = self.lags_deg or [0.0] * self.phases

    @property
    def phase_deg(self) -> float:
        """Phase 1's lag (a load that sets every phase at once keeps them equal)."""
        return self.lags_deg[0]

    @phase_deg.setter
    def phase_deg(self, value: float) -> None:
        self.lags_deg = [value] * self.phases

    def output_currents_a(self) -> list[float]:
        return [i * (1.0 + self.gain_error) if self.output else 0.0 for i in self.currents_a]


@dataclass
class ReferenceState:
    """Reference standard: its own small error, active and reactive energy registers (signed:
    received and leading negative), and a high-frequency pulse output counting the energy of the
    selected kind flowing either way."""

    error_pct: float
    pulse_constant_wh: float  # Wh, or varh once the output counts reactive energy
    total_wh: float = 0.0  # drives the pulse output; never reset
    accumulator_wh: float = 0.0  # the ENERgy register, reset on command
    accumulator_varh: float = 0.0  # the ENERgy:REACtive register, reset with it
    pulses_reactive: bool = False  # the pulse output counts varh

    def pulses_at(self, energy_wh: float) -> int:
        return math.floor(energy_wh / self.pulse_constant_wh)


@dataclass
class Gate(Channel):
    """One counter channel: a simulated scanning head in front of the board's channel logic, the
    very logic `bench counterd` runs (bench/counterd/gate.py: glitch filter by pulse width, gate,
    reference count latched at the gate's edges, all in ticks of the board's timebase).

    The head does to a meter's pulse train what a real one does: the edges it misses are never
    seen, and injected glitches reach the input beside the meter's pulses. The board's timebase
    offset is common to all channels; each channel keeps a copy, as the world holds no board-wide
    counter state.
    """

    timebase: ClassVar[Timebase] = Timebase()  # the simulated board's: 10 MHz, 32-bit timestamps
    timebase_offset_ticks: int = 0
    pulse_width_s: float = 0.010  # the simulated meters' test-output pulses: a stated working value
    misses: int = 0  # the next MUT edges the head will not see
    glitches: list[tuple[float, float]] = field(default_factory=list)  # pending (time, width), in time order

    @property
    def t_start(self) -> float:
        """When the gate opened, simulated seconds (to the board's tick)."""
        return self.start_ticks / self.timebase.hz

    @property
    def t_stop(self) -> float:
        return self.stop_ticks / self.timebase.hz

    @property
    def filter_s(self) -> float:
        return self.filter_ticks / self.timebase.hz

    def add_glitches(self, start_s: float, count: int, width_s: float, span_s: float) -> None:
        """``count`` glitches of ``width_s``, one in the middle of each equal slice of the span."""
        self.glitches.extend((start_s + span_s * (k + 0.5) / count, width_s) for k in range(count))
        self.glitches.sort()

    def feed(self, pulses: np.ndarray, until_s: float, ref_count_at: Callable[[float], int]) -> None:
        """The meter's pulses (rising-edge times) and the glitches due by ``until_s``, in time order.
        With no glitch due and no edge to miss, the meter's train goes to the channel in bulk."""
        if not len(pulses) and not (self.glitches and self.glitches[0][0] <= until_s):
            return  # nothing reaches the input (glitches are kept in time order)
        due = [g for g in self.glitches if g[0] <= until_s]
        self.glitches = self.glitches[len(due):]
        width = self.timebase.ticks_from_s(self.pulse_width_s)
        if not due and not self.misses and self.only_counts(width):
            self.total_edges += len(pulses)  # all pulse_train would do with them: no need to time them
            return
        if not due and not self.misses:
            times = np.sort(pulses)
            self.pulse_train(self.timebase.ticks_from_s_array(times), width, lambda i: ref_count_at(float(times[i])))
            return
        events = sorted([(t, self.pulse_width_s, False) for t in pulses] + [(t, w, True) for t, w in due])
        ticks = self.timebase.ticks_from_s
        for t, seconds, glitch in events:
            if not glitch and self.misses:
                self.misses -= 1
            else:
                self.pulse(ticks(t), ticks(seconds), ref_count_at(t))


@dataclass
class World:
    """Board, instruments and time. Callers hold ``lock`` for every access (the servers do so
    per command) and call ``sync`` first."""

    source: SourceState
    load: LoadState
    reference: ReferenceState
    meters: list[MeterModel]
    angles_deg: tuple[float, ...]  # the voltage each element sees at a standard source, from the meter's form
    circuit_map: CircuitMap | None = None  # the form's: load phase c drives current circuit c; None: one per element
    outputs: tuple[str, ...] = ("Wh",)  # the meters' test outputs, each on a bank of counter channels
    scale: float | None = None  # None: stepped; else simulated seconds per wall second
    time_s: float = 0.0
    interlock_closed: bool = True
    ambient_c: float | None = None  # the board's air temperature, where a thermometer reads it
    gates: list[Gate] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _wall_mark: float = field(default_factory=time.monotonic, repr=False)
    _conditions: tuple[tuple[Any, ...], Conditions] | None = field(default=None, repr=False)  # (inputs, theirs)

    def __post_init__(self) -> None:
        if not self.gates:
            self.gates = [Gate() for _ in range(len(self.meters) * len(self.outputs))]
        # Source phase k feeds element k: at power-up its angles are the ones the form's elements see.
        self.source.angles_deg[: self.elements] = list(self.angles_deg)

    @property
    def elements(self) -> int:
        return len(self.angles_deg)

    def conditions(self) -> Conditions:
        """The phasors the meters' elements see now (zero where an output is off): the same object
        while they hold, so what each meter works out from them is kept (``registered_powers``)."""
        n = self.elements
        c = len(self.circuit_map[0]) if self.circuit_map else n
        source, load = self.source, self.load
        voltage_harmonics = tuple(sorted(source.harmonics.values(), key=lambda h: h.order)) if source.output else ()
        current_harmonics = tuple(sorted(load.harmonics.values(), key=lambda h: h.order)) if load.output else ()
        inputs = (source.output_voltages_v()[:n], source.angles_deg[:n], load.output_currents_a()[:c],
                  load.lags_deg[:c], source.frequency_hz, voltage_harmonics, current_harmonics, self.circuit_map)
        if self._conditions is None or self._conditions[0] != inputs:
            self._conditions = (inputs, Conditions.from_phases(*inputs))
        return self._conditions[1]

    def true_power_w(self) -> float:
        return self.conditions().active_power_w

    def reference_power_w(self) -> float:
        return self.true_power_w() * (1.0 + self.reference.error_pct / 100.0)

    def reference_reactive_power_var(self) -> float:
        return self.conditions().reactive_power_var * (1.0 + self.reference.error_pct / 100.0)

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
        gain = 1.0 + ref.error_pct / 100.0
        ref_power, ref_var = c.active_power_w * gain, c.reactive_power_var * gain
        pulse_rate = abs(ref_var if ref.pulses_reactive else ref_power)

        def ref_count_at(t: float) -> int:
            return ref.pulses_at(ref.total_wh + pulse_rate * (t - t0) / 3600.0)

        for meter in self.meters:
            for output, edges in meter.advance(t0, dt, c).items():
                self.gates[self.channel(meter.position, output) - 1].feed(edges, t0 + dt, ref_count_at)
        ref.total_wh += pulse_rate * dt / 3600.0
        ref.accumulator_wh += ref_power * dt / 3600.0
        ref.accumulator_varh += ref_var * dt / 3600.0
        self.time_s = t0 + dt

    def channel(self, position: int, output: str) -> int:
        """The counter channel a meter's test output is wired to: the board's first output on
        channels 1..N, its second on N+1..2N (bench/sim/board.py wires them so)."""
        return self.outputs.index(output) * len(self.meters) + position

    def reference_pulses(self) -> int:
        return self.reference.pulses_at(self.reference.total_wh)
