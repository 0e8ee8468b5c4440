"""One test point on the whole board: apply the stimulus once, gate every position at once.

Per position: reference pulses counted between MUT edges give the error by pulses; the meter's
energy register, read before and after against the reference's energy register, gives the error
the meter reports over its comms (the payload). Both carry their budgets.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from bench.bench import Bench, SafetyError
from bench.metrology import (Budget, Component, DwellPlan, Rule, Verdict, decide, energy_error_pct,
                             fixed_components, gated_budget, gated_error_pct, plan_dwell)
from bench.profile import Position
from bench.results import Measured, PositionResult, RegisterEvidence
from bench.stimulus import Stimulus
from instruments.pulse_counter import GateState
from instruments.reference_standard import Readings

Progress = Callable[[str, list[GateState], float, float], None]


@dataclass(frozen=True)
class TestPoint:
    """A test point as data; the stimulus is resolved against the meter type on the bench."""

    name: str
    power_w: float
    power_factor: float
    voltage_pct: float  # of the meter's nominal voltage
    limit_pct: float
    settle_s: float
    min_pulses: int
    min_dwell_s: float
    target_u_pct: float
    rule: Rule
    leading: bool = False

    def stimulus(self, bench: Bench) -> Stimulus:
        mt = bench.profile.meter_type
        return Stimulus.at_power(self.power_w, mt.nominal_voltage_v * self.voltage_pct / 100.0,
                                 self.power_factor, mt.frequency_hz, mt.elements, self.leading)


@dataclass(frozen=True)
class _Snapshot:
    """Each meter's energy register, and the reference's energy at the moment it was read."""

    meter_wh: dict[int, float]
    reference_wh: dict[int, float]
    skew_s: dict[int, float]  # half-width of the uncertainty in when each pair was read


def measure_point(bench: Bench, point: TestPoint, progress: Progress | None = None,
                  poll_s: float = 5.0) -> dict[int, PositionResult]:
    """Energise, settle, gate every position, and evaluate; any failure ends in safe state."""
    stimulus = point.stimulus(bench)
    try:
        bench.apply(stimulus)
        bench.clock.sleep(point.settle_s)
        conditions = bench.reference.readings()
        # Plan the dwell for the fastest meter that can still pass, so every passing meter's gate
        # lasts at least the minimum dwell.
        plan = plan_dwell(bench.spec, conditions.power_w * (1 + point.limit_pct / 100.0),
                          bench.profile.meter_type.kh_wh, target_u_pct=point.target_u_pct,
                          min_pulses=point.min_pulses, min_dwell_s=point.min_dwell_s)
        start = _snapshot(bench)
        for pos in bench.profile.positions:
            bench.counter.arm(pos.number, plan.mut_pulses)
        states = _wait_for_gates(bench, point.name, plan, conditions.power_w, progress, poll_s)
        end = _snapshot(bench)
        return {pos.number: _position_result(bench, point, stimulus, conditions, plan, states[pos.number - 1],
                                             pos, start, end)
                for pos in bench.profile.positions}
    except BaseException:
        bench.safe_state()
        raise


def _timed(bench: Bench, read: Callable[[], float]) -> tuple[float, float, float]:
    """(midpoint time, value, half-width of the read window) on the bench clock."""
    t0 = bench.clock.now()
    value = read()
    t1 = bench.clock.now()
    return (t0 + t1) / 2, value, (t1 - t0) / 2


def _snapshot(bench: Bench) -> _Snapshot:
    """Meters are read one after another while energy keeps flowing, so the reference energy is
    read before and after them and interpolated to each meter's own read time (power is constant)."""
    t_a, e_a, w_a = _timed(bench, lambda: bench.reference.energy)
    reads = {n: _timed(bench, meter.energy_wh) for n, meter in bench.meters.items()}
    t_b, e_b, w_b = _timed(bench, lambda: bench.reference.energy)
    rate = (e_b - e_a) / (t_b - t_a) if t_b > t_a else 0.0
    return _Snapshot(
        meter_wh={n: value for n, (_, value, _) in reads.items()},
        reference_wh={n: e_a + rate * (t - t_a) for n, (t, _, _) in reads.items()},
        skew_s={n: width + max(w_a, w_b) for n, (_, _, width) in reads.items()},
    )


