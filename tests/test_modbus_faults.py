"""Faults on the meters' Modbus links, as the driver meets them through real frames on loopback,
and the register codec's strictness on arbitrary words."""
from __future__ import annotations

import logging
import math
import socket
import struct
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instruments.errors import InstrumentError, RangeError, ReplyError
from instruments.meter_modbus import ModbusMeter
from instruments.register_map import Register

TIMEOUT_S, RETRIES = 0.3, 2
MARGIN_S = 0.5  # reconnects and scheduling on a shared 2-core machine


@pytest.fixture
def warnings(caplog):
    """The driver's retry log, at WARNING."""
    caplog.set_level(logging.WARNING, logger="bench.instruments")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "bench.instruments"]


def meter_at(sim, position: int, register_map=None, **options) -> ModbusMeter:
    address = sim.profile().positions[position - 1].address
    return ModbusMeter(address, register_map or sim.board.register_map, name=f"position {position}",
                       **{"timeout_s": TIMEOUT_S, "retries": RETRIES, **options}).open()


def requests(sim, position: int) -> int:
    return sim.meters.requests[position - 1]


def energise(sim, volts: float = 120.0, amps: float = 10.0) -> None:
    with sim.world.lock:
        sim.world.source.voltage_v, sim.world.source.output = volts, True
        sim.world.load.currents_a, sim.world.load.output = [amps] * sim.world.load.phases, True


