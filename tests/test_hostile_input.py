"""Hostile and broken input: every value from a file is typed, finite and in its stated range;
anything else is one line naming the file and key, before anything is energised."""
import dataclasses
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w

from bench.datafiles import ConfigError, load_toml
from bench.metrology.stimulus import Stimulus
from bench.plans.inspection import load_inspection
from bench.plans.keys import read_key, write_key
from bench.plans.limits import DEFAULT_TABLE, load_table
from bench.sim import board_path
from bench.sim.board import load_board, shared_meter_type
from bench.station.profile import load_profile
from bench.station.safety import SafetyError
from tests.helpers import REPO, bench_cli, edited_toml, plan_command


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture
def profile_file(sim, tmp_path) -> Path:
    path = tmp_path / "lab.toml"
    path.write_text(tomli_w.dumps(sim.profile_data()))
    return path


def with_value(path: Path, table: str, key: str, literal: str) -> Path:
    """The profile with one key's value replaced by a TOML literal (nan and inf are TOML floats)."""
    text = path.read_text()
    header = f"[{table}]\n"
    head, _, rest = text.partition(header)
    body, bracket, tail = rest.partition("\n[")  # the table's own lines end where the next table starts
    lines = [line for line in body.split("\n") if not line.startswith(f"{key} =")]
    path.write_text(head + header + f"{key} = {literal}\n" + "\n".join(lines) + bracket + tail)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("table, key, literal, says", [
    ("meter_type", "max_voltage_v", "nan", "meter_type.max_voltage_v: expected a finite number, got nan"),
    ("meter_type", "max_voltage_v", "inf", "meter_type.max_voltage_v: expected a finite number, got inf"),
    ("meter_type", "max_current_a", "nan", "meter_type.max_current_a: expected a finite number, got nan"),
    ("meter_type", "max_current_a", "1e9", "meter_type.max_current_a: 1000000000.0 is outside [-inf, 1000]"),
    ("meter_type", "kh_wh", "nan", "meter_type.kh_wh: expected a finite number, got nan"),
    ("meter_type", "kh_wh", "-inf", "meter_type.kh_wh: expected a finite number, got -inf"),
    ("source", "max_voltage_v", "nan", "source.max_voltage_v: expected a finite number, got nan"),
    ("counter", "baudrate", "1000000000000000000", "counter.baudrate: expected a whole number in [50, 4000000]"),
    ("meter_type", "pulse_jitter_s", "true", "meter_type.pulse_jitter_s: expected a number, got True"),
])
def test_non_finite_or_absurd_profile_values_are_refused_by_bench_check(profile_file, table, key, literal, says):
    checked = bench_cli("check", str(with_value(profile_file, table, key, literal)))
    assert checked.returncode == 2
    line = one_line(checked.stderr)
    assert line.startswith(f"bench: {profile_file}: {table}.{key}: ") and says in line


