"""Progress of a long point on the terminal, so a real five-minute dwell does not look hung."""
from __future__ import annotations

import time

import pytest

from bench.pytest_plugin.terminal import say


class ProgressLine:
    """At most one line every few seconds of wall time, so a stepped simulation stays quiet."""

    def __init__(self, config: pytest.Config, every_s: float = 3.0) -> None:
        self.config = config
        self.every_s = every_s
        self.last = time.monotonic()

    def __call__(self, name: str, detail: str, elapsed: float, expected: float) -> None:
        if time.monotonic() - self.last < self.every_s:
            return
        self.last = time.monotonic()
        say(self.config, f"  {name}: {detail}, {max(expected - elapsed, 0):.0f} s of {expected:.0f} s left")
