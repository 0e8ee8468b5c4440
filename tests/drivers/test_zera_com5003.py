"""The ZERA COM5003 driver pinned to ZERA's documents, and against its twin over loopback.

Sources quoted below:
- [manual] ZERA, *SCPI commands COM5003 - Default session* (zenux-data
  scpi-documentation/com5003-meas-session.html, release-4.9.13).
- [captured] ZERA's notes of replies read from a COM5003 (zera-scpi doc/istwertabfrage-scpi-ac.txt).
- [dump] ZERA's regression dump of a COM5003 session's MEASURE? reply on simulated DSP values
  (zera-classes modulemanager/tests/test-data/scpiDumps/measure/com5003-meas-session).
- [firmware tests] ZERA's own tests of its SCPI server (zera-classes
  modules/scpimodule/tests/test_scpi_error_and_status.cpp, test_scpi_cmds_in_session.cpp).
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterator

import pytest

from bench.metrology.harmonics import Harmonic
from bench.sim.board import load_board
from bench.sim.simbench import board_path
from bench.sim.twins import Served
from bench.sim.twins.zera_com5003 import ZeraCom5003Twin, serve, split_command
from bench.sim.world import World
from instruments.errors import InstrumentError, RangeError, ReplyError
from instruments.registry import DriverError, DriverSettings, check_driver_class
from instruments.roles import Capability, missing_members
from instruments.vendors.zera_com5003 import CalculatorStatus, ZeraCom5003, parse_labelled
from tests.drivers.protocol import expected_protocol

ADDRESS = "TCPIP0::127.0.0.1::6320::SOCKET"  # [manual] 2: "The associated port is 6320."
EC = "CALCULATE:EC01:0001"
EM = "CALCULATE:EM01:0001"
NO_ERROR = "+0,No error"


def driver(**kwargs: object) -> ZeraCom5003:
    return ZeraCom5003(ADDRESS, **kwargs)  # type: ignore[arg-type]


# -- the class ---------------------------------------------------------------------------------------


def test_the_class_is_a_reference_driver():
    check_driver_class("zera-com5003", ZeraCom5003)
    assert ZeraCom5003.ROLES == frozenset({"reference"})
    assert ZeraCom5003.CAPABILITIES == frozenset({Capability.HARMONIC_POWER, Capability.ENERGY_REGISTER})
    assert missing_members(ZeraCom5003, "reference") == []
    assert "com5003-meas-session" in ZeraCom5003.MANUAL


def test_from_settings_takes_elements_and_refuses_unknown_options():
    made = ZeraCom5003.from_settings(DriverSettings(ADDRESS, "reference", 3.0, options={"elements": 2}))
    assert (made.elements, made.timeout_s, made.address) == (2, 3.0, ADDRESS)
    with pytest.raises(DriverError, match="unknown option"):
        ZeraCom5003.from_settings(DriverSettings(ADDRESS, "reference", options={"element": 2}))
    with pytest.raises(DriverError, match="elements must be 1, 2 or 3"):
        ZeraCom5003.from_settings(DriverSettings(ADDRESS, "reference", options={"elements": 4}))


# -- exchanges from ZERA's documents -------------------------------------------------------------------

INTEGRATION = ("CONFIGURATION:RMS1:TINTEGRATION?|CONFIGURATION:POW1:TINTEGRATION?|"
               "CONFIGURATION:DFT1:TINTEGRATION?|CONFIGURATION:THD1:TINTEGRATION?")
EM_STATE = f"{EM}:START?|{EM}:MODE?|{EM}:REFSOURCE?|{EM}:STATUS?"
IDN = "ZERA GmbH Koenigswinter, COM5003, 050012345, release-4.9.13"  # the firmware's "%1, %2, %3, %4"


def test_open_identifies_checks_the_timeout_and_starts_the_energy_register():
    """[manual] 6 *IDN, *CLS; 7.1 integration times 1..100 s; 9 "Energy register": MODE 0
    "Start/Stop (stop manually)", START 1. The register is in the COM5003's default "duration" mode,
    so the driver restarts it. Settings end with ';' and are chained with '|' ([firmware tests]:
    "SENSE:RNG1:UL1:RANGE 8V;|SENSE:RNG1:UL2:RANGE 8V;|...")."""
    instrument = driver(timeout_s=2.0)
    with expected_protocol(instrument, [
        ("*IDN?", IDN), ("*CLS", None),
        (INTEGRATION, "1"), (None, "1"), (None, "1"), (None, "1"),
        (EM_STATE, "0"), (None, "1"), (None, "P"), (None, "0"),
        (f"{EM}:REFSOURCE P;|{EM}:TXUNIT Wh;|{EM}:MODE 0;|SYSTEM:ERROR?", NO_ERROR),
        (f"{EM}:START 1;|SYSTEM:ERROR?", NO_ERROR),
    ], opened=False):
        instrument.open()
    assert instrument.is_open and instrument.idn == IDN


def test_open_keeps_a_running_energy_register():
    """A reopen after a lost link must not zero the running total the bench reads before and after."""
    instrument = driver()
    with expected_protocol(instrument, [
        ("*IDN?", IDN), ("*CLS", None),
        (INTEGRATION, "1"), (None, "1"), (None, "1"), (None, "1"),
        (EM_STATE, "1"), (None, "0"), (None, "P"), (None, "2"),
    ], opened=False):
        instrument.open()


def test_open_stops_a_register_running_in_another_mode_before_reconfiguring():
    instrument = driver()
    with expected_protocol(instrument, [
        ("*IDN?", IDN), ("*CLS", None),
        (INTEGRATION, "1"), (None, "1"), (None, "1"), (None, "1"),
        (EM_STATE, "1"), (None, "1"), (None, "P"), (None, "2"),
        (f"{EM}:START 0;|SYSTEM:ERROR?", NO_ERROR), (f"{EM}:STATUS?", "4"),
        (f"{EM}:REFSOURCE P;|{EM}:TXUNIT Wh;|{EM}:MODE 0;|SYSTEM:ERROR?", NO_ERROR),
        (f"{EM}:START 1;|SYSTEM:ERROR?", NO_ERROR),
    ], opened=False):
        instrument.open()


def test_open_refuses_a_timeout_shorter_than_an_integration_time():
    """[manual] 7: MEASure "is a sequence of CONFigure, INITiate and FETCh": it waits for the next value."""
    instrument = driver(timeout_s=2.0)
    with expected_protocol(instrument, [("*IDN?", IDN), ("*CLS", None),
                                        (INTEGRATION, "1"), (None, "5"), (None, "1"), (None, "1")], opened=False):
        with pytest.raises(InstrumentError, match=r"timeout 2 s does not cover the POW1 integration time 5 s"):
            instrument.open()
    assert not instrument.is_open


def test_another_instrument_on_the_port_is_refused():
    instrument = driver()
    with expected_protocol(instrument, [("*IDN?", "Chroma ATE 61500,123456,1.00,1.01,1.02")], opened=False):
        with pytest.raises(ReplyError, match=rf"^reference @ {re.escape(ADDRESS)}: garbled reply to '\*IDN\?'"):
            instrument.open()
    assert not instrument.is_open


READINGS_LINE = "|".join(
    [f"MEASURE:RMS1:UL{k}?" for k in (1, 2, 3)] + [f"MEASURE:RMS1:IL{k}?" for k in (1, 2, 3)]
    + [f"MEASURE:DFT1:UL{k}?" for k in (1, 2, 3)]
    + ["MEASURE:POW1:PS?", "MEASURE:LAM1:LAMBDA4?", "MEASURE:RNG1:F?", "MEASURE:THD1:UL1?", "MEASURE:THD1:IL1?"]
    + [f"MEASURE:PW31:P{k}?" for k in (1, 2, 3)] + ["SENSE:RNG1:OVERLOAD?"])
ZEROS = ",0" * 38
READINGS_REPLIES = [  # [captured] unless marked [dump]
    "RMS1:UL1:[V]:229.69113159179688;", "RMS1:UL2:[V]:229.69415283203125;", "RMS1:UL3:[V]:229.69444274902344;",
    "RMS1:IL1:[A]:9.570453585183714e-07;", "RMS1:IL2:[A]:6.990168230913696e-07;",
    "RMS1:IL3:[A]:1.087089231077698e-06;",
    "DFT1:UL1:[V]:324.83111572265625,0;", "DFT1:UL2:[V]:-162.39923095703125,281.327880859375;",
    "DFT1:UL3:[V]:-162.4177703857422,-281.31744384765625;",
    "POW1:PS:[W]:5.26006733707618e-05;", "LAM1:Lambda4:[]:0.7108890583576405;", "RNG1:F:[Hz]:49.9920539855957;",
    "THD1:UL1:[%]:0.9954955;", "THD1:IL1:[%]:0.99732721;",  # [dump]
    f"PW31:P1:[W]:5.5124997,507.14998,138.915{ZEROS};", f"PW31:P2:[W]:50,-4600,-1260{ZEROS};",  # [dump]
    f"PW31:P3:[W]:5,459.99997,125.99999{ZEROS};",  # [dump]
    "0",  # [manual] 8 "Overload": '1' if there is an overload condition on any measurement channel
]


def test_readings_from_labelled_replies():
    """[manual] 7: "MEASure:RMS1:UL1? Output format is RMS1:UL1:[V]:value;". [captured]: UL2's DFT
    vector is (-162.399, 281.328), "atan2 ... ist 120 Grad", with RFIELD 123: the COM5003 counts
    angles lagging, the bench leading. LAMBDA4 is the sum's power factor; PW31 lists orders 0..40."""
    instrument = driver()
    with expected_protocol(instrument, [(READINGS_LINE, READINGS_REPLIES[0])]
                           + [(None, reply) for reply in READINGS_REPLIES[1:]]):
        readings = instrument.readings()
    assert readings.voltages_v == (229.69113159179688, 229.69415283203125, 229.69444274902344)
    assert readings.currents_a == (9.570453585183714e-07, 6.990168230913696e-07, 1.087089231077698e-06)
    assert readings.power_w == 5.26006733707618e-05
    assert (readings.power_factor, readings.frequency_hz) == (0.7108890583576405, 49.9920539855957)
    assert (readings.thd_voltage_pct, readings.thd_current_pct) == (0.9954955, 0.99732721)
    lag2 = math.degrees(math.atan2(281.327880859375, -162.39923095703125))
    lag3 = math.degrees(math.atan2(-281.31744384765625, -162.4177703857422)) % 360
    assert lag2 == pytest.approx(120.0, abs=0.01) and lag3 == pytest.approx(240.0, abs=0.01)
    assert readings.voltage_angles_deg == pytest.approx((0.0, -lag2, 360 - lag3), abs=1e-9)
    assert [order for order, _ in readings.harmonic_power_w] == [0, 1, 2]  # the zero orders 3..40 left out
    assert dict(readings.harmonic_power_w) == pytest.approx(
        {0: 5.5124997 + 50 + 5, 1: 507.14998 - 4600 + 459.99997, 2: 138.915 - 1260 + 125.99999})


