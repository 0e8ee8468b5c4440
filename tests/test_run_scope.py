"""A run's status is a fact about what ran: -k, -x and deselection give partial runs that never
certify, are never "as left" and never a baseline; baselines match plan, limits version, meter
type and serials, and say what they compared."""
import json
import subprocess

import pytest

from bench.sim import board_path
from tests.helpers import REPO, bench_cli, edited_toml, plan_command

pytestmark = pytest.mark.slow  # whole plan runs and the bench CLI

C12_20 = "test_plans/accuracy/"


def plan(reports, *args, check=None):
    run = subprocess.run(plan_command(reports, *args, "-q"), capture_output=True, text=True, cwd=REPO, timeout=300)
    if check is not None:
        assert run.returncode == check, run.stdout[-3000:] + run.stderr[-2000:]
    return run


def records(reports):
    """Every JSON record in ``reports``, oldest first, without their signature wrappers."""
    found = [json.loads(p.read_text())["record"] for p in reports.glob("run-*.json")]
    return sorted(found, key=lambda r: r["started_at"])


def cli(reports, *args):
    return bench_cli(*args, "--records", f"sqlite:///{reports / 'records.sqlite'}")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One reports directory holding a complete C12.20 run, a -k run and a -x run on the same meters."""
    reports = tmp_path_factory.mktemp("reports")
    plan(reports, C12_20, check=0)
    plan(reports, C12_20, "-k", "FL-PF1", check=0)
    plan(reports, C12_20, "-x", "--sim-scenario", "mixed", check=1)
    return reports


def test_only_the_run_of_every_item_is_complete_and_certifies(runs):
    complete, selected, stopped = records(runs)
    assert complete["status"] == "complete" and complete["scope"]["why"] == ""
    assert complete["scope"]["ran"] == complete["scope"]["planned"] == 8 * len(complete["plan"]["points"])
    assert all(m["certified"] and m["certificate"] for m in complete["meters"])

    assert selected["status"] == "partial" and not any(m["certified"] or m["certificate"] for m in selected["meters"])
    assert selected["scope"]["ran"] == 8 and "deselected" in selected["scope"]["why"]
    assert len(selected["scope"]["not_run"]) == selected["scope"]["planned"] - 8

    assert stopped["status"] == "partial" and "stopping after 1 failures" in stopped["scope"]["why"]
    assert not any(m["certified"] for m in stopped["meters"])
    # certificates exist for the complete run's meters only
    assert {p.name.split("-", 1)[1][:8] for p in (runs / "certificates").glob("*.html")} == {complete["run_id"][:8]}


def test_history_never_calls_a_partial_run_as_left(runs):
    shown = cli(runs, "history", "SIM16A00001")
    lines = shown.stdout.splitlines()
    assert shown.returncode == 0
    complete, selected, _ = records(runs)  # the -x run was on the mixed board's meters
    assert lines[2].startswith("as found, as left")  # the complete acceptance run: not adjusted after it
    assert lines[3].split()[:2] == [selected["run_id"][:8], selected["started_at"]]  # no label, no episode
    assert not any(line.startswith("as left") for line in lines)
    assert lines[-1].startswith("1 run(s) partial or incomplete")


def test_a_partial_run_is_never_a_baseline(runs):
    complete, selected, _ = records(runs)
    refused = plan(runs, C12_20, "-k", "FL-PF1", "--baseline", selected["run_id"][:8], check=4)
    assert f"baseline: run {selected['run_id'][:8]} is partial: only a complete run can be a baseline" in refused.stdout
    # by release, the complete run is chosen, and the report says which and how much it compared
    chosen = plan(runs, C12_20, "--baseline", "AMI-Release-v4.2", check=0)
    base = records(runs)[-1]["baseline"]
    planned = complete["scope"]["planned"]  # every point of the table on every position
    assert base["run_id"] == complete["run_id"] and base["points_compared"] == base["points_run"] == planned
    assert f"baseline: AMI-Release-v4.2 = run {complete['run_id'][:8]}" in chosen.stdout
    assert f"{planned} of {planned} points compared, 0 regression(s)" in chosen.stdout


def test_a_baseline_of_another_meter_type_or_other_meters_is_refused_in_one_line(runs, tmp_path, make_board):
    other_type = make_board(meter_type={"model": "OTHER-16S"})
    refused = plan(runs, C12_20, "--sim-scenario", str(other_type), "--baseline", "AMI-Release-v4.2", check=4)
    assert "baseline: no run and no complete run of 'ANSI C12.20" in refused.stdout
    assert "on OTHER-16S meters with release 'AMI-Release-v4.2'" in refused.stdout
    by_id = plan(runs, C12_20, "--sim-scenario", str(other_type), "--baseline", records(runs)[0]["run_id"][:8], check=4)
    assert "tested {'manufacturer'" in by_id.stdout and "'model': 'OTHER-16S'" in by_id.stdout

    def renumber(data):
        for i, position in enumerate(data["position"]):
            position["serial"] = f"SIM16B0000{i + 1}" if i < 6 else position["serial"]

    other_meters = edited_toml(board_path("default"), renumber, tmp_path / "other_meters.toml")
    few = plan(runs, C12_20, "--sim-scenario", str(other_meters), "--baseline", "AMI-Release-v4.2", check=4)
    assert "holds 2 of this board's 8 meters (--baseline-min-overlap 0.8): nothing to compare them with" in few.stdout
    assert len([line for line in few.stdout.splitlines() if "baseline" in line]) == 1


def test_one_module_of_a_plan_is_a_partial_run_of_that_plan(tmp_path):
    """Nothing deselected, nothing failed: but the C12.20 plan has 26 points and only creep ran."""
    plan(tmp_path, "test_plans/accuracy/test_no_load.py", check=0)
    [record] = records(tmp_path)
    planned = 8 * len(record["plan"]["points"])
    assert record["status"] == "partial" and record["scope"]["ran"] == 8 and record["scope"]["planned"] == planned
    assert record["scope"]["why"] == f"{planned - 8} of {planned} planned item(s) not selected"
    assert not (tmp_path / "certificates").exists()
