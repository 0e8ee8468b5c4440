"""The files a lot is created from: its serials, and the manufacturer's per-serial results.

Serials: one per line (blank lines and # comments skipped), or CSV with a header that has a
"serial" column. Manufacturer's data: CSV with the header serial,point,value_pct. Every problem is
one line naming the file and the line: a lot whose serial list is wrong is a lot judged wrong.
"""
from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

from bench.datafiles import ConfigError, read_text_file

SERIAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}")  # the records keep serials in 64 characters
POINT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")
MAX_VALUE_PCT = 100.0  # a registration error a manufacturer reports; a real meter's is a few tenths


def read_text(path: Path) -> tuple[str, str]:
    """A text file and its SHA-256; unreadable, oversized, binary or non-UTF-8 files are one line."""
    raw = read_text_file(path, "a list of serials", encoding="utf-8-sig")
    text = raw.decode("utf-8-sig")
    return text, hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class Serials:
    path: str
    sha256: str
    lines: dict[str, int]  # serial -> the line that lists it, in file order


def _serial(path: Path, number: int, value: str) -> str:
    if not value:
        raise ConfigError(f"{path}:{number}: empty serial")
    if not SERIAL.fullmatch(value):
        shown = value if value.isprintable() and len(value) <= 70 else repr(value[:70])
        raise ConfigError(f"{path}:{number}: '{shown}' is not a meter serial (letters, digits and ._:/- , "
                          f"at most 64 characters, starting with a letter or digit)")
    return value


def read_serials(path: Path) -> Serials:
    """Every meter of the lot, each once."""
    text, digest = read_text(path)
    rows = [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1)]
    content = [(number, line) for number, line in rows if line and not line.startswith("#")]
    if not content:
        raise ConfigError(f"{path}: no serials (one per line, or CSV with a 'serial' column)")
    first_number, first = content[0]
    found: dict[str, int] = {}
    if "," in first or first.lower() == "serial":
        header = [h.strip().lower() for h in next(csv.reader([first]))]
        if "serial" not in header:
            raise ConfigError(f"{path}:{first_number}: a CSV header needs a 'serial' column (got {', '.join(header)})")
        column = header.index("serial")
        entries = []
        for number, line in content[1:]:
            cells = next(csv.reader([line]))
            if len(cells) != len(header):
                raise ConfigError(f"{path}:{number}: {len(cells)} columns where the header has {len(header)}")
            entries.append((number, cells[column].strip()))
    else:
        entries = content
    for number, value in entries:
        serial = _serial(path, number, value)
        if serial in found:
            raise ConfigError(f"{path}:{number}: serial {serial} repeats line {found[serial]}")
        found[serial] = number
    if not found:
        raise ConfigError(f"{path}: no serials below the header")
    return Serials(str(path), digest, found)


def read_manufacturer_data(path: Path, serials: Serials) -> dict[str, dict[str, float]]:
    """The manufacturer's results, {serial: {point: value_pct}}: each serial one of the lot's, each
    value a finite percentage, each (serial, point) once."""
    text, _ = read_text(path)
    reader = csv.reader(io.StringIO(text))
    rows = [(number, row) for number, row in enumerate(reader, start=1) if row and any(c.strip() for c in row)]
    if not rows:
        raise ConfigError(f"{path}: empty: expected CSV with the header serial,point,value_pct")
    number, header = rows[0]
    if [h.strip().lower() for h in header] != ["serial", "point", "value_pct"]:
        raise ConfigError(f"{path}:{number}: expected the header serial,point,value_pct, got {','.join(header)}")
    data: dict[str, dict[str, float]] = {}
    for number, row in rows[1:]:
        if len(row) != 3:
            raise ConfigError(f"{path}:{number}: expected 3 columns (serial,point,value_pct), got {len(row)}")
        serial, point, value = (cell.strip() for cell in row)
        serial = _serial(path, number, serial)
        if serial not in serials.lines:
            raise ConfigError(f"{path}:{number}: serial {serial} is not in the lot ({serials.path})")
        if not POINT.fullmatch(point):
            raise ConfigError(f"{path}:{number}: '{point[:40]}' is not a test point id")
        try:
            number_value = float(value)
        except ValueError:
            raise ConfigError(f"{path}:{number}: value_pct '{value[:40]}' is not a number") from None
        if not math.isfinite(number_value) or abs(number_value) > MAX_VALUE_PCT:
            raise ConfigError(f"{path}:{number}: value_pct {value[:40]} is not a finite percentage within "
                              f"±{MAX_VALUE_PCT:g}")
        if point in data.get(serial, {}):
            raise ConfigError(f"{path}:{number}: {serial} {point} is given twice")
        data.setdefault(serial, {})[point] = number_value
    return data
