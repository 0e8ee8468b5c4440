"""AMETEK / California Instruments three-phase source: the driver pinned to the manuals' exchanges,
then the driver against its twin over loopback, asserting the world it leaves behind."""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from bench.metrology.harmonics import synthesize
from bench.sim.board import load_board
from bench.sim.simbench import board_path
from bench.sim.twins import Served
from bench.sim.twins.ametek_ci import serve
from bench.sim.world import World
from instruments.errors import InstrumentError, RangeError, ReplyError
from instruments.registry import check_driver_class
from instruments.roles import Capability, PhaseVoltage
from instruments.vendors.ametek_ci import AmetekCiSource
from tests.drivers.protocol import expected_protocol

OK = '0,"No error"'
ADDRESS = "TCPIP0::127.0.0.1::5025::SOCKET"  # never connected: the exchange tests script the line
POSITIVE = (0.0, -120.0, 120.0)  # the bench's positive sequence (degrees from phase 1, leading)
Q = 1e-5  # the driver's trace resolution: five decimals of a wave scaled to a peak of 1


@dataclass(frozen=True)
class H:
    order: int
    pct: float
    phase_deg: float


def phases(volts: tuple[float, ...], angles: tuple[float, ...] = POSITIVE) -> list[PhaseVoltage]:
    return [PhaseVoltage(v, a) for v, a in zip(volts, angles)]


def source(**kwargs) -> AmetekCiSource:
    return AmetekCiSource(ADDRESS, **kwargs)


def phase_line(number: int, volts: str, phas: str) -> tuple[str, str]:
    return f"INST:COUP NONE;:INST:NSEL {number};:VOLT {volts};:PHAS {phas};:SYST:ERR?", OK


def expected_trace(harmonics: list[H]) -> tuple[str, float, float]:
    """The trace as the Sequoia manual 4.29 takes it, worked out here independently of the driver:
    the points, the rms of the DC-free wave over its fundamental's (by a direct DFT sum), and the
    fundamental's amplitude in the sent (peak 1) units."""
    n = np.arange(1024)
    wave = np.sin(2 * np.pi * n / 1024)
    for h in harmonics:
        wave += h.pct / 100 * np.sin(2 * np.pi * h.order * n / 1024 + math.radians(h.phase_deg))
    peak = np.max(np.abs(wave))
    text = ",".join(f"{x:.5f}" for x in wave / peak)
    points = np.array([float(t) for t in text.split(",")])
    points -= points.mean()
    fundamental = abs(np.sum(points * np.exp(-2j * np.pi * n / 1024))) * 2 / 1024
    return text, float(np.sqrt(np.mean(points ** 2)) / (fundamental / math.sqrt(2))), float(1 / peak)


# -- the manuals' exchanges ---------------------------------------------------------------------


def test_identifies_as_in_the_manual_example():
    """Lx II manual 5.3 *IDN?: four fields, e.g. ``CALIFORNIA INSTRUMENTS,4500LX,12435,0.1``."""
    src = source()
    with expected_protocol(src, [("*IDN?", "CALIFORNIA INSTRUMENTS,4500LX,12435,0.1"), ("*CLS", None)],
                           opened=False):
        src.open()
    assert src.idn == "CALIFORNIA INSTRUMENTS,4500LX,12435,0.1"
    assert src.phases == 3


def test_positive_sequence_is_the_manuals_reset_angles():
    """Lx II manual 4.20: PHASe applies to the phase INSTrument:NSELect chose, not influenced by
    INSTrument:COUPle ALL; positive angles lead; *RST gives phase 1 = 0°, phase 2 = 240°, phase 3 =
    120°. The bench's 0/-120/+120 (leading) is that sequence: -120° is sent as 240°."""
    src = source()
    with expected_protocol(src, [("FREQ 60.00000;:SYST:ERR?", OK),
                                 phase_line(1, "120.0000", "0.000"),
                                 phase_line(2, "120.0000", "240.000"),
                                 phase_line(3, "120.0000", "120.000"),
                                 ("INST:COUP ALL;:FUNC:SHAP SIN;:SYST:ERR?", OK)]):
        src.program_voltages(phases((120.0, 120.0, 120.0)), 60.0, [])