def wait_for(condition, limit_s: float = 2.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "the simulator never got there"
        time.sleep(0.005)


def test_busy_meter_is_retried_then_one_line_naming_it_and_recovers(sim, control, warnings):
    meter = meter_at(sim, 1)
    control.set("SIM:FAUL:MET 1,EXCEPTION")
    before = requests(sim, 1)
    with pytest.raises(InstrumentError) as raised:
        meter.energy_wh()
    assert not isinstance(raised.value, ReplyError)
    assert str(raised.value) == (f"position 1 @ {meter.address}: reading 'energy_wh' at 0: "
                                 "exception 6 (server device busy); gave up after 3 attempts")
    assert requests(sim, 1) - before == RETRIES + 1
    assert warnings() == [f"position 1 @ {meter.address}: reading 'energy_wh' at 0: exception 6 (server device busy); "
                          f"retry {n} of {RETRIES}" for n in (1, 2)]
    control.set("SIM:FAUL:MET 1,NONE")
    sim.world.meters[0].energy_wh = 42.0
    assert meter.energy_wh() == pytest.approx(42.0)
    assert len(warnings()) == RETRIES
    meter.close()


def test_silent_meter_fails_within_its_bound_while_the_others_answer(sim, control, warnings):
    silent, neighbour = meter_at(sim, 1), meter_at(sim, 2)
    control.set("SIM:FAUL:MET 1,TIMEOUT")
    before, outcome = requests(sim, 1), {}

    def read_silent() -> None:
        start = time.monotonic()
        try:
            silent.energy_wh()
        except InstrumentError as error:
            outcome["error"] = str(error)
        outcome["elapsed_s"] = time.monotonic() - start

    worker = threading.Thread(target=read_silent)
    worker.start()
    neighbour_reads: list[float] = []
    while worker.is_alive() and len(neighbour_reads) < 500:
        start = time.monotonic()
        assert neighbour.read("serial") == sim.world.meters[1].serial
        neighbour_reads.append(time.monotonic() - start)
    worker.join(timeout=(RETRIES + 1) * TIMEOUT_S + 5)
    assert (RETRIES + 1) * TIMEOUT_S <= outcome["elapsed_s"] < (RETRIES + 1) * TIMEOUT_S + MARGIN_S
    assert outcome["error"] == (f"position 1 @ {silent.address}: reading 'energy_wh' at 0: "
                                f"no valid reply within {TIMEOUT_S:g} s; gave up after 3 attempts")
    assert requests(sim, 1) - before == RETRIES + 1
    assert len(warnings()) == RETRIES
    assert len(neighbour_reads) > 10 and max(neighbour_reads) < TIMEOUT_S  # never held up by position 1
    silent.close()
    neighbour.close()


def test_swapped_word_order_serves_predictably_wrong_numbers(sim, control):
    meter, truth = meter_at(sim, 1), sim.world.meters[0]
    truth.energy_wh = 12345.678
    control.set("SIM:FAUL:MET 1,SWAP")
    register = sim.board.register_map["energy_wh"]
    swapped = register.decode(register.encode(12345.678)[::-1])
    assert meter.energy_wh() == pytest.approx(swapped) and swapped > 1e9 * 12345.678
    assert meter.read("serial") == truth.serial  # text has no word order to get wrong
    control.set("SIM:FAUL:MET 1,NONE")
    assert meter.energy_wh() == pytest.approx(12345.678)
    meter.close()


def test_a_swap_that_makes_a_nan_is_a_reply_error_not_a_number(sim, control):
    meter = meter_at(sim, 1)
    with sim.world.lock:  # float32 0x42707FC1 (about 60.12 Hz) read word-swapped is 0x7FC14270: a NaN
        sim.world.source.frequency_hz = struct.unpack(">f", bytes.fromhex("42707FC1"))[0]
    control.set("SIM:FAUL:MET 1,SWAP")
    with pytest.raises(ReplyError, match=r"^position 1 @ .*: garbled 'frequency_hz' at 12: not a finite number: nan$"):
        meter.read("frequency_hz")
    meter.close()


def test_reboot_drops_connections_and_the_register_falls_back_to_its_last_save(sim, control, warnings):
    meter, truth = meter_at(sim, 1), sim.world.meters[0]
    bystander = socket.create_connection(("127.0.0.1", sim.meters.ports[0]), timeout=2)
    energise(sim)
    control.advance(90.0)  # the meter saved its register at 60 s
    before, pulses = meter.energy_wh(), truth.pulses
    assert truth.saved_register_wh == pytest.approx(before * 60 / 90, abs=0.001)  # 1 mWh register resolution
    control.set("SIM:FAUL:MET 1,REBOOT")
    assert bystander.recv(1) == b""  # every open connection was dropped
    bystander.close()
    sent = requests(sim, 1)
    after = meter.energy_wh()
    assert after == pytest.approx(truth.saved_register_wh, abs=0.0005)
    assert before - after == pytest.approx(before / 3, abs=0.001)  # the last 30 s of registration are gone
    assert requests(sim, 1) - sent == 1  # the stale link was seen before sending: one request, on a fresh one
    assert warnings() == [f"position 1 @ {meter.address}: reading 'energy_wh' at 0: the meter closed the connection; "
                          "reconnecting"]
    assert truth.pulses == pulses and control.query("SIM:FAUL:MET? 1") == "NONE"
    accumulated = truth.energy_wh
    control.advance(30.0)
    gained = truth.energy_wh - accumulated
    assert meter.energy_wh() == pytest.approx(after + gained, abs=0.001)  # the register counts on from the save
    assert truth.pulses == math.floor(truth.energy_wh / truth.kh_wh)  # the pulse output never lost anything
    meter.close()


def test_a_connection_dropped_under_a_read_is_one_logged_retry(sim, control, warnings):
    meter = meter_at(sim, 1, timeout_s=2.0)
    sim.world.meters[0].energy_wh = 7.0
    control.set("SIM:FAUL:MET 1,TIMEOUT")
    sent, outcome = requests(sim, 1), {}

    def read() -> None:
        start = time.monotonic()
        outcome["value"] = meter.energy_wh()
        outcome["elapsed_s"] = time.monotonic() - start

    worker = threading.Thread(target=read)
    worker.start()
    wait_for(lambda: requests(sim, 1) > sent)  # the request is at the meter, unanswered
    control.set("SIM:FAUL:MET 1,NONE")
    control.set("SIM:FAUL:MET 1,REBOOT")
    worker.join(timeout=10)
    assert outcome["value"] == pytest.approx(0.0)  # rebooted before any save: the register restarts from 0
    assert outcome["elapsed_s"] < 2.0  # the drop, not the timeout, ended the first attempt
    assert warnings() == [f"position 1 @ {meter.address}: reading 'energy_wh' at 0: the meter dropped the connection; "
                          f"retry 1 of {RETRIES}"]
    meter.close()


def test_a_write_is_not_sent_again_once_it_may_have_reached_the_meter(sim, control, warnings):
    meter = meter_at(sim, 1)
    control.set("SIM:FAUL:MET 1,TIMEOUT")
    sent = requests(sim, 1)
    with pytest.raises(InstrumentError, match=r"^position 1 @ .*: writing 'tamper_clear' at 100: no valid reply within "
                                              r"0\.3 s; not retried: the meter may have carried it out$"):
        meter.write("tamper_clear", 1)
    assert requests(sim, 1) - sent == 1 and warnings() == []
    meter.close()


def test_a_write_is_retried_when_the_meter_certainly_did_not_act(sim, control, warnings):
    meter, truth = meter_at(sim, 1), sim.world.meters[0]
    control.set("SIM:FAUL:MET 1,EXCEPTION")  # busy: by the Modbus spec, not processed
    sent = requests(sim, 1)
    with pytest.raises(InstrumentError, match=r"exception 6 \(server device busy\); gave up after 3 attempts$"):
        meter.write("tamper_clear", 1)
    assert requests(sim, 1) - sent == RETRIES + 1 and len(warnings()) == RETRIES
    control.set("SIM:FAUL:MET 1,NONE")
    truth.functional.tamper = True
    control.set("SIM:FAUL:MET 1,REBOOT")  # the link is closed before the command goes out: a fresh one carries it
    meter.write("tamper_clear", 1)
    assert truth.functional.tamper is False
    meter.close()


def test_a_refused_connection_is_retried_for_a_write_then_one_line(warnings):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    registers = {"tamper_clear": Register("tamper_clear", 100, "uint16", writable=True)}
    meter = ModbusMeter(f"127.0.0.1:{port}", registers, name="position 4", timeout_s=TIMEOUT_S)
    with pytest.raises(InstrumentError, match=rf"^position 4 @ 127\.0\.0\.1:{port}: writing 'tamper_clear' at 100: "
                                              r"no Modbus TCP connection \(refused or unreachable\); "
                                              r"gave up after 3 attempts$"):
        meter.write("tamper_clear", 1)
    assert len(warnings()) == RETRIES and all("(refused or unreachable); retry" in line for line in warnings())


def test_other_exception_codes_are_a_reply_error_at_once(sim, warnings):
    wrong_map = {**sim.board.register_map, "beyond": Register("beyond", 500, "uint16")}
    meter = meter_at(sim, 1, wrong_map)
    sent = requests(sim, 1)
    with pytest.raises(ReplyError, match=r"reading 'beyond' at 500: exception 2 \(illegal data address\)$"):
        meter.read("beyond")
    assert requests(sim, 1) - sent == 1 and warnings() == []
    meter.close()


def test_a_value_the_register_cannot_hold_is_refused_before_sending(sim):
    meter = meter_at(sim, 1)
    sent = requests(sim, 1)
    with pytest.raises(RangeError, match=r"'ping_count' cannot hold 70000: .*out of range for uint16"):
        meter.write("ping_count", 70000)
    assert requests(sim, 1) == sent
    meter.close()


@pytest.mark.parametrize("command, code", [("SIM:FAUL:MET 9,NONE", -222), ("SIM:FAUL:MET 0,NONE", -222),
                                           ("SIM:FAUL:MET 1,FLAKY", -224), ("SIM:FAUL:MET 1", -224)])
def test_control_channel_refuses_a_bad_position_or_kind(sim, control, command, code):
    with pytest.raises(InstrumentError, match=rf"rejected '{command}': {code} "):
        control.set(command)
    assert control.query("SIM:FAUL:MET? 1") == "NONE"


# --- the codec on arbitrary words ------------------------------------------------------------------

REGISTERS = [Register("u16", 0, "uint16"), Register("i16", 0, "int16", 0.1), Register("u32", 0, "uint32", 0.01),
             Register("i32", 0, "int32"), Register("u64", 0, "uint64", 0.001), Register("i64", 0, "int64"),
             Register("f32", 0, "float32"), Register("f32s", 0, "float32", 0.001), Register("f64", 0, "float64"),
             Register("f64x", 0, "float64", 10.0), Register("s", 0, "string", words=4)]
INTEGER_BITS = {"uint16": (False, 16), "int16": (True, 16), "uint32": (False, 32), "int32": (True, 32),
                "uint64": (False, 64), "int64": (True, 64)}
PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


def words_for(register: Register) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, 0xFFFF), min_size=register.count, max_size=register.count)


