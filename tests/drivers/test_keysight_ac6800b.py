"""Keysight AC6800B driver: pinned to the guide's exchanges, then run against its twin on loopback.

Sections quoted are from the *Keysight AC6800B Series Operating and Service Guide*, chapter 3
(SCPI Programming Reference), unless another document is named.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from bench.metrology.harmonics import Harmonic
from bench.servers.scpi import ScpiServer
from bench.sim.board import load_board
from bench.sim.simbench import board_path
from bench.sim.twins import Served
from bench.sim.twins.keysight_ac6800b import KeysightAc6800bTwin, serve
from bench.sim.world import World
from instruments.errors import InstrumentError, RangeError, ReplyError
from instruments.registry import DriverSettings, check_driver_class
from instruments.roles import Capability, PhaseVoltage
from instruments.vendors.keysight_ac6800b import KeysightAc6800b
from tests.drivers.protocol import expected_protocol

ADDRESS = "TCPIP0::127.0.0.1::5025::SOCKET"
IDN_B = "Keysight Technologies,AC6803B,MY12345678,A.01.02"
OPENING = [("*IDN?", IDN_B), ("*CLS", None)]
OK = '+0,"No error"'


def driver(**ranges: tuple[float, float]) -> KeysightAc6800b:
    return KeysightAc6800b(ADDRESS, ranges=dict(ranges))


def volts(v: float) -> list[PhaseVoltage]:
    return [PhaseVoltage(v, 0.0)]


def test_the_class_fills_the_source_role_and_declares_what_it_has() -> None:
    check_driver_class("keysight-ac6800b", KeysightAc6800b)
    assert KeysightAc6800b.ROLES == {"source"}
    # the Questionable Status register reads the protections; no harmonic programming, one phase
    assert KeysightAc6800b.CAPABILITIES == {Capability.PROTECTION_READBACK}
    made = KeysightAc6800b.from_settings(DriverSettings(ADDRESS, "source", 1.5, {"voltage": (0.0, 130.0)}))
    assert (made.name, made.address, made.ranges, made.phases) == ("source", ADDRESS, {"voltage": (0.0, 130.0)}, 1)


# -- exchanges pinned to the guide -------------------------------------------------------------


def test_open_identifies_the_model_and_its_ranges() -> None:
    """*IDN? gives maker, model, serial, firmware (IEEE 488.2); the B model's ranges are 155 V and
    310 V (AC6800B data sheet, p. 7)."""
    with expected_protocol(driver(), OPENING, opened=False) as source:
        source.open()
    assert source.model == "AC6803B"
    assert [(r.nominal_v, r.max_v) for r in source.voltage_ranges] == [(155.0, 155.0), (310.0, 310.0)]
    assert source.phases == 1


def test_open_refuses_another_instrument() -> None:
    with expected_protocol(driver(), [("*IDN?", "Keysight Technologies,34461A,MY1,A.03")], opened=False) as source:
        with pytest.raises(InstrumentError, match="not a Keysight AC6800 series source"):
            source.open()
    assert not source.is_open


def test_voltage_and_frequency_go_in_the_three_argument_form_with_the_range_lowered_after() -> None:
    """p. 98: ``FREQuency 100,90,110`` is the frequency with its low and high limits; the AC6800
    guide's VOLTage page: VOLTage takes one or three arguments. Going down from the 310 V range,
    the voltage is set first (valid in both ranges), then the range ('changing ranges from high to
    low invokes Range Error Checking'). Every setting is followed by ``;:SYST:ERR?`` from the root,
    as in the guide's ``FREQuency 100,90,110;:OUTPut ON``."""
    with expected_protocol(driver(), [
        *OPENING,
        ("OUTP:COUP?", "AC"),
        ("VOLT:RANG?", "+3.100000E+02"),
        ("VOLT 120,0,155;:SYST:ERR?", OK),
        ("VOLT:RANG 155;:SYST:ERR?", OK),
        ("FREQ 60,40,500;:SYST:ERR?", OK),
    ], opened=False) as source:
        source.open()
        source.program_voltages(volts(120.0), 60.0, ())


def test_the_guides_frequency_example_is_what_a_narrowed_profile_sends() -> None:
    """p. 98, word for word: ``FREQuency 100,90,110`` (short form on the wire), the profile having
    narrowed the frequency to 90..110 Hz and the voltage to 0..130 V."""
    with expected_protocol(driver(frequency=(90.0, 110.0), voltage=(0.0, 130.0)), [
        *OPENING,
        ("OUTP:COUP?", "AC"),
        ("VOLT:RANG?", "+1.550000E+02"),
        ("VOLT 20,0,130;:SYST:ERR?", OK),
        ("FREQ 100,90,110;:SYST:ERR?", OK),
    ], opened=False) as source:
        source.open()
        source.program_voltages(volts(20.0), 100.0, ())


def test_going_up_the_range_changes_before_the_voltage() -> None:
    with expected_protocol(driver(), [
        *OPENING,
        ("OUTP:COUP?", "AC"),
        ("VOLT:RANG?", "+1.550000E+02"),
        ("VOLT:RANG 310;:SYST:ERR?", OK),
        ("VOLT 230,0,310;:SYST:ERR?", OK),
        ("FREQ 50,40,500;:SYST:ERR?", OK),
    ], opened=False) as source:
        source.open()
        source.program_voltages(volts(230.0), 50.0, ())


def test_an_a_model_uses_the_135_v_range_up_to_137_5_v() -> None:
    """AC6800 Series guide, VOLTage Subsystem: 'AC mode 135 V range: 0.0 to 137.5 V'."""
    with expected_protocol(driver(), [
        ("*IDN?", "Keysight Technologies,AC6801A,MY00000002,A.01.00"), ("*CLS", None),
        ("OUTP:COUP?", "AC"),
        ("VOLT:RANG?", "+1.350000E+02"),
        ("VOLT 137.5,0,137.5;:SYST:ERR?", OK),
        ("FREQ 60,40,500;:SYST:ERR?", OK),
    ], opened=False) as source:
        source.open()
        source.program_voltages(volts(137.5), 60.0, ())


def test_a_coupling_other_than_ac_is_set_to_ac() -> None:
    """'AC|DC|ACDC in the OUTPut:COUPling command' (p. 98); a discrete query returns the short
    form in upper case (p. 99)."""
    with expected_protocol(driver(), [
        *OPENING,
        ("OUTP:COUP?", "ACDC"),
        ("OUTP:COUP AC;:SYST:ERR?", OK),
        ("VOLT:RANG?", "+1.550000E+02"),
        ("VOLT 120,0,155;:SYST:ERR?", OK),
        ("FREQ 60,40,500;:SYST:ERR?", OK),
    ], opened=False) as source:
        source.open()
        source.program_voltages(volts(120.0), 60.0, ())


def test_a_setting_the_instrument_rejects_is_an_error_with_its_queue() -> None:
    with expected_protocol(driver(), [
        *OPENING,
        ("OUTP:COUP?", "AC"),
        ("VOLT:RANG?", "+1.550000E+02"),
        ("VOLT 120,0,155;:SYST:ERR?", '-222,"Data out of range"'),
        ("SYST:ERR?", OK),
    ], opened=False) as source:
        source.open()
        with pytest.raises(InstrumentError, match='rejected .VOLT 120,0,155.: -222 Data out of range'):
            source.program_voltages(volts(120.0), 60.0, ())


@pytest.mark.parametrize(("register", "tripped"), [
    ("+0", []),
    ("+2", ["OC"]),  # bit 1: 'Output is disabled by the overcurrent protection'
    ("+17", ["OV", "OT"]),  # bits 0 and 4
    ("+32", ["WDOG"]),
    ("+5120", []),  # CL-PEAK (10) and CL-RMS (12): current limiting, the output stays on
    ("+8", []),  # LV: low voltage detected, not a protection
])
def test_protection_reads_the_questionable_condition_register(register: str, tripped: list[str]) -> None:
    """p. 149: STATus:QUEStionable:CONDition? is live and not cleared by reading; p. 103: the bits."""
    with expected_protocol(driver(), [("STAT:QUES:COND?", register), ("STAT:QUES:COND?", register)]) as source:
        assert source.protections() == tripped
        assert source.protection_tripped() is bool(tripped)


def test_a_register_out_of_16_bits_is_a_garbled_reply() -> None:
    with expected_protocol(driver(), [("STAT:QUES:COND?", "+70000")]) as source:
        with pytest.raises(ReplyError, match=r"^source @ TCPIP0.*garbled reply to 'STAT:QUES:COND\?'"):
            source.protection_tripped()


def test_switch_on_held_off_by_a_protection_is_an_error() -> None:
    with expected_protocol(driver(), [("OUTP ON;:SYST:ERR?", OK), ("STAT:QUES:COND?", "+2")]) as source:
        with pytest.raises(InstrumentError, match=r"held off by its protection \(OC\)"):
            source.switch_on()


def test_safe_state_is_output_off_read_back_and_idempotent() -> None:
    """p. 99: a boolean query always returns 0 or 1."""
    with expected_protocol(driver(), [("OUTP OFF;:SYST:ERR?", OK), ("OUTP?", "0")] * 2) as source:
        source.safe_state()
        source.safe_state()


def test_safe_state_that_does_not_read_back_off_is_an_error() -> None:
    with expected_protocol(driver(), [("OUTP OFF;:SYST:ERR?", OK), ("OUTP?", "1")]) as source:
        with pytest.raises(InstrumentError, match="still on"):
            source.safe_state()


def test_a_garbled_reply_is_one_line_naming_the_instrument() -> None:
    with expected_protocol(driver(), [("OUTP?", "#\x15on?!")]) as source:
        with pytest.raises(ReplyError) as raised:
            source.output_on()
    message = str(raised.value)
    assert message.startswith(f"source @ {ADDRESS}: garbled reply to 'OUTP?'") and "\n" not in message


def test_an_unknown_range_in_the_reply_is_refused() -> None:
    with expected_protocol(driver(), [*OPENING, ("OUTP:COUP?", "AC"), ("VOLT:RANG?", "+2.700000E+02")],
                           opened=False) as source:
        source.open()
        with pytest.raises(ReplyError, match=r"270 V, not a range of the AC6803B \(155/310 V\)"):
            source.program_voltages(volts(120.0), 60.0, ())


@pytest.mark.parametrize(("ranges", "phases", "frequency", "harmonics", "refusal"), [
    ({}, volts(320.0), 60.0, (), "outside the AC6803B's range 0..310 V"),
    ({"voltage": (0.0, 130.0)}, volts(140.0), 60.0, (), "range 0..130 V"),
    ({}, volts(math.nan), 60.0, (), "outside"),
    ({}, volts(120.0), 30.0, (), "frequency 30 Hz is outside the instrument range 40..500 Hz"),
    ({}, [PhaseVoltage(120.0, 120.0)], 60.0, (), "cannot be set to 120°"),
    ({}, [PhaseVoltage(120.0, 0.0)] * 3, 60.0, (), "3 phase voltages"),
    ({}, volts(120.0), 60.0, (Harmonic(3, 5.0, 0.0),), "sine only"),
])
def test_refusals_come_before_anything_is_sent(ranges, phases, frequency, harmonics, refusal) -> None:
    with expected_protocol(driver(**ranges), OPENING, opened=False) as source:
        source.open()
        with pytest.raises(InstrumentError, match=refusal):
            source.program_voltages(phases, frequency, harmonics)


def test_voltage_limits_need_the_model() -> None:
    with pytest.raises(InstrumentError, match="open it first"):
        driver().check_voltage(120.0, 60.0)


# -- against the twin, on loopback -------------------------------------------------------------


@dataclass
class Rig:
    world: World
    served: Served
    source: KeysightAc6800b

    @property
    def twin(self) -> KeysightAc6800bTwin:
        assert isinstance(self.served.device, KeysightAc6800bTwin)
        return self.served.device


def _default_world() -> World:
    return load_board(board_path("default")).world


@contextmanager
def _rig(world: World, served: Served) -> Iterator[Rig]:
    """The driver opened on the twin over loopback; both closed whatever happens."""
    source = KeysightAc6800b(served.address, timeout_s=2.0)
    try:
        source.open()
        yield Rig(world, served, source)
    finally:
        source.close()
        served.stop()


@pytest.fixture
def rig() -> Iterator[Rig]:
    world = _default_world()
    with _rig(world, serve(world)) as r:
        yield r


def test_twin_drives_phase_1_only_and_the_power_follows(rig: Rig) -> None:
    """A single-phase source on the three-element board: element 1 alone sees voltage, so with
    current in every phase the active power is V1 I1 cos(lag1) alone (phases 2 and 3 carry current
    at 0 V). Both outputs' gain errors apply; float arithmetic only, so the tolerance is 1e-12."""
    world, source = rig.world, rig.source
    source.program_voltages(volts(120.0), 60.0, ())
    assert (world.source.voltages_v, world.source.frequency_hz, rig.twin.range_v) == ([120.0, 0.0, 0.0], 60.0, 155.0)
    assert world.source.output_voltages_v() == [0.0, 0.0, 0.0]  # programmed, output still off
    source.switch_on()
    with world.lock:
        world.load.currents_a, world.load.lags_deg, world.load.output = [5.0, 5.0, 5.0], [30.0, 30.0, 30.0], True
        v1 = 120.0 * (1 + world.source.gain_error)
        i1 = 5.0 * (1 + world.load.gain_error)
        assert world.source.output_voltages_v() == pytest.approx([v1, 0.0, 0.0], rel=1e-12)
        assert world.true_power_w() == pytest.approx(v1 * i1 * math.cos(math.radians(30.0)), rel=1e-12)
        assert world.reference_power_w() == pytest.approx(world.true_power_w() * (1 + world.reference.error_pct / 100))
    assert (source.voltage, source.frequency, source.output_on(), source.protection_tripped()) == (120.0, 60.0, True,
                                                                                                   False)
    source.safe_state()
    source.safe_state()
    assert world.source.output is False and world.true_power_w() == 0.0


def test_twin_clears_the_worlds_harmonics_a_sine_source(rig: Rig) -> None:
    assert rig.world.source.harmonics == {}


def test_twin_range_follows_the_setting_both_ways(rig: Rig) -> None:
    rig.source.program_voltages(volts(230.0), 50.0, ())
    assert (rig.twin.range_v, rig.world.source.voltages_v[0], rig.world.source.frequency_hz) == (310.0, 230.0, 50.0)
    rig.source.program_voltages(volts(120.0), 60.0, ())
    assert (rig.twin.range_v, rig.world.source.voltages_v[0]) == (155.0, 120.0)
    assert rig.twin.voltage_limits == (0.0, 155.0)


def test_twin_with_the_limit_state_on_holds_the_profiles_limits(rig: Rig) -> None:
    """Soft limits apply only while the limit state is on (p. 163): with it on, the profile's
    limits sent by the driver stop a later setting outside them, from any client."""
    world = rig.world
    narrowed = KeysightAc6800b(rig.served.address, ranges={"voltage": (100.0, 130.0)}).open()
    try:
        narrowed.program_voltages(volts(120.0), 60.0, ())
        narrowed.set("VOLT:LIM:STAT ON")
        with pytest.raises(InstrumentError, match="-222"):
            rig.source.set("VOLT 140")  # another client, no limits of its own
        assert world.source.voltages_v[0] == 120.0
    finally:
        narrowed.close()


def test_twin_a_model_ranges() -> None:
    world = _default_world()
    device = KeysightAc6800bTwin(world, model="AC6803A")
    server = ScpiServer(device).start()
    with _rig(world, Served(server.resource, device, [server])) as r:
        r.source.program_voltages(volts(137.5), 60.0, ())
        assert (device.range_v, world.source.voltages_v[0]) == (135.0, 137.5)
        r.source.program_voltages(volts(140.0), 60.0, ())
        assert (device.range_v, world.source.voltages_v[0]) == (270.0, 140.0)
        with pytest.raises(RangeError, match="0..275 V"):
            r.source.check_voltage(276.0, 60.0)


def test_twin_trip_holds_the_output_off_until_cleared(rig: Rig) -> None:
    """The world's source trip is the overcurrent protection (bit 1): the output goes off but stays
    programmed on (OUTP? 1); OUTPut:PROTection:CLEar restores it."""
    world, source = rig.world, rig.source
    source.program_voltages(volts(120.0), 60.0, ())
    source.switch_on()
    with world.lock:
        world.source.output, world.source.tripped = False, True
    assert source.protections() == ["OC"] and source.output_on() is True
    assert world.source.output_voltages_v()[0] == 0.0
    with pytest.raises(InstrumentError, match=r"held off by its protection \(OC\)"):
        source.switch_on()
    source.set("OUTP:PROT:CLE")
    assert source.protection_tripped() is False and world.source.output is True


def test_twin_speaks_the_guides_syntax() -> None:
    """Short and long forms, the optional nodes, MIN|MAX and units (p. 99), the one-or-three
    argument rule, the compound example with ``;:`` (p. 98) and SCPI error-queue replies."""
    world = _default_world()
    twin = KeysightAc6800bTwin(world)

    def run(line: str) -> list[str]:
        return list(twin.handle_line(line))

    assert run("*IDN?") == ["Keysight Technologies,AC6803B,MY00000001,A.01.00"]
    assert run("FREQuency 100,90,110;:OUTPut ON;:OUTPut?") == ["1"]
    assert (twin.frequency_hz, twin.frequency_limits, world.source.output) == (100.0, (90.0, 110.0), True)
    assert run("SOURce:VOLTage:LEVel:IMMediate:AMPLitude 20,10,30;:volt?") == ["+2.000000E+01"]
    assert twin.voltage_limits == (10.0, 30.0)
    assert run("sour:volt:rang 155;:VOLT:RANG?;:VOLTage? MAX;:VOLT? MIN") == ["+1.550000E+02", "+1.550000E+02",
                                                                            "+0.000000E+00"]
    assert run("VOLT 120000MV;:VOLT?") == ["+1.200000E+02"]
    assert run("FREQ MAX;:FREQ?;:FREQ 0.05KHZ;:FREQ?") == ["+5.000000E+02", "+5.000000E+01"]
    assert run("OUTP:COUP?;:STAT:QUES:COND?;:OUTP:STAT 0;:OUTP?") == ["AC", "+0", "0"]
    assert run("SYST:ERR?") == ['0,"No error"']
    run("VOLT 120,100")  # a limit without the other
    run("VOLT 120,0,155,1")
    run("VOLT 160")  # above the 155 V range
    run("VOLT:RANG 310;:VOLT 200;:VOLT:RANG 155")  # down a range below the setting
    run("VOLT:RANG 200")  # not a range
    run("VOLT 1_0")
    assert [run("SYST:ERR?")[0].split(",")[0] for _ in range(7)] == ["-109", "-108", "-222", "-221", "-224", "-104",
                                                                     "0"]
    assert world.source.voltages_v[0] == 200.0 and twin.range_v == 310.0


def test_twin_follows_the_guides_path_example() -> None:
    """p. 98: 'FREQuency 100,90,110;MODE FIXed is the same as sending FREQuency 100,90,110 and
    FREQuency:MODE FIXed' (the implied [:CW] node keeps the path at FREQuency)."""
    twin = KeysightAc6800bTwin(_default_world())
    twin.frequency_mode = "STEP"
    list(twin.handle_line("FREQuency 100,90,110;MODE FIXed"))
    assert (twin.frequency_mode, list(twin.errors)) == ("FIX", [])


def test_a_refused_setting_never_reaches_the_twin(rig: Rig) -> None:
    before = len(rig.twin.received)
    with pytest.raises(RangeError):
        rig.source.program_voltages(volts(311.0), 60.0, ())
    with pytest.raises(InstrumentError):
        rig.source.program_voltages([PhaseVoltage(120.0, -120.0)], 60.0, ())
    assert len(rig.twin.received) == before


def test_a_garbled_link_is_one_line_naming_the_instrument(rig: Rig) -> None:
    rig.twin.inject_fault("GARBLE")
    with pytest.raises(ReplyError) as raised:
        rig.source.output_on()
    assert str(raised.value).startswith(f"source @ {rig.served.address}: garbled reply to 'OUTP?'")


def test_a_silent_twin_is_a_bounded_timeout() -> None:
    world = _default_world()
    served = serve(world)
    source = KeysightAc6800b(served.address, timeout_s=0.3).open()
    try:
        served.device.inject_fault("SILENT")
        with pytest.raises(InstrumentError, match="no reply before the timeout"):
            source.output_on()
        assert not source.is_open
    finally:
        source.close()
        served.stop()
