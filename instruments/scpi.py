"""SCPI instruments as a handful of declared controls with validators (PyMeasure style).

Every set command is followed by a check of the instrument's error queue; every reply is parsed
strictly, so a garbled line is an error naming the instrument, never a wrong number.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from instruments.errors import InstrumentError, RangeError, ReplyError
from instruments.transport import LineTransport, TransportError

T = TypeVar("T")
# SCPI replies are ASCII: [0-9], not \d, which also matches other scripts' digits.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_ERROR = re.compile(r'([+-]?[0-9]+),"(.*)"', re.S)


OVER_RANGE = 9.9e37  # SCPI-99 returns 9.91E37 for a measurement over range or not a number


def parse_float(reply: str) -> float:
    if not _NUMBER.fullmatch(reply.strip()):
        raise ValueError("not a number")
    value = float(reply)
    if abs(value) >= OVER_RANGE:
        raise ValueError("over range: the instrument reports the value outside its measuring range")
    return value


def parse_floats(reply: str) -> list[float]:
    """A comma-separated list of numbers, every one strict."""
    return [parse_float(field) for field in reply.split(",")]


def parse_int(reply: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", reply.strip()):
        raise ValueError("not a whole number")
    return int(reply)


def parse_bool(reply: str) -> bool:
    token = reply.strip().upper()
    if token not in ("0", "1", "ON", "OFF"):
        raise ValueError("not a boolean")
    return token in ("1", "ON")


class ScpiInstrument:
    """A text-protocol instrument over any line transport: open, identify, query, set, check.

    What differs between vendors is declared, not patched: ``IDN_PATTERN`` is the shape of the
    instrument's ``*IDN?`` reply (fields as its manual gives them), ``ERROR_QUERY`` the query that
    reads its error queue (None: the instrument has none, and ``*OPC?`` confirms each setting),
    and ``parse_error`` turns that query's reply into (code, message).
    """

    IDN_PATTERN = re.compile(r"[\x20-\x7e]+(?:,[\x20-\x7e]*){3}")  # IEEE 488.2: maker,model,serial,firmware
    ERROR_QUERY: str | None = "SYST:ERR?"
    CLEAR_ON_OPEN: str | None = "*CLS"

    def __init__(self, name: str, transport_factory: Callable[[], LineTransport], address: str,
                 ranges: dict[str, tuple[float, float]] | None = None) -> None:
        self.name = name
        self.address = address
        self.idn = ""
        self.ranges: dict[str, tuple[float, float]] = dict(ranges or {})
        self._factory = transport_factory
        self._transport: LineTransport | None = None

    def error(self, message: str) -> InstrumentError:
        return InstrumentError(self.name, self.address, message)

    def open(self) -> ScpiInstrument:
        """Connect and identify: opening a dead port 'succeeds', so *IDN? proves the link."""
        if self._transport is None:
            try:
                self._transport = self._factory()
            except TransportError as error:
                raise self.error(str(error)) from None
            try:
                self.idn = self.query("*IDN?")
            except InstrumentError:
                self.close()
                raise
            if not self.IDN_PATTERN.fullmatch(self.idn):
                self.close()
                raise ReplyError(self.name, self.address, f"garbled reply to '*IDN?': {self.idn!r}")
            if self.CLEAR_ON_OPEN:
                self.write(self.CLEAR_ON_OPEN)
        return self

    @property
    def is_open(self) -> bool:
        return self._transport is not None

    def reopen(self) -> None:
        self.close()
        self.open()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def _link(self, command: str) -> LineTransport:
        if self._transport is None:
            raise self.error(f"not open (cannot send '{command}')")
        return self._transport

    def write(self, command: str) -> None:
        transport = self._link(command)
        try:
            transport.write(command)
        except TransportError as error:
            self.close()
            raise self.error(f"'{command}': {error}") from None

    def query(self, command: str) -> str:
        """One command, one reply. After a failed read the link is closed: a late reply left in
        the buffer would otherwise be taken as the answer to the next query."""
        self.write(command)
        return self.read_reply(command)

    def read_reply(self, command: str) -> str:
        """The next reply line to ``command`` (already written); a failed read closes the link."""
        transport = self._link(command)  # open: a write that fails closes the link and raises
        try:
            return transport.read()
        except TransportError as error:
            self.close()
            raise self.error(f"'{command}': {error}") from None

    def query_as(self, command: str, parse: Callable[[str], T]) -> T:
        reply = self.query(command)
        try:
            return parse(reply)
        except ValueError as error:
            raise ReplyError(self.name, self.address, f"garbled reply to '{command}': {reply!r} ({error})") from None

    def check(self, control_name: str, value: float) -> None:
        """Refuse a value for a declared control without sending anything."""
        getattr(type(self), control_name).check(self, value)

    def set(self, command: str) -> None:
        """Send a command and make sure the instrument accepted it.

        The command and its error query go as one compound line (the query from the root, ``;:``):
        one write and one reply, where two small writes would wait on TCP delayed ACKs (40 ms each
        on Linux). Without an error queue, ``*OPC?`` at least proves the command was read.
        """
        if self.ERROR_QUERY is None:
            if self.query(f"{command};*OPC?").strip() != "1":
                raise ReplyError(self.name, self.address, f"no completion after '{command}'")
            return
        self._check_errors(command, self.query(f"{command};:{self.ERROR_QUERY.lstrip(':')}"))

    def parse_error(self, reply: str) -> tuple[int, str]:
        """SCPI-99 ``<code>,"<message>"`` (ValueError otherwise); a vendor overrides its own shape."""
        match = _ERROR.fullmatch(reply.strip())
        if not match:
            raise ValueError("not an error-queue entry")
        return int(match.group(1)), match.group(2)

    def _check_errors(self, after: str, reply: str) -> None:
        query = self.ERROR_QUERY or ""
        errors = []
        for _ in range(16):
            try:
                code, message = self.parse_error(reply)
            except ValueError:
                raise ReplyError(self.name, self.address, f"garbled reply to '{query}': {reply!r}") from None
            if code == 0:
                break
            errors.append(f"{code} {message}")
            reply = self.query(query)
        if errors:
            raise self.error(f"rejected '{after}': {'; '.join(errors)}")


class Control(Generic[T]):
    """A declared instrument setting: the query that reads it, the command that sets it, its range.

    The range is the driver's (the instrument's specification), narrowed by the profile through
    ``instrument.ranges[name]`` (never widened). Values outside it are refused before anything is sent.
    """

    def __init__(self, query: str, command: str | None, doc: str, *, parse: Callable[[str], T],
                 low: float | None = None, high: float | None = None, unit: str = "",
                 fmt: str = "{:.6g}") -> None:
        self.query, self.command, self.__doc__ = query, command, doc
        self.parse, self.low, self.high, self.unit, self.fmt = parse, low, high, unit, fmt
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def limits(self, instrument: ScpiInstrument) -> tuple[float, float] | None:
        low = -math.inf if self.low is None else self.low
        high = math.inf if self.high is None else self.high
        if self.name in instrument.ranges:
            narrow_low, narrow_high = instrument.ranges[self.name]
            low, high = max(low, narrow_low), min(high, narrow_high)
        return None if (low, high) == (-math.inf, math.inf) else (low, high)

    def check(self, instrument: ScpiInstrument, value: Any) -> None:
        if self.command is None:
            raise instrument.error(f"{self.name} is read-only")
        if not isinstance(value, bool) and not (isinstance(value, (int, float)) and math.isfinite(value)):
            raise RangeError(instrument.name, instrument.address, f"{self.name} {value!r} is not a finite number")
        bounds = self.limits(instrument)
        if bounds and not bounds[0] <= value <= bounds[1]:
            raise RangeError(instrument.name, instrument.address,
                             f"{self.name} {value:g} {self.unit} is outside the instrument range "
                             f"{bounds[0]:g}..{bounds[1]:g} {self.unit}")

    def __get__(self, instrument: ScpiInstrument | None, owner: type) -> Any:
        if instrument is None:
            return self
        return instrument.query_as(self.query, self.parse)

    def __set__(self, instrument: ScpiInstrument, value: Any) -> None:
        self.check(instrument, value)
        text = ("ON" if value else "OFF") if isinstance(value, bool) else self.fmt.format(value)
        instrument.set(f"{self.command} {text}")


def control(query: str, command: str | None, doc: str, **kwargs: Any) -> Any:
    """Declare a control (typed as Any so instances read as plain attributes)."""
    kwargs.setdefault("parse", parse_float)
    return Control(query, command, doc, **kwargs)
