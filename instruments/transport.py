"""Transports below the drivers: text lines (VISA via pyvisa, serial via pyserial) with any
termination, multi-line replies read up to a terminal line, and the ANSI C12.18 binary packet link
(instruments/framing.py has the packet)."""
from __future__ import annotations

import dataclasses
import functools
import re
import time
from collections.abc import Callable
from typing import Protocol

import pyvisa
import serial
from pyvisa.resources import MessageBasedResource

from instruments.framing import (
    ACK,
    DEFAULT_PACKET_SIZE,
    HEADER_SIZE,
    MAX_PACKET_SIZE,
    NAK,
    OVERHEAD,
    STP,
    FrameError,
    Packet,
    Reassembler,
    decode,
    frame_size,
    segment,
)

# What ends a multi-line reply: a predicate on one line, or a pattern the whole line must match.
LineEnd = Callable[[str], bool] | re.Pattern[str]


class LineTransport(Protocol):
    address: str

    def write(self, line: str) -> None: ...
    def read(self) -> str: ...
    def close(self) -> None: ...


class MultiLineTransport(LineTransport, Protocol):
    """A line transport that also reads a reply of several lines (VisaLine, SerialLine)."""

    def read_until(self, end: LineEnd, *, max_lines: int = ..., within_s: float | None = ...,
                   awaiting: str | None = ...) -> list[str]: ...


class TransportError(OSError):
    """The transport failed: nothing reached the instrument, or nothing came back."""


class _Timeout(TransportError):
    """Nothing (or no whole line) came back in time: read_until names what it was waiting for."""


@functools.cache
def resource_manager(backend: str = "@py") -> pyvisa.ResourceManager:
    return pyvisa.ResourceManager(backend)


class VisaLine:
    """A VISA resource (``TCPIP0::host::port::SOCKET``, ``...::INSTR``, ``ASRL...``).

    Terminations default to LF both ways; a CR-terminated instrument (ZERA MT sources) takes
    ``read_termination="\\r", write_termination="\\r"``.
    """

    def __init__(self, address: str, timeout_s: float, backend: str = "@py", *, read_termination: str = "\n",
                 write_termination: str = "\n") -> None:
        if not read_termination:
            raise ValueError("a line transport needs a read termination")
        self.address = address
        self._timeout_s = timeout_s
        timeout_ms = max(1, int(timeout_s * 1000))
        try:
            resource = resource_manager(backend).open_resource(
                address, read_termination=read_termination, write_termination=write_termination,
                timeout=timeout_ms, open_timeout=timeout_ms
            )
        except Exception as error:  # noqa: BLE001 - pyvisa-py raises a bare Exception when connect times out
            if str(pyvisa.constants.StatusCode.error_timeout.value) in str(error):
                raise TransportError(f"cannot open: connection not accepted within {timeout_s:g} s") from None
            raise TransportError(f"cannot open: {_describe(error)}") from None
        if not isinstance(resource, MessageBasedResource):  # e.g. a GPIB interface or a USB RAW resource
            resource.close()
            raise TransportError(f"cannot open: a {type(resource).__name__} does not read and write lines")
        self._resource = resource
        self._timeout_ms = timeout_ms

    def write(self, line: str) -> None:
        try:
            self._resource.write(line)
        except (pyvisa.Error, OSError) as error:
            raise TransportError(f"write failed ({_describe(error)})") from None

    def read(self) -> str:
        return self._read_line(None)

    def read_until(self, end: LineEnd, *, max_lines: int = 64, within_s: float | None = None,
                   awaiting: str | None = None) -> list[str]:
        """Lines up to and including the first that ``end`` accepts (see ``collect_lines``)."""
        return collect_lines(self._read_line, end, max_lines=max_lines,
                             within_s=self._timeout_s if within_s is None else within_s, awaiting=awaiting)

    def _read_line(self, limit_s: float | None) -> str:
        if limit_s is not None:
            self._resource.timeout = max(1, int(limit_s * 1000))
        try:
            return self._resource.read()
        except pyvisa.errors.VisaIOError as error:
            if error.error_code == pyvisa.constants.StatusCode.error_timeout:
                raise _Timeout("no reply before the timeout (connection lost?)") from None
            raise TransportError(f"read failed ({_describe(error)})") from None
        except (OSError, UnicodeDecodeError) as error:
            raise TransportError(f"read failed ({_describe(error)})") from None
        finally:
            if limit_s is not None:
                self._resource.timeout = self._timeout_ms

    def close(self) -> None:
        try:
            self._resource.close()
        except (pyvisa.Error, OSError):
            pass


