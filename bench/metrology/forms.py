"""Meter forms as data (bench/standards/forms.toml): elements, board voltage angles, the current
circuits each element adds up, and Blondel compliance."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from bench.datafiles import STANDARDS, Section, load_toml

FORMS_FILE = STANDARDS / "forms.toml"
CircuitMap = tuple[tuple[float, ...], ...]  # one row per element, one column per current circuit


@dataclass(frozen=True)
class Form:
    name: str
    description: str
    elements: int
    voltage_angles_deg: tuple[float, ...]
    blondel: bool  # which limits tables apply is the tables' business; this is the form's fact
    circuit_map: CircuitMap | None = None  # None: one circuit per element, seen whole

    @property
    def circuits(self) -> int:
        return len(self.circuit_map[0]) if self.circuit_map else self.elements

    def element_of(self, circuit: int) -> int:
        """The element (0-based) a circuit (0-based) feeds, on a form a board can drive."""
        if self.circuit_map is None:
            return circuit
        return next(e for e, row in enumerate(self.circuit_map) if row[circuit] != 0)

    def shared_circuits(self) -> list[int]:
        """Circuits (1-based) that feed more than one element or feed one against its voltage:
        a board energising circuits from one phase per element cannot drive them."""
        if self.circuit_map is None:
            return []
        return [c + 1 for c in range(self.circuits)
                if sum(1 for row in self.circuit_map if row[c] != 0) != 1
                or min(row[c] for row in self.circuit_map) < 0]

    def circuits_of(self, element: int) -> list[int]:
        """The circuits (0-based) element ``element`` (0-based) adds up."""
        if self.circuit_map is None:
            return [element]
        return [c for c, share in enumerate(self.circuit_map[element]) if share != 0]


@cache
def forms() -> dict[str, Form]:
    doc = load_toml(FORMS_FILE)
    found = {}
    for name in doc.data:
        table = doc.table(name)
        table.unknown({"description", "elements", "voltage_angles_deg", "circuits", "blondel", "provenance"})
        table.text("provenance")
        angles = table.numbers("voltage_angles_deg", low=-360.0, high=360.0)
        elements = table.integer("elements", low=1, high=3)
        if len(angles) != elements:
            raise table.error("voltage_angles_deg", f"needs {elements} angles, one per element")
        found[name] = Form(name, table.text("description"), elements, angles, table.boolean("blondel"),
                           _circuit_map(table, elements))
    return found


def _circuit_map(table: Section, elements: int) -> CircuitMap | None:
    raw = table.data.get("circuits")
    if raw is None:
        return None
    rows = raw if isinstance(raw, list) else []
    if (len(rows) != elements or not all(isinstance(r, list) and r for r in rows)
            or len({len(r) for r in rows}) != 1
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and -1.0 <= x <= 1.0
                       for r in rows for x in r)):
        raise table.error("circuits", f"expected {elements} rows (one per element) of equal length, "
                                      f"each share a number in [-1, 1], got {raw!r}")
    circuit_map = tuple(tuple(float(x) for x in r) for r in rows)
    for c in range(len(circuit_map[0])):
        if all(row[c] == 0 for row in circuit_map):
            raise table.error("circuits", f"current circuit {c + 1} feeds no element")
    return circuit_map
