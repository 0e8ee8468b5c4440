"""The technician's physical inspection of each meter: the torque on every terminal, the jaw
tension, the seal numbers fitted, and who inspected. One schema for the file (``--inspection``),
the simulated technician, the panel's form and the terminal's questions."""
from __future__ import annotations

from pathlib import Path

from bench.datafiles import ConfigError, Section, load_toml
from bench.metrology.forms import Form

MAX_TORQUE_IN_LB = 1000.0  # socket and meter terminal screws are tens of in-lb
MAX_SEAL_CHARS = 64  # the audit trail's seal column
KEYS = {"torque_in_lb", "jaw_tension_ok", "seals", "technician"}

Inspection = dict[str, Section]  # meter serial -> the technician's entry


def terminals(form: Form) -> tuple[str, ...]:
    """The terminals torqued: each current circuit's line and load side, in that order. The lab's
    working convention, to be confirmed with its own inspection procedure (a socket's neutral
    terminal is not among them)."""
    return tuple(f"I{c} {side}" for c in range(1, form.circuits + 1) for side in ("line", "load"))


def torques(entry: Section, names: tuple[str, ...] | None) -> tuple[float, ...]:
    """One torque per terminal: a list (one each, in ``terminals`` order) or one number for all.
    ``names`` None: the file alone, whose meters' form (so the list's length) is not known yet."""
    if isinstance(entry.data.get("torque_in_lb"), list):
        values = entry.numbers("torque_in_lb", length=len(names) if names is not None else None,
                               low=0.0, high=MAX_TORQUE_IN_LB)
        if 0.0 in values:
            raise entry.error("torque_in_lb", "a torque of 0 in-lb is a terminal not torqued: leave the entry out")
        return values
    return (entry.number("torque_in_lb", positive=True, high=MAX_TORQUE_IN_LB),) * (len(names) if names else 1)


def seal_fault(seal: str) -> str | None:
    """Why ``seal`` is not a seal number, or None: the file's check and the form's."""
    if len(seal) > MAX_SEAL_CHARS or not seal.isprintable():
        return f"{seal!r} is not a seal number (printable, at most {MAX_SEAL_CHARS} chars)"
    return None


def seals(entry: Section) -> tuple[str, ...]:
    """The seal numbers fitted (none recorded: an empty tuple, which the audit's check fails)."""
    if "seals" not in entry:
        return ()
    found = entry.texts("seals")
    for seal in found:
        if (fault := seal_fault(seal)) is not None:
            raise entry.error("seals", fault)
    return found


def load_inspection(path: Path) -> Inspection:
    """One table per meter serial, every value typed; a torque list's length is checked against the
    meter's form where the check runs (the file does not say which form)."""
    doc = load_toml(path)
    found = {}
    for serial in doc.data:
        entry = doc.table(serial)
        entry.unknown(KEYS)
        torques(entry, None)
        entry.boolean("jaw_tension_ok")
        seals(entry)
        if "technician" in entry:
            entry.text("technician")
        found[serial] = entry
    return found


def described(entry: Section, names: tuple[str, ...], low: float, high: float) -> tuple[bool, str]:
    """Whether the entry passes (every terminal within low..high, jaws good, a seal recorded) and
    what it says: the torques (every terminal out of band named), jaw tension, seals, who."""
    try:
        values = torques(entry, names)
        fitted = seals(entry)
        jaws = entry.boolean("jaw_tension_ok")
    except ConfigError as error:
        return False, str(error)
    outside = [f"{name} {value:g}" for name, value in zip(names, values) if not low <= value <= high]
    if len(set(values)) == 1:
        said = f"torque {values[0]:g} in-lb on all {len(names)} terminals"
    else:
        said = "torques " + "/".join(f"{v:g}" for v in values) + f" in-lb ({', '.join(names)})"
    if outside:
        said += f", OUTSIDE the band: {', '.join(outside)}"
    said += f", jaw tension {'good' if jaws else 'NOT good'}"
    said += f", seals {', '.join(fitted)}" if fitted else ", NO seal number recorded"
    who = f" by {entry.data['technician']}" if "technician" in entry.data else ""
    return not outside and jaws and bool(fitted), said + who