class SerialLine:
    """A serial port or pyserial URL (``/dev/ttyUSB0``, ``socket://host:port``, ``rfc2217://...``).

    ``termination`` ends each line both ways (LF by default; ZERA MT sources: ``b"\\r"``). With LF,
    a CR before it is dropped too (CRLF devices); other terminations are taken exactly.
    """

    def __init__(self, address: str, timeout_s: float, baudrate: int = 115200, *, termination: bytes = b"\n",
                 stopbits: float = serial.STOPBITS_ONE) -> None:
        if not termination:
            raise ValueError("a line transport needs a termination")
        self.address = address
        self._timeout = timeout_s
        self._termination = termination
        self._buffer = b""
        try:
            self._port = serial.serial_for_url(address, baudrate=baudrate, timeout=timeout_s, stopbits=stopbits)
        except (serial.SerialException, OSError, ValueError) as error:
            raise TransportError(f"cannot open: {error}") from None

    def resynchronise(self, quiet_s: float = 0.05, limit_s: float = 0.5) -> SerialLine:
        """Start from a clean line: a serial line keeps what noise or an earlier session left.

        Drops what waits in the input buffer, ends any partial line the device holds with a bare
        termination (an empty line, ignored), then drops whatever arrives until the line has been
        quiet for ``quiet_s`` (at most ``limit_s`` in all, so a babbling line cannot hold up opening).
        """
        deadline = time.monotonic() + limit_s
        try:
            self._port.reset_input_buffer()
            self._buffer = b""
            self._port.write(self._termination)
            self._port.timeout = quiet_s
            while self._port.read(4096) and time.monotonic() < deadline:
                pass
            self._port.timeout = self._timeout
        except (serial.SerialException, OSError) as error:
            self._port.close()
            raise TransportError(f"cannot resynchronise the line ({error})") from None
        return self

    def write(self, line: str) -> None:
        try:
            self._port.write(line.encode("ascii") + self._termination)
        except (serial.SerialException, OSError) as error:
            raise TransportError(f"write failed ({error})") from None

    def read(self) -> str:
        return self._read_line(None)

    def read_until(self, end: LineEnd, *, max_lines: int = 64, within_s: float | None = None,
                   awaiting: str | None = None) -> list[str]:
        """Lines up to and including the first that ``end`` accepts (see ``collect_lines``)."""
        return collect_lines(self._read_line, end, max_lines=max_lines,
                             within_s=self._timeout if within_s is None else within_s, awaiting=awaiting)

    def _read_line(self, limit_s: float | None) -> str:
        """One line; each chunk waits up to the port timeout, or the whole line up to ``limit_s``."""
        deadline = None if limit_s is None else time.monotonic() + limit_s
        try:
            # Chunked reads: readline() costs ~60x more per line on a pty.
            while self._termination not in self._buffer:
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise _Timeout("no whole line before the timeout")
                    self._port.timeout = remaining
                try:
                    chunk = self._port.read(self._port.in_waiting or 1)
                except (serial.SerialException, OSError) as error:
                    raise TransportError(f"read failed ({error})") from None
                if not chunk:
                    raise _Timeout("no reply before the timeout (cable or board?)")
                self._buffer += chunk
        finally:
            if deadline is not None:
                self._port.timeout = self._timeout
        line, _, self._buffer = self._buffer.partition(self._termination)
        text = line.decode("ascii", "replace")
        return text.rstrip("\r") if self._termination == b"\n" else text

    def close(self) -> None:
        self._port.close()


