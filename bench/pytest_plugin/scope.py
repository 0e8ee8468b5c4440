"""What a run was meant to cover and what it did: the plans its items belong to, what was
deselected, and from that the run's status (complete, partial, incomplete) as a fact."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from bench.plans import audit as audit_plan
from bench.plans import firmware as firmware_plan
from bench.plans.audit import Audit
from bench.plans.firmware import FirmwareChecks
from bench.pytest_plugin.context import RunContext
from bench.records.record import Scope

PLAN_FIXTURES = {"certify": "accuracy", "audit": "audit", "firmware": "firmware"}
PLAN_NAMES = {"accuracy": "accuracy plan", "audit": "commissioning audit", "firmware": "firmware regression"}
# The demand register test: planned only for meters that keep demand registers (others skip it).
PLAN_FIXTURES["demand"] = "demand"
PLAN_NAMES["demand"] = "demand register test"
PLAN_REGISTERS = {"audit": Audit.REGISTERS, "firmware": FirmwareChecks.REGISTERS}


def plan_of(item: pytest.Item) -> str | None:
    """Which plan an item belongs to, by the fixture that runs it."""
    names = item.fixturenames if isinstance(item, pytest.Function) else ()
    return next((plan for fixture, plan in PLAN_FIXTURES.items() if fixture in names), None)


@dataclass
class Selection:
    """The plans the run selected (accuracy, audit, firmware; deselected items included), and the
    items -k, -m, --lf and --deselect took out of them."""

    plans: set[str] = field(default_factory=set)
    deselected: list[str] = field(default_factory=list)

    def add(self, items: list[pytest.Item]) -> None:
        self.plans.update(plan for plan in map(plan_of, items) if plan)

    def planned(self, run: RunContext) -> set[tuple[str, int]]:
        """Every (point, position) the selected plans hold: what a complete run must have run."""
        ids = {"accuracy": [p.id for p in run.points], "audit": [step.id for step in audit_plan.STEPS],
               "firmware": [step.id for step in firmware_plan.STEPS], "demand": [p.id for p in run.demand.points]}
        return {(point, pos.number) for plan in self.plans for point in ids[plan] for pos in run.profile.positions}

    def scope(self, run: RunContext, ended: str, shouldfail: bool | str = False) -> Scope:
        """The run's status from what ran: ``ended`` is "normally", or why it did not end normally;
        ``shouldfail`` is pytest's reason for failing the session (-x, --maxfail)."""
        planned = self.planned(run)
        not_run = sorted(planned - set(run.tally.reported), key=lambda key: (key[1], key[0]))
        why = [] if ended == "normally" else [ended]
        if shouldfail:
            why.append(str(shouldfail))
        if self.deselected:
            why.append(f"{len(self.deselected)} item(s) deselected (-k, -m, --lf or --deselect)")
        if not_run and not why:  # nothing above explains it: the selection left part of a plan out
            why.append(f"{len(not_run)} of {len(planned)} planned item(s) not selected")
        status = "incomplete" if ended != "normally" else "partial" if why else "complete"
        return Scope(status, len(planned), len(set(run.tally.reported) & planned),
                     tuple(f"{point}@pos{number}" for point, number in not_run), "; ".join(why))


def ending(run: RunContext, exitstatus: int) -> str:
    """"normally", or why the session did not end normally."""
    if run.bench.interrupted:
        return f"interrupted by {run.bench.interrupted}"
    if run.tally.stopped:
        return f"bench stopped: {run.tally.stopped}"
    if run.tally.unsafe:
        return f"safe state not confirmed: {run.tally.unsafe}"
    if exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return f"pytest ended with {pytest.ExitCode(exitstatus).name}"
    return "normally"
