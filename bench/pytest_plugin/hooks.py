"""The pytest plugin: bench options, the bench / position / point fixtures, the run's scope and
status, and its record and signed documents (the HTML session report is bench.session_report).

Without ``--bench`` it starts the built-in simulated bench in this process and uses its profile.
A plan module names its family (``FAMILY = "load_performance"``) and gets one item per test
point of that family and board position; each point is measured once for the whole board.
"""
from __future__ import annotations

import datetime as dt
import getpass
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest

from bench.datafiles import ConfigError, Section, number_argument
from bench.metrology.forms import forms
from bench.metrology.uncertainty import RULE_TEXT, Rule
from bench.paths import meter_keys_dir
from bench.plans import audit as audit_plan
from bench.plans import firmware as firmware_plan
from bench.plans.audit import Audit, load_inspection
from bench.plans.board_checks import BoardStep
from bench.plans.c12_20 import LimitTable, load_table
from bench.plans.firmware import FirmwareChecks
from bench.plans.payload import payload_accuracy_point
from bench.procedures.runner import Certification, FunctionalCheck, Point, Result
from bench.records import store
from bench.records.baseline import Baseline, compare, compared_enough, load_baseline
from bench.records.documents import check_template, write_documents
from bench.records.record import RunRecorder, Scope, entry, fingerprint
from bench.records.signing import Signer, SigningKeyError, default_key_path, sign_record
from bench.station.bench import Bench, SafetyError, make_safe_if_energised
from bench.station.profile import Position, Profile, Signatory, load_profile
from instruments.errors import InstrumentError

