"""The meters' test mode over a run: entered once the meters are identified, verified by reading
the register back, and left at the end of the run and on every exit path, after safe state.

``PulseOutputs`` is the one answer to "which Kt does this test output count with now": gating,
the dwell planner, counting and the record all ask the bench for it.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bench.station.meter_reads import MeterReads
from bench.station.profile import MeterType, TestMode
from instruments.errors import InstrumentError


@dataclass(frozen=True)
class PulseOutputs:
    """The Kt of each test output in force, and whether that is the meters' test mode."""

    kt: dict[str, float]
    test_mode: bool = False

    @classmethod
    def of(cls, meter_type: MeterType, test_mode: bool) -> PulseOutputs:
        mode = meter_type.test_mode
        if test_mode and mode is not None:
            return cls(mode.kt(meter_type.test_outputs), True)
        return cls(dict(meter_type.test_outputs))


@dataclass
class TestModeState:
    """What the run did with the meters' test mode, for the record: whether the meter type
    offers it, whether the run used it, and whether every meter was seen back in normal mode."""

    __test__ = False  # a data class, not a pytest test class
    offered: bool
    used: bool = False
    left: bool = False
    not_left: dict[int, str] = field(default_factory=dict)  # position -> why it may still be in test mode

    def to_dict(self) -> dict[str, Any]:
        return {"offered": self.offered, "used": self.used, "left": self.left,
                "not_left": {str(n): why for n, why in self.not_left.items()}}


class Meter(Protocol):
    address: str

    @property
    def is_open(self) -> bool: ...

    def reopen(self) -> None: ...

    def read(self, name: str) -> float | int | str: ...

    def write(self, name: str, value: float | int | str) -> None: ...


def meters_into_test_mode(meters: Mapping[int, Meter], reads: MeterReads, mode: TestMode) -> None:
    """Every meter into test mode, each read back: a meter that does not report it would be
    gated with a Kt it is not pulsing at, so the run stops (InstrumentError)."""
    for meter in meters.values():
        meter.write(mode.register, TestMode.ENTER)
    for number, why in not_in_test_mode(reads, mode).items():
        raise InstrumentError(f"position {number}", meters[number].address,
                              f"wrote {TestMode.ENTER} to '{mode.register}' to enter test mode: {why}")


def not_in_test_mode(reads: MeterReads, mode: TestMode) -> dict[int, str]:
    """Position -> why its meter is not known to be in test mode (what it reports, or why it could
    not be read), in position order; {} when every meter reports it. Read from the whole board at
    once where its transport allows (it is read after every gate)."""
    board = reads.read(mode.register)
    found = {n: f"test mode not read back: {why}" for n, why in board.failed.items()}
    found.update({n: f"the meter reports {read.value!r} in '{mode.register}': it is not in test mode"
                  for n, read in board.reads.items() if read.value != TestMode.ENTER})
    return dict(sorted(found.items()))


def meters_out_of_test_mode(meters: Mapping[int, Meter], mode: TestMode,
                            notice: Callable[[str], None]) -> dict[int, str]:
    """Every meter back to normal mode, best effort (one meter's failure never stops the next);
    position -> why a meter may still be in test mode, each also told through ``notice``."""
    failed = {}
    for number, meter in meters.items():
        try:
            if not meter.is_open:
                meter.reopen()
            meter.write(mode.register, TestMode.LEAVE)
            reported = meter.read(mode.register)
            if reported != TestMode.LEAVE:
                failed[number] = f"it reports {reported!r} in '{mode.register}' after {TestMode.LEAVE} was written"
        except Exception as error:  # noqa: BLE001 - whatever the link does, go on to the next meter
            failed[number] = f"{type(error).__name__}: {error}"
    for number, why in failed.items():
        notice(f"bench: the meter at position {number} may still be in test mode ({why}): leave it by hand "
               f"(write {TestMode.LEAVE} to '{mode.register}') before it goes back into service")
    return failed