def values_for(register: Register) -> st.SearchStrategy:
    """Finite values the register can hold."""
    if register.type == "string":
        return st.text(PRINTABLE, max_size=2 * register.words).map(str.rstrip)
    if register.type in INTEGER_BITS:
        signed, bits = INTEGER_BITS[register.type]
        low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
        exact = 2 ** 53  # beyond it the float value itself cannot name one raw step
        return st.integers(max(low, -exact), min(high, exact)).map(lambda raw: raw * register.scale)
    width = 32 if register.type == "float32" else 64
    limit = (3.4e38 if width == 32 else 1.7e308) * min(register.scale, 1.0)
    return st.floats(-limit, limit, allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize("register", REGISTERS, ids=lambda r: r.name)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_words_decode_to_a_value_or_a_value_error(register, data):
    words = data.draw(words_for(register))
    try:
        value = register.decode(words)
    except ValueError:
        return
    if register.type == "string":
        assert all(" " <= char <= "~" for char in value)
    else:
        assert math.isfinite(value)


@pytest.mark.parametrize("register", REGISTERS, ids=lambda r: r.name)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_finite_values_round_trip_within_the_resolution(register, data):
    value = data.draw(values_for(register))
    decoded = register.decode(register.encode(value))
    if register.type == "string":
        assert decoded == value
    else:
        assert abs(decoded - value) <= register.resolution(value) / 2 + 8 * math.ulp(value)


@pytest.mark.parametrize("register", [r for r in REGISTERS if r.type != "string"], ids=lambda r: r.name)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_never_encoded(register, value):
    with pytest.raises(ValueError, match="not a finite number"):
        register.encode(value)


def test_text_must_be_printable_ascii_with_only_nul_padding():
    register = Register("s", 0, "string", words=3)
    assert register.decode([0x4142, 0x4300, 0x0000]) == "ABC"
    for words in ([0x4100, 0x4200, 0x0000], [0x410A, 0x0000, 0x0000], [0x41C3, 0xA900, 0x0000]):
        with pytest.raises(ValueError, match="not ASCII text"):
            register.decode(words)
    with pytest.raises(ValueError, match="not printable ASCII"):
        register.encode("A\nB")


# -- every meter's read in flight at once, on one thread (ModbusMeter.read_at_once) ---------------

def board(sim, positions=range(1, 9)) -> dict[int, ModbusMeter]:
    return {n: meter_at(sim, n) for n in positions}


def test_reads_at_once_are_the_values_each_read_gives(sim, control):
    energise(sim)
    control.advance(100.0)
    meters = board(sim)
    answers = ModbusMeter.read_at_once(meters, "energy_wh", time.monotonic)
    one_by_one = {n: meter.read("energy_wh") for n, meter in meters.items()}  # the stepped clock stood still
    assert {n: a[0] for n, a in answers.items()} == one_by_one
    assert len(set(one_by_one.values())) > 1  # the positions' meters register differently
    assert max(sent for _, sent, _ in answers.values()) < min(answered for _, _, answered in answers.values())
    for meter in meters.values():
        meter.close()


@pytest.mark.parametrize("fault", ["EXCEPTION", "TIMEOUT"])
def test_a_read_at_once_leaves_a_faulty_position_to_the_usual_read(sim, control, fault):
    meters = board(sim)
    control.set(f"SIM:FAUL:MET 3,{fault}")
    start = time.monotonic()
    answers = ModbusMeter.read_at_once(meters, "serial", time.monotonic)
    elapsed = time.monotonic() - start
    assert answers[3] is None
    assert {n: a[0] for n, a in answers.items() if a} == {m.position: m.serial for m in sim.world.meters if
                                                           m.position != 3}
    if fault == "TIMEOUT":  # waited its timeout once, and closed the link a late reply could still come on
        assert TIMEOUT_S <= elapsed < TIMEOUT_S + MARGIN_S and not meters[3].is_open
    else:  # the meter answered (busy): the link is in step and stays open
        assert elapsed < TIMEOUT_S and meters[3].is_open
    for meter in meters.values():
        meter.close()


def test_a_read_at_once_skips_a_stale_link_for_the_usual_read(sim, control, warnings):
    meters = board(sim)
    control.set("SIM:FAUL:MET 2,REBOOT")
    wait_for(lambda: select_readable(meters[2]))  # the meter's drop has reached the client's socket
    sent = requests(sim, 2)
    answers = ModbusMeter.read_at_once(meters, "serial", time.monotonic)
    assert answers[2] is None and requests(sim, 2) == sent  # nothing sent on the dead link
    assert all(answers[n] is not None for n in meters if n != 2) and not warnings()
    for meter in meters.values():
        meter.close()


def select_readable(meter: ModbusMeter) -> bool:
    import select
    link = meter._client.socket
    return link is not None and bool(select.select([link], [], [], 0)[0])


class _SplitReplyServer:
    """A loopback Modbus TCP server that answers a read of 4 registers in two pieces, 50 ms apart,
    after a reply to a transaction the client never sent: what a slow gateway may do."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            request = conn.recv(12)
            tid, _, _, unit = struct.unpack(">HHHB", request[:7])
            reply = struct.pack(">HHHBBB4H", tid, 0, 11, unit, 3, 8, 0, 0, 0, 1234)
            stray = struct.pack(">HHHBBB4H", (tid + 7) & 0xFFFF, 0, 11, unit, 3, 8, 0, 0, 0, 9999)
            conn.sendall(stray + reply[:5])
            time.sleep(0.05)
            conn.sendall(reply[5:])
            conn.recv(1)  # until the client closes


def test_a_reply_in_pieces_after_a_stray_one_is_read_whole_and_matched_by_transaction():
    server = _SplitReplyServer()
    meter = ModbusMeter(server.address, {"energy_wh": Register("energy_wh", 0, "uint64", 0.001)},
                        timeout_s=2.0).open()
    try:
        [(value, sent, answered)] = ModbusMeter.read_at_once({1: meter}, "energy_wh", time.monotonic).values()
    finally:
        meter.close()
    assert value == pytest.approx(1.234) and answered - sent >= 0.05


def test_a_register_the_map_lacks_is_left_to_the_usual_read_which_names_it(sim):
    meters = board(sim, positions=(1, 2))
    assert ModbusMeter.read_at_once(meters, "no_such_register", time.monotonic) == {1: None, 2: None}
    with pytest.raises(InstrumentError, match="register map has no 'no_such_register'"):
        meters[1].read("no_such_register")
    for meter in meters.values():
        meter.close()
