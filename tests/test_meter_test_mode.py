"""Meter test mode: the meter type declares it, the simulated meters offer it over Modbus, the
bench enters it once the meters are identified and leaves it on every exit path, and gating,
the dwell planner and the counting periods use the Kt in force. Real Modbus on loopback."""
from __future__ import annotations

import json
import math
import signal
import subprocess
import time
from pathlib import Path

import pytest
import tomli_w

from bench.datafiles import ConfigError
from bench.metrology.uncertainty import plan_dwell
from bench.plans.limits import load_table
from bench.plans.payload import payload_accuracy_point
from bench.procedures.counting import CreepPoint, StartingPoint
from bench.procedures.gating import measure_point
from bench.procedures.results import CountResult, FaultResult, PositionResult, PulseConstants
from bench.procedures.runner import Certification
from bench.sim import SimulatedBench
from bench.sim.meter_model import Conditions
from bench.station.bench import Bench
from bench.station.profile import load_profile
from bench.station.test_mode import PulseOutputs
from instruments.errors import InstrumentError
from tests.helpers import REPO, edited_toml, plan_command, run_plans

EXAMPLE = Path(__file__).resolve().parent.parent / "bench" / "profiles" / "example_lab.toml"
KT_TEST = 0.1  # the default board's 16S type: Kt 1 Wh, 0.1 Wh in test mode (bench/sim/meter_types)
KT_NORMAL = 1.0
POINTS = {p.id: p for p in load_table().points(SimulatedBench("default").meter_type())}


def in_test_mode(sim: SimulatedBench) -> list[bool]:
    """Ground truth: each simulated meter's own mode."""
    return [meter.in_test_mode for meter in sim.world.meters]


# --- the sim meter over Modbus -----------------------------------------------------------------

def test_the_test_mode_register_enters_and_leaves_and_reads_back(sim, sim_bench):
    meter = sim_bench.meters[1]
    assert meter.read("test_mode") == 0 and not any(in_test_mode(sim))
    meter.write("test_mode", 1)
    assert meter.read("test_mode") == 1
    assert in_test_mode(sim) == [True] + [False] * (len(sim.world.meters) - 1)
    assert sim.world.meters[0].test_outputs == {"Wh": KT_TEST}
    meter.write("test_mode", 0)
    assert meter.read("test_mode") == 0 and sim.world.meters[0].test_outputs == {"Wh": KT_NORMAL}


def test_in_test_mode_the_demand_register_runs_on_its_test_mode_interval(sim, sim_bench):
    """The bench's demand test reads the interval from the meter: in test mode, the shorter one."""
    meter, normal = sim_bench.meters[1], sim_bench.meters[2]
    sim_bench.apply(payload_accuracy_point().stimulus(sim_bench))
    sim_bench.wait(400.0, "demand")
    meter.write("test_mode", 1)
    assert meter.read("demand_interval_s") == 180 and normal.read("demand_interval_s") == 900
    assert meter.read("demand_count") == 0  # entering test mode reset it
    sim_bench.wait(400.0, "demand")
    assert meter.read("demand_count") == 2 and normal.read("demand_count") == 0
    meter.write("test_mode", 0)
    assert meter.read("demand_interval_s") == 900 and meter.read("demand_count") == 0


def test_in_test_mode_the_output_pulses_once_per_test_mode_kt_of_registered_energy(sim, sim_bench):
    """Counter pulses against the meter's own energy register, both read over the bench's links:
    pulses per Wh is 1/Kt in force; the count is within one pulse (the residue at each end) plus
    the register's 0.001 Wh resolution of energy / Kt."""
    load = POINTS["FL-PF1"].load
    channel, meter = sim_bench.profile.positions[0].channels["Wh"], sim_bench.meters[1]
    sim_bench.apply(load.stimulus(sim_bench.profile.meter_type))
    for kt, mode in ((KT_NORMAL, 0), (KT_TEST, 1)):
        meter.write("test_mode", mode)
        pulses, energy = sim_bench.counter.mut_count(channel), float(meter.read("energy_wh"))
        sim_bench.wait(60.0, "counting")
        pulses = sim_bench.counter.mut_count(channel) - pulses
        energy = float(meter.read("energy_wh")) - energy
        assert energy > 100 * kt  # enough pulses that one either way is 1 %
        assert abs(pulses - energy / kt) <= 1 + 0.002 / kt
    sim_bench.safe_state()


