"""The built-in simulated bench serves from a process of its own (bench/sim/process.py): it answers
on the addresses it hands the run, its world is its own, it ends with the run however the run
ends (stopped, SIGKILL), a Ctrl-C at the terminal reaches the run and not it, and a process that
cannot start or will not stop is said so and killed."""
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from bench.sim import SimulatedBench
from bench.sim import process as sim_process
from bench.sim.process import SimulatorProcess, SimulatorProcessError
from tests.helpers import REPO, plan_command, query

BOUND_S = 20.0  # every wait below: far beyond the fraction of a second each takes


def gone(pid: int) -> bool:
    """The process has ended (a zombie nobody has reaped yet has ended too)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_until(condition, what: str, within_s: float = BOUND_S) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def control_socket(data: dict) -> socket.socket:
    host, port = data["clock"]["address"].split("::")[1:3]
    return socket.create_connection((host, int(port)), timeout=5)


def test_the_simulator_serves_its_own_world_and_stops_when_told():
    sim = SimulatedBench("default")
    served = SimulatorProcess(sim)
    output_r, output_w = os.pipe()  # as the run's output is: whoever reads it waits for every holder
    data = served.start()
    pid = served.pid
    try:
        assert pid is not None and pid != os.getpid() and not gone(pid)
        held = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        assert os.readlink(f"/proc/self/fd/{output_w}") not in held  # the fork's copy was closed
        assert sim.profile_of(data).positions[0].serial == sim.world.meters[0].serial
        with control_socket(data) as control:
            control.sendall(b"SIM:ADV 12.5\n")
            assert float(query(control, "SIM:TIME?")) == pytest.approx(12.5)
        assert sim.world.time_s == 0.0  # this process's model never moved: the served one is the child's
    finally:
        served.stop()
        os.close(output_r)
        os.close(output_w)
    assert gone(pid)
    with pytest.raises(OSError):
        control_socket(data).close()


def test_a_simulator_that_cannot_start_says_why_in_one_line(monkeypatch):
    sim = SimulatedBench("default")

    def refuse() -> SimulatedBench:
        raise OSError("address already in use (as the child found it)")

    monkeypatch.setattr(sim, "start", refuse)  # the forked child inherits the broken bench
    with pytest.raises(SimulatorProcessError) as raised:
        SimulatorProcess(sim).start()
    message = str(raised.value)
    assert "\n" not in message
    assert message.endswith("OSError: address already in use (as the child found it)"), message
    assert "ended before it served" in message


def test_a_simulator_that_will_not_stop_is_killed(monkeypatch):
    sim = SimulatedBench("default")
    monkeypatch.setattr(sim, "stop", lambda: time.sleep(3600))  # the child hangs stopping its servers
    monkeypatch.setattr(sim_process, "STOP_TIMEOUT_S", 0.5)
    served = SimulatorProcess(sim)
    served.start()
    pid = served.pid
    started = time.monotonic()
    served.stop()
    assert gone(pid)
    assert 0.5 <= time.monotonic() - started < BOUND_S


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def start_long_run(tmp_path: Path) -> subprocess.Popen:
    """The C12.20 plan on a clock scaled x20 (its dwells take seconds of wall time), in a session of
    its own as a terminal's foreground job is: a signal to its group is a Ctrl-C at the terminal."""
    return subprocess.Popen(plan_command(tmp_path, "test_plans/accuracy", "--sim-scale", "20", "-q"), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def simulator_of(run: subprocess.Popen) -> int:
    """The run's forked simulator: a child with the run's own command line (a run may start other,
    short-lived processes, such as the ldconfig that looks libraries up), in a session of its own."""
    def forked() -> list[int]:
        found = []
        for child in children(run.pid):
            try:  # the run's command line read now: just after its start it may still read empty
                command = Path(f"/proc/{run.pid}/cmdline").read_bytes()
                if command and Path(f"/proc/{child}/cmdline").read_bytes() == command and os.getsid(child) == child:
                    found.append(child)
            except (FileNotFoundError, ProcessLookupError):
                pass  # a short-lived one, gone already
        return found

    wait_until(lambda: forked() or run.poll() is not None, "the run started no simulator")
    [child] = forked()
    return child


def opened(reports: Path, run: subprocess.Popen) -> None:
    """The bench has opened (its records exist), and a second on: into the first point's dwell."""
    wait_until(lambda: (reports / "records.sqlite").exists() or run.poll() is not None, "the bench never opened")
    time.sleep(1.0)


def end(run: subprocess.Popen, child: int | None) -> str:
    """Whatever a test left running, killed (a simulator that outlived its run holds the run's
    output open); the run's output."""
    run.kill()
    if child is not None and not gone(child):
        os.kill(child, signal.SIGKILL)
    return run.communicate(timeout=BOUND_S)[0]


@pytest.mark.slow
def test_the_simulator_ends_when_the_run_is_killed(tmp_path):
    run, child = start_long_run(tmp_path), None
    try:
        child = simulator_of(run)
        opened(tmp_path, run)  # the simulator serves: it waits on its lifeline
        run.kill()  # SIGKILL: no handler of the run's runs
        run.wait(timeout=BOUND_S)
        wait_until(lambda: gone(child), "the simulator outlived its run")
    finally:
        end(run, child)


@pytest.mark.slow
def test_a_ctrl_c_reaches_the_run_which_makes_the_board_safe_through_the_simulator(tmp_path):
    run, child = start_long_run(tmp_path), None
    try:
        child = simulator_of(run)
        opened(tmp_path, run)
        os.killpg(run.pid, signal.SIGINT)  # what a terminal sends its foreground job
        run.wait(timeout=60)
        ended = gone(child)
    finally:
        output = end(run, child)
    assert run.returncode != 0
    assert "SAFETY" not in output and "Traceback" not in output, output[-3000:]
    assert ended
    [record] = [json.loads(path.read_text())["record"] for path in tmp_path.glob("run-*.json")]
    assert record["status"] == "incomplete"
    assert record["scope"]["why"].startswith("interrupted by SIGINT"), record["scope"]
