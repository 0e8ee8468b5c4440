"""The limits table: what it resolves to for a meter type, and one-line errors naming the row."""
import dataclasses
import re
import subprocess

import pytest

from bench.datafiles import ConfigError
from bench.metrology.uncertainty import Rule
from bench.plans.limits import DEFAULT_TABLE, load_table
from bench.procedures.counting import CreepPoint, StartingPoint
from bench.procedures.gating import AccuracyPoint
from bench.sim import SimulatedBench
from tests.helpers import REPO, edited_toml, plan_command

METER_16S = SimulatedBench("default").meter_type()  # 3 elements, class 0.2, 120 V, Imax 200 A, Kh 1 Wh


def test_the_default_table_for_a_16s_class_02_meter():
    points = load_table().points(METER_16S)
    by_id = {p.id: p for p in points}
    families = [p.family for p in points]
    assert families.count("load_performance") == 14 and families.count("harmonics") == 4
    low_current = {p.id: p.load.current_fraction for p in points if isinstance(p, AccuracyPoint)
                   and p.family == "load_performance" and (p.load.current_fraction or 0) < 0.1}
    assert low_current == {"LL01-PF1": 0.01, "LL02-PF1": 0.02, "LL05-PF1": 0.05, "LL02-PF05": 0.02, "LL02-PF08C": 0.02}
    assert {p.id: p.shift_from for p in points if isinstance(p, AccuracyPoint) and p.load.power_factor == 0.5
            and p.shift_from} == {
        "V90-PF05": "FL-PF05", "V110-PF05": "FL-PF05", "F98-PF05": "FL-PF05", "F102-PF05": "FL-PF05"}
    assert [p.id for p in points if p.family == "polyphase"] == [
        "EL-PF1-E1", "EL-PF1-E2", "EL-PF1-E3", "EL-PF05-E1", "EL-PF05-E2", "EL-PF05-E3", "UNBAL"]
    assert by_id["EL-PF05-E2"].load.weights == (0.0, 1.0, 0.0)
    assert by_id["LL-PF05"].limit_pct == 0.3 and by_id["H5"].limit_pct == 0.4
    assert by_id["H5"].shift_from == "H-REF" and by_id["V90"].shift_from == "FL-PF1"
    assert by_id["LL-PF1"].dwell.target_u_pct == pytest.approx(0.2 / 5)  # IEC 62058-11: a fifth of the limit
    assert (by_id["LL-PF1"].dwell.floor_s(False), by_id["LL-PF1"].dwell.floor_s(True)) == (30.0, 4.0)
    assert all(p.rule is Rule.SIMPLE for p in points if isinstance(p, AccuracyPoint))


def test_creep_and_starting_periods_follow_from_the_meter_constant():
    by_id = {p.id: p for p in load_table().points(METER_16S)}
    creep, start = by_id["CREEP"], by_id["START"]
    assert isinstance(creep, CreepPoint) and isinstance(start, StartingPoint)
    # class 0.2: 900e6 / (k m Un Imax) minutes, k = 1000 imp/kWh, m = 3, Un = 120 V, Imax = 200 A
    assert creep.period_s(METER_16S, METER_16S.test_outputs["Wh"]) == pytest.approx(900e6 / (1000 * 3 * 120 * 200) * 60)
    # 1.5 x the time of 2 pulses of 1 Wh at 3 x 120 V x 0.03 A
    assert start.period_s(METER_16S, METER_16S.test_outputs["Wh"]) == pytest.approx(1.5 * 2 * 3600 / (3 * 120 * 0.03))


def test_class_picks_each_rows_values_and_single_element_meters_skip_element_rows():
    meter = dataclasses.replace(METER_16S, accuracy_class=0.5, form="1S", elements=1)
    by_id = {p.id: p for p in load_table().points(meter, Rule.GUARDED)}
    assert by_id["LL-PF05"].limit_pct == 0.6 and by_id["FL-PF1"].rule is Rule.GUARDED
    assert by_id["CREEP"].period_constant == 600e6
    assert not any(p.family == "polyphase" for p in by_id.values())