def test_after_the_switch_an_edge_falls_every_test_mode_kt_of_energy():
    """The model's pulse accumulator stays physical across the switch: the first edge in test
    mode comes one test-mode Kt of energy after it, and every edge after that another Kt on."""
    meter = SimulatedBench("default").world.meters[0]
    c = Conditions.balanced(120.0, 30.0, 0.0, 60.0, (0.0, -120.0, 120.0))
    power = meter.output_power(*meter.registered_powers(c), "Wh")
    meter.advance(0.0, 2.5 * KT_NORMAL * 3600.0 / power, c)  # two normal pulses and half a third
    meter.write("test_mode", 1)
    t0, step = 2.5 * KT_NORMAL * 3600.0 / power, 10.5 * KT_TEST * 3600.0 / power
    edges = meter.advance(t0, step, c)["Wh"]
    expected = [t0 + k * KT_TEST * 3600.0 / power for k in range(1, 11)]
    assert edges == pytest.approx(expected, abs=10 * meter.pulse_jitter_s)
    assert meter.pulses == 2 + 10


# --- the bench: entering, leaving, every exit path ------------------------------------------------

def test_the_bench_enters_test_mode_after_identifying_the_meters_and_leaves_it_on_close(sim):
    with Bench(sim.profile(), test_mode=True) as bench:
        assert all(in_test_mode(sim))
        assert bench.outputs == PulseOutputs({"Wh": KT_TEST}, test_mode=True)
    assert not any(in_test_mode(sim))
    assert bench.test_mode.to_dict() == {"offered": True, "used": True, "left": True, "not_left": {}}


def test_without_test_mode_the_meters_stay_in_normal_mode(sim):
    with Bench(sim.profile()) as bench:
        assert bench.outputs == PulseOutputs({"Wh": KT_NORMAL}) and not any(in_test_mode(sim))
    assert not bench.test_mode.used


def test_a_failure_mid_point_leaves_the_board_safe_and_the_meters_in_normal_mode(sim):
    load = POINTS["FL-PF1"].load
    with pytest.raises(RuntimeError, match="mid-point"), Bench(sim.profile(), test_mode=True) as bench:
        bench.apply(load.stimulus(bench.profile.meter_type))
        assert sim.world.source.output and all(in_test_mode(sim))
        raise RuntimeError("mid-point")
    assert not sim.world.source.output and not sim.world.load.output
    assert not any(in_test_mode(sim))


def test_a_meter_that_does_not_enter_test_mode_stops_the_run_and_the_others_are_taken_out(sim):
    sim.world.meters[2].test_mode_outputs = {}  # a meter without test mode ignores the write
    with pytest.raises(InstrumentError, match=r"^position 3 @ .*: the meter reports 0 in 'test_mode': it is not in "
                                              r"test mode$"):
        Bench(sim.profile(), test_mode=True).open()
    assert not any(in_test_mode(sim))


def test_a_meter_that_cannot_be_taken_out_is_told_and_never_stops_the_safe_state(sim):
    notices: list[str] = []
    load = POINTS["FL-PF1"].load
    bench = Bench(sim.profile(), notices.append, test_mode=True).open()
    bench.apply(load.stimulus(bench.profile.meter_type))
    sim.world.meters[1].link_fault = "TIMEOUT"
    bench.close()
    assert not sim.world.source.output and not sim.world.load.output
    assert in_test_mode(sim) == [False, True] + [False] * (len(sim.world.meters) - 2)
    assert list(bench.test_mode.not_left) == [2] and not bench.test_mode.left
    assert [n for n in notices if "test mode" in n] == [next(n for n in notices if "position 2" in n)]


# --- what counts with the Kt in force ---------------------------------------------------------

def test_the_dwell_planner_needs_a_tenth_of_the_time_per_pulse_at_a_tenth_of_the_kt(sim_bench):
    """Light load on the 16S board, 3 x 120 V x 3 A = 1080 W: a 1 Wh pulse every 3.33 s, so the
    25-pulse minimum takes 83 s; at 0.1 Wh the 30 s minimum dwell governs (90 pulses)."""
    rules = dict(power_factor=1.0, target_u_pct=0.04, min_pulses=25, min_dwell_s=30.0)
    normal = plan_dwell(sim_bench.spec, 1080.0, KT_NORMAL, **rules)
    test = plan_dwell(sim_bench.spec, 1080.0, KT_TEST, **rules)
    assert (normal.mut_pulses, normal.expected_s) == (25, pytest.approx(25 * 3600 / 1080))
    assert (test.mut_pulses, test.expected_s) == (90, pytest.approx(30.0))
    assert test.expected_u_pct <= normal.expected_u_pct * 1.2  # no worse for it, within the gate time


