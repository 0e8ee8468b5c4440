"""The simulator's SCPI server under hostile clients: connect floods, huge lines, idle and slow
clients, garbage. Each keeps serving the other clients, on one thread, within bounded time."""
from __future__ import annotations

import random
import re
import select
import socket
import threading
import time
from contextlib import ExitStack, closing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.servers.scpi import MAX_LINE_BYTES, LineBuffer, ScpiDevice, ScpiServer, scpi
from bench.sim import SimulatedBench
from tests.helpers import query, read_line

IDN = ScpiDevice.idn


@pytest.fixture
def server():
    served = ScpiServer(ScpiDevice(threading.RLock())).start()
    yield served
    served.stop()


def connect(server: ScpiServer, timeout_s: float = 2.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=timeout_s)


def timed_idn(sock: socket.socket) -> float:
    start = time.monotonic()
    assert query(sock, "*IDN?") == IDN
    return time.monotonic() - start


def test_a_connect_flood_is_taken_at_once_and_capped(server):
    """300 simultaneous connects: none waits for a SYN retransmit (1 s), the server keeps at most
    MAX_CONNECTIONS open (the newest), and a client arriving afterwards is served."""
    with ExitStack() as stack:
        flood = [stack.enter_context(closing(socket.socket())) for _ in range(300)]
        started = time.monotonic()
        for sock in flood:
            sock.setblocking(False)
            assert sock.connect_ex(("127.0.0.1", server.port)) in (0, 115)  # 115: EINPROGRESS
        pending, slowest = set(flood), 0.0
        while pending and time.monotonic() - started < 5:
            _, writable, _ = select.select([], list(pending), [], 0.5)
            for sock in writable:
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
                pending.discard(sock)
                slowest = time.monotonic() - started
        print(f"\n300 connects all completed in {slowest * 1000:.1f} ms")
        assert not pending and slowest < 0.5
        with closing(connect(server)) as late:
            assert timed_idn(late) < 0.5
        answered = 0
        for sock in flood:
            sock.setblocking(True)
            sock.settimeout(0.5)
            try:
                answered += query(sock, "*IDN?") == IDN
            except OSError:  # closed by the server: it was over the cap
                pass
        assert 1 <= answered <= ScpiServer.MAX_CONNECTIONS - 1  # the late client holds a slot too


def test_a_31_mib_line_is_discarded_while_others_are_served(server):
    flooder, other = connect(server, 30), connect(server)
    done = threading.Event()
    latencies: list[float] = []

    def flood() -> None:
        flooder.sendall(b"A" * (31 << 20) + b"\n")
        done.set()

    started = time.monotonic()
    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    while not done.is_set() and time.monotonic() - started < 30:
        latencies.append(timed_idn(other))
    reply = query(flooder, "SYST:ERR?")
    discard_s = time.monotonic() - started
    thread.join(timeout=1)
    print(f"\n31 MiB line discarded in {discard_s:.2f} s; {len(latencies)} *IDN? meanwhile, "
          f"slowest {max(latencies) * 1000:.1f} ms")
    assert reply == '-363,"Input buffer overrun"'
    assert query(flooder, "SYST:ERR?") == '0,"No error"'  # one overrun, one error
    assert discard_s < 10 and latencies and max(latencies) < 0.5
    assert timed_idn(flooder) < 0.5  # the flooder's connection is still served
    flooder.close()
    other.close()


def test_a_line_of_exactly_the_cap_is_served_one_byte_more_is_not(server):
    with closing(connect(server)) as client:
        at_cap = "*IDN?".ljust(MAX_LINE_BYTES)
        assert query(client, at_cap) == IDN
        client.sendall(at_cap.encode() + b" \n")
        assert query(client, "SYST:ERR?") == '-363,"Input buffer overrun"'


