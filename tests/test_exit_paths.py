"""Every exit path reaches safe state and says so: signals, a failing lab test, -x, a lost link,
and the next invocation after a SIGKILL. Real pytest processes against a simulated bench whose
world this test process watches directly."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomli_w

from bench.plans.limits import load_table
from bench.pytest_plugin.session import RUN_GC_THRESHOLDS
from bench.records import store
from bench.sim import SimulatedBench
from tests.helpers import REPO, plan_command

pytestmark = pytest.mark.slow  # whole plan runs and the bench CLI, stopped by signals


def energised(sim: SimulatedBench) -> bool:
    return sim.world.source.output and sim.world.load.output


def start_plan(tmp_path: Path, sim: SimulatedBench, *args: str) -> subprocess.Popen:
    profile = tmp_path / "sim.toml"
    profile.write_text(tomli_w.dumps(sim.profile_data()))
    return subprocess.Popen(plan_command(tmp_path, "test_plans/", "--bench", str(profile), "-q", *args), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_energised(sim: SimulatedBench, run: subprocess.Popen, within_s: float = 30.0) -> None:
    deadline = time.monotonic() + within_s
    while not energised(sim):
        assert time.monotonic() < deadline and run.poll() is None, "never energised"
        time.sleep(0.01)


def time_to_safe(sim: SimulatedBench, started: float, within_s: float = 20.0) -> float:
    """Seconds from ``started`` (time.monotonic) until both outputs are off."""
    while sim.world.source.output or sim.world.load.output:
        assert time.monotonic() - started < within_s, "still energised"
        time.sleep(0.001)
    return time.monotonic() - started


def stored_runs(tmp_path: Path) -> list[dict]:
    engine = store.connect(f"sqlite:///{tmp_path / 'records.sqlite'}")
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(store.runs.select())]


@pytest.mark.parametrize("signals", [(signal.SIGHUP,), (signal.SIGTERM,), (signal.SIGINT,),
                                     (signal.SIGINT, signal.SIGINT)], ids=["SIGHUP", "SIGTERM", "SIGINT", "SIGINTx2"])
def test_a_signal_mid_dwell_reaches_safe_state_and_leaves_an_incomplete_record(tmp_path, signals):
    with SimulatedBench(scale=20.0) as sim:  # the five-minute dwell takes ~16 s of wall time
        run = start_plan(tmp_path, sim)
        try:
            wait_energised(sim, run)
            sent = time.monotonic()
            for number in signals:
                os.kill(run.pid, number)
                time.sleep(0.005)
            to_safe = time_to_safe(sim, sent)
            output, _ = run.communicate(timeout=60)
        finally:
            run.kill()
        assert run.returncode != 0
        assert not energised(sim), output
        assert sim.world.time_s < 300  # stopped mid-dwell, not after
    print(f"time to safe state after {'+'.join(signal.Signals(s).name for s in signals)}: {to_safe * 1000:.1f} ms")
    assert to_safe < 2.0
    assert [r["status"] for r in stored_runs(tmp_path)] == ["incomplete"]
    assert not (tmp_path / "certificates").exists()
    assert "Traceback" not in output and "run complete" not in output, output[-3000:]
    [record] = [json.loads(path.read_text())["record"] for path in tmp_path.glob("run-*.json")]
    assert record["scope"]["why"].startswith(f"interrupted by {signal.Signals(signals[0]).name}")
    assert (0 < record["scope"]["ran"] < record["scope"]["planned"]
            == len(record["scope"]["not_run"]) + record["scope"]["ran"])


def test_after_a_sigkill_the_next_invocation_finds_the_board_energised_and_makes_it_safe(tmp_path):
    with SimulatedBench(scale=20.0) as sim:
        run = start_plan(tmp_path, sim)
        try:
            wait_energised(sim, run)
            os.kill(run.pid, signal.SIGKILL)
            run.wait(timeout=10)
        finally:
            run.kill()
        assert energised(sim)  # nothing could switch it off
        # The next run is refused for a bad option, yet the board is made safe first, and it says so.
        refused = subprocess.run(plan_command(tmp_path, "test_plans/", "--bench", str(tmp_path / "sim.toml"),
                                              "--limits", str(tmp_path / "no-such-table.toml")),
                                 capture_output=True, text=True, cwd=REPO, timeout=60)
        assert refused.returncode == 4
        assert "ENERGISED at open (a previous run did not end cleanly): switching to safe state" in refused.stderr
        assert "no-such-table.toml: cannot read" in refused.stderr
        assert not energised(sim)


def test_bench_check_connect_identifies_every_role_without_touching_outputs(tmp_path, sim):
    profile = tmp_path / "sim.toml"
    profile.write_text(tomli_w.dumps(sim.profile_data()))
    checked = subprocess.run([sys.executable, "-m", "bench.cli", "check", str(profile), "--connect"],
                             capture_output=True, text=True, cwd=REPO, timeout=60)
    assert checked.returncode == 0, checked.stderr
    for role in ("source", "load", "reference", "counter"):
        assert f"  {role} " in checked.stdout
    assert sum(": meter SIM16A" in line for line in checked.stdout.splitlines()) == len(sim.world.meters)
    touched = [c for c in (*sim.source.received, *sim.load.received) if not c.endswith("?") and c not in ("*CLS",)]
    assert touched == [], touched  # queries and *CLS only: no output was switched or set


def test_bench_check_connect_makes_an_energised_board_safe_and_says_so(tmp_path, sim):
    sim.world.source.voltage_v, sim.world.source.output = 120.0, True
    profile = tmp_path / "sim.toml"
    profile.write_text(tomli_w.dumps(sim.profile_data()))
    checked = subprocess.run([sys.executable, "-m", "bench.cli", "check", str(profile), "--connect"],
                             capture_output=True, text=True, cwd=REPO, timeout=60)
    assert checked.returncode == 0
    assert "found source @ " in checked.stderr and "ENERGISED" in checked.stderr
    assert not sim.world.source.output


LAB_TESTS = '''
from bench.metrology.stimulus import Stimulus

def test_a_lab_script_that_fails_while_energised(bench):
    mt = bench.profile.meter_type
    bench.apply(Stimulus(mt.nominal_voltage_v, 1.0, 0.0, mt.frequency_hz, mt.elements))
    raise RuntimeError("the lab's own check failed")

def test_the_next_test_finds_the_board_safe(bench):
    assert bench.source.output is False and bench.load.output is False
'''


def test_a_failing_lab_test_leaves_the_board_safe_for_the_next(tmp_path, sim):
    plan = tmp_path / "test_lab_plan.py"
    plan.write_text(LAB_TESTS)
    profile = tmp_path / "sim.toml"
    profile.write_text(tomli_w.dumps(sim.profile_data()))
    run = subprocess.run([sys.executable, "-m", "pytest", str(plan), "--bench", str(profile), "-p", "no:cacheprovider",
                          "--reports-dir", str(tmp_path), "-q", "--rootdir", str(tmp_path)],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert "1 failed, 1 passed" in run.stdout, run.stdout[-3000:]


def test_stop_at_first_failure_leaves_the_board_safe(tmp_path):
    with SimulatedBench("mixed") as sim:
        run = start_plan(tmp_path, sim, "-x", "test_plans/accuracy/")
        output, _ = run.communicate(timeout=120)
        assert "1 failed" in output and "stopping after 1 failures" in output, output[-2000:]
        assert not energised(sim)


def test_a_link_lost_for_good_stops_the_session_at_once_in_one_line(tmp_path):
    with SimulatedBench(scale=20.0) as sim:
        run = start_plan(tmp_path, sim)
        try:
            wait_energised(sim, run)
            sim.stop()  # the simulator dies mid-dwell: every link is gone for good
            stopped_at = time.monotonic()
            output, _ = run.communicate(timeout=60)
            took = time.monotonic() - stopped_at
        finally:
            run.kill()
    assert run.returncode != 0
    assert "Traceback" not in output, output[-3000:]
    stop_lines = [line for line in output.splitlines() if "bench stopped:" in line]
    assert stop_lines and all("could not confirm safe state" in line or "link lost" in line for line in stop_lines)
    assert "bench: SAFETY: could not confirm safe state" in output and output.count("SAFETY") == 1, output[-3000:]
    assert "Interrupted: bench stopped:" in output, output[-3000:]  # nothing ran after it
    [log] = tmp_path.glob("run-*.events.jsonl")  # what the panel and the terminal showed: a safety banner
    said = [json.loads(line) for line in log.read_text().splitlines()]
    banners = [e["data"]["message"] for e in said if e["kind"] == "safety"]
    assert banners and all("link lost" in m or "could not confirm safe state" in m for m in banners), banners
    assert said[-1]["kind"] == "end" and said[-1]["data"]["status"] == "incomplete"
    print(f"session stopped {took:.1f} s after the simulator died")
    assert took < 20.0


KILL_IN_FINAL_PUBLISH = '''
import os, signal
from bench.records import store
from bench.plans.limits import load_table
from bench.pytest_plugin.session import RUN_GC_THRESHOLDS

_publish = store.publish

def publish(engine, made, evidence=None):
    if made.record["status"] != "incomplete":  # the final publish (the run here is partial: one family)
        os.kill(os.getpid(), signal.SIGKILL)  # the machine dies inside the final publish
    return _publish(engine, made, evidence)

store.publish = publish
'''


LOAD_PERFORMANCE_POINTS = sum(1 for p in load_table().rows if p.family == "load_performance")


def test_a_kill_inside_the_final_publish_loses_no_measured_result(tmp_path):
    (tmp_path / "kill_in_publish.py").write_text(KILL_IN_FINAL_PUBLISH)
    run = subprocess.run(plan_command(tmp_path, "test_plans/accuracy/test_load_performance.py",
                                      "-q", "-p", "kill_in_publish"),
                         capture_output=True, text=True, cwd=REPO, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert run.returncode == -signal.SIGKILL
    (stored,) = stored_runs(tmp_path)
    assert stored["status"] == "incomplete"
    engine = store.connect(f"sqlite:///{tmp_path / 'records.sqlite'}")
    record = store.load_run(engine, stored["run_id"])
    held = sum(len(m["results"]) for m in record["meters"])
    assert held == 8 * LOAD_PERFORMANCE_POINTS, held  # every item that ran is kept
    report = subprocess.run([sys.executable, "-m", "bench.cli", "report", stored["run_id"][:8], "--records",
                             f"sqlite:///{tmp_path / 'records.sqlite'}", "--reports-dir", str(tmp_path / "out")],
                            capture_output=True, text=True, cwd=REPO, timeout=60)
    assert record["scope"]["ran"] == held and record["scope"]["planned"] == 8 * len(record["plan"]["points"])
    assert (f"{held} of {record['scope']['planned']} planned item(s) ran; "
            "no certificates") in report.stdout, report.stdout


DIES_MID_POINT = '''
import os, signal


def pytest_runtest_logreport(report):
    if report.when == "call" and "[LL-PF1-pos3-" in report.nodeid:  # the machine dies mid-point
        os.kill(os.getpid(), signal.SIGKILL)
'''


def test_a_crash_mid_point_loses_that_point_only_and_every_stored_point_is_whole(tmp_path):
    """A point's results are stored for the whole board at once: after a SIGKILL while LL-PF1 is
    being concluded (three of its positions done), every point before it is stored on every
    position and LL-PF1 on none."""
    (tmp_path / "dies_mid_point.py").write_text(DIES_MID_POINT)
    with SimulatedBench() as sim:
        profile = tmp_path / "sim.toml"
        profile.write_text(tomli_w.dumps(sim.profile_data()))
        run = subprocess.run(plan_command(tmp_path, "test_plans/accuracy/", "--bench", str(profile), "-q",
                                          "-p", "dies_mid_point"),
                             cwd=REPO, capture_output=True, text=True, timeout=300,
                             env={**os.environ, "PYTHONPATH": str(tmp_path)})
        positions = len(sim.world.meters)
    assert run.returncode == -signal.SIGKILL, run.stdout[-2000:]
    engine = store.connect(f"sqlite:///{tmp_path / 'records.sqlite'}")
    with engine.connect() as conn:
        rows = conn.execute(store.results.select()).all()
    stored: dict[str, set[int]] = {}
    for row in rows:
        stored.setdefault(row.point_id, set()).add(row.position)
    assert {"KH", "CREEP", "START"} <= set(stored) and "LL-PF1" not in stored
    assert all(numbers == set(range(1, positions + 1)) for numbers in stored.values()), stored


GC_PROBE = '''
import gc, json, os
import pytest

seen = {}

def pytest_runtest_call(item):
    seen.setdefault("during", gc.get_threshold())

@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    with open(os.environ["GC_PROBE_OUT"], "w") as out:
        json.dump({"before": seen.get("before"), "during": seen["during"], "after": gc.get_threshold()}, out)

@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    seen["before"] = gc.get_threshold()
'''


@pytest.mark.slow
def test_a_run_collects_cycles_less_often_and_gives_the_process_its_thresholds_back(tmp_path):
    """The run's collector thresholds hold from the bench's opening to the session's close, and the
    process's own come back then (a lab script that runs a session in-process keeps its settings)."""
    (tmp_path / "gc_probe.py").write_text(GC_PROBE)
    out = tmp_path / "gc.json"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}", "GC_PROBE_OUT": str(out)}
    done = subprocess.run(plan_command(tmp_path / "reports", "test_plans/accuracy/test_nameplate.py", "-p", "gc_probe"),
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    seen = json.loads(out.read_text())
    assert seen["during"] == list(RUN_GC_THRESHOLDS) != seen["before"]
    assert seen["after"] == seen["before"]