RESULT_KEY = pytest.StashKey[Result]()
SESSION_KEY = pytest.StashKey["BenchSession"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bench", "meter test bench")
    group.addoption("--bench", metavar="PROFILE", help="bench profile (TOML); default: the built-in simulated bench")
    group.addoption("--sim-scenario", metavar="BOARD", default="default",
                    help="simulated board: a name from bench/sim/boards or a path (default: default)")
    group.addoption("--sim-scale", metavar="FACTOR", type=number_argument("--sim-scale", above=0.0), default=None,
                    help="run the simulated clock at FACTOR x wall time instead of stepping it")
    group.addoption("--limits", metavar="TABLE", help="test points and limits (TOML); default: bench/standards/c12_20.toml")
    group.addoption("--decision-rule", choices=[r.value for r in Rule], default=None,
                    help="simple acceptance or guard-banded; default: the limits table's rule")
    group.addoption("--records", metavar="URL", help="records database (SQLAlchemy URL); default: the profile's, "
                    "else sqlite under --reports-dir")
    group.addoption("--reports-dir", metavar="DIR", default="reports", help="where certificates and JSON records go")
    group.addoption("--operator", metavar="NAME", default=getpass.getuser(),
                    help="who runs the bench: 'tested by' on every certificate (default: the login name)")
    group.addoption("--allow-expired-calibration", metavar="REASON",
                    help="run although an instrument is past its calibration due date (the reason is recorded and "
                         "printed on every certificate)")
    group.addoption("--approved-by", metavar="NAME", help="the lab signatory who approves this run's certificates "
                    "(one of the profile's [lab] signatories; default: the first)")
    group.addoption("--inspection", metavar="FILE", help="the technician's physical inspection (TOML, one table per "
                    "meter serial); without it the bench asks at the terminal, or the check fails")
    group.addoption("--firmware-baseline", metavar="RELEASE", help="firmware every meter must run (default: the audit limits')")
    group.addoption("--baseline", metavar="RUN_OR_RELEASE", help="compare every point with a stored run (id or prefix) "
                    "or the latest complete run on a firmware release; a regression fails its item")
    group.addoption("--baseline-min-overlap", metavar="FRACTION", default=0.8,
                    type=number_argument("--baseline-min-overlap", above=0.0, at_most=1.0),
                    help="the share of this run's points the baseline must also hold, or the comparison stops "
                         "(default: 0.8)")
    group.addoption("--regression-margin", metavar="PCT", type=number_argument("--regression-margin", at_least=0.0), default=0.05,
                    help="how far (in %% of reading) an error may move towards its limit before it is a regression")


class BenchSession:
    """The profile, limits and the simulator behind them when there is no real bench. Data files
    are read at start (a broken one stops pytest with one line); the simulator starts on first
    use, so runs that never touch the bench (the framework's own tests) never start one."""

    def __init__(self, config: pytest.Config) -> None:
        from bench.sim import SimulatedBench

        self.config = config
        self.bench: Bench | None = None
        self.sim: SimulatedBench | None = None
        self.certification: Certification | None = None
        self._profile: Profile | None = None
        self.unsafe: str | None = None  # safe state could not be confirmed: said once, never certified
        rule = config.getoption("--decision-rule")
        self.rule = Rule(rule) if rule else None
        path, limits = config.getoption("--bench"), config.getoption("--limits")
        self.reported: dict[tuple[str, int], tuple[str, Result]] = {}  # (point, position) -> (family, result)
        self.stopped: str | None = None  # why the session stopped early (safety, a lost link)
        self.plans: set[str] = set()  # the plans the run selected (c12_20, audit, firmware), deselected items included
        self.deselected: list[str] = []
        try:
            if path:
                # First of all: a run killed with SIGKILL may have left the board energised.
                self._profile = load_profile(Path(path))
                make_safe_if_energised(self._profile)
                meter_type = self._profile.meter_type
            self.table: LimitTable = load_table(Path(limits)) if limits else load_table()
            if not path:
                self.sim = SimulatedBench(config.getoption("--sim-scenario"), scale=config.getoption("--sim-scale"))
                meter_type = self.sim.meter_type()
            self.points: list[Point] = self.table.points(meter_type, self.rule)
        except ConfigError as error:
            raise pytest.UsageError(str(error)) from None
        except (InstrumentError, SafetyError) as error:
            raise pytest.UsageError(f"bench cannot start: {error}") from None

    @property
    def profile(self) -> Profile:
        if self._profile is None:
            self._profile = self.sim.start().profile()
        return self._profile

    def open_bench(self) -> Bench:
        """Open every instrument and the records; anything that stops a run ends it with one line."""
        if self.bench is None:
            # Everything that can refuse the run is settled before any instrument is touched.
            self._check_calibration()
            self._check_template()
            self._check_registers()
            approved_by = self._approver()
            self.signer = self._signer()
            try:
                self.reports_dir.mkdir(parents=True, exist_ok=True)
                self.records = store.connect(self.records_url())
            except store.RecordsError as error:
                pytest.exit(f"bench cannot start: {error}", returncode=pytest.ExitCode.INTERNAL_ERROR)
            inspection = self.inspection()
            self.baseline = self._load_baseline()
            self.regressions: list[dict[str, str]] = []
            try:
                self.bench = Bench(self.profile).__enter__()
            except (InstrumentError, SafetyError) as error:
                pytest.exit(f"bench cannot start: {error}", returncode=pytest.ExitCode.INTERNAL_ERROR)
            except Exception as error:  # noqa: BLE001 - whatever a driver raises, one line and stop
                pytest.exit(f"bench cannot start: {type(error).__name__}: {error}", returncode=pytest.ExitCode.INTERNAL_ERROR)
            self.clock_start = self.bench.clock.now()
            self.certification = Certification(self.bench, {p.id: p for p in self.points}, ProgressLine(self.config))
            self.audit = Audit(self.bench, self.records, meter_keys_dir(), payload_accuracy_point(),
                               inspection=inspection, firmware_baseline=self.config.getoption("--firmware-baseline"))
            self.firmware = FirmwareChecks(self.bench, payload_accuracy_point())
            self.recorder = RunRecorder(self.profile, self.table.plan_info(), self.rule or self.table.rule,
                                        self.config.getoption("--operator"), approved_by,
                                        self.config.getoption("--allow-expired-calibration"))
            self.publish(self.scope(None, ended="the run had not ended"))  # until it ends normally, the run is incomplete
        return self.bench

    def _check_registers(self) -> None:
        """Every register the selected plans read or write is in the profile's register map: a gap
        is one line per register before anything is energised, not an error in the middle of a run."""
        declared = self.profile.meter_type.registers
        gaps = [f"{self.profile.source_file}: meter_type.registers has no {'writable ' if writable else ''}'{name}' "
                f"(the {PLAN_NAMES[plan]} {'writes' if writable else 'reads'} it)"
                for plan, needs in PLAN_REGISTERS.items() if plan in self.plans
                for name, writable in needs.items()
                if name not in declared or (writable and not declared[name].writable)]
        if gaps:
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            with self.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
                for gap in gaps:
                    reporter.write_line(gap, red=True)
            pytest.exit(f"bench cannot start: the profile's register map lacks {len(gaps)} register(s) the selected "
                        f"plans need (listed above)", returncode=pytest.ExitCode.USAGE_ERROR)

    def _check_template(self) -> None:
        """A lab's broken certificate template is found before anything is measured, not at publish."""
        if self.profile.lab.template is not None:
            try:
                check_template(self.profile.lab.template)
            except ConfigError as error:
                pytest.exit(f"bench cannot start: {error}", returncode=pytest.ExitCode.USAGE_ERROR)

    def _approver(self) -> Signatory:
        lab, name = self.profile.lab, self.config.getoption("--approved-by")
        found = next((s for s in lab.signatories if s.name == name), None) if name else lab.signatories[0]
        if found is None:
            pytest.exit(f"bench cannot start: --approved-by {name!r} is not a signatory of {lab.name} (the profile's "
                        f"[lab] signatories: {', '.join(s.name for s in lab.signatories)})",
                        returncode=pytest.ExitCode.USAGE_ERROR)
        return found

    def _signer(self) -> Signer:
        try:
            return Signer.load(self.profile.lab.signing_key or default_key_path())
        except SigningKeyError as error:
            pytest.exit(f"bench cannot start: {error}", returncode=pytest.ExitCode.USAGE_ERROR)

    def _load_baseline(self) -> Baseline | None:
        """The run to compare with, refused in one line unless it is a complete run of this plan on
        this meter type that holds enough of this board's meters to compare."""
        reference = self.config.getoption("--baseline")
        if not reference:
            return None
        plan = f"{self.table.name} {self.table.version}"
        try:
            baseline = load_baseline(self.records, reference, plan, self.profile.meter_type.__dict__)
        except store.RecordsError as error:
            pytest.exit(f"bench cannot start: baseline: {error}", returncode=pytest.ExitCode.USAGE_ERROR)
        ours = {p.serial for p in self.profile.positions}
        shared = ours & baseline.serials
        if len(shared) < self.config.getoption("--baseline-min-overlap") * len(ours):
            pytest.exit(f"bench cannot start: baseline: run {baseline.run_id[:8]} holds {len(shared)} of this board's "
                        f"{len(ours)} meters (--baseline-min-overlap {self.config.getoption('--baseline-min-overlap'):g}): "
                        f"nothing to compare them with", returncode=pytest.ExitCode.USAGE_ERROR)
        self.compared = 0
        return baseline

    def conclude(self, request: pytest.FixtureRequest, point_id: str, result: Result, position: Position,
                 family: str) -> None:
        """Record an item's result (in the database at once: a crash loses at most the point in
        progress) beside its baseline, then pass it only on PASS and no regression."""
        request.node.stash[RESULT_KEY] = result
        request.node.user_properties.extend(result.cells().items())
        self.reported[(point_id, position.number)] = (family, result)
        now = entry(point_id, family, result, self.certification.faults.get(point_id, []))
        store.add_result(self.records, self.recorder.run_id, position.number, now)
        regression = ""
        if self.baseline is not None:
            comparison = compare(self.baseline, position.serial, now["point"], now, self.config.getoption("--regression-margin"))
            self.compared += comparison is not None
            if comparison:
                request.node.user_properties.extend([("Baseline", comparison.baseline), ("Change", comparison.change)])
                regression = comparison.regression
                if regression:
                    self.regressions.append({"serial": position.serial, "point": now["point"], "why": regression})
        if result.verdict != "PASS":
            pytest.fail(result.summary() + (f"; regression: {regression}" if regression else ""), pytrace=False)
        if regression:
            pytest.fail(f"{result.summary()}; REGRESSION against {self.baseline.reference}: {regression}", pytrace=False)

    def inspection(self) -> dict[str, Section] | None:
        """The technician's entries: a file, else the simulated board's technician, else asked at
        the terminal when there is one. Nothing found means the check fails; it never passes by default."""
        path = self.config.getoption("--inspection")
        try:
            if path:
                return load_inspection(Path(path))
        except ConfigError as error:
            pytest.exit(f"bench cannot start: {error}", returncode=pytest.ExitCode.USAGE_ERROR)
        if self.sim is not None:
            return {serial: Section(entry, f"<simulated technician at {self.sim.board_file.name}>", serial)
                    for serial, entry in self.sim.board.inspection.items()}
        return self._ask_inspection()

    def _ask_inspection(self) -> dict[str, Section] | None:
        """At the terminal, when there is one: pytest's capture hides stdin too, so lift it (``-s`` is
        not needed) and put it back after."""
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        capture.suspend_global_capture(in_=True)
        try:
            return self._ask_at_terminal() if sys.stdin.isatty() else None
        finally:
            capture.resume_global_capture()

    def _ask_at_terminal(self) -> dict[str, Section]:
        found = {}
        for pos in self.profile.positions:
            torque = input(f"position {pos.number} {pos.serial}: terminal torque, in-lb (empty: not inspected): ").strip()
            if not torque:
                continue
            jaws = input("  jaw tension good? [y/n]: ").strip().lower()
            try:
                found[pos.serial] = Section({"torque_in_lb": float(torque), "jaw_tension_ok": jaws == "y",
                                             "technician": self.config.getoption("--operator")}, "<terminal>", pos.serial)
            except ValueError:
                continue  # not a number: no entry, and the check will say so
        return found

    def _check_calibration(self) -> None:
        past = self.profile.past_due(dt.date.today())
        if past and not self.config.getoption("--allow-expired-calibration"):
            overdue = "; ".join(f"{role} calibration {cal.certificate} was due {cal.due}" for role, cal in past.items())
            pytest.exit(f"bench cannot start: {overdue}: certification is blocked "
                        f"(--allow-expired-calibration REASON overrides it, and the reason is recorded)",
                        returncode=pytest.ExitCode.USAGE_ERROR)

    def records_url(self) -> str:
        return (self.config.getoption("--records") or self.profile.records_url
                or f"sqlite:///{self.reports_dir / 'records.sqlite'}")

    @property
    def reports_dir(self) -> Path:
        return Path(self.config.getoption("--reports-dir")).resolve()

    def run(self, request: pytest.FixtureRequest, point: Point, position: Position, family: str) -> None:
        """Measure (once for the board) and conclude one item; a safety stop or a lost link ends
        the whole session at once, in one line."""
        try:
            results = self.certification.run(point)
        except SafetyError as error:
            stop = str(error)
        else:
            stop = ""
        if stop:  # outside the except: the one line is not chained to a traceback
            self.stop(request.session, stop)
        if self.certification.stop_reason and not self.stopped:
            self.stopped = self.certification.stop_reason
            request.session.shouldstop = f"bench stopped: {self.stopped}"
        self.conclude(request, point.id, results[position.number], position, family)

    def stop(self, session: pytest.Session, why: str) -> NoReturn:
        self.stopped = why
        session.shouldstop = f"bench stopped: {why}"
        pytest.fail(f"bench stopped: {why}", pytrace=False)

    def make_safe_after_failure(self) -> None:
        """After any failing item the board goes to safe state; the next point energises anew."""
        if self.bench is None or self.unsafe:
            return
        try:
            self.bench.safe_state()
        except SafetyError as error:
            self.unsafe = str(error)

    def planned(self) -> set[tuple[str, int]]:
        """Every (point, position) the selected plans hold: what a complete run must have run."""
        ids = {"c12_20": [p.id for p in self.points], "audit": [step.id for step in audit_plan.STEPS],
               "firmware": [step.id for step in firmware_plan.STEPS]}
        return {(point, pos.number) for plan in self.plans for point in ids[plan] for pos in self.profile.positions}

    def scope(self, session: pytest.Session | None, ended: str) -> Scope:
        """The run's status from what ran: ``ended`` is "normally", or why it did not end normally."""
        planned = self.planned()
        not_run = sorted(planned - set(self.reported), key=lambda key: (key[1], key[0]))
        why = [] if ended == "normally" else [ended]
        if session is not None and session.shouldfail:
            why.append(str(session.shouldfail))
        if self.deselected:
            why.append(f"{len(self.deselected)} item(s) deselected (-k, -m, --lf or --deselect)")
        if not_run and not why:  # nothing above explains it: the selection left part of a plan out
            why.append(f"{len(not_run)} of {len(planned)} planned item(s) not selected")
        status = "incomplete" if ended != "normally" else "partial" if why else "complete"
        return Scope(status, len(planned), len(set(self.reported) & planned),
                     tuple(f"{point}@pos{number}" for point, number in not_run), "; ".join(why))

    def publish(self, scope: Scope) -> dict[str, Any]:
        record = self.recorder.record(self.bench, self.reported, self.certification.faults, self.points, scope)
        if self.baseline is not None:
            record["baseline"] = {"reference": self.baseline.reference, "run_id": self.baseline.run_id,
                                  "started_at": self.baseline.started_at, "points_compared": self.compared,
                                  "points_run": len(self.reported),
                                  "min_overlap": self.config.getoption("--baseline-min-overlap"),
                                  "margin_pct": self.config.getoption("--regression-margin"),
                                  "regressions": self.regressions}
        if scope.status == "complete":
            self._number_certificates(record)
        store.publish(self.records, record, fingerprint(record))
        return record

    def _number_certificates(self, record: dict[str, Any]) -> None:
        """A complete run's meters with accuracy results get certificate numbers from the lab's sequence."""
        lab, issued = self.profile.lab, record["ended_at"][:10]
        serials = [m["serial"] for m in record["meters"] if m["verdicts"]["accuracy"] != "NO RESULTS"]
        numbers = store.issue_certificates(self.records, record["run_id"], serials, issued,
                                           lambda seq, serial: lab.certificate_number_for(seq, int(issued[:4]), serial,
                                                                                          record["run_id"]))
        for meter in record["meters"]:
            if meter["serial"] in numbers:
                meter["certificate"] = {"number": numbers[meter["serial"]], "issued": issued}

    def close(self) -> None:
        try:
            if self.bench is not None:
                self.bench.__exit__(None, None, None)
        except SafetyError as error:
            if not self.unsafe:
                print(f"bench: SAFETY: {error}: check the board by hand", file=sys.stderr)
        finally:
            self.bench = None
            if self.sim is not None:
                self.sim.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[SESSION_KEY] = BenchSession(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    if SESSION_KEY in config.stash:
        config.stash[SESSION_KEY].close()


def pytest_deselected(items: list[pytest.Item]) -> None:
    """-k, -m, --lf and --deselect take items out of the plans: the run can then only be partial."""
    if items:
        session = items[0].config.stash[SESSION_KEY]
        session.deselected.extend(item.nodeid for item in items)
        session.plans.update(plan for plan in map(plan_of, items) if plan)


def pytest_collection_finish(session: pytest.Session) -> None:
    session.config.stash[SESSION_KEY].plans.update(plan for plan in map(plan_of, session.items) if plan)


PLAN_FIXTURES = {"certify": "c12_20", "audit": "audit", "firmware": "firmware"}
PLAN_NAMES = {"c12_20": "C12.20 plan", "audit": "commissioning audit", "firmware": "firmware regression"}
PLAN_REGISTERS = {"audit": Audit.REGISTERS, "firmware": FirmwareChecks.REGISTERS}


def plan_of(item: pytest.Item) -> str | None:
    """Which plan an item belongs to, by the fixture that runs it."""
    return next((plan for fixture, plan in PLAN_FIXTURES.items() if fixture in getattr(item, "fixturenames", ())), None)


def ending(session: pytest.Session, bench_session: BenchSession, exitstatus: int) -> str:
    """"normally", or why the session did not end normally."""
    if bench_session.bench is not None and bench_session.bench.interrupted:
        return f"interrupted by {bench_session.bench.interrupted}"
    if bench_session.stopped:
        return f"bench stopped: {bench_session.stopped}"
    if bench_session.unsafe:
        return f"safe state not confirmed: {bench_session.unsafe}"
    if exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return f"pytest ended with {pytest.ExitCode(exitstatus).name}"
    return "normally"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Also reached after Ctrl-C or SIGTERM: outputs off before anything else happens; then the
    run's record with its status, and (complete runs only) its signed documents."""
    bench_session = session.config.stash[SESSION_KEY]
    if bench_session.bench is None:
        return
    bench_session.make_safe_after_failure()
    if bench_session.unsafe:
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"bench: SAFETY: {bench_session.unsafe}: check the board by hand", red=True, bold=True)
    record = bench_session.publish(bench_session.scope(session, ending(session, bench_session, exitstatus)))
    if bench_session.baseline is not None and not compared_enough(record["baseline"]):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    directory = bench_session.reports_dir
    directory.mkdir(parents=True, exist_ok=True)
    signed = sign_record(record, bench_session.signer)
    (directory / f"run-{record['run_id']}.json").write_text(json.dumps(signed, indent=1, default=str))
    if record["status"] == "complete":
        write_documents(record, directory, bench_session.signer, bench_session.profile.lab.template)
    bench_session.last_record = record



def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    session = metafunc.config.stash[SESSION_KEY]
    family = getattr(metafunc.module, "FAMILY", None)
    if "point" in metafunc.fixturenames and family is not None:  # plan modules name their family
        form = forms()[session.profile.meter_type.form]
        if not form.blondel:
            skip = pytest.mark.skip(reason=f"ANSI C12.20 does not apply to Form {form.name} (not Blondel-compliant)")
            metafunc.parametrize("point", [pytest.param(None, marks=skip)], ids=["not-applicable"])
        else:
            chosen = [p for p in session.points if p.family == family]
            metafunc.parametrize("point", chosen, ids=[p.id for p in chosen])
    if "position" in metafunc.fixturenames:
        positions = session.profile.positions
        metafunc.parametrize("position", positions, ids=[f"pos{p.number}-{p.serial}" for p in positions])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Functional checks first: the audit's in its procedure's order (``audit.STEPS``; a plan
    module names its step as ``STEP``), others in collection order; then the table's points in
    its order (reference points before their shifts), each point's positions together."""
    order = {p.id: i for i, p in enumerate(config.stash[SESSION_KEY].points)}
    steps = {step.id: i for i, step in enumerate(audit_plan.STEPS)}
    collected = {id(item): i for i, item in enumerate(items)}

    def key(item: pytest.Item) -> tuple[int, int, int, int]:
        params = getattr(item, "callspec", None)
        point = params.params.get("point") if params else None
        if getattr(point, "id", None) not in order:
            step = getattr(getattr(item, "module", None), "STEP", None)
            return (0, steps.get(getattr(step, "id", ""), len(steps)), collected[id(item)], 0)
        return (1, order[point.id], params.params["position"].number, 0)

    items.sort(key=key)


@pytest.fixture(scope="session")
def bench(pytestconfig: pytest.Config) -> Bench:
    """The opened bench, in safe state between sessions and after any failure."""
    return pytestconfig.stash[SESSION_KEY].open_bench()


def _step_runner(request: pytest.FixtureRequest, family: str,
                 checks: Callable[[BenchSession], Any]) -> Callable[[BoardStep[Any], Position], None]:
    session = request.config.stash[SESSION_KEY]

    def run(step: BoardStep[Any], position: Position) -> None:
        check = FunctionalCheck(step.id, step.name, family, lambda: step.run(checks(session)))
        session.run(request, check, position, family)

    return run


@pytest.fixture
def audit(bench: Bench, request: pytest.FixtureRequest) -> Callable[[str, Position], None]:
    """Run an audit step (once for the whole board) and judge this position, with its
    troubleshooting entry on failure."""
    return _step_runner(request, "audit", lambda session: session.audit)


@pytest.fixture
def firmware(bench: Bench, request: pytest.FixtureRequest) -> Callable[[str, Position], None]:
    """Run a firmware-behaviour check (once for the whole board) and judge this position."""
    return _step_runner(request, "firmware", lambda session: session.firmware)


@pytest.fixture
def certify(bench: Bench, request: pytest.FixtureRequest) -> Callable[[Point, Position], None]:
    """Measure a point (once for the whole board) and judge this position: only PASS passes;
    FAIL and INDETERMINATE both leave the meter uncertified."""
    session = request.config.stash[SESSION_KEY]

    def run(point: Point, position: Position) -> None:
        session.run(request, point, position, point.family)

    return run


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call"):
        item.config.stash[SESSION_KEY].make_safe_after_failure()


class ProgressLine:
    """Long points show what they are doing: at most one line every few seconds of wall time, so
    a stepped simulation stays quiet and a real five-minute dwell does not."""

    def __init__(self, config: pytest.Config, every_s: float = 3.0) -> None:
        self.reporter = config.pluginmanager.get_plugin("terminalreporter")
        self.capture = config.pluginmanager.get_plugin("capturemanager")
        self.every_s = every_s
        self.last = time.monotonic()

    def __call__(self, name: str, detail: str, elapsed: float, expected: float) -> None:
        if self.reporter is None or time.monotonic() - self.last < self.every_s:
            return
        self.last = time.monotonic()
        with self.capture.global_and_fixture_disabled():  # a test's output is captured; this is not
            self.reporter.write_line(f"  {name}: {detail}, {max(expected - elapsed, 0):.0f} s of {expected:.0f} s left")


def traceability(session: BenchSession) -> list[str]:
    """Which bench, instruments, meters and limits produced these results."""
    p, bench = session.profile, session.bench
    cal = p.reference.calibration
    mt = p.meter_type
    rule = session.rule or session.table.rule
    recorder = session.recorder
    return [
        f"run {recorder.run_id} tested by {recorder.operator}, approved by {recorder.approved_by.name} "
        f"({recorder.approved_by.title}), {p.lab.name}; records in {store.safe_url(session.records_url())}",
        f"bench {p.bench_id}, profile {p.source_file}, sha256 {p.digest[:16]}",
        f"reference standard {bench.reference.idn} (serial {p.reference.serial}), {cal.uncertainty.describe()}",
        "calibration: " + "; ".join(f"{role} {c.certificate} due {c.due}" for role, c in p.calibrations().items())
        + (f" (past due allowed: {recorder.calibration_override})" if recorder.calibration_override else ""),
        f"{len(p.positions)} positions: {mt.manufacturer} {mt.model}, form {mt.form}, class {mt.accuracy_class:g}, "
        f"TA {mt.test_amperes:g} A, Imax {mt.max_current_a:g} A, {mt.nominal_voltage_v:g} V, Kh {mt.kh_wh:g} Wh",
        f"limits: {session.table.name}, version {session.table.version} ({session.table.standard}); "
        f"{session.table.provenance}",
        f"decision rule: {RULE_TEXT[rule]}",
        f"bench time covered: {bench.now() - session.clock_start:.1f} s",
    ]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    session = config.stash[SESSION_KEY]
    if session.bench is None:
        return
    terminalreporter.section("meter bench")
    for line in traceability(session):
        terminalreporter.write_line(line)
    record = getattr(session, "last_record", None)
    if record is None:
        return
    if session.baseline is not None:
        base = record["baseline"]
        terminalreporter.write_line(f"baseline: {base['reference']} = run {base['run_id'][:8]} of {base['started_at']}: "
                                    f"{base['points_compared']} of {base['points_run']} points compared, "
                                    f"{len(base['regressions'])} regression(s)")
        if not compared_enough(base):
            terminalreporter.write_line(f"baseline: too few points compared (--baseline-min-overlap "
                                        f"{config.getoption('--baseline-min-overlap'):g}): no regression verdict",
                                        red=True, bold=True)
        for regression in base["regressions"]:
            terminalreporter.write_line(f"  REGRESSION {regression['serial']} {regression['point']}: {regression['why']}")
    for meter in record["meters"]:
        documents = ", ".join(f"{name} {verdict}" for name, verdict in meter["verdicts"].items() if verdict != "NO RESULTS")
        state = "CERTIFIED" if meter["certified"] else "not certified"
        terminalreporter.write_line(f"  position {meter['position']} {meter['serial']}: {state} ({documents or 'no results'})")
    scope = record["scope"]
    terminalreporter.write_line(f"run {record['status']}: {scope['ran']} of {scope['planned']} planned item(s) ran"
                                + (f" ({scope['why']})" if scope["why"] else ""))
    if record["status"] == "complete":
        terminalreporter.write_line(f"signed documents and JSON record in {session.reports_dir} "
                                    f"(key {session.signer.fingerprint})")
    else:
        terminalreporter.write_line(f"no certificates: only a complete run certifies; JSON record in {session.reports_dir}")
