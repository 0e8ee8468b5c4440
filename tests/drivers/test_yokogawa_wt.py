"""Yokogawa WT power analyser (monitor): the driver's exchanges pinned to the communication interface
manuals, then the driver against its twin on loopback, with the physics it should read."""
from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from bench.metrology.harmonics import Harmonic
from bench.sim.board import load_board
from bench.sim.simbench import board_path
from bench.sim.twins import Served
from bench.sim.twins.yokogawa_wt import nr3, serve
from bench.sim.world import World
from instruments.errors import InstrumentError, RangeError, ReplyError
from instruments.registry import DriverError, DriverSettings, check_driver_class
from instruments.transport import VisaLine
from instruments.vendors.yokogawa_wt import YokogawaWt
from tests.drivers.protocol import expected_protocol

ADDRESS = "TCPIP0::127.0.0.1::inst0::INSTR"
IDN = "YOKOGAWA,WT1806E-50,91M950263,F1.01"  # model field as Yokogawa's WT1800 sample program parses it
NO_ERROR = '0,"No error"'
ITEMS = ("ITEM1 URMS,1;ITEM2 URMS,2;ITEM3 URMS,3;ITEM4 IRMS,1;ITEM5 IRMS,2;ITEM6 IRMS,3;ITEM7 P,1;ITEM8 P,2;"
         "ITEM9 P,3;ITEM10 LAMBDA,SIGMA;ITEM11 FU,1;ITEM12 UTHD,1;ITEM13 ITHD,1;ITEM14 PHI_U1U2,SIGMA;"
         "ITEM15 PHI_U1U3,SIGMA;ITEM16 WH,1;ITEM17 WH,2;ITEM18 WH,3;ITEM19 TIME,1")
OPENING = [
    ("*IDN?", IDN),
    ("*CLS", None),
    (":COMMUNICATE:REMOTE ON;HEADER OFF;VERBOSE OFF;:STATUS:ERROR?", NO_ERROR),
    (":HARMONICS:THD FUNDAMENTAL;:STATUS:ERROR?", NO_ERROR),
    (f":NUMERIC:FORMAT ASCII;NORMAL:NUMBER 19;{ITEMS};:STATUS:ERROR?", NO_ERROR),
]
VALUE = ":NUMERIC:NORMAL:VALUE?"
# One update in the manual's ASCII format: U 1..3, I 1..3, P 1..3, λΣ, fU1, Uthd1, Ithd1, φU1-U2,
# φU1-U3, WH 1..3, TIME.
UPDATE = ["104.75E+00", "105.02E+00", "103.79E+00", "1.0143E+00", "1.0021E+00", "998.70E-03",
          "95.123E+00", "94.870E+00", "93.011E+00", "888.50E-03", "49.868E+00", "2.51000E+00",
          "12.4500E+00", "120.01E+00", "-119.97E+00", "1.23456E+00", "1.22000E+00", "1.21000E+00", "3600"]


def reply(**changes: str) -> str:
    """UPDATE with some fields replaced, by 1-based item number: reply(i11="NAN")."""
    fields = list(UPDATE)
    for key, value in changes.items():
        fields[int(key[1:]) - 1] = value
    return ",".join(fields)


def wt(**kwargs: object) -> YokogawaWt:
    return YokogawaWt(ADDRESS, **kwargs)  # type: ignore[arg-type]


# -- exchanges from the manuals ----------------------------------------------------------------------


def test_the_class_is_a_registrable_monitor() -> None:
    check_driver_class("yokogawa-wt", YokogawaWt)
    assert YokogawaWt.ROLES == {"monitor"} and "IM WT1801E-17EN" in YokogawaWt.MANUAL


