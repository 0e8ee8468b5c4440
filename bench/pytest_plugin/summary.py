"""What the terminal shows after a run: which bench, instruments, meters and limits produced the
results (the session report shows the same lines), then each meter's verdicts and the run's status."""
from __future__ import annotations

from typing import Any

import pytest

from bench.metrology.uncertainty import RULE_TEXT
from bench.pytest_plugin.context import RunContext
from bench.pytest_plugin.session import SESSION_KEY
from bench.records import store
from bench.records.baseline import compared_enough


def traceability(run: RunContext) -> list[str]:
    """Which bench, instruments, meters and limits produced these results."""
    p, bench, table, recorder = run.profile, run.bench, run.table, run.recorder
    cal = p.reference.calibration
    mt = p.meter_type
    return [
        f"run {recorder.run_id} tested by {recorder.operator}, approved by {recorder.approved_by.name} "
        f"({recorder.approved_by.title}), {p.lab.name}; records in {store.safe_url(run.records_url)}",
        f"bench {p.bench_id}, profile {p.source_file}, sha256 {p.digest[:16]}",
        f"reference standard {bench.reference.idn} (serial {p.reference.serial}), {cal.uncertainty.describe()}"
        + (f"; reactive energy {cal.reactive_uncertainty.describe()}" if cal.reactive_uncertainty else ""),
        "calibration: " + "; ".join(f"{role} {c.certificate} due {c.due}" for role, c in p.calibrations().items())
        + (f" (past due allowed: {recorder.calibration_override})" if recorder.calibration_override else ""),
        f"{len(p.positions)} positions: {mt.manufacturer} {mt.model}, form {mt.form}, class {mt.accuracy_class:g}, "
        f"TA {mt.test_amperes:g} A, Imax {mt.max_current_a:g} A, {mt.nominal_voltage_v:g} V, Kh {mt.kh_wh:g} Wh, "
        + "Kt " + ", ".join(f"{kt:g} {output}" for output, kt in mt.test_outputs.items()) + _test_mode(run),
        f"limits: {table.name}, version {table.version} ({table.standard}); {table.provenance}",
        f"decision rule: {RULE_TEXT[run.rule]}",
        f"bench time covered: {bench.now() - run.clock_start:.1f} s",
    ]


def _test_mode(run: RunContext) -> str:
    """What the run counted with, where the meters offer a test mode."""
    mode, state = run.profile.meter_type.test_mode, run.bench.test_mode
    if mode is None:
        return ""
    if not state.used:
        return "; test mode not used (--no-test-mode)"
    kt = ", ".join(f"{kt:g} {output}" for output, kt in mode.kt(run.profile.meter_type.test_outputs).items())
    back = ("every meter back in normal mode" if state.left else
            f"NOT confirmed back in normal mode: position(s) {', '.join(map(str, state.not_left))}"
            if state.not_left else "still in test mode")
    return f"; test mode used, Kt {kt} ({back})"


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    run = config.stash[SESSION_KEY].run
    if run is None:
        return
    terminalreporter.section("meter bench")
    for line in traceability(run):
        terminalreporter.write_line(line)
    record = run.tally.final_record
    if record is None:
        return
    if "baseline" in record:
        _baseline(terminalreporter, record["baseline"])
    for meter in record["meters"]:
        documents = ", ".join(f"{name} {verdict}" for name, verdict in meter["verdicts"].items()
                              if verdict != "NO RESULTS")
        state = "CERTIFIED" if meter["certified"] else "not certified"
        terminalreporter.write_line(f"  position {meter['position']} {meter['serial']}: {state} "
                                    f"({documents or 'no results'})")
    scope = record["scope"]
    terminalreporter.write_line(f"run {record['status']}: {scope['ran']} of {scope['planned']} planned item(s) ran"
                                + (f" ({scope['why']})" if scope["why"] else ""))
    if record["status"] == "complete":
        terminalreporter.write_line(f"signed documents and JSON record in {run.reports_dir} "
                                    f"(key {run.signer.fingerprint})")
    else:
        terminalreporter.write_line(f"no certificates: only a complete run certifies; JSON record in {run.reports_dir}")


def _baseline(terminalreporter: Any, base: dict[str, Any]) -> None:
    terminalreporter.write_line(f"baseline: {base['reference']} = run {base['run_id'][:8]} of {base['started_at']}: "
                                f"{base['points_compared']} of {base['points_run']} points compared, "
                                f"{len(base['regressions'])} regression(s)")
    if not compared_enough(base):
        terminalreporter.write_line(f"baseline: too few points compared (--baseline-min-overlap "
                                    f"{base['min_overlap']:g}): no regression verdict", red=True, bold=True)
    for regression in base["regressions"]:
        terminalreporter.write_line(f"  REGRESSION {regression['serial']} {regression['point']}: {regression['why']}")
