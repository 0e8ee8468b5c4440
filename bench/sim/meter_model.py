"""A simulated meter: its error characteristic, starting threshold, creep, energy registers per
quantity and a test output per kind of energy (Wh, varh), each with its own Kt."""
from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from bench.metrology.harmonics import Harmonic
from bench.metrology.quantities import ACTIVE, Quantity
from bench.sim.firmware import release_for


@dataclass(frozen=True)
class Conditions:
    """What every meter on the board sees, one phasor pair per measuring element: voltage
    circuits in parallel, current circuits in series. Phasors are complex RMS values of the
    fundamental; harmonics (same shape on every element) are relative to the fundamental."""

    voltages: np.ndarray
    currents: np.ndarray
    frequency_hz: float
    voltage_harmonics: tuple[Harmonic, ...] = ()
    current_harmonics: tuple[Harmonic, ...] = ()
    circuit_currents: np.ndarray | None = None  # each current circuit's phasor, where elements add up circuits
    circuit_map: np.ndarray | None = None  # elements x circuits: the share of each circuit an element sees

    @classmethod
    def balanced(cls, voltage_v: float, current_a: float, phase_deg: float, frequency_hz: float,
                 angles_deg: tuple[float, ...], weights: tuple[float, ...] | None = None,
                 voltage_harmonics: tuple[Harmonic, ...] = (), current_harmonics: tuple[Harmonic, ...] = ()
                 ) -> Conditions:
        """Voltages of equal magnitude at the form's angles; each current lags its voltage by
        ``phase_deg`` and is ``current_a`` times its element's weight (unbalance, element alone)."""
        angles = np.radians(angles_deg)
        scale = np.ones(len(angles)) if weights is None else np.asarray(weights, dtype=float)
        voltages = voltage_v * np.exp(1j * angles)
        currents = current_a * scale * np.exp(1j * (angles - math.radians(phase_deg)))
        return cls(voltages, currents, frequency_hz, voltage_harmonics, current_harmonics)

    @classmethod
    def from_phases(cls, voltages_v: list[float], angles_deg: list[float], currents_a: list[float],
                    lags_deg: list[float], frequency_hz: float, voltage_harmonics: tuple[Harmonic, ...] = (),
                    current_harmonics: tuple[Harmonic, ...] = (),
                    circuit_map: tuple[tuple[float, ...], ...] | None = None) -> Conditions:
        """Element by element: a voltage at its angle, and a current lagging that voltage. With a
        circuit map, ``currents_a`` and ``lags_deg`` are per current circuit, each lagging the
        voltage of the element it feeds, and an element sees its circuits by their shares."""
        angles = np.radians(np.asarray(angles_deg, dtype=float))
        voltages = np.asarray(voltages_v, dtype=float) * np.exp(1j * angles)
        lags = np.radians(np.asarray(lags_deg, dtype=float))
        if circuit_map is None:
            currents = np.asarray(currents_a, dtype=float) * np.exp(1j * (angles - lags))
            return cls(voltages, currents, frequency_hz, voltage_harmonics, current_harmonics)
        shares = np.asarray(circuit_map, dtype=float)
        feeds = np.argmax(shares != 0, axis=0)  # the element each circuit feeds
        circuits = np.asarray(currents_a, dtype=float) * np.exp(1j * (angles[feeds] - lags))
        return cls(voltages, shares @ circuits, frequency_hz, voltage_harmonics, current_harmonics, circuits, shares)

    # What follows is derived from the phasors once and kept: one Conditions serves every meter
    # of a step (World._integrate), so each is worked out once for the board, not once a meter.

    @property
    def elements(self) -> int:
        return len(self.voltages)

    def element_fundamental_power_w(self) -> np.ndarray:
        return self._fundamental_power_w

    def element_harmonic_power_w(self) -> np.ndarray:
        return self._harmonic_power_w

    @cached_property
    def _fundamental_power_w(self) -> np.ndarray:
        return _read_only((self.voltages * np.conj(self.currents)).real)

    @cached_property
    def _harmonic_power_w(self) -> np.ndarray:
        """Per element: sum over orders in both waves of V_h I_h cos(h phi + psi_v - psi_i), where
        phi is the element's fundamental angle (harmonic phases ride on the fundamental)."""
        currents = {h.order: h for h in self.current_harmonics}
        phi = np.angle(self.voltages) - np.angle(self.currents)
        power = np.zeros(self.elements)
        for v in self.voltage_harmonics:
            if v.order in currents:
                i = currents[v.order]
                power += (v.pct / 100 * i.pct / 100) * np.cos(v.order * phi + np.radians(v.phase_deg - i.phase_deg))
        return _read_only(np.abs(self.voltages) * np.abs(self.currents) * power)

    @cached_property
    def element_polar(self) -> tuple[tuple[float, float, float], ...]:
        """Per element: |V|, |I| and the angle of V / I in radians (0 where no current flows)."""
        return tuple((abs(complex(v)), abs(complex(i)), float(np.angle(v / i)) if i else 0.0)
                     for v, i in zip(self.voltages, self.currents))

    @cached_property
    def energised(self) -> bool:
        """Some element has a voltage."""
        return bool(np.any(self.voltages))

    @cached_property
    def active_power_w(self) -> float:
        """P = sum over elements and orders of V_h I_h cos(phi_h)."""
        return float(np.sum(self.element_fundamental_power_w() + self.element_harmonic_power_w()))

    @cached_property
    def reactive_power_var(self) -> float:
        return float(np.sum(self.voltages * np.conj(self.currents)).imag)

    @cached_property
    def voltage_v(self) -> float:
        """Mean fundamental voltage magnitude over the elements."""
        return float(np.mean(np.abs(self.voltages)))

    @cached_property
    def current_a(self) -> float:
        """Largest fundamental current on any element."""
        return float(np.max(np.abs(self.currents)))

    @cached_property
    def phase_deg(self) -> float:
        """Angle by which the fundamental current lags voltage, from total fundamental P and Q."""
        p = float(np.sum(self.element_fundamental_power_w()))
        if p == 0 and self.reactive_power_var == 0:
            return 0.0
        return math.degrees(math.atan2(self.reactive_power_var, p))

    @cached_property
    def power_factor(self) -> float:
        return math.cos(math.radians(self.phase_deg))

    @cached_property
    def dc_pct(self) -> float:
        return next((h.pct for h in self.current_harmonics if h.order == 0), 0.0)


