"""The simulated bench's instruments are in calibration on whatever day it starts: a built-in
board states certificate numbers, and the simulator dates them from that day. A board that states
its own dates keeps them, so a past-due one still blocks a run as a real one does
(tests/test_records.py)."""
import datetime as dt

import pytest

from bench.datafiles import ConfigError
from bench.sim.simbench import BOARDS, SimulatedBench

# A day after every date the board files stated before they stopped stating dates (due 2027-03-02).
LATER = dt.date(2031, 7, 1)


def _profile(board: str, today: dt.date):
    with SimulatedBench(board, today=today) as sim:
        return sim.profile()


@pytest.mark.parametrize("board", sorted(p.stem for p in BOARDS.glob("*.toml")))
def test_a_built_in_board_is_in_calibration_on_any_day_it_starts(board):
    profile = _profile(board, LATER)
    assert profile.past_due(LATER) == {}
    calibrations = profile.calibrations()
    assert {"source", "load", "reference", "counter"} <= set(calibrations)
    for role, calibration in calibrations.items():
        assert calibration.date < LATER < calibration.due, role
        assert calibration.certificate.startswith("SIM-CAL-"), role  # fiction, and it says so


def test_a_board_that_states_its_dates_keeps_them(make_board):
    board = make_board(reference={"calibration_date": "2025-01-10", "calibration_due": "2026-01-10"},
                       calibrations={"counter": {"certificate": "OLD-7", "date": dt.date(2025, 2, 1),
                                                 "due": dt.date(2026, 2, 1)}})
    stated = {role: (c.certificate, c.date, c.due) for role, c in _profile(str(board), LATER).calibrations().items()}
    assert stated["reference"] == ("SIM-CAL-0117", dt.date(2025, 1, 10), dt.date(2026, 1, 10))
    assert stated["counter"] == ("OLD-7", dt.date(2025, 2, 1), dt.date(2026, 2, 1))
    assert stated["load"][2] > LATER  # a role it gives no dates is dated by the simulator


def test_a_board_that_states_one_date_without_the_other_is_one_line(make_board):
    board = make_board(calibrations={"load": {"certificate": "X-1", "date": dt.date(2026, 5, 1)}})
    with pytest.raises(ConfigError, match=r"board\.toml.*\bdue\b"):
        _profile(str(board), LATER)
