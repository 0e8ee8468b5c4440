"""Firmware behaviour a release must keep (register map and scaling, 15-minute interval records,
buffered alarms, version string), and the comparison of a run with a baseline run or release."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import select
from sqlalchemy.engine import Engine

from bench import store
from bench.audit import Audit
from bench.config import STANDARDS, load_toml
from bench.results import CheckResult
from bench.stimulus import Stimulus



@dataclass(frozen=True)
class FirmwareLimits:
    interval_s: float
    intervals_checked: int
    interval_tolerance_pct: float
    register_tolerance_pct: float
    sag_voltage_pct: float
    sag_duration_s: float
    sag_alarm: str
    version_pattern: str


def load_firmware_limits(path: Path = STANDARDS / "firmware.toml") -> FirmwareLimits:
    doc = load_toml(path)
    table = doc.table("firmware").with_provenance(doc.table("provenance"))
    return FirmwareLimits(table.number("interval_s", positive=True, high=86400.0),
                          table.integer("intervals_checked", low=1, high=96),
                          table.number("interval_tolerance_pct", positive=True, high=20.0),
                          table.number("register_tolerance_pct", positive=True, high=20.0),
                          table.number("sag_voltage_pct", positive=True, high=100.0),
                          table.number("sag_duration_s", positive=True, high=3600.0), table.text("sag_alarm"),
                          table.text("version_pattern"))


class FirmwareChecks:
    """Each check examines every position at once, with the board at a stated stimulus."""

    # The meter registers these checks read, and (True) write: checked before anything is energised.
    REGISTERS: ClassVar[dict[str, bool]] = {
        "voltage_v": False, "current_a": False, "power_w": False, "frequency_hz": False, "interval_count": False,
        "interval_select": True, "interval_energy_wh": False, "daily_alarms": False, "firmware": False,
    }

    def __init__(self, audit: Audit, limits: FirmwareLimits | None = None) -> None:
        self.audit, self.bench = audit, audit.bench
        self.limits = limits or load_firmware_limits()

    def _energise_1kw(self) -> Any:
        self.bench.apply(self.audit.payload.stimulus(self.bench))
        self.bench.wait(self.audit.payload.dwell.settle_s, "settling at 1.0 kW")
        return self.bench.readings()

    def register_map(self) -> dict[int, CheckResult]:
        """What the meter reports over Modbus against the reference standard, at 1.0 kW."""
        readings = self._energise_1kw()
        tolerance = self.limits.register_tolerance_pct
        truth = {"voltage_v": sum(readings.voltages_v) / len(readings.voltages_v), "current_a": max(readings.currents_a),
                 "power_w": readings.power_w, "frequency_hz": readings.frequency_hz}

        def check(pos):
            off = {name: (self.audit.read(pos, name) / value - 1) * 100 for name, value in truth.items()}
            worst = max(off, key=lambda name: abs(off[name]))
            ok = all(abs(v) <= tolerance for v in off.values())
            return (ok, f"{worst} {off[worst]:+.3f} % off the reference (the largest of {', '.join(off)})",
                    f"every register within ±{tolerance:g} % of the reference", "", "")

        return self.audit.each("FW-REGISTERS", "register map and scaling", check)

    def intervals(self) -> dict[int, CheckResult]:
        """At constant 1.0 kW, every 15-minute record holds P x 15 min: none missing, none off."""
        lim = self.limits
        readings = self._energise_1kw()
        self.bench.wait(lim.interval_s, "interval records")  # the interval open at switch-on is partial
        before = {p.number: self.audit.read(p, "interval_count") for p in self.bench.profile.positions}
        self.bench.wait(lim.intervals_checked * lim.interval_s, "interval records")
        expected_wh = readings.power_w * lim.interval_s / 3600.0

        def check(pos):
            meter = self.bench.meters[pos.number]
            count = meter.read("interval_count")
            new = count - before[pos.number]
            errors = []
            for index in range(count - new, count):
                meter.write("interval_select", index)
                errors.append((meter.read("interval_energy_wh") / expected_wh - 1) * 100)
            worst = max(errors, key=abs) if errors else 0.0
            ok = new == lim.intervals_checked and abs(worst) <= lim.interval_tolerance_pct
            return (ok, f"{new} records for {lim.intervals_checked} intervals, worst {worst:+.3f} % off "
                        f"{expected_wh:.2f} Wh", f"{lim.intervals_checked} records, each within ±{lim.interval_tolerance_pct:g} %",
                    "", "")

        return self.audit.each("FW-INTERVALS", "15-minute interval records", check)

    def alarm_buffer(self) -> dict[int, CheckResult]:
        """A voltage sag (a non-critical event) must land in the daily payload's alarm buffer."""
        lim, mt = self.limits, self.bench.profile.meter_type
        sag = Stimulus(mt.nominal_voltage_v * lim.sag_voltage_pct / 100, 0.0, 0.0, mt.frequency_hz, mt.elements)
        self.bench.apply(sag)
        self.bench.wait(lim.sag_duration_s, "voltage sag")
        self.audit.energise_nominal()

        def check(pos):
            buffered = self.audit.read(pos, "daily_alarms")
            return (lim.sag_alarm in buffered.split(","), f"daily payload alarms '{buffered or 'none'}'",
                    f"{lim.sag_alarm} buffered after a {lim.sag_voltage_pct:g} % sag", "", "")

        return self.audit.each("FW-ALARMS", "non-critical alarms buffered", check)

    def version(self) -> dict[int, CheckResult]:
        def check(pos):
            firmware = self.audit.read(pos, "firmware")
            return (re.fullmatch(self.limits.version_pattern, firmware) is not None, f"firmware '{firmware}'",
                    f"a release name matching {self.limits.version_pattern}", "", "")

        return self.audit.each("FW-VERSION", "firmware version string", check)


