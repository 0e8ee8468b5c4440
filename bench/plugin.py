"""The pytest plugin: bench options, the bench / position / point fixtures, and report columns.

Without ``--bench`` it starts the built-in simulated bench in this process and uses its profile.
A plan module names its family (``FAMILY = "load_performance"``) and gets one item per test
point of that family and board position; each point is measured once for the whole board.
"""
from __future__ import annotations

import base64
import datetime as dt
import html
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, NoReturn

import pytest

from bench import store
from bench.bench import Bench, SafetyError, make_safe_if_energised
from bench.certificate import write_certificates
from bench.audit import Audit, load_inspection
from bench.certification import Certification, FunctionalCheck, Point, Result
from bench.firmware_checks import Baseline, FirmwareChecks, compare, load_baseline
from bench.config import ConfigError, Section, number_argument
from bench.forms import forms
from bench.limits import LimitTable, load_table
from bench.metrology import RULE_TEXT, Rule
from bench.plans import payload_accuracy_point
from bench.profile import Position, Profile, load_profile
from bench.plots import result_svg
from bench.record import RunRecorder, entry, fingerprint
from bench.results import COLUMNS

REPORT_COLUMNS = (*COLUMNS, "Baseline", "Change")
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
    group.addoption("--operator", metavar="NAME", default=os.environ.get("USER", "unknown"), help="who runs the bench")
    group.addoption("--allow-expired-reference", metavar="REASON",
                    help="certify although the reference standard is past its calibration due date (recorded)")
    group.addoption("--inspection", metavar="FILE", help="the technician's physical inspection (TOML, one table per "
                    "meter serial); without it the bench asks at the terminal, or the check fails")
    group.addoption("--firmware-baseline", metavar="RELEASE", help="firmware every meter must run (default: the audit limits')")
    group.addoption("--baseline", metavar="RUN_OR_RELEASE", help="compare every point with a stored run (id or prefix) "
                    "or the latest complete run on a firmware release; a regression fails its item")
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
            self.audit = Audit(self.bench, self.records, self.reports_dir / "keys", payload_accuracy_point(),
                               inspection=inspection, firmware_baseline=self.config.getoption("--firmware-baseline"))
            self.firmware = FirmwareChecks(self.audit)
            self.recorder = RunRecorder(self.profile, self.table, self.rule or self.table.rule,
                                        self.config.getoption("--operator"), self.config.getoption("--allow-expired-reference"))
            self.publish(complete=False)  # until it ends normally, the run is incomplete
        return self.bench

    def _load_baseline(self) -> Baseline | None:
        reference = self.config.getoption("--baseline")
        if not reference:
            return None
        try:
            return load_baseline(self.records, reference)
        except store.RecordsError as error:
            pytest.exit(f"bench cannot start: baseline: {error}", returncode=pytest.ExitCode.USAGE_ERROR)

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
        if sys.stdin.isatty():
            return self._ask_inspection()
        return None

    def _ask_inspection(self) -> dict[str, Section]:
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        found = {}
        with capture.global_and_fixture_disabled():
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
        cal = self.profile.reference.calibration
        if dt.date.today() > cal.due and not self.config.getoption("--allow-expired-reference"):
            pytest.exit(f"bench cannot start: reference standard {self.profile.reference.serial} calibration "
                        f"{cal.certificate} was due {cal.due}: certification is blocked "
                        f"(--allow-expired-reference REASON overrides it, and the reason is recorded)",
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

    def publish(self, complete: bool) -> dict[str, Any]:
        record = self.recorder.record(self.bench, self.reported, self.certification.faults, self.points, complete)
        if self.baseline is not None:
            record["baseline"] = {"reference": self.baseline.reference, "run_id": self.baseline.run_id,
                                  "margin_pct": self.config.getoption("--regression-margin"), "regressions": self.regressions}
        store.publish(self.records, record, fingerprint(record))
        return record

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


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Also reached after Ctrl-C or SIGTERM: outputs off before anything else happens; then the
    run's record (complete only if the session ended normally), certificates and JSON record."""
    bench_session = session.config.stash[SESSION_KEY]
    if bench_session.bench is None:
        return
    bench_session.make_safe_after_failure()
    if bench_session.unsafe:
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"bench: SAFETY: {bench_session.unsafe}: check the board by hand", red=True, bold=True)
    complete = (exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) and not bench_session.bench.interrupted
                and not bench_session.stopped and not bench_session.unsafe)
    record = bench_session.publish(complete)
    directory = bench_session.reports_dir
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"run-{record['run_id']}.json").write_text(json.dumps(record, indent=1, default=str))
    if complete:
        write_certificates(record, directory / "certificates")
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
    """Functional checks first, in collection order (the audit's steps are numbered files);
    then the table's points in its order (reference points before their shifts), each point's
    positions together."""
    order = {p.id: i for i, p in enumerate(config.stash[SESSION_KEY].points)}
    collected = {id(item): i for i, item in enumerate(items)}

    def key(item: pytest.Item) -> tuple[int, int, int]:
        params = getattr(item, "callspec", None)
        point = params.params.get("point") if params else None
        if getattr(point, "id", None) not in order:
            return (0, collected[id(item)], 0)
        return (1, order[point.id], params.params["position"].number)

    items.sort(key=key)


