"""Meter-under-test communications over Modbus TCP, through the meter type's register map."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from instruments.errors import InstrumentError, ReplyError
from instruments.register_map import RegisterMap


@dataclass(frozen=True)
class MeterIdentity:
    serial: str
    mac: str
    firmware: str


class ModbusMeter:
    """One meter position. ``address`` is ``host:port``; ``device_id`` the Modbus unit id."""

    def __init__(self, address: str, register_map: RegisterMap, *, name: str = "meter",
                 device_id: int = 1, timeout_s: float = 2.0) -> None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise InstrumentError(name, address, "address must be host:port")
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        self.name, self.address, self.device_id = name, address, device_id
        self.register_map = register_map
        self._client = ModbusTcpClient(host, port=int(port), timeout=timeout_s, retries=0)

    def open(self) -> "ModbusMeter":
        if not self._client.connected and not self._client.connect():
            raise InstrumentError(self.name, self.address, "no Modbus TCP connection (refused or unreachable)")
        return self

    def close(self) -> None:
        self._client.close()

    def read(self, name: str) -> float | int | str:
        register = self.register_map.get(name)
        if register is None:
            raise InstrumentError(self.name, self.address, f"register map has no '{name}'")
        try:
            reply = self._client.read_holding_registers(register.address, count=register.count,
                                                        device_id=self.device_id)
        except ModbusException as error:
            raise InstrumentError(self.name, self.address, f"reading '{name}': {error}") from None
        if reply.isError():
            raise ReplyError(self.name, self.address, f"reading '{name}' at {register.address}: exception {reply}")
        if len(reply.registers) != register.count:
            raise ReplyError(self.name, self.address, f"reading '{name}': {len(reply.registers)} registers, expected {register.count}")
        try:
            return register.decode(reply.registers)
        except ValueError as error:
            raise ReplyError(self.name, self.address, f"garbled '{name}' at {register.address}: {error}") from None

    def write(self, name: str, value: float | int | str) -> None:
        """Write a writable register (a command or a setting) through the register map."""
        register = self.register_map.get(name)
        if register is None or not register.writable:
            raise InstrumentError(self.name, self.address, f"register map has no writable '{name}'")
        try:
            reply = self._client.write_registers(register.address, register.encode(value), device_id=self.device_id)
        except ModbusException as error:
            raise InstrumentError(self.name, self.address, f"writing '{name}': {error}") from None
        if reply.isError():
            raise ReplyError(self.name, self.address, f"writing '{name}' at {register.address}: exception {reply}")

    def energy_wh(self) -> float:
        return float(self.read("energy_wh"))

    def identity(self) -> MeterIdentity:
        return MeterIdentity(str(self.read("serial")), str(self.read("mac")), str(self.read("firmware")))