def _read_only(array: np.ndarray) -> np.ndarray:
    """A kept array no caller can change under the others."""
    array.flags.writeable = False
    return array


@dataclass(frozen=True)
class ErrorCurve:
    """Registration error as the sum of physical effects, in percent.

    - ``offset_pct``: gain error of the metrology (calibration constant).
    - ``light_load_pct``: a 1/I tail, the error a fixed offset or burden causes, equal to this
      value at 10 % of TA.
    - ``phase_error_mrad``: current-sensor phase displacement; it shows up as
      100 x delta x tan(phi), so it vanishes at unity PF and grows at low PF.
    - ``voltage_pct_per_10pct``: shift per +10 % of nominal voltage.
    - ``frequency_pct_per_pct``: shift per +1 % of nominal frequency.
    - ``harmonic_gain_pct``: error on harmonic power only (a meter that under-registers it: < 0).
    - ``dc_pct_per_10pct``: shift per 10 % of DC in the current (current-transformer saturation).
    - ``light_load_phase_mrad``: phase displacement growing as 1/I (a current transformer's
      magnetising current), equal to this at 10 % of TA: it fails low-current points at PF 0.5
      and 0.8 while PF 1 stays good.
    - ``voltage_phase_mrad_per_10pct``: phase displacement per +10 % of voltage (a voltage
      divider's reactance): a voltage influence that shows at PF 0.5 only.
    - ``frequency_phase_mrad_per_pct``: phase displacement per +1 % of frequency (a fixed delay
      between the channels): a frequency influence that shows at PF 0.5 only.
    - ``reactive_offset_pct``: gain error of reactive energy alone (the var path's own calibration
      constant, as meters that compute Q from a quarter-cycle-shifted voltage have).

    The phase displacement δ reaches active energy as cos(φ - δ) / cos φ and reactive energy as
    sin(φ - δ) / sin φ: it vanishes for active energy at PF 1 and for reactive at sin φ = 1.
    """

    offset_pct: float = 0.0
    light_load_pct: float = 0.0
    phase_error_mrad: float = 0.0
    voltage_pct_per_10pct: float = 0.0
    frequency_pct_per_pct: float = 0.0
    harmonic_gain_pct: float = 0.0
    dc_pct_per_10pct: float = 0.0
    light_load_phase_mrad: float = 0.0
    voltage_phase_mrad_per_10pct: float = 0.0
    frequency_phase_mrad_per_pct: float = 0.0
    reactive_offset_pct: float = 0.0

    def gain_pct(self, voltage_v: float, current_a: float, frequency_hz: float, dc_pct: float,
                 test_amperes: float, nominal_voltage: float, nominal_frequency: float) -> float:
        """Every term that scales the measured power whatever the phase angle, in percent."""
        low_current, voltage_step, frequency_step = _influences(voltage_v, current_a, frequency_hz, test_amperes,
                                                                nominal_voltage, nominal_frequency)
        return (self.offset_pct + self.light_load_pct * low_current + self.voltage_pct_per_10pct * voltage_step
                + self.frequency_pct_per_pct * frequency_step + self.dc_pct_per_10pct * dc_pct / 10.0)

    def phase_rad(self, voltage_v: float, current_a: float, frequency_hz: float, test_amperes: float,
                  nominal_voltage: float, nominal_frequency: float) -> float:
        """The phase displacement δ between the meter's current and voltage channels."""
        low_current, voltage_step, frequency_step = _influences(voltage_v, current_a, frequency_hz, test_amperes,
                                                                nominal_voltage, nominal_frequency)
        return (self.phase_error_mrad + self.light_load_phase_mrad * low_current
                + self.voltage_phase_mrad_per_10pct * voltage_step
                + self.frequency_phase_mrad_per_pct * frequency_step) / 1000.0

    def element_error_pct(self, voltage_v: float, current_a: float, phase_deg: float, frequency_hz: float,
                          dc_pct: float, test_amperes: float, nominal_voltage: float,
                          nominal_frequency: float, *, reactive: bool = False) -> float:
        """One element's error of active (or reactive) energy at this angle, in percent."""
        gain = self.gain_pct(voltage_v, current_a, frequency_hz, dc_pct, test_amperes, nominal_voltage,
                             nominal_frequency)
        delta = self.phase_rad(voltage_v, current_a, frequency_hz, test_amperes, nominal_voltage, nominal_frequency)
        phi = math.radians(phase_deg)
        if reactive:
            return gain + self.reactive_offset_pct + 100.0 * (math.sin(phi - delta) / math.sin(phi) - 1.0)
        return gain + 100.0 * (math.cos(phi - delta) / math.cos(phi) - 1.0)


