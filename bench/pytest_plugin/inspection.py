"""Where the technician's physical inspection comes from: a file (``--inspection``), the simulated
board's technician, or the person at the terminal. Nothing found means the audit's check fails;
it never passes by default."""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest

from bench.datafiles import ConfigError, Section
from bench.metrology.forms import forms
from bench.operator import inspection_form
from bench.plans.inspection import Inspection, load_inspection, terminals
from bench.pytest_plugin.terminal import asking
from bench.station.profile import Position, Profile

if TYPE_CHECKING:
    from bench.sim import SimulatedBench

T = TypeVar("T")


def from_file(path: Path) -> Inspection:
    """A broken file stops the run in one line before anything is energised."""
    try:
        return load_inspection(path)
    except ConfigError as error:
        pytest.exit(f"bench cannot start: {error}", returncode=pytest.ExitCode.USAGE_ERROR)


def simulated_technician(sim: SimulatedBench) -> Inspection:
    return {serial: Section(entry, f"<simulated technician at {sim.board_file.name}>", serial)
            for serial, entry in sim.board.inspection.items()}


def at_terminal(config: pytest.Config, profile: Profile, technician: str) -> Inspection:
    """Asked position by position when there is a terminal; nothing when there is none."""
    names = terminals(forms()[profile.meter_type.form])
    with asking(config):
        return _ask(profile.positions, names, technician) if sys.stdin.isatty() else {}


def _ask(positions: tuple[Position, ...], names: tuple[str, ...], technician: str) -> Inspection:
    found = {}
    for pos in positions:
        where = f"position {pos.number} {pos.serial}"
        torques = _until_valid(f"{where}: {inspection_form.torque_question(names)}: ",
                               lambda text, where: inspection_form.torques(text, where, names), where)
        if torques is None:
            continue
        jaws = _until_valid("  jaw tension good? [y/n]: ", inspection_form.jaw_tension, where)
        fitted = _until_valid("  seal number(s) fitted, comma-separated: ", inspection_form.seals, where)
        found[pos.serial] = inspection_form.entry(pos, torques, jaws, fitted, technician, "<terminal>")
    return found


def _until_valid(question: str, read: Callable[[str, str], T], where: str) -> T:
    """An answer the form takes: an invalid one is refused aloud and asked again, never dropped."""
    while True:
        try:
            return read(input(question), where)
        except inspection_form.InvalidAnswer as error:
            print(f"  NOT TAKEN: {error}; try again", flush=True)
