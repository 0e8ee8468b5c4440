"""The safety contract: refuse before sending, safe state on every exit path, read back by truth."""
import os
import signal
import subprocess
import threading
import time

import pytest
import tomli_w

from bench.metrology.harmonics import load_profiles
from bench.metrology.stimulus import Stimulus
from bench.plans.limits import HARMONICS_FILE
from bench.plans.payload import payload_accuracy_point
from bench.procedures.gating import measure_point
from bench.sim import SimulatedBench
from bench.station.bench import Bench
from bench.station.profile import profile_from_data
from bench.station.safety import SafetyError
from instruments.errors import InstrumentError
from instruments.sim_control import SimControlClient
from tests.helpers import REPO, plan_command

POINT = payload_accuracy_point()


def refused_without_sending(sim, bench, stimulus, match):
    """Apply a stimulus that must be refused; return what reached the source and load meanwhile."""
    before = len(sim.source.received), len(sim.load.received)
    with pytest.raises(SafetyError, match=match):
        bench.apply(stimulus)
    return list(sim.source.received)[before[0]:] + list(sim.load.received)[before[1]:]


def test_voltage_above_the_meter_rating_is_refused_before_sending(sim, sim_bench):
    sent = refused_without_sending(sim, sim_bench, Stimulus(150.0, 1.0, 0.0, 60.0, 3),
                                   r"150 V RMS exceeds the meter rating meter_type.max_voltage_v = 144 V")
    assert sent == []
    assert sim.world.source.voltage_v == 0.0 and not sim.world.source.output


def test_current_above_imax_is_refused_before_sending(sim, sim_bench):
    sent = refused_without_sending(sim, sim_bench, Stimulus(120.0, 250.0, 0.0, 60.0, 3),
                                   r"250 A RMS exceeds the meter rating meter_type.max_current_a = 200 A")
    assert sent == [] and not sim.world.load.output


def test_harmonics_count_towards_the_current_rating(sim, sim_bench):
    """150 A of fundamental is within Imax, but the half-wave profile's DC and even harmonics
    make it 212 A RMS: refused."""
    half_wave = load_profiles(HARMONICS_FILE)["half_wave"]
    sent = refused_without_sending(sim, sim_bench, Stimulus(120.0, 150.0, 0.0, 60.0, 3, harmonics=half_wave),
                                   r"212.\d+ A RMS exceeds the meter rating meter_type.max_current_a = 200 A")
    assert sent == []


def test_setpoint_outside_the_instrument_range_is_refused(sim):
    data = sim.profile_data()
    data["source"]["max_voltage_v"] = 100.0  # this lab's source is smaller than the meter's rating
    with Bench(profile_from_data(data, "lab.toml")) as bench:
        sent = refused_without_sending(sim, bench, Stimulus(110.0, 1.0, 0.0, 60.0, 3),
                                       r"source @ .*: voltage 110 V is outside the instrument range 0..100 V")
    assert sent == [] and sim.world.source.voltage_v == 0.0


def test_a_profile_cannot_widen_the_instruments_own_range(sim):
    data = sim.profile_data()
    data["source"]["max_voltage_v"] = 500.0  # the driver's specification stops at 300 V
    data["meter_type"]["max_voltage_v"] = 480.0
    with Bench(profile_from_data(data, "lab.toml")) as bench:
        sent = refused_without_sending(sim, bench, Stimulus(450.0, 1.0, 0.0, 60.0, 3),
                                       r"voltage 450 V is outside the instrument range 0..300 V")
    assert sent == []


def test_a_single_phase_source_cannot_feed_a_three_element_meter():
    with SimulatedBench("residential_2s") as sim:
        data = sim.profile_data()
        data["meter_type"].update(form="16S", elements=3)  # the profile claims a polyphase meter
        with pytest.raises(SafetyError, match=r"has 1 phase\(s\); meter_type.elements = 3 needs as many"):
            Bench(profile_from_data(data, "lab.toml")).__enter__()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # a failed open leaves no handler behind


def test_open_interlock_refuses_to_energise(sim, sim_bench, control):
    control.interlock(closed=False)
    with pytest.raises(SafetyError, match=r"interlock is OPEN"):
        measure_point(sim_bench, POINT)
    assert control.outputs_on() == (False, False)
    assert not any(c.startswith(("VOLT ", "OUTP ON")) for c in sim.source.received)


def test_interlock_opening_mid_dwell_ends_the_point(sim_bench, control):
    def open_the_door(*_):
        control.interlock(closed=False)

    with pytest.raises(SafetyError, match=r"interlock opened during '1.0 kW"):
        measure_point(sim_bench, POINT, progress=open_the_door)
    assert control.outputs_on() == (False, False)


def test_exception_mid_dwell_leaves_outputs_off(sim_bench, control):
    calls = []

    def failing_progress(*_):
        calls.append(control.outputs_on())
        if len(calls) == 3:
            raise RuntimeError("operator script failed")

    with pytest.raises(RuntimeError):
        measure_point(sim_bench, POINT, progress=failing_progress)
    assert calls[0] == (True, True)  # it really was energised mid-dwell
    assert control.outputs_on() == (False, False)


