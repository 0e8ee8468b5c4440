"""The simulator's Modbus TCP server (bench/servers/modbus_tcp.py) frame by frame on a bare socket:
request bytes in, reply bytes out, from the specification's own examples where it gives them
("Modbus Application Protocol Specification V1.1b3", functions 03, 06 and 16), then the simulated
meters it serves (bench/sim/modbus_meters.py): their registers, faults and refusals."""
from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.servers import modbus_tcp
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


# --- the server, on a plain block of registers -----------------------------------------------------

class Table:
    """A unit of ``size`` plain holding registers: what a read finds is what was written."""

    def __init__(self, size: int, unit_id: int = 1) -> None:
        self.unit_id, self.size, self.latency_s = unit_id, size, 0.0
        self.registers = [0] * size
        self.heard_count, self.silent = 0, False

    def heard(self) -> bool:
        self.heard_count += 1
        return not self.silent

    def answer(self, function: int, address: int, count: int, words: list[int] | None) -> modbus_tcp.Answer:
        if words is None:
            return self.registers[address:address + count]
        self.registers[address:address + len(words)] = words
        return None


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    running = asyncio.new_event_loop()
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    yield running
    running.call_soon_threadsafe(running.stop)
    thread.join(timeout=5)
    running.close()


@pytest.fixture
def table(loop) -> Iterator[tuple[Table, int]]:
    """A 120-register table served on a free port: (the table, the port)."""
    unit = Table(120)
    listener = asyncio.run_coroutine_threadsafe(modbus_tcp.listen(unit), loop).result(timeout=5)
    yield unit, listener.port
    asyncio.run_coroutine_threadsafe(listener.close(), loop).result(timeout=5)


def test_the_specifications_read_of_registers_108_to_110(table):
    unit, port = table
    unit.registers[107:110] = [0x022B, 0x0000, 0x0064]  # registers 108-110 are addresses 107-109
    with connect(port) as sock:
        sock.sendall(bytes.fromhex("0001 0000 0006 01" "03 006B 0003"))
        assert read_frame(sock) == bytes.fromhex("0001 0000 0009 01" "03 06 022B 0000 0064")
    assert unit.heard_count == 1


def test_the_specifications_write_single_register_is_echoed(table):
    unit, port = table
    with connect(port) as sock:
        sock.sendall(bytes.fromhex("1234 0000 0006 01" "06 0001 0003"))  # register 2 (address 1) := 3
        assert read_frame(sock) == bytes.fromhex("1234 0000 0006 01" "06 0001 0003")
    assert unit.registers[:3] == [0, 3, 0]


def test_the_specifications_write_multiple_registers(table):
    unit, port = table
    with connect(port) as sock:
        sock.sendall(bytes.fromhex("00FE 0000 000B 01" "10 0001 0002 04 000A 0102"))
        assert read_frame(sock) == bytes.fromhex("00FE 0000 0006 01" "10 0001 0002")
    assert unit.registers[:4] == [0, 0x000A, 0x0102, 0]


@pytest.mark.parametrize("pdu, reply", [
    ("01 0000 0001", "81 01"),  # read coils: not a function of this server
    ("04 0000 0001", "84 01"),  # read input registers: the meters keep holding registers only
    ("2B 0E 01 00", "AB 01"),  # read device identification
    ("55 0000 0001", "D5 01"),  # no such function at all
    ("03 0000 0000", "83 03"),  # quantity 0
    ("03 0000 007E", "83 03"),  # quantity 126: more than a reply can carry
    ("03 0000", "83 03"),  # no quantity
    ("10 0000 0002 03 0001 0002", "90 03"),  # byte count not twice the quantity
    ("10 0000 0002 04 0001", "90 03"),  # fewer bytes than the byte count says
    ("10 0000 0000 00", "90 03"),  # quantity 0
    ("06 0001", "86 03"),  # no value
    ("03 0076 0003", "83 02"),  # 118-120: one past the block's last register (119)
    ("03 FFFF 0001", "83 02"),
    ("06 0078 0001", "86 02"),
    ("10 0077 0002 04 0001 0002", "90 02"),
])
def test_exceptions_in_the_order_the_specification_checks(table, pdu, reply):
    unit, port = table
    with connect(port) as sock:
        sock.sendall(mbap(0x0A0B, bytes.fromhex(pdu)))
        assert read_frame(sock) == mbap(0x0A0B, bytes.fromhex(reply))
    assert unit.heard_count == 1 and unit.registers == [0] * 120  # counted, and nothing written


def test_a_request_for_another_unit_is_answered_exception_4_with_its_unit_id(table):
    unit, port = table
    with connect(port) as sock:
        for other in (0, 2, 255):
            sock.sendall(read_request(other, 0, 1, unit=other))
            assert read_frame(sock) == mbap(other, bytes.fromhex("83 04"), unit=other)
    assert unit.heard_count == 3


@pytest.mark.parametrize("transaction", [0, 1, 0x7FFF, 0xFFFF])
def test_the_transaction_id_is_echoed(table, transaction):
    unit, port = table
    unit.registers[5] = 0xBEEF
    with connect(port) as sock:
        sock.sendall(read_request(transaction, 5, 1))
        assert read_frame(sock) == mbap(transaction, bytes.fromhex("03 02 BEEF"))