def test_open_identifies_then_configures_every_item_once() -> None:
    """WT5000 IM WT5000-17EN 4.3 "Responses": COMMunicate:HEADer OFF drops headers, VERBose OFF keeps
    abbreviated forms; WT1800 NUMeric group: :NUMeric:FORMat ASCii, :NUMeric[:NORMal]:NUMber <n>,
    :NUMeric[:NORMal]:ITEM<x> <function>,<element> (element 1..6 or SIGMA), all items in one program
    message as Yokogawa's WT1800 sample program sends them; :STATus:ERRor? after each."""
    with expected_protocol(wt(), OPENING, opened=False) as instrument:
        instrument.open()
        assert instrument.is_open and instrument.idn == IDN


def test_a_reading_is_one_value_query_in_item_order() -> None:
    """NUMeric group, :NUMeric[:NORMal]:VALue? (WT1600 manual IM 760101-11E p. 5-70, the same command in
    the WT1800's): with no parameter, "the numerical data of item numbers from 1 to
    :NUMeric[:NORMal]:NUMber is output in order", e.g. 104.75E+00,105.02E+00,...,49.868E+00; WT1800
    "Numeric Data Formats": NR3, mantissa up to 5 digits (6 for UTHD/ITHD and WH), TIME NR1 seconds."""
    with expected_protocol(wt(), [(VALUE, reply())]) as instrument:
        readings = instrument.readings()
    assert readings.voltages_v == (104.75, 105.02, 103.79)
    assert readings.currents_a == (1.0143, 1.0021, 0.9987)
    assert readings.power_w == pytest.approx(95.123 + 94.870 + 93.011, abs=1e-9)  # sum of the elements' P
    assert (readings.power_factor, readings.frequency_hz) == (0.8885, 49.868)
    assert (readings.thd_voltage_pct, readings.thd_current_pct) == (2.51, 12.45)
    # φU1-U2 +120.01 (U2 lags U1) is U2 at -120.01° from U1; φU1-U3 -119.97 is U3 at +119.97°.
    assert readings.voltage_angles_deg == pytest.approx((0.0, -120.01, 119.97))
    assert readings.harmonic_power_w == () and readings.temperature_c is None


def test_the_360_degree_phase_display_gives_the_same_angles() -> None:
    """Angles are wrapped to -180..180: φU1-U3 as 240.03 (360° display) is -119.97 (180° display)."""
    with expected_protocol(wt(), [(VALUE, reply(i15="240.03E+00"))]) as instrument:
        assert instrument.readings().voltage_angles_deg[2] == pytest.approx(119.97)


@pytest.mark.parametrize(("item", "token", "named", "meaning"), [
    ("i11", "NAN", "FU,1", "no data"),
    ("i2", "INF", "URMS,2", "over-range"),
    ("i10", "INF", "LAMBDA,SIGMA", "data over"),
])
def test_error_data_in_a_used_item_is_an_error_naming_it(item: str, token: str, named: str, meaning: str) -> None:
    """WT1800 Numeric Data Formats, (2) Error Data: data that does not exist reads NAN; over-range,
    overflow and data over read INF. A monitor reading never turns them into numbers."""
    with expected_protocol(wt(), [(VALUE, reply(**{item: token}))]) as instrument:
        with pytest.raises(ReplyError) as caught:
            instrument.readings()
    message = str(caught.value)
    assert message.startswith(f"monitor @ {ADDRESS}: item {named} reads {token} (") and meaning in message
    assert message.endswith(f"in reply to '{VALUE}'")


def test_error_data_in_an_unused_item_spoils_only_what_uses_it() -> None:
    """The integrator's items read NAN before the instrument has integrated anything: the
    conditions still read; the energy is an error."""
    nan_energy = reply(i16="NAN", i17="NAN", i18="NAN")
    with expected_protocol(wt(), [(VALUE, nan_energy), (VALUE, nan_energy)]) as instrument:
        assert instrument.readings().power_w > 0
        with pytest.raises(ReplyError, match=r"item WH,1 reads NAN"):
            instrument.energy_wh()


