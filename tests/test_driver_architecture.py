"""Drivers as roles and capabilities: the registry, a lab's own driver by entry point, the SCPI-99
path rule in the twins, per-phase stimulus, and the capability a point needs."""
from __future__ import annotations

import importlib
import math
import sys
import textwrap
from contextlib import closing

import pytest

from bench.metrology.forms import forms
from bench.metrology.stimulus import Stimulus
from bench.servers.scpi import ScpiDevice, parse_number, scpi
from bench.sim import SimulatedBench
from bench.station.bench import Bench
from bench.station.profile import profile_from_data
from bench.station.safety import SafetyError
from instruments import registry
from instruments.roles import Capability
from tests.helpers import bench_cli

WYE = forms()["16S"].voltage_angles_deg


class _Frequency(ScpiDevice):
    """The Keysight AC6800 manual's own example of a compound header: FREQ with its MODE below."""

    def __init__(self) -> None:
        import threading

        super().__init__(threading.RLock())
        self.frequency, self.mode, self.output = 60.0, "", False

    @scpi("[SOURce:]FREQuency[:CW]")
    def set_frequency(self, arg: str | None) -> None:
        self.frequency = parse_number((arg or "").split(",")[0])

    @scpi("[SOURce:]FREQuency:MODE")
    def set_mode(self, arg: str | None) -> None:
        self.mode = arg or ""

    @scpi("OUTPut")
    def set_output(self, arg: str | None) -> None:
        self.output = arg == "ON"


def test_a_compound_command_stays_at_its_node_and_a_colon_returns_to_the_root():
    device = _Frequency()
    assert list(device.handle_line("FREQ 100,90,110;MODE FIX")) == []
    assert (device.frequency, device.mode, list(device.errors)) == (100.0, "FIX", [])
    assert list(device.handle_line("FREQuency 50;:OUTPut ON")) == [] and device.output
    list(device.handle_line("FREQ 55;OUTPut OFF"))  # read as FREQ:OUTPut: no such header
    assert [e.code for e in device.errors] == [-113] and device.output


def test_every_installed_driver_declares_its_roles_capabilities_and_manual():
    found = registry.drivers()
    for name, info in found.items():
        registry.check_driver_class(name, info.cls)
        assert info.roles and info.manual.strip()
    listing = bench_cli("drivers")
    assert listing.returncode == 0
    for name, info in found.items():
        assert f"{name}  (" in listing.stdout and f"roles:        {', '.join(info.roles)}" in listing.stdout


def test_a_driver_that_cannot_fill_its_role_is_refused_by_name():
    class HalfASource:
        ROLES = frozenset({"source"})
        CAPABILITIES = frozenset()
        MANUAL = "nobody's"

        @classmethod
        def from_settings(cls, settings):
            return cls()

    with pytest.raises(registry.DriverError, match="driver 'half' claims the source role but lacks check_voltage"):
        registry.check_driver_class("half", HalfASource)


@pytest.fixture
def lab_package(tmp_path, monkeypatch):
    """A lab's own distribution on sys.path, registering a source driver by entry point."""
    (tmp_path / "lab_drivers.py").write_text(textwrap.dedent("""
        from instruments.ac_source import ScpiAcSource

        class LabSource(ScpiAcSource):
            MANUAL = "Lab source manual LS-1, section 4"
    """))
    dist = tmp_path / "lab_drivers-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lab-drivers\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[meter_bench.drivers]\nlab-source = lab_drivers:LabSource\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    registry.drivers.cache_clear()
    yield
    sys.modules.pop("lab_drivers", None)
    registry.drivers.cache_clear()


def test_a_lab_ships_its_own_driver_in_its_own_package(lab_package):
    info = registry.driver("lab-source", "source")
    assert (info.distribution, info.manual) == ("lab-drivers", "Lab source manual LS-1, section 4")
    with pytest.raises(registry.DriverError, match="driver 'lab-source' cannot be the load"):
        registry.driver("lab-source", "load")