def _influences(voltage_v: float, current_a: float, frequency_hz: float, test_amperes: float,
                nominal_voltage: float, nominal_frequency: float) -> tuple[float, float, float]:
    """How far the conditions are from nominal, in the units the error terms are stated in: the
    low-current factor (1 at 10 % of TA), steps of +10 % voltage and of +1 % frequency."""
    low_current = 0.1 * test_amperes / current_a if current_a > 0 else 0.0
    return low_current, (voltage_v / nominal_voltage - 1.0) / 0.1, (frequency_hz / nominal_frequency - 1.0) * 100.0


_NO_EDGES = _read_only(np.empty(0))  # a step without an edge: one array for all of them

INTERVAL_S = 900.0  # 15-minute load-profile intervals
# Simulation working value: how often a meter saves its energy register to non-volatile memory.
NV_SAVE_INTERVAL_S = 60.0


@dataclass
class Functional:
    """What the meter's firmware and comms do besides metrology: the audit's and the firmware
    regression's subject. Defaults are a healthy meter."""

    service_running: bool = True  # the provisioning service (False: it died, e.g. a kernel panic)
    checksum_fault: bool = False  # memory checksum error (E0001)
    firmware_conflict: bool = False  # the release clashes with what the head end expects (F505)
    rssi_dbm: float = -72.0
    snr_db: float = 21.0
    ping_loss: float = 0.0  # share of mesh pings lost
    phase_rotation: str = "ABC"  # as the meter's voltage inputs are wired
    tamper: bool = False
    rejects_keys: bool = False  # authentication with the key server fails (E004)
    ct_reversed: bool = False
    voltage_reading_gain: float = 1.0  # < 1: the meter reads (and alarms) undervoltage
    key_status: int = 0  # 0 no rotation yet, 1 accepted, 2 rejected
    key_fingerprint: str = ""
    ping_received: int = 0
    intervals_wh: list[float] = field(default_factory=list)  # closed 15-minute records kept
    interval_record_gain: float = 1.0  # what a record holds per Wh registered (a scaling slip in the load profile)
    intervals_closed: int = 0
    open_interval_wh: float = 0.0
    interval_select: int = 0
    daily_alarms: list[str] = field(default_factory=list)


