"""Drivers against the simulated instruments over the real transports (TCP, pty, Modbus TCP)."""
import math
import socket
import struct

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pymodbus.client.mixin import ModbusClientMixin

from bench.metrology.harmonics import Harmonic
from instruments.ac_load import ScpiPhantomLoad
from instruments.ac_source import ScpiAcSource
from instruments.errors import InstrumentError, RangeError, ReplyError
from instruments.meter_modbus import ModbusMeter
from instruments.pulse_counter import SerialPulseCounter
from instruments.reference_standard import ScpiReferenceStandard
from instruments.register_map import TYPES, Register


@pytest.fixture
def source(sim):
    driver = ScpiAcSource(sim.scpi["source"].resource, timeout_s=0.5).open()
    yield driver
    driver.close()


@pytest.fixture
def counter(sim):
    driver = SerialPulseCounter(sim.counter_line.port, timeout_s=0.5).open()
    yield driver
    driver.close()


def test_source_round_trip_reaches_the_world(sim, source):
    assert source.idn.startswith("MeterBench,SIM-ACS")
    source.voltage = 239.5
    source.frequency = 59.9
    source.output = True
    assert (source.voltage, source.frequency, source.output) == (239.5, 59.9, True)
    assert sim.world.source.output_voltages_v() == pytest.approx([239.5 * (1 + sim.world.source.gain_error)] * 3)
    source.safe_state()
    assert sim.world.source.output is False


def test_range_is_refused_before_anything_is_sent(sim, source):
    source.ranges["voltage"] = (0.0, 250.0)
    source.voltage = 240.0
    with pytest.raises(RangeError, match=r"source @ TCPIP0::127\.0\.0\.1::\d+::SOCKET: voltage 260 V is outside"):
        source.voltage = 260.0
    assert sim.world.source.voltage_v == 240.0
    assert not sim.source.errors


def test_instrument_rejection_comes_from_its_error_queue(sim, source):
    with pytest.raises(InstrumentError, match=r"rejected 'VOLT 299.0000': -222 Data out of range") as raised:
        source.ranges["voltage"] = (0.0, 1000.0)  # the profile claims more than the instrument has
        sim.world.source.max_voltage_v = 280.0
        source.voltage = 299.0
    assert "\n" not in str(raised.value)


def test_garbled_reply_is_an_error_naming_the_instrument(sim, control):
    reference = ScpiReferenceStandard(sim.scpi["reference"].resource, timeout_s=0.5).open()
    control.fault("REFERENCE", "GARBLE")
    with pytest.raises(ReplyError, match=r"^reference @ TCPIP0::.*: garbled reply to 'MEAS:POW\?'"):
        _ = reference.power
    control.fault("REFERENCE", "NONE")
    assert reference.power == 0.0
    reference.close()


def test_unreachable_instrument_is_one_clear_line():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(InstrumentError) as raised:
        ScpiPhantomLoad(f"TCPIP0::127.0.0.1::{port}::SOCKET", timeout_s=0.5).open()
    message = str(raised.value)
    assert message.startswith(f"load @ TCPIP0::127.0.0.1::{port}::SOCKET:") and "\n" not in message


def test_silent_instrument_times_out_with_its_name(sim, control, source):
    control.fault("SOURCE", "SILENT")
    with pytest.raises(InstrumentError, match=r"^source @ .*'VOLT\?': no reply before the timeout"):
        _ = source.voltage


def test_counter_gates_over_a_pty(sim, counter, control):
    assert counter.channels == len(sim.world.meters) and counter.timebase_hz == 10_000_000
    sim.world.source.voltage_v, sim.world.source.output = 120.0, True
    sim.world.load.currents_a, sim.world.load.output = [1000.0 / 360.0] * 3, True
    counter.arm(1, 10)
    assert counter.states()[0].state == "ARMED"
    control.advance(60.0)
    assert counter.states()[0].state == "DONE"
    result = counter.result(1)
    assert result.mut_pulses == 10
    # 10 pulses of 1 Wh at ~1 kW take ~36 s; the reference saw ~10 Wh of 10 µWh pulses.
    assert result.gate_time_s == pytest.approx(36.0, rel=0.01)
    assert result.ref_pulses == pytest.approx(1_000_000, rel=0.01)


