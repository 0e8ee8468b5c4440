"""The Fluke 6100B/6105A driver: pinned to its Users Manual by exact exchanges, then run against its
twin over a loopback socket with the physics of what it reports checked.

Manual: *Fluke 6100B/6105A Electrical Power Standards Users Manual*, chapter 5 (pages and sections
quoted per test) and chapter 7, section 7-4.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from bench.metrology.harmonics import Harmonic
from bench.sim.board import load_board
from bench.sim.simbench import board_path
from bench.sim.twins import Served
from bench.sim.twins.fluke_6105a import serve
from bench.sim.world import World
from instruments.errors import InstrumentError, RangeError, ReplyError
from instruments.registry import DriverSettings, check_driver_class
from instruments.roles import Capability, PhaseCurrent, PhaseVoltage
from instruments.vendors.fluke_6105a import Fluke6105a
from tests.drivers.protocol import expected_protocol

OK = '0,"No error"'
NAME = r"source\+load\+reference @ scripted"
THREE_PHASES = [PhaseVoltage(120.0, 0.0), PhaseVoltage(120.0, -120.0), PhaseVoltage(120.0, 120.0)]


def made(phases: int = 3, *, energy: bool = True, max_current_a: float = 21.0,
         ranges: dict[str, tuple[float, float]] | None = None) -> Fluke6105a:
    """A driver taken as open, with the fitment its *OPT? and FITTed? replies would have given."""
    driver = Fluke6105a("scripted", ranges=ranges)
    driver.phases, driver.energy_option, driver.max_current_a = phases, energy, max_current_a
    return driver


def set_line(command: str, reply: str = OK) -> tuple[str, str]:
    """A setting goes with its error-queue query on one line (instruments/scpi.py)."""
    return f"{command};:SYST:ERR?", reply


# -- the manual's own examples, as exchanges ---------------------------------------------------------

def test_opening_reads_the_fitment_of_the_manuals_example():
    """5-117 (page 5-64): "a 6100B and a 6101B, the latter having 80A and bandwidth option would report
    0,0,0,3,0,0,0,0"; 5-52 (page 5-32): FITTed? is 1 for a present phase. Two phases; the 80 A option
    on phase 2 only, so 21 A is the most every phase can give; no energy option. (The *IDN? reply is
    not the manual's: its page was not read.)"""
    driver = Fluke6105a("scripted")
    with expected_protocol(driver, [
        ("*IDN?", "FLUKE,6100B,12345,1.0"), ("*CLS", None),
        ("*OPT?", "0,0,0,3,0,0,0,0"),
        ("SOUR:PHAS1:FITT?", "1"), ("SOUR:PHAS2:FITT?", "1"), ("SOUR:PHAS3:FITT?", "0"),
        set_line("UNIT:MHAR:VOLT ABS"), set_line("UNIT:MHAR:CURR ABS"),
    ], opened=False):
        driver.open()
    assert (driver.phases, driver.max_current_a, driver.energy_option) == (2, 21.0, False)
    assert driver.options == (0, 0, 0, 3, 0, 0, 0, 0)


def test_opening_refuses_phases_with_a_gap_and_closes():
    driver = Fluke6105a("scripted")
    with expected_protocol(driver, [
        ("*IDN?", "FLUKE,6105A,12345,1.0"), ("*CLS", None), ("*OPT?", "4,0,0,0,0,0,0,0"),
        ("SOUR:PHAS1:FITT?", "1"), ("SOUR:PHAS2:FITT?", "0"), ("SOUR:PHAS3:FITT?", "1"),
    ], opened=False):
        with pytest.raises(InstrumentError, match=rf"{NAME}: phases fitted \[1, 3\]"):
            driver.open()
    assert not driver.is_open


@pytest.mark.parametrize("reply", [
    "2.5E0,9.0E1,0.0E0,0.0E0,1.09E0,0.0E0,0.0E0,0.0E0,2.5E-1,1.65E2",
    '"2.5E0,9.0E1,0.0E0,0.0E0,1.09E0,0.0E0,0.0E0,0.0E0,2.5E-1,1.65E2"',  # as the manual prints it
])
def test_current_harmonic_list_is_the_manuals_example(reply):
    """Page 5-45 (section 5-69): harmonics 1 2.5 A 90 deg, 3 1.09 A, 5 0.25 A 165 deg give
    ALL? "2.5E0,9.0E1,0.0E0,0.0E0,1.09E0,0.0E0,0.0E0,0.0E0,2.5E-1,1.65E2"."""
    with expected_protocol(made(), [("SOUR:PHAS1:CURR:MHAR:ALL?", reply)]) as driver:
        content = driver.harmonic_content(1, "CURR")
    assert content == ((1, 2.5, 90.0), (2, 0.0, 0.0), (3, 1.09, 0.0), (4, 0.0, 0.0), (5, 0.25, 165.0))


def test_thd_from_the_manuals_voltage_example():
    """Page 5-37 (section 5-55): 25 V at 90 deg, 10.9 V third, 2.5 V fifth at 165 deg. A one-phase
    instrument's readings, every number in the manual's "standard scientific format" (5-53: 24.3 kW
    is 2.43E4; 5-43: 14.4 A is 1.44E1). THD = sqrt(10.9^2 + 2.5^2) / 25."""
    with expected_protocol(made(1), [
        ("SOUR:PHAS1:VOLT:MHAR:AMPL?", "2.73872E1"),
        ("SOUR:PHAS1:CURR:AMPL?", "1.44E1"),
        ("SOUR:PHAS1:POW:WATT?", "2.43E4"),
        ("SOUR:PHAS1:POW:VA?", "4.86E4"),
        ("SOUR:PHAS1:VOLT:MHAR:HARM1:PANG?", "9.0E1"),
        ("SOUR:FREQ?", "5.0E1"),
        ("SOUR:PHAS1:VOLT:MHAR:ALL?", "2.5E1,9.0E1,0.0E0,0.0E0,1.09E1,0.0E0,0.0E0,0.0E0,2.5E0,1.65E2"),
        ("SOUR:PHAS1:CURR:MHAR:ALL?", "1.44E1,3.0E1"),
    ]) as driver:
        readings = driver.readings()
    assert readings.voltages_v == (27.3872,)  # sqrt(25^2 + 10.9^2 + 2.5^2)
    assert readings.currents_a == (14.4,)
    assert (readings.power_w, readings.power_factor, readings.frequency_hz) == (24300.0, 0.5, 50.0)
    assert readings.thd_voltage_pct == pytest.approx(100 * math.hypot(10.9, 2.5) / 25, rel=1e-12)
    assert readings.thd_current_pct == 0.0
    assert readings.voltage_angles_deg == (0.0,)
    assert readings.harmonic_power_w == ()  # no power-by-order query in the manual


def test_voltages_go_as_absolute_harmonic_amplitudes():
    """Page 5-36: HARMonic<y> <amplitude>,<phase>, amplitude "in the presently selected voltage
    amplitude units" (absolute, selected at open): 5 % of 120 V is 6 V. Angles from phase 1."""
    with expected_protocol(made(), [
        set_line("SOUR:FREQ 60"),
        set_line("SOUR:PHAS1:VOLT:MHAR:STAT ON"), set_line("SOUR:PHAS1:VOLT:MHAR:CLE"),
        set_line("SOUR:PHAS1:VOLT:MHAR:HARM1 120,0.0000"), set_line("SOUR:PHAS1:VOLT:MHAR:HARM5 6,30.0000"),
        set_line("SOUR:PHAS2:VOLT:MHAR:STAT ON"), set_line("SOUR:PHAS2:VOLT:MHAR:CLE"),
        set_line("SOUR:PHAS2:VOLT:MHAR:HARM1 120,-120.0000"), set_line("SOUR:PHAS2:VOLT:MHAR:HARM5 6,30.0000"),
        set_line("SOUR:PHAS3:VOLT:MHAR:STAT ON"), set_line("SOUR:PHAS3:VOLT:MHAR:CLE"),
        set_line("SOUR:PHAS3:VOLT:MHAR:HARM1 120,120.0000"), set_line("SOUR:PHAS3:VOLT:MHAR:HARM5 6,30.0000"),
    ]) as driver:
        driver.program_voltages(THREE_PHASES, 60.0, [Harmonic(5, 5.0, 30.0)])


def test_currents_lead_by_minus_the_lag_and_dc_is_harmonic_zero_at_zero_degrees():
    """Page 5-36: "DC is represented by harmonic number zero ... The phase angle for the 0th harmonic
    (DC) must be zero"; the current angle is referred to its own phase's voltage (7-4), so a 60 deg
    lag is -60. 2 % DC of 5 A is 0.1 A, whatever phase the profile gave it."""
    lines = []
    for x in (1, 2, 3):
        lines += [set_line(f"SOUR:PHAS{x}:CURR:MHAR:STAT ON"), set_line(f"SOUR:PHAS{x}:CURR:MHAR:CLE"),
                  set_line(f"SOUR:PHAS{x}:CURR:MHAR:HARM1 5,-60.0000"),
                  set_line(f"SOUR:PHAS{x}:CURR:MHAR:HARM0 0.1,0.0000")]
    with expected_protocol(made(), lines) as driver:
        driver.program_currents([PhaseCurrent(5.0, 60.0)] * 3, [Harmonic(0, 2.0, 15.0)])


def test_one_output_for_every_channel_switched_and_read_back():
    """5-92 (page 5-58): ":OUTPut OFF" turns all channels off, Maintain Voltage or not."""
    with expected_protocol(made(), [
        set_line("OUTP ON"), ("OUTP:STAT?", "1"),
        set_line("OUTP OFF"), ("OUTP:STAT?", "0"),
        set_line("OUTP OFF"), ("OUTP:STAT?", "1"),
    ]) as driver:
        driver.switch_on()
        assert driver.output_on() is True
        driver.safe_state()
        with pytest.raises(InstrumentError, match=f"{NAME}: output still on after OUTP OFF"):
            driver.safe_state()


@pytest.mark.parametrize(("constant", "unit", "wh"), [
    ("1.0E5", "IPKWH", 0.01), ("2.0E4", "IPWH", 5e-5), ("1.0E-5", "WHPI", 1e-5), ("2.5E0", "KWHPI", 2500.0),
    ("1.0E9", "IPMWH", 1e-3), ("1.0E-9", "MWHPI", 1e-3),
])
def test_pulse_constant_from_the_output_meter_constant_and_its_unit(constant, unit, wh):
    """5-106, 5-107 (pages 5-60, 5-61): ENERgy:OUTPut:CONStant(?) and :UNIT(?)
    {IPWH|IPKWH|IPMWH|WHPI|KWHPI|MWHPI}."""
    with expected_protocol(made(), [("ENER:OUTP:CONS?", constant), ("ENER:OUTP:CONS:UNIT?", unit)]) as driver:
        assert driver.pulse_constant_wh() == pytest.approx(wh, rel=1e-12)


def test_meter_constants_debounce_and_pullups():
    """5-94..5-108: the unit goes first, so the number is never read in the old unit."""
    with expected_protocol(made(), [
        set_line("ENER:MUT:CONS:UNIT IPKWH"), set_line("ENER:MUT:CONS 1000"),
        set_line("ENER:REF:CONS:UNIT WHPI"), set_line("ENER:REF:CONS 1e-05"),
        set_line("ENER:OUTP:CONS:UNIT IPKWH"), set_line("ENER:OUTP:CONS 100000"),
        set_line("ENER:MUT:DEB ON"), set_line("ENER:REF:DEB OFF"),
        set_line("ENER:MUT:PULL R150"), set_line("ENER:REF:PULL R1000"), set_line("ENER:OUTP:PULL OFF"),
        ("ENER:MUT:CONS?", "1.0E3"), ("ENER:MUT:CONS:UNIT?", "IPKWH"),
    ]) as driver:
        driver.set_meter_constant("MUT", 1000, "IPKWH")
        driver.set_meter_constant("REFERENCE", 1e-5, "WHPI")
        driver.set_meter_constant("OUTPUT", 100000, "IPKWH")
        driver.set_debounce("MUT", True)
        driver.set_debounce("REFERENCE", False)
        driver.set_pullup("MUT", "R150")
        driver.set_pullup("REFERENCE", "R1000")
        driver.set_pulse_output_pullup(False)
        assert driver.meter_constant("MUT") == (1000.0, "IPKWH")


def test_a_mut_source_that_takes_the_reference_channel_is_caught_on_read_back():
    """5-97 (page 5-59): "If the requested source channel is already in use as part of a reference
    source definition, the reference source definition will default to a value that does not clash
    with the MUT source (typically MAIN)"; the driver defines the MUT first and reads both back."""
    with expected_protocol(made(), [
        set_line("ENER:MUT:SOUR SUM123"), set_line("ENER:REF:SOUR CH6"),
        ("ENER:MUT:SOUR?", "SUM123"), ("ENER:REF:SOUR?", "CH6"),
        set_line("ENER:MUT:SOUR CH1TO6"), set_line("ENER:REF:SOUR MEAN56"),
        ("ENER:MUT:SOUR?", "CH1TO6"), ("ENER:REF:SOUR?", "MAIN"),
        set_line("ENER:ABOR"),
    ]) as driver:
        driver.configure_pulse_sources("SUM123", "CH6")
        with pytest.raises(InstrumentError, match=f"{NAME}: pulse sources read back as MUT CH1TO6, reference MAIN"):
            driver.configure_pulse_sources("CH1TO6", "MEAN56")
        driver.abort_energy_test()


def test_a_rejection_comes_from_the_error_queue():
    with expected_protocol(made(), [set_line("SOUR:FREQ 60", '-222,"Data out of range"'), ("SYST:ERR?", OK)]) as d:
        with pytest.raises(InstrumentError, match=rf"{NAME}: rejected 'SOUR:FREQ 60': -222 Data out of range"):
            d.frequency = 60.0


# -- refused before anything is sent ------------------------------------------------------------------

@pytest.mark.parametrize(("call", "message"), [
    (lambda d: d.program_voltages([PhaseVoltage(1200.0, 0.0)] * 3, 60.0, []), r"voltage 1200 V is outside .*0\.\.1008"),
    (lambda d: d.program_voltages([PhaseVoltage(250.0, 0.0)] * 3, 60.0, []), r"voltage 250 V is outside .*0\.\.240"),
    (lambda d: d.program_voltages(THREE_PHASES, 1000.0, []), r"frequency 1000 Hz is outside .*16\.\.850"),
    (lambda d: d.program_voltages(THREE_PHASES[:2], 60.0, []), r"2 phases given; the instrument has 3"),
    (lambda d: d.program_voltages(THREE_PHASES, 60.0, [Harmonic(1, 5.0, 0.0)]), r"harmonic order 1 is not"),
    (lambda d: d.program_voltages(THREE_PHASES, 60.0, [Harmonic(101, 1.0, 0.0)]), r"harmonic order 101 is not"),
    (lambda d: d.program_voltages(THREE_PHASES, 60.0, [Harmonic(3, 1.0, 0.0), Harmonic(3, 2.0, 0.0)]),
     r"harmonic order 3 is given twice"),
    (lambda d: d.program_currents([PhaseCurrent(5.0, 0.0)] * 3, [Harmonic(3, -1.0, 0.0)]), r"harmonic 3 -1 %"),
    (lambda d: d.program_currents([PhaseCurrent(25.0, 0.0)] * 3, []), r"current 25 A is outside .*0\.\.21 A"),
    (lambda d: d.program_currents([PhaseCurrent(5.0, math.nan)] * 3, []), r"lag nan is not a finite number"),
    (lambda d: d.set_meter_constant("OUTPUT", 100.0, "IPKMH"), r"meter constant unit 'IPKMH' is not one of"),
    (lambda d: d.set_meter_constant("OUTPUT", 0.0, "IPWH"), r"output meter constant 0.0 is not positive"),
    (lambda d: d.configure_pulse_sources("SUM456", "MAIN"), r"MUT source 'SUM456' is not one of"),
    (lambda d: d.set_pullup("MUT", "R470"), r"pull-up 'R470' is not one of"),
])
def test_out_of_range_is_refused_before_anything_is_sent(call, message):
    with expected_protocol(made(ranges={"voltage": (0.0, 240.0)} if "240" in message else None), []) as driver:
        with pytest.raises(RangeError, match=f"{NAME}: {message}"):
            call(driver)


def test_energy_commands_need_the_energy_option():
    with expected_protocol(made(energy=False), []) as driver:
        with pytest.raises(InstrumentError, match=rf"{NAME}: no energy timer/counter option is fitted \(\*OPT\?"):
            driver.pulse_constant_wh()


def test_what_the_instrument_cannot_tell_is_an_error_not_a_guess():
    with expected_protocol(made(), []) as driver:
        with pytest.raises(InstrumentError, match=f"{NAME}: the manual .* documents no protection trip status"):
            driver.protection_tripped()
        with pytest.raises(InstrumentError, match=f"{NAME}: the 6100B/6105A keeps no energy register"):
            driver.energy_wh()


@pytest.mark.parametrize(("exchanges", "call"), [
    ([("*IDN?", "FLUKE,6105A,1,1"), ("*CLS", None), ("*OPT?", "0,0,0,3,0,0,0")], lambda d: d.open()),
    ([("SOUR:PHAS1:CURR:MHAR:ALL?", "2.5E0,9.0E1,1.09E0")], lambda d: d.harmonic_content(1, "CURR")),
    ([("SOUR:PHAS1:CURR:MHAR:ALL?", "2.5E0,9.0E1;")], lambda d: d.harmonic_content(1, "CURR")),
    ([("ENER:OUTP:CONS?", "1.0E5"), ("ENER:OUTP:CONS:UNIT?", "IPKMH")], lambda d: d.pulse_constant_wh()),
    ([("ENER:OUTP:CONS?", "9.91E37")], lambda d: d.pulse_constant_wh()),
    ([("OUTP:STAT?", "ON?")], lambda d: d.output_on()),
])
def test_a_garbled_reply_is_an_error_naming_the_instrument(exchanges, call):
    driver = made()
    opening = exchanges[0][0] == "*IDN?"
    with expected_protocol(driver, exchanges, opened=not opening):
        with pytest.raises(ReplyError, match=f"{NAME}: garbled reply to "):
            call(driver)


def test_the_driver_class_is_what_the_registry_expects():
    check_driver_class("fluke-6105a", Fluke6105a)
    driver = Fluke6105a.from_settings(DriverSettings("TCPIP0::127.0.0.1::5025::SOCKET", "source+load+reference",
                                                     ranges={"current": (0.0, 10.0)}))
    assert driver.ranges == {"current": (0.0, 10.0)} and driver.name == "source+load+reference"
    assert Capability.PROTECTION_READBACK not in Fluke6105a.CAPABILITIES
    assert Capability.HARMONIC_POWER not in Fluke6105a.CAPABILITIES


# -- against the twin, over a loopback socket ---------------------------------------------------------

@pytest.fixture
def world() -> World:
    return load_board(board_path("default")).world


@pytest.fixture
def served(world: World) -> Iterator[Served]:
    running = serve(world)
    yield running
    running.stop()


@pytest.fixture
def standard(served: Served) -> Iterator[Fluke6105a]:
    driver = Fluke6105a(served.address, timeout_s=1.0).open()
    yield driver
    driver.close()


def gains(world: World) -> float:
    """The outputs' own deviation from their settings on this board, times the reference's error:
    what the instrument reports is the true output power through its error."""
    return (1 + world.source.gain_error) * (1 + world.load.gain_error) * (1 + world.reference.error_pct / 100)


def test_the_twin_reports_its_fitment(standard):
    assert standard.idn.startswith("FLUKE,6105A,")
    assert (standard.phases, standard.max_current_a, standard.energy_option) == (3, 80.0, True)


def test_three_phases_at_60_degrees_lag_is_the_manuals_confidence_check(world, standard):
    """Section 7-4: 120 V, 5 A, 60 Hz, power factor 0.5, on three phases: P = 3 * 120 * 5 * 0.5 (the
    twin reports its true output through the reference error: 1e-8 covers its ten-digit replies)."""
    standard.program_voltages(THREE_PHASES, 60.0, [])
    standard.program_currents([PhaseCurrent(5.0, 60.0)] * 3, [])
    assert not world.source.output
    standard.switch_on()
    assert world.source.output and world.load.output and standard.output_on()
    assert world.source.voltages_v == [120.0] * 3 and world.source.angles_deg == [0.0, -120.0, 120.0]
    assert world.load.currents_a == [5.0] * 3 and world.load.lags_deg == [60.0] * 3
    readings = standard.readings()
    assert readings.power_w == pytest.approx(3 * 120 * 5 * 0.5 * gains(world), rel=1e-8)
    assert readings.power_factor == pytest.approx(0.5, rel=1e-8)
    assert readings.voltages_v == (120.0,) * 3 and readings.currents_a == (5.0,) * 3
    assert readings.voltage_angles_deg == (0.0, -120.0, 120.0)
    assert (readings.frequency_hz, readings.thd_voltage_pct, readings.thd_current_pct) == (60.0, 0.0, 0.0)


def test_harmonic_power_adds_to_the_fundamentals(world, standard):
    """In phase, 5 % fifth in the voltage and 10 % in the current: each phase carries
    V I (1 + 0.05 * 0.10); the voltage RMS is 120 sqrt(1 + 0.05^2)."""
    standard.program_voltages(THREE_PHASES, 50.0, [Harmonic(5, 5.0, 0.0)])
    standard.program_currents([PhaseCurrent(5.0, 0.0)] * 3, [Harmonic(5, 10.0, 0.0)])
    standard.switch_on()
    assert world.source.harmonics == {5: Harmonic(5, 5.0, 0.0)}
    assert world.load.harmonics == {5: Harmonic(5, 10.0, 0.0)}
    readings = standard.readings()
    assert readings.power_w == pytest.approx(3 * 120 * 5 * (1 + 0.05 * 0.10) * gains(world), rel=1e-8)
    assert readings.power_w == pytest.approx(world.true_power_w() * (1 + world.reference.error_pct / 100), rel=1e-8)
    assert readings.voltages_v == pytest.approx((120 * math.sqrt(1 + 0.05 ** 2),) * 3, rel=1e-9)
    assert (readings.thd_voltage_pct, readings.thd_current_pct) == pytest.approx((5.0, 10.0), rel=1e-9)


def test_unbalanced_voltages_and_an_element_alone_keep_one_wave_shape(world, standard):
    """Absolute amplitudes differ by phase (6, 5.5, 5 V) but the content is 5 % on each; a phase with
    no current carries no current harmonics, and takes no part in the shape."""
    standard.program_voltages([PhaseVoltage(120.0, 0.0), PhaseVoltage(110.0, -120.0), PhaseVoltage(100.0, 120.0)],
                              60.0, [Harmonic(3, 5.0, 180.0)])
    standard.program_currents([PhaseCurrent(5.0, 30.0), PhaseCurrent(0.0, 0.0), PhaseCurrent(0.0, 0.0)],
                              [Harmonic(0, 1.0, 0.0), Harmonic(3, 20.0, -90.0)])
    standard.switch_on()
    assert world.source.voltages_v == [120.0, 110.0, 100.0]
    assert world.source.harmonics[3].pct == pytest.approx(5.0, abs=1e-9)
    assert world.source.harmonics[3].phase_deg == pytest.approx(-180.0)  # 180 deg, sent wrapped to [-180, 180)
    assert set(world.load.harmonics) == {0, 3} and world.load.currents_a == [5.0, 0.0, 0.0]
    readings = standard.readings()
    third = 120 * 0.05 * 5 * 0.20 * math.cos(math.radians(3 * 30 - 180 + 90))  # V3 I3 cos(3 phi + psi_v - psi_i)
    assert readings.power_w == pytest.approx((120 * 5 * math.cos(math.radians(30)) + third) * gains(world), rel=1e-8)


def test_different_content_on_one_phase_is_refused_by_the_twin(world, standard):
    """The simulated board has one wave shape: a fifth on phase 1 alone cannot be energised."""
    standard.program_voltages(THREE_PHASES, 60.0, [])
    standard.program_currents([PhaseCurrent(5.0, 0.0)] * 3, [])
    standard.set("SOUR:PHAS1:VOLT:MHAR:HARM5 6,0")
    with pytest.raises(InstrumentError, match=r"rejected 'OUTP ON': -221 Settings conflict;phases' harmonic content"):
        standard.switch_on()
    assert not world.source.output and not world.load.output and world.source.harmonics == {}
    standard.program_voltages(THREE_PHASES, 60.0, [Harmonic(5, 5.0, 0.0)])
    standard.switch_on()
    assert world.source.harmonics == {5: Harmonic(5, 5.0, 0.0)}


def test_reprogramming_while_energised_moves_to_the_new_shape(world, standard):
    standard.program_voltages(THREE_PHASES, 60.0, [Harmonic(5, 5.0, 0.0)])
    standard.program_currents([PhaseCurrent(5.0, 0.0)] * 3, [])
    standard.switch_on()
    standard.program_voltages(THREE_PHASES, 60.0, [Harmonic(7, 3.0, 45.0)])
    assert world.source.output and world.source.harmonics == {7: Harmonic(7, pytest.approx(3.0), 45.0)}


def test_the_pulse_output_is_the_reference_the_counter_sees(world, standard):
    """5-105..5-107: a pulse stream proportional to the active power outputs. 100000 imp/kWh is
    0.01 Wh a pulse; 900 W (reported) for 36 s is 9 Wh, 900 pulses (give or take the one in progress)."""
    standard.set_meter_constant("OUTPUT", 100000, "IPKWH")
    assert world.reference.pulse_constant_wh == pytest.approx(0.01) and standard.pulse_constant_wh() == 0.01
    standard.program_voltages(THREE_PHASES, 60.0, [])
    standard.program_currents([PhaseCurrent(5.0, 60.0)] * 3, [])
    standard.switch_on()
    reported_w = standard.readings().power_w
    before = world.reference_pulses()
    world.advance(36.0)
    assert abs(world.reference_pulses() - before - reported_w * 36 / 3600 / 0.01) <= 1


def test_pulse_sources_and_abort_on_the_twin(world, standard):
    """5-97: a MUT on the reference's channels sends the reference to MAIN; 5-103: a reference on the
    MUT's channels is an error; 5-92: ABORt leaves the outputs off."""
    standard.configure_pulse_sources("SUM123", "CH6")
    assert standard.pulse_sources() == ("SUM123", "CH6")
    standard.set("ENER:MUT:SOUR CH1TO6")
    assert standard.pulse_sources() == ("CH1TO6", "MAIN")
    with pytest.raises(InstrumentError, match=r"rejected 'ENER:REF:SOUR MEAN56': -221 Settings conflict"):
        standard.configure_pulse_sources("CH1TO6", "MEAN56")
    standard.configure_pulse_sources("CH1TO3", "SUM456")
    assert standard.pulse_sources() == ("CH1TO3", "SUM456")
    standard.program_voltages(THREE_PHASES, 60.0, [])
    standard.program_currents([PhaseCurrent(5.0, 0.0)] * 3, [])
    standard.switch_on()
    standard.abort_energy_test()
    assert not world.source.output and not world.load.output and not standard.output_on()


def test_safe_state_is_idempotent_on_the_twin(world, standard):
    standard.switch_on()
    standard.safe_state()
    standard.safe_state()
    assert not world.source.output and not world.load.output


def test_a_narrowed_range_is_refused_before_the_twin_hears_of_it(served, world):
    driver = Fluke6105a(served.address, timeout_s=1.0, ranges={"voltage": (0.0, 240.0), "current": (0.0, 10.0)}).open()
    try:
        heard = len(served.device.received)
        with pytest.raises(RangeError, match=r"current 12 A is outside the instrument range 0\.\.10 A"):
            driver.program_currents([PhaseCurrent(12.0, 0.0)] * 3, [])
        with pytest.raises(RangeError, match=r"voltage 250 V is outside the instrument range 0\.\.240 V"):
            driver.program_voltages([PhaseVoltage(250.0, 0.0)] * 3, 60.0, [])
        assert len(served.device.received) == heard and world.source.voltages_v == [0.0] * 3
    finally:
        driver.close()


def test_a_garbled_reply_from_the_twin_names_the_instrument(served, standard):
    served.device.inject_fault("GARBLE")
    with pytest.raises(ReplyError, match=r"source\+load\+reference @ TCPIP0::127\.0\.0\.1::\d+::SOCKET: garbled reply"):
        standard.readings()
