"""The installation audit on the bench: the procedure's functional checks, in its order, each on
every position, with the troubleshooting matrix's entry on every failure (all limits as data)."""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from sqlalchemy.engine import Engine

from bench.datafiles import STANDARDS, Section, load_toml
from bench.metrology.forms import forms
from bench.plans.board_checks import BoardChecks, BoardStep, Finding
from bench.plans.inspection import MAX_TORQUE_IN_LB, described, terminals
from bench.plans.keys import read_key, write_key
from bench.procedures.gating import AccuracyPoint, measure_point
from bench.procedures.results import FaultResult, PositionResult
from bench.records import store
from bench.station.bench import Bench
from bench.station.profile import Position


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
                       audit.number("voltage_pct", positive=True, high=50.0),
                       audit.number("thd_record_pct", positive=True, high=100.0),
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


class Audit(BoardChecks):
    """The audit's checks, with what they need: the limits, the matrix, the registry, the inputs."""

    # The meter registers the audit's steps read, and (True) write: checked against the profile's
    # register map before anything is energised, so a gap is a line at start, not an error mid-run.
    REGISTERS: ClassVar[dict[str, bool]] = {
        "voltage_v": False, "phase_rotation": False, "alarm_code": False, "service_state": False, "tamper": False,
        "rssi_dbm": False, "snr_db": False, "ping_size": True, "ping_count": True, "ping_received": False,
        "key": True, "key_status": False, "key_fingerprint": False, "power_factor": False,
    }

    def __init__(self, bench: Bench, records: Engine, keys_dir: Path, payload: AccuracyPoint,
                 inspection: Mapping[str, Section] | None = None, firmware_baseline: str | None = None,
                 limits: AuditLimits | None = None, matrix: Mapping[str, str] | None = None) -> None:
        super().__init__(bench, payload.dwell.settle_s, matrix if matrix is not None else load_matrix())
        self.records, self.keys_dir, self.payload = records, keys_dir, payload
        self.inspection = inspection or {}
        self.limits = limits or load_limits()
        self.firmware_baseline = firmware_baseline or self.limits.firmware_baseline  # the option overrides the file

    def inspection_check(self) -> dict[int, Finding]:
        low, high = (self.limits.torque_in_lb * (1 + s * self.limits.torque_tolerance_pct / 100) for s in (-1, 1))
        names = terminals(forms()[self.bench.profile.meter_type.form])
        expected = (f"terminal torque {low:g}..{high:g} in-lb on each of {len(names)} terminals, jaw tension good, "
                    f"seal numbers recorded")

        def check(pos: Position) -> Finding:
            entry = self.inspection.get(pos.serial)
            if entry is None:
                return Finding(False, f"no inspection entry for {pos.serial} (give --inspection FILE)", expected)
            return Finding(*described(entry, names, low, high), expected)

        return self.each(check)

    def voltage_phase_check(self) -> dict[int, Finding]:
        self.energise_nominal()
        mt, lim = self.bench.profile.meter_type, self.limits
        readings = self.bench.readings()
        angles = readings.voltage_angles_deg
        nominal = mt.nominal_voltage_v
        site_off = [v for v in readings.voltages_v if abs(v / nominal - 1) * 100 > lim.voltage_pct]
        wanted = forms()[mt.form].voltage_angles_deg
        rotation_ok = all(abs((a - w + 180) % 360 - 180) < 10 for a, w in zip(angles, wanted))
        thd = readings.thd_voltage_pct
        thd_note = f"voltage THD {thd:.1f} % recorded" if thd > lim.thd_record_pct else ""
        expected = f"every element within ±{lim.voltage_pct:g} % of {nominal:g} V, phase rotation ABC"

        def check(pos: Position) -> Finding:
            volts, rotation = self.read(pos, "voltage_v"), self.read(pos, "phase_rotation")
            alarm = self.read(pos, "alarm_code")
            meter_off = abs(volts / nominal - 1) * 100 > lim.voltage_pct
            observed = (f"reference {'/'.join(f'{v:.1f}' for v in readings.voltages_v)} V "
                        f"{'rotation ABC' if rotation_ok else 'rotation WRONG'}; "
                        f"meter reads {volts:.1f} V, rotation {rotation}")
            ok = not site_off and rotation_ok and not meter_off and rotation == "ABC"
            code = alarm if alarm in ("CAW", "E101") else ("CAW" if rotation != "ABC" or not rotation_ok else "E101")
            return Finding(ok, observed, expected, code=code, note=thd_note)

        return self.each_at_once(check, reads=("voltage_v", "phase_rotation", "alarm_code"))

    def logic_check(self) -> dict[int, Finding]:
        self.energise_nominal()
        expected = "ami-provision running, no memory-checksum fault (E0001), no tamper alarm"

        def check(pos: Position) -> Finding:
            running = self.read(pos, "service_state") == 1
            alarm, tamper = self.read(pos, "alarm_code"), self.read(pos, "tamper")
            observed = (f"service {'running' if running else 'NOT running'}, alarm '{alarm or 'none'}', "
                        f"tamper {'SET' if tamper else 'clear'}")
            code = "SERVICE_DOWN" if not running else "E0001" if alarm == "E0001" else "TAMPER" if tamper else alarm
            return Finding(running and alarm != "E0001" and not tamper, observed, expected, code=code)

        return self.each_at_once(check, reads=("service_state", "alarm_code", "tamper"))

    def network_check(self) -> dict[int, Finding]:
        self.energise_nominal()
        lim = self.limits
        low, high = lim.rssi_dbm
        expected = (f"RSSI {low:g}..{high:g} dBm, SNR >= {lim.snr_min_db:g} dB, {lim.ping_probes} pings of "
                    f"{lim.ping_bytes} bytes with loss <= {lim.max_packet_loss_pct:g} %")

        def check(pos: Position) -> Finding:
            meter = self.bench.meters[pos.number]
            rssi, snr = meter.read("rssi_dbm"), meter.read("snr_db")
            meter.write("ping_size", lim.ping_bytes)
            meter.write("ping_count", lim.ping_probes)
            received = meter.read("ping_received")
            loss = 100.0 * (lim.ping_probes - received) / lim.ping_probes
            radio_ok = low <= rssi <= high and snr >= lim.snr_min_db
            observed = f"RSSI {rssi} dBm, SNR {snr} dB, {received}/{lim.ping_probes} pings answered ({loss:.0f} % lost)"
            code = "W202" if not radio_ok else "ERR_NET_TIMEOUT"
            return Finding(radio_ok and loss <= lim.max_packet_loss_pct, observed, expected, code=code)

        return self.each_at_once(check)

    def keys_identity_check(self) -> dict[int, Finding]:
        self.energise_nominal()
        expected = "meter ID uniquely mapped to its MAC; key rotated, accepted, fingerprint matches; key file mode 600"
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        identities = [self.bench.identities[pos.number] for pos in self.bench.profile.positions]
        conflicts = dict(zip([pos.number for pos in self.bench.profile.positions],
                             store.register_meters(self.records, [(i.serial, i.mac) for i in identities], now)))

        def check(pos: Position) -> Finding:
            identity = self.bench.identities[pos.number]
            conflict = conflicts[pos.number]
            if conflict:
                return Finding(False, conflict, expected, code="DUPLICATE_ID")
            try:
                path = write_key(self.keys_dir, identity.serial, secrets.token_hex(16))
                key = read_key(path)
            except OSError as error:
                return Finding(False, f"key file: {error}", expected)
            meter = self.bench.meters[pos.number]
            meter.write("key", key)
            status, fingerprint = meter.read("key_status"), meter.read("key_fingerprint")
            accepted = status == 1 and fingerprint == hashlib.sha256(key.encode()).hexdigest()[:16]
            observed = (f"MAC {identity.mac} registered; key {'accepted' if accepted else 'REJECTED'} "
                        f"(status {status}), file {path.name} mode {stat.S_IMODE(path.stat().st_mode):03o}")
            return Finding(accepted, observed, expected, code="E004")

        return self.each(check)

    def payload_check(self) -> dict[int, PositionResult | FaultResult]:
        """The 1.0 kW payload accuracy point; a failure is diagnosed from the meter's own view:
        a negative power factor means a reversed CT or phase wiring, else its alarm code."""
        results = measure_point(self.bench, self.payload)
        diagnosed: dict[int, PositionResult | FaultResult] = {}
        for number, result in results.items():
            # A FaultResult (ERROR) is the bench's, not the meter's: nothing to diagnose on the meter.
            if isinstance(result, PositionResult) and result.verdict in ("FAIL", "INDETERMINATE"):
                pos = result.position
                code = "NEGATIVE_PF" if self.read(pos, "power_factor") < 0 else self.read(pos, "alarm_code")
                result = dataclasses.replace(result, diagnosis=self.matrix.get(code, ""))
            diagnosed[number] = result
        return diagnosed

    def firmware_check(self) -> dict[int, Finding]:
        baseline = self.firmware_baseline

        def check(pos: Position) -> Finding:
            firmware = self.bench.identities[pos.number].firmware
            return Finding(firmware == baseline, f"firmware {firmware}", baseline, code="F505")

        return self.each(check)


INSPECTION = BoardStep("INSPECTION", "physical inspection", Audit.inspection_check)
VOLTAGE_PHASE = BoardStep("VOLTAGE-PHASE", "voltage and phase", Audit.voltage_phase_check)
LOGIC = BoardStep("LOGIC", "logic layer", Audit.logic_check)
NETWORK = BoardStep("NETWORK", "network", Audit.network_check)
KEYS_IDENTITY = BoardStep("KEYS-IDENTITY", "key rotation and identity", Audit.keys_identity_check)
PAYLOAD = BoardStep("PAYLOAD", "payload accuracy at 1.0 kW", Audit.payload_check)
FIRMWARE = BoardStep("FIRMWARE", "firmware baseline", Audit.firmware_check)
STEPS: tuple[BoardStep[Audit], ...] = (INSPECTION, VOLTAGE_PHASE, LOGIC, NETWORK, KEYS_IDENTITY, PAYLOAD, FIRMWARE)
"""The procedure's order: a plan module names its step (``STEP = NETWORK``); the plugin runs them in this order."""
