"""The bench session, kept in ``config.stash[SESSION_KEY]``: what is known when pytest starts (the
options, which bench, the limits and their points), the plans collection selects, then the run
opened on first use of the bench (a ``RunContext``) and closed when pytest ends."""
from __future__ import annotations

import gc
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

from bench.datafiles import ConfigError
from bench.metrology.uncertainty import Rule
from bench.paths import meter_keys_dir
from bench.plans.audit import Audit, load_limits, load_matrix
from bench.plans.demand import DemandChecks, DemandPoint, board_points, load_demand_table
from bench.plans.firmware import FirmwareChecks, load_firmware_limits
from bench.plans.limits import LimitTable, default_table, load_table
from bench.plans.payload import payload_accuracy_point
from bench.procedures.runner import Certification, Point
from bench.pytest_plugin import start_checks
from bench.pytest_plugin.bench_source import BenchSource, BuiltInSimulator, LabBench
from bench.pytest_plugin.context import RunContext, Tally
from bench.pytest_plugin.inspection import Inspection, at_terminal, from_file
from bench.pytest_plugin.operator_view import ASK, OperatorView
from bench.pytest_plugin.options import Options
from bench.pytest_plugin.progress import Steps, TerminalProgress
from bench.pytest_plugin.publish import publish
from bench.pytest_plugin.scope import Selection
from bench.records import store
from bench.records.record import RunRecorder
from bench.station.bench import Bench
from bench.station.profile import Profile, load_profile
from bench.station.safety import SafetyError
from instruments.errors import InstrumentError

SESSION_KEY = pytest.StashKey["BenchSession"]()
RUN_GC_THRESHOLDS = (50_000, 20, 100)  # gc.set_threshold's for a plan run (CPython's are 700, 10, 10)


