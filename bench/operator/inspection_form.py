"""The physical inspection as the operator answers it, on the page or at the terminal: the same
fields and the same validation, so a typed "abc" for a torque is refused the same way in both."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from bench.datafiles import Section
from bench.plans.inspection import MAX_TORQUE_IN_LB, Inspection, seal_fault
from bench.station.profile import Position


class InvalidAnswer(ValueError):
    """One line naming the position and the field."""


def torques(text: str, where: str, names: tuple[str, ...]) -> tuple[float, ...] | None:
    """In-lb: one value for every terminal or one per terminal in ``names`` order (commas or spaces
    between); None for an empty answer (not inspected)."""
    parts = text.replace(",", " ").split()
    if not parts:
        return None
    if len(parts) not in (1, len(names)):
        raise InvalidAnswer(f"{where}: {len(parts)} torques for {len(names)} terminals ({', '.join(names)}): "
                            f"give one for all or one each")
    values = []
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise InvalidAnswer(f"{where}: torque {part!r} is not a number of in-lb") from None
        if not math.isfinite(value) or not 0 < value <= MAX_TORQUE_IN_LB:
            raise InvalidAnswer(f"{where}: torque {part!r} is outside 0..{MAX_TORQUE_IN_LB:g} in-lb")
        values.append(value)
    return tuple(values) * (len(names) if len(values) == 1 else 1)


def jaw_tension(text: str, where: str) -> bool:
    answer = text.strip().lower()
    if answer in ("y", "yes"):
        return True
    if answer in ("n", "no"):
        return False
    raise InvalidAnswer(f"{where}: jaw tension {text!r} is neither yes nor no")


def seals(text: str, where: str) -> tuple[str, ...]:
    """The seal numbers fitted, comma-separated: at least one (an inspected meter leaves sealed)."""
    found = tuple(seal.strip() for seal in text.split(",") if seal.strip())
    if not found:
        raise InvalidAnswer(f"{where}: give the seal number(s) fitted")
    for seal in found:
        if (fault := seal_fault(seal)) is not None:
            raise InvalidAnswer(f"{where}: {fault}")
    return found


def operator_name(text: str) -> str:
    name = " ".join(text.split())
    if not name or not name.isprintable():
        raise InvalidAnswer("operator: give the name of who inspected the meters")
    return name


def entry(position: Position, torque_in_lb: tuple[float, ...], jaws_ok: bool, fitted: tuple[str, ...],
          technician: str, source: str) -> Section:
    return Section({"torque_in_lb": list(torque_in_lb), "jaw_tension_ok": jaws_ok, "seals": list(fitted),
                    "technician": technician}, source, position.serial)


def torque_question(names: tuple[str, ...]) -> str:
    return f"terminal torque, in-lb: one for all or one each for {', '.join(names)} (empty: not inspected)"


def fields(positions: tuple[Position, ...], names: tuple[str, ...]) -> list[dict[str, Any]]:
    """The form as the panel draws it."""
    found: list[dict[str, Any]] = [{"name": "operator", "label": "inspected by", "kind": "text"}]
    for pos in positions:
        label = f"position {pos.number} {pos.serial}"
        found.append({"name": f"torque_{pos.number}", "kind": "text", "label": f"{label}: {torque_question(names)}"})
        found.append({"name": f"jaws_{pos.number}", "label": f"{label}: jaw tension good",
                      "kind": "choice", "choices": ["yes", "no"]})
        found.append({"name": f"seals_{pos.number}", "kind": "text", "label": f"{label}: seal number(s) fitted"})
    return found


def from_form(positions: tuple[Position, ...], names: tuple[str, ...], form: Mapping[str, str]) -> Inspection:
    """The whole form, or InvalidAnswer for its first bad field (nothing is taken from a bad form)."""
    technician = operator_name(form.get("operator", ""))
    found = {}
    for pos in positions:
        where = f"position {pos.number} {pos.serial}"
        values = torques(form.get(f"torque_{pos.number}", ""), where, names)
        if values is None:
            continue
        found[pos.serial] = entry(pos, values, jaw_tension(form.get(f"jaws_{pos.number}", ""), where),
                                  seals(form.get(f"seals_{pos.number}", ""), where), technician, "<panel>")
    return found
