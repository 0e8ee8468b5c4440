"""What keeps the bench safe on every path, apart from the bench itself: the refusal of a setpoint
that is not a finite number, making one output safe (its lost link reopened once), and the exit
signals, held while outputs switch off and otherwise turned into an interrupt that unwinds through
safe state (the safety section of the README).
"""
from __future__ import annotations

import contextlib
import math
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, Protocol, TypeAlias

from bench.metrology.stimulus import Stimulus
from bench.station.profile import MeterType
from instruments.errors import InstrumentError


class SafetyError(RuntimeError):
    """The bench refused to energise, or could not confirm an output is safe."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (the operator's terminal closed), turned into an interrupt so every exit
    path unwinds through safe state."""


TERMINATING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
REPEAT_GRACE_S = 5.0  # a second Ctrl-C this soon after the first is the same request to stop

# What ``signal.signal`` takes and returns: a function, SIG_DFL or SIG_IGN, or None (not set from Python).
SignalHandler: TypeAlias = "Callable[[int, FrameType | None], Any] | int | signal.Handlers | None"


class Output(Protocol):
    """An instrument that can energise the board (the source, the load)."""

    def safe_state(self) -> None: ...
    def reopen(self) -> None: ...


def refuse_non_finite(stimulus: Stimulus, mt: MeterType) -> None:
    """Every comparison with NaN is false: a NaN setpoint or rating would pass every limit below.
    Whatever built them (a profile, a table, a lab's own code), refuse any that is not finite."""
    values = {"stimulus voltage_v": stimulus.voltage_v, "stimulus current_a": stimulus.current_a,
              "stimulus phase_deg": stimulus.phase_deg, "stimulus frequency_hz": stimulus.frequency_hz,
              "stimulus RMS voltage": stimulus.rms_voltage_v, "stimulus RMS current": stimulus.rms_current_a,
              **{f"stimulus circuit {k} current": i for k, i in enumerate(stimulus.circuit_currents_a, start=1)},
              "meter_type.max_voltage_v": mt.max_voltage_v, "meter_type.max_current_a": mt.max_current_a}
    for name, value in values.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value)):
            raise SafetyError(f"refusing to energise: {name} is {value!r}, not a finite number")
    if stimulus.voltage_v < 0 or stimulus.current_a < 0 or min(stimulus.circuit_currents_a, default=0.0) < 0:
        raise SafetyError(f"refusing to energise: negative setpoint ({stimulus.voltage_v!r} V, "
                          f"{stimulus.current_a!r} A)")


def make_output_safe(instrument: Output) -> None:
    """Switch one output off and read it back; a lost link is reopened once and tried again."""
    try:
        instrument.safe_state()
    except InstrumentError:
        instrument.reopen()
        instrument.safe_state()


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP while outputs are being switched off (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, *TERMINATING_SIGNALS})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
