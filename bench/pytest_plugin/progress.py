"""Progress the operator sees at the terminal, from the run's events: on a terminal, the board
redrawn in place (``--progress live``, the default there); in a log someone tails, a line every few
seconds during a long step (``lines``); nothing where output is not a terminal (CI), so logs stay
clean (``off``, the default there). The procedures only emit events (``Steps``)."""
from __future__ import annotations

import os
import shutil
import sys
import time
from typing import TextIO

import pytest

from bench.operator.board import BoardView
from bench.operator.events import GATE, STEP, Event, EventStream
from bench.operator.terminal_display import LinesAbove, LiveDisplay
from bench.pytest_plugin.terminal import say

AUTO, LIVE, LINES, OFF = "auto", "live", "lines", "off"
LINE_EVERY_S = 3.0  # wall seconds between two lines: a stepped simulation's long point stays quiet


def add_options(group: pytest.OptionGroup) -> None:
    group.addoption("--progress", choices=(AUTO, LIVE, LINES, OFF), default=AUTO,
                    help="the run's progress at the terminal: live (the board redrawn in place: point n of N, ETA, "
                         "every position's pulses and latest error), lines (a line every few seconds during a long "
                         "step), off; default auto: live on a terminal, off otherwise (CI logs stay clean)")


class Steps:
    """What the procedures call during a long step (a gated point, a creep or starting count, a demand
    interval): each call a step event."""

    def __init__(self, events: EventStream) -> None:
        self.events = events

    def __call__(self, name: str, detail: str, elapsed: float, expected: float) -> None:
        self.events.emit(STEP, name=name, detail=detail, elapsed_s=elapsed, expected_s=expected)


class Lines:
    """The step or gate under way, at most one line every few seconds of wall time."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.view = BoardView()
        self.last = time.monotonic()

    def __call__(self, event: Event) -> None:
        if event.kind not in (STEP, GATE):
            return
        self.view.apply(event)
        if time.monotonic() - self.last >= LINE_EVERY_S:
            self.last = time.monotonic()
            say(self.config, f"  {self.view.activity}")


class TerminalProgress:
    """The live display and pytest's own output sharing one terminal: while the board is drawn,
    pytest's lines go above it (pytest's writer is pointed at the display and given back after)."""

    def __init__(self, config: pytest.Config, events: EventStream) -> None:
        self.config = config
        self.display: LiveDisplay | None = None
        self._writer_file: TextIO | None = None  # pytest's own, while the display has the writer
        self._above: LinesAbove | None = None
        mode = config.getoption("--progress")
        if mode == AUTO:
            mode = LIVE if sys.stdout.isatty() else OFF  # at configure pytest's capture is off: the real stdout
        if mode == LINES:
            events.subscribe(Lines(config))
        elif mode == LIVE:
            # A descriptor of its own: the display draws to the terminal while a test's output is captured.
            terminal = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", closefd=True)
            size = shutil.get_terminal_size()
            self.display = LiveDisplay(terminal, size.columns, size.lines)
            events.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        assert self.display is not None
        self.display(event)
        writer = self.config.get_terminal_writer()
        if self.display.live.is_started and self._above is None:
            self._above = LinesAbove(self.display.console)
            self._writer_file, writer._file = writer._file, self._above  # noqa: SLF001 - pytest has no public setter
        elif not self.display.live.is_started:
            self._give_back()

    def _give_back(self) -> None:
        if self._above is not None and self._writer_file is not None:
            writer = self.config.get_terminal_writer()
            writer._file = self._writer_file  # noqa: SLF001
            writer.write(self._above.partial)
            self._above = self._writer_file = None

    def close(self) -> None:
        """At the session's end, whatever ended it (the display stops at the run's end event)."""
        if self.display is not None:
            self.display.stop()
            self._give_back()
            self.display.console.file.close()
