"""Lots in the records database (the tables of bench/records/store.py's migration 5): a lot and
its meters, its draws (every one kept), its verdict, and per meter type the inspection severity the
switching rules keep, with an append-only log of every change."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.engine import Engine

from bench.lots.inputs import Serials
from bench.lots.switching import NORMAL, Outcome, Switch, after_lot
from bench.lots.tables import SwitchingRules
from bench.records.store import (
    canonical_json,
    inspection_severity,
    lot_draws,
    lot_meters,
    lots,
    severity_log,
)

LOT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # it names the lot's report files too


class LotError(RuntimeError):
    """A lot operation the records refuse; the message is one line naming the lot."""


@dataclass(frozen=True)
class MeterType:
    manufacturer: str
    model: str
    form: str
    accuracy_class: float

    def describe(self) -> str:
        return f"{self.manufacturer} {self.model} (form {self.form}, class {self.accuracy_class:g})"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Lot:
    lot_id: str
    created_at: str
    meter_type: MeterType
    serials: tuple[str, ...]  # in the serials file's order
    serials_file: str
    serials_sha256: str
    manufacturer_data: dict[str, dict[str, float]]
    drawn_at: str | None
    draw: dict[str, Any] | None
    verdict: str | None
    verdict_at: str | None
    verdict_record: dict[str, Any] | None

    @property
    def size(self) -> int:
        return len(self.serials)

    @property
    def sample(self) -> list[str]:
        return list(self.draw["sample"]) if self.draw else []

    def summary(self) -> dict[str, Any]:
        return {"lot_id": self.lot_id, "created_at": self.created_at, "meter_type": self.meter_type.to_dict(),
                "size": self.size, "serials_file": self.serials_file, "serials_sha256": self.serials_sha256,
                "manufacturer_data_serials": len(self.manufacturer_data)}


def check_lot_id(lot_id: str) -> str:
    if not LOT_ID.fullmatch(lot_id):
        raise LotError(f"lot id {lot_id[:70]!r}: use letters, digits and ._- (at most 64, starting with a letter "
                       f"or digit): it names the lot's report files")
    return lot_id


def create_lot(engine: Engine, lot_id: str, meter_type: MeterType, serials: Serials,
               manufacturer_data: dict[str, dict[str, float]], at: str) -> tuple[Lot, bool]:
    """(the lot, True) once; creating the very same lot again is (the lot, False), a different
    one under the same id is refused: a lot's membership never changes."""
    check_lot_id(lot_id)
    with engine.begin() as conn:
        known = conn.execute(select(lots).where(lots.c.lot_id == lot_id)).first()
        if known is not None:
            same = (known.serials_sha256 == serials.sha256 and known.manufacturer == meter_type.manufacturer
                    and known.model == meter_type.model and known.form == meter_type.form
                    and known.accuracy_class == meter_type.accuracy_class
                    and json.loads(known.manufacturer_data or "{}") == manufacturer_data)
            if not same:
                raise LotError(f"lot {lot_id} exists (created {known.created_at} from {known.serials_file}) with other "
                               f"serials, meter type or manufacturer's data: a lot never changes; use a new lot id")
        else:
            conn.execute(lots.insert().values(
                lot_id=lot_id, created_at=at, manufacturer=meter_type.manufacturer, model=meter_type.model,
                form=meter_type.form, accuracy_class=meter_type.accuracy_class, size=len(serials.lines),
                serials_file=serials.path[-300:], serials_sha256=serials.sha256,
                manufacturer_data=canonical_json(manufacturer_data) if manufacturer_data else None))
            conn.execute(lot_meters.insert(), [{"lot_id": lot_id, "serial": serial, "line": line}
                                               for serial, line in serials.lines.items()])
    return load_lot(engine, lot_id), known is None


def load_lot(engine: Engine, lot_id: str) -> Lot:
    with engine.connect() as conn:
        row = conn.execute(select(lots).where(lots.c.lot_id == lot_id)).first()
        if row is None:
            raise LotError(f"no lot '{lot_id[:70]}' in the records (create it with `bench lot create`)")
        serials = conn.execute(select(lot_meters.c.serial).where(lot_meters.c.lot_id == lot_id)
                               .order_by(lot_meters.c.line)).scalars().all()
    return Lot(row.lot_id, row.created_at, MeterType(row.manufacturer, row.model, row.form, row.accuracy_class),
               tuple(serials), row.serials_file, row.serials_sha256, json.loads(row.manufacturer_data or "{}"),
               row.drawn_at, json.loads(row.draw) if row.draw else None, row.verdict, row.verdict_at,
               json.loads(row.verdict_record) if row.verdict_record else None)


def draw_history(engine: Engine, lot_id: str) -> list[dict[str, Any]]:
    """Every draw of the lot, first first: a replaced draw stays on record with the reason."""
    with engine.connect() as conn:
        rows = conn.execute(select(lot_draws).where(lot_draws.c.lot_id == lot_id).order_by(lot_draws.c.entry)).all()
    return [{**{k: v for k, v in row._mapping.items() if k != "draw"}, "draw": json.loads(row.draw)} for row in rows]


@dataclass(frozen=True)
class SeverityState:
    severity: str
    since: str | None  # None: never judged (normal inspection at the start)
    history: list[bool]  # outcomes judged since `since`


