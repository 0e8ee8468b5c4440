"""The simulated meters' Modbus TCP (bench/sim/modbus_meters.py) frame by frame on a bare socket:
request bytes in, reply bytes out: their registers, faults and refusals."""
from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import pytest

from bench.sim import board_path
from bench.sim.board import load_board
from bench.sim.modbus_meters import ModbusMeters
from bench.sim.world import World
from instruments.register_map import span

REPLY_S = 2.0  # a reply that is coming comes within this on loopback, even on a loaded machine
SILENCE_S = 0.3  # how long a request that gets no answer is watched


def mbap(transaction: int, pdu: bytes, unit: int = 1, protocol: int = 0, length: int | None = None) -> bytes:
    """The MBAP header (transaction id, protocol id, length of unit id and PDU, unit id), then the PDU."""
    return struct.pack(">HHHB", transaction, protocol, len(pdu) + 1 if length is None else length, unit) + pdu


def read_request(transaction: int, address: int, count: int, unit: int = 1) -> bytes:
    return mbap(transaction, struct.pack(">BHH", 3, address, count), unit)


def read_frame(sock: socket.socket) -> bytes:
    """One whole reply frame, by its MBAP length."""
    sock.settimeout(REPLY_S)
    header = sock.recv(7, socket.MSG_WAITALL)
    assert len(header) == 7, f"no reply (got {header!r})"
    (length,) = struct.unpack(">H", header[4:6])
    return header + sock.recv(length - 1, socket.MSG_WAITALL)


def assert_silent(sock: socket.socket) -> None:
    sock.settimeout(SILENCE_S)
    with pytest.raises(TimeoutError):
        sock.recv(1)


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=REPLY_S)


# --- the simulated meters --------------------------------------------------------------------------

@pytest.fixture
def meters() -> Iterator[ModbusMeters]:
    """The default board's meters, served alone (no other instrument)."""
    board = load_board(board_path("default"))
    served = ModbusMeters(board.world, board.register_map).start()
    yield served
    served.stop()


def words_reply(transaction: int, words: list[int]) -> bytes:
    return mbap(transaction, struct.pack(f">BB{len(words)}H", 3, 2 * len(words), *words))


def energise(world: World, seconds: float = 600.0) -> None:
    with world.lock:
        world.source.voltage_v, world.source.output = 120.0, True
        world.load.currents_a, world.load.output = [10.0] * world.load.phases, True
        world.load.lags_deg = [60.0] * world.load.phases
    world.advance(seconds)


def test_a_meter_answers_its_registers_from_the_model_and_records_when_it_sampled(meters):
    world, meter, regs = meters.world, meters.world.meters[2], meters.register_map
    energise(world)
    serial, energy = regs["serial"], regs["energy_wh"]
    with connect(meters.ports[2]) as sock:
        sock.sendall(read_request(0x0102, serial.address, serial.count))
        assert read_frame(sock) == words_reply(0x0102, serial.encode(meter.serial))
        sock.sendall(read_request(0x0103, energy.address, energy.count))
        reply = read_frame(sock)
    assert reply == words_reply(0x0103, energy.encode(meter.register_wh)) and meter.register_wh > 0
    assert meters.sampled[2] == (world.time_s, world.reference.accumulator_wh)
    assert meters.requests == [0, 0, 2, 0, 0, 0, 0, 0] and meters.sampled[0] is None


def test_a_read_works_out_only_the_quantities_of_the_registers_it_touches(meters, monkeypatch):
    """The conditions (phasors, the meter's registered power) are worked out only for a read of a
    register that reports them, and once a read however many such registers it spans."""
    world, meter, regs = meters.world, meters.world.meters[0], meters.register_map
    energise(world)
    worked_out = []
    conditions = world.conditions

    def counted():
        worked_out.append(1)
        return conditions()

    monkeypatch.setattr(world, "conditions", counted)
    first, last = regs["voltage_v"], regs["frequency_hz"]  # voltage, current, power, PF, frequency
    with connect(meters.ports[0]) as sock:
        sock.sendall(read_request(1, regs["serial"].address, regs["serial"].count))
        read_frame(sock)
        assert worked_out == []
        sock.sendall(read_request(2, first.address, last.address + last.count - first.address))
        reply = read_frame(sock)
    assert worked_out == [1]
    c, f = conditions(), meter.functional
    expected = [*regs["voltage_v"].encode(c.voltage_v * f.voltage_reading_gain),
                *regs["current_a"].encode(c.current_a), *regs["power_w"].encode(meter.registered_power_w(c)),
                *regs["power_factor"].encode(c.power_factor * (-1 if f.ct_reversed else 1)),
                *regs["frequency_hz"].encode(c.frequency_hz)]
    assert reply == words_reply(2, expected)
    assert 0.49 < c.power_factor < 0.51 and meter.registered_power_w(c) > 0


