"""Board checks' registers read ahead from the whole board at once (bench/plans/board_checks.py):
what a check reads first is the board-wide read's, a second read asks the meter again, and a
position the board-wide read missed asks its own meter (its error is its own)."""
from __future__ import annotations

import pytest

from bench.plans.board_checks import BoardChecks, Finding
from bench.station.profile import Position
from instruments.errors import InstrumentError


@pytest.mark.parametrize("at_once", [True, False], ids=["each_at_once", "each"])
def test_a_checks_registers_come_from_the_board_wide_read_once_then_from_the_meter(sim, sim_bench, at_once):
    checks = BoardChecks(sim_bench, settle_s=0.0)
    sim.world.meters[2].link_fault = "EXCEPTION"  # position 3 answers every request with exception 6 (busy)
    seen: dict[int, tuple[object, object]] = {}

    def check(pos: Position) -> Finding:
        sim.world.meters[pos.number - 1].functional.tamper = True  # after the board-wide read
        try:
            seen[pos.number] = (checks.read(pos, "tamper"), checks.read(pos, "tamper"))
        except InstrumentError as error:
            seen[pos.number] = (str(error), None)
        return Finding(True, "", "")

    run = checks.each_at_once if at_once else checks.each
    assert set(run(check, reads=("tamper", "alarm_code"))) == {m.position for m in sim.world.meters}
    error, _ = seen.pop(3)
    assert isinstance(error, str) and error.startswith("position 3 @ ") and "exception 6" in error, error
    assert all(first in (0, False) and second in (1, True) for first, second in seen.values()), seen
    sim.world.meters[0].functional.tamper, sim.world.meters[0].alarm_code = False, "E777"  # read ahead, never read
    assert checks.read(sim_bench.profile.positions[0], "alarm_code") == "E777"