def test_readings_refused_on_overload():
    instrument = driver()
    with expected_protocol(instrument, [(READINGS_LINE, READINGS_REPLIES[0])]
                           + [(None, reply) for reply in READINGS_REPLIES[1:-1]] + [(None, "1")]):
        with pytest.raises(InstrumentError, match=r"overloaded \(SENSE:RNG1:OVERLOAD\? 1\)"):
            instrument.readings()


def test_a_reply_with_another_label_is_garbled():
    replies = list(READINGS_REPLIES)
    replies[1] = "RMS1:UL3:[V]:229.69415283203125;"
    instrument = driver()
    with expected_protocol(instrument, [(READINGS_LINE, replies[0])] + [(None, reply) for reply in replies[1:]]):
        with pytest.raises(ReplyError, match=r"^reference @ .*: garbled reply to 'MEASURE:RMS1:UL2\?': "
                                             r"'RMS1:UL3:\[V\]:229\.69415283203125;' \(it is labelled RMS1:UL3"):
            instrument.readings()


def test_a_missing_reply_names_the_query_and_closes_the_link():
    """[firmware tests]: a rejected query answers nothing (sendReceive(client, "FOO:BAR?") == "")."""
    instrument = driver()
    with expected_protocol(instrument, [(READINGS_LINE, READINGS_REPLIES[0])]
                           + [(None, reply) for reply in READINGS_REPLIES[1:4]]):
        with pytest.raises(InstrumentError, match=r"'MEASURE:RMS1:IL2\?' \(reply 5 of 18\): no reply .*"
                                                  r"does not answer a query it rejects"):
            instrument.readings()
    assert not instrument.is_open


