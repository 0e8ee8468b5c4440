"""The installation audit on the bench: the procedure's functional checks, in its order, each on
every position, with the troubleshooting matrix's entry on every failure (all limits as data)."""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

from sqlalchemy.engine import Engine

from bench.datafiles import STANDARDS, ConfigError, Section, load_toml
from bench.metrology.forms import forms
from bench.metrology.stimulus import Stimulus
from bench.procedures.gating import AccuracyPoint, measure_point
from bench.procedures.results import CheckResult, FaultResult, PositionResult
from bench.records import store
from bench.station.bench import Bench
from bench.station.profile import Position

MAX_TORQUE_IN_LB = 1000.0  # socket and meter terminal screws are tens of in-lb


@dataclass(frozen=True)
class AuditLimits:
    torque_in_lb: float
    torque_tolerance_pct: float
    voltage_pct: float
    thd_record_pct: float
    rssi_dbm: tuple[float, float]
    snr_min_db: float
    ping_probes: int
    ping_bytes: int
    max_packet_loss_pct: float
    firmware_baseline: str


def load_limits(path: Path = STANDARDS / "audit.toml") -> AuditLimits:
    doc = load_toml(path)
    audit = doc.table("audit").with_provenance(doc.table("provenance"))
    window = audit.numbers("rssi_dbm", length=2, low=-200.0, high=0.0)
    if not window[0] < window[1]:
        raise audit.error("rssi_dbm", f"expected [low, high] in dBm, got {list(window)!r}")
    return AuditLimits(audit.number("torque_in_lb", positive=True, high=MAX_TORQUE_IN_LB),
                       audit.number("torque_tolerance_pct", positive=True, high=100.0),
                       audit.number("voltage_pct", positive=True, high=50.0), audit.number("thd_record_pct", positive=True, high=100.0),
                       (window[0], window[1]), audit.number("snr_min_db", low=-50.0, high=100.0),
                       audit.integer("ping_probes", low=1, high=1000), audit.integer("ping_bytes", low=1, high=65535),
                       audit.number("max_packet_loss_pct", low=0, high=100.0), audit.text("firmware_baseline"))


def load_matrix(path: Path = STANDARDS / "troubleshooting.toml") -> dict[str, str]:
    """Code -> "CODE meaning: action", the text every failure with that code carries."""
    doc = load_toml(path)
    matrix = {}
    for code in doc.data:
        entry = doc.table(code)
        entry.unknown({"meaning", "action", "provenance"})
        entry.text("provenance")
        matrix[code] = f"{code} {entry.text('meaning')}: {entry.text('action')}"
    return matrix


def load_inspection(path: Path) -> dict[str, Section]:
    """The technician's physical inspection, one table per meter serial, every value typed."""
    doc = load_toml(path)
    found = {}
    for serial in doc.data:
        entry = doc.table(serial)
        entry.unknown({"torque_in_lb", "jaw_tension_ok", "technician"})
        entry.number("torque_in_lb", positive=True, high=MAX_TORQUE_IN_LB)
        entry.boolean("jaw_tension_ok")
        if "technician" in entry:
            entry.text("technician")
        found[serial] = entry
    return found


class KeyFileError(OSError):
    """A key file the bench will not write through or use."""


def write_key(directory: Path, serial: str, key: str) -> Path:
    """A fresh key file readable by its owner only (mode 600, whatever the umask).

    Written to a new file beside it and renamed into place: a symlink planted at the key's path
    is refused (writing through it would truncate its target), and an old key file, whatever
    its mode, is replaced, never reused.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / f"{serial}.key"
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise KeyFileError(f"{path}: is a symlink or not a regular file; refusing to write a key there")
    staging = directory / f".{serial}.key.{secrets.token_hex(4)}"
    descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        os.write(descriptor, key.encode())
    finally:
        os.close(descriptor)
    os.replace(staging, path)
    return path


def read_key(path: Path) -> str:
    """Refuse a key that anyone but its owner can read."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise PermissionError(f"{path}: mode {mode:03o} lets group or others read it; the bench only uses keys with mode 600")
    return path.read_text()