def test_per_phase_power_follows_each_element():
    stimulus = Stimulus(120.0, 5.0, 60.0, 60.0, 3, voltage_weights=(1.0, 0.9, 1.0), lags_deg=(60.0, 30.0, 0.0))
    expected = 120 * 5 * 0.5 + 108 * 5 * math.cos(math.radians(30)) + 120 * 5
    assert stimulus.power_w == pytest.approx(expected, rel=1e-12)
    s = 120 * 5 + 108 * 5 + 120 * 5
    assert stimulus.power_factor == pytest.approx(expected / s, rel=1e-12)
    assert set(stimulus.needs(WYE)) == {Capability.VOLTAGE_PER_PHASE, Capability.CURRENT_ANGLE_PER_PHASE}


def test_the_house_bench_refuses_a_reversed_sequence_before_anything_is_sent():
    reversed_angles = tuple(-a % 360 for a in WYE)
    stimulus = Stimulus(120.0, 5.0, 0.0, 60.0, 3, voltage_angles_deg=reversed_angles)
    with SimulatedBench() as sim, Bench(profile_from_data(sim.profile_data(), "sim")) as bench:
        reason = bench.lacks(stimulus)
        assert reason is not None and "voltage angles other than the form's" in reason
        assert "lacks 'voltage-angle-per-phase'" in reason
        sent = len(sim.source.received) + len(sim.load.received)
        with pytest.raises(SafetyError, match="refusing to energise .*voltage-angle-per-phase"):
            bench.apply(stimulus)
        assert len(sim.source.received) + len(sim.load.received) == sent
        assert bench.lacks(Stimulus(120.0, 5.0, 0.0, 60.0, 3, weights=(1.0, 0.0, 0.0))) is None


def test_a_reversed_sequence_row_is_data_and_skipped_with_the_reason_on_a_bench_that_cannot(tmp_path):
    from tests.helpers import REPO, run_plans

    table = tmp_path / "sequence.toml"
    source = (REPO / "bench/standards/c12_20.toml").read_text()
    head = source[: source.index("[[point]]")]
    table.write_text(head + textwrap.dedent("""
        [[point]]
        id = "SEQ-REV"
        family = "polyphase"
        name = "reversed phase sequence, TA, PF 1.0"
        sequence = "reversed"
        voltages = [1.0, 0.98, 1.0]
        current = 1.0
        of = "TA"
        pf = 1.0
        tolerance = { "0.1" = 0.15, "0.2" = 0.3, "0.5" = 0.6 }
        provenance = "test table: a reversed sequence with a 2 % voltage unbalance, expressed as data"
    """))
    run, cases, _ = run_plans(tmp_path, "--limits", str(table), "-k", "pos1",
                              plans="test_plans/accuracy/test_polyphase.py")
    case = next(c for name, c in cases.items() if "SEQ-REV" in name)
    skipped = case.find("skipped")
    assert skipped is not None, run.stdout[-2000:]
    assert "lacks 'voltage-angle-per-phase'" in skipped.get("message", "")
    assert "lacks 'voltage-per-phase'" in skipped.get("message", "")


def test_the_simulated_bench_serves_whichever_drivers_a_profile_names():
    with SimulatedBench(drivers={"source": "ametek-ci"}) as sim:
        data = sim.profile_data()
        assert data["source"] == {**data["source"], "driver": "ametek-ci", "address": sim.served["source"].address}
        source = registry.driver("ametek-ci", "source").create(registry.DriverSettings(data["source"]["address"], "s"))
        with closing(source.open()):
            assert source.idn == sim.source.idn and source.idn.startswith("CALIFORNIA INSTRUMENTS,")
        assert data["load"]["driver"] == "scpi-phantom-load"  # the roles not named stay the house's
    with pytest.raises(ValueError, match="no simulated role"):
        SimulatedBench(drivers={"printer": "scpi-ac-source"})