@pytest.mark.parametrize("reply, why", [
    ("RMS1:UL1:[V]:229.7", "not a labelled value"),  # no ';': a truncated reply
    ("RMS1:UL1:[]:229.7;", r"its unit is \[\], not \[V\]"),
    ("RMS1:UL1:[V]:nan;", "not a number"),
    ("RMS1:UL1:[V]:229.7,1;", "2 values, not 1"),
    ("RMS1:UL1:[V]:;", "not a number"),
])
def test_labelled_values_are_parsed_strictly(reply, why):
    with pytest.raises(ValueError, match=why):
        parse_labelled(reply, "RMS1:UL1", "V")
    assert parse_labelled("LAM1:Lambda4:[]:0.5;", "LAM1:LAMBDA4", "") == [0.5]


def test_pulse_constant_is_fout1s_in_impulses_per_kwh():
    """[manual] 7.3 Power 1: "connected to frequency output fout1"; CONFIGURATION:POW1:M0CONSTANT."""
    instrument = driver()
    with expected_protocol(instrument, [("CONFIGURATION:POW1:M0CONSTANT?", "1e+08")]):
        assert instrument.pulse_constant_wh() == pytest.approx(1e-5, rel=1e-15)
    with expected_protocol(instrument, [("CONFIGURATION:POW1:M0CONSTANT?", "0")]):
        with pytest.raises(InstrumentError, match="fout1 has no valid constant"):
            instrument.pulse_constant_wh()


