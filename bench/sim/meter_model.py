"""A simulated meter: its error characteristic, starting threshold and Kh pulse output."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


PHASE_ANGLES_DEG = {1: (0.0,), 3: (0.0, -120.0, 120.0)}  # single phase; wye in positive (ABC) sequence


@dataclass(frozen=True)
class Conditions:
    """What every meter on the board sees, one phasor pair per measuring element: voltage
    circuits in parallel, current circuits in series. Phasors are complex RMS values."""

    voltages: np.ndarray
    currents: np.ndarray
    frequency_hz: float

    @classmethod
    def balanced(cls, voltage_v: float, current_a: float, phase_deg: float, frequency_hz: float,
                 elements: int) -> "Conditions":
        """A symmetrical set: equal magnitudes, phases 120° apart, current lagging by ``phase_deg``."""
        angles = np.radians(PHASE_ANGLES_DEG[elements])
        voltages = voltage_v * np.exp(1j * angles)
        currents = current_a * np.exp(1j * (angles - math.radians(phase_deg)))
        return cls(voltages, currents, frequency_hz)

    @property
    def elements(self) -> int:
        return len(self.voltages)

    @property
    def active_power_w(self) -> float:
        """P = sum over elements of Re(V I*)."""
        return float(np.sum(self.voltages * np.conj(self.currents)).real)

    @property
    def reactive_power_var(self) -> float:
        return float(np.sum(self.voltages * np.conj(self.currents)).imag)

    @property
    def voltage_v(self) -> float:
        return float(np.mean(np.abs(self.voltages)))

    @property
    def current_a(self) -> float:
        return float(np.mean(np.abs(self.currents)))

    @property
    def phase_deg(self) -> float:
        """Angle by which current lags voltage (negative when leading), from total P and Q."""
        if not np.any(self.currents) or not np.any(self.voltages):
            return 0.0
        return math.degrees(math.atan2(self.reactive_power_var, self.active_power_w))

    @property
    def power_factor(self) -> float:
        return math.cos(math.radians(self.phase_deg))


@dataclass(frozen=True)
class ErrorCurve:
    """Registration error as the sum of physical effects, in percent.

    - ``offset_pct``: gain error of the metrology (calibration constant).
    - ``light_load_pct``: a 1/I tail, the error a fixed offset or burden causes, equal to this
      value at 10 % of TA.
    - ``phase_error_mrad``: current-sensor phase displacement; it shows up as
      100 x delta x tan(phi), so it vanishes at unity PF and grows at low PF.
    - ``voltage_pct_per_10pct``: shift per +10 % of nominal voltage.
    """

    offset_pct: float = 0.0
    light_load_pct: float = 0.0
    phase_error_mrad: float = 0.0
    voltage_pct_per_10pct: float = 0.0

    def error_pct(self, c: Conditions, test_amperes: float, nominal_voltage: float) -> float:
        light = self.light_load_pct * (0.1 * test_amperes / c.current_a) if c.current_a > 0 else 0.0
        phi = math.radians(c.phase_deg)
        phase = 100.0 * (math.cos(phi - self.phase_error_mrad / 1000.0) / math.cos(phi) - 1.0)
        voltage = self.voltage_pct_per_10pct * (c.voltage_v / nominal_voltage - 1.0) / 0.1
        return self.offset_pct + light + phase + voltage


@dataclass
class MeterModel:
    """One board position: identity, metrology, pulse output and the registers it keeps."""

    position: int
    serial: str
    mac: str
    firmware: str
    kh_wh: float
    test_amperes: float
    nominal_voltage: float
    curve: ErrorCurve
    starting_current_a: float
    pulse_jitter_s: float
    alarm_code: str = ""
    seed: int = 0
    energy_wh: float = 0.0  # the meter's own register: what it believes it measured
    pulses: int = 0  # test-output pulses emitted so far
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng([self.seed, self.position])

    def true_error_pct(self, c: Conditions) -> float:
        """Ground truth: the error this meter has under these conditions."""
        return self.curve.error_pct(c, self.test_amperes, self.nominal_voltage)

    def registered_power_w(self, c: Conditions) -> float:
        """Power the meter's metrology integrates; nothing below the starting current."""
        if c.current_a < self.starting_current_a or c.active_power_w <= 0:
            return 0.0
        return c.active_power_w * (1.0 + self.true_error_pct(c) / 100.0)

    def advance(self, t0: float, dt: float, c: Conditions) -> list[float]:
        """Integrate ``dt`` seconds from time ``t0``; return the times of the pulse edges emitted.

        Each edge is where registered energy crosses a multiple of Kh, moved by the output's
        timing jitter (drawn in edge order, so results do not depend on how time is stepped).
        """
        power = self.registered_power_w(c)
        start_energy = self.energy_wh
        self.energy_wh += power * dt / 3600.0
        edges: list[float] = []
        while (self.pulses + 1) * self.kh_wh <= self.energy_wh:
            self.pulses += 1
            crossing = t0 + (self.pulses * self.kh_wh - start_energy) * 3600.0 / power
            edges.append(crossing + self._rng.normal(0.0, self.pulse_jitter_s))
        return edges