@pytest.mark.parametrize(("garbled", "complaint"), [
    (reply(i4="1.0143E+0O"), r"item IRMS,1 is '1.0143E\+0O'"),
    (reply(i3="9.91E+37"), r"item URMS,3 is '9.91E\+37' \(over range"),  # the FLOat NAN pattern, in ASCII
    (",".join(UPDATE[:-1]), r"18 values for 19 items"),
    ("#\x15" + reply()[::-1], r"garbled reply"),
])
def test_a_garbled_value_reply_is_one_line_naming_the_instrument(garbled: str, complaint: str) -> None:
    with expected_protocol(wt(), [(VALUE, garbled)]) as instrument:
        with pytest.raises(ReplyError, match=complaint) as caught:
            instrument.readings()
    assert str(caught.value).startswith(f"monitor @ {ADDRESS}: garbled reply to '{VALUE}'")
    assert "\n" not in str(caught.value)


def test_the_error_queue_in_both_of_its_forms() -> None:
    """WT STATus group: :STATus:ERRor? answers <code>,"<message>" (113,"Undefined header"; 0,"No error"
    when empty), or the code alone after :STATus:QMESsage OFF; WT codes are positive."""
    instrument = wt()
    assert instrument.parse_error('113,"Undefined header"') == (113, "Undefined header")
    assert instrument.parse_error(NO_ERROR) == (0, "No error")
    assert instrument.parse_error("222") == (222, "")
    with pytest.raises(ValueError):
        instrument.parse_error("No error")


def test_a_rejected_setting_names_every_queued_error() -> None:
    exchanges = [(":INTEGRATE:START;:STATUS:ERROR?", '842,"Execution error"'), (":STATUS:ERROR?", "813"),
                 (":STATUS:ERROR?", "0")]
    with expected_protocol(wt(), exchanges) as instrument:
        with pytest.raises(InstrumentError, match=r"rejected ':INTEGRATE:START': 842 Execution error; 813"):
            instrument.start_integration()


def test_a_garbled_error_queue_reply_is_an_error() -> None:
    with expected_protocol(wt(), [(":INTEGRATE:STOP;:STATUS:ERROR?", "No error")]) as instrument:
        with pytest.raises(ReplyError, match=r"garbled reply to ':STATUS:ERROR\?': 'No error'"):
            instrument.stop_integration()


def test_the_integrator_exchanges() -> None:
    """WT1800 INTEGrate group: :INTEGrate:MODE NORMal, :INTEGrate:TIMer <h>,<m>,<s>, :INTEGrate:STARt,
    :INTEGrate:STOP, :INTEGrate:RESet, :INTEGrate:STATe? (RESet|READy|STARt|STOP|ERRor|TIMeup, full
    or abbreviated after COMMunicate:VERBose)."""
    exchanges = [
        (":INTEGRATE:MODE NORMAL;:STATUS:ERROR?", NO_ERROR),
        (":INTEGRATE:TIMER 1,2,3;:STATUS:ERROR?", NO_ERROR),
        (":INTEGRATE:START;:STATUS:ERROR?", NO_ERROR),
        (":INTEGRATE:STATE?", "STAR"),
        (":INTEGRATE:STOP;:STATUS:ERROR?", NO_ERROR),
        (":INTEGRATE:STATE?", "STOP"),
        (VALUE, reply()),
        (VALUE, reply()),
        (":INTEGRATE:RESET;:STATUS:ERROR?", NO_ERROR),
        (":INTEGRATE:STATE?", "RESET"),
        (":INTEGRATE:STATE?", "TIM"),
        (":INTEGRATE:TIMER?", "1,2,3"),
    ]
    with expected_protocol(wt(), exchanges) as instrument:
        instrument.configure_integration(3723)
        instrument.start_integration()
        assert instrument.integration_state() == "START"
        instrument.stop_integration()
        assert instrument.integration_state() == "STOP"
        assert instrument.energy_wh() == pytest.approx(1.23456 + 1.22 + 1.21)
        assert instrument.integration_time_s() == 3600
        instrument.reset_integration()
        assert instrument.integration_state() == "RESET"
        assert instrument.integration_state() == "TIMEUP"
        assert instrument.integration_timer_s == 3723


