"""A run as a record: who, where, with what, against which limits, and every point's evidence.

The record is plain JSON-able data. Its canonical text's SHA-256 fingerprints it for idempotent
publishing, and each meter's slice of it is what that meter's certificate is made from.
"""
from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from bench.metrology.uncertainty import COVERAGE_K, RULE_TEXT, Rule, Verdict, worst
from bench.procedures.results import Measured, PositionResult, Result, ShiftResult
from bench.procedures.runner import Point
from bench.station.bench import Bench
from bench.station.profile import Profile, Signatory


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


# Every other family (the limits table's, and the demand register test's) is on the accuracy certificate.
DOCUMENT_FAMILIES = {"audit": "audit", "firmware": "firmware"}


def document_of(family: str) -> str:
    """Which document a result belongs on: the accuracy certificate, the audit or the firmware report."""
    return DOCUMENT_FAMILIES.get(family, "accuracy")


def certifies(status: str, table_ids: list[str], entries: list[dict[str, Any]]) -> bool:
    """Whether a run certifies a meter: it is complete, every point of the limits table passed, and
    so did every other result on the certificate (a failed demand register withholds it as a failed
    accuracy point does). The audit and the firmware checks have documents and verdicts of their own."""
    on_certificate = [e for e in entries if document_of(e["family"]) == "accuracy"]
    return (status == "complete" and bool(table_ids) and set(table_ids) <= {e["point"] for e in on_certificate}
            and all(e["verdict"] == "PASS" for e in on_certificate))


# Why a meter is on the bench. The first three open a test episode (the meter as found); a run after
# adjustment continues the episode it follows (the meter as left).
TEST_REASONS = ("acceptance", "in-service", "complaint", "after-adjustment")
DEFAULT_TEST_REASON = "acceptance"  # the main job certifies new meters: recorded as the default, not as stated
AFTER_ADJUSTMENT = "after-adjustment"


def reason_entry(stated: str | None) -> dict[str, Any]:
    """The record's test reason: as the operator stated it, or the default, saying which it is."""
    if stated is None:
        return {"reason": DEFAULT_TEST_REASON, "stated": False}
    if stated not in TEST_REASONS:
        raise ValueError(f"test reason '{stated}': one of {', '.join(TEST_REASONS)}")
    return {"reason": stated, "stated": True}


def reason_text(reason: dict[str, Any]) -> str:
    """A test reason as people read it: "complaint", or "acceptance (default)" when none was stated."""
    return reason["reason"] if reason["stated"] else f"{reason['reason']} (default)"


@dataclass(frozen=True)
class PlanInfo:
    """What a record says about the limits a run was judged against (the table itself stays a plan's)."""

    name: str
    version: str
    standard: str
    source: str
    provenance: str
    reference_conditions: dict[str, Any]
    weighted_average: dict[str, Any] | None = None  # name, weights by point id, provenance