def test_unbalanced_reversed_sequence_sets_each_phase():
    """The same per-phase path for any magnitudes and angles: a reversed sequence is 120°/240°."""
    src = source()
    with expected_protocol(src, [("FREQ 50.00000;:SYST:ERR?", OK),
                                 phase_line(1, "230.0000", "0.000"),
                                 phase_line(2, "220.0000", "120.000"),
                                 phase_line(3, "210.5000", "240.000"),
                                 ("INST:COUP ALL;:FUNC:SHAP SIN;:SYST:ERR?", OK)]):
        src.program_voltages(phases((230.0, 220.0, 210.5), (0.0, 120.0, -120.0)), 50.0, [])


def test_harmonics_go_as_a_1024_point_trace_and_the_rms_of_the_whole_wave():
    """Sequoia manual 4.29: TRACe:DEFine a name, TRACe[:DATA] <name>,<1024 points of one cycle, the
    first at 0°, any units>, select it with FUNCtion:SHAPe; the source removes the DC and outputs
    the programmed rms. So VOLT is the fundamental's rms times the trace's rms over its fundamental's
    (sqrt(1.01) for 10 % of the 5th, up to the five-decimal points)."""
    profile = [H(5, 10.0, 0.0)]
    text, factor, _ = expected_trace(profile)
    assert factor == pytest.approx(math.sqrt(1.01), abs=1e-4)
    volts = f"{230.0 * factor:.4f}"
    src = source()
    with expected_protocol(src, [("FREQ 50.00000;:SYST:ERR?", OK),
                                 ("FUNC?", "SIN"),
                                 ("TRAC:CAT?", "SIN"),
                                 ("TRAC:DEF BENCH1;:SYST:ERR?", OK),
                                 (f"TRAC BENCH1,{text};:SYST:ERR?", OK),
                                 ("INST:COUP ALL;:FUNC:SHAP BENCH1;:SYST:ERR?", OK),
                                 phase_line(1, volts, "0.000"),
                                 phase_line(2, volts, "240.000"),
                                 phase_line(3, volts, "120.000")]):
        src.program_voltages(phases((230.0, 230.0, 230.0)), 50.0, profile)


def test_the_trace_on_the_output_is_never_rewritten():
    """With BENCH1 on the output the other name is written; a name in the catalog (quoted or not)
    is not defined again."""
    profile = [H(3, 5.0, 30.0)]
    text, factor, _ = expected_trace(profile)
    volts = f"{120.0 * factor:.4f}"
    src = source()
    with expected_protocol(src, [("FREQ 60.00000;:SYST:ERR?", OK),
                                 ("FUNC?", "BENCH1"),
                                 ("TRAC:CAT?", '"SIN","BENCH1","BENCH2"'),
                                 (f"TRAC BENCH2,{text};:SYST:ERR?", OK),
                                 ("INST:COUP ALL;:FUNC:SHAP BENCH2;:SYST:ERR?", OK),
                                 phase_line(1, volts, "0.000"),
                                 phase_line(2, volts, "240.000"),
                                 phase_line(3, volts, "120.000")]):
        src.program_voltages(phases((120.0, 120.0, 120.0)), 60.0, profile)


