"""A baseline: the stored run a run is compared with, point for point, and what counts as a
regression against it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from bench.records import store


@dataclass(frozen=True)
class Baseline:
    reference: str  # what the user asked for: a run id or a release
    run_id: str
    started_at: str
    entries: dict[tuple[str, str], dict[str, Any]]  # (serial, point) -> that run's result entry

    @property
    def serials(self) -> set[str]:
        return {serial for serial, _ in self.entries}


METER_TYPE_KEYS = ("manufacturer", "model", "form", "accuracy_class")


def comparable(record: dict[str, Any], plan: str, meter_type: dict[str, Any]) -> str:
    """Why a stored run cannot be a baseline for this run ('' when it can): only a complete run of
    the same plan and limits version, on the same meter type, compares point for point."""
    if record["status"] != "complete":
        return f"run {record['run_id'][:8]} is {record['status']}: only a complete run can be a baseline"
    its_plan = f"{record['plan']['name']} {record['plan']['version']}"
    if its_plan != plan:
        return f"run {record['run_id'][:8]} ran '{its_plan}', not '{plan}'"
    theirs = {k: record["meter_type"].get(k) for k in METER_TYPE_KEYS}
    ours = {k: meter_type[k] for k in METER_TYPE_KEYS}
    if theirs != ours:
        return f"run {record['run_id'][:8]} tested {theirs}, not {ours}"
    return ""


def load_baseline(engine: Engine, reference: str, plan: str, meter_type: dict[str, Any]) -> Baseline:
    """A stored run by id (or unique prefix), else the latest comparable run with meters on release
    ``reference``."""
    try:
        record = store.load_run(engine, reference)
    except store.RecordsError:
        record = None
    if record is not None:
        why = comparable(record, plan, meter_type)
        if why:
            raise store.RecordsError(why)
    else:
        query = (select(store.runs.c.run_id).join(store.meter_runs, store.meter_runs.c.run_id == store.runs.c.run_id)
                 .where((store.meter_runs.c.firmware == reference) & (store.runs.c.status == "complete"))
                 .distinct().order_by(store.runs.c.run_id))
        with engine.connect() as conn:
            candidates = [store.load_run(engine, run_id) for run_id in conn.execute(query).scalars()]
        usable = sorted((r for r in candidates if not comparable(r, plan, meter_type)), key=lambda r: r["started_at"])
        if not usable:
            raise store.RecordsError(f"no run and no complete run of '{plan}' on {meter_type['model']} meters with "
                                     f"release '{reference}' in the records")
        record = usable[-1]
    entries = {(m["serial"], e["point"]): e for m in record["meters"] for e in m["results"]}
    return Baseline(reference, record["run_id"], record["started_at"], entries)


def compared_enough(baseline: dict[str, Any]) -> bool:
    """A comparison that covered too few of the run's points (a record's ``baseline``) is no
    regression verdict at all."""
    return baseline["points_compared"] >= baseline["min_overlap"] * baseline["points_run"]


@dataclass(frozen=True)
class Comparison:
    baseline: str  # the baseline's value and verdict, as shown
    change: str
    regression: str  # empty, or why this point regressed


def compare(baseline: Baseline, serial: str, point: str, now: dict[str, Any], margin_pct: float) -> Comparison | None:
    """A point regresses when it newly fails, or its error moved towards its limit by more than
    the margin."""
    then = baseline.entries.get((serial, point))
    if then is None:
        return None
    was, is_ = then["value_pct"], now["value_pct"]
    shown = f"{was:+.4f} % " if was is not None else ""
    change = f"{is_ - was:+.4f} %" if was is not None and is_ is not None else ""
    why = ""
    if then["verdict"] == "PASS" and now["verdict"] != "PASS":
        why = f"newly {now['verdict']} (was PASS in run {baseline.run_id[:8]})"
    elif was is not None and is_ is not None and abs(is_) - abs(was) > margin_pct:
        why = f"moved {abs(is_) - abs(was):.4f} % towards its limit (margin {margin_pct:g} %)"
    return Comparison(f"{shown}{then['verdict']}", change, why)
