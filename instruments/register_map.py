"""A meter's Modbus register map: names to addresses, types and scaling, as data.

The same map decodes on the bench and encodes in the simulated meter, so a firmware release
that moves or rescales a register shows up as a decoding difference, not a silent one.
"""
from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

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
# pymodbus's own struct format and word count per type, looked up once: a read decodes in a
# single unpack of its big-endian words, as ``convert_from_registers`` does (word order "big"),
# and a value encodes in a single pack, as ``convert_to_registers`` does.
_WORDS = {name: datatype.value[1] for name, datatype in _NUMERIC.items()}
_VALUE_FORMAT = {name: struct.Struct(">" + datatype.value[0]) for name, datatype in _NUMERIC.items()}
_WORDS_FORMAT = {count: struct.Struct(f">{count}H") for count in set(_WORDS.values())}


@dataclass(frozen=True)
class Register:
    """One holding register (or run of registers). Value = raw x scale for numbers."""

    name: str
    address: int
    type: str
    scale: float = 1.0
    words: int = 1  # only strings choose their length
    writable: bool = False  # a command or setting the bench writes (key, ping, selections)

    @cached_property
    def count(self) -> int:
        """Registers it spans (asked on every read: worked out once)."""
        return self.words if self.type == "string" else _WORDS[self.type]

    def decode(self, registers: Sequence[int]) -> float | int | str:
        """Strict: words that do not hold this type raise ValueError (a register is never read as
        NaN, inf or unprintable text, which would pass silently into a result)."""
        words = list(registers)
        if len(words) != self.count:
            raise ValueError(f"expected {self.count} 16-bit words, got {words!r}")
        if self.type == "string":
            if not all(isinstance(w, int) and 0 <= w <= 0xFFFF for w in words):
                raise ValueError(f"expected {self.count} 16-bit words, got {words!r}")
            return _text(words)
        try:  # packing as 16-bit words refuses anything else (a float, a negative, 65536), as the check above
            (raw,) = _VALUE_FORMAT[self.type].unpack(_WORDS_FORMAT[len(words)].pack(*words))
        except struct.error:
            raise ValueError(f"expected {self.count} 16-bit words, got {words!r}") from None
        value = raw * self.scale if self.scale != 1.0 else raw
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value}")
        return value

    def resolution(self, value: float) -> float:
        """The smallest step this register can show near ``value``: the scale for integers,
        the spacing of adjacent floats for float types."""
        if self.type == "float32":
            return abs(float(np.spacing(np.float32(value / self.scale))) * self.scale)
        if self.type == "float64":
            return abs(float(np.spacing(value / self.scale)) * self.scale)
        return abs(self.scale)

    def encode(self, value: float | int | str) -> list[int]:
        """Raises ValueError for a value this register cannot hold (non-finite, out of range,
        unprintable text); text longer than the register is cut to fit."""
        if self.type == "string":
            text = str(value)
            if not all(" " <= char <= "~" for char in text):
                raise ValueError(f"not printable ASCII text: {text!r}")
            data = text.encode("ascii")[: 2 * self.words].ljust(2 * self.words, b"\x00")
            return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
        if isinstance(value, str):  # as dividing it by the scale would have said
            raise TypeError(f"{self.type} holds a number, not text: {value!r}")
        raw = value / self.scale
        if not math.isfinite(raw):
            raise ValueError(f"not a finite number: {value}")
        if not self.type.startswith("float"):
            raw = int(round(raw))
        try:  # as pymodbus's convert_to_registers packs it (word order "big"), with the formats looked up once
            return list(_WORDS_FORMAT[self.count].unpack(_VALUE_FORMAT[self.type].pack(raw)))
        except (OverflowError, struct.error):
            raise ValueError(f"{value} is out of range for {self.type} with scale {self.scale}") from None


def _text(words: list[int]) -> str:
    """Printable ASCII, padded at the end with NULs or spaces."""
    data = b"".join(word.to_bytes(2, "big") for word in words).rstrip(b"\x00 ")
    if not all(0x20 <= byte <= 0x7E for byte in data):
        raise ValueError(f"not ASCII text: {data!r} (printable characters and NUL padding only)")
    return data.decode("ascii")


RegisterMap = dict[str, Register]


def span(register_map: RegisterMap) -> int:
    """Number of registers from address 0 to the end of the last register."""
    return max(r.address + r.count for r in register_map.values())
