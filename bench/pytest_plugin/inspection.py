"""Where the technician's physical inspection comes from: a file (``--inspection``), the simulated
board's technician, or the person at the terminal. Nothing found means the audit's check fails;
it never passes by default."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bench.datafiles import ConfigError, Section
from bench.plans.audit import load_inspection
from bench.pytest_plugin.terminal import asking
from bench.station.profile import Position

if TYPE_CHECKING:
    from bench.sim import SimulatedBench

Inspection = dict[str, Section]  # meter serial -> the technician's entry


def from_file(path: Path) -> Inspection:
    """A broken file stops the run in one line before anything is energised."""
    try:
        return load_inspection(path)
    except ConfigError as error:
        pytest.exit(f"bench cannot start: {error}", returncode=pytest.ExitCode.USAGE_ERROR)


def simulated_technician(sim: SimulatedBench) -> Inspection:
    return {serial: Section(entry, f"<simulated technician at {sim.board_file.name}>", serial)
            for serial, entry in sim.board.inspection.items()}


def at_terminal(config: pytest.Config, positions: tuple[Position, ...], technician: str) -> Inspection:
    """Asked position by position when there is a terminal; nothing when there is none."""
    with asking(config):
        return _ask(positions, technician) if sys.stdin.isatty() else {}


def _ask(positions: tuple[Position, ...], technician: str) -> Inspection:
    found = {}
    for pos in positions:
        torque = input(f"position {pos.number} {pos.serial}: terminal torque, in-lb (empty: not inspected): ").strip()
        if not torque:
            continue
        jaws = input("  jaw tension good? [y/n]: ").strip().lower()
        try:
            found[pos.serial] = Section({"torque_in_lb": float(torque), "jaw_tension_ok": jaws == "y",
                                         "technician": technician}, "<terminal>", pos.serial)
        except ValueError:
            continue  # not a number: no entry, and the check will say so
    return found
