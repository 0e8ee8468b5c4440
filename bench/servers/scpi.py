"""SCPI instruments for the simulated bench: handlers declared with the manual's syntax.

A handler is declared as ``@scpi("[SOURce:]VOLTage[:LEVel]?")``: upper-case letters are the short
form, lower-case the optional rest, brackets optional nodes, a trailing ``?`` a query. The same
dispatcher serves a TCP socket (source, load, reference, control) or a serial line (counter).
"""
from __future__ import annotations

import heapq
import itertools
import logging
import re
import selectors
import socket
import string
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

Handler = Callable[..., "str | None"]

MAX_LINE_BYTES = 4096  # a longer input line is discarded up to its LF (error -363), as an input buffer overruns
NOISE = b"\x15#~%$noise"  # what electrical noise leaves on a link: a partial line, no LF
LINK_FAULTS = ("NONE", "GARBLE", "SILENT", "DROP", "SLOW", "TRUNCATE", "ERRQ", "DEAD", "NOISE")
MAX_SLOW_S = 60.0

_log = logging.getLogger(__name__)


class ScpiError(Exception):
    """A command the instrument rejects; it goes to the error queue, as on a real instrument."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f'{code},"{message}"')
        self.code = code
        self.message = message


def undefined_header(header: str) -> ScpiError:
    return ScpiError(-113, f"Undefined header;{header}")


def out_of_range(value: object) -> ScpiError:
    return ScpiError(-222, f"Data out of range;{value}")


_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def parse_number(argument: str | None) -> float:
    """A SCPI decimal parameter, strictly: anything else (1_0, nan, inf) is error -104."""
    text = (argument or "").strip()
    if not _DECIMAL.fullmatch(text):
        raise ScpiError(-104, f"Data type error;{argument}")
    return float(text)


def parse_whole(argument: str | None) -> int:
    """A whole-number parameter (a channel, a pulse count): 1.9 is an error, not 1."""
    text = (argument or "").strip()
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ScpiError(-104, f"Data type error;{argument}")
    return int(text)


def illegal_value(value: object) -> ScpiError:
    return ScpiError(-224, f"Illegal parameter value;{value}")


def parse_bool(argument: str | None) -> bool:
    token = (argument or "").strip().upper()
    if token in ("1", "ON"):
        return True
    if token in ("0", "OFF"):
        return False
    raise ScpiError(-104, f"Data type error;{argument}")


def compile_header(pattern: str) -> re.Pattern[str]:
    """Turn manual syntax such as ``[SOURce:]VOLTage[:LEVel]?`` into a regular expression."""
    out: list[str] = []
    for token in re.findall(r"[A-Z*]+[a-z]*|\[|\]|:|\?", pattern):
        if token == "[":
            out.append("(?:")
        elif token == "]":
            out.append(")?")
        elif token in (":", "?"):
            out.append(re.escape(token))
        else:
            short = token.rstrip(string.ascii_lowercase)  # the token is [A-Z*]+[a-z]*: its short form
            rest = token[len(short):].upper()
            out.append(re.escape(short) + (f"(?:{rest})?" if rest else ""))
    return re.compile("".join(out), re.IGNORECASE)


def scpi(pattern: str) -> Callable[[Handler], Handler]:
    """Declare a method as the handler of one SCPI header."""

    def mark(method: Handler) -> Handler:
        method.scpi_pattern = pattern  # type: ignore[attr-defined]
        return method

    return mark


def _no_argument(argument: str | None) -> None:
    if argument is not None:
        raise illegal_value(argument)


def _slow_seconds(argument: str | None) -> float:
    try:
        seconds = parse_number(argument)
    except ScpiError:
        raise illegal_value(argument) from None
    if not 0 < seconds <= MAX_SLOW_S:
        raise illegal_value(argument)
    return seconds


def _error_code(argument: str | None) -> int:
    try:
        code = parse_whole(argument)
    except ScpiError:
        raise illegal_value(argument) from None
    if code == 0 or not -32768 <= code <= 32767:  # 0 is "No error"
        raise illegal_value(argument)
    return code




class ScpiDevice:
    """Dispatches SCPI lines to declared handlers and keeps the error queue.

    Subclasses declare handlers with @scpi. Every handler runs holding ``lock`` (the world's),
    after ``before_command`` (the world uses it to catch up in scaled time).
    """

    idn = "MeterBench,SIM,0,0.1"
    fault_kinds: tuple[str, ...] = LINK_FAULTS  # a device adds its own (the reference standard's OVERRANGE)
    max_line_bytes = MAX_LINE_BYTES  # its input buffer: a device whose manual allows longer lines says so

    def __init__(self, lock: threading.RLock, before_command: Callable[[], None] = lambda: None,
                 extensions: Iterable[object] = ()):
        self.lock = lock
        self.before_command = before_command
        self.errors: deque[ScpiError] = deque()
        # Injected by the control channel (one of fault_kinds); the servers act on the link faults.
        self.fault = "NONE"
        self.fault_arg: float | None = None
        self._fault_watchers: list[Callable[[], None]] = []
        self.received: deque[str] = deque(maxlen=256)  # every command, for tests and post-mortems
        # Handlers of this device and of any extension objects (e.g. a fault-injection command set
        # that lives beside the model it acts on).
        self._handlers = [
            (compile_header(m.scpi_pattern), m)
            for owner in (self, *extensions)
            for m in (getattr(owner, n) for n in dir(type(owner)))
            if hasattr(m, "scpi_pattern")
        ]

    def handle_line(self, line: str) -> Iterator[str]:
        """Execute one line (commands separated by ';'); yield the replies of its queries.

        SCPI-99 (volume 1, 6.2.4): a command after ';' is resolved from the parent of the last
        node of the one before it, default nodes included: after ``FREQ 100`` (that is
        ``SOURce:FREQuency:CW``) ``MODE FIX`` is ``SOURce:FREQuency:MODE``. A leading ':' returns
        to the root; common commands (``*CLS``) neither use nor move the path.
        """
        path = ""
        for command in filter(None, (c.strip() for c in line.split(";"))):
            self.received.append(command)
            header, _, argument = command.partition(" ")
            if not header.startswith(("*", ":")):
                header = path + header
            if not header.startswith("*"):
                path = self._path_after(header.lstrip(":"))
            try:
                with self.lock:
                    self.before_command()
                    reply = self._dispatch(header.lstrip(":"), argument.strip() or None)
            except ScpiError as error:
                self.push_error(error)
                continue
            except Exception as error:  # noqa: BLE001 - a simulator bug must not take the link down
                _log.exception("%s failed on %r", type(self).__name__, command)
                self.push_error(ScpiError(-300, f"Device-specific error;{type(error).__name__}"))
                continue
            if reply is not None:
                yield reply

    def _path_after(self, header: str) -> str:
        """The current path a header leaves: its handler's full path, optional nodes filled in,
        without the last node (for an unknown header, its own nodes without the last)."""
        method = self._handler(header)
        pattern: str = header if method is None else getattr(method, "scpi_pattern")  # noqa: B009 - set by @scpi
        full = re.sub(r"[\[\]?]", "", pattern.split("|")[0])
        parent = full.rpartition(":")[0]
        return f"{parent}:" if parent else ""

    def knows(self, header: str) -> bool:
        """Whether a header names one of this device's commands (checked before a command is scheduled)."""
        return self._handler(header.lstrip(":")) is not None

    def push_error(self, error: ScpiError) -> None:
        with self.lock:
            self._queue(error)

    def inject_fault(self, kind: str, argument: str | None = None) -> None:
        """Set a fault (-224 for an unknown kind or a bad argument); ERRQ acts at once and leaves NONE."""
        if kind not in self.fault_kinds:
            raise illegal_value(kind)
        injected: ScpiError | None = None
        value: float | None = None
        if kind == "ERRQ":
            injected, kind = ScpiError(_error_code(argument), "Injected error"), "NONE"
        elif kind == "SLOW":
            value = _slow_seconds(argument)
        else:
            _no_argument(argument)
        with self.lock:
            if injected is not None:
                self._queue(injected)
            self.fault, self.fault_arg = kind, value
        for notify in list(self._fault_watchers):
            notify()

    def consume_fault(self, kind: str) -> bool:
        """A once-only fault fires: True, and the device is back to NONE."""
        with self.lock:
            if self.fault != kind:
                return False
            self.fault, self.fault_arg = "NONE", None
            return True

    def watch_faults(self, notify: Callable[[], None]) -> Callable[[], None]:
        """Call ``notify`` on every injected fault (a server wakes up to act on DEAD or NOISE at
        once); returns the function that stops watching."""
        self._fault_watchers.append(notify)
        return lambda: self._fault_watchers.remove(notify)

    def _queue(self, error: ScpiError, depth: int = 16) -> None:
        """A full queue keeps its oldest errors and says so in the last slot (-350), per SCPI-99."""
        if len(self.errors) < depth - 1:
            self.errors.append(error)
        elif len(self.errors) == depth - 1:
            self.errors.append(ScpiError(-350, "Queue overflow"))

    def _handler(self, header: str) -> Handler | None:
        return next((method for regex, method in self._handlers if regex.fullmatch(header)), None)

    def _dispatch(self, header: str, argument: str | None) -> str | None:
        method = self._handler(header)
        if method is None:
            raise undefined_header(header)
        return method(argument)

    @scpi("*IDN?")
    def _idn(self, _: str | None) -> str:
        return self.idn

    @scpi("*CLS")
    def _cls(self, _: str | None) -> None:
        self.errors.clear()

    @scpi("*OPC?")
    def _opc(self, _: str | None) -> str:
        return "1"

    @scpi("SYSTem:ERRor[:NEXT]?")
    def _next_error(self, _: str | None) -> str:
        return str(self.errors.popleft()) if self.errors else '0,"No error"'



def reply_on_link(device: ScpiDevice, reply: str) -> bytes | None:
    """The bytes a reply puts on the link under the device's fault; None when nothing goes out."""
    fault = device.fault
    if fault in ("SILENT", "DEAD"):
        return None
    if fault == "GARBLE":
        reply = "#\x15" + reply[::-1] + "?!"
    elif fault == "TRUNCATE":
        reply = reply[: len(reply) // 2]
    return reply.encode("ascii", "replace") + b"\n"


def reply_delay_s(device: ScpiDevice) -> float:
    return float(device.fault_arg or 0.0) if device.fault == "SLOW" else 0.0


class LineBuffer:
    """Splits a byte stream into LF-terminated lines of at most ``limit`` bytes. A longer line is
    dropped up to its LF and reported once, so a flood costs a bounded buffer, never the link."""

    def __init__(self, on_overrun: Callable[[], None], limit: int = MAX_LINE_BYTES) -> None:
        self._on_overrun = on_overrun
        self._limit = limit
        self._pending = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> Iterator[str]:
        """The complete lines in ``data``; an overrun is reported in its place among them."""
        if self._discarding:
            end = data.find(b"\n")
            if end < 0:
                return
            data, self._discarding = data[end + 1:], False
        self._pending += data
        *lines, self._pending = self._pending.split(b"\n")
        overlong_rest = len(self._pending) > self._limit
        if overlong_rest:  # state first: a caller may stop reading lines half way
            self._pending.clear()
            self._discarding = True
        for raw in lines:
            if len(raw) > self._limit:
                self._on_overrun()
            else:
                yield self._decode(raw)
        if overlong_rest:
            self._on_overrun()

    def clear(self) -> None:
        """Forget a partial line (the link was cut)."""
        self._pending.clear()
        self._discarding = False

    @staticmethod
    def _decode(raw: bytes | bytearray) -> str:
        return raw.decode("ascii", "replace").strip()


def input_overrun(device: ScpiDevice) -> Callable[[], None]:
    return lambda: device.push_error(ScpiError(-363, "Input buffer overrun"))


@dataclass(eq=False)
class _Connection:
    """One client socket: its input lines, replies waiting for their time (SLOW) and unsent bytes."""

    sock: socket.socket
    lines: LineBuffer
    accepted_at: float = field(default_factory=time.monotonic)
    proven: bool = False  # has sent a complete line: never evicted for a newcomer
    delayed: deque[tuple[float, bytes]] = field(default_factory=deque)
    unsent: bytearray = field(default_factory=bytearray)
    events: int = selectors.EVENT_READ  # what the selector waits for on this socket
    open: bool = True


class ScpiServer:
    """Serves one ScpiDevice on a raw TCP socket (as LAN instruments do on port 5025).

    One thread runs a selector over non-blocking sockets: idle, half-open or slow clients cost a
    registered socket and at most one line of buffer, never a thread, and cannot hold up the rest.
    """

    LISTEN_BACKLOG = 512  # a connect flood waits in the queue instead of seeing 1 s SYN retransmits
    MAX_CONNECTIONS = 64
    MAX_UNSENT_BYTES = 1 << 20  # beyond it, stop reading from a client that does not read its replies
    ACCEPTS_PER_WAKE = 64

    def __init__(self, device: ScpiDevice, host: str = "127.0.0.1", port: int = 0) -> None:
        self.device = device
        self._listener = socket.create_server((host, port), backlog=self.LISTEN_BACKLOG)
        self._listener.setblocking(False)
        self._address: tuple[str, int] = self._listener.getsockname()[:2]  # still known after stop()
        self._wake_in, self._wake_out = socket.socketpair()
        for end in (self._wake_in, self._wake_out):
            end.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, self._accept)
        self._selector.register(self._wake_in, selectors.EVENT_READ, self._woken)
        self._connections: dict[socket.socket, _Connection] = {}
        self._timers: list[tuple[float, int, _Connection]] = []  # (due, sequence, connection) of delayed replies
        self._sequence = itertools.count()
        self._stopping = False
        self._unwatch = device.watch_faults(self._wake)
        self._thread = threading.Thread(target=self._run, name=f"scpi-{type(device).__name__}", daemon=True)

    @property
    def port(self) -> int:
        return self._address[1]

    @property
    def resource(self) -> str:
        """The VISA resource name a client opens."""
        return f"TCPIP0::{self._address[0]}::{self.port}::SOCKET"

    def start(self) -> ScpiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close every open connection and end the thread."""
        if self._stopping:
            return
        self._unwatch()
        self._stopping = True
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        for conn in list(self._connections.values()):
            self._close(conn)
        for sock in (self._listener, self._wake_in, self._wake_out):
            sock.close()
        self._selector.close()

    def _wake(self) -> None:
        try:
            self._wake_out.send(b"!")
        except OSError:  # already pending (buffer full) or stopped: either way the loop will look
            pass

    def _run(self) -> None:
        while not self._stopping:
            for key, events in self._selector.select(self._next_timer_s()):
                if not self._stopping:
                    self._handle_event(key, events)
            self._send_due_replies()

    def _handle_event(self, key: selectors.SelectorKey, events: int) -> None:
        try:
            key.data(key.fileobj, events)
        except Exception:  # noqa: BLE001 - one client's trouble must not end the server
            _log.exception("%s server: dropping a connection after an error", type(self.device).__name__)
            conn = self._connections.get(key.fileobj) if isinstance(key.fileobj, socket.socket) else None
            if conn is not None:
                self._close(conn)

    def _woken(self, sock: socket.socket, _: int) -> None:
        """A fault was injected (or the server stops): act on the faults that hit open links."""
        try:
            sock.recv(4096)
        except OSError:
            pass
        if self.device.fault == "DEAD":
            for conn in list(self._connections.values()):
                self._close(conn)
        elif self.device.consume_fault("NOISE"):
            for conn in list(self._connections.values()):
                self._write(conn, NOISE)

    # -- connections -------------------------------------------------------------------------------

    def _accept(self, listener: socket.socket, _: int) -> None:
        for _ in range(self.ACCEPTS_PER_WAKE):
            try:
                sock, _address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. EMFILE: the backlog keeps the rest until the next wake
                return
            if self.device.fault == "DEAD" or not self._room_for_one_more():
                sock.close()
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(sock, LineBuffer(input_overrun(self.device), self.device.max_line_bytes))
            self._connections[sock] = conn
            self._selector.register(sock, selectors.EVENT_READ, self._readable_or_writable)

    def _room_for_one_more(self) -> bool:
        """Below the cap; at it, the oldest connection that never sent a whole line (idle, half-open
        or slowloris) makes room, so a flood cannot lock out a real client."""
        if len(self._connections) < self.MAX_CONNECTIONS:
            return True
        unproven = [c for c in self._connections.values() if not c.proven]
        if not unproven:
            return False
        self._close(min(unproven, key=lambda c: c.accepted_at))
        return True

    def _close(self, conn: _Connection) -> None:
        if not conn.open:
            return
        conn.open = False
        self._connections.pop(conn.sock, None)
        try:
            self._selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        try:
            conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        conn.sock.close()

    def _readable_or_writable(self, sock: socket.socket, events: int) -> None:
        conn = self._connections.get(sock)
        if conn is None:
            return
        if events & selectors.EVENT_WRITE:
            self._flush(conn)
        if events & selectors.EVENT_READ and conn.open:
            self._receive(conn)

    def _receive(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        for line in conn.lines.feed(data):
            conn.proven = True
            self._serve(conn, line)
            if not conn.open:
                return

    def _serve(self, conn: _Connection, line: str) -> None:
        device = self.device
        if device.fault == "DEAD" or device.consume_fault("DROP"):  # DROP: a network blip, once
            self._close(conn)
            return
        for reply in device.handle_line(line):
            data = reply_on_link(device, reply)
            if data is not None:
                self._reply(conn, data, reply_delay_s(device))

    # -- replies -----------------------------------------------------------------------------------

    def _reply(self, conn: _Connection, data: bytes, delay_s: float) -> None:
        """Send now, or at its time behind any earlier delayed reply (replies keep their order)."""
        if not delay_s and not conn.delayed:
            self._write(conn, data)
            return
        due = max(time.monotonic() + delay_s, conn.delayed[-1][0] if conn.delayed else 0.0)
        conn.delayed.append((due, data))
        heapq.heappush(self._timers, (due, next(self._sequence), conn))

    def _next_timer_s(self) -> float | None:
        return max(0.0, self._timers[0][0] - time.monotonic()) if self._timers else None

    def _send_due_replies(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, conn = heapq.heappop(self._timers)
            while conn.open and conn.delayed and conn.delayed[0][0] <= now:
                self._write(conn, conn.delayed.popleft()[1])

    def _write(self, conn: _Connection, data: bytes) -> None:
        conn.unsent += data
        self._flush(conn)

    def _flush(self, conn: _Connection) -> None:
        try:
            sent = conn.sock.send(conn.unsent) if conn.unsent else 0
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close(conn)
            return
        del conn.unsent[:sent]
        self._watch(conn)

    def _watch(self, conn: _Connection) -> None:
        """Wait for room to write while bytes are unsent; stop reading while too many are."""
        events = selectors.EVENT_WRITE if conn.unsent else 0
        if len(conn.unsent) < self.MAX_UNSENT_BYTES:
            events |= selectors.EVENT_READ
        if conn.events != events:
            self._selector.modify(conn.sock, events, self._readable_or_writable)
            conn.events = events