def test_counter_rejects_a_bad_channel(counter):
    with pytest.raises(InstrumentError, match=r"rejected 'GATE:ARM 99,5': -222"):
        counter.arm(99, 5)


def test_garbled_counter_reply(sim, counter, control):
    control.fault("COUNTER", "GARBLE")
    with pytest.raises(ReplyError, match=r"^counter @ /dev/pts/\d+: garbled reply to 'GATE:STAT\?'"):
        counter.states()


def test_meter_over_modbus_reports_identity_and_energy(sim):
    position = sim.profile().positions[2]
    meter = ModbusMeter(position.address, sim.board.register_map, name="position 3").open()
    identity = meter.identity()
    truth = sim.world.meters[2]
    assert (identity.serial, identity.mac, identity.firmware) == (truth.serial, truth.mac, truth.firmware)
    truth.energy_wh = 12345.6789
    assert meter.energy_wh() == pytest.approx(12345.679, abs=0.0005)  # 1 mWh register resolution
    meter.close()


def test_unreachable_meter_names_its_position():
    with pytest.raises(InstrumentError, match=r"^position 4 @ 127\.0\.0\.1:1: no Modbus TCP connection"):
        ModbusMeter("127.0.0.1:1", {}, name="position 4", timeout_s=0.3).open()


@pytest.mark.parametrize("register, value", [
    (Register("e", 0, "uint64", 0.001), 98765.432),
    (Register("v", 0, "float32"), 239.75),
    (Register("t", 0, "int16"), -12),
    (Register("s", 0, "string", words=8), "SIM24A00001"),
])
def test_register_codec_round_trip(register, value):
    words = register.encode(value)
    assert len(words) == register.count
    assert (register.decode(words) == pytest.approx(value) if not isinstance(value, str)
            else register.decode(words) == value)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), kind=st.sampled_from([t for t in TYPES if t != "string"]),
       scale=st.sampled_from([1.0, 0.001, 0.1, 10.0]))
def test_a_numeric_register_decodes_as_pymodbus_converts_it(data, kind, scale):
    """The decoder unpacks the words itself; pymodbus's ``convert_from_registers`` (word order
    big) is the reference it must agree with, bit for bit, for any words of any numeric type."""
    register = Register("r", 0, kind, scale)
    words = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=register.count, max_size=register.count))
    expected = ModbusClientMixin.convert_from_registers(words, ModbusClientMixin.DATATYPE[kind.upper()])
    expected = expected * scale if scale != 1.0 else expected
    if not math.isfinite(expected):
        with pytest.raises(ValueError, match="not a finite number"):
            register.decode(words)
    else:
        decoded = register.decode(words)
        assert decoded == expected and type(decoded) is type(expected)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), kind=st.sampled_from([t for t in TYPES if t != "string"]),
       scale=st.sampled_from([1.0, 0.001, 0.1, 10.0]))
def test_a_numeric_register_encodes_as_pymodbus_converts_it(data, kind, scale):
    """The simulated meters' encoder packs the words itself; pymodbus's ``convert_to_registers``
    (word order big) is the reference, for values in the type's range and beyond it."""
    register = Register("r", 0, kind, scale)
    if kind.startswith("float"):  # float32 out of its range too: pymodbus's pack refuses those
        value = data.draw(st.floats(allow_nan=False, allow_infinity=False))
    else:
        bits = 16 * register.count
        low = -(1 << (bits - 1)) if kind.startswith("int") else 0
        value = data.draw(st.integers(low - 2, low + (1 << bits) + 1)) * scale
    raw = value / scale if kind.startswith("float") else int(round(value / scale))
    assume(math.isfinite(raw))
    try:
        expected = ModbusClientMixin.convert_to_registers(raw, ModbusClientMixin.DATATYPE[kind.upper()])
    except (OverflowError, struct.error):
        with pytest.raises(ValueError, match="out of range"):
            register.encode(value)
    else:
        assert register.encode(value) == expected


@pytest.mark.parametrize("words", [[1, 2, 3], [0, 0, 0, 0x10000], [0, 0, 0, -1], [0, 0, 0, 1.0]])
def test_words_that_are_not_the_registers_are_refused(words):
    with pytest.raises(ValueError, match="expected 4 16-bit words"):
        Register("e", 0, "uint64", 0.001).decode(words)