@pytest.mark.parametrize(("register", "tripped"), [
    ("0", []), ("1", ["OV"]), ("2", ["OCP"]), ("16", ["TO"]), ("18", ["OCP", "TO"]),
    ("8", []), ("512", []), ("2048", []), ("4096", []), ("8192", []),
])
def test_protection_is_ov_ocp_or_to_of_the_questionable_condition(register, tripped):
    """Lx II manual Table 4-4: OV bit 0 (1), OCP bit 1 (2), TO bit 4 (16) are protections that
    tripped; UNR (8), RI (512), Rail (2048), CL rms (4096) and Isum (8192) are not trips.
    STATus:QUEStionable:CONDition? is the real-time register (p. 101)."""
    src = source()
    with expected_protocol(src, [("STAT:QUES:COND?", register), ("STAT:QUES:COND?", register)]):
        assert src.protections() == tripped
        assert src.protection_tripped() is bool(tripped)


def test_output_on_off_and_safe_state_read_back():
    src = source()
    with expected_protocol(src, [("OUTP ON;:SYST:ERR?", OK), ("OUTP?", "1"),
                                 ("OUTP OFF;:SYST:ERR?", OK), ("OUTP?", "0"),
                                 ("OUTP OFF;:SYST:ERR?", OK), ("OUTP?", "0")]):
        src.switch_on()
        assert src.output_on() is True
        src.safe_state()
        src.safe_state()


def test_safe_state_that_does_not_read_back_off_is_an_error():
    src = source()
    with expected_protocol(src, [("OUTP OFF;:SYST:ERR?", OK), ("OUTP?", "1")]):
        with pytest.raises(InstrumentError, match="output still on"):
            src.safe_state()


def test_a_rejected_setting_names_the_command_and_the_instruments_error():
    src = source()
    with expected_protocol(src, [("OUTP ON;:SYST:ERR?", '-221,"Settings conflict"'), ("SYST:ERR?", OK)]):
        with pytest.raises(InstrumentError, match=r"source @ .*rejected 'OUTP ON': -221 Settings conflict"):
            src.switch_on()


@pytest.mark.parametrize(("command", "reply", "call"), [
    ("OUTP?", "#\x15?!", lambda s: s.output_on()),
    ("STAT:QUES:COND?", "70000", lambda s: s.protection_tripped()),
    ("STAT:QUES:COND?", "2.5", lambda s: s.protection_tripped()),
])
def test_a_garbled_reply_is_a_one_line_error_naming_the_instrument(command, reply, call):
    src = source()
    with expected_protocol(src, [(command, reply)]):
        with pytest.raises(ReplyError) as caught:
            call(src)
    assert str(caught.value).startswith(f"source @ {ADDRESS}: garbled reply to '{command}'")
    assert "\n" not in str(caught.value)


def test_a_garbled_waveform_name_stops_before_the_trace_is_written():
    src = source()
    with expected_protocol(src, [("FREQ 50.00000;:SYST:ERR?", OK), ("FUNC?", "SIN,\x15#")]):
        with pytest.raises(ReplyError, match="garbled reply to 'FUNC\\?'"):
            src.program_voltages(phases((230.0, 230.0, 230.0)), 50.0, [H(5, 10.0, 0.0)])


@pytest.mark.parametrize(("asked", "harmonics", "message"), [
    (phases((301.0, 230.0, 230.0)), [], "voltage 301 V is outside"),
    (phases((-1.0, 230.0, 230.0)), [], "voltage -1 V is outside"),
    (phases((230.0, 230.0)), [], "has 3 phases; 2 were asked for"),
    (phases((230.0, 230.0, 230.0), (0.0, math.nan, 120.0)), [], "not a finite number"),
    (phases((230.0, 230.0, 230.0)), [H(0, 1.0, 0.0)], "order 0 cannot be programmed"),
    (phases((230.0, 230.0, 230.0)), [H(1, 1.0, 0.0)], "order 1 cannot be programmed"),
    (phases((230.0, 230.0, 230.0)), [H(512, 1.0, 0.0)], "order 512 cannot be programmed"),
    (phases((230.0, 230.0, 230.0)), [H(2.0, 1.0, 0.0)], "order 2.0 cannot be programmed"),  # type: ignore[arg-type]
    (phases((230.0, 230.0, 230.0)), [H(5, -1.0, 0.0)], "not a finite magnitude"),
    (phases((230.0, 230.0, 230.0)), [H(5, math.inf, 0.0)], "not a finite magnitude"),
    (phases((230.0, 230.0, 230.0)), [H(5, 1.0, 0.0), H(5, 2.0, 0.0)], "appears twice"),
    (phases((299.0, 230.0, 230.0)), [H(5, 10.0, 0.0)], "phase 1: 299 V of fundamental with these harmonics"),
])
def test_refused_before_anything_is_sent(asked, harmonics, message):
    src = source()
    with expected_protocol(src, []):
        with pytest.raises(RangeError, match=message):
            src.program_voltages(asked, 50.0, harmonics)