def test_one_read_of_the_whole_block_is_the_registers_read_one_by_one(meters):
    """Reads in one piece, register by register, and across register boundaries and gaps agree
    word for word; an address no register holds reads 0."""
    energise(meters.world)
    regs, size = meters.register_map, span(meters.register_map)
    held = {a for r in regs.values() for a in range(r.address, r.address + r.count)}
    with connect(meters.ports[1]) as sock:
        block: list[int] = []
        for start in range(0, size, 125):
            sock.sendall(read_request(start, start, min(125, size - start)))
            block += list(struct.unpack(f">{min(125, size - start)}H", read_frame(sock)[9:]))
        for register in regs.values():
            sock.sendall(read_request(9, register.address, register.count))
            assert read_frame(sock) == words_reply(9, block[register.address:register.address + register.count])
        for start in range(0, size - 3, 5):
            sock.sendall(read_request(10, start, 3))
            assert read_frame(sock) == words_reply(10, block[start:start + 3])
    assert [block[a] for a in range(size) if a not in held] == [0] * (size - len(held))
    assert regs["energy_wh"].decode(block[0:4]) == pytest.approx(meters.world.meters[1].register_wh, abs=1e-3)


def test_a_timeout_meter_is_silent_without_holding_up_the_next_position(meters):
    meters.world.meters[0].link_fault = "TIMEOUT"
    serial = meters.register_map["serial"]
    with connect(meters.ports[0]) as silent, connect(meters.ports[1]) as neighbour:
        silent.sendall(read_request(1, serial.address, serial.count))
        start = time.monotonic()
        neighbour.sendall(read_request(2, serial.address, serial.count))
        assert read_frame(neighbour) == words_reply(2, serial.encode(meters.world.meters[1].serial))
        assert time.monotonic() - start < SILENCE_S
        assert_silent(silent)
    assert meters.requests[:2] == [1, 1] and meters.sampled[0] is None


def test_meters_with_a_latency_are_served_at_the_same_time(meters):
    meters.latency_s = 0.2
    serial = meters.register_map["serial"]
    socks = [connect(port) for port in meters.ports]
    try:
        start = time.monotonic()
        for n, sock in enumerate(socks):
            sock.sendall(read_request(n, serial.address, serial.count))
        for n, sock in enumerate(socks):
            assert read_frame(sock) == words_reply(n, serial.encode(meters.world.meters[n].serial))
        elapsed = time.monotonic() - start
    finally:
        for sock in socks:
            sock.close()
    assert 0.2 <= elapsed < 0.2 * len(socks) / 2  # eight meters in about one latency, not eight


def test_a_busy_meter_answers_exception_6_and_carries_nothing_out(meters):
    meter, regs = meters.world.meters[0], meters.register_map
    meter.link_fault, meter.functional.tamper = "EXCEPTION", True
    clear = regs["tamper_clear"]
    with connect(meters.ports[0]) as sock:
        sock.sendall(mbap(1, struct.pack(">BHHBH", 16, clear.address, 1, 2, 1)))
        assert read_frame(sock) == mbap(1, bytes.fromhex("90 06"))
        sock.sendall(read_request(2, 0, 4))
        assert read_frame(sock) == mbap(2, bytes.fromhex("83 06"))
        sock.sendall(read_request(3, 5000, 1))  # the address is checked first
        assert read_frame(sock) == mbap(3, bytes.fromhex("83 02"))
    assert meter.functional.tamper is True and meters.sampled[0] is None and meters.requests[0] == 3


