"""The live board panel's figures, each beside a baseline measured in the same run.

    .venv/bin/python -m benchmarks.panel [--quick] [--rounds N] [--shots DIR] [--rates 100,1000]

1. Events per second the page applies without falling behind: a PanelServer on 127.0.0.1 in this
   process, over an EventStream fed a synthetic 40-position run (the RUN event, then per point
   POINT, STIMULUS, READINGS, GATE and STEP pairs and 40 RESULTs, with the keys the bench emits) at
   stepped rates, a fresh page in headless Chromium per step. The page's own timeline (when
   ``document.body.dataset.seq`` changed, to what) against the stream's wall stamps gives the lag
   through each step and the time to catch up after it. Then a page opened on a complete
   40-position run's event log (what ``bench panel`` replays, or a page reloaded late in a run).
2. The panel's added cost to a run: the full plan on a 40-position variant of the default board,
   without ``--panel``; with ``--panel --panel-port 0`` and nothing on it; with a bare reader of its
   event stream (the server's streaming without a browser); with a page attached for the whole run;
   in rounds (the order rotating): wall time, its phases, the run's CPU time (user + sys), each over
   the same round's run without the panel; the browser's CPU and the renderer's accounts; the page's
   lag through the run; and PanelServer.stop() with and without a page on it.
3. A full-page screenshot of the page after a complete 40-position run ended.

Every page is checked against the events it was sent (each tile's error, lights, pass/fail and
pulses, the progress line, the end banner): a wrong number on the page is printed with a "!".

Playwright drives the system Chromium (/usr/bin/chromium): no browser is downloaded, and every
connection stays on 127.0.0.1. Like benchmarks/run.py, the figures are ratios against baselines
timed in the same run on the same machine, never absolute targets in timed tests.
"""
from __future__ import annotations

import argparse
import bisect
import http.client
import json
import math
import os
import queue
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, CDPSession, Page, sync_playwright

from bench.datafiles import load_toml
from bench.operator.events import (
    END,
    GATE,
    POINT,
    READINGS,
    RESULT,
    RUN,
    STEP,
    STIMULUS,
    Event,
    EventStream,
    LogFollower,
)
from bench.operator.panel.server import PanelServer
from benchmarks.run import (
    CLOCK_ENV,
    LAUNCHER,
    LIMITS_TABLE,
    PLAN_TIMEOUT_S,
    REPO,
    TIMING_FILE_ENV,
    board_variant,
    fresh_bench_home,
    machine,
    ratio,
    run_phases,
    verdict,
)

CHROMIUM = "/usr/bin/chromium"
# As tests/test_panel_browser.py launches it: no sandbox (containers), no GPU, nothing fetched from outside.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 1100}
HOST = "127.0.0.1"
POSITIONS = 40

RATES = (100, 300, 1000, 2000, 3000, 10000)  # events per second, stepped
QUICK_RATES = (300, 3000)
STEP_S, QUICK_STEP_S = 4.0, 2.0  # how long each rate is held
GRID_S = 0.02  # the lag is read off the page's timeline every 20 ms of a step
CATCH_UP_LIMIT_S = 1.0  # sustained: the page has applied every event within 1 s of the step's last one ...
GROWTH_LIMIT_S = 0.25  # ... and the lag's age in the step's last third exceeds its first third's by at most this
CATCH_UP_TIMEOUT_S = 60.0  # a page further behind than this is lost: no higher rate is tried
PAGE_TIMEOUT_MS = 30_000
URL_TIMEOUT_S = 120.0  # from the run's start to its "board panel at" line
END_SHOWN_TIMEOUT_MS = 15_000
TARGET_PANEL_COST = 1.05  # run wall time with the panel and a page / without, at 40 positions
_PANEL_URL = re.compile(r"board panel at (\S+)")

# Installed before the page's own script: every change of ``data-seq`` (the last event the page
# applied) is noted with the page's wall clock, so the lag is read off the page, not polled into it.
TIMELINE_JS = """
window.__timeline = [];
document.addEventListener("DOMContentLoaded", () => {
  new MutationObserver(() => {
    window.__timeline.push(performance.timeOrigin + performance.now(), Number(document.body.dataset.seq || 0));
  }).observe(document.body, { attributes: true, attributeFilter: ["data-seq"] });
});
"""

# What the page shows, for checking against the events it was sent.
PAGE_STATE_JS = """() => ({
  seq: Number(document.body.dataset.seq || 0),
  tiles: [...document.querySelectorAll('.tile')].map((t) => ({
    position: Number(t.dataset.position), error: t.querySelector('.error').textContent,
    pulses: t.querySelector('.pulses').textContent, lights: t.querySelectorAll('.lights i').length,
    fail: t.classList.contains('fail'), pass: t.classList.contains('pass') })),
  pointN: document.getElementById('point-n').textContent,
  banners: document.getElementById('banners').textContent,
})"""


# --- pure computations ----------------------------------------------------------------------------

def lag_at(t: float, walls: Sequence[float], timeline: Sequence[tuple[float, int]]) -> tuple[int, float]:
    """At wall time ``t``: (events emitted but not yet applied by the page, how long the oldest of
    them has waited in seconds). ``walls``: each event's emission wall stamp, in seq order;
    ``timeline``: (wall, seq applied) pairs from the page, in time order."""
    emitted = bisect.bisect_right(walls, t)
    k = bisect.bisect_right(timeline, (t, math.inf)) - 1
    shown = timeline[k][1] if k >= 0 else 0
    if emitted <= shown:
        return 0, 0.0
    return emitted - shown, t - walls[shown]  # walls[shown] is event shown+1's stamp


def lag_series(start: float, end: float, walls: Sequence[float],
               timeline: Sequence[tuple[float, int]]) -> list[tuple[int, float]]:
    """The lag every GRID_S from ``start`` to ``end`` (both included)."""
    steps = max(1, int((end - start) / GRID_S))
    return [lag_at(start + (end - start) * k / steps, walls, timeline) for k in range(steps + 1)]