DEMAND_INTERVAL_S = 900.0  # block demand interval: 15 minutes, the most common setting


@dataclass
class Demand:
    """Block-interval demand as the meter's firmware keeps it: intervals run back to back on the
    meter's demand timer from power-up; at each close the interval's energy over its nominal length
    is its demand, kept as the last interval's and, if larger, the maximum since the reset. A
    demand reset (as a meter in test mode does) zeroes them and starts a new interval at once.

    ``clock_error_pct`` is a fault: the demand timer runs that much fast (> 0) or slow, so each
    interval holds that much less (more) energy than its nominal length, and demand reads low (high).
    """

    interval_s: float = DEMAND_INTERVAL_S
    clock_error_pct: float = 0.0
    open_wh: float = 0.0  # energy registered in the interval in progress
    open_s: float = 0.0  # how far the interval in progress has run, on the demand timer
    last_w: float = 0.0
    max_w: float = 0.0
    closed: int = 0  # intervals closed since the last reset

    @property
    def rate(self) -> float:
        """Demand-timer seconds per true second."""
        return 1.0 + self.clock_error_pct / 100.0

    @property
    def present_w(self) -> float:
        """The interval in progress so far: its energy over the time the timer says has passed."""
        return self.open_wh * 3600.0 / self.open_s if self.open_s > 0 else 0.0

    def advance(self, dt: float, power_w: float) -> None:
        """``dt`` true seconds at a constant registered power: close every interval that ends in it."""
        left = dt
        while (to_close := (self.interval_s - self.open_s) / self.rate) <= left + 1e-9:
            self.open_wh += power_w * max(to_close, 0.0) / 3600.0
            self.last_w = self.open_wh * 3600.0 / self.interval_s
            self.max_w = max(self.max_w, self.last_w)
            self.closed += 1
            self.open_wh, self.open_s, left = 0.0, 0.0, max(left - to_close, 0.0)
        self.open_wh += power_w * left / 3600.0
        self.open_s += left * self.rate

    def reset(self) -> None:
        self.open_wh = self.open_s = self.last_w = self.max_w = 0.0
        self.closed = 0


