"""Which bench a run uses: a lab's, from its profile, or the built-in simulator. The simulator
starts on first use, so runs that never touch the bench (the framework's own tests) start none."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytest

from bench.pytest_plugin.inspection import Inspection, at_terminal, simulated_technician
from bench.station.bench import make_safe_if_energised
from bench.station.profile import MeterType, Profile, load_profile

if TYPE_CHECKING:
    from bench.sim import SimulatedBench


class BenchSource(Protocol):
    @property
    def profile(self) -> Profile: ...

    def meter_type(self) -> MeterType:
        """Known before anything starts: the limits table's points depend on it."""

    def technician(self, config: pytest.Config, operator: str) -> Inspection:
        """The physical inspection when no file gives it."""

    def stop(self) -> None: ...


class LabBench:
    """A real bench. First of all: a run killed with SIGKILL may have left the board energised."""

    def __init__(self, path: Path) -> None:
        self.profile = load_profile(path)
        make_safe_if_energised(self.profile)

    def meter_type(self) -> MeterType:
        return self.profile.meter_type

    def technician(self, config: pytest.Config, operator: str) -> Inspection:
        return at_terminal(config, self.profile, operator)

    def stop(self) -> None:
        """Nothing of its own runs: the instruments are the run's to close."""


class BuiltInSimulator:
    """The simulated board named by ``--sim-scenario``, on real protocols, and its technician. The
    board is read here; its servers run in a process of their own (``bench.sim.process``)."""

    def __init__(self, scenario: str, scale: float | None, kind: Profile | None = None) -> None:
        from bench.sim import SimulatedBench
        from bench.sim.process import SimulatorProcess

        self.sim: SimulatedBench = SimulatedBench(scenario, scale=scale, kind=kind)
        self._process = SimulatorProcess(self.sim)

    @cached_property
    def profile(self) -> Profile:
        from bench.sim.process import SimulatorProcessError

        try:
            return self.sim.profile_of(self._process.start())
        except SimulatorProcessError as error:
            pytest.exit(f"bench cannot start: {self.sim.board_file}: {error}",
                        returncode=pytest.ExitCode.INTERNAL_ERROR)

    def meter_type(self) -> MeterType:
        return self.sim.meter_type()

    def technician(self, config: pytest.Config, operator: str) -> Inspection:
        return simulated_technician(self.sim)

    def stop(self) -> None:
        self._process.stop()
