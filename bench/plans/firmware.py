"""Firmware behaviour a release must keep (register map and scaling, 15-minute interval records,
buffered alarms, version string)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from bench.datafiles import STANDARDS, load_toml
from bench.metrology.stimulus import Stimulus
from bench.plans.audit import Audit
from bench.procedures.results import CheckResult


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
