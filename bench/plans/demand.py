"""Demand register test: at 10 % and 100 % TA, one full demand interval, the meter's demand
registers (read over its comms) against the reference standard's average power over that interval.

Demand-billed meters bill on kW over the demand interval, so their demand register is tested in
its own right, with its own limit (bench/standards/demand.toml, every value with its provenance).
The procedure relies on what a meter does on a demand reset in test mode: the registers are
zeroed and a new interval starts at once. The bench writes the reset, reads the reference's energy
register around it and around the interval's nominal end (interpolating to each meter's own reset
time, as the energy-register check does), waits until the meter has closed its interval, and
compares the meter's maximum and last-interval demand with P_ref = dE / dt.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import ClassVar, TypeVar

from bench.datafiles import STANDARDS, Section, load_toml
from bench.metrology.conditions import ReferenceConditions
from bench.metrology.stimulus import Stimulus
from bench.metrology.uncertainty import Budget, Component, Rule, decide, fixed_components
from bench.procedures.gating import Load, Progress, settle_at_conditions
from bench.procedures.results import FaultResult, Measured, PositionResult
from bench.station.bench import Bench
from bench.station.meter_reads import BoardRead
from bench.station.profile import MeterType, Position
from instruments.errors import InstrumentError
from instruments.reference_standard import Readings

DEFAULT_TABLE = STANDARDS / "demand.toml"
# The family its results are recorded under: on the accuracy certificate, where a point that did not
# pass withholds certification as a failed accuracy point does (records/record.certifies).
FAMILY = "demand"
# Physical ranges of the table's numbers: a demand point is a fraction of TA or Imax (the rule's
# points lie between 10 % and 100 % TA), a demand tolerance a few percent of reading (mechanical
# demand meters are allowed 4 % of full scale), a demand interval at most an hour.
MAX_CURRENT_FRACTION = 2.0
MAX_TOLERANCE_PCT = 20.0
MAX_SETTLE_S = 3600.0
MAX_OVERRUN_PCT = 50.0  # a demand timer more than half an interval late is not a clock error but a dead register
MAX_POLL_S = 60.0
MAX_CLOCK_PPM = 1000.0
MAX_INTERVAL_S = 3600.0  # the longest demand interval in use (60 minutes)
PROGRESS_STEP_S = 5.0  # the longest single wait while an interval runs: progress and the interlock are seen between
_ID = re.compile(r"[A-Z0-9][A-Z0-9-]*")
_TABLE_KEYS = {"name", "version", "standard", "provenance"}
_PROCEDURE_KEYS = {"settle_s", "close_overrun_pct", "poll_s", "bench_clock_ppm"}
_POINT_KEYS = {"id", "name", "current", "of", "pf", "lead", "tolerance", "provenance"}


@dataclass(frozen=True)
class DemandPoint:
    """One demand point on the board: a steady load held for one demand interval, and the
    tolerance of the demand registers there (± % of reading)."""

    id: str
    name: str
    load: Load
    limit_pct: float
    provenance: str
    family: str = FAMILY

    def stimulus(self, mt: MeterType) -> Stimulus:
        return self.load.stimulus(mt)


@dataclass(frozen=True)
class DemandProcedure:
    settle_s: float  # after the stimulus is applied, before the reset
    close_overrun_pct: float  # how long past the nominal end (% of the interval) the bench waits for the close
    poll_s: float  # how often the bench asks whether the interval has closed, once past its nominal end
    bench_clock_ppm: float  # rate uncertainty of the bench clock the interval is timed with (rectangular half-width)


@dataclass(frozen=True)
class DemandRow:
    """A validated row before a meter's accuracy class picks its tolerance."""

    id: str
    name: str
    load: Load
    tolerance: float | dict[str, float]  # one tolerance for every class, or one per class
    provenance: str
    section: Section  # where the row stands, for an error found when it is resolved


