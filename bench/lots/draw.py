"""Drawing a lot's sample: the plan's sample size for the lot's size at the meter type's current
inspection severity, chosen by a recorded seed so that anyone can draw it again.

The rule is public and needs no software: each serial's rank is the SHA-256 (hex) of
"<seed>:<serial>", and the sample is the n serials of smallest rank, in rank order. It depends on
the lot's serials and the seed only (not on the file's order or the Python version).

A lot is drawn once. Drawing it again with the same plan (and no seed, or the same seed) prints
the stored sample; a different draw is refused unless given a reason (--redraw), which keeps the
replaced draw on record, and never once the lot has a verdict: a sample chosen after seeing
results would be no sample.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from bench.lots.ledger import Lot, LotError, SeverityChange, load_lot, record_draw, severity_state
from bench.lots.switching import DISCONTINUED, REDUCED, TIGHTENED, reduced_refusal
from bench.lots.tables import load_plan

SEED_DIGITS = 12  # a generated seed: short enough to read out, far too many to try
METHOD = ("rank each serial by the SHA-256 (hex) of '<seed>:<serial>'; the sample is the n serials of "
          "smallest rank, in rank order")


def rank(seed: int, serial: str) -> str:
    return hashlib.sha256(f"{seed}:{serial}".encode()).hexdigest()


def select(serials: list[str] | tuple[str, ...], n: int, seed: int) -> list[str]:
    return sorted(serials, key=lambda serial: (rank(seed, serial), serial))[:n]


@dataclass(frozen=True)
class Drawn:
    lot: Lot
    draw: dict[str, Any]
    already: bool  # the stored draw, unchanged
    note: str  # what the operator should know (eligibility for reduced inspection, 100 % inspection)


def draw_lot(engine: Engine, lot_id: str, plan_name: str, at: str, seed: int | None = None,
             redraw: str | None = None, reduced_approved_by: str | None = None, production_steady: bool = False,
             resume_approved_by: str | None = None) -> Drawn:
    lot = load_lot(engine, lot_id)
    if lot.verdict is not None and (redraw or lot.draw is None):
        raise LotError(f"lot {lot_id} has its verdict ({lot.verdict}, {lot.verdict_at}): its sample is final")
    if lot.draw is None and redraw:
        raise LotError(f"--redraw: lot {lot_id} has no draw to replace")
    if lot.draw is not None and not redraw:
        stored = lot.draw
        if stored["plan"]["name"] == _plan_name(plan_name) and seed in (None, int(stored["seed"])):
            return Drawn(lot, stored, True, "")
        raise LotError(f"lot {lot_id} was drawn at {stored['drawn_at']} with plan {stored['plan']['name']}, seed "
                       f"{stored['seed']}: a different draw is refused (--redraw REASON replaces it; the first stays "
                       f"on record)")
    plan = load_plan(plan_name)
    state = severity_state(engine, lot.meter_type)
    severity, change, note = state.severity, None, ""
    rules = plan.tables.switching
    if severity == DISCONTINUED:
        if not resume_approved_by:
            raise LotError(f"inspection of {lot.meter_type.manufacturer} {lot.meter_type.model} is discontinued "
                           f"(too many lots rejected on tightened inspection): once the supplier's corrective "
                           f"action is approved, give --resume-approved-by NAME (inspection resumes tightened)")
        severity = TIGHTENED
        change = SeverityChange(TIGHTENED, "resumed", f"inspection resumed on tightened, approved by "
                                                      f"{resume_approved_by} after the supplier's corrective action")
    elif resume_approved_by:
        raise LotError(f"--resume-approved-by: inspection of {lot.meter_type.manufacturer} {lot.meter_type.model} "
                       f"is {severity}, not discontinued")
    if reduced_approved_by:
        if not production_steady:
            raise LotError("--reduced-approved-by: reduced inspection also needs production at a steady rate: "
                           "say so with --production-steady")
        why_not = reduced_refusal(rules, severity, state.history)
        if why_not:
            raise LotError(f"--reduced-approved-by: {lot.meter_type.manufacturer} {lot.meter_type.model}: {why_not}")
        severity = REDUCED
        change = SeverityChange(REDUCED, "reduced approved", f"reduced inspection approved by {reduced_approved_by} "
                                                             f"(production steady) after {len(state.history)} lots")
    elif production_steady:
        raise LotError("--production-steady is stated only with --reduced-approved-by")
    elif reduced_refusal(rules, severity, state.history) is None:
        note = (f"{lot.meter_type.manufacturer} {lot.meter_type.model} may go to reduced inspection "
                f"({rules.reduced_after_accepted} lots accepted in a row): the responsible authority decides "
                f"(--reduced-approved-by NAME --production-steady)")
    cell = plan.cell(severity, lot.size)
    seed = seed if seed is not None else secrets.randbelow(10 ** SEED_DIGITS)
    n = min(cell.n, lot.size)
    if cell.n >= lot.size:
        note = " ".join(filter(None, [note, f"the plan's sample ({cell.n}) is the whole lot ({lot.size}): every meter "
                                            f"is inspected"]))
    draw = {
        "drawn_at": at, "seed": str(seed), "method": METHOD, "plan": plan.describe(), "severity": severity,
        "lot_size": lot.size, "code_letter": plan.tables.letter(lot.size, plan.level), "cell": cell.to_dict(),
        "sample_size": n, "whole_lot": cell.n >= lot.size, "sample": select(lot.serials, n, seed),
        "reason": redraw,
    }
    record_draw(engine, lot, draw, redraw, change)
    return Drawn(load_lot(engine, lot_id), draw, False, note)


def _plan_name(name: str) -> str:
    """The name a plan argument stands for, as a draw records it (a file's [plan] name)."""
    return load_plan(name).name if name.endswith(".toml") or "/" in name else name