@pytest.mark.parametrize("timer_s", [-1, 10000 * 3600 + 1, 1.5, math.nan, True, "60"])
def test_a_timer_outside_the_instrument_is_refused_before_anything_is_sent(timer_s: object) -> None:
    """The timer runs 0..10000 hours in whole seconds; the script is empty, so sending would fail."""
    with expected_protocol(wt(), []) as instrument:
        with pytest.raises(RangeError, match=r"^monitor @ .*integration_timer_s"):
            instrument.configure_integration(timer_s)  # type: ignore[arg-type]


def test_the_profile_narrows_the_timer() -> None:
    with expected_protocol(wt(ranges={"integration_timer_s": (0, 3600)}), []) as instrument:
        with pytest.raises(RangeError, match=r"outside the instrument range 0\.\.3600 s"):
            instrument.configure_integration(7200)


def test_an_instrument_that_is_not_a_yokogawa_is_refused_at_open() -> None:
    with expected_protocol(wt(), [("*IDN?", "Keysight Technologies,AC6803B,MY1,A.01.00")],
                           opened=False) as instrument:
        with pytest.raises(ReplyError, match=r"garbled reply to '\*IDN\?'"):
            instrument.open()
        assert not instrument.is_open


def test_a_configuration_the_instrument_refuses_closes_the_link() -> None:
    """Without the harmonic measurement option the THD setting is refused: open fails, link closed."""
    exchanges = [*OPENING[:3], (":HARMONICS:THD FUNDAMENTAL;:STATUS:ERROR?", '241,"Hardware missing"'),
                 (":STATUS:ERROR?", NO_ERROR)]
    with expected_protocol(wt(), exchanges, opened=False) as instrument:
        with pytest.raises(InstrumentError, match=r"241 Hardware missing"):
            instrument.open()
        assert not instrument.is_open


def test_options_choose_elements_angles_and_the_energy_function() -> None:
    two = YokogawaWt.from_settings(DriverSettings(ADDRESS, "monitor", options={
        "elements": 2, "voltage_angles": False, "energy_function": "WP"}))
    assert [str(i) for i in two.items] == ["URMS,1", "URMS,2", "IRMS,1", "IRMS,2", "P,1", "P,2", "LAMBDA,SIGMA",
                                           "FU,1", "UTHD,1", "ITHD,1", "WP,1", "WP,2", "TIME,1"]
    one = YokogawaWt.from_settings(DriverSettings(ADDRESS, "monitor", options={"elements": 1}))
    assert str(one.power_factor) == "LAMBDA,1" and one.angles == []
    for options in ({"elements": 4}, {"elements": True}, {"elements": 3.0}, {"energy_function": "WHP"},
                    {"voltage_angles": "no"}, {"element": 3}):
        with pytest.raises(DriverError):
            YokogawaWt.from_settings(DriverSettings(ADDRESS, "monitor", options=options))


def test_numbers_are_written_as_the_manual_writes_them() -> None:
    """The twin's NR3: 5 significant digits on exponents that are multiples of 3 (104.75E+00,
    1.0143E+00, 49.868E+00), 6 where the manual allows them."""
    assert [nr3(v) for v in (104.75, 1.0143, 49.868, 0.5, 900, 1800, -0.38, 0)] == [
        "104.75E+00", "1.0143E+00", "49.868E+00", "500.00E-03", "900.00E+00", "1.8000E+03", "-380.00E-03",
        "0.0000E+00"]
    assert nr3(999.996) == "1.0000E+03" and nr3(450, 6) == "450.000E+00"


