"""Provenance reaches the terminal, reports and certificates, so it must name what a user can look
up: a public standard, regulation or manual, or say plainly that the value is a working value."""
from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent
STANDARDS = sorted((ROOT / "bench" / "standards").glob("*.toml"))

# Team notes users never see; nothing the project ships or prints may point at them.
INTERNAL_NOTES = re.compile(r"REFERENCE\.md|DESIGN\.md|INSTRUMENTS\.md|LIBNOTES\.md|shared/", re.IGNORECASE)

# Names of sources a user can obtain; a provenance string must contain one of them...
PUBLIC_SOURCES = (
    "ANSI C12",                            # ANSI C12.1, C12.10, C12.20
    "IEC 6",                               # IEC 62053-2x, IEC 62052-11, IEC 62058
    "MO-221",                              # US Navy MO-221, ch. 9 (current classes, TA)
    "SI 1998/1566",                        # UK Measuring Instruments (Active Electrical Energy Meters) Regs
    "arrêté",                              # French arrêté of 6 January 1987
    "OAC 165:35",                          # Oklahoma Administrative Code
    "NCAC",                                # North Carolina Administrative Code
    "COMAR",                               # Code of Maryland Regulations
    "R746-",                               # Utah Administrative Code
    "Schneider ION",                       # Schneider Electric ION meter manuals
    "TESCO",                               # TESCO publications on C12.20 editions
    "OIML", "ILAC",                        # decision rules with uncertainty
    "installation-audit QC procedure",     # the audit procedure the bench implements
    "firmware specification",              # the meter firmware's product requirements
)
# ...or say it is a value the lab must confirm.
WORKING = ("working value", "to be confirmed")


def shipped_files() -> list[Path]:
    """Every file git tracks or would add (not ignored), outside tests/."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=ROOT, check=True, capture_output=True).stdout.decode()
    return [ROOT / name for name in sorted(set(listed.split("\0")))
            if name and not name.startswith("tests/") and (ROOT / name).is_file()]


def provenance_strings(node: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every value under a ``provenance`` key, at any depth."""
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{where}.{key}" if where else str(key)
            if key == "provenance" and isinstance(value, dict):  # a [provenance] table: one per value
                yield from ((f"{path}.{name}", text) for name, text in value.items())
            elif key == "provenance":
                yield path, value
            else:
                yield from provenance_strings(value, path)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from provenance_strings(item, f"{where}[{index}]")


def test_nothing_shipped_cites_team_notes():
    files = shipped_files()
    assert ROOT / "bench" / "standards" / "c12_20.toml" in files  # the listing really covers the data
    hits = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
            for path in files
            for number, line in enumerate(path.read_bytes().decode("utf-8", "replace").splitlines(), 1)
            if INTERNAL_NOTES.search(line)]
    assert not hits, "cite the public source instead:\n" + "\n".join(hits)


@pytest.mark.parametrize("path", STANDARDS, ids=lambda p: p.name)
def test_every_provenance_names_a_public_source_or_says_it_is_a_working_value(path):
    found = list(provenance_strings(tomllib.loads(path.read_text(encoding="utf-8"))))
    assert found, f"{path.name}: no provenance at all"
    bad = [f"{where} = {text!r}" for where, text in found
           if not (isinstance(text, str) and text.strip()
                   and (any(source in text for source in PUBLIC_SOURCES)
                        or any(phrase in text for phrase in WORKING)))]
    assert not bad, f"{path.name}: provenance without a public source or a working-value statement:\n" + "\n".join(bad)


def test_the_accuracy_table_names_the_standard_and_edition_it_represents():
    table = tomllib.loads((ROOT / "bench" / "standards" / "c12_20.toml").read_text(encoding="utf-8"))["table"]
    assert re.match(r"ANSI C12\.20-\d{4}\b", table["standard"]), table["standard"]


def test_the_provenance_walk_reaches_nested_tables_and_arrays():
    doc = {"a": {"provenance": "x"}, "point": [{"provenance": ""}, {"b": [{"provenance": 3}]}],
           "provenance": {"limit": "y"}}
    assert sorted(provenance_strings(doc)) == [("a.provenance", "x"), ("point[0].provenance", ""),
                                               ("point[1].b[0].provenance", 3), ("provenance.limit", "y")]
