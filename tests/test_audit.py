"""The commissioning audit: each simulated fault caught by exactly its step with the right
troubleshooting entry, and its idempotency, tamper-trail, key and inspection rules."""
import os
import stat
import subprocess
from pathlib import Path

import pytest
import tomli_w
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from bench.plans.audit import load_matrix
from bench.plans.keys import read_key, write_key
from bench.records import store
from bench.sim import SimulatedBench
from bench.sim.board import load_board
from bench.sim.simbench import board_path
from tests.helpers import ITEM, REPO, bench_cli, edited_toml, plan_command, run_plans

AUDIT = "test_plans/audit/"


def failures(cases):
    """{(step, position): message} of the failed audit items."""
    step_of = {"test_physical_inspection": "INSPECTION", "test_voltage_and_phase": "VOLTAGE-PHASE",
               "test_logic_layer": "LOGIC", "test_network": "NETWORK",
               "test_key_rotation_and_identity": "KEYS-IDENTITY",
               "test_payload_accuracy": "PAYLOAD", "test_firmware_baseline": "FIRMWARE"}
    return {(step_of[name.split("[")[0]], int(ITEM.search(name).group("position"))): case.find("failure").get("message")
            for name, case in cases.items() if case.find("failure") is not None}


@pytest.mark.slow
def test_each_fault_fails_exactly_its_step_with_its_diagnosis(tmp_path):
    board = load_board(board_path("audit_faults"))
    matrix = load_matrix()
    run, cases, _ = run_plans(tmp_path, "--sim-scenario", "audit_faults", plans=AUDIT)
    found = failures(cases)
    expected = {(step, position) for position, steps in board.expected_failures.items() for step in steps}
    assert run.returncode == 1 and set(found) == expected
    for (_step, position), message in found.items():
        code = board.expected_diagnoses.get(position)
        if code:  # the entry the technician needs, from the matrix, its command filled in for this meter
            serial = board.world.meters[position - 1].serial
            entry = matrix[code].replace("{serial}", serial).replace("{profile}", "PROFILE")
            assert entry in message, (position, message)
            if code == "TAMPER":
                assert f"bench tamper-clear {serial} --bench PROFILE --operator ID --seal NUMBER" in message
    assert "no inspection entry for SIM16F00013" in found[("INSPECTION", 13)]


@pytest.mark.slow
def test_rerunning_the_audit_adds_no_registry_or_trail_entries(tmp_path):
    for _ in range(2):
        run, cases, _ = run_plans(tmp_path, plans=AUDIT)
        assert run.returncode == 0, run.stdout[-2000:]
    engine = store.connect(f"sqlite:///{tmp_path / 'reports' / 'records.sqlite'}")
    counts = store.count_rows(engine)
    assert counts["meter_registry"] == 8 and counts["audit_trail"] == 0 and counts["runs"] == 2
    # the meters' key files stay with the bench, never beside what QA publishes
    assert not [p for p in (tmp_path / "reports").rglob("*") if p.name.endswith(".key")]
    kept = Path(os.environ["METER_BENCH_HOME"]) / "meter-keys"
    assert {p.name for p in kept.glob("SIM16A0000?.key")} == {f"SIM16A0000{n}.key" for n in range(1, 9)}
    assert {stat.S_IMODE(p.stat().st_mode) for p in kept.glob("*.key")} == {0o600}


@pytest.fixture
def audit_board(tmp_path):
    """The audit_faults board running, its profile written, and a records URL of the test's own."""
    with SimulatedBench("audit_faults") as sim:
        profile = tmp_path / "bench.toml"
        profile.write_text(tomli_w.dumps(sim.profile_data()))
        yield sim, profile, f"sqlite:///{tmp_path / 'records.sqlite'}"


def tamper_clear(serial, profile, url, seal):
    return bench_cli("tamper-clear", serial, "--bench", str(profile), "--operator", "tech-17", "--seal", seal,
                     "--records", url)


