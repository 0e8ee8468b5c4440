"""A meter's error curve is set drawing as soon as its last load-performance point concluded, with
the entries the record will hold, so the session's end finds it drawn (bench/pytest_plugin/curves.py)."""
from __future__ import annotations

from types import SimpleNamespace

from bench.pytest_plugin.context import Tally
from bench.pytest_plugin.curves import draw_when_measured

POINTS = [SimpleNamespace(id="LL-PF1", family="load_performance"), SimpleNamespace(id="V90", family="voltage"),
          SimpleNamespace(id="FL-PF1", family="load_performance"), SimpleNamespace(id="H5", family="harmonics")]


class Workers:
    """What the run's chart workers were asked to draw (the drawing itself: tests/test_plots.py)."""

    def __init__(self) -> None:
        self.started: list[tuple[list[dict], float]] = []

    def start(self, boards: list[tuple[list[dict], float]]) -> None:
        self.started.extend(boards)


def _run(charts: Workers | None) -> SimpleNamespace:
    return SimpleNamespace(charts=charts, points=POINTS, tally=Tally(),
                           profile=SimpleNamespace(meter_type=SimpleNamespace(test_amperes=30.0)))


def _conclude(run: SimpleNamespace, point: SimpleNamespace, number: int) -> None:
    run.tally.entries[(point.id, number)] = {"point": point.id, "family": point.family}
    draw_when_measured(run, point.id, number)


def test_each_meters_curve_starts_once_its_last_load_point_concluded_with_its_load_entries():
    run = _run(Workers())
    for point in POINTS[:2]:
        for number in (1, 2):
            _conclude(run, point, number)
    assert run.charts.started == []  # FL-PF1, the last load-performance point, has not concluded
    _conclude(run, POINTS[2], 1)
    assert run.charts.started == [([{"point": "LL-PF1", "family": "load_performance"},
                                    {"point": "FL-PF1", "family": "load_performance"}], 30.0)]
    assert run.charts.started[0][0][0] is run.tally.entries[("LL-PF1", 1)]  # the record's own entries
    _conclude(run, POINTS[2], 2)
    _conclude(run, POINTS[3], 1)
    assert [[e["point"] for e in entries] for entries, _ in run.charts.started] == [["LL-PF1", "FL-PF1"]] * 2


def test_a_meter_missing_a_load_point_is_left_for_the_end_and_no_workers_means_nothing_to_do():
    run = _run(Workers())
    _conclude(run, POINTS[0], 1)
    _conclude(run, POINTS[2], 2)  # position 2 skipped LL-PF1 (say, its meter lacks the output)
    _conclude(run, POINTS[2], 1)
    assert [[e["point"] for e in entries] for entries, _ in run.charts.started] == [["LL-PF1", "FL-PF1"]]
    idle = _run(None)
    _conclude(idle, POINTS[0], 1)
    _conclude(idle, POINTS[2], 1)  # a small board: curves drawn at the end, nothing raised here
