"""One test point on the whole board: apply the stimulus once, gate every position at once.

Per position: reference pulses counted between MUT edges give the error by pulses; the meter's
energy register, read before and after against the reference's energy register, gives the error
the meter reports over its comms (the payload). Both carry their budgets.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from bench.metrology.conditions import ReferenceConditions
from bench.metrology.forms import forms
from bench.metrology.harmonics import HarmonicProfile
from bench.metrology.quantities import ACTIVE, QUANTITIES, Quantity
from bench.metrology.stimulus import Stimulus
from bench.metrology.uncertainty import (
    BenchSpec,
    Budget,
    Component,
    DwellPlan,
    Rule,
    Verdict,
    decide,
    energy_error_pct,
    fixed_components,
    gated_budget,
    gated_error_pct,
    plan_dwell,
)
from bench.operator.events import GATE
from bench.procedures.results import (
    FaultResult,
    Measured,
    PositionResult,
    PulseConstants,
    RegisterEvidence,
)
from bench.station.bench import Bench
from bench.station.profile import MeterType, Position
from instruments.pulse_counter import GateResult, GateState
from instruments.reference_standard import Readings

Progress = Callable[[str, str, float, float], None]  # (point, what is happening, elapsed s, expected s)


@dataclass(frozen=True)
class Load:
    """What a point applies, as data; resolved into a Stimulus against the meter type."""

    power_factor: float = 1.0
    leading: bool = False
    voltage_pct: float = 100.0  # of nominal
    frequency_pct: float = 100.0  # of nominal
    power_w: float | None = None  # a total power (payload check) ...
    current_fraction: float | None = None  # ... or a fraction of TA or Imax per element
    current_of: str = "TA"
    weights: tuple[float, ...] | None = None  # per-circuit current (unbalance, one element or circuit alone)
    harmonics: HarmonicProfile | None = None
    voltage_weights: tuple[float, ...] | None = None  # per-element voltage (voltage unbalance)
    reversed_sequence: bool = False  # the form's voltage angles mirrored: phase sequence reversed
    quantity: str = ACTIVE.name  # what the point measures (bench/metrology/quantities.py)

    def stimulus(self, mt: MeterType) -> Stimulus:
        form = forms()[mt.form]
        voltage = mt.nominal_voltage_v * self.voltage_pct / 100.0
        frequency = mt.frequency_hz * self.frequency_pct / 100.0
        if self.power_w is not None:
            return Stimulus.at_power(self.power_w, voltage, self.power_factor, frequency, mt.elements, self.leading,
                                     form.circuit_map)
        base = mt.test_amperes if self.current_of == "TA" else mt.max_current_a
        angle = QUANTITIES[self.quantity].angle_deg(self.power_factor, self.leading)
        angles = tuple(-a % 360 for a in form.voltage_angles_deg) if self.reversed_sequence else None
        return Stimulus(voltage, base * (self.current_fraction or 0.0), angle, frequency, mt.elements,
                        self.weights, self.harmonics, self.voltage_weights, angles, circuit_map=form.circuit_map)


@dataclass(frozen=True)
class DwellRules:
    settle_s: float  # after each stimulus change, before anything counts
    min_pulses: int
    min_dwell_s: float
    target_u_pct: float  # expanded (k=2) uncertainty the planner aims for
    min_dwell_test_mode_s: float | None = None  # the floor while the meters are in test mode; None: min_dwell_s

    def floor_s(self, test_mode: bool) -> float:
        """The shortest gate with the output in force: a table may set its own floor for the
        meters' test mode, whose pulses the budget's edge-timing term already covers."""
        if test_mode and self.min_dwell_test_mode_s is not None:
            return self.min_dwell_test_mode_s
        return self.min_dwell_s


@dataclass(frozen=True)
class AccuracyPoint:
    """A point whose registration error is measured by gating and judged against a limit."""

    id: str
    name: str
    family: str
    load: Load
    limit_pct: float
    dwell: DwellRules
    rule: Rule
    conditions: ReferenceConditions
    shift_from: str | None = None  # judge the shift of error from this point, not the error
    register_counts: bool = False  # the energy register's error is part of the verdict

    def stimulus(self, bench: Bench) -> Stimulus:
        return self.load.stimulus(bench.profile.meter_type)

    @property
    def quantity(self) -> Quantity:
        return QUANTITIES[self.load.quantity]


@dataclass(frozen=True)
class _Snapshot:
    """Each meter's energy register, and the reference's energy at the moment it was read. A meter
    whose comms failed is missing, with the cause: it spoils that position's point only."""

    meter_wh: dict[int, float]
    reference_wh: dict[int, float]
    skew_s: dict[int, float]  # half-width of the uncertainty in when each pair was read
    failed: dict[int, str]