def test_frequency_and_the_profiles_narrower_range_are_refused_before_anything_is_sent():
    src = source(ranges={"voltage": (0.0, 250.0)})
    with expected_protocol(src, []):
        with pytest.raises(RangeError, match="frequency 10 Hz is outside"):
            src.program_voltages(phases((230.0, 230.0, 230.0)), 10.0, [])
        with pytest.raises(RangeError, match="voltage 260 V is outside the instrument range 0..250 V"):
            src.check_voltage(260.0, 50.0)


def test_the_class_fills_the_source_role():
    check_driver_class("ametek-ci", AmetekCiSource)
    assert AmetekCiSource.ROLES == {"source"}
    assert AmetekCiSource.CAPABILITIES == {Capability.VOLTAGE_PER_PHASE, Capability.VOLTAGE_ANGLE_PER_PHASE,
                                           Capability.VOLTAGE_HARMONICS, Capability.PROTECTION_READBACK}
    assert "7004-981" in AmetekCiSource.MANUAL


# -- the driver against its twin, over loopback ---------------------------------------------------


@pytest.fixture
def world() -> World:
    return load_board(board_path("default")).world


@pytest.fixture
def served(world: World) -> Iterator[Served]:
    twin = serve(world)
    yield twin
    twin.stop()


@pytest.fixture
def driver(served: Served) -> Iterator[AmetekCiSource]:
    assert served.address.startswith("TCPIP0::127.0.0.1::")
    src = AmetekCiSource(served.address, timeout_s=2.0)
    src.open()
    yield src
    src.close()


def test_twin_takes_a_balanced_positive_sequence(world, driver):
    driver.program_voltages(phases((120.0, 120.0, 120.0)), 60.0, [])
    with world.lock:
        assert world.source.voltages_v == [120.0, 120.0, 120.0]
        assert world.source.angles_deg == pytest.approx(list(POSITIVE))
        assert world.source.frequency_hz == 60.0
        assert world.source.harmonics == {}


def test_twin_takes_per_phase_magnitudes_and_a_reversed_sequence(world, driver):
    driver.program_voltages(phases((230.0, 220.0, 210.5), (0.0, 120.0, -120.0)), 50.0, [])
    with world.lock:
        assert world.source.voltages_v == [230.0, 220.0, 210.5]
        assert world.source.angles_deg == pytest.approx([0.0, 120.0, -120.0])


def quantisation_bounds(profile: list[H]) -> dict[int, tuple[float, float]]:
    """Per order, how far the world's (pct, phase) may be from the programmed ones. 1024 points hold
    orders up to 511 exactly (no leakage), so the only error is the five-decimal rounding: each
    point is off by at most Q/2, which moves every phasor's amplitude by at most (2/N)·N·Q/2 = Q (in
    units of the peak) and its angle by at most Q over its amplitude. With A1 the fundamental's
    amplitude and Ah = a·A1 the harmonic's: pct is off by at most 100·Q/A1·(1 + a), the phase by
    Q/Ah + h·Q/A1 radians (the h-fold fundamental reference)."""
    _, _, a1 = expected_trace(profile)
    bounds = {}
    for h in profile:
        a = h.pct / 100
        bounds[h.order] = (100 * Q / a1 * (1 + a), math.degrees(Q / (a * a1) + h.order * Q / a1))
    return bounds


