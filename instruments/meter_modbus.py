"""Meter-under-test communications over Modbus TCP, through the meter type's register map.

Transient link faults (a timeout, a dropped connection, a meter answering "busy") are retried a
bounded number of times, each retry logged; what is still failing after that is one
``InstrumentError`` line. A read's worst case is (retries + 1) x (timeout + reconnect).
"""
from __future__ import annotations

import logging
import select
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU
from pymodbus.pdu.register_message import ReadHoldingRegistersRequest

from instruments.errors import InstrumentError, RangeError, ReplyError
from instruments.register_map import Register, RegisterMap
from instruments.registry import DriverSettings

log = logging.getLogger("bench.instruments")

ACKNOWLEDGE, DEVICE_BUSY = 5, 6
EXCEPTION_NAMES = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
                   4: "server device failure", ACKNOWLEDGE: "acknowledge", DEVICE_BUSY: "server device busy",
                   8: "memory parity error", 10: "gateway path unavailable", 11: "gateway target failed to respond"}


@dataclass(frozen=True)
class MeterIdentity:
    serial: str
    mac: str
    firmware: str


@dataclass
class _Asked:
    """A read sent on its meter's link, its reply not yet read (``read_at_once``)."""

    meter: ModbusMeter
    register: Register
    transaction_id: int
    link: socket.socket
    sent_at: float
    data: bytes = b""


class _Transient(Exception):
    """A failure another attempt may cure. ``may_have_acted``: the meter may have carried the
    request out, so a command must not be sent again."""

    def __init__(self, cause: str, *, may_have_acted: bool) -> None:
        super().__init__(cause)
        self.cause = cause
        self.may_have_acted = may_have_acted


