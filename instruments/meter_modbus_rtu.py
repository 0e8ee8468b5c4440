"""Meters on one shared RS-485 line, Modbus RTU, each addressed by its unit id.

Every position on a line shares one serial port: a position's address is ``PORT@UNIT`` (the
port as pyserial opens it, and the meter's unit id on that line). A line carries one
transaction at a time, so the positions on it are read in order (the profile's ``[meters]
read_in_order``); the line's lock keeps a stray concurrent caller from interleaving frames.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient
from pymodbus.pdu import ModbusPDU

from instruments.errors import InstrumentError
from instruments.meter_modbus import ModbusMeter
from instruments.register_map import Register, RegisterMap
from instruments.registry import DriverSettings

BAUDRATE = 19200  # the common RS-485 meter setting (8N1); a pseudo-terminal ignores it


@dataclass
class _Line:
    """One serial port and the meters open on it: the port closes when the last of them does."""

    client: ModbusSerialClient
    lock: threading.Lock = field(default_factory=threading.Lock)
    users: set[int] = field(default_factory=set)


_LINES: dict[str, _Line] = {}
_LINES_LOCK = threading.Lock()


class ModbusRtuMeter(ModbusMeter):
    """One meter on a shared Modbus RTU line; ``address`` is ``PORT@UNIT``."""

    MANUAL = ("Modbus Application Protocol Specification V1.1b3 and Modbus over Serial Line Specification and "
              "Implementation Guide V1.02 (RTU framing; function 03, holding registers); the register map is the "
              "meter type's, in the profile")
    NO_LINK = "the serial line does not open"

    @classmethod
    def from_settings(cls, settings: DriverSettings) -> ModbusRtuMeter:
        return cls(settings.address, settings.options["register_map"], name=settings.name,
                   timeout_s=settings.timeout_s)

    def __init__(self, address: str, register_map: RegisterMap, *, name: str = "meter", timeout_s: float = 2.0,
                 retries: int = 2) -> None:
        port, _, unit = address.rpartition("@")
        if not port or not unit.isdigit() or not 1 <= int(unit) <= 247:
            raise InstrumentError(name, address, "address must be PORT@UNIT, the unit id 1 to 247")
        self.port = port
        super().__init__(address, register_map, name=name, device_id=int(unit), timeout_s=timeout_s, retries=retries)

    def _make_client(self) -> ModbusSerialClient:
        self._shared = self._line()
        return self._shared.client

    def _line(self) -> _Line:
        """The port's line, this meter counted among its users (opened by the first of them)."""
        with _LINES_LOCK:
            line = _LINES.get(self.port)
            if line is None:
                client = ModbusSerialClient(self.port, framer=FramerType.RTU, baudrate=BAUDRATE,
                                            timeout=self.timeout_s, retries=0)
                line = _LINES[self.port] = _Line(client)
            line.users.add(id(self))
            return line

    def open(self) -> ModbusRtuMeter:
        self._shared = self._line()
        self._client = self._shared.client
        super().open()
        return self

    def close(self) -> None:
        """Leave the line; the port closes with its last meter."""
        with _LINES_LOCK:
            line = self._shared
            line.users.discard(id(self))
            if not line.users and _LINES.get(self.port) is line:
                del _LINES[self.port]
                line.client.close()

    def _transact(self, verb: str, register: Register, *, idempotent: bool,
                  request: Callable[[], ModbusPDU]) -> ModbusPDU:
        with self._shared.lock:
            return super()._transact(verb, register, idempotent=idempotent, request=request)
