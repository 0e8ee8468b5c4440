"""The fault suite: every scenario of tests/fault_scenarios.toml on a fresh simulated bench.

A fault ends in a named error or a re-measurement, never in a verdict it spoiled; the board ends
in safe state, and the time from the fault to safe state is measured (printed with -s).
"""
from __future__ import annotations

import re
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

from bench.plans.limits import load_table
from bench.procedures.results import FaultResult
from bench.procedures.runner import Certification
from bench.sim import SimulatedBench
from bench.station.bench import Bench
from bench.station.safety import SafetyError
from instruments.sim_control import SimControlClient

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SCENARIOS = tomllib.loads((Path(__file__).parent / "fault_scenarios.toml").read_text())["scenario"]
# Faults the bench can only notice by waiting out a driver timeout or slow replies in real time.
WAITS = re.compile(r"SIM:FAUL\S* [^,]+,(DROP|SILENT|DEAD|SLOW|TIMEOUT)\b")
WORST_TIME_TO_SAFE_S = 5.0  # one driver timeout (2 s) to notice, then safe state in milliseconds


@dataclass
class SafeStateWatch:
    """Watches the simulated world from outside the bench: when the injected fault fired and when
    both outputs were next off."""

    sim: SimulatedBench
    faults: tuple[str, ...]  # the injected commands, as the control channel runs them
    fired_at: float | None = None
    safe_at: float | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        device = self.sim.control.device
        original = device.handle_line
        watch = self

        def handle_line(line: str):
            if watch.fired_at is None and line.strip() in watch.faults:
                watch.fired_at = time.monotonic()
            return original(line)

        device.handle_line = handle_line
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        world = self.sim.world
        while not self._stop.is_set():
            if self.fired_at is not None and self.safe_at is None and not world.source.output and not world.load.output:
                self.safe_at = time.monotonic()
            time.sleep(0.0005)

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join(timeout=2)
        if self.fired_at is None or self.safe_at is None:
            return None
        return max(0.0, self.safe_at - self.fired_at)


def measure(point_id: str,
            inject: list[str] = ()) -> tuple[dict, Certification, SafetyError | None, float | None, bool]:
    """(results, certification, the stop if any, time from fault to safe state, energised at the end)."""
    with SimulatedBench() as sim:
        bench = Bench(sim.profile()).open()
        points = {p.id: p for p in load_table().points(bench.profile.meter_type)}
        certification = Certification(bench, points)
        control = SimControlClient(sim.control.resource).open()
        watch = SafeStateWatch(sim, tuple(line.split(",", 1)[1] if line.startswith("SIM:SCH") else line
                                          for line in inject)) if inject else None
        stopped = None
        try:
            for line in inject:
                control.set(line)
            try:
                results = certification.run(points[point_id])
            except SafetyError as error:
                results, stopped = {}, error
        finally:
            to_safe = watch.stop() if watch else None
            control.close()
            energised = sim.world.source.output or sim.world.load.output
            try:
                bench.close()
            except SafetyError:
                pass  # a link the scenario killed: the stop above already said so
        return results, certification, stopped, to_safe, energised


@cache
def clean_verdicts(point_id: str) -> dict[int, str]:
    results, certification, stopped, _, _ = measure(point_id)
    assert stopped is None and not certification.faults.get(point_id)
    return {n: r.verdict.value for n, r in results.items()}


@pytest.mark.parametrize("scenario", [
    pytest.param(s, id=s["name"], marks=[pytest.mark.slow] if any(WAITS.search(line) for line in s["inject"]) else [])
    for s in SCENARIOS])
def test_fault_scenario(scenario):
    expect = scenario["expect"]
    results, certification, stopped, to_safe, energised = measure(scenario["point"], scenario["inject"])
    clean = clean_verdicts(scenario["point"])
    discarded = certification.faults.get(scenario["point"], [])
    print(f"\n{scenario['name']}: {expect}; time from fault to safe state: "
          f"{'n/a' if to_safe is None else f'{to_safe * 1000:.1f} ms'}; discarded attempts: {discarded}")
    if expect == "stop":
        assert stopped is not None, f"expected the bench to stop; results {results}"
        assert re.search(scenario["cause"], str(stopped)), str(stopped)
        if "could not confirm safe state" in str(stopped):
            assert energised  # said honestly: the bench could not reach the output to switch it off
        else:
            assert not energised and to_safe is not None and to_safe < WORST_TIME_TO_SAFE_S
        return
    assert stopped is None, str(stopped)
    if expect == "recovered":
        assert {n: r.verdict.value for n, r in results.items()} == clean
        if scenario["discarded"]:
            assert discarded and re.search(scenario["discarded"], " ".join(discarded)), discarded
        else:
            assert discarded == []
        if "rejected" in scenario:
            assert results[1].gate.rejected_glitches >= scenario["rejected"]
        return
    assert expect == "error"
    faulty = set(scenario.get("positions", clean))
    for number, result in results.items():
        if number in faulty:
            assert isinstance(result, FaultResult) and result.verdict.value == "ERROR"
            assert re.search(scenario["cause"], result.cause), result.cause
        else:
            assert result.verdict.value == clean[number], result.summary()
    assert len(discarded) >= 1  # it was measured again before it was called an ERROR


def test_a_reference_point_that_could_not_be_measured_is_never_silently_measured_again():
    """FL-PF1 fails for a reference fault; the fault clears; V90, a shift from FL-PF1, comes next.
    V90 is ERROR for want of its reference, and FL-PF1 stays what its items reported."""
    with SimulatedBench() as sim:
        bench = Bench(sim.profile()).open()
        try:
            points = {p.id: p for p in load_table().points(bench.profile.meter_type)}
            certification = Certification(bench, points)
            control = SimControlClient(sim.control.resource).open()
            control.fault("REFERENCE", "GARBLE")
            full_load = certification.run(points["FL-PF1"])
            control.fault("REFERENCE", "NONE")
            shift = certification.run(points["V90"])
            control.close()
        finally:
            bench.close()
    assert all(r.verdict.value == "ERROR" for r in full_load.values())
    assert certification.results["FL-PF1"] is full_load  # not replaced by a later measurement
    assert all(isinstance(r, FaultResult) and r.cause.startswith("reference point FL-PF1 was not measured")
               for r in shift.values())


def test_a_counting_period_that_is_not_finite_is_an_error_not_a_pass(sim):
    """Creep with a NaN Kt once recorded PASS, '0 pulses in nan s'."""
    import math

    from bench.station.test_mode import PulseOutputs
    with Bench(sim.profile()) as bench:
        bench.outputs = PulseOutputs({"Wh": math.nan})  # the Kt in force, which counting counts with
        points = {p.id: p for p in load_table().points(bench.profile.meter_type)}
        creep = next(p for p in points.values() if p.family == "creep")
        results = Certification(bench, points).run(creep)
    assert {r.verdict.value for r in results.values()} == {"ERROR"}
    assert "is not a positive finite time" in next(iter(results.values())).cause