def settle_at_conditions(bench: Bench, stimulus: Stimulus, conditions: ReferenceConditions,
                         settle_s: float, tries: int = 3) -> tuple[Readings, list[str]]:
    """Apply, settle, and read until the board is at the point's conditions (or give up). A board
    already at this stimulus (the point before had the same) has settled: it is read at once."""
    settled = bench.stimulus == stimulus
    if not settled:
        bench.apply(stimulus)
    for attempt in range(tries):
        if attempt or not settled:
            bench.wait(settle_s, f"settling at {stimulus.describe()}")
        readings = bench.readings()
        deviations = conditions.deviations(stimulus, readings)
        if not deviations:
            break
    return readings, deviations


def measure_point(bench: Bench, point: AccuracyPoint, progress: Progress | None = None,
                  poll_s: float = 5.0) -> dict[int, PositionResult | FaultResult]:
    """Energise, settle, gate every position, and evaluate; any failure ends in safe state."""
    stimulus = point.stimulus(bench)
    try:
        readings, deviations = settle_at_conditions(bench, stimulus, point.conditions, point.dwell.settle_s)
        if deviations:
            note = "not at reference conditions: " + "; ".join(deviations)
            return {pos.number: PositionResult(point.id, point.name, pos, stimulus, readings, point.limit_pct,
                                               point.rule, note=note, counted=False)
                    for pos in bench.profile.positions}
        # Plan the dwell for the fastest meter that can still pass, so every passing meter's gate
        # lasts at least the minimum dwell.
        rules, quantity = point.dwell, point.quantity
        spec = bench.gate_on(quantity)
        plan = plan_dwell(spec, _measured_power(readings, quantity) * (1 + point.limit_pct / 100.0),
                          _kt(bench, quantity), power_factor=quantity.factor(stimulus.phase_deg),
                          target_u_pct=rules.target_u_pct, min_pulses=rules.min_pulses,
                          min_dwell_s=rules.floor_s(bench.outputs.test_mode),
                          reactive=quantity.reactive)
        start = _snapshot(bench, quantity)
        armed_at = bench.clock.now()
        bench.counter.arm_each([pos.channels[quantity.output] for pos in bench.profile.positions], plan.mut_pulses)
        states = _wait_for_gates(bench, point, plan, _measured_power(readings, quantity), progress, poll_s)
        window_s = bench.clock.now() - armed_at  # resolves the counter's timestamp wrap-around
        end = _snapshot(bench, quantity)
        done = [pos for pos in bench.profile.positions if states[pos.number].state == "DONE"]
        gates = dict(zip((pos.number for pos in done),
                         bench.counter.results([pos.channels[quantity.output] for pos in done], window_s)))
        results = {pos.number: _position_result(bench, spec, point, stimulus, readings, plan, states[pos.number],
                                                gates.get(pos.number), pos, start, end)
                   for pos in bench.profile.positions}
        return {**results, **out_of_test_mode_faults(bench, point.id, point.name, "gate")}
    except BaseException:
        bench.safe_state()
        raise


def out_of_test_mode_faults(bench: Bench, point_id: str, name: str, when: str) -> dict[int, FaultResult]:
    """A fault for each position whose meter is not in the test mode in force after the ``when``
    (gate, count): it pulsed at its normal Kt, not the one its result would be computed with (a
    creeping meter would pass; a sound one would read 90 % low)."""
    dropped = bench.out_of_test_mode()
    return {pos.number: FaultResult(point_id, name, pos, f"after the {when}: {dropped[pos.number]}")
            for pos in bench.profile.positions if pos.number in dropped}


