"""Firmware regression: a release compared with a stored baseline, point by point."""
import json
import re
import shutil
import subprocess

import pytest

from bench.records.baseline import Baseline, compare
from tests.helpers import ITEM, REPO, plan_command, properties, run_plans


@pytest.mark.slow
def test_a_release_that_breaks_behaviour_is_caught_and_shown_beside_its_baseline(tmp_path, whole_plan):
    baseline = whole_plan("default")  # the whole plan on AMI-Release-v4.2
    assert baseline.process.returncode == 0
    (tmp_path / "reports").mkdir()
    shutil.copy(baseline.reports / "records.sqlite", tmp_path / "reports")  # this run adds to a copy
    run, cases, html = run_plans(tmp_path, "--sim-scenario", "release_v4_3", "--baseline", "AMI-Release-v4.2",
                                 plans="test_plans/")
    failed = {(name.split("[")[0], ITEM.search(name).group("point")) for name, case in cases.items()
              if case.find("failure") is not None}
    # v4.3 mis-scales harmonic energy, drops interval records, stops buffering alarms; and the
    # audit's baseline check rightly says the meters are not on AMI-Release-v4.2
    assert failed == {("test_waveform_distortion", "H5"), ("test_interval_records", None),
                      ("test_alarms_buffered_into_the_daily_payload", None), ("test_firmware_baseline", None)}
    h5 = next(c for n, c in cases.items() if "[H5-pos1-" in n)
    assert properties(h5)["Baseline"].endswith("PASS") and float(properties(h5)["Change"].rstrip(" %")) < -0.4
    assert "REGRESSION SIM16A00001 H5: newly FAIL" in run.stdout
    assert re.search(r"<th[^>]*>Baseline</th>", html) and re.search(r"<th[^>]*>Change</th>", html)
    [record] = [json.loads(p.read_text())["record"] for p in (tmp_path / "reports").glob("run-*.json")
                if json.loads(p.read_text())["record"].get("baseline")]
    assert {(r["serial"], r["point"]) for r in record["baseline"]["regressions"]} >= {("SIM16A00008", "FW-INTERVALS")}


@pytest.mark.slow
def test_an_unknown_baseline_stops_the_run_with_one_line(tmp_path):
    run = subprocess.run(plan_command(tmp_path, "test_plans/firmware/", "--baseline", "AMI-Release-v9.9", "-q"),
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert run.returncode == 4
    assert ("baseline: no run and no complete run of 'ANSI C12.20 accuracy tests (working values) 2026.11-working' on "
            "SIM-16S-200 meters with release 'AMI-Release-v9.9' in the records") in run.stdout


BASE = Baseline("AMI-Release-v4.2", "0123abcd", "2026-11-01T10:00:00+00:00", {
    ("M1", "FL-PF1"): {"value_pct": 0.05, "verdict": "PASS"},
    ("M1", "H5"): {"value_pct": -0.10, "verdict": "PASS"},
    ("M1", "FW-VERSION"): {"value_pct": None, "verdict": "PASS"},
})


@pytest.mark.parametrize("serial, point, value, verdict, regression", [
    ("M1", "FL-PF1", 0.09, "PASS", ""),  # moved 0.04 % towards the limit: within the 0.05 % margin
    ("M1", "FL-PF1", 0.11, "PASS", "moved 0.0600 % towards its limit"),
    ("M1", "FL-PF1", -0.02, "PASS", ""),  # moved away from the limit
    ("M1", "H5", -0.45, "FAIL", "newly FAIL"),
    ("M1", "FW-VERSION", None, "FAIL", "newly FAIL"),
])
def test_compare_flags_new_failures_and_points_moving_towards_their_limit(serial, point, value, verdict, regression):
    found = compare(BASE, serial, point, {"point": point, "value_pct": value, "verdict": verdict}, margin_pct=0.05)
    assert found.regression.startswith(regression) if regression else found.regression == ""


def test_a_point_the_baseline_never_measured_is_not_compared():
    assert compare(BASE, "M2", "FL-PF1", {"point": "FL-PF1", "value_pct": 0.3, "verdict": "FAIL"}, 0.05) is None
