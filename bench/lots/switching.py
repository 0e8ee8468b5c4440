"""Switching between normal, tightened and reduced inspection, per meter type, as the tables'
[switching] rules state (MIL-STD-105E 4.7 and 4.8, which Z1.4 and Z1.9 follow).

Pure: the state is a severity and the outcomes of the lots judged since it began; the records
keep both (bench/lots/ledger.py). Only lots' original inspection counts, and every lot is one here:
a rejected lot resubmitted is a new lot.
"""
from __future__ import annotations

from dataclasses import dataclass

from bench.lots.tables import SwitchingRules

NORMAL, TIGHTENED, REDUCED, DISCONTINUED = "normal", "tightened", "reduced", "discontinued"
STATES = (NORMAL, TIGHTENED, REDUCED, DISCONTINUED)


@dataclass(frozen=True)
class Outcome:
    accepted: bool
    back_to_normal: bool = False  # reduced attributes inspection: accepted with Ac < d < Re


@dataclass(frozen=True)
class Switch:
    severity: str  # after this lot
    why: str  # "" when the severity stays


def after_lot(rules: SwitchingRules, severity: str, since: list[bool], outcome: Outcome) -> Switch:
    """The severity after a lot judged under ``severity``; ``since`` holds the outcomes (True:
    accepted) of the lots judged since that severity began, oldest first, this lot not included."""
    history = [*since, outcome.accepted]
    if severity == NORMAL:
        window = history[-rules.tightened_window:]
        rejected = window.count(False)
        if rejected >= rules.tightened_when_rejected:
            return Switch(TIGHTENED, f"{rejected} of the last {len(window)} lots on normal inspection rejected "
                                     f"(tightened after {rules.tightened_when_rejected} in {rules.tightened_window})")
    elif severity == TIGHTENED:
        rejected = history.count(False)
        if rejected >= rules.discontinue_after_rejected:
            return Switch(DISCONTINUED, f"{rejected} lots rejected on tightened inspection: acceptance inspection "
                                        f"stops until the supplier's corrective action is approved")
        run = _accepted_run(history)
        if run >= rules.normal_after_accepted:
            return Switch(NORMAL, f"{run} consecutive lots accepted on tightened inspection")
    elif severity == REDUCED:
        if not outcome.accepted:
            return Switch(NORMAL, "a lot rejected on reduced inspection")
        if outcome.back_to_normal:
            return Switch(NORMAL, "a lot accepted on reduced inspection with more nonconforming meters than Ac")
    return Switch(severity, "")


def _accepted_run(history: list[bool]) -> int:
    """How many lots at the end of ``history`` were accepted in a row."""
    run = 0
    for accepted in reversed(history):
        if not accepted:
            break
        run += 1
    return run


def reduced_refusal(rules: SwitchingRules, severity: str, since: list[bool]) -> str | None:
    """None when the lots so far allow reduced inspection (the authority and steady production
    still have to be stated), else why not."""
    if severity != NORMAL:
        return f"reduced inspection is entered from normal inspection; this meter type is on {severity}"
    run = _accepted_run(since)
    if run < rules.reduced_after_accepted:
        return (f"{run} consecutive lot(s) accepted on normal inspection; reduced inspection needs "
                f"{rules.reduced_after_accepted}")
    return None