def _kt(bench: Bench, quantity: Quantity) -> float:
    """The Kt in force of the test output that pulses for the quantity: what its gate counts with."""
    return bench.outputs.kt[quantity.output]


def _measured_power(readings: Readings, quantity: Quantity) -> float:
    """How fast the quantity's energy flows as the reference read it (W, or var)."""
    if quantity.reactive:
        return abs(readings.reactive_power_var or 0.0)
    return abs(readings.power_w)


def _snapshot(bench: Bench, quantity: Quantity = ACTIVE) -> _Snapshot:
    """Meters are read while energy keeps flowing (all at once where the transport allows, else one
    after another), so the reference energy is read before and after them and interpolated to each
    meter's own read time (power is constant). Reads are timed on the read clock where they happen;
    the bench clock, read once on each side, turns those times into bench seconds for the skew
    (the stepped simulator's clock stands still while reading: no skew)."""
    reads, now = bench.meter_reads, bench.meter_reads.now
    r_start, b_start = now(), bench.clock.now()
    t_a, e_a, w_a = _read_timed(now, lambda: bench.reference_energy(quantity))
    board = reads.read(quantity.register)
    t_b, e_b, w_b = _read_timed(now, lambda: bench.reference_energy(quantity))
    b_end, r_end = bench.clock.now(), now()
    rate = (e_b - e_a) / (t_b - t_a) if t_b > t_a else 0.0
    bench_s = (b_end - b_start) / (r_end - r_start) if r_end > r_start else 0.0  # bench seconds per read-clock second
    return _Snapshot(
        meter_wh={n: float(read.value) for n, read in board.reads.items()},
        reference_wh={n: e_a + rate * (read.midpoint - t_a) for n, read in board.reads.items()},
        skew_s={n: (read.half_width + max(w_a, w_b)) * bench_s for n, read in board.reads.items()},
        failed=board.failed,
    )


def _read_timed(now: Callable[[], float], read: Callable[[], float]) -> tuple[float, float, float]:
    """(midpoint time, value, half-width of the read window) on the read clock ``now``."""
    t0 = now()
    value = read()
    t1 = now()
    return (t0 + t1) / 2, value, (t1 - t0) / 2


def _wait_for_gates(bench: Bench, point: AccuracyPoint, plan: DwellPlan, power_w: float,
                    progress: Progress | None, poll_s: float) -> dict[int, GateState]:
    """Wait on the bench clock until every position's gate is done, or a generous timeout has
    passed; each position's gate state, by position number."""
    output, name = point.quantity.output, point.name
    period = _kt(bench, point.quantity) * 3600.0 / power_w
    expected = plan.expected_s + period  # the gate opens on the first edge after arming
    timeout = 1.5 * expected + 2 * period
    started = bench.clock.now()
    while True:
        elapsed = bench.clock.now() - started
        remaining = expected - elapsed
        bench.wait(min(poll_s, remaining) if remaining > period / 4 else period / 2, name)
        elapsed = bench.clock.now() - started
        channels = bench.counter.states()
        states = {pos.number: channels[pos.channels[output] - 1] for pos in bench.profile.positions}
        bench.events.emit(GATE, point=point.id, name=name, needed=plan.mut_pulses, elapsed_s=elapsed,
                          expected_s=expected, positions={n: s.mut_pulses for n, s in states.items()})
        if progress:
            gated = min(s.mut_pulses for s in states.values())
            progress(name, f"slowest position {gated} of {plan.mut_pulses} pulses gated", elapsed, expected)
        if all(s.state == "DONE" for s in states.values()) or elapsed >= timeout:
            if elapsed >= timeout:
                bench.counter.abort()
            return states