class ModbusMeter:
    """One meter position. ``address`` is ``host:port``; ``device_id`` the Modbus unit id;
    ``retries`` how many times a transient failure is tried again (each try waits up to
    ``timeout_s``)."""

    ROLES = frozenset({"meter"})
    CAPABILITIES: frozenset = frozenset()
    MANUAL = ("Modbus Application Protocol Specification V1.1b3 and Modbus Messaging on TCP/IP Implementation "
              "Guide V1.0b (function 03, holding registers); the register map is the meter type's, in the profile")
    NO_LINK = "no Modbus TCP connection (refused or unreachable)"

    @classmethod
    def from_settings(cls, settings: DriverSettings) -> ModbusMeter:
        return cls(settings.address, settings.options["register_map"], name=settings.name,
                   device_id=int(settings.options.get("device_id", 1)), timeout_s=settings.timeout_s)

    def __init__(self, address: str, register_map: RegisterMap, *, name: str = "meter",
                 device_id: int = 1, timeout_s: float = 2.0, retries: int = 2) -> None:
        if retries < 0:
            raise InstrumentError(name, address, f"retries must be 0 or more, not {retries}")
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        self.name, self.address, self.device_id = name, address, device_id
        self.register_map = register_map
        self.timeout_s, self.retries = timeout_s, retries
        self._client = self._make_client()
        self._polled: tuple[socket.socket, select.poll] | None = None  # the connection and its poll object

    def _make_client(self) -> ModbusTcpClient | ModbusSerialClient:
        """The link to this meter: a TCP connection of its own."""
        host, _, port = self.address.rpartition(":")
        if not host or not port.isdigit():
            raise InstrumentError(self.name, self.address, "address must be host:port")
        return ModbusTcpClient(host, port=int(port), timeout=self.timeout_s, retries=0)

    def open(self) -> ModbusMeter:
        if not self._client.connected and not self._client.connect():
            raise InstrumentError(self.name, self.address, self.NO_LINK)
        return self

    @property
    def is_open(self) -> bool:
        """A connection is up now (after a transient fault the next request reconnects by itself)."""
        return self._client.connected

    def reopen(self) -> None:
        self.close()
        self.open()

    def close(self) -> None:
        self._client.close()

    def read(self, name: str) -> float | int | str:
        """Read and strictly decode one register; reads are idempotent, so every transient
        failure is retried."""
        register = self._register(name, writable=False)
        reply = self._transact("reading", register, idempotent=True,
                               request=lambda: self._client.read_holding_registers(
                                   register.address, count=register.count, device_id=self.device_id))
        if len(reply.registers) != register.count:
            raise ReplyError(self.name, self.address,
                             f"reading '{name}': {len(reply.registers)} registers, expected {register.count}")
        try:
            return register.decode(reply.registers)
        except ValueError as error:
            raise ReplyError(self.name, self.address, f"garbled '{name}' at {register.address}: {error}") from None

    def write(self, name: str, value: float | int | str) -> None:
        """Write a writable register (a command or a setting) through the register map.

        A write is a command, so it is sent again only when the meter certainly did not carry
        it out: no connection could be made, the connection was found closed before sending,
        or the meter answered exception 6 (busy: by the Modbus spec, not processed). After a
        timeout or a drop once sent it may have acted: that is an error at once, not a retry.
        """
        register = self._register(name, writable=True)
        try:
            words = register.encode(value)
        except ValueError as error:
            raise RangeError(self.name, self.address, f"'{name}' cannot hold {value!r}: {error}") from None
        self._transact("writing", register, idempotent=False, request=lambda: self._client.write_registers(
            register.address, words, device_id=self.device_id))

    @staticmethod
    def read_at_once(meters: Mapping[int, ModbusMeter], name: str,
                     now: Callable[[], float]) -> dict[int, tuple[float | int | str, float, float] | None]:
        """One register from every meter on one thread, every request sent before any reply is
        waited for: they are in flight together, as a pool of threads would have them, without
        the hand-offs between threads. Position -> (value, sent at, answered at) on ``now``'s clock;
        None where the link was not up and clean, or the reply was not a plain answer in time: the
        caller reads that one with ``read`` (reconnection, retries, the error in one line). A link
        a reply may still come on is closed first, so the reply is never taken for another's."""
        asked = {n: meter._ask(name, now) for n, meter in meters.items()}
        found: dict[int, tuple[float | int | str, float, float] | None] = {n: None for n in meters}
        waiting = {a.link: (n, a) for n, a in asked.items() if a is not None}
        deadline = time.monotonic() + max((m.timeout_s for m in meters.values()), default=0.0)
        while waiting and (left := deadline - time.monotonic()) > 0:
            for link in select.select(list(waiting), [], [], left)[0]:
                n, a = waiting[link]
                answered = a.meter._take(a, link)
                if not isinstance(answered, _Pending):
                    del waiting[link]
                    found[n] = None if answered is None else (answered, a.sent_at, now())
        for _, a in waiting.values():
            a.meter._client.close()  # no reply in time: a late one must never answer a later request
        return found

    def _ask(self, name: str, now: Callable[[], float]) -> _Asked | None:
        """Send a read of ``name`` without waiting; None where the link is not up or not clean, or the
        register map has no such register (``read`` then says so, for this position alone)."""
        try:
            register = self._register(name, writable=False)
        except InstrumentError:
            return None
        link = self._client.socket
        if not isinstance(link, socket.socket) or self._anything_waiting(link):
            return None
        request = ReadHoldingRegistersRequest(address=register.address, count=register.count, dev_id=self.device_id)
        request.transaction_id = self._client.transaction.getNextTID()
        sent_at = now()
        try:
            link.sendall(self._client.framer.buildFrame(request))
        except OSError:
            self._client.close()
            return None
        return _Asked(self, register, request.transaction_id, link, sent_at)

    def _take(self, asked: _Asked, link: socket.socket) -> float | int | str | None | _Pending:
        """What arrived on the link: the value, ``_PENDING`` for a part of the reply, or None for
        anything but a plain answer (a closed link, an exception reply, a garbled frame)."""
        try:
            chunk = link.recv(4096)
        except OSError:
            chunk = b""
        if not chunk:
            self._client.close()
            return None
        asked.data += chunk
        try:
            used, reply = self._client.framer.handleFrame(asked.data, self.device_id, asked.transaction_id)
        except ModbusIOException:
            self._client.close()
            return None
        if reply is None:
            asked.data = asked.data[used:]
            return _PENDING
        if used != len(asked.data):
            self._client.close()  # bytes beyond the reply: the link is not in step
            return None
        if reply.isError() or len(reply.registers) != asked.register.count:
            return None
        try:
            return asked.register.decode(reply.registers)
        except ValueError:
            return None

    def energy_wh(self) -> float:
        return float(self.read("energy_wh"))

    def identity(self) -> MeterIdentity:
        return MeterIdentity(str(self.read("serial")), str(self.read("mac")), str(self.read("firmware")))

    def _register(self, name: str, *, writable: bool) -> Register:
        register = self.register_map.get(name)
        if register is None or (writable and not register.writable):
            raise InstrumentError(self.name, self.address,
                                  f"register map has no {'writable ' if writable else ''}'{name}'")
        return register

    def _transact(self, verb: str, register: Register, *, idempotent: bool,
                  request: Callable[[], ModbusPDU]) -> ModbusPDU:
        """Run one request, trying transient failures again up to ``retries`` times when safe."""
        attempt = 0
        while True:
            attempt += 1
            try:
                reply = self._attempt(verb, register, request)
            except _Transient as failure:
                what = _what(verb, register)
                if failure.may_have_acted and not idempotent:
                    raise InstrumentError(self.name, self.address, f"{what}: {failure.cause}; "
                                          f"not retried: the meter may have carried it out") from None
                if attempt > self.retries:
                    raise InstrumentError(self.name, self.address, f"{what}: {failure.cause}; "
                                          f"gave up after {attempt} attempt{'s' * (attempt > 1)}") from None
                log.warning("%s @ %s: %s: %s; retry %d of %d", self.name, self.address, what, failure.cause,
                            attempt, self.retries)
                continue
            if reply.isError():
                code = reply.exception_code
                raise ReplyError(self.name, self.address,
                                 f"{_what(verb, register)}: exception {code} ({EXCEPTION_NAMES.get(code, 'unknown')})")
            return reply

    def _attempt(self, verb: str, register: Register, request: Callable[[], ModbusPDU]) -> ModbusPDU:
        """One request on a live connection; transient failures raise ``_Transient``."""
        self._reopen_if_stale(verb, register)
        if not self._client.connect():
            raise _Transient(self.NO_LINK, may_have_acted=False)
        try:
            reply = request()
        except ConnectionException:
            self._client.close()
            raise _Transient("the meter dropped the connection", may_have_acted=True) from None
        except ModbusIOException:
            self._client.close()  # a late reply must never be taken for the next request's answer
            raise _Transient(f"no valid reply within {self.timeout_s:g} s", may_have_acted=True) from None
        except ModbusException as error:
            raise InstrumentError(self.name, self.address, f"{_what(verb, register)}: {error}") from None
        if reply.isError():
            if reply.exception_code == DEVICE_BUSY:
                raise _Transient("exception 6 (server device busy)", may_have_acted=False)
            if reply.exception_code == ACKNOWLEDGE:
                raise _Transient("exception 5 (acknowledge: still busy with a long command)", may_have_acted=True)
        return reply

    def _reopen_if_stale(self, verb: str, register: Register) -> None:
        """Anything readable before a request is sent means a stale link: the meter closed it (a
        reboot) or a late reply is waiting. Close it, so the request goes out on a fresh one. (A serial
        client discards what is waiting on its line itself, before it sends.)"""
        link = self._client.socket
        if not isinstance(link, socket.socket) or not self._anything_waiting(link):
            return
        try:
            why = "a late reply was waiting" if link.recv(1, socket.MSG_PEEK) else "the meter closed the connection"
        except OSError:
            why = "the meter reset the connection"
        log.warning("%s @ %s: %s: %s; reconnecting", self.name, self.address, _what(verb, register), why)
        self._client.close()

    def _anything_waiting(self, link: socket.socket) -> bool:
        """Whether the link has anything to read now (bytes, its end, an error), asked before every
        request: a poll object kept for the connection costs half what a select does each time,
        which was most of this driver's time over pymodbus's own (about 2 % of a loopback read)."""
        if self._polled is None or self._polled[0] is not link:
            poller = select.poll()
            poller.register(link, select.POLLIN)
            self._polled = (link, poller)
        return bool(self._polled[1].poll(0))


class _Pending:
    """``_take``: the reply has not all arrived."""


_PENDING = _Pending()


def _what(verb: str, register: Register) -> str:
    """A request as messages name it; made only when one is written (a read costs a few µs in all)."""
    return f"{verb} '{register.name}' at {register.address}"
