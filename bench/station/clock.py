"""The one clock all waiting goes through.

On hardware it is the wall clock. On the simulated bench it steps the simulated world, so a
five-minute dwell costs milliseconds, or sleeps a scaled fraction of the wall time.
"""
from __future__ import annotations

import time
from typing import Protocol

from instruments.sim_control import SimControlClient


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on this clock's own time line."""

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass on the bench."""

    def wall_s(self, seconds: float) -> float:
        """The wall time ``seconds`` on this clock take (none: a stepped simulation)."""


class WallClock:
    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    def wall_s(self, seconds: float) -> float:
        return seconds


class SimClock:
    """Simulated time through the simulator's control channel."""

    def __init__(self, control: SimControlClient) -> None:
        self.control = control
        self.mode, self.scale = control.mode()

    def now(self) -> float:
        return self.control.time()

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self.scale is None:
            self.control.advance(seconds)
        else:
            time.sleep(seconds / self.scale)

    def wall_s(self, seconds: float) -> float:
        return 0.0 if self.scale is None else seconds / self.scale
