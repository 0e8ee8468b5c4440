"""Which limits a meter is judged against is data: a table states its forms and classes, the
shipped C12.1 table certifies the non-Blondel Form 2S (with its equality of current circuits) and
Blondel forms alike, and the limits that were wrong or missing now catch the meters they should."""
import dataclasses
import math
import re
import subprocess
from pathlib import Path

import pytest

from bench.metrology.forms import forms
from bench.plans.limits import DEFAULT_TABLE, SHIPPED_TABLES, default_table, load_table
from bench.procedures.counting import CreepPoint
from bench.procedures.gating import measure_point
from bench.sim import SimulatedBench
from bench.sim.simbench import board_path
from bench.station.bench import Bench
from bench.station.safety import SafetyError
from tests.helpers import EXACT, REPO, edited_toml, plan_command, run_plans

STANDARDS = REPO / "bench" / "standards"
C12_1 = STANDARDS / "c12_1.toml"


def board_variant(tmp_path: Path, board: str, positions: list[dict], **tables: dict) -> Path:
    """A copy of a shipped board with its first positions' values replaced (and other tables merged)."""
    def edit(data: dict) -> None:
        for stated, changes in zip(data["position"], positions):
            stated.update(changes)
        for name, values in tables.items():
            data[name] = {**data.get(name, {}), **values}
    return edited_toml(board_path(board), edit, tmp_path / f"{board}.toml")


def test_each_meter_form_picks_the_shipped_table_that_states_it():
    assert default_table("2S") == C12_1 and default_table("4S") == C12_1 and default_table("6S") == C12_1
    assert default_table("16S") == DEFAULT_TABLE and default_table("12S") == DEFAULT_TABLE
    for path in SHIPPED_TABLES:  # every form of bench/standards/forms.toml is judged by some shipped table
        assert set(load_table(path).forms) <= set(forms())
    assert set(forms()) <= {f for path in SHIPPED_TABLES for f in load_table(path).forms}


def test_form_2s_elements_add_up_half_of_each_current_coil():
    two_s = forms()["2S"]
    assert (two_s.elements, two_s.circuits, two_s.blondel) == (1, 2, False)
    assert two_s.circuits_of(0) == [0, 1] and not two_s.shared_circuits()
    six_s = forms()["6S"]
    assert six_s.circuits == 3 and six_s.shared_circuits() == [2]  # phase B's coil is wound against both elements


def test_equality_of_current_circuits_on_form_2s_is_measured_against_truth(tmp_path):
    """Each coil alone shows its own gain; both in series (full load) the mean of the two."""
    board = board_variant(tmp_path, "residential_2s",
                          [{**EXACT, "element_offsets_pct": [0.0], "offset_pct": 0.0,
                            "circuit_offsets_pct": [0.45, -0.15]},
                           {**EXACT, "element_offsets_pct": [0.0], "offset_pct": 0.05,
                            "circuit_offsets_pct": [0.0, 0.0]}])
    with SimulatedBench(board) as sim, Bench(sim.profile()) as bench:
        points = {p.id: p for p in load_table(C12_1).points(sim.meter_type())}
        assert [p for p in points if p.startswith("EQ-")] == ["EQ-PF1-C1", "EQ-PF1-C2"]
        errors = {}
        for point_id in ("EQ-PF1-C1", "EQ-PF1-C2", "FL-PF1"):
            for number, result in measure_point(bench, points[point_id]).items():
                truth = bench.sim_control.true_error_pct(number)
                assert abs(result.pulses.error_pct - truth) <= result.pulses.expanded_pct
                errors[point_id, number] = result.pulses.error_pct
            if point_id.startswith("EQ-"):  # one coil alone: half the power of both in series
                assert sim.world.true_power_w() == pytest.approx(240 * 30 / 2, rel=2e-3)
    assert errors["EQ-PF1-C1", 1] == pytest.approx(0.45, abs=0.02)
    assert errors["EQ-PF1-C2", 1] == pytest.approx(-0.15, abs=0.02)
    assert errors["FL-PF1", 1] == pytest.approx(0.15, abs=0.02)  # both coils in series: the mean gain
    assert errors["EQ-PF1-C1", 2] == pytest.approx(errors["EQ-PF1-C2", 2], abs=0.01)


