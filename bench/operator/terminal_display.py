"""The board on the terminal for a run without the panel: a block of lines redrawn in place (rich's
Live) with point n of N, the wall-clock ETA, the stimulus and the reference's readings, the step
under way, and every position's pulses, latest error and verdict counts. It folds the same events
as the panel and the event log."""
from __future__ import annotations

import io
import time
from typing import TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from bench.operator.board import BoardView, PositionView
from bench.operator.events import END, RUN, Event

SERIALS_UP_TO = 12  # positions on a board small enough that every tile also shows its serial
COLOURS = {"PASS": "green", "FAIL": "bold red", "INDETERMINATE": "yellow", "ERROR": "magenta"}


def render(view: BoardView, now_wall: float, width: int) -> RenderableType:
    """The whole block, from the view alone (no terminal needed: a test renders it to text)."""
    lines: list[RenderableType] = [_headline(view, now_wall)]
    if view.stimulus:
        lines.append(_stimulus(view.stimulus))
    if view.readings:
        lines.append(_readings(view.readings))
    if view.activity:
        lines.append(Text(f"now: {view.activity}", style="cyan"))
    lines.extend(Text(f"SAFETY: {message}", style="bold white on red") for message in view.safety)
    if view.positions:
        lines.append(_tiles(list(view.positions.values()), width))
    if view.ended:
        lines.append(Text(f"run ended: {view.ended}", style="bold green" if view.ended == "complete" else "bold red"))
    return Group(*lines)


def _headline(view: BoardView, now_wall: float) -> Text:
    line = Text(f"point {view.n} of {view.total}" if view.n else "starting", style="bold")
    eta = view.eta_s(now_wall)
    if eta is not None:
        finish = time.strftime("%H:%M:%S", time.localtime(now_wall + eta))
        line.append(f" · ETA {finish} ({_duration(eta)} left)", style="bold")
    line.append(f" · {view.board} · {len(view.positions)} positions · run {view.run_id[:8]}")
    if view.n:
        line.append(f"\n{view.point} [{view.family}]")
    return line


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _number(value: object, digits: int) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "—"


def _stimulus(stimulus: dict[str, object]) -> Text:
    if stimulus.get("off"):
        return Text("stimulus: outputs off (safe state)", style="green")
    phases = stimulus.get("phases") or []
    assert isinstance(phases, list)
    each = " | ".join(f"{'ABC'[k] if k < 3 else k + 1} {_number(p['v'], 2)} V {_number(p['v_angle'], 1)}° "
                      f"{_number(p['i'], 3)} A lag {_number(p['lag'], 1)}°" for k, p in enumerate(phases))
    thd = f"THD V {_number(stimulus.get('thd_v_pct'), 1)} % I {_number(stimulus.get('thd_i_pct'), 1)} %"
    power = f"{_number(stimulus.get('power_w'), 1)} W"
    return Text(f"stimulus: {each} · {_number(stimulus.get('f'), 2)} Hz · {thd} · {power}")


def _readings(readings: dict[str, object]) -> Text:
    def show(value: object) -> str:
        if isinstance(value, list):
            return " / ".join(_number(v, 3) for v in value)  # as the page shows it
        return _number(value, 4)
    return Text("reference: " + " · ".join(f"{key} {show(value)}" for key, value in readings.items()), style="dim")


def _tile(pos: PositionView, with_serial: bool) -> Text:
    tile = Text(f"#{pos.number:<3}", style="bold")
    if with_serial:
        tile.append(f"{pos.serial} ")
    tile.append(f"{pos.gated:>4}/{pos.needed:<4} " if pos.gated is not None else " " * 10)
    if pos.error_pct is not None:
        tile.append(f"{pos.error_pct:+.3f}", style=COLOURS.get(pos.error_verdict, ""))
        tile.append(f"±{_number(pos.u_pct, 3)}")
    else:
        tile.append(" " * 12)
    tile.append(f" ✔{len(pos.verdicts) - pos.not_passed}", style="green")
    if pos.not_passed:
        tile.append(f" ✘{pos.not_passed}", style="bold red")
    return tile


def _tiles(positions: list[PositionView], width: int) -> Table:
    with_serial = len(positions) <= SERIALS_UP_TO
    tiles = [_tile(pos, with_serial) for pos in positions]
    cell = max(t.cell_len for t in tiles) + 3
    columns = max(1, width // cell)
    grid = Table.grid(padding=(0, 3))
    for _ in range(columns):
        grid.add_column(no_wrap=True)
    for start in range(0, len(tiles), columns):
        grid.add_row(*tiles[start:start + columns])
    return grid


class LiveDisplay:
    """Subscribed to the run's events: drawn from the run's start to its end, four times a second
    at most (rich's refresh thread), on the terminal the session started on."""

    def __init__(self, terminal: TextIO, width: int, height: int) -> None:
        self.view = BoardView()
        # The size as the session found it: while a test runs, stdin and stdout are pytest's captures.
        self.console = Console(file=terminal, force_terminal=True, width=width, height=height)
        self.live = Live(console=self.console, get_renderable=self._draw, refresh_per_second=4,
                         redirect_stdout=False, redirect_stderr=False)

    def __call__(self, event: Event) -> None:
        self.view.apply(event)
        if event.kind == RUN:
            self.live.start()
        elif event.kind == END:
            self.stop()

    def _draw(self) -> RenderableType:
        with self.view.locked():
            return render(self.view, time.time(), self.console.width)

    def stop(self) -> None:
        """The last drawing stays on the terminal, with what pytest prints after it below."""
        if self.live.is_started:
            self.live.stop()


class LinesAbove(io.TextIOBase):
    """A file whose lines are printed above the live display (pytest's own output while it is drawn).
    Whole lines only: a partial line (pytest's dots) waits for its end, so nothing is printed
    into the middle of the display."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.partial = ""  # the line not yet ended

    def write(self, text: str) -> int:
        *complete, self.partial = (self.partial + text).split("\n")
        for line in complete:
            self.console.print(Text.from_ansi(line), soft_wrap=True)
        return len(text)

    def isatty(self) -> bool:
        return True

    def flush(self) -> None:
        """Nothing to do: lines are printed as they complete."""
