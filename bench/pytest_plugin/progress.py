"""Progress of a long step (a gated point, a creep or starting count, the payload, a demand
interval): an event every time, and on a terminal without the live display, a line every few
seconds of wall time, so a real five-minute dwell does not look hung."""
from __future__ import annotations

import time

import pytest

from bench.operator.events import STEP, EventStream
from bench.pytest_plugin.terminal import say


class ProgressLine:
    """At most one line every few seconds of wall time, so a stepped simulation stays quiet."""

    def __init__(self, config: pytest.Config, events: EventStream, every_s: float = 3.0) -> None:
        self.config, self.events = config, events
        self.every_s = every_s
        self.last = time.monotonic()

    def __call__(self, name: str, detail: str, elapsed: float, expected: float) -> None:
        self.events.emit(STEP, name=name, detail=detail, elapsed_s=elapsed, expected_s=expected)
        if time.monotonic() - self.last < self.every_s:
            return
        self.last = time.monotonic()
        say(self.config, f"  {name}: {detail}, {max(expected - elapsed, 0):.0f} s of {expected:.0f} s left")
