"""Run records in a real database through SQLAlchemy Core: SQLite by default, PostgreSQL by URL.

The schema is versioned and migrated forward on connect (never assumed). Publishing is idempotent:
a run is keyed by its id and fingerprinted by the SHA-256 of its canonical record, so publishing
the same run twice stores it once, and a run published again with more results replaces itself.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from bench.records.canonical_text import CanonicalText, canonical_json

metadata = MetaData()
schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))
runs = Table(
    "runs", metadata,
    Column("run_id", String(36), primary_key=True),
    Column("started_at", String(40), nullable=False),
    Column("ended_at", String(40)),
    Column("status", String(16), nullable=False),  # incomplete | complete
    Column("bench_id", String(100), nullable=False),
    Column("profile_sha256", String(64), nullable=False),
    Column("plan", String(300), nullable=False),
    Column("decision_rule", String(16), nullable=False),
    Column("operator", String(100), nullable=False),
    Column("record_sha256", String(64), nullable=False),
    Column("record", Text, nullable=False),
)
meter_runs = Table(
    "meter_runs", metadata,
    Column("run_id", String(36), ForeignKey("runs.run_id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("serial", String(64), nullable=False, index=True),
    Column("firmware", String(64), nullable=False),
    Column("mac", String(32), nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("certified", Boolean, nullable=False, default=False),  # added by migration 2
)
results = Table(
    "results", metadata,
    Column("run_id", String(36), ForeignKey("runs.run_id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("point_id", String(40), primary_key=True),
    Column("family", String(40), nullable=False),
    Column("name", String(200), nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("value_pct", Float),  # error, or shift of error; NULL for pulse counts
    Column("u_pct", Float),
    Column("evidence", Text, nullable=False),  # the result's JSON
)


meter_registry = Table(
    "meter_registry", metadata,
    Column("serial", String(64), primary_key=True),
    Column("mac", String(32), nullable=False, unique=True),
    Column("first_seen", String(40), nullable=False),
)
audit_trail = Table(
    "audit_trail", metadata,
    Column("entry", Integer, primary_key=True, autoincrement=True),
    Column("at", String(40), nullable=False),
    Column("serial", String(64), nullable=False, index=True),
    Column("action", String(40), nullable=False),
    Column("operator", String(100), nullable=False),
    Column("seal", String(64), nullable=False),
    Column("detail", Text, nullable=False),
    UniqueConstraint("serial", "action", "seal"),
)
certificates = Table(
    "certificates", metadata,
    Column("seq", Integer, primary_key=True),  # the lab's running number, in issue order
    Column("number", String(100), nullable=False, unique=True),
    Column("run_id", String(36), ForeignKey("runs.run_id"), nullable=False),
    Column("serial", String(64), nullable=False),
    Column("issued", String(10), nullable=False),
    UniqueConstraint("run_id", "serial"),
)
# Lot acceptance by sampling (bench/lots/): a lot of new meters, its serials, its sample draws, and
# per meter type the inspection severity the switching rules keep, with their log.
lots = Table(
    "lots", metadata,
    Column("lot_id", String(64), primary_key=True),
    Column("created_at", String(40), nullable=False),
    Column("manufacturer", String(100), nullable=False),
    Column("model", String(100), nullable=False),
    Column("form", String(16), nullable=False),
    Column("accuracy_class", Float, nullable=False),
    Column("size", Integer, nullable=False),
    Column("serials_file", String(300), nullable=False),
    Column("serials_sha256", String(64), nullable=False),
    Column("manufacturer_data", Text),  # JSON {serial: {point: value_pct}}, when the manufacturer gave any
    Column("drawn_at", String(40)),
    Column("draw", Text),  # JSON: the current draw (plan as drawn, severity, code letter, n, seed, sample)
    Column("verdict", String(16)),  # ACCEPTED | REJECTED, once judged
    Column("verdict_at", String(40)),
    Column("verdict_record", Text),  # the lot record the verdict was published from (canonical JSON)
)
lot_meters = Table(
    "lot_meters", metadata,
    Column("lot_id", String(64), ForeignKey("lots.lot_id"), primary_key=True),
    Column("serial", String(64), primary_key=True),
    Column("line", Integer, nullable=False),  # where the serials file listed it
    Column("sample_order", Integer),  # 1..n in the current draw's order; NULL when not drawn
)
lot_draws = Table(
    "lot_draws", metadata,
    Column("entry", Integer, primary_key=True, autoincrement=True),
    Column("lot_id", String(64), ForeignKey("lots.lot_id"), nullable=False, index=True),
    Column("drawn_at", String(40), nullable=False),
    Column("seed", String(40), nullable=False),
    Column("plan", String(100), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("sample_size", Integer, nullable=False),
    Column("reason", Text),  # why it replaced the previous draw; NULL for the first
    Column("draw", Text, nullable=False),
)
inspection_severity = Table(
    "inspection_severity", metadata,
    Column("manufacturer", String(100), primary_key=True),
    Column("model", String(100), primary_key=True),
    Column("severity", String(16), nullable=False),  # normal | tightened | reduced | discontinued
    Column("since", String(40), nullable=False),
    Column("history", Text, nullable=False),  # JSON: the outcomes (accepted?) judged since `since`
)
severity_log = Table(
    "severity_log", metadata,
    Column("entry", Integer, primary_key=True, autoincrement=True),
    Column("at", String(40), nullable=False),
    Column("manufacturer", String(100), nullable=False),
    Column("model", String(100), nullable=False),
    Column("lot_id", String(64)),
    Column("event", String(40), nullable=False),
    Column("severity_before", String(16), nullable=False),
    Column("severity_after", String(16), nullable=False),
    Column("detail", Text, nullable=False),
)
# Indexes for the queries the bench makes beyond the primary keys and the columns marked index=True
# (migration 6): runs by start time (a meter's history and a lot's verdict sort and filter by it), a
# release's runs (the firmware regression's baseline) and a meter type's severity log.
INDEXES = [
    Index("ix_runs_started_at", runs.c.started_at),
    Index("ix_meter_runs_firmware", meter_runs.c.firmware),
    Index("ix_severity_log_meter_type", severity_log.c.manufacturer, severity_log.c.model),
]
_APPEND_ONLY = {
    "sqlite": ["CREATE TRIGGER audit_trail_no_update BEFORE UPDATE ON audit_trail "
               "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END",
               "CREATE TRIGGER audit_trail_no_delete BEFORE DELETE ON audit_trail "
               "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END"],
    "postgresql": ["CREATE OR REPLACE FUNCTION audit_trail_append_only() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN RAISE EXCEPTION 'the audit trail is append-only'; END $$",
                   "CREATE TRIGGER audit_trail_no_change BEFORE UPDATE OR DELETE ON audit_trail "
                   "FOR EACH ROW EXECUTE FUNCTION audit_trail_append_only()"],
}


def _v1(conn: Connection) -> None:
    for table in (runs, meter_runs):
        columns = [Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable, index=c.index)
                   for c in table.columns if c.name != "certified"]
        Table(table.name, MetaData(), *columns).create(conn)


def _v2(conn: Connection) -> None:
    """Per-point results get their own table; meters learn whether a run certified them."""
    conn.execute(text("ALTER TABLE meter_runs ADD COLUMN certified BOOLEAN NOT NULL DEFAULT FALSE"))
    results.create(conn)


def _v3(conn: Connection) -> None:
    """The commissioning audit's registry (meter ID to MAC, unique both ways) and its tamper audit
    trail, which the database itself keeps append-only."""
    meter_registry.create(conn)
    audit_trail.create(conn)
    for statement in _APPEND_ONLY.get(conn.dialect.name, []):
        conn.exec_driver_sql(statement)


def _v4(conn: Connection) -> None:
    """Certificates get numbers: one per meter per complete run, from the lab's running sequence."""
    certificates.create(conn)