def test_a_point_gated_in_test_mode_counts_and_records_the_test_mode_kt(sim):
    """LL-PF1 measured in test mode: the gate counts 0.1 Wh pulses (a wrong Kt would be an error of
    hundreds of percent) and lasts the 25-pulse minimum, 8.3 s at 1080 W, against the 83 s the
    normal Kt needs (the table's 4 s floor in test mode does not govern here)."""
    with Bench(sim.profile(), test_mode=True) as bench:
        results = measure_point(bench, POINTS["LL-PF1"])
        truth = {number: bench.sim_control.true_error_pct(number) for number in results}
    period_s = KT_TEST * 3600 / 1080
    for number, result in results.items():
        assert isinstance(result, PositionResult) and result.gate is not None and result.pulses is not None
        assert result.constants == PulseConstants(KT_TEST, bench.spec.reference_constant_wh, test_mode=True)
        assert result.to_dict()["constants"]["test_mode"] is True
        assert result.gate.mut_pulses == 25
        assert 24 * period_s < result.gate.gate_time_s < 26 * period_s
        assert abs(result.pulses.error_pct - truth[number]) <= result.pulses.expanded_pct


@pytest.mark.parametrize("test_mode, floor_s", [(True, 4.0), (False, 30.0)], ids=["test-mode", "normal-mode"])
def test_full_load_gates_for_the_tables_floor_of_the_output_in_force(sim, test_mode, floor_s):
    """FL-PF1 at 10.8 kW: 25 pulses would take 0.8 s at 0.1 Wh, so the floor governs: the
    table's min_dwell_test_mode_s (4 s) in test mode, its min_dwell_s (30 s) otherwise; each
    gate's U still within the target (a fifth of the ±0.2 % limit)."""
    point = POINTS["FL-PF1"]
    assert point.dwell.floor_s(test_mode) == floor_s
    kt = KT_TEST if test_mode else KT_NORMAL
    with Bench(sim.profile(), test_mode=test_mode) as bench:
        results = measure_point(bench, point)
    for result in results.values():
        assert isinstance(result, PositionResult) and result.gate is not None and result.pulses is not None
        assert floor_s <= result.gate.gate_time_s < floor_s + 2 * kt * 3600 / 10_800
        assert result.pulses.expanded_pct <= point.dwell.target_u_pct
        assert "less than the plan's" not in result.note


def test_creep_and_starting_periods_are_energies_so_they_shrink_by_kt_test_over_kt(sim):
    mt = sim.meter_type()
    points = load_table().points(mt)
    creep = next(p for p in points if isinstance(p, CreepPoint))
    start = next(p for p in points if isinstance(p, StartingPoint))
    # creep: C / (k m Un Imax) minutes, k = 1000 / Kt imp/kWh: 900e6 / (10000 x 3 x 120 x 200) = 1.25 min
    assert creep.period_s(mt, KT_TEST) == pytest.approx(900e6 / (1000 / KT_TEST * 3 * 120 * 200) * 60) == 75.0
    # starting: 1.5 x 2 pulses x 0.1 Wh at 3 x 120 V x 0.03 A = 10.8 W
    assert start.period_s(mt, KT_TEST) == pytest.approx(1.5 * 2 * KT_TEST * 3600 / 10.8) == pytest.approx(100.0)
    for point in (creep, start):
        assert point.period_s(mt, KT_TEST) / point.period_s(mt, KT_NORMAL) == pytest.approx(KT_TEST / KT_NORMAL)


def test_creep_counted_in_test_mode_is_judged_over_the_test_mode_period_and_says_so(sim):
    """A meter creeping at 10 W registers 10 x 75 s = 0.21 Wh: two 0.1 Wh pulses, a failure, as the
    same meter's 2.08 Wh over the normal 750 s are two 1 Wh pulses: the count does not depend on Kt."""
    sim.world.meters[0].creep_w = 10.0
    with Bench(sim.profile(), test_mode=True) as bench:
        points = {p.id: p for p in load_table().points(bench.profile.meter_type)}
        results = Certification(bench, points).run(points["CREEP"])
    assert all(isinstance(r, CountResult) for r in results.values())
    assert {r.period_s for r in results.values()} == {75.0}
    assert results[1].pulses == 2 and results[1].verdict.value == "FAIL"
    assert {r.verdict.value for n, r in results.items() if n != 1} == {"PASS"}
    assert results[1].cells()["Measured"] == "2 pulses in 75 s at Kt 0.1 Wh (test mode)"


