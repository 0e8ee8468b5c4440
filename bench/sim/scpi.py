"""SCPI instruments for the simulated bench: handlers declared with the manual's syntax.

A handler is declared as ``@scpi("[SOURce:]VOLTage[:LEVel]?")``: upper-case letters are the short
form, lower-case the optional rest, brackets optional nodes, a trailing ``?`` a query. The same
dispatcher serves a TCP socket (source, load, reference, control) or a serial line (counter).
"""
from __future__ import annotations

import re
import socket
import socketserver
import threading
from collections import deque
from typing import Callable, Iterable, Iterator

Handler = Callable[..., "str | None"]


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
            short = re.match(r"[A-Z*]*", token).group(0)
            rest = token[len(short):].upper()
            out.append(re.escape(short) + (f"(?:{rest})?" if rest else ""))
    return re.compile("".join(out), re.IGNORECASE)


def scpi(pattern: str) -> Callable[[Handler], Handler]:
    """Declare a method as the handler of one SCPI header."""

    def mark(method: Handler) -> Handler:
        method.scpi_pattern = pattern  # type: ignore[attr-defined]
        return method

    return mark


class ScpiDevice:
    """Dispatches SCPI lines to declared handlers and keeps the error queue.

    Subclasses declare handlers with @scpi. Every handler runs holding ``lock`` (the world's),
    after ``before_command`` (the world uses it to catch up in scaled time).
    """

    idn = "MeterBench,SIM,0,0.1"

    def __init__(self, lock: threading.RLock, before_command: Callable[[], None] = lambda: None,
                 extensions: Iterable[object] = ()):
        self.lock = lock
        self.before_command = before_command
        self.errors: deque[ScpiError] = deque()
        self.fault = "NONE"  # NONE | GARBLE | SILENT | DROP (once): injected by the control channel
        self.received: deque[str] = deque(maxlen=256)  # every command, for tests and post-mortems
        # Handlers of this device and of any extension objects (e.g. a fault-injection command set
        # that lives beside the model it acts on).
        self._handlers = [
            (compile_header(getattr(m, "scpi_pattern")), m)
            for owner in (self, *extensions)
            for m in (getattr(owner, n) for n in dir(type(owner)))
            if hasattr(m, "scpi_pattern")
        ]

    def handle_line(self, line: str) -> Iterator[str]:
        """Execute one line (commands separated by ';'); yield the replies of its queries."""
        for command in filter(None, (c.strip() for c in line.split(";"))):
            self.received.append(command)
            header, _, argument = command.partition(" ")
            try:
                with self.lock:
                    self.before_command()
                    reply = self._dispatch(header.lstrip(":"), argument.strip() or None)
            except ScpiError as error:
                self._queue(error)
                continue
            if reply is not None:
                yield reply

    def _queue(self, error: ScpiError, depth: int = 16) -> None:
        """A full queue keeps its oldest errors and says so in the last slot (-350), per SCPI-99."""
        if len(self.errors) < depth - 1:
            self.errors.append(error)
        elif len(self.errors) == depth - 1:
            self.errors.append(ScpiError(-350, "Queue overflow"))

    def _dispatch(self, header: str, argument: str | None) -> str | None:
        for regex, method in self._handlers:
            if regex.fullmatch(header):
                return method(argument)
        raise undefined_header(header)

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


class _LineHandler(socketserver.BaseRequestHandler):
    server: "ScpiServer"

    def handle(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.request)
        buffer = b""
        try:
            while chunk := self.request.recv(4096):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for raw in lines:
                    if not self._serve(raw.decode("ascii", "replace").strip()):
                        return
        except OSError:
            pass
        finally:
            self.server.untrack(self.request)

    def _serve(self, line: str) -> bool:
        device = self.server.device
        fault = device.fault
        if fault == "DROP":  # the link drops once, as in a network blip; a reconnect works
            device.fault = "NONE"
            self.request.shutdown(socket.SHUT_RDWR)
            return False
        for reply in device.handle_line(line):
            if fault == "SILENT":
                continue
            if fault == "GARBLE":
                reply = "#\x15" + reply[::-1] + "?!"
            self.request.sendall(reply.encode("ascii", "replace") + b"\n")
        return True


class ScpiServer(socketserver.ThreadingTCPServer):
    """Serves one ScpiDevice on a raw TCP socket (as LAN instruments do on port 5025)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, device: ScpiDevice, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), _LineHandler)
        self.device = device
        self._connections: set[socket.socket] = set()
        self._guard = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), name=f"scpi-{type(device).__name__}", daemon=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def resource(self) -> str:
        """The VISA resource name a client opens."""
        return f"TCPIP0::{self.server_address[0]}::{self.port}::SOCKET"

    def start(self) -> "ScpiServer":
        self._thread.start()
        return self

    def track(self, conn: socket.socket) -> None:
        with self._guard:
            self._connections.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._guard:
            self._connections.discard(conn)

    def stop(self) -> None:
        """Stop accepting and close open connections (shutdown() alone leaves them open)."""
        self.shutdown()
        self.server_close()
        with self._guard:
            for conn in list(self._connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._connections.clear()
        self._thread.join(timeout=2)
