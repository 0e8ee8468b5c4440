"""A Modbus TCP server of holding registers: one asyncio Protocol per connection.

Written from the public specifications, "Modbus Application Protocol Specification V1.1b3"
(functions 03 read holding registers, 06 write single register, 16 write multiple registers;
exception codes 01 illegal function, 02 illegal data address, 03 illegal data value, 04 server
device failure, 06 server device busy) and "Modbus Messaging on TCP/IP Implementation Guide
V1.0b" (the MBAP header: transaction id echoed, protocol id 0, length of what follows, unit id).
It exists because a general server (pymodbus's) spends about 100 µs of CPU a request in tasks,
loop iterations and two sends a reply, and the simulated meters share the bench's process; here
a request is parsed, answered and written in one ``data_received`` call, one write a reply.

Requests are framed by the MBAP length, across reads and several to a read, and answered in
order. The checks go as the specification's request processing does (function, then the data
values, then the address), after the unit id: a request for another unit is answered with
exception 04, as the simulator's earlier server (pymodbus with one device) answered it. A frame
whose protocol id is not 0 is not Modbus: it is discarded unanswered. A length the MBAP header
cannot hold (below 2 or above 254) leaves nothing to frame by, so the connection is closed.
"""
from __future__ import annotations

import asyncio
import socket
import struct
from typing import Protocol

READ_HOLDING, WRITE_SINGLE, WRITE_MULTIPLE = 3, 6, 16
ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE, DEVICE_FAILURE, DEVICE_BUSY = 1, 2, 3, 4, 6
MAX_READ, MAX_WRITE = 125, 123  # registers in one request: what a 253-byte PDU holds
MAX_LENGTH = 254  # the MBAP length field at most: unit id and a 253-byte PDU

_MBAP = struct.Struct(">HHHB")  # transaction id, protocol id, length (unit id and PDU), unit id
_FIELDS = struct.Struct(">HH")  # address, then quantity or value
_EXCEPTION = struct.Struct(">HHHBBB")
_WRITTEN = struct.Struct(">HHHBBHH")  # a write's reply: its function, address, and value or quantity
_READ = [struct.Struct(f">HHHBBB{n}H") for n in range(MAX_READ + 1)]  # a read's reply, by register count

Answer = list[int] | int | None  # the registers read, an exception code, or None: written
_Request = tuple[int, int, int, "list[int] | None"]  # function, address, count, the words a write carries


class Unit(Protocol):
    """What the server serves: one unit's holding registers, 0 to ``size`` - 1."""

    unit_id: int
    size: int

    @property
    def latency_s(self) -> float:
        """The wall time the unit takes to take a request in before it answers."""

    def heard(self) -> bool:
        """A request arrived (counted whether answered or not); False: never answer it."""

    def answer(self, function: int, address: int, count: int, words: list[int] | None) -> Answer:
        """Carry out a request the server has checked: function 3 (``words`` None) or a write."""


class Connection(asyncio.Protocol):
    """One client's connection: frames requests out of the byte stream and answers each in order.
    While a unit with a latency takes a request in, later requests wait in the buffer."""

    def __init__(self, unit: Unit, connections: set[Connection]) -> None:
        self._unit, self._connections = unit, connections
        self._buffer = b""
        self._pending: asyncio.TimerHandle | None = None  # a request's answer, once the unit's latency is out
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        if self._pending is not None:
            self._pending.cancel()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._pending is None:
            self._serve()

    def _serve(self) -> None:
        """Answer every whole frame in the buffer, up to one that must wait out the latency."""
        buffer, start = self._buffer, 0
        while len(buffer) - start >= 7:
            transaction, protocol, length, unit_id = _MBAP.unpack_from(buffer, start)
            if not 2 <= length <= MAX_LENGTH:
                assert self.transport is not None
                self.transport.close()
                self._buffer = b""
                return
            end = start + 6 + length
            if len(buffer) < end:
                break
            pdu, start = buffer[start + 7:end], end
            if protocol != 0 or not self._unit.heard():
                continue
            request = _check(self._unit, unit_id, pdu)
            if isinstance(request, int):
                self._send(_exception(transaction, unit_id, pdu[0], request))
            elif self._unit.latency_s > 0:
                self._buffer = buffer[start:]
                self._pending = asyncio.get_running_loop().call_later(self._unit.latency_s, self._answer_late,
                                                                      transaction, unit_id, request)
                return
            else:
                self._send(_reply(self._unit, transaction, unit_id, request))
        self._buffer = buffer[start:]

    def _answer_late(self, transaction: int, unit_id: int, request: _Request) -> None:
        """The unit has taken the request in (the loop served everyone else meanwhile): its answer,
        then the requests that waited behind it."""
        self._pending = None
        self._send(_reply(self._unit, transaction, unit_id, request))
        self._serve()

    def _send(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)