def _wait_for_gates(bench: Bench, name: str, plan: DwellPlan, power_w: float, progress: Progress | None,
                    poll_s: float) -> list[GateState]:
    """Wait on the bench clock until every gate is done, or a generous timeout has passed."""
    period = bench.profile.meter_type.kh_wh * 3600.0 / power_w
    expected = plan.expected_s + period  # the gate opens on the first edge after arming
    timeout = 1.5 * expected + 2 * period
    started = bench.clock.now()
    while True:
        elapsed = bench.clock.now() - started
        remaining = expected - elapsed
        bench.clock.sleep(min(poll_s, remaining) if remaining > period / 4 else period / 2)
        elapsed = bench.clock.now() - started
        states = bench.counter.states()
        if bench.profile.interlock == "counter" and not bench.counter.interlock_closed():
            raise SafetyError(f"interlock opened during '{name}' (counter @ {bench.counter.address})")
        if progress:
            progress(name, states, elapsed, expected)
        if all(s.state == "DONE" for s in states[: len(bench.profile.positions)]) or elapsed >= timeout:
            if elapsed >= timeout:
                bench.counter.abort()
            return states


def _position_result(bench: Bench, point: TestPoint, stimulus: Stimulus, conditions: Readings, plan: DwellPlan,
                     state: GateState, pos: Position, start: _Snapshot, end: _Snapshot) -> PositionResult:
    kh = bench.profile.meter_type.kh_wh
    gate, pulses, note = None, None, ""
    if state.state == "DONE":
        gate = bench.counter.result(pos.number)
        error = gated_error_pct(gate.mut_pulses, kh, gate.ref_pulses, bench.spec.reference_constant_wh)
        budget = gated_budget(bench.spec, gate.ref_pulses, gate.gate_time_s)
        verdict = decide(error, budget.expanded_pct, point.limit_pct, point.rule)
        if gate.gate_time_s < point.min_dwell_s and verdict is Verdict.PASS:
            verdict = Verdict.INDETERMINATE
            note = f"gate lasted {gate.gate_time_s:.1f} s, less than the plan's {point.min_dwell_s:g} s"
        pulses = Measured(error, budget, verdict)
    else:
        note = (f"gate incomplete: {state.mut_pulses} of {plan.mut_pulses} MUT pulses, gate {state.state.lower()} "
                f"after the timeout (meter not pulsing, or scanning head not seeing it)")
    n = pos.number
    evidence = RegisterEvidence(end.meter_wh[n] - start.meter_wh[n], end.reference_wh[n] - start.reference_wh[n],
                                math.hypot(start.skew_s[n], end.skew_s[n]))
    register_check = _register_check(bench, point, evidence, end.meter_wh[n], conditions.power_w)
    return PositionResult(point.name, pos, stimulus, conditions, point.limit_pct, point.rule, gate, pulses,
                          evidence, register_check, note)


def _register_check(bench: Bench, point: TestPoint, evidence: RegisterEvidence, end_wh: float,
                    power_w: float) -> Measured:
    resolution_wh = bench.profile.meter_type.registers["energy_wh"].resolution(end_wh)
    error = energy_error_pct(evidence.meter_wh, evidence.reference_wh)
    budget = Budget(tuple(fixed_components(bench.spec)) + (
        Component("register resolution", 100.0 * resolution_wh / math.sqrt(6) / evidence.reference_wh,
                  f"two readings of a {resolution_wh:g} Wh register, rectangular"),
        Component("read timing", 100.0 * power_w * evidence.skew_s / 3600.0 / math.sqrt(3) / evidence.reference_wh,
                  f"±{evidence.skew_s * 1e3:.3g} ms in when meter and reference were read, rectangular"),
    ))
    return Measured(error, budget, decide(error, budget.expanded_pct, point.limit_pct, point.rule))