@pytest.mark.parametrize("point", ["CREEP", "LL-PF1"])
def test_a_meter_that_drops_out_of_test_mode_gets_no_verdict_from_the_point(sim, point):
    """Pulsing at its normal Kt, a meter creeping at 10 W would show 0.2 pulses in the 75 s test-mode
    creep period and pass, and a sound one would read 90 % low at a gated point: the bench reads
    the mode back after the count or gate, and that position's point is not measured (twice)."""
    sim.world.meters[0].creep_w = 10.0
    with Bench(sim.profile(), test_mode=True) as bench:
        sim.world.meters[0].set_test_mode(False)  # as a meter timing out of test mode would
        results = Certification(bench, POINTS).run(POINTS[point])
    assert isinstance(results[1], FaultResult) and results[1].verdict.value == "ERROR"
    assert results[1].cause == f"after the {'count' if point == 'CREEP' else 'gate'}: the meter reports 0 in " \
                               f"'test_mode': it is not in test mode"
    assert {r.verdict.value for n, r in results.items() if n != 1} == {"PASS"}


# --- the meter type's test_mode table -----------------------------------------------------------

def with_test_mode(data: dict, **table: object) -> None:
    data["meter_type"]["registers"]["test_mode"] = {"address": 140, "type": "uint16", "writable": True}
    data["meter_type"]["test_mode"] = {"register": "test_mode", "Wh": 0.1, **table}


def test_a_test_mode_table_loads(tmp_path):
    mt = load_profile(edited_toml(EXAMPLE, with_test_mode, tmp_path / "lab.toml")).meter_type
    assert mt.test_mode is not None and mt.test_mode.kt(mt.test_outputs) == {"Wh": 0.1}
    assert mt.test_mode.to_dict() == {"register": "test_mode", "test_outputs": {"Wh": 0.1}, "demand_interval_s": None}
    mt = load_profile(edited_toml(EXAMPLE, lambda d: with_test_mode(d, demand_interval_s=180.0),
                                  tmp_path / "demand.toml")).meter_type
    assert mt.test_mode is not None and mt.test_mode.demand_interval_s == 180.0


