"""Plan items handed their arguments directly (bench/pytest_plugin/direct.py): the same results as
pytest's fixture setup, and pytest's setup whenever a lab's conftest changes what an item gets."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO, plan_command

pytestmark = pytest.mark.slow

# Two plans of the default board that measure quickly: the nameplate Kh (certify) and the firmware
# baseline (an audit step).
PLANS = ("test_plans/accuracy/test_nameplate.py", "test_plans/audit/test_firmware_baseline.py")
POSITIONS = 8  # the default board's

# Which fixtures pytest set up for the plan items, by pytest's own hook, written when the session ends.
RECORDING_CONFTEST = '''
import json, os
SET_UP = []
def pytest_fixture_setup(fixturedef, request):
    SET_UP.append(fixturedef.argname)
def pytest_sessionfinish(session):
    with open(os.environ["SET_UP_FILE"], "w") as out:
        json.dump(SET_UP, out)
'''


def _run(tmp_path: Path, conftest: str = "", *args: str) -> tuple[subprocess.CompletedProcess, list[str], Path]:
    plans = tmp_path / "plans"
    plans.mkdir(parents=True)
    for plan in PLANS:
        shutil.copy(REPO / plan, plans / Path(plan).name)
    (plans / "conftest.py").write_text(RECORDING_CONFTEST + conftest)
    set_up = tmp_path / "set_up.json"
    reports = tmp_path / "reports"
    run = subprocess.run(plan_command(reports, str(plans), "-rs", *args), capture_output=True, text=True, cwd=REPO,
                         timeout=300, env={**os.environ, "SET_UP_FILE": str(set_up)})
    return run, json.loads(set_up.read_text()), reports


def _results(reports: Path) -> dict[tuple[str, int], tuple[str, float | None, dict]]:
    """Each (point, position)'s verdict, value and report cells from the run's signed JSON record."""
    record = json.loads(next(reports.glob("run-*.json")).read_text())["record"]
    return {(r["point"], m["position"]): (r["verdict"], r["value_pct"], r["cells"])
            for m in record["meters"] for r in m["results"]}


def test_plan_items_are_handed_their_arguments_and_measure_as_with_pytests_fixture_setup(tmp_path):
    direct, set_up_direct, reports_direct = _run(tmp_path / "direct")
    assert direct.returncode == 0, direct.stdout[-2000:]
    assert f"{2 * POSITIONS} passed" in direct.stdout
    # pytest set up none of the plan's arguments: the bench session fixture only, if anything
    assert not {"point", "position", "certify", "audit", "request"} & set(set_up_direct), set_up_direct

    # An autouse fixture of the lab's: pytest sets every item up as usual, and the results are the same.
    autouse = "\nimport pytest\n@pytest.fixture(autouse=True)\ndef lab_note():\n    return 'noted'\n"
    usual, set_up_usual, reports_usual = _run(tmp_path / "usual", autouse)
    assert usual.returncode == 0, usual.stdout[-2000:]
    assert set_up_usual.count("certify") == POSITIONS and set_up_usual.count("audit") == POSITIONS
    assert set_up_usual.count("position") == 2 * POSITIONS
    assert _results(reports_direct) == _results(reports_usual)
    assert len(_results(reports_direct)) == 2 * POSITIONS


def test_a_conftest_that_overrides_a_plan_fixture_is_used(tmp_path):
    override = '''
import pytest
@pytest.fixture
def certify(request):
    def refuse(point, position):
        pytest.skip(f"the lab's own certify: {point.id} not run on pos{position.number}")
    return refuse
'''
    run, set_up, _ = _run(tmp_path, override)
    assert run.returncode == 0, run.stdout[-2000:]
    assert set_up.count("certify") == POSITIONS
    assert f"{POSITIONS} passed, {POSITIONS} skipped" in run.stdout  # the audit step is the plugin's still
    assert "the lab's own certify: KH not run on pos1" in run.stdout


def test_setup_show_shows_the_plan_fixtures_being_set_up(tmp_path):
    run, set_up, _ = _run(tmp_path, "", "--setup-show")
    assert run.returncode == 0, run.stdout[-2000:]
    assert set_up.count("certify") == POSITIONS
    assert "SETUP    F certify" in run.stdout


def test_items_that_are_not_applicable_open_nothing(tmp_path):
    """The skip mark is judged before an item is handed its runner: a run whose every item is not
    applicable opens no bench and publishes no record."""
    reports = tmp_path / "reports"
    run = subprocess.run(plan_command(reports, "test_plans/accuracy/test_reactive.py"), capture_output=True,
                         text=True, cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:]
    assert f"{POSITIONS} skipped" in run.stdout
    assert not reports.exists() or not list(reports.glob("run-*.json"))
