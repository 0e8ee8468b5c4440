"""The bench's command-line options, and one typed view of them: the rest of the plugin reads
``Options`` instead of option strings."""
from __future__ import annotations

import getpass
from dataclasses import dataclass

import pytest

from bench.datafiles import number_argument
from bench.metrology.uncertainty import Rule
from bench.pytest_plugin import operator_view, progress
from bench.records.record import DEFAULT_TEST_REASON, TEST_REASONS


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bench", "meter test bench")
    group.addoption("--bench", metavar="PROFILE", help="bench profile (TOML); default: the built-in simulated bench")
    group.addoption("--sim-bench", metavar="PROFILE",
                    help="run on the simulated bench with the twins of the instruments PROFILE names (its drivers "
                         "by role, its source's and load's ranges; the board and meters come from --sim-scenario, "
                         "and the certificates name the simulator, not PROFILE's lab)")
    group.addoption("--sim-scenario", metavar="BOARD", default="default",
                    help="simulated board: a name from bench/sim/boards or a path (default: default)")
    group.addoption("--sim-scale", metavar="FACTOR", type=number_argument("--sim-scale", above=0.0), default=None,
                    help="run the simulated clock at FACTOR x wall time instead of stepping it")
    group.addoption("--limits", metavar="TABLE",
                    help="test points and limits (TOML); default: bench/standards/c12_20.toml")
    group.addoption("--decision-rule", choices=[r.value for r in Rule], default=None,
                    help="simple acceptance or guard-banded; default: the limits table's rule")
    group.addoption("--records", metavar="URL", help="records database (SQLAlchemy URL); default: the profile's, "
                    "else sqlite under --reports-dir")
    group.addoption("--reports-dir", metavar="DIR", default="reports", help="where certificates and JSON records go")
    group.addoption("--operator", metavar="NAME", default=getpass.getuser(),
                    help="who runs the bench: 'tested by' on every certificate (default: the login name)")
    group.addoption("--test-reason", choices=TEST_REASONS, default=None,
                    help="why the meters are tested: acceptance, in-service, complaint, or after-adjustment (a "
                         "retest after adjusting; it is the 'as left' of the test it follows). Recorded and printed on "
                         f"every document; default: {DEFAULT_TEST_REASON}, recorded as the default, not as stated")
    group.addoption("--allow-expired-calibration", metavar="REASON",
                    help="run although an instrument is past its calibration due date (the reason is recorded and "
                         "printed on every certificate)")
    group.addoption("--approved-by", metavar="NAME", help="the lab signatory who approves this run's certificates "
                    "(one of the profile's [lab] signatories; default: the first)")
    group.addoption("--inspection", metavar="FILE", help="the technician's physical inspection (TOML, one table per "
                    "meter serial), or 'ask': the operator answers on the panel (--panel) or at the terminal. "
                    "Without it a lab bench asks so, a simulated board's technician answers, or the check fails")
    group.addoption("--firmware-baseline", metavar="RELEASE",
                    help="firmware every meter must run (default: the audit limits')")
    group.addoption("--no-test-mode", action="store_true",
                    help="keep the meters in normal mode: gate and count on their normal Kt even where the meter "
                         "type offers a test mode (meter_type.test_mode; by default the run enters it once the "
                         "meters are identified and leaves it at the end)")
    group.addoption("--baseline", metavar="RUN_OR_RELEASE", help="compare every point with a stored run (id or prefix) "
                    "or the latest complete run on a firmware release; a regression fails its item")
    group.addoption("--baseline-min-overlap", metavar="FRACTION", default=0.8,
                    type=number_argument("--baseline-min-overlap", above=0.0, at_most=1.0),
                    help="the share of this run's points the baseline must also hold, or the comparison stops "
                         "(default: 0.8)")
    group.addoption("--regression-margin", metavar="PCT", type=number_argument("--regression-margin", at_least=0.0),
                    default=0.05,
                    help="how far (in %% of reading) an error may move towards its limit before it is a regression")
    operator_view.add_options(group)
    progress.add_options(group)


@dataclass(frozen=True)
class Options:
    """The options as given; None where an option was not given and has no default."""

    profile: str | None  # --bench: None runs the built-in simulated bench
    sim_bench: str | None  # --sim-bench: whose instruments the simulated bench's twins are
    sim_scenario: str
    sim_scale: float | None
    limits: str | None
    decision_rule: Rule | None
    records: str | None
    reports_dir: str
    operator: str
    allow_expired_calibration: str | None
    approved_by: str | None
    inspection: str | None
    firmware_baseline: str | None
    baseline: str | None
    baseline_min_overlap: float
    regression_margin: float
    test_reason: str | None = None  # --test-reason: None when not stated (the record says the default)
    test_mode: bool = True  # not --no-test-mode: the meters' test mode, where the meter type offers one

    @classmethod
    def of(cls, config: pytest.Config) -> Options:
        rule = config.getoption("--decision-rule")
        return cls(config.getoption("--bench"), config.getoption("--sim-bench"),
                   config.getoption("--sim-scenario"), config.getoption("--sim-scale"),
                   config.getoption("--limits"), Rule(rule) if rule else None, config.getoption("--records"),
                   config.getoption("--reports-dir"), config.getoption("--operator"),
                   config.getoption("--allow-expired-calibration"), config.getoption("--approved-by"),
                   config.getoption("--inspection"), config.getoption("--firmware-baseline"),
                   config.getoption("--baseline"), config.getoption("--baseline-min-overlap"),
                   config.getoption("--regression-margin"), test_reason=config.getoption("--test-reason"),
                   test_mode=not config.getoption("--no-test-mode"))