class RunRecorder:
    """Collects a session into a record; ``record()`` may be called at any time (a run that is
    published before it finishes says so: status "incomplete")."""

    def __init__(self, profile: Profile, plan: PlanInfo, rule: Rule, operator: str, approved_by: Signatory,
                 calibration_override: str | None, test_reason: str | None = None) -> None:
        self.profile, self.plan, self.rule = profile, plan, rule
        self.operator, self.approved_by, self.calibration_override = operator, approved_by, calibration_override
        self.test_reason = reason_entry(test_reason)  # a wrong one is refused here, before anything is measured
        self.run_id = str(uuid.uuid4())
        self.started_at = now_iso()

    def record(self, bench: Bench, reported: dict[tuple[str, int], tuple[str, Result]],
               faults: dict[str, list[str]], plan_points: list[Point], scope: Scope,
               made: Mapping[tuple[str, int], dict[str, Any]] | None = None) -> dict[str, Any]:
        """The run as its items reported it: each point's entry is exactly the result its item
        concluded with (and the faults that made the bench measure it again); ``made``: entries
        already made of them, (point id, position) -> entry, used as they are."""
        p = self.profile
        table_ids = [pt.id for pt in plan_points]
        by_position: dict[int, list[tuple[str, str, Result]]] = {}  # one pass, not one per position
        for (point_id, number), (family, result) in reported.items():
            by_position.setdefault(number, []).append((point_id, family, result))
        meters = []
        for pos in p.positions:
            identity = bench.identities[pos.number]
            reported_here = by_position.get(pos.number, [])
            entries = [(made or {}).get((point_id, pos.number)) or entry(point_id, family, result,
                                                                         faults.get(point_id, []))
                       for point_id, family, result in reported_here]
            verdicts = {document: meter_verdict({e["verdict"] for e in entries
                                                 if document_of(e["family"]) == document})
                        for document in ("accuracy", "audit", "firmware")}
            mine = {point_id: result for point_id, _, result in reported_here}
            meters.append({
                "position": pos.number, "serial": identity.serial, "mac": identity.mac,
                "firmware": identity.firmware,
                "verdict": meter_verdict({e["verdict"] for e in entries}),
                "verdicts": verdicts,
                "certified": certifies(scope.status, table_ids, entries),
                "certificate": None,
                "weighted_average": weighted_average(self.plan.weighted_average, mine),
                "results": entries,
            })
        return {
            "run_id": self.run_id,
            "started_at": self.started_at,
            "ended_at": now_iso() if scope.status != "incomplete" else None,
            "status": scope.status,
            "scope": scope.to_dict(),
            "bench": {"id": p.bench_id, "profile": p.source_file, "profile_sha256": p.digest,
                      "bench_time_s": round(bench.now(), 3)},
            "plan": {"name": self.plan.name, "version": self.plan.version, "standard": self.plan.standard,
                     "source": self.plan.source, "provenance": self.plan.provenance, "points": table_ids,
                     "reference_conditions": self.plan.reference_conditions,
                     "weighted_average": self.plan.weighted_average},
            "decision_rule": {"rule": self.rule.value, "text": RULE_TEXT[self.rule]},
            "test_reason": self.test_reason,
            "operator": self.operator,
            "approved_by": {"name": self.approved_by.name, "title": self.approved_by.title},
            "lab": p.lab.to_dict(),
            "calibration_override": self.calibration_override,
            "instruments": _instruments(bench),
            # what every gated result's budget was computed from; the constants each result was gated
            # with are in its own evidence ("constants"), the reference's also in instruments
            "bench_spec": {**asdict(bench.spec), "coverage_k": COVERAGE_K},
            "meter_type": {**{k: v for k, v in p.meter_type.__dict__.items() if k not in ("registers", "test_mode")},
                           "test_mode": p.meter_type.test_mode.to_dict() if p.meter_type.test_mode else None},
            # whether the meters' test mode was used (each result names the Kt it counted with) and
            # whether every meter was seen back in normal mode
            "test_mode": bench.test_mode.to_dict(),
            "meters": meters,
        }


@dataclass(frozen=True)
class Scope:
    """What a run covered, as a fact: ``complete`` only when every item of the selected plans ran
    to a verdict; ``partial`` when a normal end left items out (-k, -x, --lf, deselection);
    ``incomplete`` when it was interrupted, stopped or crashed."""
    status: str
    planned: int
    ran: int
    not_run: tuple[str, ...]
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {"planned": self.planned, "ran": self.ran, "not_run": list(self.not_run), "why": self.why}


def meter_verdict(verdicts: set[str]) -> str:
    """A meter's (or one of its documents') overall verdict from its points', as the record spells
    verdicts: the ``worst`` of them, and "NO RESULTS" when it has none."""
    if not verdicts:
        return "NO RESULTS"
    return worst(Verdict(v) for v in verdicts).value


def entry(point_id: str, family: str, result: Result, faults: list[str] | None = None) -> dict[str, Any]:
    evidence = result.to_dict()
    cells = evidence["cells"]  # the evidence holds the result's cells: made once
    return {"point": point_id, "family": family, "name": cells["Point"], "verdict": result.verdict.value,
            "value_pct": result.value_pct, "u_pct": result.u_pct, "cells": cells, "evidence": evidence,
            "discarded_attempts": list(faults or [])}


def _instruments(bench: Bench) -> list[dict[str, Any]]:
    """Every role that contributed to a result, with its identity and calibration."""
    p = bench.profile
    calibrations = p.calibrations()
    found = []
    for role, instrument in (("source", bench.source), ("load", bench.load), ("reference", bench.reference),
                             ("counter", bench.counter), ("environment", bench.thermometer)):
        if instrument is None:
            continue
        idn = instrument.idn.split(",")
        entry = {"role": role, "idn": instrument.idn, "address": instrument.address,
                 "serial": idn[2].strip() if len(idn) == 4 else "", "calibration": calibrations[role].to_dict()}
        if role == "reference":
            entry.update(serial=p.reference.serial, uncertainty=p.reference.calibration.uncertainty.describe(),
                         pulse_constant_wh=bench.spec.reference_constant_wh)
        found.append(entry)
    return found


def meter_slice(record: dict[str, Any], serial: str) -> dict[str, Any]:
    """What one meter's certificate is made from: the run's context and that meter's results."""
    meter = next(m for m in record["meters"] if m["serial"] == serial)
    return {**{k: v for k, v in record.items() if k != "meters"}, "meter": meter}