class BenchSession:
    """Data files are read at start (a broken one stops pytest with one line); the bench opens,
    after every start check, when the first item needs it."""

    def __init__(self, config: pytest.Config, options: Options, source: BenchSource, table: LimitTable,
                 rule: Rule) -> None:
        self.config, self.options, self.source, self.table, self.rule = config, options, source, table, rule
        self.points: list[Point] = table.points(source.meter_type(), rule)
        self.demand_table = load_demand_table()  # a broken one is a ConfigError: configure makes it one line
        self.demand_points: list[DemandPoint] = board_points(self.demand_table, source.meter_type())
        self.selection = Selection()
        self.tally = Tally()
        self.view = OperatorView(config)
        self.terminal = TerminalProgress(config, self.view.events)
        self._held = ExitStack()  # closed last to first: the bench's instruments, then the simulator
        self._held.callback(source.stop)
        self._run: RunContext | None = None

    @classmethod
    def configure(cls, config: pytest.Config) -> BenchSession:
        options = Options.of(config)

        try:
            source: BenchSource
            if options.profile:
                source = LabBench(Path(options.profile))  # before anything else: it makes the board safe
            else:
                kind = load_profile(Path(options.sim_bench)) if options.sim_bench else None
                source = BuiltInSimulator(options.sim_scenario, options.sim_scale, kind)
            meter_type = source.meter_type()
            table = load_table(Path(options.limits) if options.limits else default_table(meter_type.form))
            refusals = table.not_applicable(meter_type)
            if refusals:
                raise pytest.UsageError("bench cannot start: " + "; ".join(refusals))
            return cls(config, options, source, table, options.decision_rule or table.rule)
        except ConfigError as error:
            raise pytest.UsageError(str(error)) from None
        except (InstrumentError, SafetyError) as error:
            raise pytest.UsageError(f"bench cannot start: {error}") from None

    @property
    def run(self) -> RunContext | None:
        """The open run; None until an item has needed the bench."""
        return self._run

    def open(self) -> RunContext:
        """Open every instrument and the records; anything that stops a run ends it with one line.
        The record is published at once: until the run ends normally, it is incomplete."""
        if self._run is None:
            self.view.start_panel()
            # A run allocates millions of short-lived objects (replies, results, their texts, the
            # libraries it loads) and few cycles: the collector runs less often (a young collection
            # per 50,000 allocations, not 700), and what survives reaches the oldest generation's
            # scans less often. The process's own thresholds come back when the session closes.
            self._held.callback(gc.set_threshold, *gc.get_threshold())
            gc.set_threshold(*RUN_GC_THRESHOLDS)
            self._run = self._open()
            self.view.opened(self._run)
            publish(self._run, self.selection.scope(self._run, ended="the run had not ended"))
            # What exists now (modules, the collected items, the open bench) lives to the end of the run:
            # frozen, the cyclic collector does not scan it again at each collection while the board is
            # measured (at 40 positions, 0.27 s of collections while measuring became 0.16 s).
            gc.freeze()
        return self._run

    def _open(self) -> RunContext:
        options, profile = self.options, self.source.profile
        # Everything that can refuse the run is settled before any instrument is touched.
        start_checks.check_calibration(profile, options.allow_expired_calibration)
        start_checks.check_template(profile)
        start_checks.check_registers(self.config, profile, self.selection.plans)
        start_checks.check_ranges(self.config, profile, self.points, self.selection.plans)
        start_checks.load_chart_library(self.points, self.selection.plans)
        approved_by = start_checks.approver(profile, options.approved_by)
        signer = start_checks.signer(profile)
        reports_dir = Path(options.reports_dir).resolve()
        records_url = options.records or profile.records_url or f"sqlite:///{reports_dir / 'records.sqlite'}"
        try:
            reports_dir.mkdir(parents=True, exist_ok=True)
            records = store.connect(records_url)
        except store.RecordsError as error:
            start_checks.refuse(str(error), pytest.ExitCode.INTERNAL_ERROR)
        inspection = self._inspection(profile)
        baseline = start_checks.baseline(records, options, self.table, profile)
        try:  # the audit's and firmware checks' data files: a broken one is a refusal, not a crash mid-run
            payload, audit_limits, matrix = payload_accuracy_point(), load_limits(), load_matrix()
            firmware_limits = load_firmware_limits()
        except ConfigError as error:
            start_checks.refuse(str(error), pytest.ExitCode.USAGE_ERROR)
        bench = self._open_bench(profile, options.test_mode)
        progress = Steps(self.view.events)
        return RunContext(
            profile=profile, table=self.table, points=self.points, rule=self.rule, bench=bench,
            clock_start=bench.clock.now(),
            certification=Certification(bench, {p.id: p for p in self.points}, progress),
            audit=Audit(bench, records, meter_keys_dir(), payload, inspection=inspection,
                        firmware_baseline=options.firmware_baseline, limits=audit_limits, matrix=matrix),
            firmware=FirmwareChecks(bench, payload, firmware_limits),
            demand=DemandChecks(bench, self.demand_table, self.rule, self.table.conditions, progress),
            baseline=baseline, records=records, records_url=records_url, reports_dir=reports_dir,
            recorder=RunRecorder(profile, self.table.plan_info(), self.rule, options.operator, approved_by,
                                 options.allow_expired_calibration, test_reason=options.test_reason),
            signer=signer, tally=self.tally, view=self.view)

    def _inspection(self, profile: Profile) -> Inspection:
        """From the file; else asked (a lab bench, or ``--inspection ask``), on the panel where there is one;
        else the simulated board's technician."""
        options = self.options
        if options.inspection and options.inspection != ASK:
            return from_file(Path(options.inspection))
        if options.inspection == ASK or isinstance(self.source, LabBench):
            on_panel = self.view.inspection(profile)  # None: no panel
            if on_panel is not None:
                return on_panel
            if options.inspection == ASK:
                return at_terminal(self.config, profile, options.operator)
        return self.source.technician(self.config, options.operator)

    def _open_bench(self, profile: Profile, test_mode: bool) -> Bench:
        try:
            return self._held.enter_context(Bench(profile, test_mode=test_mode, events=self.view.events))
        except (InstrumentError, SafetyError) as error:
            start_checks.refuse(str(error), pytest.ExitCode.INTERNAL_ERROR)
        except Exception as error:  # noqa: BLE001 - whatever a driver raises, one line and stop
            start_checks.refuse(f"{type(error).__name__}: {error}", pytest.ExitCode.INTERNAL_ERROR)

    def make_safe_after_failure(self) -> None:
        """After any failing item the board goes to safe state; the next point energises anew."""
        if self._run is None or self.tally.unsafe:
            return
        try:
            self._run.bench.safe_state()
        except SafetyError as error:
            self.tally.unsafe = str(error)
            self.view.safety(f"safe state NOT confirmed: {error}: check the board by hand")
        else:
            if self._run.bench.interrupted:
                self.view.safety(f"interrupted by {self._run.bench.interrupted}: safe state reached")

    def close(self) -> None:
        self.terminal.close()
        self.view.close()
        try:
            self._held.close()
        except SafetyError as error:
            if not self.tally.unsafe:
                print(f"bench: SAFETY: {error}: check the board by hand", file=sys.stderr)
