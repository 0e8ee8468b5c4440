"""Meter forms as data (bench/standards/forms.toml): elements, board voltage angles, Blondel."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from bench.datafiles import STANDARDS, load_toml

FORMS_FILE = STANDARDS / "forms.toml"


@dataclass(frozen=True)
class Form:
    name: str
    description: str
    elements: int
    voltage_angles_deg: tuple[float, ...]
    blondel: bool  # C12.20 covers Blondel-compliant meters only


@cache
def forms() -> dict[str, Form]:
    doc = load_toml(FORMS_FILE)
    found = {}
    for name in doc.data:
        table = doc.table(name)
        table.unknown({"description", "elements", "voltage_angles_deg", "blondel", "provenance"})
        table.text("provenance")
        angles = table.numbers("voltage_angles_deg", low=-360.0, high=360.0)
        elements = table.integer("elements", low=1, high=3)
        if len(angles) != elements:
            raise table.error("voltage_angles_deg", f"needs {elements} angles, one per element")
        found[name] = Form(name, table.text("description"), elements, angles, table.boolean("blondel"))
    return found
