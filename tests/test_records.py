"""Run records in a real database: round trips on SQLite and PostgreSQL, idempotent publishing,
history, incomplete runs, schema migration, and the reference standard's due date."""
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import tomli_w
from sqlalchemy import create_engine, select
from sqlalchemy.exc import DBAPIError

from bench.records import store
from bench.records.store import CanonicalRecord
from bench.sim import SimulatedBench
from tests.helpers import REPO, plan_command

ONE_POINT = ("test_plans/accuracy/test_load_performance.py", "-k", "FL-PF1")  # a partial run


def run_plan(reports, *args, check=True, plans=ONE_POINT):
    run = subprocess.run(plan_command(reports, *plans, "-q", *args), capture_output=True, text=True, cwd=REPO,
                         timeout=300)
    if check:
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return run


def only_json_record(reports):
    [path] = reports.glob("run-*.json")
    return json.loads(path.read_text())["record"]


@pytest.mark.slow
def test_a_run_round_trips_through_sqlite(tmp_path):
    run_plan(tmp_path)
    record = only_json_record(tmp_path)
    engine = store.connect(f"sqlite:///{tmp_path / 'records.sqlite'}")
    assert store.count_rows(engine) == {"runs": 1, "meter_runs": 8, "results": 8, "meter_registry": 0, "audit_trail": 0,
                                        "certificates": 0}
    assert store.load_run(engine, record["run_id"][:8]) == json.loads(store.canonical_json(record))
    assert record["status"] == "partial" and record["meters"][0]["results"][0]["point"] == "FL-PF1"
    reference = next(i for i in record["instruments"] if i["role"] == "reference")
    started = record["started_at"][:10]  # the simulator dates its certificates from the day it starts
    assert reference["calibration"]["date"] < started < reference["calibration"]["due"]
    assert reference["idn"].startswith("MeterBench,SIM-RS")
    assert {i["role"] for i in record["instruments"]} == {"source", "load", "reference", "counter", "environment"}
    assert all(i["calibration"]["certificate"].startswith("SIM-CAL-") for i in record["instruments"])
    # one point of 26 passed: the run is partial and certifies nobody
    assert not any(m["certified"] or m["certificate"] for m in record["meters"])


@pytest.mark.slow
def test_publishing_twice_stores_once_a_retest_adds_a_run_and_certificate_numbers_run_on(tmp_path):
    run_plan(tmp_path, plans=("test_plans/accuracy/",))
    record = only_json_record(tmp_path)
    engine = store.connect(f"sqlite:///{tmp_path / 'records.sqlite'}")
    again = store.publish(engine, CanonicalRecord.of(record))
    assert not again.changed and store.count_rows(engine)["runs"] == 1
    year = record["ended_at"][:4]
    assert [m["certificate"]["number"] for m in record["meters"]] == [f"SIM-{year}-{n:05d}" for n in range(1, 9)]
    report = subprocess.run([sys.executable, "-m", "bench.cli", "report", record["run_id"][:8], "--records",
                             f"sqlite:///{tmp_path / 'records.sqlite'}", "--reports-dir", str(tmp_path / "again")],
                            capture_output=True, text=True, cwd=REPO)
    assert report.returncode == 0 and store.count_rows(engine)["runs"] == 1
    for path in (tmp_path / "certificates").glob("*.html"):  # re-published: the same numbers, the same bytes
        assert (tmp_path / "again" / "certificates" / path.name).read_bytes() == path.read_bytes()
    (tmp_path / "first").mkdir()
    for path in tmp_path.glob("run-*.json"):  # keep the first run's record aside
        path.rename(tmp_path / "first" / path.name)
    run_plan(tmp_path, plans=("test_plans/accuracy/",))  # the same meters, tested again: the numbers run on
    retest = only_json_record(tmp_path)
    assert [m["certificate"]["number"] for m in retest["meters"]] == [f"SIM-{year}-{n:05d}" for n in range(9, 17)]
    rows = store.history(engine, "SIM16A00004")
    assert [r["status"] for r in rows] == ["complete", "complete"] and rows[0]["started_at"] <= rows[1]["started_at"]
    history = subprocess.run([sys.executable, "-m", "bench.cli", "history", "SIM16A00004",
                              "--records", f"sqlite:///{tmp_path / 'records.sqlite'}"],
                             capture_output=True, text=True, cwd=REPO)
    lines = history.stdout.splitlines()
    # two acceptance tests, neither after adjustment: each is its own episode, as found and as left
    assert history.returncode == 0 and all(line.startswith("as found, as left") for line in lines[2:4])