@dataclass(frozen=True)
class DemandTable:
    source: str
    name: str
    version: str
    standard: str
    provenance: str
    procedure: DemandProcedure
    rows: tuple[DemandRow, ...]

    def points(self, mt: MeterType) -> list[DemandPoint]:
        """The table's points for this meter type, its class picking each row's tolerance."""
        found = []
        for row in self.rows:
            if isinstance(row.tolerance, float):
                limit = row.tolerance
            else:
                key = f"{mt.accuracy_class:g}"
                if key not in row.tolerance:
                    raise row.section.error("tolerance", f"has no value for accuracy class {key} "
                                                         f"(it has {', '.join(row.tolerance)})")
                limit = row.tolerance[key]
            found.append(DemandPoint(row.id, row.name, row.load, limit, row.provenance))
        return found


def load_demand_table(path: Path = DEFAULT_TABLE) -> DemandTable:
    """The demand table, validated whole: a bad value is one line naming the file and key."""
    doc = load_toml(path)
    doc.unknown({"table", "procedure", "provenance", "point"})
    table = doc.table("table")
    table.unknown(_TABLE_KEYS)
    proc = doc.table("procedure").with_provenance(doc.table("provenance"))
    proc.unknown(_PROCEDURE_KEYS)
    procedure = DemandProcedure(proc.number("settle_s", low=0, high=MAX_SETTLE_S),
                                proc.number("close_overrun_pct", positive=True, high=MAX_OVERRUN_PCT),
                                proc.number("poll_s", positive=True, high=MAX_POLL_S),
                                proc.number("bench_clock_ppm", low=0, high=MAX_CLOCK_PPM))
    rows: list[DemandRow] = []
    for row in doc.tables("point"):
        row.unknown(_POINT_KEYS)
        point_id = row.text("id")
        if not _ID.fullmatch(point_id):
            raise row.error("id", f"{point_id!r}: capitals, digits and hyphens only (it names the test item)")
        if point_id in {r.id for r in rows}:
            raise row.error("id", f"{point_id!r} is already a point of this table")
        pf = row.number("pf", low=0.01, high=1.0)
        load = Load(power_factor=pf, leading=row.boolean("lead", False),
                    current_fraction=row.number("current", positive=True, high=MAX_CURRENT_FRACTION),
                    current_of=row.text("of", "TA", choices=("TA", "Imax")))
        rows.append(DemandRow(point_id, row.text("name"), load, _tolerance(row), row.text("provenance"), row))
    return DemandTable(str(path), table.text("name"), table.text("version"), table.text("standard"),
                       table.text("provenance"), procedure, tuple(rows))


def _tolerance(row: Section) -> float | dict[str, float]:
    """``tolerance = 2.0`` (± % of reading, every class) or ``{ "0.2" = 2.0, "0.5" = 2.0 }``."""
    if not isinstance(row.data.get("tolerance"), dict):
        return row.number("tolerance", positive=True, high=MAX_TOLERANCE_PCT)
    by_class = row.table("tolerance")
    if not by_class.data:
        raise row.error("tolerance", "an empty table: one tolerance per accuracy class, or one number")
    for key in by_class.data:
        try:
            float(key)
        except ValueError:
            raise by_class.error(key, "keys are accuracy classes such as \"0.2\"") from None
    return {f"{float(key):g}": by_class.number(key, positive=True, high=MAX_TOLERANCE_PCT) for key in by_class.data}


# The meter registers the test reads, and (True) writes.
REGISTERS: dict[str, bool] = {"demand_interval_s": False, "demand_reset": True, "demand_count": False,
                              "demand_kw": False, "max_demand_kw": False}


def lacking_registers(mt: MeterType) -> list[str]:
    """The demand registers this meter type's register map lacks (or cannot write): empty when
    the test applies."""
    return [name for name, writable in REGISTERS.items()
            if name not in mt.registers or (writable and not mt.registers[name].writable)]