@dataclass
class Audit:
    """Everything the checks need: the bench, the limits, the matrix, the registry, the inputs."""

    # The meter registers the audit's steps read, and (True) write: checked against the profile's
    # register map before anything is energised, so a gap is a line at start, not an error mid-run.
    REGISTERS: ClassVar[dict[str, bool]] = {
        "voltage_v": False, "phase_rotation": False, "alarm_code": False, "service_state": False, "tamper": False,
        "rssi_dbm": False, "snr_db": False, "ping_size": True, "ping_count": True, "ping_received": False,
        "key": True, "key_status": False, "key_fingerprint": False, "power_factor": False,
    }

    bench: Bench
    records: Engine
    keys_dir: Path
    payload: AccuracyPoint
    limits: AuditLimits = dataclasses.field(default_factory=load_limits)
    matrix: dict[str, str] = dataclasses.field(default_factory=load_matrix)
    inspection: dict[str, Section] | None = None
    firmware_baseline: str | None = None  # overrides the limits file's

    def result(self, step: str, name: str, pos: Position, passed: bool, observed: str, expected: str,
               code: str = "", note: str = "") -> CheckResult:
        return CheckResult(step, name, pos, passed, observed, expected, code if not passed else "",
                           self.hint(code, pos) if not passed else "", note)

    def hint(self, code: str, pos: Position) -> str:
        """The matrix's entry, its command filled in for this meter on this bench, ready to paste."""
        source = self.bench.profile.source_file
        profile = source if Path(source).is_file() else "PROFILE"
        return self.matrix.get(code, "").replace("{serial}", pos.serial).replace("{profile}", profile)

    def each(self, step: str, name: str, check: Callable[[Position], tuple[bool, str, str, str, str]]) -> dict[int, CheckResult]:
        return {pos.number: self.result(step, name, pos, *check(pos)) for pos in self.bench.profile.positions}

    def energise_nominal(self) -> None:
        """Nominal voltage, no load: the meters are powered for their functional checks."""
        mt = self.bench.profile.meter_type
        wanted = Stimulus(mt.nominal_voltage_v, 0.0, 0.0, mt.frequency_hz, mt.elements)
        if self.bench.stimulus != wanted:  # a point left at 1 kW, or a sag, is not "no load"
            self.bench.apply(wanted)
            self.bench.wait(self.payload.dwell.settle_s, "settling at nominal voltage")

    def read(self, pos: Position, name: str) -> Any:
        return self.bench.meters[pos.number].read(name)

    # 1 -------------------------------------------------------------------------------------
    def inspection_check(self) -> dict[int, CheckResult]:
        low, high = (self.limits.torque_in_lb * (1 + s * self.limits.torque_tolerance_pct / 100) for s in (-1, 1))
        expected = f"terminal torque {low:g}..{high:g} in-lb and jaw tension recorded as good"

        def check(pos: Position) -> tuple[bool, str, str, str, str]:
            entry = (self.inspection or {}).get(pos.serial)
            if entry is None:
                return False, f"no inspection entry for {pos.serial} (give --inspection FILE)", expected, "", ""
            try:
                torque, jaws = entry.number("torque_in_lb", positive=True, high=MAX_TORQUE_IN_LB), entry.data.get("jaw_tension_ok")
            except ConfigError as error:
                return False, str(error), expected, "", ""
            if not isinstance(jaws, bool):
                return False, f"{entry.key('jaw_tension_ok')} not recorded (true or false)", expected, "", ""
            ok = low <= torque <= high and jaws
            who = f" by {entry.data['technician']}" if "technician" in entry.data else ""
            return ok, f"torque {torque:g} in-lb, jaw tension {'good' if jaws else 'NOT good'}{who}", expected, "", ""

        return self.each("INSPECTION", "physical inspection", check)

    # 2 -------------------------------------------------------------------------------------
    def voltage_phase_check(self) -> dict[int, CheckResult]:
        self.energise_nominal()
        mt, lim = self.bench.profile.meter_type, self.limits
        readings, angles = self.bench.readings(), self.bench.reference.voltage_angles
        nominal = mt.nominal_voltage_v
        site_off = [v for v in readings.voltages_v if abs(v / nominal - 1) * 100 > lim.voltage_pct]
        wanted = forms()[mt.form].voltage_angles_deg
        rotation_ok = all(abs((a - w + 180) % 360 - 180) < 10 for a, w in zip(angles, wanted))
        thd_note = f"voltage THD {readings.thd_voltage_pct:.1f} % recorded" if readings.thd_voltage_pct > lim.thd_record_pct else ""
        expected = f"every element within ±{lim.voltage_pct:g} % of {nominal:g} V, phase rotation ABC"

        def check(pos: Position) -> tuple[bool, str, str, str, str]:
            volts, rotation, alarm = self.read(pos, "voltage_v"), self.read(pos, "phase_rotation"), self.read(pos, "alarm_code")
            meter_off = abs(volts / nominal - 1) * 100 > lim.voltage_pct
            observed = (f"reference {'/'.join(f'{v:.1f}' for v in readings.voltages_v)} V "
                        f"{'rotation ABC' if rotation_ok else 'rotation WRONG'}; meter reads {volts:.1f} V, rotation {rotation}")
            ok = not site_off and rotation_ok and not meter_off and rotation == "ABC"
            code = alarm if alarm in ("CAW", "E101") else ("CAW" if rotation != "ABC" or not rotation_ok else "E101")
            return ok, observed, expected, code, thd_note

        return self.each("VOLTAGE-PHASE", "voltage and phase", check)

    # 3 -------------------------------------------------------------------------------------
    def logic_check(self) -> dict[int, CheckResult]:
        self.energise_nominal()
        expected = "ami-provision running, no memory-checksum fault (E0001), no tamper alarm"

        def check(pos: Position) -> tuple[bool, str, str, str, str]:
            running, alarm, tamper = self.read(pos, "service_state") == 1, self.read(pos, "alarm_code"), self.read(pos, "tamper")
            observed = f"service {'running' if running else 'NOT running'}, alarm '{alarm or 'none'}', tamper {'SET' if tamper else 'clear'}"
            code = "SERVICE_DOWN" if not running else "E0001" if alarm == "E0001" else "TAMPER" if tamper else alarm
            return running and alarm != "E0001" and not tamper, observed, expected, code, ""

        return self.each("LOGIC", "logic layer", check)

    # 4 -------------------------------------------------------------------------------------
    def network_check(self) -> dict[int, CheckResult]:
        self.energise_nominal()
        lim = self.limits
        low, high = lim.rssi_dbm
        expected = (f"RSSI {low:g}..{high:g} dBm, SNR >= {lim.snr_min_db:g} dB, {lim.ping_probes} pings of "
                    f"{lim.ping_bytes} bytes with loss <= {lim.max_packet_loss_pct:g} %")

        def check(pos: Position) -> tuple[bool, str, str, str, str]:
            meter = self.bench.meters[pos.number]
            rssi, snr = meter.read("rssi_dbm"), meter.read("snr_db")
            meter.write("ping_size", lim.ping_bytes)
            meter.write("ping_count", lim.ping_probes)
            received = meter.read("ping_received")
            loss = 100.0 * (lim.ping_probes - received) / lim.ping_probes
            radio_ok = low <= rssi <= high and snr >= lim.snr_min_db
            observed = f"RSSI {rssi} dBm, SNR {snr} dB, {received}/{lim.ping_probes} pings answered ({loss:.0f} % lost)"
            code = "W202" if not radio_ok else "ERR_NET_TIMEOUT"
            return radio_ok and loss <= lim.max_packet_loss_pct, observed, expected, code, ""

        return self.each("NETWORK", "network", check)

    # 5 -------------------------------------------------------------------------------------
    def keys_identity_check(self) -> dict[int, CheckResult]:
        self.energise_nominal()
        expected = "meter ID uniquely mapped to its MAC; key rotated, accepted, fingerprint matches; key file mode 600"
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")

        def check(pos: Position) -> tuple[bool, str, str, str, str]:
            identity = self.bench.identities[pos.number]
            conflict = store.register_meter(self.records, identity.serial, identity.mac, now)
            if conflict:
                return False, conflict, expected, "DUPLICATE_ID", ""
            try:
                path = write_key(self.keys_dir, identity.serial, secrets.token_hex(16))
                key = read_key(path)
            except OSError as error:
                return False, f"key file: {error}", expected, "", ""
            meter = self.bench.meters[pos.number]
            meter.write("key", key)
            status, fingerprint = meter.read("key_status"), meter.read("key_fingerprint")
            accepted = status == 1 and fingerprint == hashlib.sha256(key.encode()).hexdigest()[:16]
            observed = (f"MAC {identity.mac} registered; key {'accepted' if accepted else 'REJECTED'} "
                        f"(status {status}), file {path.name} mode {stat.S_IMODE(path.stat().st_mode):03o}")
            return accepted, observed, expected, "E004", ""

        return self.each("KEYS-IDENTITY", "key rotation and identity", check)

    # 6 -------------------------------------------------------------------------------------
    def payload_check(self) -> dict[int, PositionResult | FaultResult]:
        """The 1.0 kW payload accuracy point; a failure is diagnosed from the meter's own view:
        a negative power factor means a reversed CT or phase wiring, else its alarm code."""
        results = measure_point(self.bench, self.payload)
        diagnosed = {}
        for number, result in results.items():
            if result.verdict in ("FAIL", "INDETERMINATE"):  # an ERROR is the bench's, not the meter's
                pos = result.position
                code = "NEGATIVE_PF" if self.read(pos, "power_factor") < 0 else self.read(pos, "alarm_code")
                result = dataclasses.replace(result, diagnosis=self.matrix.get(code, ""))
            diagnosed[number] = result
        return diagnosed

    # 7 -------------------------------------------------------------------------------------
    def firmware_check(self) -> dict[int, CheckResult]:
        baseline = self.firmware_baseline or self.limits.firmware_baseline
        return self.each("FIRMWARE", "firmware baseline", lambda pos: (
            self.bench.identities[pos.number].firmware == baseline,
            f"firmware {self.bench.identities[pos.number].firmware}", baseline, "F505", ""))