REFERENCE_TERM = "reference standard"  # the budget component of the reference's certified U (uncertainty.py)
WAR_METHOD = ("percent registration = 100 % + error; the points' errors averaged with the table's weights. "
              "U (k=2): the reference standard's term taken as fully correlated between the points (one "
              "instrument, one calibration: its weighted terms add linearly, the larger and safe choice), "
              "every other term as uncorrelated (each point's own dwell and source setting: in quadrature)")


def weighted_average(asked: dict[str, Any] | None, results: dict[str, Result]) -> dict[str, Any] | None:
    """A meter's weighted average registration (e.g. 04 NCAC 11 R08-11: (4 FL + LL) / 5) where the
    limits table asks for one, with its expanded uncertainty; None when it does not. A point with
    no measured error leaves it uncomputed, and the record says which. It is reported, not judged."""
    if asked is None:
        return None
    weights: dict[str, float] = asked["weights"]
    found = {point: _error_of(results.get(point)) for point in weights}
    missing = [point for point, measured in found.items() if measured is None]
    points = {point: _point_of(weight, found[point]) for point, weight in weights.items()}
    total = sum(weights.values())
    formula = " + ".join(f"{weight:g} × {point}" if weight != 1 else point for point, weight in weights.items())
    war: dict[str, Any] = {"name": asked["name"], "weights": dict(weights), "provenance": asked["provenance"],
                           "formula": f"({formula}) / {total:g}", "method": WAR_METHOD, "points": points,
                           "registration_pct": None, "error_pct": None, "u_pct": None, "not_computed": ""}
    if total <= 0:
        war["not_computed"] = "the table gives no positive weights"
        return war
    if missing:
        verb = "has" if len(missing) == 1 else "have"
        war["not_computed"] = f"{', '.join(missing)} {verb} no measured error on this run"
        return war
    measured = {point: m for point, m in found.items() if m is not None}
    error = sum(weight * measured[point].error_pct for point, weight in weights.items()) / total
    systematic = sum(weight * _term(measured[point], REFERENCE_TERM) for point, weight in weights.items()) / total
    random = sum((weight / total) ** 2 * sum(c.u_pct ** 2 for c in measured[point].budget.components
                                             if c.name != REFERENCE_TERM)
                 for point, weight in weights.items())
    war.update(registration_pct=100.0 + error, error_pct=error,
               u_pct=COVERAGE_K * math.sqrt(systematic ** 2 + random))
    return war


def _point_of(weight: float, measured: Measured | None) -> dict[str, Any]:
    return {"weight": weight, "error_pct": measured.error_pct if measured else None,
            "u_pct": measured.expanded_pct if measured else None}


def _error_of(result: Result | None) -> Measured | None:
    """A point's measured error (of a shift point: the error there, not the shift)."""
    if isinstance(result, ShiftResult):
        return result.measured.pulses
    return result.pulses if isinstance(result, PositionResult) else None


def _term(measured: Measured, name: str) -> float:
    return next((c.u_pct for c in measured.budget.components if c.name == name), 0.0)


@dataclass(frozen=True)
class Standing:
    """Where a run stands in a meter's history: its test episode and what it is in it."""

    episode: int | None  # None: a partial or incomplete run, in no episode
    label: str  # "as found", "as left", "as found, as left" or ""


def as_found_as_left(runs: list[dict[str, Any]]) -> list[Standing]:
    """A meter's runs (oldest first, each with its "status" and "test_reason") as test episodes.

    Only complete runs count: a partial or incomplete run states nothing about the meter and is in
    no episode. A complete acceptance, in-service or complaint run opens an episode and is its
    "as found" (the meter as it came to the bench); each complete after-adjustment run that follows
    belongs to that episode, and the episode's last complete run is its "as left" (the meter as it
    left: the opening run itself when it was not adjusted). A later acceptance, in-service or
    complaint run opens a new episode even with the same reason: the lab did not state that the
    meter was touched, so it is again the meter as found. A complete after-adjustment run with no
    episode open (no as-found run on record) opens one that has an "as left" only.
    """
    episodes: list[int | None] = []
    current = 0
    for run in runs:
        if run["status"] != "complete":
            episodes.append(None)
            continue
        if run["test_reason"] != AFTER_ADJUSTMENT or current == 0:
            current += 1
        episodes.append(current)
    labels = [""] * len(runs)
    for episode in range(1, current + 1):
        members = [i for i, e in enumerate(episodes) if e == episode]
        first, last = members[0], members[-1]
        found = runs[first]["test_reason"] != AFTER_ADJUSTMENT
        if found:
            labels[first] = "as found"
        labels[last] = "as found, as left" if found and first == last else "as left"
    return [Standing(e, label) for e, label in zip(episodes, labels)]