@pytest.mark.slow
def test_an_interrupted_run_stays_incomplete_and_certifies_nobody(tmp_path):
    """SIGTERM mid-run (scaled clock): the record says incomplete, no certificates are written,
    and re-publishing it from the database still gives none."""
    with SimulatedBench(scale=50.0) as sim:
        profile = tmp_path / "sim.toml"
        profile.write_text(tomli_w.dumps(sim.profile_data()))
        run = subprocess.Popen(plan_command(tmp_path, "test_plans/", "--bench", str(profile), "-q"), cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 30
        while not sim.world.load.output:
            assert time.monotonic() < deadline and run.poll() is None
            time.sleep(0.05)
        time.sleep(0.5)
        os.kill(run.pid, signal.SIGTERM)
        run.communicate(timeout=30)
    record = only_json_record(tmp_path)
    assert record["status"] == "incomplete" and record["ended_at"] is None
    assert not any(m["certified"] for m in record["meters"])
    assert not (tmp_path / "certificates").exists()
    engine = store.connect(f"sqlite:///{tmp_path / 'records.sqlite'}")
    assert {r["status"] for r in store.history(engine, "SIM16A00001")} == {"incomplete"}


def test_an_older_schema_is_migrated_and_a_newer_one_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = create_engine(url)
    with engine.begin() as conn:  # a database as the first version of the bench left it
        store.schema_version.create(conn)
        conn.execute(store.schema_version.insert().values(version=1))
        store.MIGRATIONS[0](conn)
        conn.execute(store.runs.insert().values(run_id="old", started_at="2026-01-01", status="complete", bench_id="B",
                                                profile_sha256="0" * 64, plan="p", decision_rule="simple", operator="o",
                                                record_sha256="1" * 64, record="{}"))
        conn.exec_driver_sql("INSERT INTO meter_runs (run_id, position, serial, firmware, mac, verdict) "
                             "VALUES ('old', 1, 'M1', 'fw', 'mac', 'PASS')")
    migrated = store.connect(url)
    with migrated.connect() as conn:
        assert conn.execute(select(store.schema_version.c.version)).scalar_one() == store.SCHEMA_VERSION
        assert conn.execute(select(store.meter_runs.c.certified)).scalar_one() is False
    assert store.count_rows(migrated) == {"runs": 1, "meter_runs": 1, "results": 0, "meter_registry": 0,
                                          "audit_trail": 0, "certificates": 0}
    with migrated.begin() as conn:
        conn.execute(store.schema_version.update().values(version=99))
    with pytest.raises(store.RecordsError,
                       match=f"schema is version 99; this bench knows up to {store.SCHEMA_VERSION}"):
        store.connect(url)


@pytest.mark.slow
@pytest.mark.parametrize("role", ["reference", "counter", "environment"])
def test_any_instrument_past_due_blocks_certification_unless_overridden_and_recorded(tmp_path, make_board, role):
    """The thermometer counts too: it decides whether reference conditions held."""
    if role == "reference":
        board = make_board(reference={"calibration_date": "2025-01-10", "calibration_due": "2026-01-10"})
        certificate = "SIM-CAL-0117"
    else:
        board = make_board(calibrations={role: {"certificate": "OLD-7", "date": dt.date(2025, 1, 10),
                                                "due": dt.date(2026, 1, 10)}})
        certificate = "OLD-7"
    blocked = run_plan(tmp_path, "--sim-scenario", str(board), check=False)
    assert blocked.returncode == 4
    assert (f"bench cannot start: {role} calibration {certificate} was due 2026-01-10: "
            "certification is blocked") in blocked.stdout
    assert not (tmp_path / "records.sqlite").exists()  # nothing ran, nothing recorded
    run_plan(tmp_path, "--sim-scenario", str(board),
             "--allow-expired-calibration", "recalibration booked, lab ticket 4711")
    record = only_json_record(tmp_path)
    assert record["calibration_override"] == "recalibration booked, lab ticket 4711"
    instrument = next(i for i in record["instruments"] if i["role"] == role)
    assert dt.date.fromisoformat(instrument["calibration"]["due"]) < dt.date.today()


@pytest.fixture
def postgres_url():
    url = os.environ.get("BENCH_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("BENCH_TEST_POSTGRES_URL is not set; `make test` starts PostgreSQL and sets it")
        pytest.skip("no PostgreSQL (set BENCH_TEST_POSTGRES_URL, or run `make test` as root)")
    engine = create_engine(url)
    with engine.begin() as conn:  # a clean slate: this database belongs to the tests
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    return url


@pytest.mark.slow
def test_records_round_trip_on_postgresql(tmp_path, postgres_url):
    run_plan(tmp_path, "--records", postgres_url)
    record = only_json_record(tmp_path)
    engine = store.connect(postgres_url)
    assert engine.dialect.name == "postgresql"
    assert store.count_rows(engine)["results"] == 8 and store.count_rows(engine)["meter_runs"] == 8
    assert store.load_run(engine, record["run_id"]) == json.loads(store.canonical_json(record))
    assert not store.publish(engine, CanonicalRecord.of(record)).changed
    assert store.count_rows(engine)["runs"] == 1
    assert [r["certified"] for r in store.history(engine, "SIM16A00002")] == [False]
    assert store.append_audit(engine, "SIM16A00002", "tamper-clear", "tech", "S-1", "test", "2026-11-21")
    assert not store.append_audit(engine, "SIM16A00002", "tamper-clear", "tech", "S-1", "test", "2026-11-21")
    with pytest.raises(DBAPIError, match="append-only"):
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE audit_trail SET seal = 'forged'")


@pytest.mark.slow
def test_an_unreachable_records_database_stops_the_run_with_one_line(tmp_path):
    run = run_plan(tmp_path, "--records", "postgresql+psycopg://bench:secret@127.0.0.1:1/none", check=False)
    assert run.returncode == 3
    assert "bench cannot start: records database postgresql+psycopg://bench:***@127.0.0.1:1/none:" in run.stdout
    assert "secret" not in run.stdout


def test_concluded_results_replace_only_their_own_rows_whatever_else_is_stored(tmp_path):
    """``add_results`` stores a batch (several points, several positions) in one transaction; a
    point measured again replaces that point's rows for the positions given, and nothing else."""
    engine = store.connect(f"sqlite:///{tmp_path / 'records.sqlite'}")

    def result(point: str, verdict: str) -> dict:
        return {"point": point, "family": "load_performance", "name": point, "verdict": verdict,
                "value_pct": 0.01, "u_pct": 0.012, "evidence": {"note": verdict}}

    store.add_results(engine, "run-1", [(1, result("LL-PF1", "PASS")), (2, result("LL-PF1", "PASS")),
                                        (1, result("FL-PF1", "PASS")), (2, result("FL-PF1", "FAIL"))])
    store.add_results(engine, "run-2", [(2, result("FL-PF1", "PASS"))])  # another run's row of the same key
    store.add_results(engine, "run-1", [(2, result("FL-PF1", "ERROR"))])  # position 2's FL-PF1, again
    with engine.connect() as conn:
        rows = conn.execute(select(store.results.c.run_id, store.results.c.position, store.results.c.point_id,
                                   store.results.c.verdict)).all()
    assert sorted(rows) == [("run-1", 1, "FL-PF1", "PASS"), ("run-1", 1, "LL-PF1", "PASS"),
                            ("run-1", 2, "FL-PF1", "ERROR"), ("run-1", 2, "LL-PF1", "PASS"),
                            ("run-2", 2, "FL-PF1", "PASS")]


def test_a_boards_meters_are_registered_together_with_each_conflict_found_as_one_by_one_finds_it(tmp_path):
    """One transaction for the board, the answers of registering each pair in turn: a serial seen
    before with another MAC, a MAC already another meter's (also one registered earlier on this
    very board), and a meter seen again as it was."""
    engine = store.connect(f"sqlite:///{tmp_path / 'records.sqlite'}")
    assert store.register_meters(engine, [("S1", "M1")], "2026-11-01") == [None]
    found = store.register_meters(engine, [("S1", "M1"), ("S1", "M9"), ("S2", "M1"), ("S3", "M3"), ("S4", "M3"),
                                           ("S3", "M3")], "2026-11-02")
    assert found == [None, "meter S1 is registered with MAC M1, but reports M9",
                     "MAC M1 is already registered to meter S1", None, "MAC M3 is already registered to meter S3", None]
    with engine.connect() as conn:
        rows = conn.execute(store.meter_registry.select().order_by(store.meter_registry.c.serial)).all()
    assert [(r.serial, r.mac, r.first_seen) for r in rows] == [("S1", "M1", "2026-11-01"), ("S3", "M3", "2026-11-02")]
