"""The lab behind the certificates: its profile section, every instrument's calibration date, the
approving signatory, and the technician's inspection asked at a real terminal."""
import datetime as dt
import json
import os
import pty
import subprocess

import pytest
import tomli_w

from bench.sim import SimulatedBench
from tests.helpers import REPO, Terminal, bench_cli, edited_toml, in_calibration, plan_command

pytestmark = pytest.mark.slow  # whole plan runs and the bench CLI

EXAMPLE = REPO / "bench" / "profiles" / "example_lab.toml"


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["lab"].update(certificate_number="EML-{year}"),
     "lab.certificate_number: not a usable pattern (it has no {seq})"),
    (lambda d: d["lab"].update(certificate_number="EML-{seq}-{operator}"), "fields ['operator'] are unknown"),
    (lambda d: d["lab"].update(certificate_number="EML-{seq:q}"), "lab.certificate_number: not a usable pattern"),
    (lambda d: d["lab"].update(signatories=[]), "lab.signatories: expected one or more [[lab.signatories]] tables"),
    (lambda d: d["lab"].pop("accreditation_number"), "lab.accreditation_number: missing"),
    (lambda d: d["counter"].pop("calibration"), "counter.calibration: missing"),
    (lambda d: d["environment"]["calibration"].update(due=dt.date(2020, 1, 1)),
     "environment.calibration.due: calibration due date is not after"),
])
def test_a_broken_lab_section_or_calibration_is_one_line(tmp_path, edit, message):
    run = bench_cli("check", edited_toml(EXAMPLE, edit, tmp_path / "lab.toml"))
    assert run.returncode == 2 and message in run.stderr and run.stderr.count("\n") == 1, run.stderr


def test_bench_check_lists_every_calibration_and_refuses_a_past_due_one(tmp_path):
    today = dt.date.today()
    dated = edited_toml(EXAMPLE, lambda d: in_calibration(d, today), tmp_path / "dated.toml")
    ok = bench_cli("check", dated)
    assert ok.returncode == 0, ok.stderr
    for role, certificate in (("source", "CAL-SRC-2026-031"), ("load", "CAL-LOAD-2026-032"),
                              ("reference", "ACC-LAB-2026-0117"), ("counter", "CAL-CNT-2026-033"),
                              ("environment", "CAL-THERM-2026-034")):
        assert f"{role:<12} calibration {certificate} of {today - dt.timedelta(days=30)}: " \
               f"due {today + dt.timedelta(days=335)} (335 days)" in ok.stdout
    expired = edited_toml(dated, lambda d: d["environment"]["calibration"].update(
        date=dt.date(2025, 1, 2), due=dt.date(2026, 1, 2)), tmp_path / "lab.toml")
    run = bench_cli("check", expired)
    assert run.returncode == 1
    assert "environment  calibration CAL-THERM-2026-034 of 2025-01-02: PAST DUE since 2026-01-02" in run.stdout
    assert "NOT READY: environment past calibration due date: a run is blocked" in run.stdout


def test_only_a_listed_signatory_approves(tmp_path):
    run = subprocess.run(plan_command(tmp_path, "test_plans/accuracy/test_no_load.py", "--approved-by", "Mallory",
                                      "-q"),
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 4
    assert ("bench cannot start: --approved-by 'Mallory' is not a signatory of Meter bench simulator "
            "(demonstration: not a laboratory, not accredited) "
            "(the profile's [lab] signatories: Simulated Approver)") in run.stdout


def test_the_inspection_is_asked_at_a_real_terminal_without_s(tmp_path):
    """A profile (not the embedded simulator) has no simulated technician: the bench asks at the
    terminal, through pytest's output capture, and records what the technician typed."""
    with SimulatedBench() as sim:
        profile = tmp_path / "bench.toml"
        profile.write_text(tomli_w.dumps(sim.profile_data()))
        main, child = pty.openpty()
        run = subprocess.Popen(plan_command(tmp_path, "test_plans/audit/test_inspection.py", "--bench", str(profile),
                                            "--operator", "tech-9", "--color=no"),
                               stdin=child, stdout=child, stderr=child, cwd=REPO)
        os.close(child)
        terminal = Terminal(main)
        try:
            for number, meter in enumerate(sim.world.meters, start=1):
                question = (f"position {number} {meter.serial}: terminal torque, in-lb: one for all or one each for "
                            f"I1 line, I1 load, I2 line, I2 load, I3 line, I3 load (empty: not inspected): ")
                terminal.expect(question)
                if number == 1:  # a typo is refused aloud and asked again, never silently dropped
                    terminal.answer("abc")
                    terminal.expect(f"NOT TAKEN: position 1 {meter.serial}: torque 'abc' is not a number of in-lb")
                    terminal.expect(question)
                # position 8 was not inspected; position 4 has one terminal torqued past the band (45..55)
                terminal.answer({8: "", 4: "50, 50, 50, 50, 50 60"}.get(number, "50"))
                if number < 8:
                    terminal.expect("jaw tension good? [y/n]: ")
                    if number == 2:
                        terminal.answer("maybe")
                        terminal.expect("jaw tension 'maybe' is neither yes nor no")
                        terminal.expect("jaw tension good? [y/n]: ")
                    terminal.answer("y")
                    terminal.expect("seal number(s) fitted, comma-separated: ")
                    if number == 3:  # a meter inspected leaves sealed: no seal number is refused
                        terminal.answer(" ")
                        terminal.expect(f"NOT TAKEN: position 3 {meter.serial}: give the seal number(s) fitted")
                        terminal.expect("seal number(s) fitted, comma-separated: ")
                    terminal.answer(f"S-{number:03d}")
            terminal.expect(" passed")
            assert run.wait(timeout=60) == 1, terminal.seen
        finally:
            run.kill()
            os.close(main)
    assert "2 failed, 6 passed" in terminal.seen
    assert "pos4-SIM16A00004" in terminal.seen and "pos8-SIM16A00008" in terminal.seen
    [record] = [json.loads(path.read_text())["record"] for path in tmp_path.glob("run-*.json")]
    said = {m["position"]: m["results"][0]["cells"]["Measured"] for m in record["meters"]}
    assert said[1] == "torque 50 in-lb on all 6 terminals, jaw tension good, seals S-001 by tech-9"
    assert "OUTSIDE the band: I3 load 60" in said[4]
