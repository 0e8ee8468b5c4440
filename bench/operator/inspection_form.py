"""The physical inspection as the operator answers it, on the page or at the terminal: the same
fields and the same validation, so a typed "abc" for a torque is refused the same way in both."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from bench.datafiles import Section
from bench.plans.audit import MAX_TORQUE_IN_LB
from bench.station.profile import Position

Inspection = dict[str, Section]  # meter serial -> the technician's entry


class InvalidAnswer(ValueError):
    """One line naming the position and the field."""


def torque(text: str, where: str) -> float | None:
    """In-lb, or None for an empty answer (not inspected)."""
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise InvalidAnswer(f"{where}: torque {text!r} is not a number of in-lb") from None
    if not math.isfinite(value) or not 0 < value <= MAX_TORQUE_IN_LB:
        raise InvalidAnswer(f"{where}: torque {text!r} is outside 0..{MAX_TORQUE_IN_LB:g} in-lb")
    return value


def jaw_tension(text: str, where: str) -> bool:
    answer = text.strip().lower()
    if answer in ("y", "yes"):
        return True
    if answer in ("n", "no"):
        return False
    raise InvalidAnswer(f"{where}: jaw tension {text!r} is neither yes nor no")


def operator_name(text: str) -> str:
    name = " ".join(text.split())
    if not name or not name.isprintable():
        raise InvalidAnswer("operator: give the name of who inspected the meters")
    return name


def entry(position: Position, torque_in_lb: float, jaws_ok: bool, technician: str, source: str) -> Section:
    return Section({"torque_in_lb": torque_in_lb, "jaw_tension_ok": jaws_ok, "technician": technician},
                   source, position.serial)


def fields(positions: tuple[Position, ...]) -> list[dict[str, Any]]:
    """The form as the panel draws it."""
    found: list[dict[str, Any]] = [{"name": "operator", "label": "inspected by", "kind": "text"}]
    for pos in positions:
        label = f"position {pos.number} {pos.serial}"
        found.append({"name": f"torque_{pos.number}", "kind": "number",
                      "label": f"{label}: terminal torque, in-lb (empty: not inspected)",
                      "low": 0, "high": MAX_TORQUE_IN_LB})
        found.append({"name": f"jaws_{pos.number}", "label": f"{label}: jaw tension good",
                      "kind": "choice", "choices": ["yes", "no"]})
    return found


def from_form(positions: tuple[Position, ...], form: Mapping[str, str]) -> Inspection:
    """The whole form, or InvalidAnswer for its first bad field (nothing is taken from a bad form)."""
    technician = operator_name(form.get("operator", ""))
    found = {}
    for pos in positions:
        where = f"position {pos.number} {pos.serial}"
        value = torque(form.get(f"torque_{pos.number}", ""), where)
        if value is None:
            continue
        found[pos.serial] = entry(pos, value, jaw_tension(form.get(f"jaws_{pos.number}", ""), where), technician,
                                  "<panel>")
    return found