def collect_lines(read_line: Callable[[float], str], end: LineEnd, *, max_lines: int, within_s: float,
                  awaiting: str | None) -> list[str]:
    """Read lines until one is accepted by ``end`` (a predicate, or a pattern the WHOLE line must
    match), returning them all, terminal line included.

    Bounded twice: at most ``max_lines`` lines and ``within_s`` seconds in all (each line read gets
    what remains). Running out of either is a one-line TransportError naming ``awaiting`` (by
    default the pattern) and what came before.
    """
    if max_lines < 1 or within_s <= 0:
        raise ValueError("read_until needs at least one line and a positive time")
    accepts = end.fullmatch if isinstance(end, re.Pattern) else end
    wanted = awaiting or (f"line matching {end.pattern!r}" if isinstance(end, re.Pattern) else "terminal line")
    deadline = time.monotonic() + within_s
    lines: list[str] = []
    while len(lines) < max_lines:
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise _Timeout("out of time")
            line = read_line(remaining)
        except _Timeout:
            raise TransportError(f"no {wanted} within {within_s:g} s ({_so_far(lines)})") from None
        lines.append(line)
        if accepts(line):
            return lines
    raise TransportError(f"no {wanted} in {max_lines} line{'s' if max_lines > 1 else ''} ({_so_far(lines)})")


def _so_far(lines: list[str]) -> str:
    if not lines:
        return "nothing came back"
    return f"{len(lines)} line{'s' if len(lines) > 1 else ''} came back, the last {lines[-1][:60]!r}"


