"""The payload accuracy plan end to end on the simulated bench, and its agreement with truth."""
import re
import subprocess

import pytest
import tomli_w

from bench.plans.payload import payload_accuracy_point
from bench.procedures.gating import measure_point
from bench.sim import SimulatedBench
from bench.station.bench import Bench
from tests.helpers import EXACT, REPO, plan_command, properties, run_plans


@pytest.mark.slow
def test_default_board_certifies_every_position(tmp_path):
    run, cases, html = run_plans(tmp_path)
    assert run.returncode == 0, run.stdout[-2000:]
    serials = {name.split("-", 1)[1].rstrip("]") for name in cases}
    assert len(cases) >= 4 and len(serials) == len(cases)
    for case in cases.values():
        props = properties(case)
        assert props["Verdict"] == "PASS"
        assert abs(float(props["Measured"].rstrip(" %"))) < 0.2
        assert props["Stimulus"] == "120.00 V, 2.778 A, PF 1.000, 60 Hz = 1000.0 W"  # 3 elements of the 16S board
    for column in ("Point", "Stimulus", "Measured", "U (k=2)", "Register", "Limit", "Verdict"):
        assert re.search(rf"<th[^>]*>{re.escape(column)}</th>", html), column
    covered = float(re.search(r"bench time covered: ([\d.]+) s", run.stdout).group(1))
    assert covered >= 10 + 300  # settling, then at least the procedure's five minutes


@pytest.mark.slow
def test_a_meter_at_half_a_percent_fails_and_one_at_five_hundredths_passes(tmp_path, make_board):
    board = make_board(positions=[{"offset_pct": 0.5, **EXACT}, {"offset_pct": 0.05, **EXACT}], board={"name": "two"})
    run, cases, _ = run_plans(tmp_path, "--sim-scenario", str(board))
    assert run.returncode == 1
    bad, good = (cases[n] for n in sorted(cases))
    assert bad.find("failure") is not None and good.find("failure") is None
    # Measured = true error less the reference standard's own +0.004 %.
    assert float(properties(bad)["Measured"].rstrip(" %")) == pytest.approx(0.496, abs=0.002)
    assert float(properties(good)["Measured"].rstrip(" %")) == pytest.approx(0.046, abs=0.002)
    assert "FAIL: pulse error +0.49" in bad.find("failure").get("message")


def test_measured_error_agrees_with_ground_truth_within_u(sim_bench, control):
    point = payload_accuracy_point()
    results = measure_point(sim_bench, point)
    for number, result in results.items():
        truth = control.true_error_pct(number)
        assert abs(result.pulses.error_pct - truth) <= result.pulses.expanded_pct
        assert abs(result.register_check.error_pct - truth) <= result.register_check.expanded_pct
        assert result.gate.gate_time_s >= point.dwell.min_dwell_s  # timed by the counter's timebase


def test_measured_error_is_the_truth_seen_through_the_reference_standard(sim, sim_bench, control):
    """Tighter than U: the bench measures the meter against the reference, so the result is
    (1 + e_meter) / (1 + e_reference) - 1, up to edge jitter (50 µs over 300 s: ~2e-5 %) and
    reference quantization (~1e-5 %). A sign error in either would show here."""
    e_ref = sim.world.reference.error_pct / 100
    for number, result in measure_point(sim_bench, payload_accuracy_point()).items():
        e_meter = control.true_error_pct(number) / 100
        assert result.pulses.error_pct == pytest.approx(100 * ((1 + e_meter) / (1 + e_ref) - 1), abs=2e-4)


def test_plan_duration_comes_from_the_counter_timebase(sim_bench):
    results = measure_point(sim_bench, payload_accuracy_point())
    gate = results[1].gate
    # N pulses of Kh at the meter's registered power: ~3.6 s a pulse at 1 kW and 1 Wh.
    assert gate.gate_time_s == pytest.approx(gate.mut_pulses * 3.6, rel=0.002)


def test_single_phase_board_measures_against_truth():
    with SimulatedBench("residential_2s") as sim, Bench(sim.profile()) as bench:
        point = payload_accuracy_point()
        assert point.stimulus(bench).current_a == pytest.approx(1000.0 / 240.0)
        results = measure_point(bench, point)
        control = bench.sim_control
        assert sim.world.true_power_w() == pytest.approx(1000.0, rel=1e-3)  # within the source's setpoint errors
        for number, result in results.items():
            assert result.verdict == "PASS"
            assert abs(result.pulses.error_pct - control.true_error_pct(number)) <= result.pulses.expanded_pct


def test_a_meter_that_never_pulses_fails_with_a_diagnosis_and_the_others_still_pass(make_board):
    board = make_board(positions=[{"starting_current_a": 100.0}, {}])
    with SimulatedBench(board) as sim, Bench(sim.profile()) as bench:
        results = measure_point(bench, payload_accuracy_point())
    dead, alive = results[1], results[2]
    assert dead.verdict == "FAIL" and dead.pulses is None
    assert dead.note.startswith("gate incomplete: 0 of 84 MUT pulses")  # 1.002 kW x 300 s / 1 Wh, rounded up
    assert dead.register_check.error_pct == pytest.approx(-100.0)
    assert alive.verdict == "PASS"


@pytest.mark.slow
def test_unreachable_instrument_stops_the_session_with_one_line(tmp_path):
    with SimulatedBench() as sim:
        data = sim.profile_data()
    profile = tmp_path / "lab.toml"  # the simulator is gone: every address is now dead
    profile.write_text(tomli_w.dumps(data))
    run = subprocess.run(plan_command(tmp_path, "test_plans/", "--bench", str(profile), "-q"),
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert run.returncode == 4  # refused at start: the first thing it does is reach the source
    assert re.search(r"bench cannot start: source @ TCPIP0::127\.0\.0\.1::\d+::SOCKET: '\*IDN\?': write failed "
                     r"\(ConnectionRefusedError", run.stdout + run.stderr)


def test_a_point_at_the_stimulus_the_board_is_already_at_shares_its_settling(sim_bench):
    """Consecutive points at one stimulus settle once: the second is gated without a new settle."""
    settles = []
    wait = sim_bench.wait

    def noting(seconds: float, during: str) -> None:
        settles.extend([during] if during.startswith("settling") else [])
        wait(seconds, during)

    sim_bench.wait = noting
    point = payload_accuracy_point()
    first = measure_point(sim_bench, point)
    second = measure_point(sim_bench, point)
    assert len(settles) == 1
    assert all(r.verdict == "PASS" for r in (*first.values(), *second.values()))