def _v5(conn: Connection) -> None:
    """Lot acceptance by sampling: lots, their meters and draws, and the inspection severity per
    meter type with its log."""
    for table in (lots, lot_meters, lot_draws, inspection_severity, severity_log):
        table.create(conn)


def _v6(conn: Connection) -> None:
    """Indexes for the CLI's and the plans' queries, so that a lab's years of runs are not scanned
    (a database created at version 5 already has the severity log's: its table was created whole)."""
    for index in INDEXES:
        index.create(conn, checkfirst=True)


MIGRATIONS: list[Callable[[Connection], None]] = [_v1, _v2, _v3, _v4, _v5, _v6]
SCHEMA_VERSION = len(MIGRATIONS)


class RecordsError(RuntimeError):
    """The records database cannot be used (unreachable, or a schema newer than this code)."""


def connect(url: str) -> Engine:
    """Open the database and migrate its schema to this code's version."""
    try:
        engine = create_engine(url)
        with engine.begin() as conn:
            migrate(conn)
    except RecordsError:
        raise
    except Exception as error:  # noqa: BLE001 - drivers raise their own types; one line for the user
        raise RecordsError(f"records database {safe_url(url)}: {str(error).splitlines()[0]}") from None
    return engine


# Any fixed number: the PostgreSQL advisory lock the benches of a lab take to migrate one at a time.
_MIGRATION_LOCK = 0x6D657465  # "mete"