@dataclass(frozen=True)
class Baseline:
    reference: str  # what the user asked for: a run id or a release
    run_id: str
    started_at: str
    entries: dict[tuple[str, str], dict[str, Any]]  # (serial, point) -> that run's result entry

    @property
    def serials(self) -> set[str]:
        return {serial for serial, _ in self.entries}


METER_TYPE_KEYS = ("manufacturer", "model", "form", "accuracy_class")


def comparable(record: dict[str, Any], plan: str, meter_type: dict[str, Any]) -> str:
    """Why a stored run cannot be a baseline for this run ('' when it can): only a complete run of
    the same plan and limits version, on the same meter type, compares point for point."""
    if record["status"] != "complete":
        return f"run {record['run_id'][:8]} is {record['status']}: only a complete run can be a baseline"
    its_plan = f"{record['plan']['name']} {record['plan']['version']}"
    if its_plan != plan:
        return f"run {record['run_id'][:8]} ran '{its_plan}', not '{plan}'"
    theirs = {k: record["meter_type"].get(k) for k in METER_TYPE_KEYS}
    ours = {k: meter_type[k] for k in METER_TYPE_KEYS}
    if theirs != ours:
        return f"run {record['run_id'][:8]} tested {theirs}, not {ours}"
    return ""


def load_baseline(engine: Engine, reference: str, plan: str, meter_type: dict[str, Any]) -> Baseline:
    """A stored run by id (or unique prefix), else the latest comparable run with meters on release
    ``reference``."""
    try:
        record = store.load_run(engine, reference)
    except store.RecordsError:
        record = None
    if record is not None:
        why = comparable(record, plan, meter_type)
        if why:
            raise store.RecordsError(why)
    else:
        query = (select(store.runs.c.run_id).join(store.meter_runs, store.meter_runs.c.run_id == store.runs.c.run_id)
                 .where((store.meter_runs.c.firmware == reference) & (store.runs.c.status == "complete"))
                 .distinct().order_by(store.runs.c.run_id))
        with engine.connect() as conn:
            candidates = [store.load_run(engine, run_id) for run_id in conn.execute(query).scalars()]
        usable = sorted((r for r in candidates if not comparable(r, plan, meter_type)), key=lambda r: r["started_at"])
        if not usable:
            raise store.RecordsError(f"no run and no complete run of '{plan}' on {meter_type['model']} meters with "
                                     f"release '{reference}' in the records")
        record = usable[-1]
    entries = {(m["serial"], e["point"]): e for m in record["meters"] for e in m["results"]}
    return Baseline(reference, record["run_id"], record["started_at"], entries)


def compared_enough(baseline: dict[str, Any]) -> bool:
    """A comparison that covered too few of the run's points (a record's ``baseline``) is no
    regression verdict at all."""
    return baseline["points_compared"] >= baseline["min_overlap"] * baseline["points_run"]


@dataclass(frozen=True)
class Comparison:
    baseline: str  # the baseline's value and verdict, as shown
    change: str
    regression: str  # empty, or why this point regressed


def compare(baseline: Baseline, serial: str, point: str, now: dict[str, Any], margin_pct: float) -> Comparison | None:
    """A point regresses when it newly fails, or its error moved towards its limit by more than
    the margin."""
    then = baseline.entries.get((serial, point))
    if then is None:
        return None
    was, is_ = then["value_pct"], now["value_pct"]
    shown = f"{was:+.4f} % " if was is not None else ""
    change = f"{is_ - was:+.4f} %" if was is not None and is_ is not None else ""
    why = ""
    if then["verdict"] == "PASS" and now["verdict"] != "PASS":
        why = f"newly {now['verdict']} (was PASS in run {baseline.run_id[:8]})"
    elif was is not None and is_ is not None and abs(is_) - abs(was) > margin_pct:
        why = f"moved {abs(is_) - abs(was):.4f} % towards its limit (margin {margin_pct:g} %)"
    return Comparison(f"{shown}{then['verdict']}", change, why)