# -- the driver against its twin ----------------------------------------------------------------------


@pytest.fixture
def world() -> World:
    """The default board (Form 16S, 3 elements) with exact source and load, so readings are physics."""
    world = load_board(board_path("default")).world
    world.source.gain_error = world.load.gain_error = 0.0
    return world


@pytest.fixture
def served(world: World) -> Iterator[Served]:
    running = serve(world)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def monitor(served: Served) -> Iterator[YokogawaWt]:
    instrument = YokogawaWt(served.address, timeout_s=2.0).open()
    try:
        yield instrument
    finally:
        instrument.close()


def energise(world: World, volts: float, amps: list[float], lags: list[float]) -> None:
    with world.lock:
        world.source.voltages_v = [volts] * 3
        world.load.currents_a, world.load.lags_deg = list(amps), list(lags)
        world.source.output = world.load.output = True


def test_balanced_three_phase_reads_its_physics(world: World, monitor: YokogawaWt) -> None:
    """120 V, 5 A lagging 60° on three elements: P = 3 x 120 x 5 x cos 60° = 900 W, λ = 0.5, and
    the standard sequence 0/-120/+120°. Every value fits the NR3 mantissa exactly."""
    energise(world, 120.0, [5.0] * 3, [60.0] * 3)
    readings = monitor.readings()
    assert readings.voltages_v == (120.0, 120.0, 120.0) and readings.currents_a == (5.0, 5.0, 5.0)
    assert readings.power_w == pytest.approx(900.0, abs=1e-9)
    assert readings.power_factor == pytest.approx(0.5, abs=1e-9)
    assert readings.frequency_hz == world.source.frequency_hz == 60.0
    assert (readings.thd_voltage_pct, readings.thd_current_pct) == (0.0, 0.0)
    assert readings.voltage_angles_deg == pytest.approx((0.0, -120.0, 120.0))


def test_unbalance_gives_sigma_lambda_as_total_p_over_total_s(world: World, monitor: YokogawaWt) -> None:
    """λΣ is ΣP/ΣS, not the cosine of any one lag: 5 A at 0°, 2 A at 60°, 1 A leading 30° on 120 V
    give P = 600 + 120 + 103.92 W over S = 960 VA."""
    energise(world, 120.0, [5.0, 2.0, 1.0], [0.0, 60.0, -30.0])
    readings = monitor.readings()
    power = 120 * (5 + 2 * 0.5 + math.cos(math.radians(30)))
    assert readings.power_w == pytest.approx(power, rel=1e-4)  # three 5-digit mantissas
    assert readings.power_factor == pytest.approx(power / 960.0, abs=1e-5)
    assert readings.power_w == pytest.approx(world.true_power_w(), rel=1e-4)


def test_harmonics_read_true_rms_and_thd_against_the_fundamental(world: World, monitor: YokogawaWt) -> None:
    """10 % fifth in the voltage, 20 % third in the current: U = 120 √1.01, I = 5 √1.04, THD 10 % and
    20 % of the fundamental (the driver set :HARMONICS:THD FUNDAMENTAL; the twin powers up TOTal),
    and no common order, so P is the fundamental's 900 W."""
    with world.lock:
        world.source.harmonics[5] = Harmonic(5, 10.0, 0.0)
        world.load.harmonics[3] = Harmonic(3, 20.0, 30.0)
    energise(world, 120.0, [5.0] * 3, [60.0] * 3)
    readings = monitor.readings()
    assert readings.voltages_v == pytest.approx([120 * math.sqrt(1.01)] * 3, rel=1e-4)
    assert readings.currents_a == pytest.approx([5 * math.sqrt(1.04)] * 3, rel=1e-4)
    assert (readings.thd_voltage_pct, readings.thd_current_pct) == pytest.approx((10.0, 20.0), rel=1e-5)
    assert readings.power_w == pytest.approx(900.0, rel=1e-5)
    assert readings.power_factor == pytest.approx(900 / (3 * 120 * math.sqrt(1.01) * 5 * math.sqrt(1.04)), abs=1e-5)


