"""One item of a plan: its point measured once for the whole board, its result recorded beside its
baseline (stored with the rest of the board's, so a crash loses at most the point in progress),
and this position judged."""
from __future__ import annotations

from typing import Any, NoReturn

import pytest

from bench.procedures.runner import Point, Result
from bench.pytest_plugin.context import RunContext
from bench.records import store
from bench.records.record import entry
from bench.station.profile import Position
from bench.station.safety import SafetyError

RESULT_KEY = pytest.StashKey[tuple[Result, dict[str, Any]]]()  # an item's result and its entry, for the session report


def run_item(run: RunContext, item: pytest.Item, point: Point, position: Position, family: str) -> None:
    """Measure (once for the board) and conclude one item; a safety stop or a lost link ends
    the whole session at once, in one line."""
    run.view.point(point.id, point.name, family)
    if run.tally.unstored and run.tally.unstored[0][0] != point.id:
        store_concluded(run)  # a point some positions were not selected for: stored before the next starts
    try:
        results = run.certification.run(point)
    except SafetyError as error:
        stop = str(error)
    else:
        stop = ""
    if stop:  # outside the except: the one line is not chained to a traceback
        stop_session(run, item.session, stop)
    if run.certification.stop_reason and not run.tally.stopped:
        run.tally.stopped = run.certification.stop_reason
        item.session.shouldstop = f"bench stopped: {run.tally.stopped}"
    conclude(run, item, point.id, results[position.number], position, family)


def stop_session(run: RunContext, session: pytest.Session, why: str) -> NoReturn:
    run.tally.stopped = why
    run.view.safety(why)
    session.shouldstop = f"bench stopped: {why}"
    pytest.fail(f"bench stopped: {why}", pytrace=False)


def conclude(run: RunContext, item: pytest.Item, point_id: str, result: Result, position: Position,
             family: str) -> None:
    """Record an item's result beside its baseline, then pass it only on PASS and no regression."""
    run.tally.reported[(point_id, position.number)] = (family, result)
    now = run.tally.entries[(point_id, position.number)] = entry(point_id, family, result,
                                                                 run.certification.faults.get(point_id, []))
    run.tally.evidence.pop((position.number, point_id), None)  # a text of an earlier entry is not this one's
    run.view.result(point_id, now["name"], position, result)
    item.stash[RESULT_KEY] = (result, now)
    item.user_properties.extend(now["cells"].items())
    run.tally.unstored.append((point_id, position.number, now))
    if len(run.tally.unstored) == len(run.profile.positions):  # the whole board has concluded the point
        store_concluded(run)
    regression = ""
    comparison = run.baseline.compare(position.serial, now)
    if comparison is not None:
        run.tally.compared += 1
        item.user_properties.extend([("Baseline", comparison.baseline), ("Change", comparison.change)])
        regression = comparison.regression
        if regression:
            run.tally.regressions.append({"serial": position.serial, "point": now["point"], "why": regression})
    if result.verdict != "PASS":
        pytest.fail(result.summary() + (f"; regression: {regression}" if regression else ""), pytrace=False)
    if regression:
        pytest.fail(f"{result.summary()}; REGRESSION against {run.baseline.reference}: {regression}", pytrace=False)


def store_concluded(run: RunContext) -> None:
    """The concluded items' results not yet stored, in one transaction; the texts stored are kept
    for the record's publish, which then need not make or write them again."""
    if run.tally.unstored:
        run.tally.evidence.update(store.add_results(run.records, run.recorder.run_id,
                                                    [(n, entry) for _, n, entry in run.tally.unstored]))
        run.tally.unstored.clear()
