"""The record's one text: made once per publish, it is what the records database stores, what the
Ed25519 signature covers and what the signed JSON file holds, and it is exactly the text a reader
recomputes from that file; the results rows stored as their points concluded are kept by the
publish at the end, not made or written again, and a result that changed is replaced."""
from __future__ import annotations

import base64
import datetime as dt
import enum
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Engine

from bench.metrology.uncertainty import Verdict
from bench.records import store
from bench.records.signing import Signer, check_file, init_key, write_signed_record
from bench.records.store import CanonicalRecord, canonical_json
from tests.helpers import REPO


class Phase(enum.Enum):  # an enum JSON cannot encode: canonical_json spells it with str()
    ONE = 1


def record_with(results: list[dict[str, Any]], status: str = "complete", **extra: Any) -> dict[str, Any]:
    """A run record with what the store keys on: two meters, each with copies of ``results``."""
    meters = [{"position": n, "serial": f"TXT{n:05d}", "firmware": "4.3.0", "mac": f"02:00:00:00:00:{n:02x}",
               "verdict": "PASS", "certified": status == "complete",
               "results": [dict(r) for r in results]} for n in (1, 2)]
    return {"run_id": "7e57d0c5-0000-4000-8000-000000000001", "started_at": "2026-05-01T09:30:00+00:00",
            "ended_at": "2026-05-01T10:30:00+00:00" if status != "incomplete" else None, "status": status,
            "bench": {"id": "LAB-1", "profile_sha256": "0" * 64}, "plan": {"name": "C12.20", "version": "2015"},
            "decision_rule": {"rule": "simple"}, "operator": "tech", "meters": meters, **extra}


def result(point: str, value: float) -> dict[str, Any]:
    return {"point": point, "family": "load_performance", "name": f"{point} ± 0.2 %", "verdict": "PASS",
            "value_pct": value, "u_pct": 0.012, "cells": {"Point": point}, "evidence": {"pulses": [10, 11]},
            "discarded_attempts": []}


POINTS = ["FL-PF1", "LL-PF1", "FL-PF05", "KH"]


def reader_text(file_bytes: bytes) -> str:
    """What a reader who parses the signed file recomputes: the text its signature must cover."""
    return canonical_json(json.loads(file_bytes)["record"])


# --- the text itself --------------------------------------------------------------------------------

ODD_RECORDS = {
    "plain JSON": {"run_id": "a", "value": 0.1, "names": ["µ", "±"]},
    "dates, enums, tuples": {"run_id": "b", "at": dt.datetime(2026, 5, 1, 9, 30), "day": dt.date(2026, 5, 1),
                             "verdict": Verdict.PASS, "phase": Phase.ONE, "by_pf": (0.5, 1.0), "path": Path("x")},
    "integer keys": {"run_id": "c", "harmonics": {9: 0.1, 10: 0.2, 3: 0.3}},  # as JSON, "10" sorts before "3"
    "float and bool keys": {"run_id": "d", "nested": [{0.5: "a", 10.0: "b", 2.0: "c"}, {True: 1, False: 0}]},
}


@pytest.mark.parametrize("record", ODD_RECORDS.values(), ids=ODD_RECORDS.keys())
def test_a_records_text_is_the_one_a_reader_recomputes(record: dict[str, Any]) -> None:
    made = CanonicalRecord.of(record)
    assert made.text == canonical_json(json.loads(made.text))  # what the reader of the written record computes
    assert made.utf8 == made.text.encode("utf-8") and made.sha256 == hashlib.sha256(made.utf8).hexdigest()
    assert made.record is record


def test_a_record_with_integer_keys_gets_the_text_of_its_json_form() -> None:
    """Where keys that are not strings would sort otherwise once JSON made them strings, the text
    straight from the record would not verify: the text is the JSON form's."""
    record = ODD_RECORDS["integer keys"]
    assert canonical_json(record) != canonical_json(json.loads(canonical_json(record)))  # the case is real
    assert CanonicalRecord.of(record).text == canonical_json(json.loads(canonical_json(record)))
    assert '"harmonics":{"10":0.2,"3":0.3,"9":0.1}' in CanonicalRecord.of(record).text


@pytest.fixture
def lab(tmp_path: Path) -> Signer:
    return init_key(tmp_path / "keys" / "lab.key")


