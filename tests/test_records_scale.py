"""Records at scale: the CLI's lookups are served by indexes (SQLite's query plans say so), an
older database gains those indexes by migration, and a lab of several benches publishes into one
PostgreSQL database at the same time without losing, doubling or refusing a record."""
from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, inspect, select
from sqlalchemy.engine import Engine

from bench.records import store
from bench.sim import board_path
from tests.helpers import REPO, bench_cli, edited_toml, plan_command

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
        store.publish(engine, store.CanonicalRecord.of(record))
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
            record_sha256=store.CanonicalRecord.of(record).sha256, record=store.canonical_json(record)))
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
        store.publish(engine, store.CanonicalRecord.of(record))
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


# --- several benches, one PostgreSQL database ------------------------------------------------------

@pytest.mark.slow  # PostgreSQL
def test_prefix_lookups_on_postgresql(postgres_schema_url):
    check_prefix_lookups(store.connect(postgres_schema_url))


# One bench of the lab, in a process of its own: from a common start time it connects (migrating a
# fresh database), then publishes RUNS runs of the same meters, registers them, and numbers their
# certificates, as a complete run does.
BENCH = textwrap.dedent("""
    import sys, time, uuid
    from bench.records import store
    from tests.test_records_scale import SERIALS, synthetic_record
    url, bench_id, start, runs = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    time.sleep(max(0.0, start - time.time()))
    engine = store.connect(url)
    for n in range(runs):
        run_id = str(uuid.uuid4())
        record = synthetic_record(run_id, f"2026-04-01T00:{n:02d}:00+00:00", bench_id)
        store.publish(engine, store.CanonicalRecord.of(record))
        conflicts = store.register_meters(engine, [(m["serial"], m["mac"]) for m in record["meters"]],
                                          record["started_at"])
        assert conflicts == [None] * len(record["meters"]), conflicts
        store.issue_certificates(engine, run_id, SERIALS, "2026-04-01", lambda seq, serial: f"LAB-{seq:05d}")
        print(run_id, flush=True)
""")