def test_the_board_s_own_output_errors_are_seen(monitor: YokogawaWt, world: World) -> None:
    """With the default board's source (+0.04 %) and load (-0.03 %) gain errors back, the monitor sees
    what the board delivers, not the setpoints."""
    with world.lock:
        world.source.gain_error, world.load.gain_error = 4e-4, -3e-4
    energise(world, 230.0, [10.0] * 3, [0.0] * 3)
    readings = monitor.readings()
    assert readings.voltages_v == pytest.approx([230 * 1.0004] * 3, rel=5e-5)
    assert readings.power_w == pytest.approx(world.true_power_w(), rel=5e-5)
    assert readings.power_w != pytest.approx(6900.0, rel=5e-5)


def test_the_integrator_integrates_over_simulated_time(world: World, monitor: YokogawaWt) -> None:
    """900 W for 1800 s is 450 Wh; stopped, it holds; reset, it is 0 again."""
    energise(world, 120.0, [5.0] * 3, [60.0] * 3)
    monitor.configure_integration(0)  # manual: runs until STOP
    assert monitor.integration_state() == "RESET"
    monitor.start_integration()
    with world.lock:
        world.advance(1800.0)
    assert monitor.integration_state() == "START"
    assert monitor.energy_wh() == pytest.approx(450.0, rel=1e-6)
    assert monitor.integration_time_s() == 1800
    monitor.stop_integration()
    with world.lock:
        world.advance(600.0)
    assert monitor.integration_state() == "STOP" and monitor.energy_wh() == pytest.approx(450.0, rel=1e-6)
    monitor.reset_integration()
    assert monitor.integration_state() == "RESET" and monitor.energy_wh() == 0.0


def test_the_timer_ends_a_normal_integration(world: World, monitor: YokogawaWt) -> None:
    """A 600 s timer and 903 s of time in 7 s steps: the energy of exactly 600 s (150 Wh at 900 W),
    then TIMEUP."""
    energise(world, 120.0, [5.0] * 3, [60.0] * 3)
    monitor.configure_integration(600)
    monitor.start_integration()
    for _ in range(129):
        with world.lock:
            world.advance(7.0)
    assert monitor.integration_state() == "TIMEUP"
    assert monitor.energy_wh() == pytest.approx(150.0, rel=1e-6) and monitor.integration_time_s() == 600


def test_the_integrator_refuses_what_its_state_forbids(world: World, monitor: YokogawaWt) -> None:
    monitor.configure_integration(0)
    monitor.start_integration()
    with pytest.raises(InstrumentError, match=r"rejected ':INTEGRATE:START': 842"):
        monitor.start_integration()
    with pytest.raises(InstrumentError, match=r"rejected ':INTEGRATE:RESET': 845"):
        monitor.reset_integration()
    with pytest.raises(InstrumentError, match=r"rejected ':INTEGRATE:MODE NORMAL': 813"):
        monitor.configure_integration(60)
    monitor.stop_integration()
    with pytest.raises(InstrumentError, match=r"rejected ':INTEGRATE:STOP': 844"):
        monitor.stop_integration()


def test_without_voltage_nothing_but_zeros_is_read(monitor: YokogawaWt) -> None:
    """Outputs off: no signal for f, voltage THD or angles (NAN): one error names them all. λ (INF)
    and the current THD (NAN) of an unloaded board are not errors: it has PF 1 and no current THD."""
    with pytest.raises(ReplyError) as caught:
        monitor.readings()
    message = str(caught.value)
    for item, token in (("FU,1", "NAN"), ("UTHD,1", "NAN"), ("PHI_U1U2,SIGMA", "NAN"), ("PHI_U1U3,SIGMA", "NAN")):
        assert f"item {item} reads {token} (" in message
    assert "URMS" not in message and "LAMBDA" not in message and "ITHD" not in message and "\n" not in message


