"""A run as a record: who, where, with what, against which limits, and every point's evidence.

The record is plain JSON-able data. Its canonical text's SHA-256 fingerprints it for idempotent
publishing, and each meter's slice of it is what that meter's certificate is made from.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from bench.metrology.forms import forms
from bench.metrology.uncertainty import RULE_TEXT, Rule, Verdict, worst
from bench.procedures.results import Result
from bench.procedures.runner import Point
from bench.records.store import canonical_json
from bench.station.bench import Bench
from bench.station.profile import Profile, Signatory


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def fingerprint(data: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


DOCUMENT_FAMILIES = {"audit": "audit", "firmware": "firmware"}  # every other family is the accuracy plan


def document_of(family: str) -> str:
    """Which document a result belongs on: the accuracy certificate, the audit or the firmware report."""
    return DOCUMENT_FAMILIES.get(family, "accuracy")


@dataclass(frozen=True)
class PlanInfo:
    """What a record says about the limits a run was judged against (the table itself stays a plan's)."""

    name: str
    version: str
    standard: str
    source: str
    provenance: str
    reference_conditions: dict[str, Any]


class RunRecorder:
    """Collects a session into a record; ``record()`` may be called at any time (a run that is
    published before it finishes says so: status "incomplete")."""

    def __init__(self, profile: Profile, plan: PlanInfo, rule: Rule, operator: str, approved_by: Signatory,
                 calibration_override: str | None) -> None:
        self.profile, self.plan, self.rule = profile, plan, rule
        self.operator, self.approved_by, self.calibration_override = operator, approved_by, calibration_override
        self.run_id = str(uuid.uuid4())
        self.started_at = now_iso()

    def record(self, bench: Bench, reported: dict[tuple[str, int], tuple[str, Result]],
               faults: dict[str, list[str]], plan_points: list[Point], scope: Scope) -> dict[str, Any]:
        """The run as its items reported it: each point's entry is exactly the result its item
        concluded with (and the faults that made the bench measure it again)."""
        p = self.profile
        table_ids = [pt.id for pt in plan_points]
        blondel = forms()[p.meter_type.form].blondel
        meters = []
        for pos in p.positions:
            identity = bench.identities[pos.number]
            entries = [entry(point_id, family, result, faults.get(point_id, []))
                       for (point_id, number), (family, result) in reported.items() if number == pos.number]
            verdicts = {document: meter_verdict({e["verdict"] for e in entries
                                                 if document_of(e["family"]) == document})
                        for document in ("accuracy", "audit", "firmware")}
            passed = {e["point"] for e in entries if e["verdict"] == "PASS"}
            meters.append({
                "position": pos.number, "serial": identity.serial, "mac": identity.mac,
                "firmware": identity.firmware,
                "verdict": meter_verdict({e["verdict"] for e in entries}),
                "verdicts": verdicts,
                "certified": bool(scope.status == "complete" and blondel and table_ids and set(table_ids) <= passed),
                "certificate": None,
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
                     "reference_conditions": self.plan.reference_conditions},
            "decision_rule": {"rule": self.rule.value, "text": RULE_TEXT[self.rule]},
            "operator": self.operator,
            "approved_by": {"name": self.approved_by.name, "title": self.approved_by.title},
            "lab": p.lab.to_dict(),
            "calibration_override": self.calibration_override,
            "instruments": _instruments(bench),
            "meter_type": {k: v for k, v in p.meter_type.__dict__.items() if k != "registers"},
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
    cells = result.cells()
    return {"point": point_id, "family": family, "name": cells["Point"], "verdict": result.verdict.value,
            "value_pct": result.value_pct, "u_pct": result.u_pct, "cells": cells, "evidence": result.to_dict(),
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
            entry.update(serial=p.reference.serial, uncertainty=p.reference.calibration.uncertainty.describe())
        found.append(entry)
    return found


def meter_slice(record: dict[str, Any], serial: str) -> dict[str, Any]:
    """What one meter's certificate is made from: the run's context and that meter's results."""
    meter = next(m for m in record["meters"] if m["serial"] == serial)
    return {**{k: v for k, v in record.items() if k != "meters"}, "meter": meter}