def caught_up_at(timeline: Sequence[tuple[float, int]], seq: int) -> float | None:
    """When the page had applied event ``seq`` (wall time), None if it never did."""
    for wall, shown in timeline:
        if shown >= seq:
            return wall
    return None


def thirds_growth(ages: Sequence[float]) -> tuple[float, float]:
    """The median lag age over the first and the last third of a step: a page keeping up has the
    same lag at the end as at the start; one falling behind has a lag that grows with time."""
    third = max(1, len(ages) // 3)
    return statistics.median(ages[:third]), statistics.median(ages[-third:])


def peak_rate(walls: Sequence[float], window_s: float) -> float:
    """The most events emitted in any window of ``window_s`` seconds, per second."""
    best, j = 0, 0
    for i, start in enumerate(walls):
        j = max(j, i)
        while j < len(walls) and walls[j] < start + window_s:
            j += 1
        best = max(best, j - i)
    return best / window_s


def shown_error(error_pct: float | None, u_pct: float | None) -> str:
    """A tile's error as panel.js writes it (``fmt`` is toFixed(3), None is an em dash)."""
    if error_pct is None:
        return "\u2014"
    u = "\u2014" if u_pct is None else f"{u_pct:.3f}"
    return f"{'+' if error_pct >= 0 else ''}{error_pct:.3f} % \u00b1 {u}"


def expected_page(events: Sequence[Event]) -> dict[str, Any]:
    """What the page should show once it has applied ``events``, from panel.js's rules: each tile
    its latest measured error, one light per result, fail if any result failed, the pulses of the
    latest gate since the latest point; the latest point's "point n of total"; the end banner."""
    tiles: dict[int, dict[str, Any]] = {}
    point_n, banners = "waiting for the run", ""
    for event in events:
        d = event.data
        if event.kind == RUN:
            for p in d["positions"]:
                tiles.setdefault(p["number"], {"error": "\u2014", "pulses": "", "lights": 0, "fail": False})
        elif event.kind == POINT:
            point_n = f"point {d['n']} of {d['total']}"
            for tile in tiles.values():
                tile["pulses"] = ""
        elif event.kind == GATE:
            for number, gated in d["positions"].items():
                tiles.setdefault(int(number), {"error": "\u2014", "pulses": "", "lights": 0, "fail": False})
                tiles[int(number)]["pulses"] = f"{gated} / {d['needed']} pulses gated"
        elif event.kind == RESULT:
            tile = tiles.setdefault(d["position"], {"error": "\u2014", "pulses": "", "lights": 0, "fail": False})
            tile["lights"] += 1
            tile["fail"] = tile["fail"] or d["verdict"] != "PASS"
            if d["error_pct"] is not None:
                tile["error"] = shown_error(d["error_pct"], d["u_pct"])
        elif event.kind == END:
            why = f" ({d['why']})" if d.get("why") else ""
            banners += f"Run ended: {d['status']}{why}"
    return {"seq": events[-1].seq if events else 0, "tiles": tiles, "pointN": point_n, "banners": banners}


def _numbers(text: str) -> list[float]:
    """The decimals in a tile's text (its error and U)."""
    return [float(x) for x in re.findall(r"[-+]?\d+\.\d+", text)]


def page_differences(expected: dict[str, Any], shown: dict[str, Any]) -> list[str]:
    """Where the page disagrees with its events (errors compared to the last digit shown, since
    JavaScript's toFixed and Python's format may round a tie differently)."""
    problems = []
    if shown["seq"] != expected["seq"]:
        problems.append(f"page at event {shown['seq']}, sent {expected['seq']}")
    tiles = {t["position"]: t for t in shown["tiles"]}
    if sorted(tiles) != sorted(expected["tiles"]):
        problems.append(f"{len(tiles)} tiles shown, {len(expected['tiles'])} positions sent")
    for number, want in expected["tiles"].items():
        got = tiles.get(number)
        if got is None:
            continue
        wanted, seen = _numbers(want["error"]), _numbers(got["error"])
        if len(wanted) != len(seen) or any(abs(a - b) > 0.0011 for a, b in zip(wanted, seen)):
            problems.append(f"position {number}: error shown {got['error']!r}, last result {want['error']!r}")
        if got["lights"] != want["lights"]:
            problems.append(f"position {number}: {got['lights']} result lights, {want['lights']} results sent")
        if want["lights"] and (got["fail"], got["pass"]) != (want["fail"], not want["fail"]):
            problems.append(f"position {number}: tile marked {'fail' if got['fail'] else 'pass'}")
        if got["pulses"] != want["pulses"]:
            problems.append(f"position {number}: pulses {got['pulses']!r}, last gate {want['pulses']!r}")
    if shown["pointN"] != expected["pointN"]:
        problems.append(f"progress {shown['pointN']!r}, last point {expected['pointN']!r}")
    if expected["banners"] and expected["banners"] not in shown["banners"]:
        problems.append(f"banner {shown['banners']!r}, sent {expected['banners']!r}")
    return problems


# --- the synthetic stream -------------------------------------------------------------------------

@dataclass(frozen=True)
class SyntheticPoint:
    id: str
    name: str
    family: str
    limit_pct: float


def table_points() -> list[SyntheticPoint]:
    """The C12.20 table's gated points (those with a tolerance), the class 0.2 limit of each."""
    table = load_toml(LIMITS_TABLE).data
    return [SyntheticPoint(row["id"], row.get("name", row["id"]), row["family"], float(row["tolerance"]["0.2"]))
            for row in table["point"] if "tolerance" in row]


EVENTS_PER_POINT = 1 + 1 + 1 + 4 * 2 + POSITIONS  # POINT, STIMULUS, READINGS, 4 x (GATE, STEP), the results


def serial(number: int) -> str:
    """A position's serial as benchmarks/run.py's board_variant gives it."""
    return f"SIM16A{number:05d}"


def run_data(points: int) -> dict[str, Any]:
    """The RUN event's data, as bench/pytest_plugin/operator_view.py emits it."""
    return {"run_id": "synthetic", "board": f"SIM-default-{POSITIONS}",
            "positions": [{"number": n, "serial": serial(n)} for n in range(1, POSITIONS + 1)],
            "points": points, "operator": "benchmark", "can_abort": False}


def synthetic_stream(points_planned: int, seed: int = 13) -> Iterator[tuple[str, dict[str, Any]]]:
    """A gated point after another, forever, each as the bench emits it: POINT (operator_view),
    STIMULUS (station/bench.py), READINGS (station/bench.py), GATE (procedures/gating.py) with the
    pulses gated on each of the 40 positions and a STEP (pytest_plugin/progress.py) after each, then
    one RESULT per position (operator_view) with error, U, limit, verdict and summary."""
    rng = random.Random(seed)
    table = table_points()
    offsets = {n: rng.gauss(0.0, 0.04) for n in range(1, POSITIONS + 1)}
    n = 0
    while True:
        point = table[n % len(table)]
        n += 1
        yield POINT, {"id": point.id, "name": point.name, "family": point.family, "n": n,
                      "total": max(points_planned, n)}
        current = rng.choice((0.1, 1.0, 15.0))
        yield STIMULUS, {"phases": [{"v": 120.0, "v_angle": a, "i": current, "lag": 0.0} for a in (0.0, -120.0, 120.0)],
                         "f": 60.0, "power_w": 3 * 120.0 * current, "thd_v_pct": 0.0, "thd_i_pct": 0.0}
        yield READINGS, {"V": [120.0 + rng.gauss(0, 0.03) for _ in range(3)],
                         "A": [current * (1 + rng.gauss(0, 1e-4)) for _ in range(3)],
                         "W": 3 * 120.0 * current, "PF": 1.0, "Hz": 60.0, "THD V %": 0.0, "THD I %": 0.0}
        needed, expected = 120, 14.0
        for k in range(1, 5):
            elapsed = expected * k / 4
            gated = {m: min(needed, int(needed * k / 4) - rng.randint(0, 2)) for m in range(1, POSITIONS + 1)}
            yield GATE, {"point": point.id, "name": point.name, "needed": needed, "elapsed_s": elapsed,
                         "expected_s": expected, "positions": gated}
            detail = f"slowest position {min(gated.values())} of {needed} pulses gated"
            yield STEP, {"name": point.name, "detail": detail, "elapsed_s": elapsed, "expected_s": expected}
        for m in range(1, POSITIONS + 1):
            error, u = offsets[m] + rng.gauss(0.0, 0.01), 0.0115 + rng.gauss(0.0, 0.0005)
            passed = abs(error) <= point.limit_pct
            result = "PASS" if passed else "FAIL"
            summary = (f"{point.name}, position {m} ({serial(m)}): {result}: pulse error {error:+.4f} % \u00b1 "
                       f"{u:.4f} % (k=2), limit \u00b1{point.limit_pct:g} % (simple)")
            yield RESULT, {"point": point.id, "name": point.name, "position": m, "serial": serial(m),
                           "error_pct": error, "u_pct": u, "limit_pct": point.limit_pct, "verdict": result,
                           "summary": summary}


# --- 1. rate steps --------------------------------------------------------------------------------

def open_page(browser: Browser, url: str) -> Page:
    """A fresh page with the timeline recorder, on the panel at ``url``."""
    page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
    page.add_init_script(TIMELINE_JS)
    page.goto(url, timeout=PAGE_TIMEOUT_MS)
    return page


# The renderer's own accounts (Chrome DevTools Protocol, Performance.getMetrics): its main thread's
# time in tasks, in script, in style and layout, and the renderer process's CPU.
RENDERER_METRICS = ("TaskDuration", "ScriptDuration", "RecalcStyleDuration", "LayoutDuration", "ProcessTime")


def renderer_session(page: Page) -> CDPSession:
    """A DevTools session on the page with its performance counters on."""
    session = page.context.new_cdp_session(page)
    session.send("Performance.enable")
    return session


def renderer_metrics(session: CDPSession) -> dict[str, float]:
    """The renderer's cumulative seconds so far (see RENDERER_METRICS)."""
    metrics = {m["name"]: float(m["value"]) for m in session.send("Performance.getMetrics")["metrics"]}
    return {name: metrics.get(name, float("nan")) for name in RENDERER_METRICS}


def metrics_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What the renderer spent between two readings of its cumulative counters."""
    return {name: after[name] - before[name] for name in RENDERER_METRICS}


def timeline_of(page: Page) -> list[tuple[float, int]]:
    """The page's (wall seconds, seq applied) pairs."""
    flat = page.evaluate("window.__timeline")
    return [(flat[k] / 1000.0, int(flat[k + 1])) for k in range(0, len(flat), 2)]


def wait_seq(page: Page, seq: int, timeout_s: float) -> bool:
    """Until the page has applied event ``seq``; False when it has not within ``timeout_s``."""
    try:
        page.wait_for_function(f"Number(document.body.dataset.seq || 0) >= {seq}", polling=10,
                               timeout=timeout_s * 1000)
    except Exception:  # noqa: BLE001 - Playwright's TimeoutError: the page is that far behind
        return False
    return True


@dataclass
class RateStep:
    """One rate held for a few seconds on a fresh page."""

    rate: float
    emitted: int = 0
    emit_s: float = 0.0  # the first stepped event's stamp to the last's
    results_per_position: int = 0
    lags: list[tuple[int, float]] = field(default_factory=list)  # (events, age s) every GRID_S of the step
    catch_up_s: float | None = None  # the step's last event to the page having applied it; None: not within the timeout
    problems: list[str] = field(default_factory=list)  # the page against what it was sent
    renderer: dict[str, float] = field(default_factory=dict)  # seconds, from the step's start to the catch-up

    def achieved(self) -> float:
        return ratio(self.emitted - 1, self.emit_s)

    def growth(self) -> tuple[float, float]:
        return thirds_growth([age for _, age in self.lags])

    def sustained(self) -> bool:
        early, late = self.growth()
        return self.catch_up_s is not None and self.catch_up_s <= CATCH_UP_LIMIT_S and late - early <= GROWTH_LIMIT_S


def pump(stream: EventStream, events: Iterator[tuple[str, dict[str, Any]]], rate: float, count: int) -> None:
    """Emit ``count`` events at ``rate`` per second, on time: each tick emits every event now due."""
    start = time.perf_counter()
    sent = 0
    while sent < count:
        due = min(count, int((time.perf_counter() - start) * rate) + 1)
        while sent < due:
            kind, data = next(events)
            stream.emit(kind, **data)
            sent += 1
        wait = (sent / rate) - (time.perf_counter() - start)
        if wait > 0:
            time.sleep(min(wait, 0.005))


def rate_step(browser: Browser, rate: float, seconds: float) -> RateStep:
    """One rate on a fresh stream, server and page: the RUN event, the page seen to apply it, then
    ``rate`` x ``seconds`` events emitted on time from this thread (the server answers on its own)."""
    stream = EventStream()
    count = max(2, int(rate * seconds))
    points = math.ceil(count / EVENTS_PER_POINT)
    server = PanelServer(stream.after, host=HOST, port=0).start()
    step = RateStep(rate)
    page = open_page(browser, server.url)
    try:
        stream.emit(RUN, **run_data(points))
        if not wait_seq(page, 1, PAGE_TIMEOUT_MS / 1000):
            raise RuntimeError("the page never applied the RUN event")
        session = renderer_session(page)
        before = renderer_metrics(session)
        pump(stream, synthetic_stream(points), rate, count)
        history = stream.after(0)
        last = history[-1]
        caught_up = wait_seq(page, last.seq, CATCH_UP_TIMEOUT_S)
        step.renderer = metrics_delta(before, renderer_metrics(session))
        timeline = timeline_of(page)
        walls = [e.wall for e in history]
        first = history[1].wall
        step.emitted, step.emit_s = count, last.wall - first
        step.results_per_position = sum(e.kind == RESULT for e in history) // POSITIONS
        step.lags = lag_series(first, last.wall, walls, timeline)
        at = caught_up_at(timeline, last.seq) if caught_up else None
        step.catch_up_s = None if at is None else max(0.0, at - last.wall)
        if caught_up:
            step.problems = page_differences(expected_page(history), page.evaluate(PAGE_STATE_JS))
    finally:
        page.close()  # the page's stream ends first, so the server stops at once
        server.stop()
    return step


# Where the page's time goes (a separate page load: the wrapping costs a little itself): the time in
# the page's onmessage by event kind, and in two of its functions, wrapped where panel.js assigns its
# handler (its top-level functions are the window's, and are called through it).
BREAKDOWN_JS = """
window.__busy = {};
const __onmessage = Object.getOwnPropertyDescriptor(EventSource.prototype, "onmessage");
const __timed = (name, fn) => function (...args) {
  const started = performance.now(); const out = fn.apply(this, args);
  const b = window.__busy[name] || (window.__busy[name] = [0, 0, 0]);
  const took = performance.now() - started; b[0] += 1; b[1] += took; b[2] = Math.max(b[2], took); return out;
};
Object.defineProperty(EventSource.prototype, "onmessage", { configurable: true,
  get() { return __onmessage.get.call(this); },
  set(handler) {
    for (const name of ["drawCurve", "band"]) window[name] = __timed(`  ${name}()`, window[name]);
    __onmessage.set.call(this, (message) => __timed(/"kind": "(\\w+)"/.exec(message.data)[1], handler)(message));
  } });
"""


@dataclass
class Replay:
    """A page opened on a complete run's log: every event in the first chunk."""

    events: int
    seconds: float
    problems: list[str]
    busy: dict[str, tuple[int, float, float]]  # per event kind (and function): calls, total ms, longest ms


def replay(browser: Browser, log: Path) -> Replay:
    """``bench panel <log>``'s case (and a page opened or reloaded late in a run): the whole history
    at once, timed from the page's navigation to its applying the last event; then the same on a
    page whose handler is timed, for where the time goes."""
    follower = LogFollower(log)
    history = follower.after(0)
    server = PanelServer(follower.after, host=HOST, port=0).start()
    try:
        page = open_page(browser, server.url)
        try:
            done = wait_seq(page, history[-1].seq, CATCH_UP_TIMEOUT_S)
            origin = page.evaluate("performance.timeOrigin") / 1000.0
            at = caught_up_at(timeline_of(page), history[-1].seq) if done else None
            problems = page_differences(expected_page(history), page.evaluate(PAGE_STATE_JS)) if done else [
                "not caught up"]
        finally:
            page.close()
        page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
        try:
            page.add_init_script(BREAKDOWN_JS)
            page.goto(server.url, timeout=PAGE_TIMEOUT_MS)
            wait_seq(page, history[-1].seq, CATCH_UP_TIMEOUT_S)
            busy = {k: (int(v[0]), float(v[1]), float(v[2])) for k, v in page.evaluate("window.__busy").items()}
        finally:
            page.close()
    finally:
        server.stop()
    return Replay(len(history), float("nan") if at is None else at - origin, problems, busy)


def browser_cpu_s() -> float:
    """CPU seconds (user + sys, with reaped children's) of the Chromium processes this script started
    (through Playwright's driver): what the page costs the machine the run shares."""
    stats: dict[int, tuple[int, str, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        comm = text[text.index("(") + 1:text.rindex(")")]
        stats[int(entry)] = (int(fields[1]), comm, sum(int(f) for f in fields[11:15]) / tick)
    total = 0.0
    for pid, (_, comm, cpu) in stats.items():
        ancestor = stats[pid][0]
        while ancestor > 1 and ancestor != os.getpid() and ancestor in stats:
            ancestor = stats[ancestor][0]
        if comm == "chromium" and ancestor == os.getpid():
            total += cpu
    return total


def stop_seconds(browser: Browser) -> tuple[float, float, bool]:
    """PanelServer.stop() at the end of a run, with no page on it and with one still attached (the
    page's event stream is open): (seconds without, seconds with, the server's thread still alive)."""
    out = []
    alive = False
    for attached in (False, True):
        stream = EventStream()
        server = PanelServer(stream.after, host=HOST, port=0).start()
        page = open_page(browser, server.url)
        stream.emit(RUN, **run_data(1))
        stream.emit(END, status="complete", why="")
        wait_seq(page, 2, PAGE_TIMEOUT_MS / 1000)
        if not attached:
            page.close()
            time.sleep(0.2)  # the page's stream has ended: its loop saw the disconnect
        started = time.perf_counter()
        server.stop()
        out.append(time.perf_counter() - started)
        alive = server._thread.is_alive()  # the thread its stop() gave up joining
        if attached:
            page.close()
    return out[0], out[1], alive


# --- 2. plan runs with and without the panel -------------------------------------------------------

# The runs of a round: without --panel; with it and nothing reading it; with it and a bare reader of
# its event stream in this process (the server's own streaming, no browser); with it and a page.
PLAIN, SERVER, READER, PAGE = "plain", "server", "reader", "page"
VARIANTS = {PLAIN: "without --panel", SERVER: "--panel, no page", READER: "--panel + SSE reader",
            PAGE: "--panel + a page"}


def read_events(url: str, read: list[int]) -> None:
    """A bare client of the panel's event stream (no browser): reads until the run closes it, the
    last event's seq it got in ``read[0]``."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or HOST, parts.port, timeout=URL_TIMEOUT_S)
    try:
        connection.request("GET", "/events" + (f"?{parts.query}" if parts.query else ""))
        response = connection.getresponse()
        pending = b""
        while chunk := response.read1(1 << 16):
            complete, _, pending = (pending + chunk).rpartition(b"\n\n")  # whole messages only
            for found in re.finditer(rb"^id: (\d+)$", complete, re.M):
                read[0] = int(found.group(1))
    except (OSError, http.client.HTTPException):
        pass  # the run ended mid-read
    finally:
        connection.close()


@dataclass
class PanelRun:
    """One ``pytest test_plans/`` process on the 40-position board, with or without the panel."""

    variant: str
    wall_s: float
    cpu_s: float
    phases: dict[str, float]
    events: list[Event]  # its event log
    exited: float  # wall time the process ended
    browser_cpu_s: float = 0.0  # with a page: Chromium's CPU seconds from the run's start to its end
    renderer: dict[str, float] = field(default_factory=dict)  # with a page: from its opening to the END applied
    page_lag: list[tuple[int, float]] = field(default_factory=list)  # with a page: its lag through the run
    end_shown_s: float | None = None  # with a page: END applied, seconds after the run exited (< 0: before)
    problems: list[str] = field(default_factory=list)  # with a page: the page against the event log

    def rate(self) -> float:
        """The run's events per second over its event log's span."""
        return ratio(len(self.events) - 1, self.events[-1].wall - self.events[0].wall)


def _read_lines(stream: Any, into: queue.Queue[str], log: Path) -> None:
    """The run's output, kept in its folder and handed on line by line (the panel's address is one)."""
    with log.open("w") as out:
        for line in stream:
            out.write(line)
            into.put(line)


def plan_run(where: Path, board: Path, variant: str, browser: Browser, shot: Path | None = None) -> PanelRun:
    """The full plan as benchmarks/run.py runs it (a fresh bench home, its timing plugin); but for
    the plain variant with ``--panel --panel-port 0``, and (READER, PAGE) a reader of the panel from
    the moment its address is printed."""
    where.mkdir(parents=True)
    home, timing_file = fresh_bench_home(where), where / "timing.json"
    env = {**os.environ, "METER_BENCH_HOME": str(home), TIMING_FILE_ENV: str(timing_file), CLOCK_ENV: "0"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as benchmarks/run.py: compiled once, in the warm-up
    command = [sys.executable, "-m", "pytest", "test_plans/", "--sim-scenario", str(board), "--reports-dir",
               str(where / "reports"), "-q", "-p", "no:cacheprovider", "-p", "benchmarks.run"]
    if variant != PLAIN:
        command += ["--panel", "--panel-port", "0", "--panel-bind", HOST]
    launched_file = where / "launcher.json"
    # A session of its own: should this script fail mid-run, the launcher and the run stop together.
    process = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(launched_file), str(PLAN_TIMEOUT_S), *command],
                               cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(process.stdout, lines, where / "output.txt"), daemon=True)
    reader.start()
    page: Page | None = None
    read = [0]
    browser_cpu = browser_cpu_s()
    try:
        if variant in (READER, PAGE):
            deadline = time.monotonic() + URL_TIMEOUT_S
            url = None
            while url is None and time.monotonic() < deadline:
                try:
                    found = _PANEL_URL.search(lines.get(timeout=0.5))
                except queue.Empty:
                    if process.poll() is not None:
                        break
                    continue
                url = found.group(1) if found else None
            if url is None:
                raise RuntimeError(f"no panel address printed: {(where / 'output.txt').read_text()[-2000:]}")
            if variant == READER:
                threading.Thread(target=read_events, args=(url, read), daemon=True).start()
            else:
                page = open_page(browser, url)
                session = renderer_session(page)
                before = renderer_metrics(session)
        process.wait(timeout=PLAN_TIMEOUT_S + 60)
        browser_cpu = browser_cpu_s() - browser_cpu
        reader.join(timeout=10)
        launched = json.loads(launched_file.read_text())
        if launched["code"] != 0:
            raise RuntimeError(f"plan run failed (exit {launched['code']}): {' '.join(command)}\n"
                               f"{(where / 'output.txt').read_text(errors='replace')[-3000:]}")
        [log] = (where / "reports").glob("run-*.events.jsonl")
        events = [Event.from_json(line) for line in log.read_text().splitlines() if line]
        run = PanelRun(variant, launched["exited"] - launched["spawned"], launched["cpu_s"],
                       run_phases(launched["spawned"], launched["exited"], json.loads(timing_file.read_text())),
                       events, launched["exited"], browser_cpu if page is not None else 0.0)
        if variant == READER:
            time.sleep(0.5)  # the reader sees the closed stream
            if read[0] != events[-1].seq:
                run.problems.append(f"the SSE reader got to event {read[0]}, the log to {events[-1].seq}")
        if page is not None:
            shown = wait_seq(page, events[-1].seq, END_SHOWN_TIMEOUT_MS / 1000)
            run.renderer = metrics_delta(before, renderer_metrics(session))
            timeline = timeline_of(page)
            at = caught_up_at(timeline, events[-1].seq) if shown else None
            run.end_shown_s = None if at is None else at - run.exited
            walls = [e.wall for e in events]
            run.page_lag = lag_series(events[0].wall, events[-1].wall, walls, timeline)
            run.problems = page_differences(expected_page(events), page.evaluate(PAGE_STATE_JS))
            if shot is not None and shown:
                page.wait_for_function("document.getElementById('banners').textContent.includes('Run ended')",
                                       timeout=END_SHOWN_TIMEOUT_MS)
                page.screenshot(path=str(shot), full_page=True, timeout=PAGE_TIMEOUT_MS)
        return run
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # the launcher's group: itself and the run it started
            process.wait(timeout=10)
        if page is not None:
            page.close()


@dataclass
class Round:
    """The three variants back to back: without the panel, with it and no page, with it and a page."""

    runs: dict[str, PanelRun]
    order: list[str]

    def over_plain(self, variant: str, what: str) -> float:
        """A variant's figure over the plain run's in this round (``what``: a phase, or "cpu")."""
        def figure(run: PanelRun) -> float:
            return run.cpu_s if what == "cpu" else run.phases[what]

        return ratio(figure(self.runs[variant]), figure(self.runs[PLAIN]))


def panel_rounds(where: Path, browser: Browser, rounds: int, shot: Path) -> list[Round]:
    """Section 2: a warm-up run with the panel and a page (not counted: it compiles, and warms the
    browser), then ``rounds`` rounds of the four variants, the order rotating so a drift of the
    machine weighs on all. The first counted run with a page takes the screenshot (after the run ended)."""
    board = board_variant(POSITIONS, where / f"board-{POSITIONS}.toml")
    print(f"  plan run: {POSITIONS} positions, warm-up with the panel and a page (not counted)", flush=True)
    plan_run(where / "warm-up", board, PAGE, browser)
    out = []
    names = list(VARIANTS)
    for k in range(rounds):
        order = names[k % len(names):] + names[:k % len(names)]
        runs: dict[str, PanelRun] = {}
        for variant in order:
            print(f"  plan run: {POSITIONS} positions, round {k + 1} of {rounds}, {VARIANTS[variant]}", flush=True)
            runs[variant] = plan_run(where / f"round-{k}-{variant}", board, variant, browser,
                                     shot if variant == PAGE and k == 0 else None)
        out.append(Round(runs, order))
    return out


# --- report ---------------------------------------------------------------------------------------

def print_rates(steps: list[RateStep], seconds: float) -> RateStep | None:
    """Section 1's table; returns the highest sustained step."""
    print(f"\n1. Events per second the page applies without falling behind: PanelServer in this process on {HOST},\n"
          f"   headless Chromium, a fresh stream, server and page per rate; a synthetic {POSITIONS}-position run of "
          f"{EVENTS_PER_POINT} events\n   per point (POINT, STIMULUS, READINGS, 4 x GATE + STEP, {POSITIONS} x "
          f"RESULT), each rate held {seconds:g} s")
    print(f"   {'rate/s':>7}{'achieved/s':>11}{'events':>8}{'res/pos':>8}{'lag max':>8}{'lag end':>8}"
          f"{'age max ms':>11}{'age 1st/3 ms':>13}{'age 3rd/3 ms':>13}{'catch-up s':>11}{'page':>6}  sustained")
    best = None
    for step in steps:
        early, late = step.growth()
        lag_max = max(n for n, _ in step.lags)
        age_max = max(a for _, a in step.lags)
        catch = f"{step.catch_up_s:.3f}" if step.catch_up_s is not None else f">{CATCH_UP_TIMEOUT_S:g}"
        page = "ok" if not step.problems else f"{len(step.problems)} !"
        print(f"   {step.rate:>7g}{step.achieved():>11.0f}{step.emitted:>8}{step.results_per_position:>8}{lag_max:>8}"
              f"{step.lags[-1][0]:>8}{age_max * 1000:>11.0f}{early * 1000:>13.0f}{late * 1000:>13.0f}{catch:>11}"
              f"{page:>6}  {'yes' if step.sustained() else 'NO'}")
        if step.sustained() and (best is None or step.rate > best.rate):
            best = step
    print(f"   lag: events in the stream (EventStream, stamped as emitted) the page has not applied yet (its\n"
          f"   document.body.dataset.seq), every {GRID_S * 1000:g} ms of the step, off the page's own timeline (a "
          f"MutationObserver\n   on data-seq); age: how long the oldest of them had waited (it includes the "
          f"server's 50 ms poll);\n   lag end: at the step's last event; catch-up: from the step's last event to the "
          f"page applying it;\n   res/pos: results per position in the step (a real run has 49); page ok: once "
          f"caught up, every tile's\n   error, lights, pass/fail and pulses and the progress line agree with the "
          f"events sent.\n"
          f"   sustained = catch-up <= {CATCH_UP_LIMIT_S:g} s AND median age over the step's last third - median age "
          f"over its first\n   third <= {GROWTH_LIMIT_S * 1000:g} ms (the lag does not grow across the step)")
    print("   the renderer over each step and its catch-up (DevTools Performance.getMetrics): process CPU, and its\n"
          "   main thread's time in tasks, of which script, style and layout; busy: tasks / (step + catch-up)")
    print(f"   {'rate/s':>7}{'CPU s':>8}{'tasks s':>9}{'script s':>10}{'style s':>9}{'layout s':>10}{'busy':>7}")
    for step in steps:
        r = step.renderer
        span = step.emit_s + (step.catch_up_s if step.catch_up_s is not None else CATCH_UP_TIMEOUT_S)
        print(f"   {step.rate:>7g}{r['ProcessTime']:>8.2f}{r['TaskDuration']:>9.2f}{r['ScriptDuration']:>10.2f}"
              f"{r['RecalcStyleDuration']:>9.2f}{r['LayoutDuration']:>10.2f}{ratio(r['TaskDuration'], span):>7.0%}")
    for step in steps:
        for problem in step.problems[:5]:
            print(f"   ! {step.rate:g}/s: {problem}")
        if len(step.problems) > 5:
            print(f"   ! {step.rate:g}/s: ... {len(step.problems) - 5} more")
    return best


def print_real_rate(best: RateStep | None, steps: list[RateStep], runs: list[PanelRun], played: Replay) -> None:
    """The highest sustained rate against a real 40-position run's (section 2's runs' event logs), and
    the page taking a whole run's log at once, with where its time goes."""
    if best is None:
        print("   highest sustained rate: none of the rates tried")
    else:
        above = [s for s in steps if s.rate > best.rate]
        tail = f" (the next, {above[0].rate:g}/s, was not)" if above else " (the highest tried)"
        print(f"   highest sustained rate: {best.rate:g} events/s (achieved {best.achieved():.0f}/s){tail}")
    med = statistics.median
    counts = med(len(r.events) for r in runs)
    spans = med(r.events[-1].wall - r.events[0].wall for r in runs)
    average = med(r.rate() for r in runs)
    per_s = med(peak_rate([e.wall for e in r.events], 1.0) for r in runs)
    per_100ms = med(peak_rate([e.wall for e in r.events], 0.1) for r in runs)
    print(f"   a real {POSITIONS}-position run (the event logs of section 2's {len(runs)} runs, their wall stamps; "
          f"medians):\n   {counts:.0f} events over {spans:.1f} s: {average:.0f} events/s on average, at peak "
          f"{per_s:.0f} events/s over 1 s, {per_100ms:.0f} events/s over 100 ms")
    if best is not None:
        print(f"   highest sustained / real run: {best.achieved() / average:.1f}x its average, "
              f"{best.achieved() / per_s:.1f}x its 1-s peak, {best.achieved() / per_100ms:.1f}x its 100-ms peak")
    print(f"   a page opened on a complete {POSITIONS}-position run's event log (`bench panel LOG`, or a page "
          f"reloaded late in a run):\n   {played.events} events applied in {played.seconds:.2f} s from navigation "
          f"({ratio(played.events, played.seconds):.0f} events/s); page against the log: "
          f"{'ok' if not played.problems else '; '.join(played.problems[:3])}")
    total = sum(ms for kind, (_, ms, _) in played.busy.items() if not kind.startswith(" "))
    print(f"   where the page's script time goes: the same log on a page whose onmessage is timed ({total:.0f} ms "
          "in all):")
    print(f"   {'kind':<14}{'events':>8}{'ms':>9}{'µs each':>9}{'longest ms':>12}")
    for kind, (n, ms, longest) in sorted(played.busy.items(), key=lambda kv: (kv[0].startswith(" "), -kv[1][1])):
        print(f"   {kind:<14}{n:>8}{ms:>9.1f}{ms / max(n, 1) * 1000:>9.0f}{longest:>12.2f}")
    print("   (drawCurve() and band(): panel.js's, inside the result handler; the rest of a frame, style, layout\n"
          "   and paint, comes on top)")


def print_rounds(rounds: list[Round], stops: tuple[float, float, bool]) -> float:
    """Section 2's tables; returns the median paired wall ratio (with a page / plain)."""
    med = statistics.median
    print(f"\n2. The panel's added cost to a run: the full plan (pytest test_plans/), {POSITIONS} positions, without "
          f"--panel; with\n   --panel --panel-port 0 and nothing on it; with a bare reader of its event stream (this "
          f"script, no browser);\n   with a headless Chromium page; the reader and the page from the run's printed "
          f"address to its end.\n   {len(rounds)} round(s) after a warm-up run, the four variants back to back, the "
          "order rotating")
    print(f"   {'round':>6}  {'variant':<22}{'wall s':>8}{'measuring s':>13}{'end-of-run s':>14}{'publish s':>11}"
          f"{'run CPU s':>11}{'browser s':>11}{'wall':>8}{'measuring':>11}{'CPU':>8}")
    print(f"   {'':>6}  {'':<22}{'':>8}{'':>13}{'':>14}{'':>11}{'':>11}{'':>11}{'/ plain':>8}{'/ plain':>11}"
          f"{'/ plain':>8}")

    def row(label: str, variant: str, runs: list[PanelRun], ratios: list[Round]) -> None:
        figures = (f"{med(r.phases['total'] for r in runs):>8.2f}{med(r.phases['measuring'] for r in runs):>13.2f}"
                   f"{med(r.phases['end_of_run'] for r in runs):>14.2f}{med(r.phases['publish'] for r in runs):>11.2f}"
                   f"{med(r.cpu_s for r in runs):>11.2f}")
        browser = f"{med(r.browser_cpu_s for r in runs):>11.2f}" if variant == PAGE else f"{'-':>11}"
        over = "".join(f"{med(x.over_plain(variant, what) for x in ratios):>{width}.3f}"
                       for what, width in (("total", 8), ("measuring", 11), ("cpu", 8))) if variant != PLAIN else ""
        print(f"   {label:>6}  {VARIANTS[variant]:<22}{figures}{browser}{over}")

    for k, r in enumerate(rounds):
        for variant in r.order:
            row(str(k + 1), variant, [r.runs[variant]], [r])
    for variant in VARIANTS:
        row("median", variant, [r.runs[variant] for r in rounds], rounds)

    print(f"\n   the page in each round: {'renderer main thread s':>24}{'page lag max':>16}{'END on page':>14}")
    print(f"   {'round':>6}{'':>18}{'tasks':>8}{'script':>8}{'style+layout':>14}{'events / ms':>16}{'vs exit s':>14}")
    for k, r in enumerate(rounds):
        run = r.runs[PAGE]
        m = run.renderer
        lags = run.page_lag or [(0, 0.0)]
        lag = f"{max(n for n, _ in lags)} / {max(a for _, a in lags) * 1000:.0f}"
        end = f"{run.end_shown_s:+.2f}" if run.end_shown_s is not None else "never"
        print(f"   {k + 1:>6}{'':>18}{m['TaskDuration']:>8.2f}{m['ScriptDuration']:>8.2f}"
              f"{m['RecalcStyleDuration'] + m['LayoutDuration']:>14.2f}{lag:>16}{end:>14}")
    print("   wall: the pytest process's start to its exit; measuring: the first item's start to the last item's end;\n"
          "   end-of-run: the last item's end to the exit, of which publish: pytest_sessionfinish to the end of\n"
          "   pytest_unconfigure, where the panel is stopped (benchmarks.run's timing plugin); run CPU: user + sys of\n"
          "   the pytest process and all it started (getrusage RUSAGE_CHILDREN in a launcher whose only child is the\n"
          "   run); browser: Chromium's processes' CPU over the run (/proc); / plain: the variant over the plain run\n"
          "   of the same round (median: of those ratios); renderer main thread: the page's renderer from its opening\n"
          "   to END applied (DevTools Performance.getMetrics), its tasks, of which script, and style + layout (the\n"
          "   rest: paint, event dispatch, loading the stream); page lag max: over the event log's span, events the\n"
          "   page had not applied yet and how long the oldest had waited; END on page: when the page applied the END\n"
          "   event,"
          f" seconds after the run's process exited (negative: before). Chromium shares the machine's "
          f"{os.cpu_count()}\n   cores with the run.")
    without, attached, alive = stops
    print(f"   PanelServer.stop() (in this process, as a run's end calls it): {without:.2f} s with no page on it, "
          f"{attached:.2f} s\n   with a page still attached{' (then gave up: its thread still runs)' if alive else ''}")
    for k, r in enumerate(rounds):
        for problem in r.runs[READER].problems[:5]:
            print(f"   ! round {k + 1}: {problem}")
        for problem in r.runs[PAGE].problems[:5]:
            print(f"   ! round {k + 1}, the page against the run's event log: {problem}")
    return med(r.over_plain(PAGE, "total") for r in rounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"rates {', '.join(map(str, QUICK_RATES))} for "
                        f"{QUICK_STEP_S:g} s each and 1 round (a smoke pass of a couple of minutes)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds of plan runs, each without --panel, with it and no page, with a page (default 3; "
                             "--quick: 1)")
    parser.add_argument("--rates", default=None, help="comma-separated events/s to step through "
                        f"(default {','.join(map(str, RATES))})")
    parser.add_argument("--shots", type=Path, default=None, help="where the screenshot goes (default: a new temp dir)")
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")] if args.rates else list(QUICK_RATES if args.quick else RATES)
    rounds = max(1, args.rounds if args.rounds is not None else (1 if args.quick else 3))
    seconds = QUICK_STEP_S if args.quick else STEP_S
    shots = args.shots or Path(tempfile.mkdtemp(prefix="panel-shots-"))
    shots.mkdir(parents=True, exist_ok=True)
    shot = (shots / f"panel-{POSITIONS}-positions-complete.png").resolve()
    started = time.perf_counter()
    print(f"board panel figures ({'quick' if args.quick else 'full'} mode); the screenshot goes to {shot}", flush=True)
    steps: list[RateStep] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for rate in rates:
                print(f"  rate step: {rate:g} events/s for {seconds:g} s", flush=True)
                steps.append(rate_step(browser, rate, seconds))
                if steps[-1].catch_up_s is None:
                    print(f"  the page had not caught up {CATCH_UP_TIMEOUT_S:g} s after the step: no higher rate tried",
                          flush=True)
                    break
            with tempfile.TemporaryDirectory(prefix="panel-figures-") as where:
                paired = panel_rounds(Path(where), browser, rounds, shot)
                [log] = (Path(where) / f"round-0-{PAGE}" / "reports").glob("run-*.events.jsonl")
                print("  replay: a page opened on round 1's panel run's complete event log", flush=True)
                played = replay(browser, log)
            print("  PanelServer.stop(): without and with a page attached", flush=True)
            stops = stop_seconds(browser)
        finally:
            browser.close()
    best = print_rates(steps, seconds)
    print_real_rate(best, steps, [run for r in paired for run in r.runs.values()], played)
    wall_ratio = print_rounds(paired, stops)
    print(f"\n3. Screenshot of the page after a complete {POSITIONS}-position run (round 1's panel run): {shot}"
          f"{'' if shot.exists() else ' (NOT written: the page never showed the END event)'}")
    print("\nTarget")
    print(f"   {'run wall time, panel + page / plain, 40 positions':<52}{wall_ratio:>8.3f}x"
          f"{f'<= {TARGET_PANEL_COST:g}x':>10}   {verdict(wall_ratio <= TARGET_PANEL_COST)}")
    print(f"\n{'quick' if args.quick else 'full'} mode, {time.perf_counter() - started:.0f} s; {machine()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
