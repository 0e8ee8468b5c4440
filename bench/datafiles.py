"""Reading TOML data files with errors that name the file and the key, in one line."""
from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, overload

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    # tomli is installed only on Python 3.10 (its dependency marker), but mypy checks this branch
    # (python_version = "3.10") from whatever Python runs it: without tomli there, no module to read.
    import tomli as tomllib


STANDARDS = Path(__file__).parent / "standards"  # the data files that ship with the bench


class ConfigError(ValueError):
    """A data file is unusable; the message names the file and key: ``bench.toml: source.address: ...``."""


MAX_FILE_BYTES = 4 * 1024 * 1024  # far above any bench data file; /dev/zero must not fill memory


def read_text_file(path: Path, what: str, encoding: str = "utf-8") -> bytes:
    """A data file's bytes, checked to be text: unreadable, oversized, binary or non-UTF-8 files
    are one line naming the file and what it should have been (``what``)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB: not {what}")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start}): {what} is UTF-8") from None
    if "\x00" in text:
        raise ConfigError(f"{path}: contains NUL bytes: a binary file, not {what}")
    return raw


def load_toml(path: Path) -> Section:
    """A data file as a Section; unreadable, oversized, binary or non-UTF-8 files are one line."""
    text = read_text_file(path, "a bench data file").decode("utf-8")
    try:
        return Section(tomllib.loads(text), str(path), "")
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None


_MISSING = object()


def check_number(value: Any, error: Callable[[str], ConfigError], *, low: float | None = None,
                 high: float | None = None, positive: bool = False) -> float:
    """Every comparison with NaN is false, so a NaN limit would switch its check off: refuse it,
    infinities and booleans, then hold the value to its stated range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"expected a number, got {value!r}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an integer beyond any float
        finite = False
    if not finite:
        raise error(f"expected a finite number, got {value!r:.40}")
    if positive and value <= 0:
        raise error(f"must be positive, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise error(f"{value!r} is outside [{_bound(low, '-inf')}, {_bound(high, 'inf')}]")
    return float(value)


def _bound(value: float | None, open_end: str) -> str:
    return open_end if value is None else f"{value:g}"


class Section:
    """A table of a data file that knows where it came from, for precise error messages."""

    def __init__(self, data: dict[str, Any], source: str, path: str) -> None:
        self.data, self.source, self.path = data, source, path

    def key(self, name: str) -> str:
        shown = name if name and name.isprintable() and name.strip() == name else repr(name)  # one line, always
        return f"{self.path}.{shown}" if self.path else shown

    def error(self, name: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self.key(name)}: {message}")

    def __contains__(self, name: str) -> bool:
        return name in self.data

    def _get(self, name: str, default: Any) -> Any:
        if name in self.data:
            return self.data[name]
        if default is _MISSING:
            raise self.error(name, "missing")
        return default

    @overload
    def table(self, name: str) -> Section: ...
    @overload
    def table(self, name: str, default: None) -> Section | None: ...
    @overload
    def table(self, name: str, default: dict[str, Any]) -> Section: ...

    def table(self, name: str, default: Any = _MISSING) -> Section | None:
        """The named table; ``default`` when it is absent (None, or a dict to read as the table)."""
        value = self._get(name, default)
        if value is None:
            return value
        if not isinstance(value, dict):
            raise self.error(name, f"expected a table, got {value!r}")
        return Section(value, self.source, self.key(name))

    def tables(self, name: str) -> list[Section]:
        value = self._get(name, _MISSING)
        if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
            raise self.error(name, "expected one or more [[" + self.key(name) + "]] tables")
        return [Section(v, self.source, f"{self.key(name)}[{i + 1}]") for i, v in enumerate(value)]

    def text(self, name: str, default: Any = _MISSING, choices: tuple[str, ...] = ()) -> str:
        value = self._get(name, default)
        if not isinstance(value, str) or not value.strip():
            raise self.error(name, f"expected a non-empty string, got {value!r}")
        if choices and value not in choices:
            raise self.error(name, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def number(self, name: str, default: Any = _MISSING, *, low: float | None = None,
               high: float | None = None, positive: bool = False) -> float:
        """A finite number (never a boolean or NaN) within the physical range stated by the caller."""
        return check_number(self._get(name, default), lambda message: self.error(name, message),
                            low=low, high=high, positive=positive)

    def integer(self, name: str, default: Any = _MISSING, *, low: int = 0, high: int = 2**31 - 1) -> int:
        value = self._get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.error(name, f"expected a whole number in [{low}, {high}], got {value!r}")
        return value

    def boolean(self, name: str, default: Any = _MISSING) -> bool:
        """true or false, strictly: the string "false" is not a boolean (it would read as true)."""
        value = self._get(name, default)
        if not isinstance(value, bool):
            raise self.error(name, f"expected true or false, got {value!r}")
        return value

    def numbers(self, name: str, default: Any = _MISSING, *, length: int | None = None,
                low: float | None = None, high: float | None = None) -> tuple[float, ...]:
        """A list of finite numbers within a range (and of a given length, if stated)."""
        value = self._get(name, default)
        if not isinstance(value, (list, tuple)) or (length is not None and len(value) != length):
            size = f"{length} " if length is not None else ""
            raise self.error(name, f"expected a list of {size}numbers, got {value!r}")
        return tuple(check_number(v, lambda message: self.error(name, message), low=low, high=high) for v in value)

    def texts(self, name: str, default: Any = _MISSING) -> tuple[str, ...]:
        value = self._get(name, default)
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.error(name, f"expected a list of non-empty strings, got {value!r}")
        return tuple(value)

    def date(self, name: str) -> dt.date:
        value = self._get(name, _MISSING)
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        raise self.error(name, f"expected a date YYYY-MM-DD, got {value!r}")

    def with_provenance(self, provenance: Section, exempt: tuple[str, ...] = ()) -> Section:
        """This table, once every value in it names where it comes from in ``provenance``."""
        for name in self.data:
            if name not in exempt and name not in provenance:
                raise provenance.error(name, "missing: every value states where it comes from")
        return self

    def unknown(self, allowed: set[str]) -> None:
        """Reject misspelt keys: a typo must not silently fall back to a default."""
        for name in self.data:
            if name not in allowed:
                raise self.error(name, f"unknown key (expected one of {', '.join(sorted(allowed))})")


def number_argument(name: str, *, above: float | None = None, at_least: float | None = None,
                    at_most: float | None = None) -> Callable[[str], float]:
    """A command-line option's value (argparse ``type``): a finite number within its bounds; NaN
    would compare false and slip past any of them."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: {text!r} is not a number") from None
        bounds = [f"> {above:g}"] if above is not None else [f">= {at_least:g}"] if at_least is not None else []
        bounds += [f"<= {at_most:g}"] if at_most is not None else []
        if (not math.isfinite(value) or (above is not None and value <= above)
                or (at_least is not None and value < at_least) or (at_most is not None and value > at_most)):
            raise argparse.ArgumentTypeError(f"{name}: {text!r} must be a finite number {' and '.join(bounds)}")
        return value

    return parse
