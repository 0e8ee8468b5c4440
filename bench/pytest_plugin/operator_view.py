"""The run's event stream in pytest's session: the panel (``--panel``), the event log beside the
record, the events only the session knows (the run, each point, each result, safety, the end),
and the operator's questions (``--inspection ask``)."""
from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bench.metrology.forms import forms
from bench.operator import inspection_form
from bench.operator.events import END, POINT, RESULT, RUN, SAFETY, EventLog, EventStream, finite
from bench.operator.prompts import PromptDesk
from bench.plans.inspection import Inspection, terminals
from bench.procedures.runner import Result
from bench.pytest_plugin.terminal import say
from bench.station.profile import Position, Profile

if TYPE_CHECKING:
    from bench.operator.panel.server import PanelServer
    from bench.pytest_plugin.context import RunContext

ASK = "ask"  # --inspection ask: the operator answers, on the panel or at the terminal


def add_options(group: pytest.OptionGroup) -> None:
    group.addoption("--panel", action="store_true",
                    help="serve the live board panel (a local web page: every position's pulses, errors and "
                         "verdicts, the stimulus, the ETA, abort, the operator's questions) while the run goes")
    group.addoption("--panel-bind", metavar="ADDRESS", default="127.0.0.1",
                    help="where the panel listens (default 127.0.0.1, this machine only); any other address "
                         "requires a token, made and printed with the panel's address unless --panel-token gives one")
    group.addoption("--panel-port", metavar="PORT", type=int, default=8765,
                    help="the panel's port (default 8765; 0: any free port, printed)")
    group.addoption("--panel-token", metavar="TOKEN", default=None,
                    help="require this token on every request to the panel, on any address")


class OperatorView:
    """One per session: the stream, who reads it, and the points in the order the run takes them."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.events = EventStream()
        self.prompts = PromptDesk(self.events)
        self.panel: PanelServer | None = None
        self.log: EventLog | None = None
        self.points_planned = 0  # the distinct points of the selected items
        self._point: str | None = None
        self._safety_said: set[str] = set()
        self._started: set[str] = set()  # the points begun so far

    def start_panel(self) -> None:
        """Listening before the run measures (a bad address stops pytest in one line)."""
        if not self.config.getoption("--panel") or self.panel is not None:
            return
        from bench.operator.panel.server import PanelServer  # the web stack only for a run with a panel

        try:
            self.panel = PanelServer(self.events.after, host=self.config.getoption("--panel-bind"),
                                     port=self.config.getoption("--panel-port"),
                                     token=self.config.getoption("--panel-token"), abort=_abort,
                                     prompts=self.prompts).start()
        except OSError as error:
            raise pytest.UsageError(str(error)) from None
        say(self.config, f"bench: board panel at {self.panel.url}", bold=True)

    def inspection(self, profile: Profile) -> Inspection | None:
        """The operator's inspection through the panel; None without one (the terminal asks)."""
        if self.panel is None:
            return None
        say(self.config, f"bench: waiting for the physical inspection on the panel ({self.panel.url})")
        positions, names = profile.positions, terminals(forms()[profile.meter_type.form])
        return self.prompts.ask("Physical inspection", inspection_form.fields(positions, names),
                                lambda form: inspection_form.from_form(positions, names, form))

    def opened(self, run: RunContext) -> None:
        """The run's log starts with everything said so far (a question asked before the bench opened)."""
        self.log = EventLog(log_path(run.reports_dir, run.recorder.run_id))
        for event in self.events.after(0):
            self.log(event)
        self.events.subscribe(self.log)
        self.events.emit(RUN, run_id=run.recorder.run_id, board=run.profile.bench_id,
                         positions=[{"number": p.number, "serial": p.serial} for p in run.profile.positions],
                         points=self.points_planned, operator=self.config.getoption("--operator"),
                         can_abort=self.panel is not None)

    def point(self, point_id: str, name: str, family: str) -> None:
        if point_id == self._point:
            return
        self._point = point_id
        self._started.add(point_id)
        total = max(self.points_planned, len(self._started))
        self.events.emit(POINT, id=point_id, name=name, family=family, n=len(self._started), total=total)

    def result(self, point_id: str, name: str, position: Position, result: Result) -> None:
        self.events.emit(RESULT, point=point_id, name=name, position=position.number, serial=position.serial,
                         error_pct=finite(result.value_pct), u_pct=finite(result.u_pct),
                         limit_pct=finite(result.limit_pct), verdict=result.verdict.value, summary=result.summary())

    def safety(self, message: str) -> None:
        """Each safety event once (safe state after an interrupt is reached, and said, once)."""
        if message not in self._safety_said:
            self._safety_said.add(message)
            self.events.emit(SAFETY, message=message)

    def ended(self, status: str, why: str) -> None:
        self.events.emit(END, status=status, why=why)
        if self.log is not None:
            say_after = f"bench: what the panel showed is in {self.log.path} (`bench panel {self.log.path}` replays it)"
            self.events.unsubscribe(self.log)  # the log ends with the run's end (the bench closing after says nothing)
            self.log.close()
            self.log = None
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None and self.panel is not None:  # a session hook: output is not captured here
                reporter.write_line(say_after)

    def close(self) -> None:
        if self.panel is not None:
            self.panel.stop()
            self.panel = None


def _abort() -> None:
    """The page's abort is Ctrl-C: the same signal, the same handler, the same safe state first."""
    os.kill(os.getpid(), signal.SIGINT)


def points_planned(items: list[pytest.Item]) -> int:
    """How many distinct points the run's items hold: a table's or demand point (the ``point``
    parameter; None is a not-applicable, skipped item), or a board step (one a test function).
    Points are counted as they start, so point n of N needs no more than this."""
    seen = set()
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        if "point" in params:
            if params["point"] is not None:  # a plan's point has an id; another suite's parameter is its own key
                seen.add(str(getattr(params["point"], "id", params["point"])))
        else:
            seen.add(item.nodeid.split("[")[0])
    return len(seen)


def log_path(reports_dir: Path, run_id: str) -> Path:
    """Beside the run's record (``run-<id>.json``), where ``bench panel`` finds it."""
    return reports_dir / f"run-{run_id}.events.jsonl"
