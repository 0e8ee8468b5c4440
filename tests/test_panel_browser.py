"""The panel in a real browser (Playwright driving the system Chromium, nothing downloaded): a
scaled simulated run with ``--panel``, the inspection answered in the page (a typo refused first),
tiles filling with live errors, abort from the page, and the simulator's control channel saying the
source and load are off. Screenshots go to the test's directory (kept by pytest's tmp_path)."""
import json
import queue
import subprocess
import threading
import time

import pytest
import tomli_w

from bench.sim import SimulatedBench
from instruments.sim_control import SimControlClient
from tests.helpers import REPO, plan_command, require_tool

pytestmark = pytest.mark.slow
sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser():
    chromium = require_tool("chromium")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def lines_of(run: subprocess.Popen) -> "queue.Queue[str]":
    found: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [found.put(line) for line in run.stdout], daemon=True).start()
    return found


def panel_url(lines: "queue.Queue[str]", run: subprocess.Popen, within_s: float = 60.0) -> str:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            assert run.poll() is None, "the run ended before its panel was up"
            continue
        if "board panel at " in line:
            return line.split("board panel at ")[1].strip()
    raise AssertionError("no panel address printed")


def test_a_run_seen_answered_and_aborted_from_the_page(tmp_path, browser, make_board):
    board = make_board(positions=[{"serial": f"SIM16A{k:05d}", "mac": f"00:1B:C5:16:00:{k:02X}"}
                                  for k in range(1, 41)])
    with SimulatedBench(str(board), scale=30.0) as sim:
        profile = tmp_path / "sim.toml"
        profile.write_text(tomli_w.dumps(sim.profile_data()))
        control = SimControlClient(sim.profile_data()["clock"]["address"]).open()
        run = subprocess.Popen(plan_command(tmp_path, "test_plans/", "--bench", str(profile), "-q", "--panel",
                                            "--panel-port", "0", "--inspection", "ask", "--operator", "tech-9"),
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = lines_of(run)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(panel_url(lines, run))
            page.locator("#prompt").wait_for(state="visible", timeout=30_000)
            assert page.locator("#prompt-title").inner_text() == "Physical inspection"
            page.fill("#f-operator", "Dana Ruiz")
            page.fill("#f-torque_1", "abc")
            page.click("#prompt-form button[type=submit]")
            page.wait_for_function("document.getElementById('prompt-error').textContent.length > 0")
            assert page.locator("#prompt-error").inner_text() == (
                "position 1 SIM16A00001: torque 'abc' is not a number of in-lb")
            for k in range(1, 41):
                page.fill(f"#f-torque_{k}", "50" if k != 39 else "50 50 50 50 50 61")  # #39: I3 load too tight
                page.fill(f"#f-seals_{k}", f"S-{k:04d}")
            page.select_option("#f-jaws_40", "no")
            page.click("#prompt-form button[type=submit]")
            page.locator("#prompt").wait_for(state="hidden", timeout=10_000)
            # The tiles fill with errors as points complete; the page is told in the same order as the log.
            page.wait_for_function("document.querySelectorAll('.tile .lights i').length >= 40 * 3", timeout=120_000)
            every_error = "[...document.querySelectorAll('.tile .error')].every(e => e.textContent.includes('%'))"
            page.wait_for_function(every_error, timeout=120_000)  # the payload point's error, on every position
            tiles = page.locator(".tile")
            assert tiles.count() == 40
            assert page.locator("#point-n").inner_text().startswith("point ")
            assert page.locator("#stimulus td").count() > 0
            page.screenshot(path=str(tmp_path / "panel-mid-run.png"), full_page=True)
            assert run.poll() is None  # the abort below stops a run that is still going
            page.on("dialog", lambda dialog: dialog.accept())
            page.click("#abort")
            output = ""
            run.wait(timeout=60)
            while not lines.empty():
                output += lines.get()
            page.wait_for_function("document.querySelector('#banners').textContent.includes('Run ended')",
                                   timeout=20_000)
            page.screenshot(path=str(tmp_path / "panel-aborted.png"), full_page=True)
            banners = page.locator("#banners").inner_text()
        finally:
            run.kill()
        assert control.outputs_on() == (False, False)  # the simulator itself: source and load are off
        control.close()
    assert run.returncode != 0
    assert "interrupted by SIGINT: safe state reached" in banners and "Run ended: incomplete" in banners, banners
    [record] = [json.loads(p.read_text())["record"] for p in tmp_path.glob("run-*.json")]
    assert record["status"] == "incomplete" and record["scope"]["why"].startswith("interrupted by SIGINT")
    [log] = tmp_path.glob("run-*.events.jsonl")
    events = [json.loads(line) for line in log.read_text().splitlines()]
    answer = next(e for e in events if e["kind"] == "answer")
    assert answer["data"]["operator"] == "Dana Ruiz" and answer["data"]["answers"]["jaws_40"] == "no"
    # What the page showed is what was recorded: every result event is the record's own entry.
    shown = {(e["data"]["point"], e["data"]["position"]): e["data"] for e in events if e["kind"] == "result"}
    recorded = {(r["point"], m["position"]): r for m in record["meters"] for r in m["results"]}
    assert shown and set(shown) == set(recorded)
    for key, result in recorded.items():
        assert (shown[key]["verdict"], shown[key]["error_pct"]) == (result["verdict"], result["value_pct"])
    inspected = {m["position"]: m["results"][0]["cells"]["Measured"] for m in record["meters"]}
    assert inspected[1] == "torque 50 in-lb on all 6 terminals, jaw tension good, seals S-0001 by Dana Ruiz"
    assert "OUTSIDE the band: I3 load 61" in inspected[39] and "jaw tension NOT good" in inspected[40]
    print(f"screenshots: {tmp_path / 'panel-mid-run.png'}, {tmp_path / 'panel-aborted.png'}; output: {output[-500:]}")