class _Rejected:
    """A packet that arrived broken and was NAKed; ``reason`` says how it was broken."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class FramedLink:
    """The ANSI C12.18 data link over a pyserial port (optical probe, pty, ``socket://``).

    ``request(payload)`` sends the payload as one transmission (segmented into packets when it does
    not fit ``packet_size``), each packet retransmitted with the same toggle bit on a NAK or on no
    answer within ``ack_timeout_s`` (C12.18's response time-out is 2 s), at most ``retries`` times
    (C12.18: 3). It then reads the response: every good packet is ACKed, every bad one (framing or
    CRC) NAKed, at most ``retries`` times in a row; a packet with the same toggle bit as the last
    one accepted is a retransmission whose ACK was lost: ACKed and dropped. Octets outside packets
    (noise before <stp>) are skipped. Each response packet must arrive within ``timeout_s`` of the
    previous one (C12.18's channel traffic time-out is 6 s), and a response of more than
    ``max_packets`` packets is refused (C12.18: 1 until the Negotiate service says otherwise). So
    a request returns or raises TransportError within (retries + 1) x ack_timeout_s per request
    packet plus max_packets x timeout_s.

    A response packet where the ACK of the last request packet was awaited is taken as that ACK
    (the peer cannot answer a request it did not receive): the ACK octet was lost on the line.
    Not modelled: C12.18's 500 ms inter-character time-out (a stalled partial packet waits for the
    packet deadline instead) and the turn-around delay some meters need before the next octet.
    """

    def __init__(self, address: str, timeout_s: float, *, baudrate: int = 9600, retries: int = 3,
                 ack_timeout_s: float = 2.0, packet_size: int = DEFAULT_PACKET_SIZE, max_packets: int = 1,
                 identity: int = 0) -> None:
        if timeout_s <= 0 or ack_timeout_s <= 0 or retries < 0:
            raise ValueError("timeouts must be positive and retries not negative")
        if not OVERHEAD < packet_size <= MAX_PACKET_SIZE or not 1 <= max_packets <= 256:
            raise ValueError(f"packet size must be {OVERHEAD + 1}..{MAX_PACKET_SIZE}, packets 1..256")
        self.address = address
        self.timeout_s = timeout_s
        self.ack_timeout_s = ack_timeout_s
        self.retries = retries
        self.packet_size = packet_size
        self.max_packets = max_packets
        self.identity = identity
        self.noise = 0  # octets skipped outside packets, for the record
        self._toggle = False  # the toggle bit of the next new packet sent
        self._peer_toggle: bool | None = None  # the toggle bit of the last packet accepted
        self._rx = bytearray()
        try:
            self._port = serial.serial_for_url(address, baudrate=baudrate, timeout=timeout_s)
        except (serial.SerialException, OSError, ValueError) as error:
            raise TransportError(f"cannot open: {error}") from None

    def request(self, payload: bytes) -> bytes:
        """Send ``payload`` (one PSEM request) and return the response's payload."""
        packets = segment(payload, self.packet_size, self.identity)
        try:
            self._port.reset_input_buffer()  # our last exchange is complete: what waits is stale
        except (serial.SerialException, OSError) as error:
            raise TransportError(f"read failed ({error})") from None
        self._rx.clear()
        answer: Packet | None = None
        for index, packet in enumerate(packets):
            answer = self._send(dataclasses.replace(packet, toggle=self._toggle))
            self._toggle = not self._toggle
            if answer is not None and index < len(packets) - 1:
                raise TransportError(f"response began before request packet {index + 1} of {len(packets)} was sent")
        return self._receive(answer)

    def close(self) -> None:
        self._port.close()

    def _send(self, packet: Packet) -> Packet | None:
        """Deliver one packet; None once ACKed, or the response packet that stood in for the ACK."""
        frame = packet.encode()
        naks = silent = 0
        for _ in range(self.retries + 1):
            self._write(frame)
            deadline = time.monotonic() + self.ack_timeout_s
            event = self._next(deadline, want_ack=True)
            while isinstance(event, _Rejected):
                event = self._next(deadline, want_ack=True)
            if event == ACK:
                return None
            if isinstance(event, Packet):
                return event
            if event == NAK:
                naks += 1
            else:
                silent += 1
        raise TransportError(f"packet not acknowledged in {self.retries + 1} attempts "
                             f"({naks} NAK, {silent} unanswered in {self.ack_timeout_s:g} s){self._noise_note()}")

    def _receive(self, first: Packet | None) -> bytes:
        joiner = Reassembler(self.max_packets)
        packet = first
        rejected: list[str] = []
        deadline = time.monotonic() + self.timeout_s
        while True:
            while packet is None:
                event = self._next(deadline, want_ack=False)
                if event is None:
                    raise TransportError(f"no response packet within {self.timeout_s:g} s"
                                         f"{f' ({len(rejected)} rejected: {rejected[-1]})' if rejected else ''}"
                                         f"{self._noise_note()}")
                if isinstance(event, _Rejected):
                    rejected.append(event.reason)
                    if len(rejected) > self.retries:
                        raise TransportError(f"response packet rejected {len(rejected)} times in a row "
                                             f"(last: {event.reason})")
                elif isinstance(event, Packet):
                    packet = event
            rejected.clear()
            try:
                payload = joiner.add(packet)
            except FrameError as error:
                raise TransportError(f"bad response: {error}") from None
            if payload is not None:
                return payload
            packet = None
            deadline = time.monotonic() + self.timeout_s

    def _next(self, deadline: float, want_ack: bool) -> Packet | int | _Rejected | None:
        """The next event on the line before ``deadline`` (None: nothing): an ACK or NAK octet (only
        when ``want_ack``), a new good packet (ACKed), or a broken one (NAKed). Noise is skipped and
        duplicates are ACKed and dropped."""
        rx = self._rx
        while True:
            while rx:
                if want_ack and rx[0] in (ACK, NAK):
                    octet = rx[0]
                    del rx[0]
                    return octet
                if rx[0] != STP:
                    del rx[0]
                    self.noise += 1
                    continue
                if len(rx) < HEADER_SIZE:
                    break
                try:
                    size = frame_size(bytes(rx[:HEADER_SIZE]), self.packet_size)
                except FrameError:  # an EEH that starts no packet: noise
                    del rx[0]
                    self.noise += 1
                    continue
                if len(rx) < size:
                    break
                frame = bytes(rx[:size])
                del rx[:size]
                try:
                    packet = decode(frame, self.packet_size)
                except FrameError as error:
                    self._write(bytes([NAK]))
                    return _Rejected(str(error))
                self._write(bytes([ACK]))
                if packet.toggle == self._peer_toggle:
                    continue  # a retransmission of the packet accepted last: its ACK was lost
                self._peer_toggle = packet.toggle
                return packet
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                self._port.timeout = remaining
                chunk = self._port.read(self._port.in_waiting or 1)
            except (serial.SerialException, OSError) as error:
                raise TransportError(f"read failed ({error})") from None
            rx += chunk

    def _write(self, data: bytes) -> None:
        try:
            self._port.write(data)
        except (serial.SerialException, OSError) as error:
            raise TransportError(f"write failed ({error})") from None

    def _noise_note(self) -> str:
        return f"; {self.noise} stray octets skipped" if self.noise else ""


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}".splitlines()[0]