@dataclass
class MeterModel:
    """One board position: identity, metrology, pulse output and the registers it keeps."""

    position: int
    serial: str
    mac: str
    firmware: str
    kh_wh: float  # the nameplate constant, as the meter reports it over its comms
    test_amperes: float
    nominal_voltage: float
    nominal_frequency: float
    curve: ErrorCurve
    starting_current_a: float
    pulse_jitter_s: float
    element_offsets_pct: tuple[float, ...] = ()
    circuit_offsets_pct: tuple[float, ...] = ()  # gain of each current circuit (a coil's turns, a CT's ratio)
    creep_w: float = 0.0  # what it registers with voltage on and no load (0 for a sound meter)
    alarm_code: str = ""
    functional: Functional = field(default_factory=Functional)
    seed: int = 0
    energy_wh: float = 0.0  # the metrology core's delivered accumulator: what it believes it measured
    register_lost_wh: float = 0.0  # what reboots took from the energy register (saved copy behind the accumulator)
    saved_register_wh: float = 0.0  # the register's last copy in non-volatile memory
    link_fault: str = "NONE"  # the Modbus link's persistent fault, set by fault injection
    restart_hooks: list[Callable[[], None]] = field(default_factory=list, repr=False)  # e.g. drop its connections
    demand: Demand = field(default_factory=Demand)  # the block-interval demand register
    test_outputs: dict[str, float] = field(default_factory=dict)  # Kt in force per test output; {} = one Wh at Kh
    # Kt in test mode of the outputs it changes ({}: the meter has no test mode). While in test mode
    # the test outputs pulse at these, and the demand register runs on its test-mode interval where
    # the type states one (reset on entering and on leaving); the energy and interval registers keep
    # accumulating exactly as in normal mode.
    test_mode_outputs: dict[str, float] = field(default_factory=dict)
    test_mode_demand_interval_s: float | None = None
    in_test_mode: bool = False
    bidirectional: bool = False  # registers received energy too (a net meter); else detented
    received_wh: float = 0.0  # the received active energy register
    varh: float = 0.0  # the delivered (lagging) reactive energy register
    received_varh: float = 0.0  # the received (leading) reactive energy register
    output_energy: dict[str, float] = field(default_factory=dict)  # what each test output has counted
    output_pulses: dict[str, int] = field(default_factory=dict)  # pulses each test output has emitted
    clock_offset_s: float = 0.0  # the meter's real-time clock less the world's time: where its intervals close
    _rng: np.random.Generator = field(init=False, repr=False)
    _normal_outputs: dict[str, float] = field(init=False, repr=False)
    _normal_demand_interval_s: float = field(init=False, repr=False)
    # Per output, (energy, pulses) when its Kt last changed: edges fall every Kt of energy from there.
    _edge_origin: dict[str, tuple[float, int]] = field(init=False, repr=False)
    # registered_powers' last answer: (the Conditions, everything else it read, (P, Q)).
    _powers_kept: tuple[object, tuple[object, ...], tuple[float, float]] | None = field(default=None, init=False,
                                                                                       repr=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng([self.seed, self.position])
        self.release = release_for(self.firmware)
        self.test_outputs = dict(self.test_outputs) or {"Wh": self.kh_wh}
        self.output_energy = {output: 0.0 for output in self.test_outputs}
        self.output_pulses = {output: 0 for output in self.test_outputs}
        self._normal_outputs = dict(self.test_outputs)
        self._normal_demand_interval_s = self.demand.interval_s
        self._edge_origin = {output: (0.0, 0) for output in self.test_outputs}

    def set_test_mode(self, on: bool) -> None:
        """Enter or leave test mode (a meter without one ignores it): each output's Kt changes
        from this instant, and its next edge comes one new Kt of energy later."""
        if on == self.in_test_mode or not self.test_mode_outputs:
            return
        self.in_test_mode = on
        self.test_outputs = {**self._normal_outputs, **self.test_mode_outputs} if on else dict(self._normal_outputs)
        if self.test_mode_demand_interval_s is not None:
            self.demand.interval_s = self.test_mode_demand_interval_s if on else self._normal_demand_interval_s
            self.demand.reset()
        self._edge_origin = {output: (self.output_energy[output], self.output_pulses[output])
                             for output in self.test_outputs}

    @property
    def pulses(self) -> int:
        """Pulses the Wh test output has emitted so far."""
        return self.output_pulses.get("Wh", 0)

    @property
    def register_wh(self) -> float:
        """The energy register as the meter serves it: the accumulator less what reboots lost."""
        return self.energy_wh - self.register_lost_wh

    def reboot(self) -> None:
        """Restart the meter: the register reloads its last non-volatile save, while the metrology
        core (and so the pulse output) keeps counting; whoever serves its links drops them."""
        self.register_lost_wh = self.energy_wh - self.saved_register_wh
        for hook in self.restart_hooks:
            hook()

    def registered_powers(self, c: Conditions) -> tuple[float, float]:
        """(P, Q) the meter's metrology integrates, signed (received and leading negative). Below
        the starting current it registers only its creep; above it each element's power through
        that element's gain and phase displacement: V I (1 + gain) cos φ + V I (cos(φ - δ) - cos φ),
        which is V I cos φ (1 + error) without dividing by cos φ where it is zero.

        Worked out again only when ``c`` (the world keeps one object while the stimulus holds) or
        any of the meter's own inputs to it changed: the stimulus holds for most of a run's steps,
        and this was a third of the simulator's time per meter and step."""
        inputs = (self.starting_current_a, self.creep_w, self.curve, self.release, self.test_amperes,
                  self.nominal_voltage, self.nominal_frequency, self.element_offsets_pct, self.circuit_offsets_pct,
                  self.functional.ct_reversed)
        kept = self._powers_kept
        if kept is not None and kept[0] is c and kept[1] == inputs:
            return kept[2]
        powers = self._registered_powers(c)
        self._powers_kept = (c, inputs, powers)
        return powers

    def _registered_powers(self, c: Conditions) -> tuple[float, float]:
        if not c.energised:
            return 0.0, 0.0
        if c.current_a < self.starting_current_a:
            return self.creep_w, 0.0
        harmonic = c.element_harmonic_power_w()
        harmonic_gain = 1.0 + (self.curve.harmonic_gain_pct + self.release.harmonic_gain_pct) / 100.0
        p_total = q_total = 0.0
        for k, (volts, current, phi) in enumerate(c.element_polar):
            if current == 0:
                continue
            gain = self.curve.gain_pct(volts, current, c.frequency_hz, c.dc_pct, self.test_amperes,
                                       self.nominal_voltage, self.nominal_frequency)
            gain += self.element_offsets_pct[k] if k < len(self.element_offsets_pct) else 0.0
            delta = self.curve.phase_rad(volts, current, c.frequency_hz, self.test_amperes, self.nominal_voltage,
                                         self.nominal_frequency)
            circuits, vi = self._circuit_gain(c, k), volts * current
            active = vi * (math.cos(phi) * (1.0 + gain / 100.0) + math.cos(phi - delta) - math.cos(phi))
            reactive_gain = 1.0 + (gain + self.curve.reactive_offset_pct) / 100.0
            reactive = vi * (math.sin(phi) * reactive_gain + math.sin(phi - delta) - math.sin(phi))
            p_total += circuits * (active + harmonic[k] * (1.0 + gain / 100.0) * harmonic_gain)
            q_total += circuits * reactive
        if self.functional.ct_reversed:
            p_total, q_total = -p_total, -q_total  # it sees energy flowing back to the grid
        return p_total, q_total

    def registered_power_w(self, c: Conditions) -> float:
        """Delivered active power the meter registers (what its delivered register counts)."""
        return ACTIVE.of(*self.registered_powers(c))

    def registered(self, c: Conditions, quantity: Quantity) -> float:
        """What the meter registers of one quantity: a meter that registers no received active
        energy (detented) counts none of it; leading varh it counts either way."""
        if quantity.received and not quantity.reactive and not self.bidirectional:
            return 0.0
        return quantity.of(*self.registered_powers(c))

    def output_power(self, p: float, q: float, output: str) -> float:
        """What a test output pulses for, from the registered (P, Q): its kind of energy flowing
        either way (active energy flowing back only on a meter that registers it)."""
        if output == "varh":
            return abs(q)
        return abs(p) if self.bidirectional else max(p, 0.0)

    def _circuit_gain(self, c: Conditions, k: int) -> float:
        """How element ``k``'s circuits' own gains scale what it sees: the share-weighted mean of
        their gains over the current each carries (1 when every circuit carries none or is exact)."""
        if not self.circuit_offsets_pct or c.circuit_map is None or c.circuit_currents is None:
            return 1.0
        carried = c.circuit_map[k] * np.abs(c.circuit_currents)
        total = float(np.sum(carried))
        gains = 1.0 + np.asarray(self.circuit_offsets_pct, dtype=float) / 100.0
        return float(np.sum(carried * gains)) / total if total else 1.0

    def true_error_pct(self, c: Conditions, quantity: Quantity = ACTIVE) -> float:
        """Ground truth: registered over true power of the quantity, minus one, in percent (0 with none)."""
        true_power = quantity.of(c.active_power_w, c.reactive_power_var)
        return (self.registered(c, quantity) / true_power - 1.0) * 100.0 if true_power > 0 else 0.0

    def clock_s(self, world_time_s: float) -> float:
        """The meter's real-time clock at a moment of the world's time."""
        return world_time_s + self.clock_offset_s

    def _record_intervals(self, t0: float, dt: float, power: float) -> None:
        """Close a load-profile record at every 15-minute boundary of the meter's clock."""
        f, t, end = self.functional, self.clock_s(t0), self.clock_s(t0 + dt)
        while (boundary := (int(t / INTERVAL_S + 1e-9) + 1) * INTERVAL_S) <= end + 1e-9:
            f.open_interval_wh += power * (boundary - t) / 3600.0
            f.intervals_closed += 1
            nth = self.release.drops_every_nth_interval
            if not (nth and f.intervals_closed % nth == 0):
                f.intervals_wh.append(f.open_interval_wh * f.interval_record_gain)
            f.open_interval_wh, t = 0.0, boundary
        f.open_interval_wh += power * (end - t) / 3600.0

    def _save_register(self, t0: float, dt: float, power: float) -> None:
        """Keep the register's value at the last save boundary crossed in (t0, t0 + dt]."""
        boundary = math.floor((t0 + dt) / NV_SAVE_INTERVAL_S + 1e-9) * NV_SAVE_INTERVAL_S
        if boundary > t0 + 1e-9:
            self.saved_register_wh = self.register_wh + power * (boundary - t0) / 3600.0

    def write(self, name: str, value: float | int | str) -> None:
        """A write over the meter's comms: key rotation, mesh ping, interval selection, tamper clear,
        demand reset, test mode."""
        f = self.functional
        if name == "key":
            f.key_status = 2 if f.rejects_keys else 1
            f.key_fingerprint = "" if f.rejects_keys else hashlib.sha256(str(value).encode()).hexdigest()[:16]
        elif name == "ping_count":
            f.ping_received = int(value) - round(int(value) * f.ping_loss)
        elif name == "interval_select":
            f.interval_select = int(value)
        elif name == "tamper_clear" and int(value) == 1:
            f.tamper = False
        elif name == "demand_reset" and int(value) == 1:
            self.demand.reset()
        elif name == "test_mode":
            self.set_test_mode(int(value) == 1)

    def alarm(self) -> str:
        """The most severe active code, as the meter's alarm register shows it."""
        f = self.functional
        for active, code in ((f.checksum_fault, "E0001"), (f.firmware_conflict, "F505"),
                             (f.rejects_keys and f.key_status == 2, "E004"),
                             (f.phase_rotation != "ABC", "CAW"), (f.voltage_reading_gain < 0.9, "E101"),
                             (f.tamper, "TAMPER"), (f.rssi_dbm < -120 or f.snr_db < 10, "W202")):
            if active:
                return code
        return self.alarm_code

    def advance(self, t0: float, dt: float, c: Conditions) -> dict[str, np.ndarray]:
        """Integrate ``dt`` seconds from time ``t0``; return each test output's pulse edge times.

        Each edge is where the output's energy crosses a multiple of its Kt, moved by the output's
        timing jitter (drawn in edge order, so results do not depend on how time is stepped).
        """
        p, q = self.registered_powers(c)
        power = max(p, 0.0)
        self._save_register(t0, dt, power)
        self.energy_wh += power * dt / 3600.0
        if self.bidirectional:
            self.received_wh += max(-p, 0.0) * dt / 3600.0
        self.varh += max(q, 0.0) * dt / 3600.0
        self.received_varh += max(-q, 0.0) * dt / 3600.0
        self._record_intervals(t0, dt, power)
        self.demand.advance(dt, power)
        shown_voltage = c.voltage_v * self.functional.voltage_reading_gain
        if self.release.buffers_alarms and 0 < shown_voltage < 0.9 * self.nominal_voltage:
            if "E101" not in self.functional.daily_alarms:
                self.functional.daily_alarms.append("E101")  # undervoltage: non-critical, into the daily payload
        # The registered powers once per step, not once more per output: most of the simulator's cost per position.
        return {output: self._pulse(output, t0, dt, self.output_power(p, q, output)) for output in self.test_outputs}

    def _pulse(self, output: str, t0: float, dt: float, power: float) -> np.ndarray:
        """The step's new edges at once: edge k falls where the energy reaches origin + k Kt, each
        computed by the very formula a pulse-by-pulse loop would use, and the jitter drawn as one
        array (a Generator gives the same values as one draw per edge: tests/test_sim_pulses.py)."""
        kt, start_energy = self.test_outputs[output], self.output_energy[output]
        origin_wh, origin_pulses = self._edge_origin[output]
        energy = self.output_energy[output] = start_energy + power * dt / 3600.0
        done = self.output_pulses[output] - origin_pulses
        n = new_pulses(origin_wh, kt, done, energy)
        if not n:
            return _NO_EDGES
        self.output_pulses[output] += n
        edge_wh = origin_wh + np.arange(done + 1, done + n + 1) * kt
        crossing = t0 + (edge_wh - start_energy) * 3600.0 / power
        return crossing + self._rng.normal(0.0, self.pulse_jitter_s, size=n)

    def true_demand_error_pct(self, c: Conditions) -> float:
        """Ground truth for a closed interval's demand under steady conditions: registered power
        over the demand timer's rate, against true power, minus one, in percent (0 with no power)."""
        true_power = c.active_power_w
        return (self.registered_power_w(c) / self.demand.rate / true_power - 1.0) * 100.0 if true_power > 0 else 0.0


def new_pulses(origin_wh: float, kt: float, done: int, energy_wh: float) -> int:
    """How many more edges, after ``done``, have origin + k Kt <= the energy: an estimate by
    division, settled by the comparison itself, so the count is the one a loop testing each k
    finds (origin + k Kt rounds monotonically in k, so the edges passed are a prefix)."""
    n = max(math.floor((energy_wh - origin_wh) / kt) - done, 0)
    while n and origin_wh + (done + n) * kt > energy_wh:
        n -= 1
    while origin_wh + (done + n + 1) * kt <= energy_wh:
        n += 1
    return n
