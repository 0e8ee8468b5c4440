"""Meters on one Modbus RTU line: the driver's exact frames on a pseudo-terminal, and the simulated
board's meters served on one line by unit id, read in order."""
from __future__ import annotations

import os
import select
import threading
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.metrology.quantities import ACTIVE
from bench.plans.limits import load_table
from bench.procedures import gating
from bench.sim import SimulatedBench, board_path
from bench.sim.board import load_board
from bench.station.bench import Bench
from instruments.errors import InstrumentError
from instruments.meter_modbus_rtu import ModbusRtuMeter


def crc16_modbus(frame: bytes) -> bytes:
    """CRC-16/MODBUS (polynomial 0xA001 reflected, initial 0xFFFF), low byte first on the wire."""
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


def test_crc16_modbus_check_value():
    assert crc16_modbus(b"123456789") == (0x4B37).to_bytes(2, "little")  # the catalogued check value


@pytest.fixture
def line() -> Iterator[tuple[int, str]]:
    """A bare pseudo-terminal: the test holds the master end, the driver opens the slave by name."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


def _answer_once(master: int, reply: bytes, heard: list[bytes]) -> threading.Thread:
    """Read one 8-byte read request off the line, then put ``reply`` on it."""
    def serve() -> None:
        request = b""
        while len(request) < 8 and select.select([master], [], [], 5.0)[0]:
            request += os.read(master, 8 - len(request))
        heard.append(request)
        os.write(master, reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_a_read_is_one_rtu_frame_to_the_meters_unit_id_and_its_reply_decoded(line):
    master, port = line
    registers = load_board(board_path("default")).register_map  # energy_wh: uint64 at 0, 0.001 Wh
    # Unit 3, function 3, address 0, 4 registers; the reply: 8 bytes holding 123 456 789 (123 456.789 Wh).
    request = bytes([3, 3, 0, 0, 0, 4])
    payload = bytes([3, 3, 8]) + (123_456_789).to_bytes(8, "big")
    heard: list[bytes] = []
    thread = _answer_once(master, payload + crc16_modbus(payload), heard)
    meter = ModbusRtuMeter(f"{port}@3", registers, timeout_s=2.0, retries=0).open()
    try:
        assert meter.read("energy_wh") == pytest.approx(123_456.789)
    finally:
        meter.close()
    thread.join(timeout=5)
    assert heard == [request + crc16_modbus(request)]


def test_a_reply_with_a_wrong_crc_is_no_reply(line):
    master, port = line
    registers = load_board(board_path("default")).register_map
    payload = bytes([3, 3, 8]) + (1).to_bytes(8, "big")
    corrupt = payload + bytes(b ^ 0xFF for b in crc16_modbus(payload))
    thread = _answer_once(master, corrupt, [])
    meter = ModbusRtuMeter(f"{port}@3", registers, timeout_s=0.5, retries=0).open()
    try:
        with pytest.raises(InstrumentError, match="no valid reply"):
            meter.read("energy_wh")
    finally:
        meter.close()
    thread.join(timeout=5)


@pytest.mark.parametrize("address", ["/dev/ttyUSB0", "/dev/ttyUSB0@0", "/dev/ttyUSB0@248", "@3"])
def test_an_address_without_a_unit_id_on_its_line_is_refused(address):
    registers = load_board(board_path("default")).register_map
    with pytest.raises(InstrumentError, match="PORT@UNIT"):
        ModbusRtuMeter(address, registers)


@pytest.fixture
def rtu_board(make_board) -> Path:
    return make_board(board={"meter_link": "rtu"})


def test_the_simulated_board_on_one_rtu_line_is_read_in_order_by_unit_id(rtu_board):
    with SimulatedBench(rtu_board) as sim:
        profile = sim.profile()
        assert profile.meters_driver == "modbus-rtu" and profile.meters_read_in_order
        assert {pos.address for pos in profile.positions} == {f"{sim.meters.port}@{n}" for n in range(1, 9)}
        with Bench(profile) as bench:  # opening reads every meter's identity over the line
            sim.world.meters[4].link_fault = "EXCEPTION"  # unit 5 answers busy: only position 5 fails
            board = bench.meter_reads.read("serial")
            point = {p.id: p for p in load_table().points(profile.meter_type)}["FL-PF1"]
            bench.apply(point.stimulus(bench))
            bench.wait(10.0, "energy flowing")
            snapshot = gating._snapshot(bench, ACTIVE)
    assert set(board.failed) == {5}
    assert {n: r.value for n, r in board.reads.items()} == {m.position: m.serial for m in sim.world.meters
                                                            if m.position != 5}
    windows = sorted((r.t0, r.t1) for r in board.reads.values())
    assert all(earlier[1] <= later[0] for earlier, later in zip(windows, windows[1:])), windows
    # Stepped time: 10 s at 10.8 kW, 30 Wh on every sound meter's register, and the reference's at each read.
    assert set(snapshot.failed) == {5}
    for n, registered in snapshot.meter_wh.items():
        assert registered == pytest.approx(30.0, rel=0.01) and snapshot.reference_wh[n] == pytest.approx(30.0, rel=0.01)