def migrate(conn: Connection) -> int:
    """Bring the schema to this code's version. On PostgreSQL the benches sharing a database may
    start together (first use, or all upgraded at once): each waits for the others' migration under
    an advisory lock held to the end of the transaction, then finds the schema already migrated."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
    if not inspect(conn).has_table("schema_version"):
        schema_version.create(conn)
        conn.execute(schema_version.insert().values(version=0))
    current = conn.execute(select(schema_version.c.version)).scalar_one()
    if current > SCHEMA_VERSION:
        raise RecordsError(f"records database schema is version {current}; this bench knows up to {SCHEMA_VERSION}")
    for version in range(current, SCHEMA_VERSION):
        MIGRATIONS[version](conn)
        conn.execute(schema_version.update().values(version=version + 1))
    return SCHEMA_VERSION


T = TypeVar("T")
_ATTEMPTS = 10


def _in_transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run ``work`` in a transaction; if another bench inserted the same key between its read and
    its insert (several benches share a lab's database), run it again at once: the database
    reports the conflict only after the other's transaction committed, so the read now sees that
    row (each lost attempt is another bench's progress). A key that still conflicts after a few
    attempts is a real conflict, and raised."""
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            with engine.begin() as conn:
                return work(conn)
        except IntegrityError:
            if attempt == _ATTEMPTS:
                raise
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Published:
    run_id: str
    changed: bool  # False when the very same record was already stored


# (position, point id) -> a result's canonical JSON: its row's evidence
Evidence = Mapping[tuple[int, str], str]


def publish(engine: Engine, made: CanonicalRecord, evidence: Evidence | None = None) -> Published:
    """Store a run record (and its meters and results) once; replace it only if it changed.

    The runs row holds ``made.text``, the very text the signature covers. The results rows are made
    to hold exactly the record's results, in the same transaction, but a row that already holds its
    result's text (each was stored as its point concluded) is neither deleted nor written again:
    reading them back costs a fraction of rewriting them. ``evidence``: texts already made of the
    record's results (those very dicts, unchanged since), so they are not made again."""
    record, run_id = made.record, made.record["run_id"]
    with engine.begin() as conn:
        stored = conn.execute(select(runs.c.record_sha256).where(runs.c.run_id == run_id)).scalar_one_or_none()
        if stored == made.sha256:
            return Published(run_id, False)
        conn.execute(delete(meter_runs).where(meter_runs.c.run_id == run_id))
        row = {
            "started_at": record["started_at"], "ended_at": record["ended_at"], "status": record["status"],
            "bench_id": record["bench"]["id"], "profile_sha256": record["bench"]["profile_sha256"],
            "plan": f"{record['plan']['name']} {record['plan']['version']}"[:300],
            "decision_rule": record["decision_rule"]["rule"], "operator": record["operator"],
            "record_sha256": made.sha256, "record": made.text,
        }
        if stored is None:
            conn.execute(runs.insert().values(run_id=run_id, **row))
        else:
            conn.execute(runs.update().where(runs.c.run_id == run_id).values(**row))
        meters = record["meters"]
        if meters:  # each table's rows in one statement: one per row was most of publishing a 40-meter board
            conn.execute(meter_runs.insert(), [
                {"run_id": run_id, "position": meter["position"], "serial": meter["serial"],
                 "firmware": meter["firmware"], "mac": meter["mac"], "verdict": meter["verdict"],
                 "certified": meter["certified"]} for meter in meters])
        known = evidence or {}
        wanted = [_result_row(run_id, meter["position"], result, known.get((meter["position"], result["point"])))
                  for meter in meters for result in meter["results"]]
        held = {(position, point_id): text for position, point_id, text in conn.execute(
            select(results.c.position, results.c.point_id, results.c.evidence).where(results.c.run_id == run_id))}
        kept = {(r["position"], r["point_id"]) for r in wanted
                if held.get((r["position"], r["point_id"])) == r["evidence"]}
        _delete_results(conn, run_id, held.keys() - kept)
        rows = [r for r in wanted if (r["position"], r["point_id"]) not in kept]
        if rows:
            conn.execute(results.insert(), rows)
    return Published(run_id, True)


