"""Driver errors: one line, naming the instrument and its address."""
from __future__ import annotations


class InstrumentError(RuntimeError):
    """An instrument is unreachable, rejected a command, or replied with something unusable."""

    def __init__(self, name: str, address: str, message: str) -> None:
        super().__init__(f"{name} @ {address}: {message}")
        self.instrument = name
        self.address = address


class ReplyError(InstrumentError):
    """A reply that does not parse strictly (garbled line, wrong type, missing field)."""


class RangeError(InstrumentError):
    """A setpoint outside the instrument's range, refused before anything is sent."""
