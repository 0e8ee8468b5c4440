"""Records at scale: the CLI's lookups are served by indexes (SQLite's query plans say so), an
older database gains those indexes by migration, and a run id's prefix still finds its run."""
from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import create_engine, event, inspect, select
from sqlalchemy.engine import Engine

from bench.records import store
from bench.records.record import fingerprint

SERIALS = [f"SCALE{n:05d}" for n in range(1, 5)]


def synthetic_record(run_id: str, started_at: str, bench_id: str = "LAB-1",
                     serials: list[str] = SERIALS, status: str = "complete") -> dict[str, Any]:
    """The fields of a run record the store keys, indexes and returns (what a bench publishes)."""
    return {
        "run_id": run_id, "started_at": started_at, "ended_at": started_at, "status": status,
        "bench": {"id": bench_id, "profile_sha256": "0" * 64}, "plan": {"name": "C12.20", "version": "2015"},
        "decision_rule": {"rule": "simple"}, "operator": "tech",
        "test_reason": {"reason": "acceptance", "stated": True},
        "meters": [{"position": n, "serial": serial, "firmware": "4.3.0", "mac": f"02:00:00:00:00:{n:02x}",
                    "verdict": "PASS", "certified": True,
                    "results": [{"point": "FL-PF1", "family": "load", "name": "full load", "verdict": "PASS",
                                 "value_pct": 0.01, "u_pct": 0.02}]}
                   for n, serial in enumerate(serials, start=1)],
    }


def filled(url: str, count: int = 40) -> tuple[Engine, list[str]]:
    """A records database with ``count`` runs of the same four meters (and their run ids)."""
    engine = store.connect(url)
    rng = random.Random(13)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]
    for n, run_id in enumerate(ids):
        record = synthetic_record(run_id, f"2026-01-{1 + n % 28:02d}T{n % 24:02d}:00:00+00:00")
        store.publish(engine, record, fingerprint(record))
    return engine, ids


def query_plans(engine: Engine, call: Callable[[], object]) -> list[str]:
    """SQLite's plan for every SELECT ``call`` makes, as the statement and parameters it really sent."""
    sent: list[tuple[str, Any]] = []

    def keep(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001 - SQLAlchemy's hook
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        call()
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    with engine.connect() as conn:
        return [" / ".join(row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters))
                for statement, parameters in sent]


def test_a_run_by_its_full_id_and_a_meters_history_are_found_through_indexes(tmp_path):
    engine, ids = filled(f"sqlite:///{tmp_path / 'records.sqlite'}")
    [by_id] = query_plans(engine, lambda: store.load_run(engine, ids[7]))
    assert "SEARCH runs USING INDEX sqlite_autoindex_runs_1 (run_id=?)" in by_id, by_id
    [by_prefix] = query_plans(engine, lambda: store.load_run(engine, ids[7][:8]))
    assert "SEARCH runs USING INDEX sqlite_autoindex_runs_1 (run_id>? AND run_id<?)" in by_prefix, by_prefix
    [by_serial] = query_plans(engine, lambda: store.history(engine, SERIALS[2]))
    assert by_serial.startswith("SEARCH meter_runs USING INDEX ix_meter_runs_serial (serial=?)"), by_serial
    assert "SEARCH runs USING INDEX sqlite_autoindex_runs_1 (run_id=?)" in by_serial, by_serial
    assert "SCAN" not in by_id + by_prefix + by_serial


def test_a_releases_runs_are_found_through_an_index(tmp_path):
    """The firmware regression's baseline looks runs up by the meters' release (bench/records/baseline.py)."""
    from bench.records.baseline import load_baseline

    engine, _ = filled(f"sqlite:///{tmp_path / 'records.sqlite'}", count=3)
    plans = query_plans(engine, lambda: _ignore_records_error(
        lambda: load_baseline(engine, "4.3.0", "C12.20", {"model": "none"})))  # no comparable run: refused after
    by_release = next(p for p in plans if "meter_runs" in p)
    assert "SEARCH meter_runs USING INDEX ix_meter_runs_firmware (firmware=?)" in by_release, by_release


def _ignore_records_error(call: Callable[[], object]) -> None:
    try:
        call()
    except store.RecordsError:
        pass


