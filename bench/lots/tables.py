"""Sampling tables and plans as lab data (bench/standards/sampling/), validated whole when loaded.

A tables file holds one standard's tables: sample size code letters by lot size and inspection
level, sample sizes, and per inspection severity (normal, tightened, reduced) and AQL column
either the variables constants (k and M) or the attributes numbers (Ac and Re), with the switching
rules. A plan file names its tables, the inspection level, the AQL and (for variables) the form
and the test points judged. Anything unusable is one line naming the file and the key; arrows in
the printed tables are resolved here, once, so a plan's cell is always a concrete plan.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.datafiles import STANDARDS, ConfigError, Section, load_toml
from bench.lots.statistics import k_from_m

SAMPLING = STANDARDS / "sampling"
SEVERITIES = ("normal", "tightened", "reduced")
ARROWS = ("down", "up")
KINDS = ("variables", "attributes")
MAX_SAMPLE = 5000  # above any table's largest sample (Z1.4 letter R: 2000)
MAX_K = 5.0  # an acceptability constant; the tables' largest is below 3.5
K_AGREEMENT = 0.01  # k and M of one plan, each printed to three digits, agree this well
_PLAN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_AC_RE = re.compile(r"(\d{1,4})/(\d{1,4})")


@dataclass(frozen=True)
class Cell:
    """One resolved plan: the code letter whose plan it is (an arrow leads to another letter's),
    its sample size and its criteria (k and M for variables, Ac and Re for attributes)."""

    letter: str
    n: int
    k: float | None = None
    m_pct: float | None = None
    ac: int | None = None
    re: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if value is not None}


CellTable = dict[tuple[str, float], dict[str, Cell]]  # (severity, AQL) -> code letter -> resolved plan


@dataclass(frozen=True)
class SwitchingRules:
    tightened_when_rejected: int
    tightened_window: int
    normal_after_accepted: int
    reduced_after_accepted: int
    discontinue_after_rejected: int
    provenance: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Tables:
    source: str
    digest: str
    kind: str
    name: str
    standard: str
    provenance: str
    lot_from: tuple[int, ...]
    levels: dict[str, tuple[str, ...]]
    cells: CellTable
    provenances: dict[str, str]  # per table: code_letters, sample_sizes, normal, tightened, reduced
    switching: SwitchingRules

    def letter(self, lot_size: int, level: str) -> str:
        """The sample size code letter for a lot of this size at this inspection level."""
        if lot_size < self.lot_from[0]:
            raise ConfigError(f"{self.source}: code_letters: a lot of {lot_size} is below the table's smallest "
                              f"lot size ({self.lot_from[0]})")
        row = max(i for i, start in enumerate(self.lot_from) if start <= lot_size)
        return self.levels[level][row]

    def cell(self, severity: str, aql: float, letter: str) -> Cell:
        return self.cells[(severity, aql)][letter]


def _digest(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _int(section: Section, name: str, low: int, high: int) -> int:
    return section.integer(name, low=low, high=high)


def _letters_in_order(sizes: Section) -> tuple[list[str], dict[str, int]]:
    """The code letters in the order of their (strictly increasing) sample sizes."""
    letters = [name for name in sizes.data if name != "provenance"]
    if not letters:
        raise sizes.error("", "no code letters")
    found: dict[str, int] = {}
    for letter in letters:
        if not re.fullmatch(r"[A-Z]", letter):
            raise sizes.error(letter, "a code letter is one capital letter")
        found[letter] = _int(sizes, letter, 2, MAX_SAMPLE)
        if len(found) > 1 and found[letter] <= list(found.values())[-2]:
            raise sizes.error(letter, f"sample size {found[letter]} is not above the previous letter's")
    return letters, found


def _code_letters(section: Section, letters: list[str]) -> tuple[tuple[int, ...], dict[str, tuple[str, ...]]]:
    section.unknown({"lot_from", "levels", "provenance"})
    section.text("provenance")
    lot_from = section.numbers("lot_from", low=2, high=1e9)
    if not lot_from or lot_from[0] != 2 or any(not float(v).is_integer() for v in lot_from):
        raise section.error("lot_from", "expected whole lot sizes starting at 2")
    if any(b <= a for a, b in zip(lot_from, lot_from[1:])):
        raise section.error("lot_from", "lot sizes must increase row by row")
    levels_section = section.table("levels")
    levels: dict[str, tuple[str, ...]] = {}
    for level in levels_section.data:
        row = levels_section.texts(level)
        if len(row) != len(lot_from):
            raise levels_section.error(level, f"expected {len(lot_from)} letters, one per lot size row")
        for i, letter in enumerate(row):
            if letter not in letters:
                raise levels_section.error(level, f"row {i + 1}: '{letter}' is not a code letter of sample_sizes")
            if i and letters.index(letter) < letters.index(row[i - 1]):
                raise levels_section.error(level, f"row {i + 1}: letter {letter} after {row[i - 1]}: code letters "
                                                  f"must not fall as the lot grows")
        if levels:
            below = list(levels)[-1]
            for i, (low, high) in enumerate(zip(levels[below], row)):
                if letters.index(high) < letters.index(low):
                    raise levels_section.error(level, f"row {i + 1}: letter {high} is below level {below}'s {low}: "
                                                      f"levels must be listed from the smallest sample up")
        levels[level] = row
    if not levels:
        raise levels_section.error("", "no inspection levels")
    return tuple(int(v) for v in lot_from), levels


def _aqls(section: Section, name: str = "aql") -> tuple[float, ...]:
    aqls = section.numbers(name, low=0.01, high=15.0)
    if not aqls or any(b <= a for a, b in zip(aqls, aqls[1:])):
        raise section.error(name, "expected AQL columns (%) in increasing order")
    return aqls


def _rows(section: Section, letters: list[str], width: int) -> dict[str, list[Any]]:
    """Every code letter's row of cells, each row as wide as the AQL columns."""
    rows: dict[str, list[Any]] = {}
    for letter in section.data:
        if letter not in letters:
            raise section.error(letter, "not a code letter of sample_sizes")
        row = section.data[letter]
        if not isinstance(row, list) or len(row) != width:
            raise section.error(letter, f"expected {width} cells, one per AQL column")
        rows[letter] = row
    missing = [letter for letter in letters if letter not in rows]
    if missing:
        raise section.error(missing[0], "missing: every code letter needs a row")
    return rows


def _resolve(section: Section, raw: dict[str, list[Any]], letters: list[str], column: int, aql: float,
             make: Any) -> dict[str, Cell]:
    """Follow each arrow of one AQL column to the plan it points at (that plan's letter and n)."""
    resolved: dict[str, Cell] = {}
    for letter in letters:
        at, direction = letters.index(letter), 0
        while raw[letters[at]][column] in ARROWS:
            step = 1 if raw[letters[at]][column] == "down" else -1
            if direction and step != direction:
                raise section.error(letter, f"AQL {aql:g}: its arrow leads to an arrow the other way")
            direction, at = step, at + step
            if not 0 <= at < len(letters):
                raise section.error(letter, f"AQL {aql:g}: its arrow leads out of the table to no plan")
        resolved[letter] = make(letters[at], raw[letters[at]][column])
    return resolved


def _variables(doc: Section, letters: list[str], sizes: dict[str, int]) -> tuple[CellTable, dict[str, str]]:
    normal = doc.table("normal")
    normal.unknown({"aql", "provenance", "k", "M"})
    aqls = _aqls(normal)
    k_rows = _rows(normal.table("k"), letters, len(aqls))
    m_rows = _rows(normal.table("M"), letters, len(aqls))
    k_section, m_section = normal.table("k"), normal.table("M")
    for letter in letters:
        for i, (k, m) in enumerate(zip(k_rows[letter], m_rows[letter])):
            if (k in ARROWS or m in ARROWS) and k != m:
                raise k_section.error(letter, f"AQL {aqls[i]:g}: k is {k!r} where M is {m!r}: arrows must match")
            if k in ARROWS:
                continue
            _check_k_m(k_section, m_section, letter, aqls[i], sizes[letter], k, m)
    for letter in letters:
        numbers = [(i, k) for i, k in enumerate(k_rows[letter]) if k not in ARROWS]
        for (_, a), (j, b) in zip(numbers, numbers[1:]):
            if b >= a:
                raise k_section.error(letter, f"AQL {aqls[j]:g}: k {b:g} is not below the smaller AQL's {a:g}")
    for i, aql in enumerate(aqls):
        k_column = [(letter, k_rows[letter][i]) for letter in letters if k_rows[letter][i] not in ARROWS]
        for (_, a), (below, b) in zip(k_column, k_column[1:]):
            if b < a:
                raise k_section.error(below, f"AQL {aql:g}: k {b:g} is below the smaller sample's {a:g}")
    cells: CellTable = {}
    for i, aql in enumerate(aqls):
        cells[("normal", aql)] = _resolve(k_section, k_rows, letters, i, aql,
                                          lambda target, k, i=i: Cell(target, sizes[target], float(k),
                                                                      float(m_rows[target][i])))
    tightened = doc.table("tightened")
    tightened.unknown({"aql", "normal_column", "provenance"})
    tightened_aqls = _aqls(tightened)
    columns = tightened.numbers("normal_column", length=len(tightened_aqls), low=0.01, high=15.0)
    for aql, normal_aql in zip(tightened_aqls, columns):
        if normal_aql not in aqls:
            raise tightened.error("normal_column", f"{normal_aql:g} is not one of normal.aql")
        if normal_aql >= aql:
            raise tightened.error("normal_column", f"tightened AQL {aql:g} reads normal column {normal_aql:g}: "
                                                   f"tightened must be a smaller AQL's plan")
        cells[("tightened", aql)] = cells[("normal", normal_aql)]
    reduced = doc.table("reduced")
    reduced.unknown({"aql", "provenance", "plans"})
    reduced_aqls = _aqls(reduced)
    plans = reduced.table("plans")
    rows = _rows(plans, letters, len(reduced_aqls))
    for i, aql in enumerate(reduced_aqls):
        reduced_cells: dict[str, Cell] = {}
        for letter in letters:
            cell = rows[letter][i]
            if (not isinstance(cell, list) or len(cell) != 3 or isinstance(cell[0], bool)
                    or not isinstance(cell[0], int) or not 2 <= cell[0] <= MAX_SAMPLE):
                raise plans.error(letter, f"AQL {aql:g}: expected [n, k, M %] with n a whole sample size, got {cell!r}")
            _check_k_m(plans, plans, letter, aql, cell[0], cell[1], cell[2])
            reduced_cells[letter] = Cell(letter, cell[0], float(cell[1]), float(cell[2]))
        cells[("reduced", aql)] = reduced_cells
    return cells, {"normal": normal.text("provenance"), "tightened": tightened.text("provenance"),
                   "reduced": reduced.text("provenance")}


def _check_k_m(k_section: Section, m_section: Section, letter: str, aql: float, n: int, k: Any, m: Any) -> None:
    """A plan's k and M are tied by the Table B-5 relation: a typo in either shows as disagreement."""
    if isinstance(k, bool) or not isinstance(k, (int, float)) or not 0 < k <= MAX_K:
        raise k_section.error(letter, f"AQL {aql:g}: k must be a number in (0, {MAX_K:g}] or an arrow, got {k!r}")
    if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 < m < 50:
        raise m_section.error(letter, f"AQL {aql:g}: M must be a percentage in (0, 50) or an arrow, got {m!r}")
    implied = k_from_m(float(m), n)
    if abs(implied - k) > K_AGREEMENT:
        raise k_section.error(letter, f"AQL {aql:g}: k = {k:g} and M = {m:g} % disagree for n = {n} "
                                      f"(M implies k = {implied:.3f}): one of them is mistyped")


def _ac_re(section: Section, letter: str, aql: float, cell: Any, reduced: bool) -> tuple[int, int] | None:
    if cell in ARROWS:
        return None
    match = _AC_RE.fullmatch(cell) if isinstance(cell, str) else None
    if match is None:
        raise section.error(letter, f"AQL {aql:g}: expected \"Ac/Re\", \"down\" or \"up\", got {cell!r}")
    ac, re_ = int(match.group(1)), int(match.group(2))
    if re_ <= ac or (not reduced and re_ != ac + 1):
        wanted = "above Ac" if reduced else f"Ac + 1 = {ac + 1}"
        raise section.error(letter, f"AQL {aql:g}: Re {re_} must be {wanted}")
    return ac, re_


def _attributes(doc: Section, letters: list[str], sizes: dict[str, int]) -> tuple[CellTable, dict[str, str]]:
    sample_sizes = doc.table("sample_sizes")
    reduced_sizes = sample_sizes.table("reduced")
    cells: CellTable = {}
    provenances: dict[str, str] = {}
    for severity in SEVERITIES:
        table = doc.table(severity)
        table.unknown({"aql", "provenance", "plans"})
        provenances[severity] = table.text("provenance")
        aqls = _aqls(table)
        plans = table.table("plans")
        rows = _rows(plans, letters, len(aqls))
        numbers = {letter: [_ac_re(plans, letter, aql, cell, severity == "reduced")
                            for aql, cell in zip(aqls, rows[letter])] for letter in letters}
        n_of = {letter: (_int(reduced_sizes, letter, 2, MAX_SAMPLE) if severity == "reduced" else sizes[letter])
                for letter in letters}
        for letter in letters:
            ac_row = [(aqls[i], c) for i, c in enumerate(numbers[letter]) if c is not None]
            for (_, a), (aql, b) in zip(ac_row, ac_row[1:]):
                if b[0] < a[0]:
                    raise plans.error(letter, f"AQL {aql:g}: Ac {b[0]} is below the smaller AQL's {a[0]}")
        for i, aql in enumerate(aqls):
            ac_column = [(letter, c) for letter in letters if (c := numbers[letter][i]) is not None]
            for (_, a), (below, b) in zip(ac_column, ac_column[1:]):
                if b[0] < a[0]:
                    raise plans.error(below, f"AQL {aql:g}: Ac {b[0]} is below the smaller sample's {a[0]}")
            cells[(severity, aql)] = _resolve(
                plans, rows, letters, i, aql,
                lambda target, cell, i=i, n_of=n_of, numbers=numbers: Cell(
                    target, n_of[target], ac=numbers[target][i][0], re=numbers[target][i][1]))
    return cells, provenances


def _switching(section: Section) -> SwitchingRules:
    section.unknown({"tightened_when_rejected", "tightened_window", "normal_after_accepted", "reduced_after_accepted",
                     "discontinue_after_rejected", "provenance"})
    window = _int(section, "tightened_window", 1, 100)
    return SwitchingRules(_int(section, "tightened_when_rejected", 1, window), window,
                          _int(section, "normal_after_accepted", 1, 100),
                          _int(section, "reduced_after_accepted", 1, 100),
                          _int(section, "discontinue_after_rejected", 1, 100), section.text("provenance"))


_LOADED: dict[tuple[str, str], Tables] = {}  # (path, SHA-256 of its bytes) -> checked tables


def load_tables(path: Path) -> Tables:
    """A standard's tables, every cell checked and every arrow resolved (once per file content)."""
    try:
        key = (str(path), _digest(path))
    except OSError:
        key = None  # load_toml says what is wrong, in one line
    if key in _LOADED:
        return _LOADED[key]
    tables = _load_tables(path)
    if key is not None:
        _LOADED[key] = tables
    return tables


def _load_tables(path: Path) -> Tables:
    doc = load_toml(path)
    doc.unknown({"table", "code_letters", "sample_sizes", "normal", "tightened", "reduced", "switching"})
    head = doc.table("table")
    head.unknown({"name", "standard", "provenance"})
    sizes_section = doc.table("sample_sizes")
    if "normal" in sizes_section.data:  # attributes: normal (and tightened) sizes, and reduced sizes
        sizes_section.unknown({"normal", "reduced", "provenance"})
        kind = "attributes"
        letters, sizes = _letters_in_order(sizes_section.table("normal"))
        reduced = sizes_section.table("reduced")
        for letter in letters:
            _int(reduced, letter, 2, MAX_SAMPLE)
        reduced.unknown(set(letters))
    else:
        kind = "variables"
        letters, sizes = _letters_in_order(sizes_section)
    sizes_section.text("provenance")
    lot_from, levels = _code_letters(doc.table("code_letters"), letters)
    cells, provenances = (_variables if kind == "variables" else _attributes)(doc, letters, sizes)
    provenances = {"code_letters": doc.table("code_letters").text("provenance"),
                   "sample_sizes": sizes_section.text("provenance"), **provenances}
    return Tables(doc.source, _digest(path), kind, head.text("name"), head.text("standard"), head.text("provenance"),
                  lot_from, levels, cells, provenances, _switching(doc.table("switching")))


@dataclass(frozen=True)
class Quantity:
    """A test point's registration error judged by a variables plan, and where its limits come
    from: stated here, or (None) the tolerance recorded with each result."""

    point: str
    side: str  # both, upper or lower
    lower_pct: float | None
    upper_pct: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Plan:
    source: str
    digest: str  # of the plan file and its tables file
    name: str
    title: str
    kind: str
    level: str
    aql: float
    form: str | None  # variables: "k" (Form 1) or "M" (Form 2)
    quantities: tuple[Quantity, ...]
    provenance: str
    tables: Tables

    def cell(self, severity: str, lot_size: int) -> Cell:
        return self.tables.cell(severity, self.aql, self.tables.letter(lot_size, self.level))

    def describe(self) -> dict[str, Any]:
        """What a lot's draw keeps of its plan, so the verdict and the report never reread the files."""
        t = self.tables
        return {"name": self.name, "title": self.title, "kind": self.kind, "source": self.source,
                "digest": self.digest, "inspection_level": self.level, "aql": self.aql, "form": self.form,
                "quantities": [q.to_dict() for q in self.quantities], "provenance": self.provenance,
                "tables": {"name": t.name, "standard": t.standard, "source": t.source, "provenance": t.provenance,
                           "by_table": t.provenances},
                "switching": t.switching.to_dict()}


def plan_path(name: str) -> Path:
    """A shipped plan by name (bench/standards/sampling/NAME.toml), or a lab's plan file by path."""
    if name.endswith(".toml") or "/" in name:
        return Path(name)
    known = sorted(p.stem for p in SAMPLING.glob("*.toml") if _is_plan(p))
    if not _PLAN_NAME.fullmatch(name) or name not in known:
        raise ConfigError(f"--plan {name}: unknown plan (shipped: {', '.join(known)}; or give a plan file)")
    return SAMPLING / f"{name}.toml"


def _is_plan(path: Path) -> bool:
    try:
        return "plan" in load_toml(path).data
    except ConfigError:
        return False


def load_plan(name: str) -> Plan:
    """A plan and its tables, checked together: its level, AQL and severities must exist in them."""
    path = plan_path(name)
    doc = load_toml(path)
    doc.unknown({"plan", "quantity"})
    plan = doc.table("plan")
    plan.unknown({"name", "title", "kind", "tables", "inspection_level", "aql", "form", "provenance"})
    kind = plan.text("kind", choices=KINDS)
    tables_name = plan.text("tables")
    if "/" in tables_name or not tables_name.endswith(".toml"):
        raise plan.error("tables", f"'{tables_name}': name a tables file beside the plan or in {SAMPLING}")
    tables_path = path.parent / tables_name if (path.parent / tables_name).is_file() else SAMPLING / tables_name
    if not tables_path.is_file():
        raise plan.error("tables", f"no tables file '{tables_name}' beside the plan or in {SAMPLING}")
    tables = load_tables(tables_path)
    if tables.kind != kind:
        raise plan.error("tables", f"{tables_name} holds {tables.kind} tables, not {kind}")
    level = plan.text("inspection_level", choices=tuple(tables.levels))
    aql = plan.number("aql", low=0.01, high=15.0)
    for severity in SEVERITIES:
        if (severity, aql) not in tables.cells:
            have = sorted(a for s, a in tables.cells if s == severity)
            raise plan.error("aql", f"{aql:g} has no {severity} column in {tables_name} "
                                    f"(has {', '.join(f'{a:g}' for a in have)})")
    form: str | None = None
    quantities: tuple[Quantity, ...] = ()
    if kind == "variables":
        form = plan.text("form", choices=("k", "M"))
        quantities = tuple(_quantity(q, form) for q in doc.tables("quantity"))
        points = [q.point for q in quantities]
        if len(set(points)) != len(points):
            raise doc.error("quantity", "a point is judged twice")
    elif "quantity" in doc or "form" in plan:
        raise doc.error("quantity" if "quantity" in doc else "plan.form", "an attributes plan judges whole meters "
                                                                           "(certified or not): no form, no quantities")
    if path.parent == SAMPLING and plan.text("name") != path.stem:
        raise plan.error("name", f"'{plan.text('name')}' is not the file's name ({path.stem}): a shipped plan is "
                                 f"drawn by its file's name")
    return Plan(str(path), _digest(path, tables_path), plan.text("name"), plan.text("title"), kind, level, aql, form,
                quantities, plan.text("provenance"), tables)


def _quantity(q: Section, form: str) -> Quantity:
    q.unknown({"point", "side", "lower_pct", "upper_pct"})
    point = q.text("point")
    side = q.text("side", "both", choices=("both", "upper", "lower"))
    lower = q.number("lower_pct", low=-100.0, high=100.0) if "lower_pct" in q else None
    upper = q.number("upper_pct", low=-100.0, high=100.0) if "upper_pct" in q else None
    if side == "upper" and lower is not None or side == "lower" and upper is not None:
        raise q.error("side", f"'{side}' judges one limit, but the other is stated")
    if lower is not None and upper is not None and not lower < upper:
        raise q.error("upper_pct", f"{upper:g} is not above lower_pct {lower:g}")
    if form == "k" and side == "both":
        raise q.error("side", "Form 1 (k) judges one limit: say side = \"upper\" or \"lower\" "
                              "(two limits take form = \"M\", Z1.9's Form 2)")
    return Quantity(point, side, lower, upper)


def shipped_plans() -> list[str]:
    return sorted(p.stem for p in SAMPLING.glob("*.toml") if _is_plan(p))