def test_energy_is_read_in_its_unit_and_only_from_a_running_register():
    """[manual] 9 "Energy register": ENERGY "Energy since last start", TXUNIT MWh, kWh, Wh; STATUS."""
    instrument = driver()
    line = f"{EM}:STATUS?|{EM}:TXUNIT?|{EM}:ENERGY?"
    with expected_protocol(instrument, [(line, "2"), (None, "kWh"), (None, "0.9000361")]):
        assert instrument.energy_wh() == pytest.approx(900.0361, rel=1e-12)
    with expected_protocol(instrument, [(line, "4"), (None, "Wh"), (None, "12")]):
        with pytest.raises(InstrumentError, match=r"energy register is not running \(EM01 STATUS 4\)"):
            instrument.energy_wh()
    with expected_protocol(instrument, [(line, "2"), (None, "kVarh"), (None, "12")]):
        with pytest.raises(ReplyError, match=f"garbled reply to '{EM}:TXUNIT\\?'"):
            instrument.energy_wh()


def test_reset_energy_stops_then_restarts():
    instrument = driver()
    with expected_protocol(instrument, [
        (f"{EM}:START?", "1"), (f"{EM}:START 0;|SYSTEM:ERROR?", NO_ERROR), (f"{EM}:STATUS?", "4"),
        (f"{EM}:REFSOURCE P;|{EM}:TXUNIT Wh;|{EM}:MODE 0;|SYSTEM:ERROR?", NO_ERROR),
        (f"{EM}:START 1;|SYSTEM:ERROR?", NO_ERROR),
    ]):
        instrument.reset_energy()