def _position_result(bench: Bench, spec: BenchSpec, point: AccuracyPoint, stimulus: Stimulus, conditions: Readings,
                     plan: DwellPlan, state: GateState, gate: GateResult | None, pos: Position, start: _Snapshot,
                     end: _Snapshot) -> PositionResult | FaultResult:
    """One position's result from its gate's evidence (None: the gate did not finish) and its registers."""
    quantity = point.quantity
    kt, channel = _kt(bench, quantity), pos.channels[quantity.output]
    factor = quantity.factor(stimulus.phase_deg)
    pulses, note = None, ""
    if gate is not None:
        irregular = gate.irregularity()
        if irregular:  # a missed or spurious pulse: the count is not the meter's, measure again
            return FaultResult(point.id, point.name, pos, f"counter channel {channel}: {irregular}")
        error = gated_error_pct(gate.mut_pulses, kt, gate.ref_pulses, spec.reference_constant_wh)
        budget = gated_budget(spec, gate.ref_pulses, gate.gate_time_s, factor, quantity.reactive)
        verdict = decide(error, budget.expanded_pct, point.limit_pct, point.rule)
        floor_s = point.dwell.floor_s(bench.outputs.test_mode)
        if gate.gate_time_s < floor_s and verdict is Verdict.PASS:
            verdict = Verdict.INDETERMINATE
            note = f"gate lasted {gate.gate_time_s:.1f} s, less than the plan's {floor_s:g} s"
        pulses = Measured(error, budget, verdict)
    else:
        note = (f"gate incomplete: {state.mut_pulses} of {plan.mut_pulses} MUT pulses, gate {state.state.lower()} "
                f"after the timeout (meter not pulsing, or scanning head not seeing it)")
    n = pos.number
    implausible = _register_fault(start, end, n)
    if implausible:
        return FaultResult(point.id, point.name, pos, implausible)
    evidence = RegisterEvidence(end.meter_wh[n] - start.meter_wh[n], end.reference_wh[n] - start.reference_wh[n],
                                math.hypot(start.skew_s[n], end.skew_s[n]), start.meter_wh[n], end.meter_wh[n],
                                bench.profile.meter_type.registers[quantity.register].resolution(end.meter_wh[n]))
    register_check = _register_check(bench, spec, point, evidence, end.meter_wh[n],
                                     _measured_power(conditions, quantity), factor)
    return PositionResult(point.id, point.name, pos, stimulus, conditions, point.limit_pct, point.rule, gate, pulses,
                          evidence, register_check, point.register_counts, note,
                          constants=PulseConstants(kt, spec.reference_constant_wh, bench.outputs.test_mode),
                          quantity=quantity.name)


MAX_REGISTER_RATIO = 10.0  # no meter registers ten times the energy it was given: the reading is wrong


def _register_fault(start: _Snapshot, end: _Snapshot, n: int) -> str:
    """Why this position's energy register evidence is not a measurement at all, or ''."""
    if n in start.failed or n in end.failed:
        return f"energy register not read: {start.failed.get(n) or end.failed.get(n)}"
    delta, reference = end.meter_wh[n] - start.meter_wh[n], end.reference_wh[n] - start.reference_wh[n]
    if delta < 0:
        return f"energy register went backwards by {-delta:.4g} Wh during the point (meter restarted?)"
    if delta > MAX_REGISTER_RATIO * reference + 1.0:
        return (f"energy register advanced {delta:.4g} Wh while the reference measured {reference:.4g} Wh "
                f"(wrong byte order or scale in the register map?)")
    return ""


def _register_check(bench: Bench, spec: BenchSpec, point: AccuracyPoint, evidence: RegisterEvidence, end_wh: float,
                    power_w: float, power_factor: float) -> Measured:
    quantity = point.quantity
    resolution_wh = bench.profile.meter_type.registers[quantity.register].resolution(end_wh)
    error = energy_error_pct(evidence.meter_wh, evidence.reference_wh)
    budget = Budget(tuple(fixed_components(spec, power_factor, quantity.reactive)) + (
        Component("register resolution", 100.0 * resolution_wh / math.sqrt(6) / evidence.reference_wh,
                  f"two readings of a {resolution_wh:g} {quantity.unit} register, rectangular"),
        Component("read timing", 100.0 * power_w * evidence.skew_s / 3600.0 / math.sqrt(3) / evidence.reference_wh,
                  f"±{evidence.skew_s * 1e3:.3g} ms in when meter and reference were read, rectangular"),
    ))
    return Measured(error, budget, decide(error, budget.expanded_pct, point.limit_pct, point.rule))
