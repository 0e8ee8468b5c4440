"""Firmware behaviour a release must keep (register map and scaling, 15-minute interval records,
buffered alarms, version string)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from bench.datafiles import STANDARDS, load_toml
from bench.metrology.forms import forms
from bench.metrology.stimulus import Stimulus
from bench.plans.board_checks import BoardChecks, BoardStep, Finding
from bench.procedures.gating import AccuracyPoint, Load
from bench.station.bench import Bench
from bench.station.intervals import IntervalJournal, Window
from bench.station.profile import Position
from instruments.reference_standard import Readings


@dataclass(frozen=True)
class FirmwareLimits:
    interval_s: float
    intervals_checked: int
    intervals_judged_min: int
    interval_tolerance_pct: float
    interval_min_load_pct_ta: float
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
                          table.integer("intervals_judged_min", low=1, high=96),
                          table.number("interval_tolerance_pct", positive=True, high=20.0),
                          table.number("interval_min_load_pct_ta", positive=True, high=100.0),
                          table.number("register_tolerance_pct", positive=True, high=20.0),
                          table.number("sag_voltage_pct", positive=True, high=100.0),
                          table.number("sag_duration_s", positive=True, high=3600.0), table.text("sag_alarm"),
                          table.text("version_pattern"))


BOUNDARY_MARGIN_S = 1.0  # past a boundary, before its record is counted on: the meter closes it on its own clock


class FirmwareChecks(BoardChecks):
    """Each check examines every position at once, with the board at a stated stimulus."""

    # The meter registers these checks read, and (True) write: checked before anything is energised.
    REGISTERS: ClassVar[dict[str, bool]] = {
        "voltage_v": False, "current_a": False, "power_w": False, "frequency_hz": False, "interval_count": False,
        "interval_select": True, "interval_energy_wh": False, "daily_alarms": False, "firmware": False,
    }

    def __init__(self, bench: Bench, payload: AccuracyPoint, limits: FirmwareLimits | None = None) -> None:
        super().__init__(bench, payload.dwell.settle_s)
        self.payload = payload
        self.limits = limits or load_firmware_limits()

    def energise_payload(self) -> Readings:
        """The payload point's stimulus (1.0 kW), settled; the reference standard's readings there."""
        self.settle_at(self.payload.stimulus(self.bench), "settling at 1.0 kW")
        return self.bench.readings()

    def register_map(self) -> dict[int, Finding]:
        """What the meter reports over Modbus against the reference standard, at 1.0 kW."""
        readings = self.energise_payload()
        tolerance = self.limits.register_tolerance_pct
        truth = {"voltage_v": sum(readings.voltages_v) / len(readings.voltages_v),
                 "current_a": max(readings.currents_a), "power_w": readings.power_w,
                 "frequency_hz": readings.frequency_hz}

        def check(pos: Position) -> Finding:
            off = {name: (self.read(pos, name) / value - 1) * 100 for name, value in truth.items()}
            worst = max(off, key=lambda name: abs(off[name]))
            ok = all(abs(v) <= tolerance for v in off.values())
            return Finding(ok, f"{worst} {off[worst]:+.3f} % off the reference (the largest of {', '.join(off)})",
                           f"every register within ±{tolerance:g} % of the reference")

        return self.each_at_once(check, reads=tuple(truth))

    def intervals(self) -> dict[int, Finding]:
        """Every interval record a meter closed during the run holds the reference's energy over
        the same window. Where the meters' clocks cannot be read, the dedicated hour at full load (TA)."""
        journal = self.bench.intervals
        if journal is None:
            return self._intervals_held_at_full_load()
        self._hold_for_missing(journal)
        now = self.bench.now()
        return self.each_at_once(lambda pos: self._judge_records(journal, pos, now))

    def _least_energy_wh(self) -> float:
        """A window's reference energy below which its record is not judged: under the meter's
        power at the stated share of TA (unity PF, nominal voltage) the class limit no longer
        bounds its error, so a record off by more than the tolerance is the meter's light-load
        error (the light-load points and the payload check judge it), not the record's."""
        mt = self.bench.profile.meter_type
        light_w = mt.nominal_voltage_v * mt.test_amperes * self.limits.interval_min_load_pct_ta / 100.0 * mt.elements
        return light_w * self.limits.interval_s / 3600.0

    def _judgeable(self, journal: IntervalJournal, n: int) -> list[Window]:
        least = self._least_energy_wh()
        return [w for w in journal.windows(n) if not w.flowed_back and w.reference_wh >= least]

    def _hold_for_missing(self, journal: IntervalJournal) -> None:
        """A run too short to have closed enough judgeable intervals holds full load (TA, unity
        PF, nominal voltage: where the class limit applies), boundary by boundary, until each
        meter has: the dedicated check's hour shrinks to what is missing."""
        clocks, need = journal.clocks, self.limits.intervals_judged_min
        if all(len(self._judgeable(journal, n)) >= need for n in clocks):
            return
        self.energise_full_load()
        now = self.bench.now()
        # By then every meter has closed `need` windows wholly at TA (the first may be partial).
        last = max(clock.boundary_s(clock.interval_number(now) + 1 + need) for clock in clocks.values())
        margin = max(clock.uncertainty_at(last) for clock in clocks.values()) + BOUNDARY_MARGIN_S
        deadline = last + margin
        while (short := [n for n in clocks if len(self._judgeable(journal, n)) < need]) and now < deadline:
            soonest = min(clocks[n].boundary_s(clocks[n].interval_number(now) + 1) for n in short)
            self.bench.wait(min(soonest + margin, deadline) - now, "interval records")
            now = self.bench.now()

    def _judge_records(self, journal: IntervalJournal, pos: Position, now: float) -> Finding:
        lim, n = self.limits, pos.number
        expected = (f"every record present; at least {lim.intervals_judged_min} judged, each within "
                    f"±{lim.interval_tolerance_pct:g} % of the reference's energy over its window")
        if n in journal.unclocked:
            return Finding(False, f"interval records not checked: {journal.unclocked[n]}", expected)
        meter, clock = self.bench.meters[n], journal.clocks[n]
        if clock.interval_s != lim.interval_s:
            return Finding(False, f"the meter keeps {clock.interval_s:g} s interval records",
                           f"{lim.interval_s:g} s interval records")
        new = int(meter.read("interval_count")) - journal.records_at_start[n]
        margin = clock.uncertainty_at(now) + BOUNDARY_MARGIN_S
        fewest, most = (journal.closed_since_start(n, now - margin), journal.closed_since_start(n, now + margin))
        closed = f"{fewest}" if fewest == most else f"{fewest} or {most}"
        if not fewest <= new <= most:
            return Finding(False, f"{new} records for {closed} intervals closed since the run began", expected)
        first = clock.interval_number(journal.started_s)
        closed_windows = [w for w in journal.windows(n) if w.closes <= first + new]
        judged = [w for w in self._judgeable(journal, n) if w.closes <= first + new]
        errors = []
        for window in judged:
            meter.write("interval_select", journal.records_at_start[n] + window.closes - first - 1)
            record = float(meter.read("interval_energy_wh"))
            allowed = lim.interval_tolerance_pct / 100.0 * window.reference_wh + window.timing_wh
            errors.append(((record / window.reference_wh - 1) * 100, abs(record - window.reference_wh) <= allowed))
        worst = max((e for e, _ in errors), key=abs, default=0.0)
        skipped = len(closed_windows) - len(judged)
        ok = len(errors) >= lim.intervals_judged_min and all(within for _, within in errors)
        return Finding(ok, f"{new} records for {closed} intervals closed since the run began; {len(errors)} judged "
                           f"against the reference, worst {worst:+.3f} % off",
                       expected, note=f"{skipped} window(s) not judged: energy flowed back, or under "
                                      f"{self._least_energy_wh():.1f} Wh" if skipped else "")

    def energise_full_load(self) -> Readings:
        """TA at unity PF and nominal voltage, settled, where the class limit bounds the meter's
        error (the payload's 1.0 kW is under 10 % TA); the reference standard's readings there."""
        self.settle_at(Load(current_fraction=1.0).stimulus(self.bench.profile.meter_type), "settling at TA")
        return self.bench.readings()

    def _intervals_held_at_full_load(self) -> dict[int, Finding]:
        """At constant full load (TA), every 15-minute record holds P x 15 min: none missing, none off."""
        lim = self.limits
        readings = self.energise_full_load()
        self.bench.wait(lim.interval_s, "interval records")  # the interval open at switch-on is partial
        before = {p.number: self.read(p, "interval_count") for p in self.bench.profile.positions}
        self.bench.wait(lim.intervals_checked * lim.interval_s, "interval records")
        expected_wh = readings.power_w * lim.interval_s / 3600.0

        def check(pos: Position) -> Finding:
            meter = self.bench.meters[pos.number]
            count = meter.read("interval_count")
            new = count - before[pos.number]
            errors = []
            for index in range(count - new, count):
                meter.write("interval_select", index)
                errors.append((meter.read("interval_energy_wh") / expected_wh - 1) * 100)
            worst = max(errors, key=abs) if errors else 0.0
            ok = new == lim.intervals_checked and abs(worst) <= lim.interval_tolerance_pct
            return Finding(ok, f"{new} records for {lim.intervals_checked} intervals, worst {worst:+.3f} % off "
                               f"{expected_wh:.2f} Wh",
                           f"{lim.intervals_checked} records, each within ±{lim.interval_tolerance_pct:g} %")

        return self.each_at_once(check)

    def alarm_buffer(self) -> dict[int, Finding]:
        """A voltage sag (a non-critical event) must land in the daily payload's alarm buffer."""
        lim, mt = self.limits, self.bench.profile.meter_type
        sag = Stimulus(mt.nominal_voltage_v * lim.sag_voltage_pct / 100, 0.0, 0.0, mt.frequency_hz, mt.elements,
                       circuit_map=forms()[mt.form].circuit_map)
        self.bench.apply(sag)
        self.bench.wait(lim.sag_duration_s, "voltage sag")
        self.energise_nominal()

        def check(pos: Position) -> Finding:
            buffered = self.read(pos, "daily_alarms")
            return Finding(lim.sag_alarm in buffered.split(","), f"daily payload alarms '{buffered or 'none'}'",
                           f"{lim.sag_alarm} buffered after a {lim.sag_voltage_pct:g} % sag")

        return self.each(check, reads=("daily_alarms",))

    def version(self) -> dict[int, Finding]:
        def check(pos: Position) -> Finding:
            firmware = self.read(pos, "firmware")
            return Finding(re.fullmatch(self.limits.version_pattern, firmware) is not None, f"firmware '{firmware}'",
                           f"a release name matching {self.limits.version_pattern}")

        return self.each(check, reads=("firmware",))


REGISTER_MAP = BoardStep("FW-REGISTERS", "register map and scaling", FirmwareChecks.register_map)
INTERVALS = BoardStep("FW-INTERVALS", "15-minute interval records", FirmwareChecks.intervals)
ALARM_BUFFER = BoardStep("FW-ALARMS", "non-critical alarms buffered", FirmwareChecks.alarm_buffer)
VERSION = BoardStep("FW-VERSION", "firmware version string", FirmwareChecks.version)
STEPS: tuple[BoardStep[FirmwareChecks], ...] = (REGISTER_MAP, INTERVALS, ALARM_BUFFER, VERSION)