@pytest.mark.slow
def test_a_nan_rating_never_reaches_the_source(sim, profile_file):
    """pytest with a NaN nameplate stops at start (usage error): nothing is energised."""
    run = subprocess.run(plan_command(profile_file.parent, "test_plans/", "--bench",
                                      str(with_value(profile_file, "meter_type", "max_voltage_v", "nan"))),
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 4
    assert "meter_type.max_voltage_v: expected a finite number, got nan" in run.stderr
    assert not any(c.startswith(("VOLT ", "OUTP ON", "OUTP 1")) for c in sim.source.received)


def test_the_safety_check_refuses_non_finite_values_whatever_built_them(sim, sim_bench):
    """In depth: a profile object built in code, bypassing the file checks, is still refused."""
    bench = sim_bench
    good = bench.profile
    bench.profile = dataclasses.replace(good, meter_type=dataclasses.replace(good.meter_type, max_voltage_v=math.nan))
    before = len(sim.source.received), len(sim.load.received)
    with pytest.raises(SafetyError, match=r"meter_type.max_voltage_v is nan, not a finite number"):
        bench.apply(Stimulus(240.0, 1.0, 0.0, 60.0, 3))
    bench.profile = good
    for bad in (Stimulus(math.nan, 1.0, 0.0, 60.0, 3), Stimulus(120.0, math.inf, 0.0, 60.0, 3),
                Stimulus(120.0, 1.0, math.nan, 60.0, 3), Stimulus(120.0, 1.0, 0.0, math.nan, 3),
                Stimulus(120.0, 1.0, 0.0, 60.0, 3, weights=(1.0, math.nan, 1.0))):
        with pytest.raises(SafetyError, match=r"not a finite number"):
            bench.apply(bad)
    assert (len(sim.source.received), len(sim.load.received)) == before  # nothing was sent
    assert not sim.world.source.output and not sim.world.load.output


def test_a_string_where_a_boolean_belongs_is_refused(tmp_path):
    """lead = "false" once meant leading (a non-empty string is true): a PF 0.5 lag point ran lead."""
    def lead_as_text(data):
        next(p for p in data["point"] if "lead" not in p and p.get("pf") == 0.5)["lead"] = "false"
    path = edited_toml(DEFAULT_TABLE, lead_as_text, tmp_path / "lab_limits.toml")
    with pytest.raises(ConfigError,
                       match=r"lab_limits.toml: point\[\d+\] [\w-]+\.lead: expected true or false, got 'false'"):
        load_table(path)


@pytest.mark.parametrize("content", [b"\xff\xfe\x00b\x00e\x00n\x00c\x00h", b"[bench]\nid = \"caf\xe9\"\n",
                                     bytes(range(256)), b"\x00" * 64])
@pytest.mark.parametrize("loader", [load_profile, load_table, load_board, load_inspection, load_toml])
def test_binary_and_non_utf8_files_are_one_line(tmp_path, content, loader):
    path = tmp_path / "broken.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as raised:
        loader(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and "\n" not in message


@pytest.mark.slow
def test_bench_check_on_an_endless_file_is_one_line():
    checked = bench_cli("check", "/dev/zero")
    assert checked.returncode == 2
    assert one_line(checked.stderr) == "bench: /dev/zero: larger than 4 MiB: not a bench data file"


@pytest.mark.slow
def test_bench_check_on_a_binary_profile_is_one_line(tmp_path):
    path = tmp_path / "lab.toml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    checked = bench_cli("check", str(path))
    assert checked.returncode == 2
    assert one_line(checked.stderr).startswith(f"bench: {path}: not UTF-8 text")


@pytest.mark.slow
def test_pytest_with_a_binary_limits_file_is_a_usage_error(tmp_path):
    path = tmp_path / "limits.toml"
    path.write_bytes(b"\xc3\x28 not utf-8")
    run = subprocess.run(plan_command(tmp_path, "test_plans/", "--limits", str(path)),
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 4 and "INTERNALERROR" not in run.stdout + run.stderr
    assert f"{path}: not UTF-8 text" in run.stderr


def test_a_board_with_a_string_for_a_boolean_is_refused(tmp_path):
    path = edited_toml(board_path("default"), lambda d: d["position"][0].update(tamper="no"), tmp_path / "board.toml")
    with pytest.raises(ConfigError, match=r"board.toml: position\[1\].tamper: expected true or false, got 'no'"):
        load_board(path)


@pytest.mark.parametrize("name", ["sim_99s", "../../standards/c12_20", ""])
def test_a_board_naming_no_shared_meter_type_is_one_line(tmp_path, name):
    path = edited_toml(board_path("default"), lambda d: d.update(meter_type=name), tmp_path / "board.toml")
    with pytest.raises(ConfigError, match=rf"board.toml: meter_type: no meter type '{re.escape(name)}' "
                                          r"\(known: sim_12s_cl200, sim_16s_cl200, sim_2s_cl200, sim_9s_cl20\)$"):
        load_board(path)


def test_boards_share_one_meter_type_file_and_a_stated_table_still_works(tmp_path):
    shared = load_board(board_path("default")).meter_type
    assert load_board(board_path("mixed")).meter_type == shared == load_board(board_path("audit_faults")).meter_type
    table = shared_meter_type("sim_16s_cl200").data
    stated = edited_toml(board_path("default"), lambda d: d.update(meter_type={**table, "model": "LAB-16S"}),
                         tmp_path / "board.toml")
    assert load_board(stated).meter_type == {**shared, "model": "LAB-16S"}


def test_an_inspection_file_with_a_nan_torque_is_refused(tmp_path):
    path = tmp_path / "inspection.toml"
    path.write_text('[SIM16A00001]\ntorque_in_lb = nan\njaw_tension_ok = true\n')
    with pytest.raises(ConfigError,
                       match=r"inspection.toml: SIM16A00001.torque_in_lb: expected a finite number, got nan"):
        load_inspection(path)
    path.write_text('[SIM16A00001]\ntorque_in_lb = 50.0\njaw_tension_ok = "yes"\n')
    with pytest.raises(ConfigError, match=r"SIM16A00001.jaw_tension_ok: expected true or false, got 'yes'"):
        load_inspection(path)


@pytest.mark.parametrize(("entry", "why"), [
    ("torque_in_lb = [50.0, inf, 50.0, 50.0, 50.0, 50.0]", r"torque_in_lb: expected a finite number, got inf"),
    ("torque_in_lb = [50.0, 5000.0]", r"torque_in_lb: .*5000"),
    ('torque_in_lb = [50.0, "50"]', r"torque_in_lb: .*'50'"),
    ("torque_in_lb = 50.0\nseals = [7]", r"seals: expected a list of non-empty strings, got \[7\]"),
    ('torque_in_lb = 50.0\nseals = "S-1"', r"seals: expected a list of non-empty strings, got 'S-1'"),
    ('torque_in_lb = 50.0\nseals = ["S-1\\u0007"]', r"seals: 'S-1\\x07' is not a seal number"),
])
def test_an_inspection_entrys_torques_and_seals_are_checked_on_loading(tmp_path, entry, why):
    path = tmp_path / "inspection.toml"
    path.write_text(f"[SIM16A00001]\n{entry}\njaw_tension_ok = true\n")
    with pytest.raises(ConfigError, match=rf"inspection.toml: SIM16A00001.{why}"):
        load_inspection(path)


@pytest.mark.slow
@pytest.mark.parametrize("scale", ["0", "-1", "nan", "inf", "fast"])
def test_sim_scale_must_be_a_finite_positive_number(tmp_path, scale):
    run = subprocess.run(plan_command(tmp_path, "test_plans/", "--sim-scale", scale),
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert run.returncode == 4 and "Traceback" not in run.stderr
    assert f"--sim-scale: '{scale}'" in run.stderr


@pytest.mark.slow
def test_pytest_help_works():
    run = subprocess.run([sys.executable, "-m", "pytest", "--help"],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert run.returncode == 0 and "--regression-margin" in run.stdout


@pytest.mark.slow
@pytest.mark.parametrize("target", ["missing.html", "."])
def test_bench_verify_on_a_missing_file_or_a_directory_is_one_line(tmp_path, target):
    checked = bench_cli("verify", str(tmp_path / target))
    assert checked.returncode == 1 and checked.stderr == ""
    assert one_line(checked.stdout).startswith(f"{tmp_path / target}: INVALID: ")


@pytest.mark.slow
@pytest.mark.parametrize("run_id", ["%", "", "_", "a%", "abc"])
def test_bench_report_does_not_match_any_run_on_wildcards(tmp_path, run_id):
    from bench.records import store
    url = f"sqlite:///{tmp_path / 'records.sqlite'}"
    store.connect(url)
    reported = bench_cli("report", run_id, "--records", url, "--reports-dir", str(tmp_path))
    assert reported.returncode == 2
    assert "at least 4 hex digits" in one_line(reported.stderr)


def test_the_key_writer_refuses_a_symlink_and_leaves_its_target_alone(tmp_path):
    keys, outside = tmp_path / "keys", tmp_path / "precious.txt"
    outside.write_text("not a key")
    keys.mkdir()
    (keys / "SIM16A00001.key").symlink_to(outside)
    with pytest.raises(OSError, match=r"is a symlink"):
        write_key(keys, "SIM16A00001", "00" * 16)
    assert outside.read_text() == "not a key"


def test_the_key_writer_replaces_a_readable_old_key_with_a_fresh_private_one(tmp_path):
    old = tmp_path / "SIM16A00001.key"
    old.write_text("old key")
    os.chmod(old, 0o644)
    path = write_key(tmp_path, "SIM16A00001", "ab" * 16)
    assert path == old and os.stat(path).st_mode & 0o777 == 0o600
    assert read_key(path) == "ab" * 16
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SIM16A00001.key"]  # no staging file left


@pytest.mark.slow
def test_bench_opens_fast_and_names_the_role_when_the_source_never_accepts(tmp_path, sim):
    """A listener whose accept queue is full: connect hangs. The run stops at start, in one line
    naming the role and address, within the driver's timeout."""
    import socket
    import time
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    data = sim.profile_data()
    data["source"]["address"] = f"TCPIP0::127.0.0.1::{port}::SOCKET"
    profile = tmp_path / "lab.toml"
    profile.write_text(tomli_w.dumps(data))
    started = time.monotonic()
    run = subprocess.run(plan_command(tmp_path, "test_plans/", "--bench", str(profile), "-q"),
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    elapsed = time.monotonic() - started
    for sock in (listener, *fillers):
        sock.close()
    assert run.returncode == 4, run.stdout[-2000:]
    assert f"source @ TCPIP0::127.0.0.1::{port}::SOCKET: cannot open" in run.stderr
    assert " passed" not in run.stdout and " error" not in run.stdout  # no item ran
    assert elapsed < 30, elapsed


@pytest.mark.slow
def test_a_malformed_address_stops_the_run_at_start_in_one_line(tmp_path, sim):
    data = sim.profile_data()
    data["reference"]["address"] = "TCPIP0::127.0.0.1::notaport::SOCKET"
    profile = tmp_path / "lab.toml"
    profile.write_text(tomli_w.dumps(data))
    run = subprocess.run(plan_command(tmp_path, "test_plans/", "--bench", str(profile), "-q"),
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode != 0
    assert "reference @ TCPIP0::127.0.0.1::notaport::SOCKET: cannot open" in run.stdout + run.stderr
    assert " passed" not in run.stdout and " error" not in run.stdout


BROKEN_DATA_FILE = '''
from pathlib import Path
from bench.plans import {module}

broken = Path(__file__).with_name("{name}")
broken.write_text(Path({module}.STANDARDS, "{name}").read_text().replace("{key} =", "{key} = nan #"))
{module}.{loader}.__defaults__ = (broken,)  # as if the shipped file were edited so
'''


@pytest.mark.slow
@pytest.mark.parametrize("module, loader, name, key", [("audit", "load_limits", "audit.toml", "snr_min_db"),
                                                       ("firmware", "load_firmware_limits", "firmware.toml",
                                                        "interval_s")])
def test_a_broken_audit_or_firmware_data_file_refuses_the_run_before_anything_is_energised(tmp_path, module, loader,
                                                                                         name, key):
    (tmp_path / "broken_data.py").write_text(BROKEN_DATA_FILE.format(module=module, loader=loader, name=name, key=key))
    run = subprocess.run(plan_command(tmp_path, f"test_plans/{module}/", "-q", "-p", "broken_data"),
                         capture_output=True, text=True, cwd=REPO, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert run.returncode == 4, run.stdout[-2000:] + run.stderr[-2000:]
    [line] = [line for line in (run.stdout + run.stderr).splitlines() if "bench cannot start" in line]
    assert f"bench cannot start: {tmp_path / name}: {module}.{key}: expected a finite number, got nan" in line, line
    assert list(tmp_path.glob("run-*.json")) == []  # refused before the run began: nothing to record


def test_a_torque_list_with_a_zero_is_refused_on_loading_as_at_the_check(tmp_path):
    """The file's check and the audit's are one: a 0 in-lb terminal is refused when the file loads."""
    path = tmp_path / "inspection.toml"
    path.write_text("[SIM16A00001]\ntorque_in_lb = [50.0, 0.0]\njaw_tension_ok = true\n")
    with pytest.raises(ConfigError, match=r"SIM16A00001.torque_in_lb: a torque of 0 in-lb is a terminal not torqued"):
        load_inspection(path)