def test_error_calculator_exchange():
    """[manual] 9 "Pulse comparison": DUTSOURCE SC1; REFSOURCE P; DCUNIT I/kWh; DUTCONSTANT 1e-06..1e+20;
    MRATE 1..4294967295; CONTINUOUS 0; MCOUNT 1..400; RESULTUNIT %; START 1; STATUS (1 waiting for first
    pulse, 2 started, 4 ready); RESULT "Error value in [%] of the last measurement completed"."""
    instrument = driver()
    with expected_protocol(instrument, [
        (f"{EC}:DUTSOURCE SC1;|{EC}:REFSOURCE P;|{EC}:DCUNIT I/kWh;|{EC}:DUTCONSTANT 1000;|{EC}:MRATE 10;|"
         f"{EC}:CONTINUOUS 0;|{EC}:MCOUNT 1;|{EC}:RESULTUNIT %;|SYSTEM:ERROR?", NO_ERROR),
        (f"{EC}:START 1;|SYSTEM:ERROR?", NO_ERROR),
        (f"{EC}:STATUS?", "1"), (f"{EC}:STATUS?", "2"),
        (f"{EC}:STATUS?|{EC}:RESULTUNIT?|{EC}:RESULT?", "4"), (None, "%"), (None, "-0.0123"),
        (f"{EC}:STATUS?|{EC}:RESULTUNIT?|{EC}:RESULT?", "4"), (None, "ppm"), (None, "123"),
        (f"{EC}:START 0;|SYSTEM:ERROR?", NO_ERROR),
    ]):
        instrument.configure_error_calculator("SC1", 1000.0, 10)
        instrument.start_error_calculator()
        assert instrument.error_calculator_status() == CalculatorStatus(1)
        assert instrument.error_calculator_status().started
        assert instrument.error_calculator_result() == -0.0123
        assert instrument.error_calculator_result() == pytest.approx(0.0123)
        instrument.stop_error_calculator()


@pytest.mark.parametrize("replies, message", [
    (("1", "%", "0"), r"no result \(EC01 STATUS 1\)"),
    (("8", "%", "0"), r"no result \(EC01 STATUS 8\)"),
    (("4", "%", "nan"), r"counted no reference pulses \(EC01 RESULT nan\)"),
])
def test_error_calculator_without_a_result(replies, message):
    instrument = driver()
    with expected_protocol(instrument, [(f"{EC}:STATUS?|{EC}:RESULTUNIT?|{EC}:RESULT?", replies[0]),
                                        (None, replies[1]), (None, replies[2])]):
        with pytest.raises(InstrumentError, match=message):
            instrument.error_calculator_result()


def test_a_rejected_setting_reports_the_error_list():
    """[firmware tests]: a value the COM5003 refuses is "-120,Numeric data error"; SYSTEM:ERROR? is
    read until "+0,No error"."""
    instrument = driver()
    with expected_protocol(instrument, [(f"{EC}:START 1;|SYSTEM:ERROR?", "-120,Numeric data error"),
                                        ("SYSTEM:ERROR?", NO_ERROR)]):
        with pytest.raises(InstrumentError, match=f"rejected '{EC}:START 1;': -120 Numeric data error$"):
            instrument.start_error_calculator()


@pytest.mark.parametrize("arguments, message", [
    (("FIN1", 1000.0, 10), "DUT source 'FIN1' is not one of SC1, HK1"),
    (("SC1", 1000.0, 10, "X"), "reference source 'X' is not one of P, Q, S"),
    (("SC1", 0.0, 10), "ec_dut_constant 0 I/kWh is outside the instrument range"),
    (("SC1", math.inf, 10), "is not a finite number"),
    (("SC1", 1000.0, 0), "pulses to measure 0 is not a whole number"),
    (("SC1", 1000.0, 2.5), "pulses to measure 2.5 is not a whole number"),
    (("SC1", 1000.0, 2 ** 32), "pulses to measure 4294967296 is not a whole number"),
])
def test_out_of_range_settings_are_refused_before_anything_is_sent(arguments, message):
    instrument = driver()
    with expected_protocol(instrument, []):
        with pytest.raises(RangeError, match=message):
            instrument.configure_error_calculator(*arguments)


def test_the_profile_narrows_the_dut_constant():
    instrument = driver(ranges={"ec_dut_constant": (100.0, 100000.0)})
    with expected_protocol(instrument, []):
        with pytest.raises(RangeError, match=r"ec_dut_constant 1e\+06 I/kWh is outside the instrument range 100"):
            instrument.configure_error_calculator("SC1", 1e6, 10)


