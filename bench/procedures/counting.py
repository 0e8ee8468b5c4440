"""Points judged by counting test-output pulses over a period: no-load creep and starting load."""
from __future__ import annotations

import math
from dataclasses import dataclass

from bench.metrology.conditions import ReferenceConditions
from bench.metrology.forms import forms
from bench.metrology.stimulus import Stimulus
from bench.procedures.gating import Load, Progress, out_of_test_mode_faults, settle_at_conditions
from bench.procedures.results import CountResult, FaultResult
from bench.station.bench import Bench
from bench.station.profile import MeterType


@dataclass(frozen=True)
class CreepPoint:
    """Voltage above nominal, no current: at most ``max_pulses`` in the period."""

    id: str
    name: str
    family: str
    voltage_pct: float
    max_pulses: int
    period_constant: float  # C in: period >= C / (k m Un Imax) minutes, k in imp/kWh, m elements
    settle_s: float
    conditions: ReferenceConditions

    def period_s(self, mt: MeterType, kt_wh: float) -> float:
        """``kt_wh``: the Kt in force of the Wh test output the pulses are counted on (a test mode's
        smaller Kt shortens the period in proportion: the period is a fixed energy)."""
        impulses_per_kwh = 1000.0 / kt_wh  # k
        minutes = self.period_constant / (impulses_per_kwh * mt.elements * mt.nominal_voltage_v * mt.max_current_a)
        return minutes * 60.0

    def stimulus(self, mt: MeterType) -> Stimulus:
        return Stimulus(mt.nominal_voltage_v * self.voltage_pct / 100.0, 0.0, 0.0, mt.frequency_hz, mt.elements,
                        circuit_map=forms()[mt.form].circuit_map)


@dataclass(frozen=True)
class StartingPoint:
    """The starting current: the meter must start and keep registering, ``min_pulses`` within
    ``time_factor`` times the time those pulses take at the starting power."""

    id: str
    name: str
    family: str
    load: Load
    min_pulses: int
    time_factor: float
    settle_s: float
    conditions: ReferenceConditions

    def stimulus(self, mt: MeterType) -> Stimulus:
        return self.load.stimulus(mt)

    def period_s(self, mt: MeterType, kt_wh: float) -> float:
        """``kt_wh``: the Kt in force of the Wh test output: min_pulses x Kt is the energy to register."""
        return self.time_factor * self.min_pulses * kt_wh * 3600.0 / self.stimulus(mt).power_w


def count_pulses(bench: Bench, point: CreepPoint | StartingPoint, progress: Progress | None = None,
                 poll_s: float = 5.0) -> dict[int, CountResult | FaultResult]:
    """Apply, settle at reference conditions, count every position's MUT edges over the period."""
    mt, kt = bench.profile.meter_type, bench.outputs.kt["Wh"]
    stimulus, period = point.stimulus(mt), point.period_s(mt, kt)
    if not (math.isfinite(period) and period > 0):  # "0 pulses in nan s" must never read as a pass
        raise ValueError(f"{point.id}: counting period {period!r} s is not a positive finite time")
    if isinstance(point, CreepPoint):
        limit, judge = f"at most {point.max_pulses} pulse(s)", lambda n: n <= point.max_pulses
    else:
        limit, judge = f"at least {point.min_pulses} pulses", lambda n: n >= point.min_pulses
    positions = bench.profile.positions
    try:
        readings, deviations = settle_at_conditions(bench, stimulus, point.conditions, point.settle_s)
        if deviations:
            note = "not at reference conditions: " + "; ".join(deviations)
            return {p.number: CountResult(point.id, point.name, p, stimulus, readings, 0.0, 0, limit, False, note,
                                          counted=False, kt=kt, test_mode=bench.outputs.test_mode)
                    for p in positions}
        channels = [p.channels["Wh"] for p in positions]
        before = bench.counter.mut_counts(channels)
        waited = 0.0
        while waited < period:
            step = min(poll_s, period - waited)
            bench.wait(step, point.name)
            waited += step
            if progress:
                progress(point.name, "counting test-output pulses", waited, period)
        counts = {p.number: after - earlier
                  for p, after, earlier in zip(positions, bench.counter.mut_counts(channels), before)}
        faults = out_of_test_mode_faults(bench, point.id, point.name, "count")
    except BaseException:
        bench.safe_state()
        raise
    results = {p.number: CountResult(point.id, point.name, p, stimulus, readings, period, counts[p.number], limit,
                                     judge(counts[p.number]), kt=kt, test_mode=bench.outputs.test_mode)
               for p in positions}
    return {**results, **faults}
