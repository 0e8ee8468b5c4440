"""The registers each plan reads and writes are declared beside its procedure and checked against the
profile before anything is energised: a gap is one line per register at start, never an error in
the middle of a run; and the declarations are complete (the plans pass with nothing else mapped)."""
import subprocess

import pytest
import tomli_w

from bench.plans.audit import Audit
from bench.plans.firmware import FirmwareChecks
from bench.sim import SimulatedBench
from bench.station.profile import REQUIRED_REGISTERS
from tests.helpers import REPO, plan_command

pytestmark = pytest.mark.slow  # whole pytest processes


def run_with_registers(tmp_path, sim, edit, *plans):
    data = sim.profile_data()
    edit(data["meter_type"]["registers"])
    profile = tmp_path / "bench.toml"
    profile.write_text(tomli_w.dumps(data))
    return subprocess.run(plan_command(tmp_path, *plans, "--bench", str(profile), "--inspection",
                                       str(write_inspection(tmp_path, sim)), "-q"),
                          capture_output=True, text=True, cwd=REPO, timeout=120), profile


def write_inspection(tmp_path, sim):
    path = tmp_path / "inspection.toml"
    path.write_text(tomli_w.dumps(sim.board.inspection))
    return path


def test_a_register_the_plans_need_but_the_profile_lacks_stops_the_run_before_anything_is_energised(tmp_path):
    def break_map(registers):
        del registers["tamper"]
        registers["interval_select"]["writable"] = False

    with SimulatedBench() as sim:
        run, profile = run_with_registers(tmp_path, sim, break_map, "test_plans/audit/", "test_plans/firmware/")
        assert not sim.world.source.output and sim.world.time_s == 0  # nothing was energised or waited for
    assert run.returncode == 4
    lines = [line for line in run.stdout.splitlines() if line.startswith(str(profile))]
    assert lines == [f"{profile}: meter_type.registers has no 'tamper' (the commissioning audit reads it)",
                     f"{profile}: meter_type.registers has no writable 'interval_select' "
                     f"(the firmware regression writes it)"]
    assert "bench cannot start: the profile's register map lacks 2 register(s) the selected plans need" in run.stdout
    assert not (tmp_path / "records.sqlite").exists()


def test_the_declared_registers_are_all_the_plans_use(tmp_path):
    """With only the declared registers mapped, every audit and firmware item still passes: no
    procedure reads or writes a register it did not declare."""
    test_mode = {"test_mode"}  # the meter type's test mode names its own register
    declared = set(REQUIRED_REGISTERS) | set(Audit.REGISTERS) | set(FirmwareChecks.REGISTERS) | test_mode

    def only_declared(registers):
        for name in set(registers) - declared:
            del registers[name]

    with SimulatedBench() as sim:
        assert set(sim.profile_data()["meter_type"]["registers"]) - declared  # the board maps more than that
        run, _ = run_with_registers(tmp_path, sim, only_declared, "test_plans/audit/", "test_plans/firmware/")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "88 passed" in run.stdout