def test_a_frame_split_across_reads_is_answered_once_whole(table):
    unit, port = table
    unit.registers[0:2] = [0x0102, 0x0304]
    request = read_request(7, 0, 2)
    with connect(port) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in request:
            sock.sendall(bytes([byte]))
            time.sleep(0.002)  # each byte its own segment
        assert read_frame(sock) == mbap(7, bytes.fromhex("03 04 0102 0304"))
        assert_silent(sock)
    assert unit.heard_count == 1


def test_frames_arriving_together_are_all_answered_in_order(table):
    unit, port = table
    unit.registers[0:3] = [10, 20, 30]
    with connect(port) as sock:
        sock.sendall(read_request(1, 0, 1) + read_request(2, 1, 1) + read_request(3, 2, 1)[:9])
        assert read_frame(sock) == mbap(1, bytes.fromhex("03 02 000A"))
        assert read_frame(sock) == mbap(2, bytes.fromhex("03 02 0014"))
        assert_silent(sock)  # the third is not whole yet
        sock.sendall(read_request(3, 2, 1)[9:])
        assert read_frame(sock) == mbap(3, bytes.fromhex("03 02 001E"))


def test_a_frame_with_another_protocol_id_is_discarded_and_the_next_answered(table):
    unit, port = table
    with connect(port) as sock:
        sock.sendall(mbap(1, bytes.fromhex("03 0000 0001"), protocol=1))
        assert_silent(sock)
        sock.sendall(read_request(2, 0, 1))
        assert read_frame(sock) == mbap(2, bytes.fromhex("03 02 0000"))
    assert unit.heard_count == 1  # not Modbus, not a request


@pytest.mark.parametrize("length", [0, 1, 255, 0xFFFF])
def test_a_length_the_header_cannot_have_closes_that_connection_only(table, length):
    """Below 2 (no function code) or above 254 (more than a PDU holds) there is nothing left to
    frame the stream by."""
    unit, port = table
    with connect(port) as sock, connect(port) as other:
        sock.sendall(mbap(1, bytes.fromhex("03 0000 0001"), length=length))
        assert sock.recv(1) == b""
        other.sendall(read_request(3, 0, 1))
        assert read_frame(other) == mbap(3, bytes.fromhex("03 02 0000"))
    assert unit.heard_count == 1


def test_a_silent_unit_counts_the_request_and_answers_nothing(table):
    unit, port = table
    unit.silent = True
    with connect(port) as sock:
        sock.sendall(read_request(1, 0, 1) + mbap(2, bytes.fromhex("55")))
        assert_silent(sock)
    assert unit.heard_count == 2


class Recorder(asyncio.Transport):
    """A transport that keeps what is written to it, one entry a write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def test_each_reply_is_one_write():
    unit, transport = Table(16), Recorder()
    unit.registers[:3] = [1, 2, 3]
    connection = modbus_tcp.Connection(unit, set())
    connection.connection_made(transport)
    connection.data_received(read_request(1, 0, 3) + mbap(2, bytes.fromhex("06 0004 0005"))
                             + mbap(3, bytes.fromhex("10 0005 0001 02 0006")) + read_request(4, 20, 1))
    assert transport.writes == [mbap(1, bytes.fromhex("03 06 0001 0002 0003")), mbap(2, bytes.fromhex("06 0004 0005")),
                                mbap(3, bytes.fromhex("10 0005 0001")), mbap(4, bytes.fromhex("83 02"))]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600), cuts=st.lists(st.integers(0, 600), max_size=8))
def test_any_bytes_get_well_formed_replies_or_none(data, cuts):
    """Whatever arrives, in whatever pieces: no exception escapes, and every write is one whole
    reply frame (protocol id 0, its length right, a function 3, 6, 16 reply or an exception)."""
    unit, transport = Table(64), Recorder()
    connection = modbus_tcp.Connection(unit, set())
    connection.connection_made(transport)
    edges = sorted({0, len(data), *(cut for cut in cuts if cut < len(data))})
    for start, end in zip(edges, edges[1:]):
        if not transport.closed:
            connection.data_received(data[start:end])
    for frame in transport.writes:
        _, protocol, length, _ = struct.unpack(">HHHB", frame[:7])
        assert protocol == 0 and length == len(frame) - 6
        function = frame[7]
        if function & 0x80:
            assert len(frame) == 9 and frame[8] in (1, 2, 3, 4)
        else:
            assert function in (3, 6, 16)


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


def test_requests_arriving_together_at_a_meter_with_a_latency_are_answered_in_order(meters):
    meters.latency_s = 0.05
    regs, f = meters.register_map, meters.world.meters[0].functional
    f.tamper, f.service_running = True, False
    with connect(meters.ports[0]) as sock:
        sock.sendall(read_request(1, regs["tamper"].address, 1) + mbap(2, bytes.fromhex("55"))
                     + read_request(3, regs["service_state"].address, 1))
        assert read_frame(sock) == words_reply(1, [1])
        assert read_frame(sock) == mbap(2, bytes.fromhex("D5 01"))  # refused at once, in its turn
        assert read_frame(sock) == words_reply(3, [0])


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