def not_applicable(mt: MeterType) -> str:
    """Why the demand test does not apply to this meter type, or ''."""
    lacking = lacking_registers(mt)
    if not lacking:
        return ""
    return (f"no demand register test: meter type {mt.model} has no demand registers in its register map "
            f"(lacks {', '.join(lacking)})")


def board_points(table: DemandTable, mt: MeterType) -> list[DemandPoint]:
    """The points a board of this meter type runs: none when it keeps no demand registers."""
    return [] if lacking_registers(mt) else table.points(mt)


@dataclass(frozen=True)
class DemandEvidence:
    """What the test read on one position: with the budget, enough to recompute the errors from
    the record alone (P_ref = (reference_end_wh - reference_start_wh) x 3600 / interval_s)."""

    interval_s: float  # the meter's demand interval, as its register states it
    reset_at_s: float  # bench clock: when the demand reset was written (the middle of the write)
    reference_start_wh: float  # the reference's energy interpolated to the reset ...
    reference_end_wh: float  # ... and to the interval's nominal end, reset_at_s + interval_s
    reference_power_w: float  # the reference's average power over the interval
    skew_s: float  # half-width of the uncertainty in when the reference was read at the interval's ends
    closed_after_s: float | None  # bench time from the reset to the read that found the interval closed
    intervals_closed: int  # the meter's count of intervals closed since the reset, at that read
    max_demand_w: float | None  # the maximum-demand register (the billed quantity)
    last_demand_w: float | None  # the last-interval demand register
    resolution_w: float | None  # the demand registers' smallest step near the reading


@dataclass(frozen=True)
class DemandResult(PositionResult):
    """A demand point on one position: ``pulses`` holds the maximum-demand register's error and
    ``register_check`` the last-interval register's (both count); ``demand`` the readings."""

    demand: DemandEvidence | None = None

    def summary(self) -> str:
        where = f"{self.name}, position {self.position.number} ({self.position.serial})"
        m, last = self.pulses, self.register_check
        if m is None:
            return f"{where}: {self.verdict.value}: {self.note}"
        also = f", last-interval demand {last.error_pct:+.4f} %" if last else ""
        return (f"{where}: {self.verdict.value}: maximum demand error {m.error_pct:+.4f} % ± {m.expanded_pct:.4f} % "
                f"(k=2){also}, limit ±{self.limit_pct:g} % of reading ({self.rule.value})"
                + (f"; {self.note}" if self.note else ""))

    def cells(self) -> dict[str, str]:
        cells = super().cells()
        d, last = self.demand, self.register_check
        if d is not None and d.max_demand_w is not None:
            cells["Measured"] += (f" ({d.max_demand_w / 1000:.4f} kW against {d.reference_power_w / 1000:.4f} kW "
                                  f"over {d.interval_s:g} s)")
        cells["Register"] = f"last interval {last.error_pct:+.4f} %" if last else "n/a"
        cells["Limit"] = f"±{self.limit_pct:g} % of reading"
        if self.note and self.pulses is None:
            cells["Measured"] = self.note
        return cells


Found = TypeVar("Found")


def _reset(bench: Bench, n: int) -> tuple[float, float] | str:
    """Position ``n``'s demand reset written, timed on the read clock (from sending to answered),
    or why it failed."""
    now = bench.meter_reads.now
    t0 = now()
    try:
        bench.meters[n].write("demand_reset", 1)
    except InstrumentError as error:
        return str(error)
    return t0, now()


def _on_bench_clock(bench: Bench, work: Callable[[], Found]) -> tuple[Found, Callable[[float], float]]:
    """What ``work`` returned, and the map from read-clock times taken during it to bench seconds:
    the bench clock is read once on each side, not around every meter's write or read (the
    stepped simulator's clock stands still meanwhile: every time maps to the same bench second)."""
    now = bench.meter_reads.now
    r_start, b_start = now(), bench.clock.now()
    found = work()
    b_end, r_end = bench.clock.now(), now()
    rate = (b_end - b_start) / (r_end - r_start) if r_end > r_start else 0.0
    return found, lambda t: b_start + (t - r_start) * rate