@pytest.mark.parametrize("record", ODD_RECORDS.values(), ids=ODD_RECORDS.keys())
def test_the_signed_file_holds_the_signed_text_and_verifies(record: dict[str, Any], lab: Signer,
                                                            tmp_path: Path) -> None:
    made = CanonicalRecord.of(record)
    path = write_signed_record(made, lab, tmp_path)
    written = path.read_bytes()
    assert path.name == f"run-{record['run_id']}.json"
    assert written.startswith(b'{"record":' + made.utf8 + b',"signature":')  # the very bytes, not made again
    assert reader_text(written) == made.text
    signature = json.loads(written)["signature"]
    Ed25519PublicKey.from_public_bytes(base64.b64decode(signature["public_key"])).verify(
        base64.b64decode(signature["value"]), reader_text(written).encode("utf-8"))
    assert signature["fingerprint"] == lab.fingerprint and check_file(path, {lab.fingerprint}).status == "valid"
    tampered = tmp_path / "tampered.json"
    tampered.write_bytes(written.replace(b'"run_id":"', b'"run_id":"x', 1))
    check = check_file(tampered, {lab.fingerprint})
    assert check.status == "invalid" and "does not match the content" in check.message


# --- the database -----------------------------------------------------------------------------------

class Statements:
    """The rows each INSERT and DELETE on the results table sent, as the database got them."""

    def __init__(self, engine: Engine) -> None:
        self.inserted: list[tuple[int, str]] = []
        self.deletes = 0
        event.listen(engine, "before_cursor_execute", self.keep)

    def keep(self, conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001 - SQLAlchemy's
        words = statement.split()
        if words[:3] == ["INSERT", "INTO", "results"]:
            rows = parameters if executemany else [parameters]
            self.inserted += [(r["position"], r["point_id"]) if isinstance(r, dict) else (r[1], r[2]) for r in rows]
        elif words[:3] == ["DELETE", "FROM", "results"]:
            self.deletes += 1

    def clear(self) -> None:
        self.inserted, self.deletes = [], 0


def stored(engine: Engine, run_id: str) -> tuple[str, str, dict[tuple[int, str], str]]:
    """The runs row's fingerprint and text, and every results row's evidence."""
    with engine.connect() as conn:
        sha, text = conn.execute(select(store.runs.c.record_sha256, store.runs.c.record)
                                 .where(store.runs.c.run_id == run_id)).one()
        rows = conn.execute(select(store.results.c.position, store.results.c.point_id, store.results.c.evidence)
                            .where(store.results.c.run_id == run_id)).all()
    return sha, text, {(position, point): evidence for position, point, evidence in rows}


def results_of(record: dict[str, Any]) -> dict[tuple[int, str], str]:
    return {(m["position"], r["point"]): canonical_json(r) for m in record["meters"] for r in m["results"]}


def check_publishing(engine: Engine) -> None:
    """As a run publishes: incomplete when the bench opens, each point's results as it concludes,
    then the whole record; then a result changed and one gone, and a record into a database that
    has none of its rows (as ``bench report`` from another database, or a record from a file)."""
    sent = Statements(engine)
    results = [result(point, 0.01 * n) for n, point in enumerate(POINTS)]
    opened = CanonicalRecord.of(record_with([], status="incomplete"))
    assert store.publish(engine, opened).changed
    assert stored(engine, opened.record["run_id"]) == (opened.sha256, opened.text, {})
    final = record_with(results)
    evidence: dict[tuple[int, str], str] = {}
    for point in POINTS:  # each point for the whole board, as it concludes
        evidence.update(store.add_results(engine, final["run_id"], [(m["position"], r) for m in final["meters"]
                                                                     for r in m["results"] if r["point"] == point]))
    assert evidence == results_of(final)
    sent.clear()
    made = CanonicalRecord.of(final)
    assert store.publish(engine, made, evidence).changed
    assert stored(engine, final["run_id"]) == (made.sha256, made.text, results_of(final))
    assert (sent.inserted, sent.deletes) == ([], 0)  # every result row was stored already, as it is
    assert not store.publish(engine, made, evidence).changed

    changed = record_with(results)
    changed["meters"][1]["results"][2] = result("FL-PF05", 0.5)  # position 2's FL-PF05 measured again
    del changed["meters"][0]["results"][3]  # position 1's KH no longer in the record
    sent.clear()
    again = CanonicalRecord.of(changed)
    assert store.publish(engine, again).changed
    assert stored(engine, final["run_id"]) == (again.sha256, again.text, results_of(changed))
    assert sent.inserted == [(2, "FL-PF05")] and sent.deletes == 2  # one statement per point: FL-PF05 and KH

    elsewhere = CanonicalRecord.of({**final, "run_id": "7e57d0c5-0000-4000-8000-000000000002"})
    sent.clear()
    assert store.publish(engine, elsewhere).changed
    assert stored(engine, elsewhere.record["run_id"]) == (elsewhere.sha256, elsewhere.text, results_of(final))
    assert sorted(sent.inserted) == sorted(results_of(final)) and sent.deletes == 0


def test_publishing_keeps_results_already_stored_and_replaces_a_changed_one_in_sqlite(tmp_path: Path) -> None:
    check_publishing(store.connect(f"sqlite:///{tmp_path / 'records.sqlite'}"))


@pytest.mark.slow  # PostgreSQL
def test_publishing_keeps_results_already_stored_and_replaces_a_changed_one_in_postgresql(
        postgres_schema_url: str) -> None:
    check_publishing(store.connect(postgres_schema_url))


@pytest.fixture
def made_texts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Every result whose canonical JSON the store makes."""
    made: list[dict[str, Any]] = []

    def counting(data: Any) -> str:
        if isinstance(data, dict) and "point" in data:
            made.append(data)
        return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)

    monkeypatch.setattr(store, "canonical_json", counting)
    yield made


def test_publish_makes_no_result_text_it_was_given(tmp_path: Path, made_texts: list[dict[str, Any]]) -> None:
    engine = store.connect(f"sqlite:///{tmp_path / 'records.sqlite'}")
    record = record_with([result(point, 0.1) for point in POINTS])
    store.publish(engine, CanonicalRecord.of(record), results_of(record))
    assert made_texts == []
    store.publish(engine, CanonicalRecord.of({**record, "run_id": "another"}))  # none given: each made once
    assert len(made_texts) == 2 * len(POINTS)
    assert stored(engine, "another")[2] == results_of(record)


# --- a whole run --------------------------------------------------------------------------------------

@pytest.mark.slow  # a whole plan run (shared with the other tests that read it)
def test_a_runs_file_database_and_signature_hold_one_text(whole_plan: Callable[[str], Any], tmp_path: Path) -> None:
    run = whole_plan("default")
    [path] = run.reports.glob("run-*.json")
    written = path.read_bytes()
    engine = create_engine(f"sqlite:///{run.reports / 'records.sqlite'}")
    sha, text, rows = stored(engine, run.record["run_id"])
    with engine.connect() as conn:  # SQLite numbers rows in the order they were written
        written_order = conn.exec_driver_sql("SELECT position, point_id FROM results ORDER BY rowid").all()
    engine.dispose()
    assert written.startswith(b'{"record":' + text.encode("utf-8") + b',"signature":')
    assert reader_text(written) == text and hashlib.sha256(text.encode("utf-8")).hexdigest() == sha
    signature = json.loads(written)["signature"]
    Ed25519PublicKey.from_public_bytes(base64.b64decode(signature["public_key"])).verify(
        base64.b64decode(signature["value"]), text.encode("utf-8"))
    assert rows == results_of(json.loads(text))  # every result row is the record's result, and no other
    assert len(rows) == sum(len(m["results"]) for m in run.record["meters"]) > 0
    # Each row was written once, as its point concluded for the whole board: in that order, a point at
    # every position at a time, not rewritten at the end in the record's order (position by position).
    positions = len(run.record["meters"])
    boards = [written_order[i:i + positions] for i in range(0, len(written_order), positions)]
    assert all([n for n, _ in board] == list(range(1, positions + 1)) and len({p for _, p in board}) == 1
               for board in boards)
    verify = subprocess.run([sys.executable, "-m", "bench.cli", "verify", str(path)], capture_output=True, text=True,
                            cwd=REPO, timeout=60)
    assert verify.returncode == 0 and "signature valid" in verify.stdout
    tampered = tmp_path / path.name
    tampered.write_bytes(written.replace(b'"verdict":"PASS"', b'"verdict":"FAIL"', 1))
    verify = subprocess.run([sys.executable, "-m", "bench.cli", "verify", str(tampered)], capture_output=True,
                            text=True, cwd=REPO, timeout=60)
    assert verify.returncode == 1 and "INVALID: the signature does not match" in verify.stdout
    database = tmp_path / "records.sqlite"  # `bench report` writes nothing into it, but a copy keeps it so
    shutil.copy(run.reports / "records.sqlite", database)
    report = subprocess.run([sys.executable, "-m", "bench.cli", "report", run.record["run_id"][:8], "--records",
                             f"sqlite:///{database}", "--reports-dir", str(tmp_path / "again")],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "again" / path.name).read_bytes() == written  # re-published: the same text, the same key