def _result_row(run_id: str, position: int, result: dict[str, Any], text: str | None = None) -> dict[str, Any]:
    """A result's row; ``text``: its canonical JSON when already made."""
    return {"run_id": run_id, "position": position, "point_id": result["point"], "family": result["family"],
            "name": result["name"], "verdict": result["verdict"], "value_pct": result.get("value_pct"),
            "u_pct": result.get("u_pct"), "evidence": canonical_json(result) if text is None else text}


def _delete_results(conn: Connection, run_id: str, keys: Iterable[tuple[int, str]]) -> None:
    """A run's results rows by (position, point id): a statement per point, not one per row."""
    positions_of: dict[str, list[int]] = {}
    for position, point_id in keys:
        positions_of.setdefault(point_id, []).append(position)
    for point_id, positions in positions_of.items():
        conn.execute(delete(results).where((results.c.run_id == run_id) & (results.c.point_id == point_id)
                                           & results.c.position.in_(positions)))


def add_results(engine: Engine, run_id: str,
                concluded: Iterable[tuple[int, dict[str, Any]]]) -> dict[tuple[int, str], str]:
    """Store concluded items' results, (position, result) each, in one transaction: a point's
    results for the whole board go together as soon as the board has concluded it, so a crash
    loses at most the point in progress (the run stays incomplete). Returns the evidence texts
    stored, by (position, point id), for ``publish`` to use rather than make again."""
    rows = [_result_row(run_id, position, result) for position, result in concluded]
    with engine.begin() as conn:  # a statement per point, not two per result: a 40-position point is 2, not 80
        _delete_results(conn, run_id, [(row["position"], row["point_id"]) for row in rows])
        if rows:
            conn.execute(results.insert(), rows)
    return {(row["position"], row["point_id"]): row["evidence"] for row in rows}