# -- the twin's dialect, pinned to ZERA's own tests of its SCPI server ------------------------------------


@pytest.fixture
def world() -> World:
    return load_board(board_path("default")).world


def lines(device: ZeraCom5003Twin, line: str) -> list[str]:
    return list(device.handle_line(line))


def test_twin_error_list_as_zeras_server_keeps_it(world):
    """[firmware tests] sendBullshitTwiceQueryErrorCount, sendValidCommandWithoutSemicolonQueryStb,
    causeErrorAndClearIt (STATUS:QUESTIONABLE:ENABLE FOO; and CONFIGURATION:RNG1:GROUPING 1 there are
    an MRATE here: the twin has no status or range system)."""
    device = ZeraCom5003Twin(world)
    assert lines(device, "FOO:BAR?") == []
    assert lines(device, f"{EC}:MRATE FOO;") == []
    assert lines(device, "SYSTEM:ERROR:COUNT?") == ["2"]
    assert lines(device, "SYSTEM:ERROR:ALL?") == ["-100,Command error;-120,Numeric data error"]
    assert lines(device, f"{EC}:MRATE 20") == []  # no ';': not a parameter
    assert lines(device, "SYSTEM:ERROR:COUNT?|SYSTEM:ERROR?|SYSTEM:ERROR?") == ["1", "-100,Command error", NO_ERROR]
    assert device.ec.mrate == 10
    assert lines(device, "FOO:BAR?|*CLS|SYSTEM:ERROR?") == [NO_ERROR]


def test_twin_error_list_overflows_as_zeras_does(world):
    """[firmware tests] overflowErrorQueue: 50 entries; the last becomes -350 "Queue overflow"."""
    device = ZeraCom5003Twin(world)
    for _ in range(51):
        lines(device, "FOO:BAR?")
    assert lines(device, "SYSTEM:ERROR:COUNT?") == ["50"]
    assert lines(device, "|".join(["SYSTEM:ERROR?"] * 50)) == ["-100,Command error"] * 49 + ["-350,Queue overflow"]


def test_twin_runs_chained_settings_and_short_forms(world):
    """[firmware tests] multilineCommandsLastOpc: settings chained with '|' all apply; [manual] 1: short
    forms (MEASURE -> MEAS) and any case."""
    device = ZeraCom5003Twin(world)
    assert lines(device, f"{EC}:MRATE 20;|{EC}:DUTCONSTANT 2.5e3;|{EC}:DCUNIT Wh/I;") == []
    assert lines(device, "*OPC?|calc:ec01:0001:mrate?|CALCULATE:EC01:0001:DUTCONSTANT?") == ["+1", "20", "2500"]
    assert lines(device, "meas:rms1:ul1?|MEASURE:LAM1:LAMBDA4?") == ["RMS1:UL1:[V]:0;", "LAM1:Lambda4:[]:0;"]
    assert split_command("CALCULATE:EC01:0001:MRATE 10;") == ("CALCULATE:EC01:0001:MRATE", ["10"])
    assert split_command("*CLS") == ("*CLS", [])


# -- the driver against its twin over loopback ----------------------------------------------------------


@pytest.fixture
def twin(world: World) -> Iterator[Served]:
    served = serve(world)
    yield served
    served.stop()


@pytest.fixture
def com(twin: Served) -> Iterator[ZeraCom5003]:
    instrument = ZeraCom5003(twin.address, timeout_s=2.0).open()
    yield instrument
    instrument.close()


def energise(world: World, volts: float = 120.0, amps: float = 5.0, lag_deg: float = 60.0) -> None:
    """Set the board's conditions directly; the gain errors are zeroed so the setpoints are the truth."""
    with world.lock:
        world.source.gain_error = world.load.gain_error = 0.0
        world.source.voltages_v = [volts] * 3
        world.load.currents_a, world.load.lags_deg = [amps] * 3, [lag_deg] * 3
        world.source.output = world.load.output = True


