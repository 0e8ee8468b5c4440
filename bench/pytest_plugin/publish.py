"""The run's record: published when the bench opens (incomplete until the run ends normally) and
again when the session ends, with certificate numbers for a complete run; then its signed JSON
and, for a complete run, its signed documents. Each publish makes the record's canonical text once:
the database stores it, the signature covers it and the signed file holds it."""
from __future__ import annotations

from typing import Any

from bench.pytest_plugin.context import RunContext
from bench.records import store
from bench.records.canonical_text import CanonicalText
from bench.records.documents import write_documents
from bench.records.record import Scope
from bench.records.signing import write_signed_record
from bench.records.store import CanonicalRecord


def publish(run: RunContext, scope: Scope) -> CanonicalRecord:
    """The run's record, stored, with its canonical text (for ``write_signed``); its results rows
    stored as their points concluded are kept, not written again."""
    tally = run.tally
    record = run.recorder.record(run.bench, tally.reported, run.certification.faults, run.points, scope,
                                 tally.entries)
    record.update(run.baseline.describe(len(tally.reported), tally.compared, tally.regressions))
    if scope.status == "complete":
        _number_certificates(run, record)
    parts = CanonicalText()
    for (position, point_id), text in tally.evidence.items():  # the texts its results rows were stored with
        if (point_id, position) in tally.entries:
            parts.remember(tally.entries[(point_id, position)], text)
    made = CanonicalRecord.of(record, parts)
    store.publish(run.records, made, tally.evidence)
    return made


def _number_certificates(run: RunContext, record: dict[str, Any]) -> None:
    """A complete run's meters with accuracy results get certificate numbers from the lab's sequence."""
    lab, issued = run.profile.lab, record["ended_at"][:10]
    serials = [m["serial"] for m in record["meters"] if m["verdicts"]["accuracy"] != "NO RESULTS"]
    numbers = store.issue_certificates(run.records, record["run_id"], serials, issued,
                                       lambda seq, serial: lab.certificate_number_for(seq, int(issued[:4]), serial,
                                                                                      record["run_id"]))
    for meter in record["meters"]:
        if meter["serial"] in numbers:
            meter["certificate"] = {"number": numbers[meter["serial"]], "issued": issued}


def write_signed(run: RunContext, made: CanonicalRecord) -> None:
    """The record as signed JSON in the reports directory; a complete run's documents beside it."""
    run.reports_dir.mkdir(parents=True, exist_ok=True)
    write_signed_record(made, run.signer, run.reports_dir)
    if made.record["status"] == "complete":
        write_documents(made.record, run.reports_dir, run.signer, run.profile.lab.template, made.parts.text)
