"""Faults of the simulated SCPI instruments and their links, injected on the control channel and
observed by real clients (pyvisa, bare sockets, pyserial on the counter's pty); each recovers on NONE."""
from __future__ import annotations

import socket
import time
from contextlib import closing

import pytest
import serial

from bench.servers.scpi import MAX_LINE_BYTES, NOISE
from bench.sim import board_path
from bench.sim.board import load_board
from bench.sim.instruments import SimControl
from instruments.errors import InstrumentError, ReplyError
from instruments.reference_standard import ScpiReferenceStandard
from instruments.transport import TransportError, VisaLine
from tests.helpers import query, read_line

NO_ERROR = '0,"No error"'


def link(sim, name: str, timeout_s: float = 2.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", sim.scpi[name].port), timeout=timeout_s)


def closed_by_peer(sock: socket.socket, within_s: float = 1.0) -> bool:
    sock.settimeout(within_s)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.fixture
def counter_port(sim):
    with serial.Serial(sim.counter_line.port, 115200, timeout=1) as port:
        yield port


def energise(sim, control, watts_per_element: float = 300.0) -> float:
    """120 V, the current for ``watts_per_element`` on every element, both outputs on: the true power."""
    with closing(link(sim, "source")) as source, closing(link(sim, "load")) as load:
        assert query(source, "VOLT 120;:OUTP ON;*OPC?") == "1"
        assert query(load, f"CURR {watts_per_element / 120.0!r};:PHAS 0;:OUTP ON;*OPC?") == "1"
    control.set("SIM:REF:ERR 0")
    with closing(link(sim, "reference")) as reference:
        assert query(reference, "ENER:RES;*OPC?") == "1"
        return float(query(reference, "MEAS:POW?"))


# -- link faults over TCP ----------------------------------------------------------------------------

def test_slow_delays_every_reply_without_holding_up_other_connections(sim, control):
    control.fault("REFERENCE", "SLOW", 0.4)
    assert sim.reference.fault_arg == 0.4
    with closing(link(sim, "reference")) as first, closing(link(sim, "reference")) as second, \
            closing(link(sim, "source")) as source:
        started = time.monotonic()
        first.sendall(b"MEAS:FREQ?\n")
        second.sendall(b"*IDN?\n")
        assert query(source, "*IDN?").startswith("MeterBench,")
        other_device_s = time.monotonic() - started
        assert float(read_line(first)) == 60.0 and read_line(second).startswith(b"MeterBench,")
        both_s = time.monotonic() - started  # together, not one after the other (0.8 s)
    print(f"\nSLOW 0.4: both replies after {both_s:.3f} s, "
          f"another instrument meanwhile in {other_device_s * 1000:.1f} ms")
    assert 0.4 <= both_s < 0.7 and other_device_s < 0.2
    control.fault("REFERENCE", "NONE")
    line = VisaLine(sim.scpi["reference"].resource, 1.0)
    started = time.monotonic()
    line.write("*IDN?")
    assert line.read().startswith("MeterBench,") and time.monotonic() - started < 0.1
    line.close()


def test_slow_beyond_the_client_timeout_is_a_timeout_through_pyvisa(sim, control):
    line = VisaLine(sim.scpi["reference"].resource, 0.3)
    control.fault("REFERENCE", "SLOW", 1.0)
    line.write("MEAS:FREQ?")
    with pytest.raises(TransportError, match="no reply before the timeout"):
        line.read()
    line.close()


def test_truncate_cuts_each_reply_to_its_first_half(sim, control):
    idn = sim.source.idn
    control.fault("SOURCE", "TRUNCATE")
    line = VisaLine(sim.scpi["source"].resource, 1.0)
    line.write("*IDN?")
    assert line.read() == idn[: len(idn) // 2]
    with closing(link(sim, "source")) as sock:
        sock.sendall(b"*OPC?\n")
        assert sock.recv(16) == b"\n"  # "1" cut to nothing, still a line
    control.fault("SOURCE", "NONE")
    line.write("*IDN?")
    assert line.read() == idn
    line.close()


def test_errq_pushes_one_error_and_leaves_no_fault(sim, control):
    control.fault("SOURCE", "ERRQ", -310)
    assert sim.source.fault == "NONE"
    with closing(link(sim, "source")) as sock:
        assert query(sock, "SYST:ERR?") == '-310,"Injected error"'
        assert query(sock, "SYST:ERR?") == NO_ERROR


def test_dead_closes_open_links_and_new_ones_until_none(sim, control):
    with closing(link(sim, "source")) as before:
        assert query(before, "*IDN?").startswith("MeterBench,")
        control.fault("SOURCE", "DEAD")
        assert closed_by_peer(before, within_s=0.5)  # at once, not at the next command
    with closing(link(sim, "source")) as during:
        assert closed_by_peer(during, within_s=0.5)
    with pytest.raises(TransportError):
        line = VisaLine(sim.scpi["source"].resource, 0.5)
        line.write("*IDN?")
        line.read()
    control.fault("SOURCE", "NONE")
    with closing(link(sim, "source")) as after:
        assert query(after, "*IDN?").startswith("MeterBench,")


def test_noise_leaves_a_partial_line_on_every_open_link_once(sim, control):
    with closing(link(sim, "load")) as first, closing(link(sim, "load")) as second:
        control.fault("LOAD", "NOISE")
        received = b""
        while len(received) < len(NOISE):
            received += first.recv(64)
        assert received == NOISE  # and no LF
        assert query(first, "*IDN?") == sim.load.idn
        assert query(second, "*IDN?").encode() == NOISE + sim.load.idn.encode()  # glued to the next reply
        assert query(second, "*IDN?") == sim.load.idn  # once
        assert sim.load.fault == "NONE"


def test_drop_shuts_the_link_once(sim, control):
    with closing(link(sim, "reference")) as sock:
        control.fault("REFERENCE", "DROP")
        sock.sendall(b"*IDN?\n")
        assert closed_by_peer(sock)
    with closing(link(sim, "reference")) as sock:
        assert query(sock, "*IDN?") == sim.reference.idn


@pytest.mark.parametrize("spec", ["SOURCE,BOGUS", "SOURCE,SLOW", "SOURCE,SLOW,abc", "SOURCE,SLOW,-1",
                                  "SOURCE,SLOW,61", "SOURCE,ERRQ,0", "SOURCE,ERRQ,1.5", "SOURCE,ERRQ",
                                  "SOURCE,GARBLE,3", "SOURCE,NONE,", "LOAD,OVERRANGE", "NOWHERE,NONE", ""])
def test_unknown_fault_or_bad_argument_is_error_224(sim, control, spec):
    with pytest.raises(InstrumentError, match="-224 Illegal parameter value"):
        control.set(f"SIM:FAUL {spec}")
    assert (sim.source.fault, sim.load.fault) == ("NONE", "NONE")


# -- link faults on the counter's serial line ----------------------------------------------------------

def test_counter_dead_is_an_unplugged_cable(sim, control, counter_port):
    control.fault("COUNTER", "DEAD")
    counter_port.timeout = 0.3
    counter_port.write(b"*IDN?\nCONF:CHAN?\n")
    assert counter_port.read(64) == b""
    control.fault("COUNTER", "NONE")
    counter_port.timeout = 1
    counter_port.write(b"*IDN?\n")
    assert counter_port.readline() == sim.counter.idn.encode() + b"\n"
    counter_port.timeout = 0.2
    assert counter_port.read(64) == b""  # what was sent while unplugged never ran


def test_counter_noise_slow_truncate_and_drop(sim, control, counter_port):
    idn = sim.counter.idn.encode()
    control.fault("COUNTER", "NOISE")
    counter_port.write(b"*IDN?\n")
    assert counter_port.readline() == NOISE + idn + b"\n"
    control.fault("COUNTER", "SLOW", 0.3)
    started = time.monotonic()
    counter_port.write(b"*IDN?\n")
    assert counter_port.readline() == idn + b"\n" and time.monotonic() - started >= 0.3
    control.fault("COUNTER", "TRUNCATE")
    counter_port.write(b"*IDN?\n")
    assert counter_port.readline() == idn[: len(idn) // 2] + b"\n"
    control.fault("COUNTER", "DROP")
    counter_port.write(b"*IDN?\n*OPC?\n")
    assert counter_port.readline() == b"1\n"  # the first line was lost
    assert sim.counter.fault == "NONE"


def test_counter_line_cap(sim, counter_port):
    counter_port.write(b"X" * (MAX_LINE_BYTES + 1) + b"\n*IDN?\nSYST:ERR?\n")
    assert counter_port.readline() == sim.counter.idn.encode() + b"\n"
    assert counter_port.readline() == b'-363,"Input buffer overrun"\n'


# -- instrument faults -----------------------------------------------------------------------------

def test_a_tripped_source_stays_off_until_cleared(sim, control):
    energise(sim, control)
    control.trip_source()
    assert sim.world.source.tripped and control.outputs_on() == (False, True)
    with closing(link(sim, "source")) as source:
        assert query(source, "OUTP?;:OUTP:PROT:TRIP?") == "0"
        assert read_line(source) == b"1"
        assert query(source, "OUTP ON;:SYST:ERR?") == '-221,"Settings conflict;protection tripped"'
        assert query(source, "OUTP?") == "0"
        assert query(source, "OUTP OFF;:SYST:ERR?") == NO_ERROR
        assert query(source, "OUTP:PROT:CLE;:OUTP:PROT:TRIP?;:OUTP?") == "0"
        assert read_line(source) == b"0"  # clearing the trip does not switch the output back on
        assert query(source, "OUTP ON;:SYST:ERR?") == NO_ERROR
        assert query(source, "OUTP?") == "1"


def test_overrange_reference_reads_9_91e37_and_the_driver_refuses_it(sim, control):
    energise(sim, control)
    control.fault("REFERENCE", "OVERRANGE")
    with closing(link(sim, "reference")) as reference:
        for command in ("MEAS:POW?", "MEASure:VOLTage:LIST?", "meas:freq?", "MEAS:HARM:POW?"):
            assert query(reference, command) == "9.91E37"
        assert float(query(reference, "ENER?")) >= 0  # not a MEASure query
        driver = ScpiReferenceStandard(sim.scpi["reference"].resource, timeout_s=1).open()
        with pytest.raises(ReplyError, match="over range"):
            _ = driver.power
        control.fault("REFERENCE", "NONE")
        assert driver.power == pytest.approx(900.0, rel=2e-3)
        driver.close()


# -- scheduled faults --------------------------------------------------------------------------------

def test_a_scheduled_trip_lands_at_its_exact_simulated_time(sim, control):
    power = energise(sim, control)
    control.schedule(10, "SIM:SOUR:TRIP")
    assert control.pending() == 1
    control.advance(25)  # one SIM:ADV across the due time
    assert control.pending() == 0 and control.time() == 25.0
    assert sim.world.source.tripped
    with closing(link(sim, "reference")) as reference:
        assert float(query(reference, "ENER?")) == pytest.approx(power * 10 / 3600, rel=1e-9)


def test_scheduled_commands_run_in_time_order_across_advances(sim, control):
    power = energise(sim, control)
    control.schedule(7, "SIM:SOUR:TRIP")
    control.schedule(3, "SIM:REF:ERR 1")  # the reference reads 1 % high from 3 s on
    control.advance(2)
    assert control.pending() == 2
    control.advance(20)
    assert control.pending() == 0
    with closing(link(sim, "reference")) as reference:
        energy = float(query(reference, "ENER?"))
    assert energy == pytest.approx(power * (3 + 4 * 1.01) / 3600, rel=1e-9)


def test_a_scheduled_link_fault_fires_mid_advance(sim, control, counter_port):
    control.schedule(5, "SIM:FAUL COUNTER,SILENT")
    control.advance(4)
    counter_port.write(b"*OPC?\n")
    assert counter_port.readline() == b"1\n"
    control.advance(4)
    counter_port.timeout = 0.3
    counter_port.write(b"*OPC?\n")
    assert counter_port.readline() == b""
    assert sim.counter.fault == "SILENT"


def test_schedule_clear_and_refusals(sim, control):
    control.schedule(5, "SIM:SOUR:TRIP")
    control.schedule(6, "SIM:FAUL LOAD,DEAD")
    assert control.pending() == 2
    control.clear_schedule()
    control.advance(10)
    assert control.pending() == 0 and not sim.world.source.tripped and sim.load.fault == "NONE"
    with pytest.raises(InstrumentError, match="-224"):
        control.schedule(1, "SIM:NOSUCH 1")
    with pytest.raises(InstrumentError, match="-224"):
        control.schedule(-1, "SIM:SOUR:TRIP")
    assert control.pending() == 0


def test_schedule_is_refused_in_scaled_time():
    world = load_board(board_path("default"), scale=10.0).world
    control = SimControl(world, {})
    assert list(control.handle_line("SIM:SCH 1,SIM:SOUR:TRIP;:SYST:ERR?;:SIM:SCH?")) == [
        '-221,"Settings conflict;clock is scaled"', "0"]


def test_a_scheduled_command_goes_through_the_channel_handle_line(sim, control):
    """Wrappers of the control device's handle_line (the fault suite's watch) see scheduled lines."""
    seen: list[str] = []
    device = sim.control.device
    original = device.handle_line

    def watched(line: str):
        seen.append(line)
        return original(line)

    device.handle_line = watched
    control.schedule(1, "SIM:FAUL REFERENCE,DROP")
    control.advance(2)
    assert "SIM:FAUL REFERENCE,DROP" in seen and sim.reference.fault == "DROP"

