"""What a plan module's tests get: ``point`` and ``position`` parameters, and the fixtures that
run an item (``certify`` for a table point, ``audit`` and ``firmware`` for a board step)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.plans.audit import Audit
from bench.plans.board_checks import BoardStep, Checks
from bench.plans.demand import DemandPoint, not_applicable
from bench.plans.firmware import FirmwareChecks
from bench.procedures.counting import CreepPoint, StartingPoint
from bench.procedures.gating import AccuracyPoint
from bench.procedures.runner import FunctionalCheck, Point
from bench.pytest_plugin.context import RunContext
from bench.pytest_plugin.items import run_item
from bench.pytest_plugin.session import SESSION_KEY
from bench.station.bench import Bench
from bench.station.profile import Position


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A plan module names its family (``FAMILY = "load_performance"``) and gets one item per test
    point of that family; every test that takes ``position`` gets one item per board position."""
    session = metafunc.config.stash[SESSION_KEY]
    family = getattr(metafunc.module, "FAMILY", None)
    if "point" in metafunc.fixturenames and family is not None:
        chosen = [p for p in session.points if p.family == family]
        if chosen:
            metafunc.parametrize("point", chosen, ids=[p.id for p in chosen])
        else:  # one skipped item per position that says why, not pytest's "got empty parameter set"
            mt = session.source.meter_type()
            why = (f"not applicable: {session.table.name} ({Path(session.table.source).name}) has no {family} "
                   f"points for this meter type (Form {mt.form}, test outputs {', '.join(mt.test_outputs)})")
            metafunc.parametrize("point", [pytest.param(None, marks=pytest.mark.skip(reason=why))],
                                 ids=["not-applicable"])
    if "point" in metafunc.fixturenames and "demand" in metafunc.fixturenames:
        # The demand register test's points; a meter type without demand registers gets one skipped
        # item per position, saying which registers it lacks.
        why = not_applicable(session.source.meter_type())
        skipped = [pytest.param(None, marks=pytest.mark.skip(reason=why))]
        metafunc.parametrize("point", skipped if why else session.demand_points,
                             ids=["not-applicable"] if why else [p.id for p in session.demand_points])
    if "position" in metafunc.fixturenames:
        positions = session.source.profile.positions
        metafunc.parametrize("position", positions, ids=[f"pos{p.number}-{p.serial}" for p in positions])


def _context(node: pytest.Item) -> RunContext:
    return node.config.stash[SESSION_KEY].open()


@pytest.fixture(scope="session")
def bench(pytestconfig: pytest.Config) -> Bench:
    """The opened bench, in safe state between sessions and after any failure."""
    return pytestconfig.stash[SESSION_KEY].open().bench


def _step_runner(item: pytest.Item, family: str, checks: Checks) -> Callable[[BoardStep[Checks], Position], None]:
    run = _context(item)

    def run_step(step: BoardStep[Checks], position: Position) -> None:
        check = FunctionalCheck(step.id, step.name, family, lambda: step.run(checks))
        run_item(run, item, check, position, family)

    return run_step


def audit_runner(item: pytest.Item) -> Callable[[BoardStep[Audit], Position], None]:
    return _step_runner(item, "audit", _context(item).audit)


def firmware_runner(item: pytest.Item) -> Callable[[BoardStep[FirmwareChecks], Position], None]:
    return _step_runner(item, "firmware", _context(item).firmware)


def demand_runner(item: pytest.Item) -> Callable[[DemandPoint, Position], None]:
    run = _context(item)
    bench = run.bench

    def measure(point: DemandPoint, position: Position) -> None:
        lacking = _lacking(run, point.id, lambda: bench.lacks(point.stimulus(bench.profile.meter_type)))
        if lacking:
            pytest.skip(f"{point.id}: {lacking}")
        run_item(run, item, FunctionalCheck(point.id, point.name, point.family, lambda: run.demand.measure(point)),
                 position, point.family)

    return measure


def certify_runner(item: pytest.Item) -> Callable[[Point, Position], None]:
    run = _context(item)
    bench = run.bench

    def lacks(point: AccuracyPoint | CreepPoint | StartingPoint) -> str | None:
        if isinstance(point, AccuracyPoint):
            return bench.lacks(point.stimulus(bench)) or bench.lacks_quantity(point.quantity)
        return bench.lacks(point.stimulus(bench.profile.meter_type))

    def measure(point: Point, position: Position) -> None:
        if isinstance(point, (AccuracyPoint, CreepPoint, StartingPoint)):
            lacking = _lacking(run, point.id, lambda: lacks(point))
            if lacking:
                pytest.skip(f"{point.id}: {lacking}")
        run_item(run, item, point, position, point.family)

    return measure


# Each plan fixture's runner, made for the item that asks for it: the fixtures below return them, and
# a plan item that asks for nothing else is handed its runner directly (bench/pytest_plugin/direct.py).
RUNNERS: dict[str, Callable[[pytest.Item], Callable[[Any, Position], None]]] = {
    "certify": certify_runner, "audit": audit_runner, "firmware": firmware_runner, "demand": demand_runner}


@pytest.fixture
def audit(request: pytest.FixtureRequest) -> Callable[[BoardStep[Audit], Position], None]:
    """Run an audit step (once for the whole board) and judge this position, with its
    troubleshooting entry on failure."""
    return audit_runner(request.node)


@pytest.fixture
def firmware(request: pytest.FixtureRequest) -> Callable[[BoardStep[FirmwareChecks], Position], None]:
    """Run a firmware-behaviour check (once for the whole board) and judge this position."""
    return firmware_runner(request.node)


@pytest.fixture
def demand(request: pytest.FixtureRequest) -> Callable[[DemandPoint, Position], None]:
    """Measure a demand point (once for the whole board: one demand interval) and judge this
    position's demand registers."""
    return demand_runner(request.node)


@pytest.fixture
def certify(request: pytest.FixtureRequest) -> Callable[[Point, Position], None]:
    """Measure a point (once for the whole board) and judge this position: only PASS passes;
    FAIL and INDETERMINATE both leave the meter uncertified."""
    return certify_runner(request.node)


def _lacking(run: RunContext, point_id: str, why: Callable[[], str | None]) -> str | None:
    """Why the bench cannot run a point, found once per point: its stimulus and quantity are the
    meter type's, the same for every position."""
    if point_id not in run.lacking:
        run.lacking[point_id] = why()
    return run.lacking[point_id]