def _check(unit: Unit, unit_id: int, pdu: bytes) -> _Request | int:
    """The request a PDU makes, or the exception code it is answered with."""
    function = pdu[0]
    if unit_id != unit.unit_id:
        return DEVICE_FAILURE
    if function not in (READ_HOLDING, WRITE_SINGLE, WRITE_MULTIPLE):
        return ILLEGAL_FUNCTION
    if len(pdu) < 5:
        return ILLEGAL_VALUE
    address, quantity = _FIELDS.unpack_from(pdu, 1)
    words: list[int] | None = None
    if function == READ_HOLDING:
        if not 1 <= quantity <= MAX_READ:
            return ILLEGAL_VALUE
    elif function == WRITE_SINGLE:
        words, quantity = [quantity], 1
    else:
        if not (1 <= quantity <= MAX_WRITE and len(pdu) >= 6 and pdu[5] == 2 * quantity
                and len(pdu) >= 6 + 2 * quantity):
            return ILLEGAL_VALUE
        words = list(struct.unpack_from(f">{quantity}H", pdu, 6))
    if address + quantity > unit.size:
        return ILLEGAL_ADDRESS
    return function, address, quantity, words


def _reply(unit: Unit, transaction: int, unit_id: int, request: _Request) -> bytes:
    function, address, count, words = request
    answer = unit.answer(function, address, count, words)
    if isinstance(answer, int):
        return _exception(transaction, unit_id, function, answer)
    if answer is None:  # a write: its function, address, and the value (06) or quantity (16) written
        return _WRITTEN.pack(transaction, 0, 6, unit_id, function, address,
                             words[0] if function == WRITE_SINGLE and words else count)
    return _READ[count].pack(transaction, 0, 3 + 2 * count, unit_id, function, 2 * count, *answer)


def _exception(transaction: int, unit_id: int, function: int, code: int) -> bytes:
    return _EXCEPTION.pack(transaction, 0, 3, unit_id, function | 0x80, code)


class Listener:
    """One unit served on one port, with its open connections."""

    def __init__(self, server: asyncio.Server, connections: set[Connection]) -> None:
        self._server, self._connections = server, connections
        self.port: int = server.sockets[0].getsockname()[1]

    def drop_connections(self) -> None:
        """Shut down every open connection now, from any thread: the clients see the drop at
        once, and the loop then closes the transports on end of file (as a rebooting device does)."""
        for connection in tuple(self._connections):
            if connection.transport is not None:
                try:
                    connection.transport.get_extra_info("socket").shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    async def close(self) -> None:
        self._server.close()
        for connection in tuple(self._connections):
            if connection.transport is not None:
                connection.transport.close()
        await self._server.wait_closed()


async def listen(unit: Unit, host: str = "127.0.0.1", port: int = 0) -> Listener:
    """Serve ``unit`` on ``host:port`` (0: a free port) from the running loop."""
    connections: set[Connection] = set()
    server = await asyncio.get_running_loop().create_server(lambda: Connection(unit, connections), host, port)
    return Listener(server, connections)