@pytest.mark.slow
def test_form_2s_board_certifies_under_the_shipped_c12_1_table(whole_plan):
    run = whole_plan("residential_2s")
    assert run.process.returncode == 0, run.process.stdout[-3000:]
    assert run.record["plan"]["name"].startswith("ANSI C12.1 ") and run.record["status"] == "complete"
    assert {"EQ-PF1-C1", "EQ-PF1-C2", "MAX-PF1"} <= set(run.record["plan"]["points"])
    assert all(meter["certified"] for meter in run.record["meters"])


@pytest.mark.slow
def test_form_12s_board_certifies_under_the_shipped_c12_1_table(tmp_path):
    run, cases, _ = run_plans(tmp_path, "--sim-scenario", "network_12s", "--limits", str(C12_1),
                              plans="test_plans/accuracy/")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "EL-PF1-E2" in " ".join(cases) and not any("EQ-" in name for name in cases)  # one circuit per element
    assert run.stdout.count("CERTIFIED (accuracy PASS)") == 4


def test_a_table_that_does_not_state_the_meters_form_is_refused_at_start(tmp_path):
    run = subprocess.run(plan_command(tmp_path, "test_plans/accuracy/", "--sim-scenario", "residential_2s",
                                      "--limits", str(DEFAULT_TABLE)),
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert run.returncode == 4
    assert re.search(rf"{re.escape(str(DEFAULT_TABLE))}: 'ANSI C12.20 .*' applies to Forms 1S, .*, not to the "
                     rf"meter's Form 2S \(table.forms\)", run.stderr), run.stderr


def test_accuracy_classes_are_the_tables_data():
    """A class 1 meter needs a table that holds class 1, not a code change."""
    meter = dataclasses.replace(SimulatedBench("default").meter_type(), accuracy_class=1.0)
    iec_21 = load_table(STANDARDS / "iec_62053_21.toml")
    assert iec_21.not_applicable(meter) == []
    by_id = {p.id: p for p in iec_21.points(meter)}
    assert by_id["FL-PF1"].limit_pct == 1.0 and by_id["LL05-PF1"].limit_pct == 1.5
    assert by_id["CREEP"].period_constant == 600e6
    [why] = load_table().not_applicable(meter)
    assert "classes 0.1, 0.2, 0.5, not for the meter's class 1 (table.classes)" in why
    iec_22 = load_table(STANDARDS / "iec_62053_22.toml")
    assert iec_22.classes == (0.2, 0.5) and "LL01-PF1" in {p.id for p in iec_22.points(SimulatedBench().meter_type())}


@pytest.mark.slow
def test_a_class_02_meter_creeping_at_10_w_fails_creep(tmp_path, make_board):
    """IEC 62053-22's 900e6 for class 0.2 gives a 16S CL200 meter 750 s: 10 W of creep is 2.08 Wh,
    two pulses of 1 Wh. The swapped 600e6 (500 s, 1.39 Wh, one pulse) would have passed it."""
    meter = SimulatedBench("default").meter_type()
    creep = next(p for p in load_table().points(meter) if isinstance(p, CreepPoint))
    period = creep.period_s(meter, meter.test_outputs["Wh"])
    assert period == pytest.approx(750.0)
    assert math.floor(10.0 * period / 3600 / meter.kh_wh) == 2 > creep.max_pulses
    assert math.floor(10.0 * period * 600 / 900 / 3600 / meter.kh_wh) <= creep.max_pulses
    board = make_board(positions=[{**EXACT, "creep_w": 10.0}, {**EXACT, "creep_w": 0.0}])
    run, cases, _ = run_plans(tmp_path, "--sim-scenario", str(board), plans="test_plans/accuracy/test_no_load.py")
    verdicts = {name: case.find("failure") is None for name, case in cases.items()}
    assert verdicts == {"test_no_load[CREEP-pos1-SIM16A00001]": False, "test_no_load[CREEP-pos2-SIM16A00002]": True}


def test_a_form_whose_circuits_a_board_cannot_drive_is_refused_at_open(tmp_path, make_board):
    board = make_board(positions=[{**EXACT, "element_offsets_pct": [0.0, 0.0]}],
                       meter_type={"form": "6S", "elements": 2}, source={"phases": 3},
                       load={"phases": 3})
    with SimulatedBench(board) as sim, pytest.raises(SafetyError) as refused:
        Bench(sim.profile()).open()
    assert "meter_type.form = 6S: current circuit(s) 2 feed more than one element" in str(refused.value)
    assert "\n" not in str(refused.value)