def _timed(bench: Bench, act: Callable[[], Found]) -> tuple[float, Found, float]:
    """(midpoint, what ``act`` returned, half-width of the window it took) on the bench clock."""
    t0 = bench.clock.now()
    value = act()
    t1 = bench.clock.now()
    return (t0 + t1) / 2, value, (t1 - t0) / 2


@dataclass(frozen=True)
class _Bracket:
    """Two reference readings around an event: the energy at any time between them, interpolated
    (power is held constant), and how precisely their own times are known."""

    t_a: float
    e_a: float
    t_b: float
    e_b: float
    width_s: float

    def at(self, t: float) -> float:
        rate = (self.e_b - self.e_a) / (self.t_b - self.t_a) if self.t_b > self.t_a else 0.0
        return self.e_a + rate * (t - self.t_a)


class DemandChecks:
    """The demand points on the whole board: each point applied once, every position judged."""

    REGISTERS: ClassVar[dict[str, bool]] = REGISTERS

    def __init__(self, bench: Bench, table: DemandTable, rule: Rule, conditions: ReferenceConditions,
                 progress: Progress | None = None) -> None:
        self.bench, self.table, self.rule, self.conditions, self.progress = bench, table, rule, conditions, progress

    @property
    def points(self) -> list[DemandPoint]:
        """The points this board runs: none when its meters keep no demand registers."""
        return board_points(self.table, self.bench.profile.meter_type)

    def measure(self, point: DemandPoint) -> dict[int, DemandResult | FaultResult]:
        """Energise, settle, reset every meter's demand, hold one interval, judge; any failure ends
        in safe state."""
        bench = self.bench
        stimulus = point.stimulus(bench.profile.meter_type)
        try:
            readings, deviations = settle_at_conditions(bench, stimulus, self.conditions, self.table.procedure.settle_s)
            if deviations:
                note = "not at reference conditions: " + "; ".join(deviations)
                return {pos.number: self._result(point, pos, stimulus, readings, note=note, counted=False)
                        for pos in bench.profile.positions}
            return self._one_interval(point, stimulus, readings)
        except BaseException:
            bench.safe_state()
            raise

    def _one_interval(self, point: DemandPoint, stimulus: Stimulus,
                      readings: Readings) -> dict[int, DemandResult | FaultResult]:
        bench = self.bench
        positions = {pos.number: pos for pos in bench.profile.positions}
        found: dict[int, DemandResult | FaultResult] = {}

        def fault(n: int, why: str) -> None:
            found[n] = FaultResult(point.id, point.name, positions[n], why)

        stated = bench.meter_reads.read("demand_interval_s")
        found.update({n: FaultResult(point.id, point.name, positions[n], why) for n, why in stated.failed.items()})
        intervals = {n: float(read.value) for n, read in stated.reads.items()}
        for n, interval in list(intervals.items()):
            if not 0 < interval <= MAX_INTERVAL_S:
                found[n] = self._result(point, positions[n], stimulus, readings,
                                        note=f"demand interval register reads {interval:g} s: not an interval "
                                             f"(0 to {MAX_INTERVAL_S:g} s)")
                del intervals[n]
        # The reset, bracketed by reference readings: each meter's interval starts at its own write.
        t_a, e_a, w_a = _timed(bench, bench.reference_energy_wh)
        written, to_bench = _on_bench_clock(bench, lambda: bench.meter_reads.each(partial(_reset, bench), intervals))
        resets: dict[int, float] = {}  # when each meter's reset was written (the middle of the write)
        for n, outcome in written.items():
            if isinstance(outcome, str):
                fault(n, outcome)
            else:
                resets[n] = to_bench(sum(outcome) / 2)
        t_b, e_b, w_b = _timed(bench, bench.reference_energy_wh)
        start = _Bracket(t_a, e_a, t_b, e_b, max(w_a, w_b))
        if not resets:
            return found
        ends = {n: resets[n] + intervals[n] for n in resets}
        self._wait_until(min(ends.values()), point.name, resets, ends)
        t_c, e_c, w_c = _timed(bench, bench.reference_energy_wh)
        closed = self._wait_for_closes(point.name, resets, ends, intervals, fault)
        t_d, e_d, w_d = _timed(bench, bench.reference_energy_wh)
        end = _Bracket(t_c, e_c, t_d, e_d, max(w_c, w_d))
        counted = [n for n, (count, _) in closed.items() if count >= 1]
        demands = {name: bench.meter_reads.read(name, counted) for name in ("max_demand_kw", "demand_kw")}
        for n, (count, closed_after) in closed.items():
            reset_at = resets[n]
            evidence = DemandEvidence(
                interval_s=intervals[n], reset_at_s=reset_at, reference_start_wh=start.at(reset_at),
                reference_end_wh=end.at(ends[n]), reference_power_w=0.0,
                skew_s=math.hypot(start.width_s, end.width_s), closed_after_s=closed_after,
                intervals_closed=count, max_demand_w=None, last_demand_w=None, resolution_w=None)
            found[n] = self._judged(point, positions[n], stimulus, readings, evidence, demands)
        return dict(sorted(found.items()))

    def _wait_until(self, t: float, name: str, resets: dict[int, float], ends: dict[int, float]) -> None:
        """Wait on the bench clock until ``t``, in steps, showing progress: a real interval is 15 minutes."""
        first = min(resets.values())
        expected = max(ends.values()) - first
        while (left := t - self.bench.clock.now()) > 0:
            self.bench.wait(min(PROGRESS_STEP_S, left), f"{name}: demand interval")
            if self.progress:
                self.progress(name, "holding the load for one demand interval", self.bench.clock.now() - first,
                              expected)

    def _wait_for_closes(self, name: str, resets: dict[int, float], ends: dict[int, float],
                         intervals: dict[int, float],
                         fault: Callable[[int, str], None]) -> dict[int, tuple[int, float | None]]:
        """From each meter's nominal end on, ask it until it has closed its interval, or the overrun
        the table allows has passed: {position: (intervals closed, seconds from reset to that read)}.
        The meters due are asked together, each read timed where it happened."""
        proc, clock = self.table.procedure, self.bench.clock
        deadlines = {n: ends[n] + intervals[n] * proc.close_overrun_pct / 100.0 for n in resets}
        waiting, closed = set(resets), dict[int, tuple[int, float | None]]()
        while waiting:
            now = clock.now()
            due = [n for n in sorted(waiting) if now >= ends[n] - 1e-9]
            if due:
                board, to_bench = _on_bench_clock(self.bench, partial(self.bench.meter_reads.read, "demand_count", due))
                for n, why in board.failed.items():
                    fault(n, why)
                    waiting.discard(n)
                for n, read in board.reads.items():
                    t, count = to_bench(read.midpoint), int(read.value)
                    if count >= 1 or t >= deadlines[n] - 1e-9:
                        closed[n] = (count, t - resets[n]) if count >= 1 else (0, None)
                        waiting.discard(n)
            now = clock.now()
            upcoming = [ends[n] if ends[n] > now else min(now + proc.poll_s, deadlines[n]) for n in waiting]
            if upcoming:
                self._wait_until(min(upcoming), name, resets, ends)
        return closed

    def _judged(self, point: DemandPoint, pos: Position, stimulus: Stimulus, readings: Readings,
                evidence: DemandEvidence, demands: dict[str, BoardRead]) -> DemandResult | FaultResult:
        """``demands``: the demand registers (maximum and last), read from the board at once."""
        proc, n = self.table.procedure, pos.number
        reference_wh = evidence.reference_end_wh - evidence.reference_start_wh
        if evidence.intervals_closed == 0:
            late = evidence.interval_s * (1 + proc.close_overrun_pct / 100.0)
            return self._result(point, pos, stimulus, readings, evidence=evidence,
                                note=f"no demand interval closed within {late:g} s of the reset (interval "
                                     f"{evidence.interval_s:g} s): the demand timer is slow or stopped, or a reset "
                                     f"does not start an interval")
        if reference_wh <= 0:
            return FaultResult(point.id, point.name, pos, f"the reference measured {reference_wh:.4g} Wh over the "
                                                          f"demand interval: no power to compare demand with")
        for board in demands.values():
            if n in board.failed:
                return FaultResult(point.id, point.name, pos, board.failed[n])
        max_kw, last_kw = float(demands["max_demand_kw"].reads[n].value), float(demands["demand_kw"].reads[n].value)
        reference_w = reference_wh * 3600.0 / evidence.interval_s
        registers = self.bench.profile.meter_type.registers
        resolution_w = 1000.0 * registers["max_demand_kw"].resolution(max_kw)
        evidence = replace(evidence, reference_power_w=reference_w, max_demand_w=1000.0 * max_kw,
                           last_demand_w=1000.0 * last_kw, resolution_w=resolution_w)
        note = (f"{evidence.intervals_closed} demand intervals had closed by the first read past the nominal end"
                if evidence.intervals_closed > 1 else "")

        def measured(demand_w: float, resolution_w: float) -> Measured:
            budget = demand_budget(self.bench, stimulus.power_factor, reference_w, resolution_w, evidence.interval_s,
                                   evidence.skew_s, proc.bench_clock_ppm)
            error = (demand_w - reference_w) / reference_w * 100.0
            return Measured(error, budget, decide(error, budget.expanded_pct, point.limit_pct, self.rule))

        last_resolution_w = 1000.0 * registers["demand_kw"].resolution(last_kw)
        return self._result(point, pos, stimulus, readings, evidence=evidence, note=note,
                            pulses=measured(1000.0 * max_kw, resolution_w),
                            register_check=measured(1000.0 * last_kw, last_resolution_w))

    def _result(self, point: DemandPoint, pos: Position, stimulus: Stimulus, readings: Readings, *,
                note: str = "", counted: bool = True, evidence: DemandEvidence | None = None,
                pulses: Measured | None = None, register_check: Measured | None = None) -> DemandResult:
        return DemandResult(point.id, point.name, pos, stimulus, readings, point.limit_pct, self.rule,
                            pulses=pulses, register_check=register_check, register_counts=True, note=note,
                            counted=counted, demand=evidence)