@pytest.fixture(scope="session")
def bench(pytestconfig: pytest.Config) -> Bench:
    """The opened bench, in safe state between sessions and after any failure."""
    return pytestconfig.stash[SESSION_KEY].open_bench()


AUDIT_STEPS = {
    "inspection": ("INSPECTION", "physical inspection", Audit.inspection_check),
    "voltage_phase": ("VOLTAGE-PHASE", "voltage and phase", Audit.voltage_phase_check),
    "logic_layer": ("LOGIC", "logic layer", Audit.logic_check),
    "network": ("NETWORK", "network", Audit.network_check),
    "keys_identity": ("KEYS-IDENTITY", "key rotation and identity", Audit.keys_identity_check),
    "payload": ("PAYLOAD", "payload accuracy at 1.0 kW", Audit.payload_check),
    "firmware": ("FIRMWARE", "firmware baseline", Audit.firmware_check),
}
FIRMWARE_STEPS = {
    "register_map": ("FW-REGISTERS", "register map and scaling", FirmwareChecks.register_map),
    "intervals": ("FW-INTERVALS", "15-minute interval records", FirmwareChecks.intervals),
    "alarm_buffer": ("FW-ALARMS", "non-critical alarms buffered", FirmwareChecks.alarm_buffer),
    "version": ("FW-VERSION", "firmware version string", FirmwareChecks.version),
}


def _check_runner(request: pytest.FixtureRequest, family: str, steps: dict[str, tuple[str, str, Callable]],
                  owner: Callable[[BenchSession], Any]) -> Callable[[str, Position], None]:
    session = request.config.stash[SESSION_KEY]

    def run(step: str, position: Position) -> None:
        point_id, name, method = steps[step]
        check = FunctionalCheck(point_id, name, family, lambda: method(owner(session)))
        session.run(request, check, position, family)

    return run


@pytest.fixture
def audit(bench: Bench, request: pytest.FixtureRequest) -> Callable[[str, Position], None]:
    """Run an audit step (once for the whole board) and judge this position, with its
    troubleshooting entry on failure."""
    return _check_runner(request, "audit", AUDIT_STEPS, lambda session: session.audit)


@pytest.fixture
def firmware(bench: Bench, request: pytest.FixtureRequest) -> Callable[[str, Position], None]:
    """Run a firmware-behaviour check (once for the whole board) and judge this position."""
    return _check_runner(request, "firmware", FIRMWARE_STEPS, lambda session: session.firmware)


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
    result = item.stash.get(RESULT_KEY, None)
    if result is None or report.when != "call" or not item.config.pluginmanager.hasplugin("html"):
        return
    from pytest_html import extras

    plot = result_svg(result)
    report.extras = [*getattr(report, "extras", []), extras.json(result.to_dict(), name="measurement")]
    if plot:
        report.extras.append(extras.svg(base64.b64encode(plot.encode()).decode(), name="plot"))


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_header(cells: list[str]) -> None:
    for offset, name in enumerate(REPORT_COLUMNS):
        cells.insert(2 + offset, f"<th>{name}</th>")


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_row(report: pytest.TestReport, cells: list[str]) -> None:
    values = dict(p for p in report.user_properties if p[0] in REPORT_COLUMNS)
    for offset, name in enumerate(REPORT_COLUMNS):
        cells.insert(2 + offset, f"<td>{html.escape(str(values.get(name, '')))}</td>")


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
    return [
        f"run {session.recorder.run_id} by {session.recorder.operator}, records in {store.safe_url(session.records_url())}",
        f"bench {p.bench_id}, profile {p.source_file}, sha256 {p.digest[:16]}",
        f"reference standard {bench.reference.idn} (serial {p.reference.serial}), certificate {cal.certificate}, "
        f"calibrated {cal.date}, due {cal.due}, {cal.uncertainty.describe()}",
        f"{len(p.positions)} positions: {mt.manufacturer} {mt.model}, form {mt.form}, class {mt.accuracy_class:g}, "
        f"TA {mt.test_amperes:g} A, Imax {mt.max_current_a:g} A, {mt.nominal_voltage_v:g} V, Kh {mt.kh_wh:g} Wh",
        f"limits: {session.table.name}, version {session.table.version} ({session.table.source}); {session.table.provenance}",
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
    if session.baseline is not None:
        terminalreporter.write_line(f"baseline: {session.baseline.reference} (run {session.baseline.run_id[:8]}): "
                                    f"{len(session.regressions)} regression(s)")
        for regression in session.regressions:
            terminalreporter.write_line(f"  REGRESSION {regression['serial']} {regression['point']}: {regression['why']}")
    record = getattr(session, "last_record", None)
    if record:
        for meter in record["meters"]:
            state = "CERTIFIED" if meter["certified"] else f"not certified ({meter['verdict']})"
            terminalreporter.write_line(f"  position {meter['position']} {meter['serial']}: {state}")
        terminalreporter.write_line(f"run {record['status']}; certificates and JSON record in {session.reports_dir}")


@pytest.hookimpl(optionalhook=True)
def pytest_html_report_title(report: Any) -> None:
    report.title = "Meter certification report"


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_summary(prefix: list[str], summary: list[str], postfix: list[str],
                                session: pytest.Session) -> None:
    bench_session = session.config.stash[SESSION_KEY]
    if bench_session.bench is not None:
        prefix.extend(f"<p>{html.escape(line)}</p>" for line in traceability(bench_session))