@pytest.mark.slow
def test_tamper_clear_is_audited_once_and_the_trail_cannot_be_edited(audit_board):
    sim, profile, url = audit_board
    meter = sim.world.meters[8]  # position 9: its tamper alarm is set
    assert meter.functional.tamper
    first = tamper_clear(meter.serial, profile, url, "S-004211")
    assert first.returncode == 0 and "recorded in the audit trail" in first.stdout, first.stderr
    assert not meter.functional.tamper
    again = tamper_clear(meter.serial, profile, url, "S-004211")  # nothing left to clear
    assert again.returncode == 1
    assert again.stderr == f"bench: meter {meter.serial} shows no tamper alarm: nothing cleared, nothing recorded\n"
    engine = store.connect(url)
    [entry] = store.audit_entries(engine, meter.serial)
    assert (entry["operator"], entry["seal"], entry["action"]) == ("tech-17", "S-004211", "tamper-clear")
    for statement in ("UPDATE audit_trail SET seal = 'forged'", "DELETE FROM audit_trail"):
        with pytest.raises(DBAPIError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(text(statement))
    missing = bench_cli("tamper-clear", meter.serial, "--bench", str(profile))
    assert missing.returncode == 2 and "--operator" in missing.stderr
    trail = bench_cli("trail", "--records", url)
    [row] = trail.stdout.splitlines()[2:]
    assert trail.returncode == 0 and row.split()[2:6] == [meter.serial, "tamper-clear", "tech-17", "S-004211"]
    other = bench_cli("trail", "SIM16A00001", "--records", url)
    assert other.returncode == 1 and other.stdout == "no audit-trail entries for meter SIM16A00001\n"


@pytest.mark.slow
def test_tamper_clear_on_a_meter_without_a_tamper_alarm_writes_nothing(audit_board):
    """The trail is append-only: a false "cleared" entry could never be removed, so none is written."""
    sim, profile, url = audit_board
    healthy = sim.world.meters[0]
    assert not healthy.functional.tamper
    run = tamper_clear(healthy.serial, profile, url, "S-004212")
    assert run.returncode == 1 and "shows no tamper alarm: nothing cleared, nothing recorded" in run.stderr
    assert store.count_rows(store.connect(url))["audit_trail"] == 0


def test_key_files_are_owner_only_and_shared_keys_are_refused(tmp_path):
    old = os.umask(0)  # even a permissive umask must not widen the key file
    try:
        path = write_key(tmp_path / "keys", "M1", "00" * 16)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and read_key(path) == "00" * 16
    path.chmod(0o644)
    with pytest.raises(PermissionError, match="mode 644 lets group or others read it"):
        read_key(path)


@pytest.mark.slow
def test_inspection_comes_from_the_technicians_file_and_a_missing_entry_fails(tmp_path):
    """Every terminal's torque within 45..55 in-lb, jaws good and a seal recorded, or the check fails
    naming what is wrong: a terminal out of band by name, a missing seal, a list that does not fit the
    form's six terminals (16S: three current circuits, line and load)."""
    entries = {serial: {"torque_in_lb": 50.2, "jaw_tension_ok": True, "seals": [f"S-{serial[-3:]}"],
                        "technician": "A. Ruiz"}
               for serial in (f"SIM16A0000{n}" for n in range(1, 9))}
    entries["SIM16A00002"]["torque_in_lb"] = 60.0
    entries["SIM16A00003"]["jaw_tension_ok"] = False
    del entries["SIM16A00004"]
    entries["SIM16A00005"]["torque_in_lb"] = [50.0, 50.1, 49.0, 50.0, 38.0, 50.0]
    del entries["SIM16A00006"]["seals"]
    entries["SIM16A00007"]["torque_in_lb"] = [50.0] * 5
    entries["SIM16A00008"]["torque_in_lb"] = [50.0, 50.1, 49.0, 50.0, 46.0, 54.5]
    inspection = tmp_path / "inspection.toml"
    inspection.write_text(tomli_w.dumps(entries))
    run, cases, _ = run_plans(tmp_path, "--inspection", str(inspection), plans=AUDIT + "test_inspection.py")
    found = failures(cases)
    assert set(found) == {("INSPECTION", n) for n in (2, 3, 4, 5, 6, 7)}
    assert "torque 60 in-lb on all 6 terminals, OUTSIDE the band: I1 line 60, I1 load 60," in found[("INSPECTION", 2)]
    assert "jaw tension NOT good, seals S-003 by A. Ruiz" in found[("INSPECTION", 3)]
    assert "no inspection entry for SIM16A00004" in found[("INSPECTION", 4)]
    assert ("torques 50/50.1/49/50/38/50 in-lb (I1 line, I1 load, I2 line, I2 load, I3 line, I3 load), "
            "OUTSIDE the band: I3 line 38, jaw tension good") in found[("INSPECTION", 5)]
    assert "NO seal number recorded" in found[("INSPECTION", 6)]
    assert "SIM16A00007.torque_in_lb: expected a list of 6 numbers" in found[("INSPECTION", 7)]


@pytest.mark.slow
def test_a_broken_inspection_file_stops_the_run_with_one_line(tmp_path):
    inspection = tmp_path / "inspection.toml"
    inspection.write_text("[SIM16A00001]\ntorque = 50\n")
    run = subprocess.run(plan_command(tmp_path, AUDIT, "--inspection", str(inspection), "-q"),
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert run.returncode == 4 and f"{inspection}: SIM16A00001.torque: unknown key" in run.stdout


def test_the_troubleshooting_matrix_covers_every_code_of_the_procedure():
    matrix = load_matrix()
    for code in ("E004", "E101", "W202", "F505", "E0001", "CAW", "ERR_NET_TIMEOUT", "NEGATIVE_PF", "TAMPER"):
        assert matrix[code].startswith(f"{code} ") and ": " in matrix[code]


def test_an_audit_limit_without_provenance_is_refused(tmp_path):
    from bench.datafiles import ConfigError
    from bench.plans.audit import STANDARDS, load_limits

    path = edited_toml(STANDARDS / "audit.toml", lambda d: d["provenance"].pop("snr_min_db"), tmp_path / "audit.toml")
    with pytest.raises(ConfigError,
                       match=r"audit.toml: provenance.snr_min_db: missing: every value states where it comes from"):
        load_limits(path)


def test_functional_checks_run_at_nominal_voltage_with_no_load_even_after_a_loaded_point(tmp_path):
    """The board left at 1.0 kW (same voltage, current flowing) is not "no load": the audit
    re-applies its own stimulus before a functional check."""
    from bench.plans.audit import Audit
    from bench.plans.payload import payload_accuracy_point
    from bench.station.bench import Bench

    with SimulatedBench() as sim, Bench(sim.profile()) as bench:
        audit = Audit(bench, store.connect(f"sqlite:///{tmp_path / 'records.sqlite'}"), tmp_path / "keys",
                      payload_accuracy_point())
        bench.apply(audit.payload.stimulus(bench))
        assert max(sim.world.load.output_currents_a()) > 2.0
        audit.energise_nominal()
        assert sim.world.load.output_currents_a() == [0.0, 0.0, 0.0]
        assert sim.world.source.voltage_v == bench.profile.meter_type.nominal_voltage_v
