"""The board as the operator sees it, folded from the run's events: the terminal display draws it,
and the panel's page folds the same events the same way (its ETA is this one's formula)."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from bench.operator.events import END, GATE, POINT, READINGS, RESULT, RUN, SAFETY, STEP, STIMULUS, Event


@dataclass
class PositionView:
    number: int
    serial: str
    gated: int | None = None  # pulses gated in the point under way (None: no gate open yet)
    needed: int | None = None
    error_pct: float | None = None  # the latest measured error (a count or register check has none), its U,
    u_pct: float | None = None  # limit and verdict
    limit_pct: float | None = None
    error_verdict: str = ""
    verdicts: list[str] = field(default_factory=list)  # one per result, in order

    @property
    def not_passed(self) -> int:
        """Failed, indeterminate or not measured: what the panel marks red."""
        return sum(v != "PASS" for v in self.verdicts)


@dataclass
class BoardView:
    """Everything the display shows; ``apply`` on the bench's thread, ``snapshot`` from any other."""

    run_id: str = ""
    board: str = ""
    positions: dict[int, PositionView] = field(default_factory=dict)
    n: int = 0  # point n of total (0: none begun)
    total: int = 0
    point: str = ""  # the point under way: its name and family
    family: str = ""
    stimulus: dict[str, Any] = field(default_factory=dict)
    readings: dict[str, Any] = field(default_factory=dict)
    activity: str = ""  # the long step or gate under way, with its bench-time progress
    safety: list[str] = field(default_factory=list)
    ended: str = ""  # "complete", "incomplete (why)", ...: the run's end
    first_point_wall: float | None = None
    last_point_wall: float | None = None
    points_done: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def apply(self, event: Event) -> None:
        with self._lock:
            fold = _FOLDS.get(event.kind)
            if fold is not None:
                fold(self, event)

    def eta_s(self, now_wall: float) -> float | None:
        """Wall seconds left: the points after the current one at the average wall time of those
        done, and what is left of the current one at that average (none once it has run longer:
        a long point does not eat into the estimate of the others). None until a point has finished."""
        if self.ended or not self.total or self.points_done < 1 or self.first_point_wall is None:
            return None
        assert self.last_point_wall is not None
        per_point = (self.last_point_wall - self.first_point_wall) / self.points_done
        after_current = max(self.total - self.points_done - 1, 0)
        return per_point * after_current + max(per_point - (now_wall - self.last_point_wall), 0.0)

    def locked(self) -> threading.Lock:
        """Held while the display reads the view, so a fold never runs halfway through a drawing."""
        return self._lock


def _run(view: BoardView, event: Event) -> None:
    d = event.data
    view.run_id, view.board, view.total = d["run_id"], d["board"], d["points"]
    view.positions = {p["number"]: PositionView(p["number"], p["serial"]) for p in d["positions"]}


def _point(view: BoardView, event: Event) -> None:
    if view.n:
        view.points_done += 1
        view.last_point_wall = event.wall
    if view.first_point_wall is None:
        view.first_point_wall = view.last_point_wall = event.wall
    d = event.data
    view.n, view.total, view.point, view.family = d["n"], d["total"], d["name"], d["family"]
    view.activity = ""
    for pos in view.positions.values():
        pos.gated = pos.needed = None


def _gate(view: BoardView, event: Event) -> None:
    d = event.data
    for number, gated in d["positions"].items():
        pos = view.positions.get(int(number))
        if pos is not None:
            pos.gated, pos.needed = gated, d["needed"]
    slowest = min(d["positions"].values(), default=0)
    view.activity = (f"{d['name']}: slowest position {slowest} of {d['needed']} pulses gated, "
                     f"{d['elapsed_s']:.0f} s of {d['expected_s']:.0f} s (bench time)")


def _step(view: BoardView, event: Event) -> None:
    d = event.data
    view.activity = f"{d['name']}: {d['detail']}, {d['elapsed_s']:.0f} s of {d['expected_s']:.0f} s (bench time)"


def _result(view: BoardView, event: Event) -> None:
    d = event.data
    pos = view.positions.get(d["position"])
    if pos is None:
        return
    pos.verdicts.append(d["verdict"])
    if d["error_pct"] is not None:
        pos.error_pct, pos.u_pct, pos.limit_pct = d["error_pct"], d["u_pct"], d["limit_pct"]
        pos.error_verdict = d["verdict"]


def _end(view: BoardView, event: Event) -> None:
    d = event.data
    view.ended = d["status"] + (f" ({d['why']})" if d["why"] else "")
    view.activity = ""


_FOLDS = {
    RUN: _run, POINT: _point, GATE: _gate, STEP: _step, RESULT: _result, END: _end,
    STIMULUS: lambda view, event: setattr(view, "stimulus", event.data),
    READINGS: lambda view, event: setattr(view, "readings", event.data),
    SAFETY: lambda view, event: view.safety.append(event.data["message"]),
}