@pytest.mark.slow  # 4 processes on PostgreSQL
def test_four_benches_publish_into_one_postgresql_database_at_once(postgres_schema_url):
    benches, runs = 4, 10
    start = time.time() + 3.0  # every process imported and waiting: they connect and publish together
    processes = [subprocess.Popen([sys.executable, "-c", BENCH, postgres_schema_url, f"LAB-{n}", str(start),
                                   str(runs)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for n in range(1, benches + 1)]
    outputs = [p.communicate(timeout=120) for p in processes]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
        assert not any(word in (out + err).lower() for word in ("lock", "duplicate key", "integrityerror")), err
    published = [line for out, _ in outputs for line in out.split()]
    engine = store.connect(postgres_schema_url)
    with engine.connect() as conn:
        stored = conn.execute(select(store.runs.c.run_id)).scalars().all()
        seqs = conn.execute(select(store.certificates.c.seq).order_by(store.certificates.c.seq)).scalars().all()
    assert len(published) == benches * runs and sorted(stored) == sorted(published)
    assert store.count_rows(engine)["meter_runs"] == benches * runs * len(SERIALS)
    assert store.count_rows(engine)["meter_registry"] == len(SERIALS)
    assert seqs == list(range(1, benches * runs * len(SERIALS) + 1))  # the lab's one running sequence, no gaps
    shown = bench_cli("history", SERIALS[0], "--records", postgres_schema_url)
    assert shown.returncode == 0, shown.stderr
    assert {f"LAB-{n}" for n in range(1, benches + 1)} <= set(shown.stdout.split())
    shown_runs = [word for line in shown.stdout.splitlines()[2:] for word in line.split()
                  if word in {run_id[:8] for run_id in published}]
    assert len(shown_runs) == len(set(shown_runs)) == benches * runs


def named_board(tmp_path: Path, name: str) -> Path:
    """The default simulated board under another name: its bench id is ``SIM-<name>``."""
    return edited_toml(board_path("default"), lambda data: data["board"].update(name=name), tmp_path / f"{name}.toml")


@pytest.mark.slow  # 4 pytest runs of the accuracy plan at once (about 30 s on 2 cores)
def test_four_simulated_benches_run_the_accuracy_plan_into_one_postgresql_database(tmp_path, postgres_schema_url):
    """Complete runs, so every bench also takes certificate numbers from the lab's sequence."""
    names = [f"lab{n}" for n in range(1, 5)]
    started = time.monotonic()
    processes = [subprocess.Popen(plan_command(tmp_path / name, "test_plans/accuracy/", "-q", "--sim-scenario",
                                               str(named_board(tmp_path, name)), "--records", postgres_schema_url),
                                  cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for name in names]
    outputs = [p.communicate(timeout=180)[0] for p in processes]
    elapsed = time.monotonic() - started
    for process, out in zip(processes, outputs):
        assert process.returncode == 0, out[-3000:]
        assert not any(word in out.lower() for word in ("lock", "duplicate key", "integrityerror")), out[-3000:]
    published = {name: [p.name[4:-5] for p in (tmp_path / name).glob("run-*.json")] for name in names}
    assert all(len(ids) == 1 for ids in published.values()), published
    engine = store.connect(postgres_schema_url)
    with engine.connect() as conn:
        stored = conn.execute(select(store.runs.c.run_id, store.runs.c.bench_id, store.runs.c.status)).all()
        seqs = conn.execute(select(store.certificates.c.seq).order_by(store.certificates.c.seq)).scalars().all()
    assert sorted(tuple(row) for row in stored) == sorted((ids[0], f"SIM-{name}", "complete")
                                                          for name, ids in published.items()), stored
    assert seqs == list(range(1, 4 * 8 + 1))
    shown = bench_cli("history", "SIM16A00001", "--records", postgres_schema_url)
    assert shown.returncode == 0, shown.stderr
    assert {f"SIM-{name}" for name in names} <= set(shown.stdout.split())
    print(f"4 benches, {len(stored)} complete runs, {len(seqs)} certificates in {elapsed:.1f} s")


@pytest.mark.slow  # PostgreSQL
def test_benches_numbering_at_once_wait_for_each_other_instead_of_colliding(postgres_schema_url):
    """While one bench numbers its certificates, another waits for it and then takes the numbers
    after its: it never reads the same next number and loses its attempt (four busy benches losing
    every one of their attempts in turn failed CI on 2026-11-23)."""
    engine = store.connect(postgres_schema_url)
    run_a, run_b = str(uuid.uuid4()), str(uuid.uuid4())
    for run_id in (run_a, run_b):
        store.publish(engine, store.CanonicalRecord.of(synthetic_record(run_id, "2026-04-01T00:00:00+00:00")))
    holding, release, attempts = threading.Event(), threading.Event(), []

    def slow_number(seq: int, serial: str) -> str:  # inside the first bench's transaction
        holding.set()
        release.wait(10)
        return f"LAB-{seq:05d}"

    def counted_number(seq: int, serial: str) -> str:
        attempts.append(seq)
        return f"LAB-{seq:05d}"

    first = threading.Thread(target=store.issue_certificates,
                             args=(engine, run_a, SERIALS[:1], "2026-04-01", slow_number))
    first.start()
    assert holding.wait(10)
    second = threading.Thread(target=store.issue_certificates,
                              args=(engine, run_b, SERIALS[:1], "2026-04-01", counted_number))
    second.start()
    time.sleep(0.5)  # the second bench has begun numbering meanwhile
    release.set()
    first.join(10), second.join(10)
    assert attempts == [2]  # one attempt, numbered after the first bench's 1
    with engine.connect() as conn:
        assert conn.execute(select(store.certificates.c.number).order_by(store.certificates.c.seq)).scalars().all() \
            == ["LAB-00001", "LAB-00002"]