def assert_profile(world: World, profile: list[H]) -> None:
    bounds = quantisation_bounds(profile)
    assert set(world.source.harmonics) == {h.order for h in profile}
    for h in profile:
        got = world.source.harmonics[h.order]
        pct_tol, phase_tol = bounds[h.order]
        assert got.pct == pytest.approx(h.pct, abs=pct_tol)
        assert (got.phase_deg - h.phase_deg + 180) % 360 - 180 == pytest.approx(0.0, abs=phase_tol)


def test_twin_receives_a_harmonic_profile_and_keeps_the_fundamental(world, served, driver):
    """10 % of the 5th at 0°: bounds 0.0012 % and 0.0095°. The fundamental is off by at most
    5e-5 V (VOLT's four decimals) times the fundamental's share of the rms."""
    profile = [H(5, 10.0, 0.0)]
    driver.program_voltages(phases((230.0, 230.0, 230.0)), 50.0, profile)
    with world.lock:
        assert_profile(world, profile)
        assert world.source.voltages_v == pytest.approx([230.0] * 3, abs=5e-5)
        assert world.source.angles_deg == pytest.approx(list(POSITIVE))
        setting = float(served.device.settings_v[0])
        true_rms = float(np.sqrt(np.mean(synthesize(world.source.voltages_v[0], 0.0,
                                                    tuple(world.source.harmonics.values())) ** 2)))
    # The source's VOLT is the whole wave's rms: the world's wave has it, to VOLT's rounding
    # (5e-5 V) plus the orders below the twin's 0.01 % floor (energy under 1e-9 of the whole).
    assert true_rms == pytest.approx(setting, abs=1e-3)
    assert setting == pytest.approx(230.0 * math.sqrt(1.01), abs=1e-3)


def test_twin_receives_a_mixed_profile_up_to_high_orders(world, driver):
    profile = [H(3, 5.0, 30.0), H(7, 3.0, -45.0), H(49, 1.0, 90.0), H(200, 0.5, 170.0), H(511, 0.2, -90.0)]
    driver.program_voltages(phases((120.0, 118.0, 121.0), (0.0, 120.0, -120.0)), 60.0, profile)
    with world.lock:
        assert_profile(world, profile)
        assert world.source.voltages_v == pytest.approx([120.0, 118.0, 121.0], abs=5e-5)


def test_twin_goes_back_to_the_sine_and_the_traces_take_turns(world, driver):
    profile = [H(5, 10.0, 0.0)]
    driver.program_voltages(phases((230.0, 230.0, 230.0)), 50.0, profile)
    assert driver.query("FUNC?") == "BENCH1"
    driver.program_voltages(phases((230.0, 230.0, 230.0)), 50.0, [H(3, 4.0, 180.0)])
    assert driver.query("FUNC?") == "BENCH2"
    with world.lock:
        assert_profile(world, [H(3, 4.0, 180.0)])
    driver.program_voltages(phases((230.0, 230.0, 230.0)), 50.0, profile)
    assert driver.query("FUNC?") == "BENCH1"
    assert driver.query("TRAC:CAT?") == "SIN,BENCH1,BENCH2"
    driver.program_voltages(phases((230.0, 230.0, 230.0)), 50.0, [])
    assert driver.query("FUNC?") == "SIN"
    with world.lock:
        assert world.source.harmonics == {}
        assert world.source.voltages_v == [230.0, 230.0, 230.0]


def test_twin_output_and_protection(world, served, driver):
    driver.switch_on()
    assert driver.output_on() is True
    assert world.source.output is True
    driver.safe_state()
    driver.safe_state()
    assert world.source.output is False
    with world.lock:
        world.source.tripped = True
    assert driver.protections() == ["OCP"]
    with pytest.raises(InstrumentError, match="-221"):
        driver.switch_on()
    assert world.source.output is False
    driver.set("OUTP:PROT:CLE")
    assert driver.protection_tripped() is False
    driver.switch_on()
    assert world.source.output is True


