"""What a run has once its bench is open (``BenchSession.open``), complete and fixed for the run,
and the one mutable part of it: what the run has done so far."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from bench.metrology.uncertainty import Rule
from bench.plans.audit import Audit
from bench.plans.demand import DemandChecks
from bench.plans.firmware import FirmwareChecks
from bench.plans.limits import LimitTable
from bench.procedures.runner import Certification, Point, Result
from bench.pytest_plugin.baseline_check import BaselineCheck
from bench.pytest_plugin.operator_view import OperatorView
from bench.records.record import RunRecorder
from bench.records.signing import Signer
from bench.station.bench import Bench
from bench.station.profile import Profile


@dataclass
class Tally:
    """What the run has done so far; the items, the safety checks and the session's end write it."""

    # (point id, position number) -> (family, result): every item concluded, in the order they ran
    reported: dict[tuple[str, int], tuple[str, Result]] = field(default_factory=dict)
    compared: int = 0  # points compared with the baseline
    regressions: list[dict[str, str]] = field(default_factory=list)
    stopped: str = ""  # why the session stopped early (safety, a lost link)
    unsafe: str = ""  # safe state could not be confirmed: said once, never certified
    final_record: dict[str, Any] | None = None  # the record published when the session ended
    # (point id, position number, result entry): concluded items not yet in the records database
    unstored: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    # (point id, position number) -> the entry the item was stored with: the record's, made once
    entries: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    # (position number, point id) -> the stored entry's canonical JSON (its results row's evidence),
    # made once, when it was stored; dropped when the point concludes again with a new entry
    evidence: dict[tuple[int, str], str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunContext:
    """The open bench and everything a run judges, records and signs with."""

    profile: Profile
    table: LimitTable
    points: list[Point]  # the table's points for this meter type
    rule: Rule  # the decision rule in force: the option's, else the table's
    bench: Bench
    clock_start: float  # bench time when the bench opened
    certification: Certification
    audit: Audit
    firmware: FirmwareChecks
    demand: DemandChecks  # the demand register test's points, on the board
    baseline: BaselineCheck
    records: Engine
    records_url: str
    reports_dir: Path
    recorder: RunRecorder
    signer: Signer
    tally: Tally
    view: OperatorView  # the run's events: the panel, the event log
    lacking: dict[str, str | None] = field(default_factory=dict)  # point id -> why the bench cannot run it