def test_readings_match_physics(world, com):
    """Wye, 120 V, 5 A lagging 60° on three elements: P = 3 · 120 · 5 · cos 60° · (1 + reference error).
    Values travel with 8 significant digits: rel 1e-7; the angles come from 8-digit DFT vectors: 1e-5°."""
    energise(world)
    gain = 1 + world.reference.error_pct / 100
    readings = com.readings()
    assert readings.voltages_v == pytest.approx((120.0,) * 3, rel=1e-7)
    assert readings.currents_a == pytest.approx((5.0,) * 3, rel=1e-7)
    assert readings.power_w == pytest.approx(3 * 120 * 5 * math.cos(math.radians(60)) * gain, rel=1e-7)
    assert readings.power_factor == pytest.approx(0.5, rel=1e-7)
    assert readings.frequency_hz == pytest.approx(world.source.frequency_hz, rel=1e-7)
    assert readings.voltage_angles_deg == pytest.approx((0.0, -120.0, 120.0), abs=1e-5)
    assert (readings.thd_voltage_pct, readings.thd_current_pct) == pytest.approx((0.0, 0.0), abs=1e-6)
    assert dict(readings.harmonic_power_w) == pytest.approx({1: 900.0 * gain}, rel=1e-7)


def test_readings_with_harmonics_match_physics(world, com):
    """10 % 5th in the voltage, 20 % 5th in the current, both at 0° on the fundamental: per element
    V5 I5 cos(5 · 60°) = 12 · 1 · 0.5 = 6 W beside the fundamental's 300 W; THD 10 % and 20 %; true RMS
    120 √1.01 V and 5 √1.04 A; LAMBDA4 = ΣP / ΣUI."""
    energise(world)
    with world.lock:
        world.source.harmonics = {5: Harmonic(5, 10.0, 0.0)}
        world.load.harmonics = {5: Harmonic(5, 20.0, 0.0)}
    gain = 1 + world.reference.error_pct / 100
    readings = com.readings()
    assert readings.voltages_v == pytest.approx((120 * math.sqrt(1.01),) * 3, rel=1e-7)
    assert readings.currents_a == pytest.approx((5 * math.sqrt(1.04),) * 3, rel=1e-7)
    assert (readings.thd_voltage_pct, readings.thd_current_pct) == pytest.approx((10.0, 20.0), rel=1e-6)
    assert readings.power_w == pytest.approx(3 * 306 * gain, rel=1e-7)
    assert dict(readings.harmonic_power_w) == pytest.approx({1: 900 * gain, 5: 18 * gain}, rel=1e-6)
    assert readings.power_factor == pytest.approx(918 / (3 * 120 * math.sqrt(1.01) * 5 * math.sqrt(1.04)), rel=1e-7)


def test_fewer_elements_read_fewer_channels(world, twin):
    energise(world)
    instrument = ZeraCom5003(twin.address, timeout_s=2.0, elements=2).open()
    readings = instrument.readings()
    instrument.close()
    assert readings.voltages_v == pytest.approx((120.0, 120.0), rel=1e-7)
    assert readings.voltage_angles_deg == pytest.approx((0.0, -120.0), abs=1e-5)
    gain = 1 + world.reference.error_pct / 100
    assert dict(readings.harmonic_power_w) == pytest.approx({1: 600.0 * gain}, rel=1e-7)


def test_pulse_constant_is_the_worlds(world, com):
    assert com.pulse_constant_wh() == pytest.approx(world.reference.pulse_constant_wh, rel=1e-15)


def test_energy_register_is_a_running_total_of_reference_pulses(world, twin, com):
    """Started at open (the twin, as the COM5003, starts in 'duration' mode: the driver set MODE 0).
    One hour at P: P · 1 h within one reference pulse; a reopen keeps the total; reset_energy zeroes it."""
    assert (twin.device.em.mode, twin.device.em.start) == (0, 1)
    energise(world)
    with world.lock:
        world.advance(3600.0)
        expected_wh = world.reference_power_w()
    pulse_wh = world.reference.pulse_constant_wh
    assert com.energy_wh() == pytest.approx(expected_wh, abs=pulse_wh)
    com.reopen()
    assert com.energy_wh() == pytest.approx(expected_wh, abs=pulse_wh)
    com.reset_energy()
    assert com.energy_wh() == 0.0
    with world.lock:
        world.advance(60.0)
    assert com.energy_wh() == pytest.approx(expected_wh / 60, abs=pulse_wh)