def severity_state(conn_or_engine: Engine | Connection, meter_type: MeterType) -> SeverityState:
    """Where the switching rules stand for a meter type (manufacturer and model): normal at first."""
    query = select(inspection_severity).where((inspection_severity.c.manufacturer == meter_type.manufacturer)
                                              & (inspection_severity.c.model == meter_type.model))
    if isinstance(conn_or_engine, Engine):
        with conn_or_engine.connect() as conn:
            row = conn.execute(query).first()
    else:
        row = conn_or_engine.execute(query).first()
    if row is None:
        return SeverityState(NORMAL, None, [])
    return SeverityState(row.severity, row.since, json.loads(row.history))


def _save_severity(conn: Connection, meter_type: MeterType, state: SeverityState, new: SeverityState,
                   event: str, detail: str, at: str, lot_id: str | None) -> None:
    values = {"severity": new.severity, "since": new.since or at, "history": json.dumps(new.history)}
    key = ((inspection_severity.c.manufacturer == meter_type.manufacturer)
           & (inspection_severity.c.model == meter_type.model))
    if conn.execute(select(inspection_severity.c.severity).where(key)).first() is None:
        conn.execute(inspection_severity.insert().values(manufacturer=meter_type.manufacturer,
                                                         model=meter_type.model, **values))
    else:
        conn.execute(update(inspection_severity).where(key).values(**values))
    conn.execute(severity_log.insert().values(at=at, manufacturer=meter_type.manufacturer, model=meter_type.model,
                                              lot_id=lot_id, event=event, severity_before=state.severity,
                                              severity_after=new.severity, detail=detail))


@dataclass(frozen=True)
class SeverityChange:
    """A change the draw makes before drawing: the authority approving reduced inspection, or
    resuming after a discontinuation."""

    after: str
    event: str
    detail: str


def record_draw(engine: Engine, lot: Lot, draw: dict[str, Any], reason: str | None,
                change: SeverityChange | None) -> None:
    """Store the draw (and the severity change it was made under) in one transaction."""
    with engine.begin() as conn:
        if change is not None:
            state = severity_state(conn, lot.meter_type)
            _save_severity(conn, lot.meter_type, state, SeverityState(change.after, draw["drawn_at"], []),
                           change.event, change.detail, draw["drawn_at"], lot.lot_id)
        conn.execute(update(lots).where(lots.c.lot_id == lot.lot_id).values(drawn_at=draw["drawn_at"],
                                                                             draw=canonical_json(draw)))
        conn.execute(update(lot_meters).where(lot_meters.c.lot_id == lot.lot_id).values(sample_order=None))
        for order, serial in enumerate(draw["sample"], start=1):
            conn.execute(update(lot_meters).where((lot_meters.c.lot_id == lot.lot_id) & (lot_meters.c.serial == serial))
                         .values(sample_order=order))
        conn.execute(lot_draws.insert().values(lot_id=lot.lot_id, drawn_at=draw["drawn_at"], seed=draw["seed"],
                                               plan=draw["plan"]["name"][:100], severity=draw["severity"],
                                               sample_size=len(draw["sample"]), reason=reason,
                                               draw=canonical_json(draw)))


def record_verdict(engine: Engine, lot: Lot, record: dict[str, Any], outcome: Outcome, rules: SwitchingRules,
                   at: str) -> Switch:
    """Store the lot's verdict and move its meter type's severity on, in one transaction, once: a
    lot already judged is refused here (the caller re-publishes the stored record instead)."""
    with engine.begin() as conn:
        stored = conn.execute(select(lots.c.verdict).where(lots.c.lot_id == lot.lot_id)).scalar_one()
        if stored is not None:
            raise LotError(f"lot {lot.lot_id} was already judged: {stored}")
        state = severity_state(conn, lot.meter_type)
        drawn_under = lot.draw["severity"] if lot.draw else NORMAL
        verdict = record["decision"]
        detail = f"lot {lot.lot_id} {verdict.lower()} on {drawn_under} inspection"
        if state.severity != drawn_under:  # another lot moved the type on after this draw
            switch, new = Switch(state.severity, ""), state
            detail += f", drawn before the meter type went to {state.severity}: not counted by the switching rules"
        else:
            switch = after_lot(rules, state.severity, state.history, outcome)
            new = (SeverityState(switch.severity, at, []) if switch.severity != state.severity
                   else SeverityState(state.severity, state.since, [*state.history, outcome.accepted]))
            detail += f"; {switch.why}" if switch.why else ""
        _save_severity(conn, lot.meter_type, state, new, f"lot {verdict.lower()}", detail, at, lot.lot_id)
        record["severity"] = {**record.get("severity", {}), "after": switch.severity, "why": switch.why}
        conn.execute(update(lots).where(lots.c.lot_id == lot.lot_id).values(
            verdict=verdict, verdict_at=at, verdict_record=canonical_json(record)))
    return switch


def severity_log_entries(engine: Engine, meter_type: MeterType) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(severity_log).where((severity_log.c.manufacturer == meter_type.manufacturer)
                                                       & (severity_log.c.model == meter_type.model))
                            .order_by(severity_log.c.entry)).all()
    return [dict(row._mapping) for row in rows]
