"""The pytest hooks that carry a run through pytest's session: the bench session made at
configure and closed at unconfigure, the plans collection selects and the order items run in,
the safe state after any failure, and the run's record when the session ends."""
from __future__ import annotations

import gc
from collections.abc import Generator
from typing import Any

import pytest

from bench.plans import audit as audit_plan
from bench.plans.board_checks import BoardStep
from bench.pytest_plugin import direct
from bench.pytest_plugin.items import store_concluded
from bench.pytest_plugin.operator_view import points_planned
from bench.pytest_plugin.publish import publish, write_signed
from bench.pytest_plugin.scope import ending
from bench.pytest_plugin.session import SESSION_KEY, BenchSession
from bench.records.baseline import compared_enough

WHOLE_RUN = "whole_run"  # marks an item that judges what the whole run did: it runs after every point


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{WHOLE_RUN}: judges what the whole run did, so runs after every table point")
    config.stash[SESSION_KEY] = BenchSession.configure(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    if SESSION_KEY in config.stash:
        config.stash[SESSION_KEY].close()


def pytest_deselected(items: list[pytest.Item]) -> None:
    """-k, -m, --lf and --deselect take items out of the plans: the run can then only be partial."""
    if items:
        selection = items[0].config.stash[SESSION_KEY].selection
        selection.deselected.extend(item.nodeid for item in items)
        selection.add(items)


def pytest_collection_finish(session: pytest.Session) -> None:
    bench_session = session.config.stash[SESSION_KEY]
    bench_session.selection.add(session.items)
    bench_session.view.points_planned = points_planned(session.items)
    direct.mark(session.config, session.items)


def _params(item: pytest.Item) -> dict[str, Any]:
    """The values pytest_generate_tests gave the item ({} for an item without parameters)."""
    callspec = getattr(item, "callspec", None)  # pytest sets it on parametrized items only
    return dict(callspec.params) if callspec is not None else {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Functional checks first: the audit's in its procedure's order (``audit.STEPS``; a plan
    module names its step as ``STEP``), others in collection order; then the table's points in
    its order (reference points before their shifts), each point's positions together; last,
    the checks of what the whole run did (the interval records it closed)."""
    order = {p.id: i for i, p in enumerate(config.stash[SESSION_KEY].points)}
    steps = {step.id: i for i, step in enumerate(audit_plan.STEPS)}
    collected = {id(item): i for i, item in enumerate(items)}

    def key(item: pytest.Item) -> tuple[int, int, int, int]:
        params = _params(item)
        point_id = getattr(params.get("point"), "id", None)  # other tests may have a "point" of their own
        if item.get_closest_marker(WHOLE_RUN):
            return (2, collected[id(item)], 0, 0)
        if point_id not in order:
            step = getattr(item.module, "STEP", None) if isinstance(item, pytest.Function) else None
            return (0, steps.get(step.id if isinstance(step, BoardStep) else "", len(steps)), collected[id(item)], 0)
        return (1, order[point_id], params["position"].number, 0)

    items.sort(key=key)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport,
                                                                                          pytest.TestReport]:
    report = yield
    if report.failed and report.when in ("setup", "call"):
        item.config.stash[SESSION_KEY].make_safe_after_failure()
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Also reached after Ctrl-C or SIGTERM: outputs off before anything else happens; then the
    meters out of test mode, the run's record with its status, and (complete runs only) its
    signed documents."""
    bench_session = session.config.stash[SESSION_KEY]
    run = bench_session.run
    if run is None:
        return
    bench_session.make_safe_after_failure()
    run.bench.leave_test_mode()  # after safe state; before the record, which says whether it was left
    store_concluded(run)  # the point in progress, as far as it went
    if run.tally.unsafe:
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"bench: SAFETY: {run.tally.unsafe}: check the board by hand", red=True, bold=True)
    scope = bench_session.selection.scope(run, ending(run, exitstatus), session.shouldfail)
    made = publish(run, scope)
    record = made.record
    if "baseline" in record and not compared_enough(record["baseline"]):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    write_signed(run, made)
    run.view.ended(scope.status, scope.why)
    run.tally.final_record = record
    # The run's objects (every item's report and result) live until the process exits (a plan run is a
    # process of its own): frozen, the cyclic collector no longer scans them at each collection the
    # rest of the session triggers (pytest's five at exit, those the summary's imports set off). At
    # 40 positions this took the end of a run from 3.6 s to 2.2 s, at one position from 1.7 s to 0.9 s.
    gc.freeze()