def test_keyboard_interrupt_mid_dwell_leaves_outputs_off(sim_bench, control):
    def interrupt(*_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        measure_point(sim_bench, POINT, progress=interrupt)
    assert control.outputs_on() == (False, False)


@pytest.mark.slow
def test_counter_link_lost_mid_dwell(sim_bench, control):
    def lose_counter(*_):
        control.fault("COUNTER", "SILENT")

    with pytest.raises(InstrumentError, match=r"^counter @ .*no reply before the timeout"):
        measure_point(sim_bench, POINT, progress=lose_counter)
    assert control.outputs_on() == (False, False)


@pytest.mark.slow
def test_source_link_drop_is_recovered_to_safe_state(sim, sim_bench, control):
    sim_bench.apply(POINT.stimulus(sim_bench))
    control.fault("SOURCE", "DROP")
    sim_bench.safe_state()
    assert control.outputs_on() == (False, False)


def test_an_interrupt_while_making_safe_still_makes_every_output_safe(sim, sim_bench, control, monkeypatch):
    sim_bench.apply(POINT.stimulus(sim_bench))
    load_safe = sim_bench.load.safe_state

    def interrupted():
        load_safe()
        raise KeyboardInterrupt

    monkeypatch.setattr(sim_bench.load, "safe_state", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sim_bench.safe_state()
    assert control.outputs_on() == (False, False)  # the source was still switched off


@pytest.mark.slow
def test_unconfirmable_safe_state_is_reported_loudly(sim_bench, control):
    sim_bench.apply(POINT.stimulus(sim_bench))
    control.fault("LOAD", "SILENT")
    with pytest.raises(SafetyError, match=r"could not confirm safe state: load @ "):
        sim_bench.safe_state()
    control.fault("LOAD", "NONE")


def test_opening_the_bench_makes_leftover_outputs_safe(sim):
    sim.world.source.voltage_v, sim.world.source.output = 240.0, True
    sim.world.load.currents_a, sim.world.load.output = [10.0] * 3, True
    with Bench(sim.profile()):
        assert not sim.world.source.output and not sim.world.load.output and sim.world.load.currents_a == [0.0] * 3


def test_meter_on_the_wrong_position_is_refused(sim):
    data = sim.profile_data()
    positions = data["positions"]
    positions[0]["serial"], positions[1]["serial"] = positions[1]["serial"], positions[0]["serial"]
    with pytest.raises(SafetyError, match=r"positions\[1\].serial: profile says SIM16A00002, "
                                          r"the meter on that position reports SIM16A00001"):
        Bench(profile_from_data(data, "lab.toml")).open()


@pytest.mark.slow
def test_sigterm_mid_dwell_leaves_outputs_off(tmp_path):
    """A pytest run on a scaled-time bench is terminated while energised: outputs end up off."""
    with SimulatedBench(scale=20.0) as sim:  # the five-minute dwell takes ~16 s of wall time
        profile = tmp_path / "sim.toml"
        profile.write_text(tomli_w.dumps(sim.profile_data()))
        run = subprocess.Popen(plan_command(tmp_path, "test_plans/", "--bench", str(profile), "-q"), cwd=REPO,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 30
            while not (sim.world.source.output and sim.world.load.output):
                assert time.monotonic() < deadline and run.poll() is None, "never energised"
                time.sleep(0.05)
            os.kill(run.pid, signal.SIGTERM)
            output, _ = run.communicate(timeout=30)
        finally:
            run.kill()
        assert run.returncode != 0
        assert not sim.world.source.output and not sim.world.load.output, output
        assert sim.world.time_s < 300  # it was stopped mid-dwell, not after


def test_every_energised_settle_watches_the_interlock(tmp_path, sim, sim_bench, control):
    """The audit's and firmware checks' settles wait through Bench.wait: an interlock opened while
    they settle ends the step at once (they used to sleep on the clock, blind to it)."""
    from bench.plans.audit import Audit
    from bench.plans.firmware import FirmwareChecks
    from bench.records import store

    audit = Audit(sim_bench, store.connect(f"sqlite:///{tmp_path / 'records.sqlite'}"), tmp_path / "keys", POINT)
    for settle in (audit.energise_nominal, FirmwareChecks(sim_bench, POINT).energise_payload):
        control.interlock(closed=True)
        sim_bench.safe_state()
        control.schedule(1.0, "SIM:INT OPEN")
        with pytest.raises(SafetyError, match=r"interlock opened during 'settling at"):
            settle()
        control.clear_schedule()


def test_a_long_wait_on_a_clock_that_takes_wall_time_watches_the_interlock_throughout():
    """An hour's wait on a real (here scaled) clock used to look at the interlock only at its end:
    it is watched every second of wall time, ends within a slice of the door opening, and says
    how far it is (a step event each slice) so the operator sees it is not hung."""
    with SimulatedBench(scale=200.0) as sim:
        control, door = (SimControlClient(sim.control.resource).open() for _ in range(2))
        seen = []
        with Bench(sim.profile()) as bench:
            bench.events.subscribe(lambda e: seen.append(e) if e.kind == "step" else None)
            bench.apply(POINT.stimulus(bench))
            started = control.time()
            opening = threading.Timer(2.5, lambda: door.interlock(closed=False))  # 2.5 s into 18 s (wall)
            opening.start()
            with pytest.raises(SafetyError, match=r"interlock opened during 'interval records'"):
                bench.wait(3600.0, "interval records")
            waited_s = control.time() - started
            opening.join()
        assert control.outputs_on() == (False, False)  # the bench's exit, as a plan's point would
        control.close(), door.close()
    # the door opened ~500 s of bench time into the wait; it ended within a slice (~200 s) of that,
    # with room for a slow machine's second slice (the meters' interval boundaries, every 900 s,
    # were the only places the interlock was looked at before)
    assert 450.0 <= waited_s < 500.0 + 2 * 200.0 + 100.0, waited_s
    assert seen and all(e.data["name"] == "interval records" and e.data["expected_s"] == 3600.0 for e in seen)
    assert [e.data["elapsed_s"] for e in seen] == sorted(e.data["elapsed_s"] for e in seen)
