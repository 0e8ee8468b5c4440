"""Each meter's error curve drawn while the rest of the board measures: set drawing in the run's
chart workers once the meter's last load-performance point has concluded. The session's end asks
for the curves of the record it built; one whose input is unchanged is found drawn, any other is
drawn then (the workers key a curve by its input)."""
from __future__ import annotations

from bench.pytest_plugin.context import RunContext

CURVE_FAMILY = "load_performance"  # the points an error curve shows (bench/records/plots.py curve_points)


def draw_when_measured(run: RunContext, point_id: str, number: int) -> None:
    """After position ``number`` concluded ``point_id``: if that was the plan's last
    load-performance point and the position has every one of them, its curve starts drawing."""
    if run.charts is None:
        return
    planned = [p.id for p in run.points if p.family == CURVE_FAMILY]
    if not planned or point_id != planned[-1]:
        return
    mine = [e for (_, n), e in run.tally.entries.items() if n == number and e["family"] == CURVE_FAMILY]
    if len(mine) == len(planned):
        run.charts.start([(mine, run.profile.meter_type.test_amperes)])