def test_a_late_reply_is_never_taken_for_the_next_answer(sim):
    reference = ScpiReferenceStandard(sim.scpi["reference"].resource, timeout_s=0.3).open()
    sim.world.source.voltage_v, sim.world.source.output = 120.0, True
    sim.world.load.currents_a, sim.world.load.output = [4.0] * 3, True
    with sim.world.lock:  # the instrument is busy past the timeout; its reply comes late
        with pytest.raises(InstrumentError, match="no reply before the timeout"):
            _ = reference.power
    reference.reopen()
    assert reference.frequency == pytest.approx(60.0)  # not the late power reading
    reference.close()


def test_garbled_meter_text_register_is_one_clear_line(sim):
    wrong_map = dict(sim.board.register_map)
    pf = wrong_map["power_factor"]  # float32 1.0 = 0x3F80 0x0000: not text
    wrong_map["serial"] = Register("serial", pf.address, "string", words=2)
    meter = ModbusMeter(sim.profile().positions[0].address, wrong_map, name="position 1").open()
    with pytest.raises(ReplyError, match=r"^position 1 @ 127\.0\.0\.1:\d+: garbled 'serial' at 10: not ASCII"):
        meter.identity()
    meter.close()


def test_simulated_instruments_parse_parameters_strictly(sim, counter):
    for bad in ("GATE:ARM 1.9,5", "GATE:ARM 1,1_0", "GATE:ARM 1,nan"):
        with pytest.raises(InstrumentError, match=r"-104 Data type error"):
            counter.set(bad)


def test_a_full_error_queue_reports_overflow(sim, source):
    for _ in range(20):
        source.write("BOGUS")
    errors = [source.query("SYST:ERR?") for _ in range(17)]
    assert errors[:15] == ['-113,"Undefined header;BOGUS"'] * 15
    assert errors[15:] == ['-350,"Queue overflow"', '0,"No error"']


def test_harmonics_and_unbalanced_currents_reach_the_world_and_the_reference_measures_them(sim):
    """Program the 5th-harmonic profile and unbalanced currents through the drivers; the
    reference standard, sampling the waveforms, must find the THD and the power the data imply."""
    from bench.metrology.harmonics import load_profiles
    from bench.plans.limits import HARMONICS_FILE

    profile = load_profiles(HARMONICS_FILE)["fifth_in_phase"]
    source = ScpiAcSource(sim.scpi["source"].resource).open()
    load = ScpiPhantomLoad(sim.scpi["load"].resource).open()
    reference = ScpiReferenceStandard(sim.scpi["reference"].resource).open()
    source.voltage, source.output = 120.0, True
    source.set_harmonics(profile.voltage)
    load.set_harmonics(profile.current)
    load.set_currents([10.0, 5.0, 0.0])
    load.output = True
    v, i = 120.0 * 1.0004, 0.9997
    truth = v * (10.0 + 5.0) * i * (1 + profile.harmonic_power_ratio())  # 0.1 x 0.4 = 4 % more
    assert sim.world.true_power_w() == pytest.approx(truth, rel=1e-12)
    assert reference.power == pytest.approx(truth * (1 + sim.world.reference.error_pct / 100), rel=1e-9)
    assert reference.thd_voltage == pytest.approx(profile.thd_voltage_pct, rel=1e-6)
    assert reference.thd_current == pytest.approx(profile.thd_current_pct, rel=1e-6)
    assert reference.currents == pytest.approx([10 * i * profile.rms_factor("current"),
                                                5 * i * profile.rms_factor("current"), 0.0])
    assert load.current == pytest.approx(10.0)
    by_order = dict(reference.harmonic_powers())
    assert by_order[5] / by_order[1] == pytest.approx(profile.harmonic_power_ratio(), rel=1e-6)
    load.safe_state()
    assert sim.world.load.currents_a == [0.0, 0.0, 0.0] and not sim.world.load.output
    for driver in (source, load, reference):
        driver.close()


def test_harmonic_outside_the_instruments_range_is_rejected(sim, source):
    with pytest.raises(InstrumentError, match=r"rejected 'VOLT:HARM 1,10.0000,0.000': -222"):
        source.set_harmonics([Harmonic(1, 10.0, 0.0)])  # order 1 is the fundamental, not a harmonic