def test_energy_register_stopped_behind_the_drivers_back_is_refused(com, twin):
    assert list(twin.device.handle_line(f"{EM}:START 0;")) == []
    with pytest.raises(InstrumentError, match=r"energy register is not running \(EM01 STATUS 4\)"):
        com.energy_wh()


def test_error_calculator_reads_the_wired_meters_error(world, com):
    """SC1 is wired to position 1. The COM5003 compares MRATE of the meter's pulses with the
    reference's: RESULT = (1 + meter error) / (1 + reference error) - 1, within one of the ~1e6
    reference pulses counted (1e-4 %)."""
    energise(world)
    meter = world.meters[0]
    com.configure_error_calculator("SC1", 1000.0 / meter.kh_wh, 10)
    com.start_error_calculator()
    assert com.error_calculator_status() == CalculatorStatus(1)
    with world.lock:
        world.advance(6.0)  # 900 W against Kh 1 Wh: a pulse every 4 s
    assert com.error_calculator_status() == CalculatorStatus(2)
    with pytest.raises(InstrumentError, match=r"no result \(EC01 STATUS 2\)"):
        com.error_calculator_result()
    with world.lock:
        world.advance(45.0)
        truth = ((1 + meter.true_error_pct(world.conditions()) / 100) / (1 + world.reference.error_pct / 100) - 1) * 100
    assert com.error_calculator_status() == CalculatorStatus(4)
    assert com.error_calculator_result() == pytest.approx(truth, abs=1e-4)
    assert truth != pytest.approx(0.0, abs=1e-3)  # the meter's error is large enough to be seen


def test_error_calculator_stop_aborts(world, com):
    energise(world)
    com.configure_error_calculator("SC1", 1000.0, 10)
    com.start_error_calculator()
    with world.lock:
        world.advance(6.0)
    com.stop_error_calculator()
    status = com.error_calculator_status()
    assert status.aborted and not status.running


def test_twin_refusal_is_one_line_naming_the_instrument(com):
    """The twin has only an active-energy pulse output: REFSOURCE Q is refused (-120), and with it
    DCUNIT I/kVarh (the twin's reference stays P): both entries of the error list are reported."""
    with pytest.raises(InstrumentError, match=r"^reference @ TCPIP0::127\.0\.0\.1::\d+::SOCKET: rejected "
                                              r"'CALCULATE:EC01:0001:DUTSOURCE SC1;.*': -120 Numeric data error; "
                                              r"-120 Numeric data error$"):
        com.configure_error_calculator("SC1", 1000.0, 10, reference_source="Q")


def test_open_refused_when_an_integration_time_exceeds_the_timeout(twin):
    twin.device.integration_s["POW1"] = 5.0
    instrument = ZeraCom5003(twin.address, timeout_s=2.0)
    with pytest.raises(InstrumentError, match=r"POW1 integration time 5 s"):
        instrument.open()
    assert not instrument.is_open


def test_overload_refuses_readings(world, twin, com):
    energise(world)
    twin.device.inject_fault("OVERRANGE")
    with pytest.raises(InstrumentError, match="overloaded"):
        com.readings()
    twin.device.inject_fault("NONE")
    assert com.readings().voltages_v == pytest.approx((120.0,) * 3, rel=1e-7)


def test_garbled_reply_over_the_link_names_the_instrument(twin, com):
    twin.device.inject_fault("GARBLE")
    with pytest.raises(ReplyError, match=r"^reference @ TCPIP0::127\.0\.0\.1::\d+::SOCKET: garbled reply to "
                                         r"'CONFIGURATION:POW1:M0CONSTANT\?'"):
        com.pulse_constant_wh()
