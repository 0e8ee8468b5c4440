"""The pytest plugin: bench options, the bench and position fixtures, and report columns.

Without ``--bench`` it starts the built-in simulated bench in this process and uses its profile.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Callable

import pytest

from bench.bench import Bench, SafetyError
from bench.config import ConfigError
from bench.profile import Profile, load_profile
from bench.results import PositionResult
from instruments.errors import InstrumentError

RESULT_KEY = pytest.StashKey[PositionResult]()
SESSION_KEY = pytest.StashKey["BenchSession"]()
COLUMNS = ("Stimulus", "Error %", "U (k=2) %", "Register error %", "Limit %", "Verdict")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bench", "meter test bench")
    group.addoption("--bench", metavar="PROFILE", help="bench profile (TOML); default: the built-in simulated bench")
    group.addoption("--sim-scenario", metavar="BOARD", default="default",
                    help="simulated board: a name from bench/sim/boards or a path (default: default)")
    group.addoption("--sim-scale", metavar="FACTOR", type=float, default=None,
                    help="run the simulated clock at FACTOR x wall time instead of stepping it")


class BenchSession:
    """The profile, and the simulator behind it when there is no real bench. Data files are read
    at start (a broken one stops pytest with one line); the simulator starts on first use, so
    runs that never touch the bench (the framework's own tests) never start one."""

    def __init__(self, config: pytest.Config) -> None:
        from bench.sim import SimulatedBench

        self.bench: Bench | None = None
        self.sim: SimulatedBench | None = None
        self._profile: Profile | None = None
        path = config.getoption("--bench")
        try:
            if path:
                self._profile = load_profile(Path(path))
            else:
                self.sim = SimulatedBench(config.getoption("--sim-scenario"), scale=config.getoption("--sim-scale"))
        except ConfigError as error:
            raise pytest.UsageError(str(error)) from None

    @property
    def profile(self) -> Profile:
        if self._profile is None:
            self._profile = self.sim.start().profile()
        return self._profile

    def open_bench(self) -> Bench:
        """Open every instrument; one that cannot be opened ends the session with one line."""
        if self.bench is None:
            try:
                self.bench = Bench(self.profile).__enter__()
            except (InstrumentError, SafetyError) as error:
                pytest.exit(f"bench cannot start: {error}", returncode=pytest.ExitCode.INTERNAL_ERROR)
            self.clock_start = self.bench.clock.now()
        return self.bench

    def close(self) -> None:
        try:
            if self.bench is not None:
                self.bench.__exit__(None, None, None)
        finally:
            self.bench = None
            if self.sim is not None:
                self.sim.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[SESSION_KEY] = BenchSession(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    if SESSION_KEY in config.stash:
        config.stash[SESSION_KEY].close()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Also reached after Ctrl-C or SIGTERM: outputs off before anything else happens."""
    bench = session.config.stash[SESSION_KEY].bench
    if bench is not None:
        bench.safe_state()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "position" in metafunc.fixturenames:
        positions = metafunc.config.stash[SESSION_KEY].profile.positions
        metafunc.parametrize("position", positions, ids=[f"pos{p.number}-{p.serial}" for p in positions])


@pytest.fixture(scope="session")
def bench(pytestconfig: pytest.Config) -> Bench:
    """The opened bench, in safe state between test points and after the session."""
    return pytestconfig.stash[SESSION_KEY].open_bench()


@pytest.fixture
def record_result(request: pytest.FixtureRequest) -> Callable[[PositionResult], None]:
    """Attach a position's result to this test item, for the report."""

    def record(result: PositionResult) -> None:
        request.node.stash[RESULT_KEY] = result
        request.node.user_properties.extend(_cells(result).items())  # report rows and JUnit XML

    return record


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    outcome = yield
    report = outcome.get_result()
    result = item.stash.get(RESULT_KEY, None)
    if result is None or report.when != "call":
        return
    try:
        from pytest_html import extras
    except ImportError:  # pragma: no cover - pytest-html is a dependency
        return
    report.extras = [*getattr(report, "extras", []), extras.json(result.to_dict(), name="measurement")]


def _cells(result: PositionResult) -> dict[str, str]:
    measured = result.pulses
    return {
        "Stimulus": result.stimulus.describe(),
        "Error %": f"{measured.error_pct:+.4f}" if measured else "n/a",
        "U (k=2) %": f"{measured.expanded_pct:.4f}" if measured else "n/a",
        "Register error %": f"{result.register_check.error_pct:+.4f}",
        "Limit %": f"±{result.limit_pct:g}",
        "Verdict": result.verdict.value,
    }


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_header(cells: list[str]) -> None:
    for offset, name in enumerate(COLUMNS):
        cells.insert(2 + offset, f"<th>{name}</th>")


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_row(report: pytest.TestReport, cells: list[str]) -> None:
    values = dict(p for p in report.user_properties if p[0] in COLUMNS)
    for offset, name in enumerate(COLUMNS):
        cells.insert(2 + offset, f"<td>{values.get(name, '')}</td>")


def traceability(session: BenchSession) -> list[str]:
    """Which bench, instruments and meters produced these results: for the terminal and the report."""
    p, bench = session.profile, session.bench
    cal = p.reference.calibration
    mt = p.meter_type
    return [
        f"bench {p.bench_id}, profile {p.source_file}, sha256 {p.digest[:16]}",
        f"reference standard {bench.reference.idn} (serial {p.reference.serial}), certificate {cal.certificate}, "
        f"calibrated {cal.date}, due {cal.due}, U = {cal.uncertainty_pct_k2:g} % (k=2)",
        f"{len(p.positions)} positions: {mt.manufacturer} {mt.model}, form {mt.form}, class {mt.accuracy_class:g}, "
        f"TA {mt.test_amperes:g} A, Imax {mt.max_current_a:g} A, {mt.nominal_voltage_v:g} V, Kh {mt.kh_wh:g} Wh",
        f"bench time covered: {bench.clock.now() - session.clock_start:.1f} s",
    ]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    session = config.stash[SESSION_KEY]
    if session.bench is None:
        return
    terminalreporter.section("meter bench")
    for line in traceability(session):
        terminalreporter.write_line(line)


@pytest.hookimpl(optionalhook=True)
def pytest_html_report_title(report: Any) -> None:
    report.title = "Meter certification report"


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_summary(prefix: list[str], summary: list[str], postfix: list[str],
                                session: pytest.Session) -> None:
    bench_session = session.config.stash[SESSION_KEY]
    if bench_session.bench is not None:
        prefix.extend(f"<p>{html.escape(line)}</p>" for line in traceability(bench_session))
