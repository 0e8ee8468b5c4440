"""Bench profiles: a good one loads; a broken one fails at start with one line naming file and key."""
import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from bench.datafiles import ConfigError
from bench.station.profile import load_profile
from tests.helpers import edited_toml, in_calibration, plan_command

EXAMPLE = Path(__file__).resolve().parent.parent / "bench" / "profiles" / "example_lab.toml"


def test_example_profile_loads():
    profile = load_profile(EXAMPLE)
    assert [p.serial for p in profile.positions] == ["AMI24B10001", "AMI24B10002"]
    assert profile.meter_type.registers["energy_wh"].count == 4
    assert profile.clock_kind == "wall" and profile.interlock == "counter"
    assert len(profile.digest) == 64


def broken(tmp_path, edit):
    return edited_toml(EXAMPLE, edit, tmp_path / "lab.toml")


@pytest.mark.parametrize("edit, key, says", [
    (lambda d: d["source"].pop("address"), "source.address", "missing"),
    (lambda d: d["meter_type"].update(kh_wh=-1.0), "meter_type.kh_wh", "must be positive"),
    (lambda d: d["meter_type"].update(accuracy_class=7.0), "meter_type.accuracy_class", "outside"),
    (lambda d: d["meter_type"].update(form="7S"), "meter_type.form", "not one of"),
    (lambda d: d["load"].update(driver="chroma-63800"), "load.driver", "no driver 'chroma-63800' is installed"),
    (lambda d: d["source"].update(max_voltag_v=300), "source.max_voltag_v", "unknown key"),
    (lambda d: d["meter_type"]["registers"].update(mac={"address": 20, "type": "string", "words": 9}),
     "meter_type.registers.mac", "overlaps"),
    (lambda d: d["meter_type"]["registers"].pop("energy_wh"), "meter_type.registers.energy_wh", "missing"),
    (lambda d: d["positions"][1].update(serial="AMI24B10001"), "positions", "share a meter serial"),
    (lambda d: d["reference"]["calibration"].update(due="2025-01-01"), "reference.calibration.due", "not after"),
    (lambda d: d["reference"]["calibration"].update(date="March 2nd"), "reference.calibration.date", "expected a date"),
    (lambda d: d["meter_type"].update(max_voltage_v=200.0), "meter_type.max_voltage_v", "below nominal"),
    (lambda d: d["meter_type"].pop("test_outputs"), "meter_type.test_outputs", "missing"),
    (lambda d: d["meter_type"]["test_outputs"].pop("Wh"), "meter_type.test_outputs.Wh", "the Kt of the meter's Wh"),
    (lambda d: d["meter_type"]["test_outputs"].update(VAh=1.0), "meter_type.test_outputs.VAh", "unknown key"),
    (lambda d: d["meter_type"]["test_outputs"].update(varh=float("nan")), "meter_type.test_outputs.varh", "finite"),
    (lambda d: (d["meter_type"]["test_outputs"].update(varh=1.0), d["positions"][0].update(channels={"varh": 2})),
     "positions", "two test outputs share a counter channel"),
])
def test_broken_profile_names_file_and_key(tmp_path, edit, key, says):
    path = broken(tmp_path, edit)
    with pytest.raises(ConfigError) as raised:
        load_profile(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: {key}: ") and says in message and "\n" not in message


def test_each_test_output_has_its_bank_of_counter_channels_unless_wired_otherwise(tmp_path):
    def two_outputs(data: dict) -> None:
        data["meter_type"]["test_outputs"]["varh"] = 1.0
        data["positions"][1]["channels"] = {"varh": 9}
    profile = load_profile(broken(tmp_path, two_outputs))
    assert [p.channels for p in profile.positions] == [{"Wh": 1, "varh": 3}, {"Wh": 2, "varh": 9}]
    assert profile.meter_type.test_outputs == {"Wh": 1.0, "varh": 1.0} and profile.meter_type.kh_wh == 7.2


def test_invalid_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[bench\nid = 1\n")
    with pytest.raises(ConfigError, match=rf"^{bad}: not valid TOML"):
        load_profile(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_profile(tmp_path / "absent.toml")


@pytest.mark.slow
def test_bench_check_command(tmp_path):
    dated = edited_toml(EXAMPLE, lambda d: in_calibration(d, dt.date.today()), tmp_path / "dated.toml")
    ok = subprocess.run([sys.executable, "-m", "bench.cli", "check", str(dated)], capture_output=True, text=True)
    assert ok.returncode == 0 and "2 positions of EX-2S-200" in ok.stdout
    path = broken(tmp_path, lambda d: d["counter"].update(baudrate="fast"))
    bad = subprocess.run([sys.executable, "-m", "bench.cli", "check", str(path)], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip() == (f"bench: {path}: counter.baudrate: "
                                  "expected a whole number in [50, 4000000], got 'fast'")


@pytest.mark.slow
def test_pytest_with_a_broken_profile_stops_at_start(tmp_path):
    path = broken(tmp_path, lambda d: d["meter_type"].update(elements=0))
    run = subprocess.run(plan_command(tmp_path, "test_plans/", "--bench", str(path), "-q"),
                         capture_output=True, text=True, cwd=EXAMPLE.parent.parent.parent)
    assert run.returncode == 4  # pytest's usage error: nothing ran, nothing energised
    assert f"{path}: meter_type.elements: expected a whole number in [1, 3], got 0" in run.stderr