def issue_certificates(engine: Engine, run_id: str, serials: list[str], issued: str,
                       number: Callable[[int, str], str]) -> dict[str, str]:
    """Each meter's certificate number for this run: taken once from the lab's running sequence
    and kept, so re-publishing a run re-prints the same numbers. ``number(seq, serial)`` formats it.
    Benches numbering at the same moment take turns: on PostgreSQL the table is locked against
    other numbering (readers go on), so a busy lab's benches wait for each other instead of reading
    the same next number and losing attempt after attempt; SQLite's one writer at a time does so."""

    def take(conn: Connection) -> dict[str, str]:
        if conn.dialect.name == "postgresql":
            table = conn.dialect.identifier_preparer.format_table(certificates)
            conn.exec_driver_sql(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
        known = dict(conn.execute(select(certificates.c.serial, certificates.c.number)
                                  .where(certificates.c.run_id == run_id)).all())
        seq = conn.execute(select(func.max(certificates.c.seq))).scalar_one() or 0
        for serial in serials:
            if serial not in known:
                seq += 1
                known[serial] = number(seq, serial)
                conn.execute(certificates.insert().values(seq=seq, number=known[serial], run_id=run_id, serial=serial,
                                                          issued=issued))
        return {serial: known[serial] for serial in serials}

    return _in_transaction(engine, take)


MIN_ID_PREFIX = 4  # hex digits of a run id a user must give
RUN_ID_LENGTH = 36  # a whole run id: a UUID, lowercase hex and dashes
_NEXT_ID_CHAR = {c: n for c, n in zip("0123456789abcdef", "123456789abcdefg")}


def _matching(run_id: str) -> ColumnElement[bool]:
    """The runs a lowercase run id or prefix names, as conditions the primary key's index serves:
    a whole id exactly; a prefix as the range from itself to itself with its last hex digit
    raised to the next id character (never a LIKE, which scans). The upper bound is a digit or a
    letter, which every collation orders alike (a linguistic one, e.g. en_US on PostgreSQL, passes
    over dashes and ':'), and the prefix itself is still checked on the few rows in the range."""
    if len(run_id) == RUN_ID_LENGTH:
        return runs.c.run_id == run_id
    stem = run_id.rstrip("-")
    upper = stem[:-1] + _NEXT_ID_CHAR[stem[-1]]
    return (runs.c.run_id >= stem) & (runs.c.run_id < upper) & (func.substr(runs.c.run_id, 1, len(run_id)) == run_id)


def load_run(engine: Engine, run_id: str) -> dict[str, Any]:
    """A stored run's record; a unique prefix of the id (hex digits and dashes) is enough. An
    incomplete run's record (last published before it ended) is brought up to every result
    stored so far, and its scope with it."""
    wanted = run_id.lower()
    if sum(c != "-" for c in wanted) < MIN_ID_PREFIX or not all(c in "0123456789abcdef-" for c in wanted):
        raise RecordsError(f"run id '{run_id}': give at least {MIN_ID_PREFIX} hex digits of a run id")
    with engine.connect() as conn:
        found = conn.execute(select(runs.c.run_id, runs.c.record).where(_matching(wanted)).limit(2)).all()
        if len(found) != 1:
            raise RecordsError(f"no run '{run_id}'" if not found else f"run id '{run_id}' is ambiguous")
        record = json.loads(found[0].record)
        if record["status"] == "incomplete":
            stored = conn.execute(select(results.c.position, results.c.evidence)
                                  .where(results.c.run_id == found[0].run_id)
                                  .order_by(results.c.position)).all()
            for meter in record["meters"]:
                meter["results"] = [json.loads(row.evidence) for row in stored if row.position == meter["position"]]
            held = {f"{r['point']}@pos{m['position']}" for m in record["meters"] for r in m["results"]}
            scope = record["scope"]
            scope["not_run"] = [key for key in scope["not_run"] if key not in held]
            scope["ran"] = scope["planned"] - len(scope["not_run"])
    return record


def history(engine: Engine, serial: str) -> list[dict[str, Any]]:
    """Every run a meter took part in, oldest first, with its test reason ("test_reason": None for
    a record from before runs stated one); ``record.as_found_as_left`` says which is which."""
    query = (select(runs.c.run_id, runs.c.started_at, runs.c.status, runs.c.bench_id, runs.c.plan,
                    meter_runs.c.position, meter_runs.c.firmware, meter_runs.c.verdict, meter_runs.c.certified,
                    runs.c.record)
             .join(meter_runs, meter_runs.c.run_id == runs.c.run_id)
             .where(meter_runs.c.serial == serial).order_by(runs.c.started_at))
    found = []
    with engine.connect() as conn:
        for row in conn.execute(query):
            entry = dict(row._mapping)
            reason = json.loads(entry.pop("record")).get("test_reason") or {}
            found.append({**entry, "test_reason": reason.get("reason"),
                          "test_reason_stated": bool(reason.get("stated"))})
    return found


def register_meters(engine: Engine, meters: Sequence[tuple[str, str]], seen_at: str) -> list[str | None]:
    """Map each meter ID to its MAC once, a board's (serial, MAC) pairs in one transaction (a
    commit each cost a 40-position audit 0.1 s); per pair, None when the mapping is (now) unique,
    else the conflict, as registering them one after another finds it. Two benches registering
    the same meter at once both find it new: the one whose insert fails reads again, and finds
    the other's row."""

    def register(conn: Connection, serial: str, mac: str) -> str | None:
        by_serial = conn.execute(select(meter_registry.c.mac)
                                 .where(meter_registry.c.serial == serial)).scalar_one_or_none()
        by_mac = conn.execute(select(meter_registry.c.serial).where(meter_registry.c.mac == mac)).scalar_one_or_none()
        if by_serial is not None and by_serial != mac:
            return f"meter {serial} is registered with MAC {by_serial}, but reports {mac}"
        if by_mac is not None and by_mac != serial:
            return f"MAC {mac} is already registered to meter {by_mac}"
        if by_serial is None:
            conn.execute(meter_registry.insert().values(serial=serial, mac=mac, first_seen=seen_at))
        return None

    return _in_transaction(engine, lambda conn: [register(conn, serial, mac) for serial, mac in meters])


def append_audit(engine: Engine, serial: str, action: str, operator: str, seal: str, detail: str, at: str) -> bool:
    """Add an audit-trail entry; the same action with the same seal is recorded once (False), also
    when two benches record it at once."""

    def append(conn: Connection) -> bool:
        known = conn.execute(select(audit_trail.c.entry).where(
            (audit_trail.c.serial == serial) & (audit_trail.c.action == action) & (audit_trail.c.seal == seal))).first()
        if known:
            return False
        conn.execute(audit_trail.insert().values(at=at, serial=serial, action=action, operator=operator, seal=seal,
                                                 detail=detail))
        return True

    return _in_transaction(engine, append)


def audit_entries(engine: Engine, serial: str | None = None) -> list[dict[str, Any]]:
    """The audit trail in the order it was written: one meter's entries, or every meter's."""
    query = select(audit_trail).order_by(audit_trail.c.entry)
    with engine.connect() as conn:
        rows = conn.execute(query.where(audit_trail.c.serial == serial) if serial else query)
        return [dict(row._mapping) for row in rows]


def count_rows(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t.name: conn.execute(select(text("count(*)")).select_from(t)).scalar_one()
                for t in (runs, meter_runs, results, meter_registry, audit_trail, certificates)}


@dataclass(frozen=True)
class CanonicalRecord:
    """A record's canonical JSON text, made once per publish, with its UTF-8 bytes and their
    SHA-256: the database stores this text, the signature covers these bytes and the signed file
    holds them, so the three can never differ. ``record`` is the record as given (not to be
    changed afterwards); ``text`` is what a reader recomputes from it after a JSON round trip."""

    record: dict[str, Any]
    text: str
    utf8: bytes
    sha256: str
    parts: CanonicalText = field(default_factory=CanonicalText, compare=False, repr=False)  # for the documents

    @classmethod
    def of(cls, record: dict[str, Any], parts: CanonicalText | None = None) -> CanonicalRecord:
        """One ``canonical_json``, through ``parts`` (which may know some of the record's texts
        already, and goes on to the documents' slices). Dates, enums and tuples come back from JSON
        as the same text; keys other than strings do not always (JSON makes 10 and 9 "10" and "9",
        which then sort the other way), so such a record's text is the one its JSON form gives."""
        parts = parts or CanonicalText()
        text = parts.text(record)  # first: it refuses a circular record, which the walk would not end
        if not _string_keys(record):
            text = canonical_json(json.loads(text))
        utf8 = text.encode("utf-8")
        return cls(record, text, utf8, hashlib.sha256(utf8).hexdigest(), parts)


_SCALARS = (str, int, float, type(None))


def _string_keys(data: Any) -> bool:
    """Whether every mapping in ``data`` has only ``str`` keys (a 40-position record: about 30 ms)."""
    stack = [data]
    pop, extend = stack.pop, stack.extend
    while stack:
        value = pop()
        if isinstance(value, _SCALARS):
            continue
        if isinstance(value, dict):
            for key in value:
                if type(key) is not str:
                    return False
            extend(value.values())
        elif isinstance(value, (list, tuple)):
            extend(value)
    return True


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    head, at, tail = url.rpartition("@")
    return f"{head.split(':')[0]}:{head.split(':')[1]}:***@{tail}" if at and head.count(":") >= 2 else url
