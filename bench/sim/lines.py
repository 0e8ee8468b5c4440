"""Small twins for link kinds beyond LF text lines: a CR-terminated command line (a ZERA MT source)
and an ANSI C12.18 optical-port responder, each on a pseudo-terminal or a loopback TCP socket.

They stand in for the far end of a link so that the transports in instruments/transport.py can be
tested over a real pty or socket; they model the link, not an instrument's physics, and touch no
world. ``address`` is what pyserial opens (the pty's path, or ``socket://127.0.0.1:port``); on TCP,
``visa_address`` is the same socket as a VISA resource.
"""
from __future__ import annotations

import abc
import dataclasses
import os
import re
import select
import socket
import threading
import time
import tty
from typing import Literal

from bench.servers.serial_line import write_within
from instruments.framing import (
    ACK,
    DEFAULT_PACKET_SIZE,
    HEADER_SIZE,
    NAK,
    STP,
    FrameError,
    Packet,
    Reassembler,
    decode,
    frame_size,
    segment,
)

LinkKind = Literal["pty", "tcp"]


class _Stopped(Exception):
    """The twin is stopping (or its link is gone): its thread returns."""


class LinkEnd:
    """The simulator's end of a link: the master of a raw pty (the slave stays open here, so a
    client closing the port does not hang the pty up), or a loopback listener serving one client
    at a time."""

    WRITE_TIMEOUT_S = 1.0  # what a client leaves unread past this is lost, as on a real UART

    def __init__(self, kind: LinkKind = "pty") -> None:
        self.kind = kind
        self._wake_r, self._wake_w = os.pipe()
        self._conn: socket.socket | None = None
        self.connections = 0  # clients accepted so far (TCP): a new one starts a new session
        if kind == "pty":
            self._master, self._slave = os.openpty()
            tty.setraw(self._slave)  # before anything is written: no echo, no CR/LF translation
            tty.setraw(self._master)
            os.set_blocking(self._master, False)
            self.address = os.ttyname(self._slave)
            self.visa_address = ""
        else:
            self._listener = socket.create_server(("127.0.0.1", 0))
            port = self._listener.getsockname()[1]
            self.address = f"socket://127.0.0.1:{port}"
            self.visa_address = f"TCPIP0::127.0.0.1::{port}::SOCKET"

    def read(self, timeout_s: float | None) -> bytes:
        """What arrives next; b"" if nothing within ``timeout_s`` (None: wait until stopped)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            source = self._source()
            ready = select.select([self._wake_r, source], [], [], remaining)[0]
            if self._wake_r in ready:
                raise _Stopped
            if not ready:
                return b""
            data = self._take(source)
            if data:
                return data

    def _source(self) -> int | socket.socket:
        if self.kind == "pty":
            return self._master
        return self._conn if self._conn is not None else self._listener

    def _take(self, source: int | socket.socket) -> bytes:
        if isinstance(source, int):
            try:
                return os.read(source, 65536)
            except BlockingIOError:
                return b""
            except OSError:
                raise _Stopped from None
        if source is self._listener:
            self._drop_connection()
            self._conn, _ = self._listener.accept()
            self._conn.settimeout(self.WRITE_TIMEOUT_S)
            self.connections += 1
            return b""
        try:
            data = source.recv(65536)
        except OSError:
            data = b""
        if not data:  # the client went away: wait for the next one
            self._drop_connection()
        return data

    def write(self, data: bytes) -> None:
        if self.kind == "tcp":
            if self._conn is not None:
                try:
                    self._conn.sendall(data)
                except OSError:
                    self._drop_connection()
            return
        write_within(self._master, data, self.WRITE_TIMEOUT_S)

    def wake(self) -> None:
        try:
            os.write(self._wake_w, b"!")
        except OSError:
            pass

    def close(self) -> None:
        self._drop_connection()
        fds = [self._wake_r, self._wake_w] + ([self._master, self._slave] if self.kind == "pty" else [])
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
        if self.kind == "tcp":
            self._listener.close()

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._conn.close()
            self._conn = None


class _Twin(abc.ABC):
    """A link end and the thread that serves it; ``with`` starts and stops it."""

    def __init__(self, link: LinkKind) -> None:
        self.link = LinkEnd(link)
        self.address = self.link.address
        self.visa_address = self.link.visa_address
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._stopped = False

    def start(self) -> _Twin:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.link.wake()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self.link.close()

    def __enter__(self) -> _Twin:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            self._serve()
        except _Stopped:
            return

    @abc.abstractmethod
    def _serve(self) -> None:
        """Serve the link until the link end raises _Stopped."""


class ZeraMtLineTwin(_Twin):
    """A ZERA MT source's serial command line: ASCII lines ending in CR both ways.

    The subset answered, exactly as ZeraGmbH/SourceMock ``Provider/ZeraDevices/Server/Mocks/
    SerialPortMTMock.cs`` answers it (that mock is the only public description of the protocol):

    - ``AAV`` (firmware version) -> ``MT793V05.52`` then ``AAVACK``: a reply is complete at its
      line ending in ACK;
    - ``SFR<ff.ff>`` (frequency, two digits, point, two digits) -> ``SOKFR``;
    - anything else -> no reply, as in the mock.

    The CR comes from the same repository (``SerialPortProxy/Library/TcpPortProxy.cs`` writes
    ``command + "\\r"`` and splits replies at CR; ``PhysicalPortProxy.cs`` sets ``NewLine = "\\r"``,
    9600 baud, 8 data bits, no parity and TWO stop bits, citing the vendor's MT3101_RS232_EXT_GB.pdf).
    ``truncate_next_reply()`` makes the next multi-line reply lose its terminal line, as a board
    reset mid-reply would.
    """

    FIRMWARE = "MT793V05.52"
    SFR = re.compile(r"SFR(\d{2}\.\d{2})")

    def __init__(self, link: LinkKind = "pty") -> None:
        super().__init__(link)
        self.received: list[str] = []
        self.frequency_hz: float | None = None
        self._truncate = False

    def truncate_next_reply(self) -> None:
        self._truncate = True

    def replies(self, line: str) -> list[str]:
        if line == "AAV":
            return [self.FIRMWARE, "AAVACK"]
        match = self.SFR.fullmatch(line)
        if match:
            self.frequency_hz = float(match.group(1))
            return ["SOKFR"]
        return []

    def _serve(self) -> None:
        pending = b""
        while True:
            pending += self.link.read(None)
            while b"\r" in pending:
                raw, _, pending = pending.partition(b"\r")
                line = raw.decode("ascii", "replace")
                self.received.append(line)
                lines = self.replies(line)
                if self._truncate and len(lines) > 1:
                    self._truncate = False
                    lines = lines[:-1]
                for reply in lines:
                    self.link.write(reply.encode("ascii") + b"\r")


# PSEM codes (ANSI C12.18-2006 4.2): the Identification request and the response codes used here.
IDENT = 0x20
OK, ERR, SNS = 0x00, 0x01, 0x02
STD_C1218 = 0x00  # <std>: ANSI C12.18
END_OF_LIST = 0x00


class C1218Responder(_Twin):
    """A C12.18 device's data link with the Identification service behind it.

    Link (ANSI C12.18-2006 4.7): every good packet is ACKed, a bad one (framing, CRC) NAKed; a
    packet carrying the same toggle bit as the last one accepted is a retransmission: ACKed and
    dropped. Octets outside packets are skipped. The last toggle bit is forgotten, and a partial
    request dropped, when the line stays quiet for ``channel_timeout_s`` (C12.18's channel traffic
    time-out, 6 s, after which a device is back in its base state) or a new TCP client connects,
    so that a new session may start with either toggle bit. Requests of several packets are
    reassembled (up to ``max_packets``); responses go out in packets of ``packet_size`` octets (64
    by default, as before a Negotiate), each retransmitted with the same toggle bit on a NAK or on
    no ACK within ``ack_timeout_s``, at most ``retries`` times.

    Service (4.2): Identification, request ``20H`` -> ``<ok><std><ver><rev><end-of-list>``, i.e.
    ``00 00 <version> <revision> 00`` with no feature list; the published MeteringSDK trace of a
    meter shows the same five octets for version 1, revision 0. ``20H`` with parameters -> <err>;
    any other request -> <sns> (service not supported): this twin implements one service, and
    none of the session rules (logon, security, the order of services).

    Knobs for the link's failure paths: ``corrupt_next_crc(n)`` sends the next n packets with a
    wrong CRC (one octet flipped), ``nak_next(n)`` NAKs the next n good packets as if they were
    broken, ``noise_before_next(data)`` writes ``data`` before the next packet. ``log`` records
    what happened on the line, as (event, octets): rx, rx-bad, rx-dup, tx, ack-in, nak-in,
    no-ack, noise.
    """

    def __init__(self, link: LinkKind = "pty", *, version: int = 1, revision: int = 0,
                 packet_size: int = DEFAULT_PACKET_SIZE, max_packets: int = 1, retries: int = 3,
                 ack_timeout_s: float = 2.0, channel_timeout_s: float = 6.0) -> None:
        super().__init__(link)
        self.version = version
        self.revision = revision
        self.packet_size = packet_size
        self.retries = retries
        self.ack_timeout_s = ack_timeout_s
        self.channel_timeout_s = channel_timeout_s
        self.log: list[tuple[str, bytes]] = []
        self.requests: list[bytes] = []
        self._max_packets = max_packets
        self._joiner = Reassembler(max_packets)
        self._session = 0  # the link's connection count when this session began
        self._rx = bytearray()
        self._toggle = False
        self._peer_toggle: bool | None = None
        self._pending: Packet | None = None
        self._corrupt = 0
        self._naks = 0
        self._noise = b""

    def corrupt_next_crc(self, count: int = 1) -> None:
        self._corrupt = count

    def nak_next(self, count: int = 1) -> None:
        self._naks = count

    def noise_before_next(self, data: bytes) -> None:
        self._noise = data

    def events(self) -> list[str]:
        return [event for event, _ in list(self.log)]

    def answer(self, request: bytes) -> bytes:
        if request == bytes((IDENT,)):
            return bytes((OK, STD_C1218, self.version, self.revision, END_OF_LIST))
        if request[:1] == bytes((IDENT,)):
            return bytes((ERR,))
        return bytes((SNS,))

    def _serve(self) -> None:
        while True:
            packet = self._pending or self._next(None, want_ack=False)
            self._pending = None
            if not isinstance(packet, Packet):
                continue
            try:
                request = self._joiner.add(packet)
            except FrameError as error:
                self.log.append(("rx-bad", str(error).encode()))
                continue
            if request is None:
                continue
            self.requests.append(request)
            for part in segment(self.answer(request), self.packet_size):
                self._deliver(dataclasses.replace(part, toggle=self._toggle))
                self._toggle = not self._toggle

    def _deliver(self, packet: Packet) -> None:
        frame = packet.encode()
        for _ in range(self.retries + 1):
            if self._noise:
                self.link.write(self._noise)
                self._noise = b""
            sent = frame
            if self._corrupt:
                self._corrupt -= 1
                sent = frame[:-2] + bytes((frame[-2] ^ 0xFF, frame[-1]))
            self.link.write(sent)
            self.log.append(("tx", sent))
            event = self._next(time.monotonic() + self.ack_timeout_s, want_ack=True)
            if event == ACK:
                self.log.append(("ack-in", b""))
                return
            if isinstance(event, Packet):  # the client moved on: our ACK'd packet's ACK was lost
                self._pending = event
                return
            self.log.append(("nak-in" if event == NAK else "no-ack", b""))

    def _next(self, deadline: float | None, want_ack: bool) -> Packet | int | None:
        """The next ACK/NAK octet (when ``want_ack``) or new good packet before ``deadline``;
        None when time runs out or a packet was refused."""
        rx = self._rx
        while True:
            while rx:
                if want_ack and rx[0] in (ACK, NAK):
                    octet = rx[0]
                    del rx[0]
                    return octet
                if rx[0] != STP:
                    self.log.append(("noise", bytes(rx[:1])))
                    del rx[0]
                    continue
                if len(rx) < HEADER_SIZE:
                    break
                try:
                    size = frame_size(bytes(rx[:HEADER_SIZE]), self.packet_size)
                except FrameError:
                    self.log.append(("noise", bytes(rx[:1])))
                    del rx[0]
                    continue
                if len(rx) < size:
                    break
                frame = bytes(rx[:size])
                del rx[:size]
                try:
                    packet = decode(frame, self.packet_size)
                except FrameError:
                    packet = None
                if packet is None or self._naks:
                    self._naks = max(0, self._naks - (packet is not None))
                    self.link.write(bytes((NAK,)))
                    self.log.append(("rx-bad", frame))
                    return None
                self.link.write(bytes((ACK,)))
                if packet.toggle == self._peer_toggle:
                    self.log.append(("rx-dup", frame))
                    continue
                self._peer_toggle = packet.toggle
                self.log.append(("rx", frame))
                return packet
            if deadline is None:  # between requests: a quiet line or a new client ends the session
                chunk = self.link.read(self.channel_timeout_s)
                if not chunk or self.link.connections != self._session:
                    rx.clear()  # a partial packet from before is dropped with the session
                    self._new_session()
                rx += chunk
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            rx += self.link.read(remaining)

    def _new_session(self) -> None:
        self._session = self.link.connections
        self._peer_toggle = None
        self._joiner = Reassembler(self._max_packets)
