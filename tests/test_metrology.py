"""The metrology math: gated error, budgets, dwell planner and decision rules."""
import math

import numpy as np
import pytest

from bench.metrology.uncertainty import (
    BenchSpec,
    CertifiedUncertainty,
    PlanError,
    Rule,
    Verdict,
    decide,
    energy_error_pct,
    gated_budget,
    gated_error_pct,
    plan_dwell,
)

CERTIFICATE = CertifiedUncertainty(((1.0, 0.01), (0.5, 0.015)))
SPEC = BenchSpec(reference_u=CERTIFICATE, reference_constant_wh=1e-5, counter_timing_s=1e-7,
                 mut_jitter_s=5e-5, source_stability_pct=0.005)


def test_gated_error_is_meter_energy_against_reference_energy():
    # 100 pulses of 1 Wh = 100 Wh against 9,990,000 x 10 µWh = 99.9 Wh: the meter is fast by 0.1/99.9.
    assert gated_error_pct(100, 1.0, 9_990_000, 1e-5) == pytest.approx(100 * 0.1 / 99.9, rel=1e-12)
    assert gated_error_pct(100, 1.0, 10_000_000, 1e-5) == pytest.approx(0.0, abs=1e-12)


def test_gated_error_needs_pulses():
    with pytest.raises(ValueError):
        gated_error_pct(0, 1.0, 1000, 1e-5)


def test_energy_error():
    assert energy_error_pct(100.2, 100.0) == pytest.approx(0.2)


def test_budget_combines_in_quadrature_and_expands_with_k2():
    budget = gated_budget(SPEC, ref_pulses=8_333_333, gate_time_s=300.0, power_factor=1.0)
    by_name = {c.name: c.u_pct for c in budget.components}
    assert by_name["reference standard"] == pytest.approx(0.005)
    assert by_name["source stability"] == pytest.approx(0.005 / math.sqrt(3))
    assert by_name["reference quantization"] == pytest.approx(100 / (8_333_333 * math.sqrt(3)))
    assert by_name["edge timing"] == pytest.approx(100 * math.sqrt(2) * math.hypot(1e-7, 5e-5) / 300)
    assert budget.expanded_pct == pytest.approx(2 * math.sqrt(sum(u * u for u in by_name.values())))


@pytest.mark.parametrize("fraction", [0.05, 0.37, 0.5, 0.81])
def test_quantization_term_bounds_counting_a_pulse_train_between_random_edges(fraction):
    """Count reference pulses in a gate of fixed length opened at a random phase of the pulse
    train; the spread of the count error must never exceed the budget's quantization term."""
    rng = np.random.default_rng(7)
    true_count = 1234 + fraction  # reference periods of energy actually inside the gate
    start = rng.uniform(0, 1, 200_000)  # phase of the reference train at the opening edge
    counted = np.floor(start + true_count) - np.floor(start)
    spread_pct = 100 * np.std(counted - true_count) / true_count
    term = {c.name: c.u_pct for c in gated_budget(SPEC, true_count, 300.0, 1.0).components}["reference quantization"]
    assert spread_pct == pytest.approx(100 * math.sqrt(fraction * (1 - fraction)) / true_count, rel=0.02)
    assert spread_pct <= term


def test_quantization_dominates_a_short_gate_with_a_coarse_reference():
    coarse = BenchSpec(CERTIFICATE, 1e-2, 1e-7, 5e-5, 0.005)  # 10 mWh per reference pulse
    short = gated_budget(coarse, ref_pulses=100, gate_time_s=0.36, power_factor=1.0)
    assert max(short.components, key=lambda c: c.u_pct).name == "reference quantization"


def test_planner_meets_the_target_with_the_fewest_pulses():
    target = 0.0116  # just above the floor the reference and source set (0.01155 %): needs a few pulses
    plan = plan_dwell(SPEC, 1000.0, 1.0, power_factor=1.0, target_u_pct=target, min_pulses=1, min_dwell_s=0)
    assert plan.mut_pulses > 1
    assert plan.expected_u_pct <= target
    one_less = plan_dwell(SPEC, 1000.0, 1.0, power_factor=1.0, target_u_pct=target,
                          min_pulses=plan.mut_pulses - 1, min_dwell_s=0)
    fewer = gated_budget(SPEC, (plan.mut_pulses - 1) * 1.0 / 1e-5, (plan.mut_pulses - 1) * 3.6, 1.0)
    assert fewer.expanded_pct > target
    assert one_less.mut_pulses == plan.mut_pulses
    assert plan.expected_s == pytest.approx(plan.mut_pulses * 3.6)


def test_planner_honours_minimum_pulses_and_dwell():
    by_pulses = plan_dwell(SPEC, 1000.0, 1.0, power_factor=1.0, target_u_pct=0.05, min_pulses=25, min_dwell_s=0)
    assert by_pulses.mut_pulses == 25 and "25 pulses" in by_pulses.reason
    by_dwell = plan_dwell(SPEC, 1000.0, 1.0, power_factor=1.0, target_u_pct=0.05, min_pulses=25, min_dwell_s=300)
    assert by_dwell.mut_pulses == math.ceil(300 / 3.6) and "dwell" in by_dwell.reason


def test_planner_names_the_binding_limit_when_two_agree():
    plan = plan_dwell(SPEC, 1000.0, 1.0, power_factor=1.0, target_u_pct=0.05, min_pulses=84, min_dwell_s=300)
    assert plan.mut_pulses == 84 and plan.reason == "minimum 84 pulses"


def test_planner_refuses_a_target_the_reference_cannot_reach():
    with pytest.raises(PlanError, match="reference standard"):
        plan_dwell(SPEC, 1000.0, 1.0, power_factor=1.0, target_u_pct=0.01, min_pulses=1, min_dwell_s=0)


@pytest.mark.parametrize("error, u, rule, verdict", [
    (0.19, 0.05, Rule.SIMPLE, Verdict.PASS),
    (-0.21, 0.05, Rule.SIMPLE, Verdict.FAIL),
    (0.14, 0.05, Rule.GUARDED, Verdict.PASS),
    (0.19, 0.05, Rule.GUARDED, Verdict.INDETERMINATE),
    (-0.26, 0.05, Rule.GUARDED, Verdict.FAIL),
])
def test_decision_rules(error, u, rule, verdict):
    assert decide(error, u, 0.2, rule) is verdict


def test_certificate_uncertainty_by_power_factor_never_understates():
    assert CERTIFICATE.at(1.0) == 0.01
    assert CERTIFICATE.at(0.8) == 0.015  # between certified PFs: the lower PF's (larger) U
    assert CERTIFICATE.at(-0.5) == 0.015
    with pytest.raises(PlanError, match="does not cover PF 0.3"):
        CERTIFICATE.at(0.3)


def test_a_low_power_factor_point_carries_the_larger_reference_term():
    at_half = {c.name: c.u_pct for c in gated_budget(SPEC, 1e7, 300.0, 0.5).components}
    assert at_half["reference standard"] == pytest.approx(0.015 / 2)