def test_a_version_5_database_gains_the_indexes_and_keeps_its_records(tmp_path):
    url = f"sqlite:///{tmp_path / 'v5.sqlite'}"
    with create_engine(url).begin() as conn:  # a database as the bench of schema version 5 left it
        store.schema_version.create(conn)
        conn.execute(store.schema_version.insert().values(version=5))
        for migration in store.MIGRATIONS[:5]:
            migration(conn)
    engine = create_engine(url)
    record = synthetic_record("0123abcd-0000-4000-8000-000000000001", "2026-02-01T08:00:00+00:00")
    with engine.begin() as conn:
        conn.execute(store.runs.insert().values(
            run_id=record["run_id"], started_at=record["started_at"], ended_at=record["ended_at"], status="complete",
            bench_id="LAB-1", profile_sha256="0" * 64, plan="C12.20 2015", decision_rule="simple", operator="tech",
            record_sha256=fingerprint(record), record=store.canonical_json(record)))
        for meter in record["meters"]:
            conn.execute(store.meter_runs.insert().values(
                run_id=record["run_id"], position=meter["position"], serial=meter["serial"], firmware="4.3.0",
                mac=meter["mac"], verdict="PASS", certified=True))
    migrated = store.connect(url)
    with migrated.connect() as conn:
        assert conn.execute(select(store.schema_version.c.version)).scalar_one() == store.SCHEMA_VERSION
        indexes = {table: {i["name"] for i in inspect(conn).get_indexes(table)}
                   for table in ("runs", "meter_runs", "severity_log")}
    assert {"ix_runs_started_at"} <= indexes["runs"]
    assert {"ix_meter_runs_serial", "ix_meter_runs_firmware"} <= indexes["meter_runs"]
    assert {"ix_severity_log_meter_type"} <= indexes["severity_log"]
    assert store.count_rows(migrated)["runs"] == 1 and store.count_rows(migrated)["meter_runs"] == 4
    assert store.load_run(migrated, record["run_id"]) == record
    assert [r["bench_id"] for r in store.history(migrated, SERIALS[0])] == ["LAB-1"]


def test_a_fresh_database_has_the_same_indexes_as_a_migrated_one(tmp_path):
    engine = store.connect(f"sqlite:///{tmp_path / 'new.sqlite'}")
    with engine.connect() as conn:
        assert "ix_runs_started_at" in {i["name"] for i in inspect(conn).get_indexes("runs")}
        assert "ix_meter_runs_firmware" in {i["name"] for i in inspect(conn).get_indexes("meter_runs")}


def check_prefix_lookups(engine: Engine) -> None:
    """Unique prefixes (ending in a digit, 9, f or a dash; any case) find their run, a shared one
    is ambiguous, a missing one is no run; the ids differ just after each prefix's last character."""
    ids = ["abcd9000-0000-4000-8000-000000000000", "abcda000-0000-4000-8000-000000000000",
           "abcdf000-0000-4000-8000-000000000000", "abce0000-0000-4000-8000-000000000000",
           "1234abcd-1000-4000-8000-000000000000", "1234abcd-2000-4000-8000-000000000000"]
    for n, run_id in enumerate(ids):
        record = synthetic_record(run_id, f"2026-03-{n + 1:02d}T00:00:00+00:00", serials=[f"P{n}"])
        store.publish(engine, record, fingerprint(record))
    for prefix, run_id in [("abcd9", ids[0]), ("ABCDA", ids[1]), ("abcdf", ids[2]), ("abce", ids[3]),
                           ("1234abcd-1", ids[4]), ("1234abcd-2000-", ids[5]), (ids[5], ids[5])]:
        assert store.load_run(engine, prefix)["run_id"] == run_id, prefix
    for prefix in ("abcd", "1234abcd-", "1234"):
        with pytest.raises(store.RecordsError, match=f"run id '{prefix}' is ambiguous"):
            store.load_run(engine, prefix)
    for prefix in ("abcd8", "abcd-", "ffff", "abcd9000-0000-4000-8000-000000000001"):
        with pytest.raises(store.RecordsError, match=f"no run '{prefix}'"):
            store.load_run(engine, prefix)
    for prefix in ("abc", "abcx", "----"):
        with pytest.raises(store.RecordsError, match=f"run id '{prefix}': give at least 4 hex digits of a run id"):
            store.load_run(engine, prefix)


def test_a_unique_prefix_finds_its_run_and_a_shared_one_is_ambiguous(tmp_path):
    check_prefix_lookups(store.connect(f"sqlite:///{tmp_path / 'records.sqlite'}"))