def test_a_tighter_class_gets_a_creep_period_at_least_as_long():
    """IEC 62053-22: 900e6 for class 0.2 S, 600e6 for class 0.5 S; a tighter class, a longer period."""
    constants = {c: {p.id: p for p in load_table().points(dataclasses.replace(METER_16S, accuracy_class=c))}["CREEP"]
                 .period_constant for c in (0.1, 0.2, 0.5)}
    assert constants[0.1] >= constants[0.2] == 900e6 > constants[0.5] == 600e6


def write_table(tmp_path, edit):
    return edited_toml(DEFAULT_TABLE, edit, tmp_path / "lab_limits.toml")


def row(data, point_id):
    return next(r for r in data["point"] if r["id"] == point_id)


@pytest.mark.parametrize("edit, where, says", [
    (lambda d: row(d, "FL-PF1").update(pf=1.5), r"point\[\d+\] FL-PF1.pf", "outside"),
    (lambda d: row(d, "V90").update(shift_from="FL-PF2"), r"point\[\d+\] V90.shift_from", "not an accuracy row"),
    (lambda d: row(d, "H5").update(harmonics="seventh"), r"point\[\d+\] H5.harmonics", "no profile 'seventh'"),
    (lambda d: row(d, "LL-PF1").update(tolerance={"0.3": 0.2}), r"point\[\d+\] LL-PF1.tolerance.0.3",
     "not one of the table's classes"),
    (lambda d: row(d, "UNBAL").update(elements=[0.5, 0.25]), r"point\[\d+\] UNBAL.elements", "largest 1"),
    (lambda d: row(d, "MAX-PF1").update(id="FL-PF1"), r"point\[\d+\] FL-PF1.id", "more than one row"),
    (lambda d: row(d, "F98").update(tolerence={"0.2": 0.1}), r"point\[\d+\] F98.tolerence", "unknown key"),
    (lambda d: row(d, "START").pop("provenance"), r"point\[\d+\] START.provenance", "missing"),
    (lambda d: d["dwell"].update(min_pulses=0), r"dwell.min_pulses", "whole number in [1, 100000]"),
    (lambda d: d["dwell"].update(min_dwell_test_mode_s=float("nan")), r"dwell.min_dwell_test_mode_s", "finite"),
    (lambda d: d["dwell"].update(min_dwell_test_mode_s=-4.0), r"dwell.min_dwell_test_mode_s", "outside [0, 86400]"),
])
def test_a_broken_table_is_one_line_naming_file_and_row(tmp_path, edit, where, says):
    path = write_table(tmp_path, edit)
    with pytest.raises(ConfigError) as raised:
        load_table(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert says in message
    assert re.search(where, message), message


def test_a_row_without_one_of_the_tables_classes_is_named_when_the_table_is_loaded(tmp_path):
    path = write_table(tmp_path, lambda d: row(d, "FL-PF05").update(tolerance={"0.5": 0.6, "0.1": 0.15}))
    with pytest.raises(ConfigError, match=r"point\[\d+\] FL-PF05.tolerance.0.2: no value for class 0.2"):
        load_table(path)


@pytest.mark.slow
def test_pytest_with_a_broken_table_stops_at_start(tmp_path):
    path = write_table(tmp_path, lambda d: row(d, "H5").update(harmonics="seventh"))
    run = subprocess.run(plan_command(tmp_path, "test_plans/", "--limits", str(path), "-q"),
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert run.returncode == 4
    assert re.search(rf"{re.escape(str(path))}: point\[\d+\] H5.harmonics: no profile 'seventh'", run.stderr)


@pytest.mark.slow
def test_a_labs_own_table_runs_only_its_points(tmp_path):
    def only_full_load(data):
        data["point"] = [row(data, "FL-PF1")]
        data["table"]["name"] = "Lab 7 acceptance table"
    path = write_table(tmp_path, only_full_load)
    run = subprocess.run(plan_command(tmp_path, "test_plans/accuracy/", "--limits", str(path), "-q"),
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:]
    assert "8 passed" in run.stdout and "limits: Lab 7 acceptance table" in run.stdout
