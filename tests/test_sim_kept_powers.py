"""The world keeps one Conditions while the stimulus holds, and each meter its registered powers
for it (bench/sim/world.py, bench/sim/meter_model.py): what is kept must always be what would be
worked out afresh, whichever input changes."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bench.metrology.harmonics import Harmonic
from bench.sim.board import load_board
from bench.sim.firmware import Release
from bench.sim.meter_model import ErrorCurve
from bench.sim.world import World

BOARDS = Path(__file__).resolve().parents[1] / "bench" / "sim" / "boards"


def _world(board: str = "default.toml") -> World:
    world = load_board(BOARDS / board).world
    world.source.output = world.load.output = True
    world.source.voltage_v, world.load.currents_a = 240.0, [30.0] * world.load.phases
    world.load.phase_deg = 60.0
    return world


def test_the_same_stimulus_gives_the_same_conditions_and_any_change_new_ones():
    world = _world()
    kept = world.conditions()
    assert world.conditions() is kept
    changes = [
        lambda w: setattr(w.source, "voltage_v", 120.0),
        lambda w: w.source.angles_deg.__setitem__(0, 5.0),
        lambda w: w.load.currents_a.__setitem__(0, 2.5),
        lambda w: w.load.lags_deg.__setitem__(0, 0.0),
        lambda w: setattr(w.source, "frequency_hz", 50.0),
        lambda w: w.source.harmonics.__setitem__(5, Harmonic(5, 10.0, 0.0)),
        lambda w: w.load.harmonics.__setitem__(3, Harmonic(3, 20.0, 0.0)),
        lambda w: setattr(w.load, "output", False),
        lambda w: setattr(w.source, "gain_error", 0.01),
    ]
    for change in changes:
        before = world.conditions()
        change(world)
        after = world.conditions()
        assert after is not before
        fresh = dataclasses.replace(_world(), _conditions=None)  # nothing kept
        for name in ("source", "load"):
            setattr(fresh, name, getattr(world, name))
        assert after.active_power_w == fresh.conditions().active_power_w
        assert after.reactive_power_var == fresh.conditions().reactive_power_var


@pytest.mark.parametrize("change", [
    lambda m: setattr(m, "starting_current_a", 40.0),
    lambda m: (setattr(m, "starting_current_a", 40.0), setattr(m, "creep_w", 3.0)),
    lambda m: setattr(m, "curve", ErrorCurve(offset_pct=0.7, phase_error_mrad=2.0)),
    lambda m: setattr(m, "release", Release("other", harmonic_gain_pct=-5.0)),
    lambda m: setattr(m, "test_amperes", 2.5),
    lambda m: setattr(m, "nominal_voltage", 120.0),
    lambda m: setattr(m, "nominal_frequency", 50.0),
    lambda m: setattr(m, "element_offsets_pct", (0.4,)),
    lambda m: setattr(m, "circuit_offsets_pct", (0.5, -0.2)),
    lambda m: setattr(m.functional, "ct_reversed", True),
], ids=["starting current", "creep below it", "curve", "release", "test amperes", "nominal voltage",
        "nominal frequency", "element offsets", "circuit offsets", "CT reversed"])
def test_a_meters_kept_powers_follow_every_input_of_its_own(change):
    """Each change is chosen to move (P, Q) at these conditions (a Form 2S meter, one element on
    two current circuits, at light load with harmonics and PF 0.5, its curve with every term), so a
    kept answer that missed it would differ from the one worked out afresh."""
    world = _world("residential_2s.toml")
    meter = world.meters[0]
    meter.curve = ErrorCurve(*(0.1 * (k + 1) for k in range(len(dataclasses.fields(ErrorCurve)))))
    world.load.currents_a = [meter.test_amperes * 0.1] * world.load.phases
    world.source.voltage_v, world.source.frequency_hz = 250.0, 61.0
    world.source.harmonics[5] = Harmonic(5, 10.0, 0.0)
    world.load.harmonics[5] = Harmonic(5, 30.0, 0.0)
    c = world.conditions()
    before = meter.registered_powers(c)
    assert meter.registered_powers(c) is before  # kept
    change(meter)
    after = meter.registered_powers(c)
    assert after == meter._registered_powers(c)
    assert after != before