def test_an_overlong_line_split_across_reads_is_one_overrun_in_its_place():
    log: list[str] = []
    lines = LineBuffer(lambda: log.append("-363"), limit=10)

    def feed(data: bytes) -> list[str]:
        log.extend(lines.feed(data))
        return log

    assert feed(b"0123456") == [] and feed(b"789abcdef") == ["-363"]
    assert feed(b"ghij") == ["-363"]  # still discarding, still one error
    assert feed(b"k\n*IDN?\n*O") == ["-363", "*IDN?"]
    assert feed(b"PC?\n" + b"Y" * 11 + b"\nSYST:ERR?\n" + b"Z" * 11) == [
        "-363", "*IDN?", "*OPC?", "-363", "SYST:ERR?", "-363"]  # each overrun between the lines around it


def test_idle_half_open_and_slowloris_clients_do_not_hold_up_others(server):
    with ExitStack() as stack:
        idle = [stack.enter_context(closing(connect(server))) for _ in range(100)]
        for sock in idle[-10:]:  # half-open: a partial line, then the client's side shut (the oldest were evicted)
            sock.sendall(b"*ID")
            sock.shutdown(socket.SHUT_WR)
        slowloris = stack.enter_context(closing(connect(server)))
        stop = threading.Event()

        def drip() -> None:
            for byte in b"*IDN?" * 8:  # one byte every 50 ms for 2 s, never a whole line
                if stop.wait(0.05):
                    return
                slowloris.send(bytes([byte]))

        thread = threading.Thread(target=drip, daemon=True)
        thread.start()
        with closing(connect(server)) as other:  # arrives after them all
            latencies = [timed_idn(other) for _ in range(200)]
        stop.set()
        thread.join(timeout=2)
    print(f"\nwith 100 idle + slowloris: slowest *IDN? {max(latencies) * 1000:.1f} ms")
    assert max(latencies) < 0.2


class Talkative(ScpiDevice):
    @scpi("DUMP?")
    def dump(self, _: str | None) -> str:
        return "X" * 4000


@pytest.mark.slow
def test_a_client_that_never_reads_its_replies_does_not_hold_up_others():
    """A query flood whose replies nobody reads (12 GB, were all answered): the server stops
    reading that client (its send blocks) instead of buffering without bound, and serves the others."""
    server = ScpiServer(Talkative(threading.RLock())).start()
    flooder = connect(server, timeout_s=2)
    outcome: list[str] = []

    def flood() -> None:
        try:
            flooder.sendall(b"DUMP?\n" * 3_000_000)  # 18 MB: more than every kernel buffer on the way
            outcome.append("all sent")
        except TimeoutError:
            outcome.append("held back")

    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    with closing(connect(server)) as other:
        latencies = [timed_idn(other) for _ in range(100)]
    thread.join(timeout=5)
    flooder.close()
    server.stop()
    # Held up, every query would wait on the flood (seconds, or its 2 s timeout); a loaded machine may
    # delay one or two by its scheduling alone (CI once saw the first at 1.3 s, the rest 0.2 ms).
    assert outcome == ["held back"] and sorted(latencies)[94] < 0.5, latencies


def test_binary_garbage_does_not_kill_the_server(server):
    garbage = random.Random(7).randbytes(1 << 20)  # with LFs, NULs, 0xFF, overlong stretches
    with closing(connect(server)) as vandal, closing(connect(server)) as other:
        vandal.sendall(garbage + b"\n")
        assert timed_idn(other) < 0.5
        vandal.sendall(b"*IDN?\n")
        vandal.settimeout(2)
        replies: list[bytes] = []
        while IDN.encode() not in replies and len(replies) < 1000:  # replies the garbage asked for come first
            replies.append(read_line(vandal))
        assert replies[-1] == IDN.encode()


def test_thread_count_does_not_grow_with_connections(server):
    before = threading.active_count()
    with ExitStack() as stack:
        clients = [stack.enter_context(closing(connect(server))) for _ in range(50)]
        for client in clients:
            assert query(client, "*IDN?") == IDN
        during = threading.active_count()
    print(f"\nthreads: {before} before, {during} with 50 served connections")
    assert during == before


