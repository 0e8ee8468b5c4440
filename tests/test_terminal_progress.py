"""Progress at the terminal: the board folded from the run's events and drawn in place on a real
terminal (a pty, read through a terminal emulator as a person would see it), a line every few
seconds with ``--progress lines``, and nothing but pytest's own output when it is not a terminal."""
import os
import pty
import re
import subprocess

import pyte
import pytest
from rich.console import Console

from bench.operator.board import BoardView
from bench.operator.events import EventStream
from bench.operator.terminal_display import render
from tests.helpers import REPO, Terminal, plan_command

POSITIONS = [{"number": 1, "serial": "SIM16A00001"}, {"number": 2, "serial": "SIM16A00002"}]


def folded(*events: tuple[float, str, dict]) -> BoardView:
    """A view folded from events emitted at the given wall times."""
    stream, view = EventStream(), BoardView()
    for wall, kind, data in events:
        event = stream.emit(kind, **data)
        object.__setattr__(event, "wall", wall)  # the event as if emitted then (frozen: set once, here)
        view.apply(event)
    return view


def drawn(view: BoardView, now_wall: float, width: int = 120) -> str:
    console = Console(width=width, record=True, file=open(os.devnull, "w"), color_system=None)  # noqa: SIM115
    console.print(render(view, now_wall, width))
    console.file.close()
    return console.export_text()


def result(position: int, error, verdict: str) -> tuple[str, dict]:
    return ("result", {"point": "p", "name": "p", "position": position, "serial": "", "error_pct": error,
                       "u_pct": 0.012 if error is not None else None, "limit_pct": 0.2, "verdict": verdict,
                       "summary": ""})


def test_the_view_folds_points_gates_results_and_the_eta_from_the_events():
    run = ("run", {"run_id": "abcdef0123", "board": "LAB-7", "positions": POSITIONS, "points": 4})
    point = {"family": "accuracy"}
    view = folded((10.0, *run), (100.0, "point", {"id": "FL", "name": "full load", "n": 1, "total": 4, **point}),
                  (130.0, *result(1, 0.049, "PASS")), (131.0, *result(2, -0.31, "FAIL")),
                  (160.0, "point", {"id": "LL", "name": "light load", "n": 2, "total": 4, **point}),
                  (170.0, "gate", {"point": "LL", "name": "light load", "needed": 40, "elapsed_s": 21.6,
                                   "expected_s": 60.0, "positions": {"1": 12, "2": 40}}),
                  (171.0, *result(1, None, "PASS")))  # a register check: no error, a light only
    # one point done in 60 s: two after the current one, and the current one's 30 s still to go
    assert view.eta_s(190.0) == pytest.approx(60.0 * 2 + 30.0)
    # the current point has run 140 s: past the average, it no longer eats into the other two
    assert view.eta_s(300.0) == pytest.approx(60.0 * 2)
    assert (view.positions[1].gated, view.positions[1].needed) == (12, 40)
    assert view.positions[1].error_pct == 0.049 and view.positions[1].verdicts == ["PASS", "PASS"]
    assert view.positions[2].not_passed == 1
    text = drawn(view, 190.0)
    assert "point 2 of 4 · ETA " in text and "(2 min 30 s left) · LAB-7 · 2 positions · run abcdef01" in text
    assert "light load [accuracy]" in text
    assert "now: light load: slowest position 12 of 40 pulses gated, 22 s of 60 s (bench time)" in text
    assert re.search(r"#1 +SIM16A00001 +12/40 +\+0\.049±0\.012 ✔2", text), text
    assert re.search(r"#2 +SIM16A00002 +40/40 +-0\.310±0\.012 ✔0 ✘1", text), text


def test_safety_and_the_end_are_said_and_the_eta_goes():
    view = folded((0.0, "run", {"run_id": "r", "board": "B", "positions": POSITIONS, "points": 2}),
                  (1.0, "point", {"id": "a", "name": "a", "family": "f", "n": 1, "total": 2}),
                  (5.0, "point", {"id": "b", "name": "b", "family": "f", "n": 2, "total": 2}),
                  (6.0, "safety", {"message": "interrupted by SIGINT: safe state reached"}),
                  (6.5, "end", {"status": "incomplete", "why": "interrupted by SIGINT"}))
    text = drawn(view, 7.0)
    assert view.eta_s(7.0) is None and "ETA" not in text
    assert "SAFETY: interrupted by SIGINT: safe state reached" in text
    assert "run ended: incomplete (interrupted by SIGINT)" in text


@pytest.mark.slow
def test_the_board_is_drawn_in_place_on_a_terminal_and_pytest_output_goes_above_it(tmp_path):
    """A whole run in a pty (the default board, stepped): frames with point n of N, the ETA and the
    positions' pulses while it runs; on the screen at the end, pytest's lines above the last frame
    and its summary below, nothing drawn over."""
    main, child = pty.openpty()
    os.set_blocking(main, True)
    env = {**os.environ, "COLUMNS": "150", "LINES": "60", "TERM": "xterm-256color"}
    run = subprocess.Popen(plan_command(tmp_path, "test_plans/"), stdin=child, stdout=child, stderr=child,
                           cwd=REPO, env=env)
    os.close(child)
    try:
        seen = Terminal(main).read_to_end(within_s=180)
        assert run.wait(timeout=30) == 0, seen[-3000:]
    finally:
        run.kill()
        os.close(main)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen)
    frames = set(re.findall(r"point (\d+) of (\d+)", plain))
    assert len(frames) >= 3 and {total for _, total in frames} == {"49"}, frames  # redrawn as points start
    assert " · ETA " in plain and re.search(r"#1 +SIM16A00001 +\d+/\d+ ", plain)
    screen = pyte.Screen(150, 60)
    screen.set_mode(pyte.modes.LNM)
    pyte.Stream(screen).feed(seen)
    lines = [line.rstrip() for line in screen.display]
    text = "\n".join(lines)
    ended = next(k for k, line in enumerate(lines) if line.startswith("run ended: complete"))
    tiles = [k for k, line in enumerate(lines) if line.startswith("#1 ")]
    assert tiles and tiles[-1] < ended, text  # the last frame's tiles stand above its last line
    assert "stimulus: outputs off (safe state)" in lines[:ended], text  # the bench's safe state at the end, said
    assert re.search(r"#8 +SIM16A00008 +(\d+/\d+)? *[+-]\d\.\d{3}±\d\.\d{3} ✔49", text), text
    assert any("392 passed" in line for line in lines[ended:]), text  # pytest's summary below, not drawn over


def test_off_a_terminal_the_run_prints_no_display(tmp_path):
    """CI's log: pytest's output, the bench's summary, no frames and no cursor movement."""
    run = subprocess.run(plan_command(tmp_path, "test_plans/audit/test_payload_accuracy.py"), capture_output=True,
                         text=True, cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:]
    assert "\x1b[" not in run.stdout and " · ETA " not in run.stdout and "point 1 of" not in run.stdout
    assert "run partial: " in run.stdout  # the bench's own summary is there (one plan of several: partial)
