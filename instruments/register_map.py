"""A meter's Modbus register map: names to addresses, types and scaling, as data.

The same map decodes on the bench and encodes in the simulated meter, so a firmware release
that moves or rescales a register shows up as a decoding difference, not a silent one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pymodbus.client.mixin import ModbusClientMixin

DATATYPE = ModbusClientMixin.DATATYPE
_NUMERIC = {
    "uint16": DATATYPE.UINT16, "int16": DATATYPE.INT16,
    "uint32": DATATYPE.UINT32, "int32": DATATYPE.INT32,
    "uint64": DATATYPE.UINT64, "int64": DATATYPE.INT64,
    "float32": DATATYPE.FLOAT32, "float64": DATATYPE.FLOAT64,
}
TYPES = (*_NUMERIC, "string")


@dataclass(frozen=True)
class Register:
    """One holding register (or run of registers). Value = raw x scale for numbers."""

    name: str
    address: int
    type: str
    scale: float = 1.0
    words: int = 1  # only strings choose their length
    writable: bool = False  # a command or setting the bench writes (key, ping, selections)

    @property
    def count(self) -> int:
        return self.words if self.type == "string" else _NUMERIC[self.type].value[1]

    def decode(self, registers: list[int]) -> float | int | str:
        """Raises ValueError for registers that do not hold this type (e.g. text that is not ASCII)."""
        if self.type == "string":
            data = b"".join(word.to_bytes(2, "big") for word in registers).rstrip(b"\x00 ")
            try:
                return data.decode("ascii")
            except UnicodeDecodeError:
                raise ValueError(f"not ASCII text: {data!r}") from None
        raw = ModbusClientMixin.convert_from_registers(registers, _NUMERIC[self.type])
        return raw * self.scale if self.scale != 1.0 else raw

    def resolution(self, value: float) -> float:
        """The smallest step this register can show near ``value``: the scale for integers,
        the spacing of adjacent floats for float types."""
        if self.type == "float32":
            return float(np.spacing(np.float32(value / self.scale))) * self.scale
        if self.type == "float64":
            return float(np.spacing(value / self.scale)) * self.scale
        return self.scale

    def encode(self, value: float | int | str) -> list[int]:
        if self.type == "string":
            data = str(value).encode("ascii", "replace")[: 2 * self.words].ljust(2 * self.words, b"\x00")
            return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
        raw = value / self.scale
        if not self.type.startswith("float"):
            raw = int(round(raw))
        return ModbusClientMixin.convert_to_registers(raw, _NUMERIC[self.type])


RegisterMap = dict[str, Register]


def span(register_map: RegisterMap) -> int:
    """Number of registers from address 0 to the end of the last register."""
    return max(r.address + r.count for r in register_map.values())
