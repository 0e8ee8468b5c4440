"""A lot's verdict from its sample meters' runs in the records.

Which result counts for a sample meter: the first complete run it took part in after the draw
(that holds the plan's points, on the lot's meter type). Later runs are listed, never substituted:
re-testing a sample meter until it passes would sentence the lot on a chosen sample. Partial and
incomplete runs never count. A verdict is refused, naming the meters, while any sample meter lacks
such a run, or (variables) a value the statistic needs: an unmeasured point, a point measured
outside reference conditions, or limits that differ between meters.

Variables plans: per quantity, x-bar and s of the sample's values, Q_U = (U - x-bar)/s and
Q_L = (x-bar - L)/s, judged by the plan's form: Form 2 (M) when the quantity has two limits (the
tolerance a registration error is tested to), Form 1 (k) for one. The lot is accepted when every
quantity is. Attributes plans: d = sample meters the counted run did not certify, against Ac/Re.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from bench.lots.ledger import Lot, LotError
from bench.lots.statistics import judge
from bench.lots.switching import Outcome
from bench.records.record import document_of
from bench.records.store import meter_runs, results, runs

ACCEPTED, REJECTED = "ACCEPTED", "REJECTED"


@dataclass
class SampleMeter:
    """What the records hold for one sample meter since the draw."""

    serial: str
    order: int
    run_id: str | None = None  # the counted run
    run_started_at: str | None = None
    run_plan: str | None = None
    certified: bool | None = None
    values: dict[str, dict[str, Any]] = field(default_factory=dict)  # point -> value_pct, u_pct, limit_pct, verdict
    other_runs: list[dict[str, str]] = field(default_factory=list)  # run_id, status, started_at
    problem: str = ""  # why this meter cannot count (empty when it can)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _point_value(evidence: dict[str, Any]) -> dict[str, Any]:
    inner = evidence.get("evidence") or {}
    limit = inner.get("limit_pct")
    return {"value_pct": evidence.get("value_pct"), "u_pct": evidence.get("u_pct"),
            "limit_pct": limit, "verdict": evidence.get("verdict"), "counted": inner.get("counted", True)}


def sample_meters(engine: Engine, lot: Lot) -> list[SampleMeter]:
    """Every sample meter with its counted run (or why it has none)."""
    if lot.draw is None:
        raise LotError(f"lot {lot.lot_id} has no sample yet: draw it first (`bench lot draw {lot.lot_id} --plan ...`)")
    draw = lot.draw
    points = [q["point"] for q in draw["plan"]["quantities"]]
    variables = draw["plan"]["kind"] == "variables"
    found = []
    with engine.connect() as conn:
        for order, serial in enumerate(draw["sample"], start=1):
            meter = SampleMeter(serial, order)
            rows = conn.execute(
                select(runs.c.run_id, runs.c.started_at, runs.c.status, runs.c.plan, runs.c.record,
                       meter_runs.c.position, meter_runs.c.certified)
                .join(meter_runs, meter_runs.c.run_id == runs.c.run_id)
                .where((meter_runs.c.serial == serial) & (runs.c.started_at >= draw["drawn_at"]))
                .order_by(runs.c.started_at, runs.c.run_id)).all()
            reasons = []
            for row in rows:
                if meter.run_id is not None or row.status != "complete":
                    meter.other_runs.append({"run_id": row.run_id, "status": row.status, "started_at": row.started_at})
                    if meter.run_id is not None and row.status == "complete" and row.started_at == meter.run_started_at:
                        meter.problem = (f"two complete runs started at {row.started_at} ({meter.run_id[:8]}, "
                                         f"{row.run_id[:8]}): which came first is unknown")
                    continue
                held = conn.execute(select(results.c.point_id, results.c.family, results.c.evidence)
                                    .where((results.c.run_id == row.run_id)
                                           & (results.c.position == row.position))).all()
                meter_type = json.loads(row.record).get("meter_type", {})
                why = _why_not_counted(lot, meter_type, held, points, variables)
                if why:
                    reasons.append(f"run {row.run_id[:8]} {why}")
                    meter.other_runs.append({"run_id": row.run_id, "status": row.status, "started_at": row.started_at})
                    continue
                meter.run_id, meter.run_started_at, meter.run_plan = row.run_id, row.started_at, row.plan
                meter.certified = bool(row.certified)
                by_point = {r.point_id: json.loads(r.evidence) for r in held}
                meter.values = {point: _point_value(by_point[point]) for point in points}
            if meter.run_id is None:
                meter.problem = "no complete run since the draw" + (f" ({'; '.join(reasons)})" if reasons else "")
            elif variables and not meter.problem:
                meter.problem = "; ".join(_unusable(meter, point) for point in points if _unusable(meter, point))
            found.append(meter)
    return found


def _why_not_counted(lot: Lot, meter_type: dict[str, Any], held: Sequence[Any], points: list[str],
                     variables: bool) -> str:
    mt = lot.meter_type
    if (meter_type.get("manufacturer"), meter_type.get("model")) != (mt.manufacturer, mt.model):
        return (f"is of meter type {meter_type.get('manufacturer')} {meter_type.get('model')}, "
                f"not the lot's {mt.manufacturer} {mt.model}")
    if variables:
        missing = [p for p in points if p not in {r.point_id for r in held}]
        return f"did not measure {', '.join(missing)}" if missing else ""
    if not any(document_of(r.family) == "accuracy" for r in held):
        return "ran no accuracy point on it"
    return ""


def _unusable(meter: SampleMeter, point: str) -> str:
    value = meter.values[point]
    where = f"{point} in run {meter.run_id[:8] if meter.run_id else '?'}"
    if value["value_pct"] is None:
        return f"{where} has no measured value ({value['verdict']})"
    if not value["counted"]:
        return f"{where} was measured outside reference conditions"
    return ""


def refusal(lot: Lot, meters: list[SampleMeter]) -> str | None:
    """One line naming every sample meter that keeps the statistic from being computed."""
    missing = [m.serial for m in meters if m.run_id is None]
    unusable = [f"{m.serial} ({m.problem})" for m in meters if m.run_id is not None and m.problem]
    parts = []
    if missing:
        parts.append(f"{len(missing)} of {len(meters)} sample meters have no complete run since the draw "
                     f"({lot.drawn_at}): {', '.join(missing)}")
    if unusable:
        parts.append(f"{len(unusable)} cannot be counted: {'; '.join(unusable)}")
    if not parts:
        return None
    return f"lot {lot.lot_id}: verdict refused: " + "; ".join(parts)


def _limits(quantity: dict[str, Any], meters: list[SampleMeter]) -> tuple[float | None, float | None, str]:
    """The quantity's spec limits: stated by the plan, or the tolerance recorded with the results,
    which must be one tolerance for the whole sample."""
    side, point = quantity["side"], quantity["point"]
    if quantity["lower_pct"] is not None or quantity["upper_pct"] is not None:
        return quantity["lower_pct"], quantity["upper_pct"], "stated by the plan"
    tolerances = {m.values[point]["limit_pct"] for m in meters}
    if len(tolerances) != 1 or None in tolerances:
        shown = ", ".join(sorted({f"{t:g}" if t is not None else "none" for t in tolerances}))
        raise LotError(f"verdict refused: the sample's {point} results were judged against different limits "
                       f"(±{shown} %): one lot is judged against one tolerance")
    tolerance = float(tolerances.pop())
    lower = -tolerance if side in ("both", "lower") else None
    upper = tolerance if side in ("both", "upper") else None
    return lower, upper, f"the tolerance recorded with each result (±{tolerance:g} %)"


def judge_lot(lot: Lot, meters: list[SampleMeter]) -> tuple[dict[str, Any], Outcome]:
    """The lot record (everything the report shows) and the outcome the switching rules take."""
    why = refusal(lot, meters)
    if why:
        raise LotError(why)
    draw = lot.draw
    assert draw is not None
    cell = draw["cell"]
    record: dict[str, Any] = {"lot": lot.summary(), "draw": draw,
                              "sample": [{**m.to_dict(), "manufacturer": lot.manufacturer_data.get(m.serial, {})}
                                         for m in meters],
                              "severity": {"drawn_under": draw["severity"]}}
    if draw["plan"]["kind"] == "variables":
        statistics = []
        for quantity in draw["plan"]["quantities"]:
            lower, upper, source = _limits(quantity, meters)
            values = [float(m.values[quantity["point"]]["value_pct"]) for m in meters]
            result = judge(values, lower, upper, draw["plan"]["form"], cell["k"], cell["m_pct"])
            statistics.append({"point": quantity["point"], "limits_from": source, **result.__dict__,
                               "p_pct": result.p_pct, "reason": result.reason(),
                               "beyond_limits": [m.serial for m, v in zip(meters, values)
                                                 if (lower is not None and v < lower)
                                                 or (upper is not None and v > upper)]})
        accepted = all(s["accepted"] for s in statistics)
        record["statistics"] = statistics
        failed = [f"{s['point']}: {s['reason']}" for s in statistics if not s["accepted"]]
        record["reason"] = "; ".join(failed) if failed else "; ".join(f"{s['point']}: {s['reason']}"
                                                                      for s in statistics)
        outcome = Outcome(accepted)
    else:
        nonconforming = [m.serial for m in meters if not m.certified]
        d, ac, re_ = len(nonconforming), cell["ac"], cell["re"]
        accepted = d <= ac or d < re_
        record["attributes"] = {"n": len(meters), "nonconforming": nonconforming, "d": d, "ac": ac, "re": re_}
        record["reason"] = (f"d = {d} nonconforming " + (f"<= Ac = {ac}" if d <= ac else f">= Re = {re_}" if d >= re_
                                                          else f"between Ac = {ac} and Re = {re_}: accepted, "
                                                               f"normal inspection returns"))
        outcome = Outcome(accepted, back_to_normal=ac < d < re_)
    record["decision"] = ACCEPTED if accepted else REJECTED
    return record, outcome