def test_twin_speaks_long_forms_and_phase_is_per_selected_phase(world, driver):
    """Lx II 4.20: PHASe is not influenced by INSTrument:COUPle ALL; VOLTage under COUPle ALL is
    every phase's, under NONE the selected one's (``inst:coup none;:inst:nsel 2;:phas 120.0`` is
    how svp_energy_lab's gridsim_ametek writes it)."""
    driver.set("INSTrument:COUPle ALL;:SOURce:VOLTage:LEVel:IMMediate:AMPLitude 50")
    assert world.source.voltages_v == [50.0, 50.0, 50.0]
    driver.set("inst:coup none;:inst:nsel 2;:phas 120.0")
    driver.set("INSTrument:COUPle NONE;:INSTrument:NSELect 3;:SOURce:VOLTage:AC 110;:SOURce:PHASe:IMMediate -90")
    driver.set("INST:COUP ALL;:INST:NSEL 1;:PHAS 10")
    with world.lock:
        assert world.source.voltages_v == [50.0, 50.0, 110.0]
        assert world.source.angles_deg == pytest.approx([10.0, 120.0, -90.0])
    driver.set("INST:NSEL 3")
    assert driver.query("INST:NSEL?") == "3"
    assert float(driver.query("PHAS?")) == 270.0
    assert float(driver.query("VOLT?")) == 110.0
    assert driver.query("INST:COUP?") == "ALL"


def test_twin_refuses_a_second_wave_shape_on_the_board(world, driver):
    """The simulated board models one wave shape: selecting the sine on one phase while the
    others carry the trace is a settings conflict, and the world is left as it was."""
    profile = [H(5, 10.0, 0.0)]
    driver.program_voltages(phases((230.0, 230.0, 230.0)), 50.0, profile)
    with pytest.raises(InstrumentError, match="-221 Settings conflict;one wave shape"):
        driver.set("INST:COUP NONE;:INST:NSEL 2;:FUNC:SHAP SIN")
    with world.lock:
        assert_profile(world, profile)
    assert driver.query("FUNC?") == "BENCH1"


@pytest.mark.parametrize(("command", "error"), [
    ("TRAC:DEF SIN", "-224"),
    ("TRAC:DEF BENCH1", "-221 Settings conflict;waveform BENCH1 is already defined"),
    ("TRAC NOSUCH," + ",".join(["0"] * 1024), "-224"),
    ("TRAC BENCH1," + ",".join(["0.5"] * 1023), "-109 Missing parameter"),
    ("TRAC BENCH1," + ",".join(["0.5"] * 1025), "-108 Parameter not allowed"),
    ("TRAC BENCH1," + ",".join(["0.5"] * 1024), "-224 Illegal parameter value;waveform has no fundamental"),
    ("FUNC:SHAP SQU", "-224"),
    ("FUNC:SHAP EMPTY", "-221 Settings conflict;waveform EMPTY has no data"),
    ("INST:NSEL 4", "-222"),
    ("PHAS 361", "-222"),
])
def test_twin_refuses_what_the_manual_or_the_board_does_not_allow(driver, command, error):
    driver.set("TRAC:DEF BENCH1")
    driver.set("TRAC:DEF EMPTY")
    with pytest.raises(InstrumentError, match=error):
        driver.set(command)


def test_twin_garbled_link_is_a_one_line_error(served, driver):
    served.device.inject_fault("GARBLE")
    with pytest.raises(ReplyError) as caught:
        driver.output_on()
    assert str(caught.value).startswith(f"source @ {served.address}: garbled reply to 'OUTP?'")
    assert "\n" not in str(caught.value)