def demand_budget(bench: Bench, power_factor: float, reference_w: float, resolution_w: float, interval_s: float,
                  skew_s: float, clock_ppm: float) -> Budget:
    """Demand error's budget, in % of reading: the reference standard and the source's stability
    (as for a gated error: meter and reference integrate the same steady power), the demand
    register's resolution (one reading, rectangular), when the reference's energy was read at the
    interval's ends (rectangular), and the bench clock's rate (P_ref = dE / dt takes dt from it;
    rectangular). When within its write the meter restarted its interval does not enter: under
    steady power an interval shifted in time holds the same energy (drift is the stability term's)."""
    return Budget(tuple(fixed_components(bench.spec, power_factor)) + (
        Component("demand register resolution", 100.0 * resolution_w / math.sqrt(12) / reference_w,
                  f"one reading of a {resolution_w:.3g} W register, rectangular"),
        Component("interval timing", 100.0 * skew_s / interval_s / math.sqrt(3),
                  f"±{skew_s * 1e3:.3g} ms in when the reference was read at the interval's ends, over "
                  f"{interval_s:g} s, rectangular"),
        Component("bench clock rate", clock_ppm * 1e-4 / math.sqrt(3),
                  f"±{clock_ppm:g} ppm over the interval, rectangular"),
    ))