@pytest.mark.parametrize("edit, key, says", [
    (lambda d: with_test_mode(d, Wh=1.0), "meter_type.test_mode.Wh", "not smaller than the normal Kt 1"),
    (lambda d: with_test_mode(d, Wh=math.nan), "meter_type.test_mode.Wh", "finite"),
    (lambda d: with_test_mode(d, Wh=-0.1), "meter_type.test_mode.Wh", "positive"),
    (lambda d: with_test_mode(d, Wh=5000.0), "meter_type.test_mode.Wh", "outside"),
    (lambda d: with_test_mode(d, Wh="0.1"), "meter_type.test_mode.Wh", "number"),
    (lambda d: with_test_mode(d, varh=0.1), "meter_type.test_mode.varh", "no varh test output"),
    (lambda d: with_test_mode(d, VAh=0.1), "meter_type.test_mode.VAh", "unknown key"),
    (lambda d: with_test_mode(d, demand_interval_s=30.0), "meter_type.test_mode.demand_interval_s", "outside"),
    (lambda d: with_test_mode(d, demand_interval_s=math.inf), "meter_type.test_mode.demand_interval_s", "finite"),
    (lambda d: (with_test_mode(d), d["meter_type"]["test_mode"].pop("Wh")), "meter_type.test_mode.Wh", "missing"),
    (lambda d: with_test_mode(d, register="energy_wh"), "meter_type.test_mode.register", "not a writable register"),
    (lambda d: with_test_mode(d, register="test_mod"), "meter_type.test_mode.register", "not a writable register"),
    (lambda d: (with_test_mode(d), d["meter_type"]["test_mode"].pop("register")), "meter_type.test_mode.register",
     "missing"),
])
def test_a_bad_test_mode_table_is_refused_in_one_line_naming_file_and_key(tmp_path, edit, key, says):
    path = edited_toml(EXAMPLE, edit, tmp_path / "lab.toml")
    with pytest.raises(ConfigError) as raised:
        load_profile(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: {key}: ") and says in message and "\n" not in message, message


@pytest.mark.parametrize("board", ["default", "network_12s", "residential_2s", "transformer_9s"])
def test_every_simulated_meter_type_offers_a_test_mode_with_a_smaller_kt(board):
    sim = SimulatedBench(board)
    mt = sim.meter_type()
    assert mt.test_mode is not None and mt.test_mode.test_outputs.keys() == mt.test_outputs.keys()
    assert all(sim.world.meters[0].test_mode_outputs[o] == kt < mt.test_outputs[o]
               for o, kt in mt.test_mode.test_outputs.items())


# --- whole runs: the plugin enters it, records it, leaves it on every exit path ----------------------

@pytest.mark.slow
def test_a_whole_plan_run_counts_in_test_mode_says_so_on_the_certificate_and_leaves_it(whole_plan):
    run = whole_plan("default")
    record = run.record
    assert record["status"] == "complete"
    assert record["test_mode"] == {"offered": True, "used": True, "left": True, "not_left": {}}
    assert record["meter_type"]["test_mode"] == {"register": "test_mode", "test_outputs": {"Wh": KT_TEST},
                                                  "demand_interval_s": 180.0}
    meter = record["meters"][0]
    gated = [r["evidence"]["constants"] for r in meter["results"] if r["evidence"].get("constants")]
    assert gated and all(c["meter_wh_per_pulse"] == KT_TEST and c["test_mode"] for c in gated)
    counted = {r["point"]: r["evidence"] for r in meter["results"] if r["point"] in ("CREEP", "START")}
    assert {p: (e["kt"], e["test_mode"], e["period_s"]) for p, e in counted.items()} == {
        "CREEP": (KT_TEST, True, 75.0), "START": (KT_TEST, True, pytest.approx(100.0))}
    certificate = (run.reports / "certificates" / f"{meter['serial']}-{record['run_id'][:8]}.html").read_text()
    assert f"meter {KT_TEST:g} (test mode), reference" in certificate
    assert f"pulses in 75 s at Kt {KT_TEST:g} Wh (test mode)" in certificate
    assert f"test mode used, Kt {KT_TEST:g} Wh (every meter back in normal mode)" in run.process.stdout


@pytest.mark.slow
def test_no_test_mode_keeps_the_normal_kt_and_the_record_says_so(tmp_path):
    process, _, _ = run_plans(tmp_path, "--no-test-mode", "-k", "LL-PF1 or CREEP", plans="test_plans/accuracy")
    assert process.returncode == 0, process.stdout[-3000:]
    [record_file] = (tmp_path / "reports").glob("run-*.json")
    record = json.loads(record_file.read_text())["record"]
    assert record["test_mode"]["used"] is False
    results = {r["point"]: r["evidence"] for r in record["meters"][0]["results"]}
    assert results["LL-PF1"]["constants"]["meter_wh_per_pulse"] == KT_NORMAL
    assert not results["LL-PF1"]["constants"]["test_mode"]
    assert (results["CREEP"]["kt"], results["CREEP"]["period_s"]) == (KT_NORMAL, 750.0)
    assert "test mode not used (--no-test-mode)" in process.stdout


@pytest.mark.slow
def test_ctrl_c_mid_dwell_leaves_the_board_safe_and_every_meter_in_normal_mode(tmp_path):
    with SimulatedBench(scale=20.0) as sim:
        profile = tmp_path / "sim.toml"
        profile.write_text(tomli_w.dumps(sim.profile_data()))
        run = subprocess.Popen(plan_command(tmp_path, "test_plans/accuracy", "--bench", str(profile), "-q"),
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 60
            while not (sim.world.source.output and sim.world.load.output):
                assert time.monotonic() < deadline and run.poll() is None, "never energised"
                time.sleep(0.01)
            assert all(in_test_mode(sim))
            run.send_signal(signal.SIGINT)
            output, _ = run.communicate(timeout=60)
        finally:
            run.kill()
        assert run.returncode != 0
        assert not sim.world.source.output and not sim.world.load.output
        assert not any(in_test_mode(sim)), output[-3000:]
    [record_file] = tmp_path.glob("run-*.json")
    record = json.loads(record_file.read_text())["record"]
    assert record["status"] == "incomplete" and record["test_mode"]["left"] is True
