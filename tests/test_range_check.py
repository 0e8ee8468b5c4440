"""A bench whose source or load cannot reach a point of the selected plan is refused at start, one
line per point, before anything is energised: not stopped in the middle of the run after the points
it could reach (a CL200 meter's Imax on a 120 A phantom load)."""
import datetime as dt
import re
import subprocess

import pytest
import tomli_w

from bench.sim import SimulatedBench
from tests.helpers import REPO, bench_cli, edited_toml, in_calibration, plan_command

pytestmark = pytest.mark.slow  # a whole pytest process


def run_accuracy_plan(tmp_path, role: str, key: str, value: float):
    """The C12.20 plan on the simulated board with one range of the profile narrowed: (the
    finished run, the profile's path). Asserts nothing was energised or waited for."""
    with SimulatedBench() as sim:
        data = sim.profile_data()
        data[role][key] = value
        profile = tmp_path / "bench.toml"
        profile.write_text(tomli_w.dumps(data))
        inspection = tmp_path / "inspection.toml"
        inspection.write_text(tomli_w.dumps(sim.board.inspection))
        run = subprocess.run(plan_command(tmp_path, "test_plans/accuracy/", "--bench", str(profile),
                                          "--inspection", str(inspection), "-q"),
                             capture_output=True, text=True, cwd=REPO, timeout=120)
        assert not sim.world.source.output and sim.world.time_s == 0
    return run, profile


def refused(run, profile, setting: str) -> dict[str, float]:
    """{point: the amps or volts it needs} from the refusal's lines, one per point. Under -q the first
    follows on the progress letters of the items that skipped before the bench opened (C12.20 has no
    equality of current circuits points), so a line is matched wherever it starts."""
    line = re.compile(rf"{re.escape(str(profile))}: {re.escape(setting)} cannot apply (\S+)'s (\S+) [AV]$", re.M)
    found = line.findall(run.stdout)
    assert len({point for point, _ in found}) == len(found), found  # each point named once
    return {point: float(value) for point, value in found}


def test_a_load_that_cannot_reach_imax_is_refused_before_anything_is_energised(tmp_path):
    run, profile = run_accuracy_plan(tmp_path, "load", "max_current_a", 120.0)  # the meter type's Imax is 200 A
    assert run.returncode == 4, run.stdout[-2000:]
    named = refused(run, profile, "load.max_current_a = 120 A")
    # Imax itself, and the half-wave point whose RMS is Imax / sqrt(2) = 141 A; nothing within range
    assert named["MAX-PF1"] == 200 and named["H-EVEN"] == pytest.approx(200 / 2 ** 0.5, rel=1e-4)
    assert all(amps > 120.0 for amps in named.values())
    assert "bench cannot start: the source or load cannot reach" in run.stdout
    assert not (tmp_path / "records.sqlite").exists()


def test_a_source_below_the_plans_highest_voltage_is_refused(tmp_path):
    # the voltage-variation points go to 110 % of 120 V, creep to 115 %
    run, profile = run_accuracy_plan(tmp_path, "source", "max_voltage_v", 121.0)
    assert run.returncode == 4, run.stdout[-2000:]
    named = refused(run, profile, "source.max_voltage_v = 121 V")
    assert named and all(volts > 121.0 for volts in named.values())


def test_bench_check_names_the_points_a_profile_cannot_reach(tmp_path):
    example = edited_toml(REPO / "examples" / "ametek_zera_3phase.toml", lambda d: in_calibration(d, dt.date.today()),
                          tmp_path / "ametek.toml")  # its stated calibrations fall due; the range check must not
    assert bench_cli("check", str(example)).returncode == 0

    def smaller_load(doc):
        doc["load"]["max_current_a"] = 150.0

    checked = bench_cli("check", str(edited_toml(example, smaller_load, tmp_path / "small-load.toml")))
    assert checked.returncode == 1
    named = re.findall(r"load.max_current_a = 150 A cannot apply (\S+)'s", checked.stdout)
    assert sorted(named) == ["MAX-PF05", "MAX-PF08C", "MAX-PF1"]  # 200 A each; the half-wave's 141 A fits
    assert "NOT READY for ANSI C12.20" in checked.stdout