def test_voltage_without_current_reads_an_unloaded_board(world: World, monitor: YokogawaWt) -> None:
    energise(world, 120.0, [0.0] * 3, [0.0] * 3)
    readings = monitor.readings()
    assert readings.currents_a == (0.0, 0.0, 0.0) and readings.power_w == 0.0
    assert (readings.power_factor, readings.thd_current_pct) == (1.0, 0.0)
    energise(world, 120.0, [0.0, 5.0, 0.0], [60.0] * 3)
    readings = monitor.readings()
    assert readings.power_factor == pytest.approx(0.5, abs=1e-4) and readings.thd_current_pct == 0.0


def test_over_range_and_a_garbled_link_are_errors_naming_the_instrument(
        world: World, served: Served, monitor: YokogawaWt) -> None:
    energise(world, 120.0, [5.0] * 3, [60.0] * 3)
    served.device.inject_fault("OVERRANGE")
    with pytest.raises(ReplyError, match=r"^monitor @ TCPIP0::127\.0\.0\.1::\d+::SOCKET: item URMS,1 reads INF"):
        monitor.readings()
    served.device.inject_fault("GARBLE")
    with pytest.raises(ReplyError, match=r"^monitor @ .*garbled reply to ':NUMERIC:NORMAL:VALUE\?'"):
        monitor.readings()
    served.device.inject_fault("NONE")
    assert monitor.readings().power_w == pytest.approx(900.0, abs=1e-9)


def test_the_twin_speaks_the_manual_s_syntax(served: Served) -> None:
    """Short and long forms, an omitted <x> as 1, headers while HEADer is ON (abbreviated unless
    VERBose), none on query-only commands, the WT's positive error codes, QMESsage OFF, and no
    SYSTem:ERRor? (113)."""
    line = VisaLine(served.address, 2.0)

    def ask(text: str) -> str:
        line.write(text)
        return line.read()

    try:
        line.write(":NUM:NORM:NUM 2;ITEM1 URMS,1;:NUMERIC:NORMAL:ITEM2 LAMBDA,SIGMA;:NUM:ITEM LAMB,1")
        assert ask(":NUMERIC:NORMAL:ITEM1?") == ":NUM:ITEM1 LAMB,1"
        assert ask(":COMM:VERB ON;:NUM:ITEM2?") == ":NUMERIC:NORMAL:ITEM2 LAMBDA,SIGMA"
        assert ask(":COMMUNICATE:HEADER OFF;:NUMERIC:NORMAL:NUMBER?") == "2"
        assert ask(":INTEG:TIM 1,0,0;:INTEGRATE:TIMER?") == "1,0,0"
        assert ask(":INTEG:STAT?") == "RESET"
        assert ask(":COMM:VERB OFF;:INTEG:STAT?") == "RES"
        assert ask(":HARM:THD?") == "TOT"
        assert ask(":NUM:VAL?") == "INF,INF"  # outputs off: S = 0, λ is "data over"
        assert ask(":NUM:ITEM2 URMS,2;:NUM:NUM 3;:NUM:VAL?") == "INF,0.0000E+00,NAN"  # item 3 is NONE
        line.write(":SYST:ERR?")
        assert ask(":STAT:ERR?") == '113,"Undefined header"'
        line.write(":NUM:ITEM3 VOLTS,1;:NUM:ITEM3 URMS,4")
        assert ask(":STATUS:ERROR?") == '141,"Invalid character data"'
        assert ask(":STATUS:QMESSAGE OFF;:STATUS:ERROR?") == "222"
        line.write(":NUM:NUMB 4")  # NUMber's short form is NUM: no form in between is a header
        assert ask(":STAT:ERR?") == "113"
        assert ask(":STAT:ERR?") == "0"
    finally:
        line.close()