def test_stop_closes_open_connections_and_stops_accepting():
    served = ScpiServer(ScpiDevice(threading.RLock())).start()
    client = connect(served)
    assert query(client, "*IDN?") == IDN
    started = time.monotonic()
    served.stop()
    assert client.recv(1) == b"" and time.monotonic() - started < 1
    assert not any(t.name == "scpi-ScpiDevice" for t in threading.enumerate())
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", served.port), timeout=1)
    client.close()


def test_compound_lines_answer_in_order_and_fast(server):
    with closing(connect(server)) as client:
        client.sendall(b"*OPC?;*IDN?;SYST:ERR?\n")
        assert [read_line(client) for _ in range(3)] == [b"1", IDN.encode(), b'0,"No error"']
        latencies = sorted(timed_idn(client) for _ in range(500))
    print(f"\n*IDN? round trip over a bare socket: median {latencies[250] * 1e6:.0f} us")
    assert latencies[250] < 0.005


# -- property: whatever arrives, the devices answer with text or nothing, and keep serving ---------

@pytest.fixture(scope="module")
def simulated():
    with SimulatedBench() as sim:
        yield sim


def short_form(pattern: str) -> str:
    """``[SOURce:]VOLTage[:LEVel]?`` -> ``VOLT?``: a header the device must accept."""
    return re.sub(r"[a-z]", "", re.sub(r"\[[^\]]*\]", "", pattern))


def headers(device: ScpiDevice) -> list[str]:
    return sorted({short_form(getattr(device, name).scpi_pattern) for name in dir(type(device))
                   if hasattr(getattr(device, name), "scpi_pattern")})


def lines_for(device: ScpiDevice) -> st.SearchStrategy[str]:
    """Free text, raw bytes as the server decodes them, and real headers with arbitrary arguments."""
    structured = st.builds(lambda h, sep, arg: f"{h}{sep}{arg}", st.sampled_from(headers(device)),
                           st.sampled_from([" ", "", ";", " ,"]), st.text(max_size=40))
    raw = st.binary(max_size=300).map(lambda b: b.decode("ascii", "replace"))
    return st.one_of(st.text(max_size=300), raw, structured).map(lambda line: line.replace("\n", ""))


INSTRUMENTS = ("source", "load", "reference", "counter")


@pytest.mark.parametrize("name", INSTRUMENTS)
def test_any_line_yields_text_replies_and_no_internal_error(simulated, name):
    device = getattr(simulated, name)

    @settings(max_examples=200, deadline=None)
    @given(line=lines_for(device))
    def check(line: str) -> None:
        device.errors.clear()
        replies = list(device.handle_line(line))
        assert all(isinstance(r, str) and "\n" not in r for r in replies)
        assert all(e.code != -300 for e in device.errors), list(device.errors)  # -300: a handler crashed

    try:
        check()
    finally:
        device.errors.clear()
        device.world.source.output = device.world.load.output = False


@pytest.fixture(scope="module")
def vandal_and_probe(simulated):
    """Two links to the source: one gets arbitrary bytes, the other asks *IDN? after each."""
    server = simulated.scpi["source"]
    with closing(connect(server)) as vandal, closing(connect(server)) as probe:
        yield vandal, probe


def drain(sock: socket.socket) -> None:
    """Read whatever replies wait on a link, unread by anyone."""
    sock.setblocking(False)
    try:
        while sock.recv(65536):
            pass
    except BlockingIOError:
        pass
    finally:
        sock.setblocking(True)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600))
def test_any_bytes_on_the_wire_leave_the_server_answering(simulated, vandal_and_probe, data):
    vandal, probe = vandal_and_probe
    vandal.sendall(data + b"\n")
    assert query(probe, "*IDN?") == simulated.source.idn
    drain(vandal)