def test_a_swapped_link_reverses_the_words_of_numbers_only(meters):
    meter, regs = meters.world.meters[0], meters.register_map
    meter.energy_wh, meter.link_fault = 12345.678, "SWAP"
    energy, serial = regs["energy_wh"], regs["serial"]
    with connect(meters.ports[0]) as sock:
        sock.sendall(read_request(1, energy.address, energy.count))
        assert read_frame(sock) == words_reply(1, energy.encode(12345.678)[::-1])
        sock.sendall(read_request(2, energy.address + 1, 2))  # the middle of a swapped number
        assert read_frame(sock) == words_reply(2, energy.encode(12345.678)[::-1][1:3])
        sock.sendall(read_request(3, serial.address, serial.count))
        assert read_frame(sock) == words_reply(3, serial.encode(meter.serial))


def test_writes_are_carried_out_whole_or_refused_whole(meters):
    meter, regs = meters.world.meters[0], meters.register_map
    key, ping, received = regs["key"], regs["ping_count"], regs["ping_received"]
    assert received.address == ping.address + 2 and not received.writable
    refusals = {  # the request's PDU, the exception it gets
        "half the key": (struct.pack(">BHHB", 16, key.address, 2, 4) + b"ABCD", "90 02"),
        "a read-only register with it": (struct.pack(">BHHBHHH", 16, ping.address, 3, 6, 5, 0, 5), "90 02"),
        "a read-only register alone": (struct.pack(">BHH", 6, received.address, 5), "86 02"),
        "text that is not printable": (struct.pack(">BHHB", 16, key.address, 16, 32) + b"\x01" * 32, "90 03"),
        "past the last register": (struct.pack(">BHH", 6, 5000, 1), "86 02"),
    }
    status = meter.functional.key_status
    with connect(meters.ports[0]) as sock:
        for transaction, (pdu, reply) in enumerate(refusals.values()):
            sock.sendall(mbap(transaction, pdu))
            assert read_frame(sock) == mbap(transaction, bytes.fromhex(reply))
        assert meter.functional.ping_received == 0 and meter.functional.key_status == status
        sock.sendall(mbap(6, struct.pack(">BHH", 6, ping.address, 40)))
        assert read_frame(sock) == mbap(6, struct.pack(">BHH", 6, ping.address, 40))
        sock.sendall(mbap(7, struct.pack(">BHHB", 16, key.address, 16, 32) + b"K" * 32))
        assert read_frame(sock) == mbap(7, struct.pack(">BHH", 16, key.address, 16))
    f = meter.functional
    assert f.ping_received == 40 - round(40 * f.ping_loss) and f.key_fingerprint != ""
    assert meters.requests[0] == len(refusals) + 2


def test_a_value_its_register_cannot_hold_is_a_device_failure(meters):
    meter, received = meters.world.meters[0], meters.register_map["ping_received"]
    meter.functional.ping_received = 70000  # above a uint16
    with connect(meters.ports[0]) as sock:
        sock.sendall(read_request(1, received.address, 1))
        assert read_frame(sock) == mbap(1, bytes.fromhex("83 04"))
        sock.sendall(read_request(2, received.address - 2, 2))  # its neighbours still read
        assert read_frame(sock) == words_reply(2, [0, 0])


def test_a_reboot_drops_the_meters_connections_and_it_serves_fresh_ones(meters):
    meter, serial = meters.world.meters[3], meters.register_map["serial"]
    with connect(meters.ports[3]) as first, connect(meters.ports[3]) as second, connect(meters.ports[4]) as other:
        for sock in (first, second):  # served: the server has taken the connection in
            sock.sendall(read_request(0, serial.address, serial.count))
            read_frame(sock)
        meter.reboot()
        assert first.recv(1) == b"" and second.recv(1) == b""
        other.sendall(read_request(1, serial.address, serial.count))
        assert read_frame(other) == words_reply(1, serial.encode(meters.world.meters[4].serial))
    with connect(meters.ports[3]) as fresh:
        fresh.sendall(read_request(2, serial.address, serial.count))
        assert read_frame(fresh) == words_reply(2, serial.encode(meter.serial))


def test_stopping_closes_every_connection():
    board = load_board(board_path("default"))
    served = ModbusMeters(board.world, board.register_map).start()
    with connect(served.ports[0]) as sock:
        sock.sendall(read_request(0, 0, 1))
        read_frame(sock)
        served.stop()
        assert sock.recv(1) == b""
    assert board.world.meters[0].restart_hooks == []
