"""Honest uncertainty: over many simulated meters, the measured error lies within the stated U
(k=2) of the simulator's ground truth at least 95 % of the time.

What makes this a real test: each run draws the reference standard's true error from the
distribution its certificate states (normal, standard deviation U_cert / 2 at the point's PF).
That is what a stated U has to cover. A budget that dropped the reference term, or forgot k=2,
would cover far less; one inflated several times would cover everything by a wide margin, which
the mean |error| / U check catches.
"""
import numpy as np
import pytest

from bench.plans.limits import load_table
from bench.procedures.gating import measure_point
from bench.sim import SimulatedBench
from bench.station.bench import Bench

pytestmark = pytest.mark.slow  # many simulated meters measured in turn

POINTS = ("LL-PF1", "FL-PF1", "MAX-PF1", "LL-PF05", "FL-PF05", "FL-PF08C", "MAX-PF08C", "UNBAL")
BOARDS, RUNS_PER_BOARD = 3, 40


def random_positions(rng, count=8):
    return [{"offset_pct": rng.uniform(-0.3, 0.3), "light_load_pct": rng.uniform(-0.2, 0.2),
             "phase_error_mrad": rng.uniform(-2, 2), "voltage_pct_per_10pct": rng.uniform(-0.1, 0.1),
             "frequency_pct_per_pct": rng.uniform(-0.05, 0.05), "harmonic_gain_pct": rng.uniform(-5, 5),
             "dc_pct_per_10pct": 0.0, "element_offsets_pct": list(rng.uniform(-0.2, 0.2, 3)),
             "pulse_jitter_s": rng.uniform(1e-5, 2e-4)} for _ in range(count)]


@pytest.mark.parametrize("test_mode", [False, True], ids=["normal-mode", "test-mode"])
def test_measured_error_is_within_u_of_the_truth_at_least_95_percent_of_the_time(make_board, test_mode):
    """In test mode too: its shorter gates (a tenth of the Kt) must still be covered by their U."""
    rng = np.random.default_rng(2026)
    ratios = []
    for _board_index in range(BOARDS):
        board = make_board(positions=random_positions(rng), board={"seed": int(rng.integers(1 << 30))})
        with SimulatedBench(board) as sim, Bench(sim.profile(), test_mode=test_mode) as bench:
            points = {p.id: p for p in load_table().points(sim.meter_type())}
            certificate = bench.profile.reference.calibration.uncertainty
            for run in range(RUNS_PER_BOARD):
                point = points[POINTS[run % len(POINTS)]]
                stimulus = point.stimulus(bench)
                bench.sim_control.set_reference_error(rng.normal(0, certificate.at(stimulus.power_factor) / 2))
                for number, result in measure_point(bench, point).items():
                    truth = bench.sim_control.true_error_pct(number)
                    assert result.constants.test_mode is test_mode  # gated with the Kt of the mode asked for
                    ratios.append(abs(result.pulses.error_pct - truth) / result.pulses.expanded_pct)
    ratios = np.array(ratios)
    coverage = float(np.mean(ratios <= 1.0))
    assert len(ratios) == BOARDS * RUNS_PER_BOARD * 8
    assert coverage >= 0.95, f"coverage {coverage:.3f}"
    # For a normal error and U = 2u, E|e|/U is about 0.4; a budget inflated 3x would give ~0.13.
    assert 0.25 <= float(np.mean(ratios)) <= 0.6, f"mean |error|/U {np.mean(ratios):.3f}"
