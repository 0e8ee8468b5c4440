"""Exact-exchange tests in the style of PyMeasure's ``expected_protocol``: the driver's every
line is compared with the manual's, and the instrument's reply is the manual's. No twin takes
part, so a driver that drifts from the manual fails even if its twin drifts with it."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from instruments.transport import TransportError

Exchange = tuple[str | None, str | None]  # (line the driver sends, reply the instrument gives)
T = TypeVar("T")


class ScriptedLine:
    """A line transport that plays the instrument's side of a script, and fails on any deviation."""

    address = "scripted"

    def __init__(self, exchanges: Sequence[Exchange]) -> None:
        self.script = list(exchanges)
        self.sent: list[str] = []
        self._replies: list[str] = []

    def write(self, line: str) -> None:
        self.sent.append(line)
        assert self.script, f"driver sent {line!r} after the end of the script"
        expected, reply = self.script.pop(0)
        assert line == expected, f"driver sent {line!r}, the manual's exchange is {expected!r}"
        if reply is not None:
            self._replies.append(reply)

    def read(self) -> str:
        if not self._replies:
            if self.script and self.script[0][0] is None:  # a reply with no command: a further reply line
                return str(self.script.pop(0)[1])
            raise TransportError("no reply before the timeout (the script has none here)")
        return self._replies.pop(0)

    def close(self) -> None:
        pass


@contextmanager
def expected_protocol(instrument: T, exchanges: Sequence[Exchange], *, opened: bool = True) -> Iterator[T]:
    """Run the block against the script; every exchange must have been used at the end.

    ``opened``: the instrument is taken as open (no ``*IDN?``); with False, the block opens it and
    the script starts with the opening exchange.
    """
    line = ScriptedLine(exchanges)
    target: Any = instrument
    target._factory = lambda: line
    if opened:
        target._transport = line
    yield instrument
    assert not line.script, f"the driver never sent {[c for c, _ in line.script]}"
