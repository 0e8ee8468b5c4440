"""Reading TOML data files with errors that name the file and the key, in one line."""
from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


STANDARDS = Path(__file__).parent / "standards"  # the data files that ship with the bench


class ConfigError(ValueError):
    """A data file is unusable; the message names the file and key: ``bench.toml: source.address: ...``."""


def load_toml(path: Path) -> "Section":
    try:
        with open(path, "rb") as handle:
            return Section(tomllib.load(handle), str(path), "")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None


_MISSING = object()


class Section:
    """A table of a data file that knows where it came from, for precise error messages."""

    def __init__(self, data: dict[str, Any], source: str, path: str) -> None:
        self.data, self.source, self.path = data, source, path

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

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

    def table(self, name: str, default: Any = _MISSING) -> "Section":
        value = self._get(name, default)
        if value is None:
            return value
        if not isinstance(value, dict):
            raise self.error(name, f"expected a table, got {value!r}")
        return Section(value, self.source, self.key(name))

    def tables(self, name: str) -> list["Section"]:
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
        value = self._get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(name, f"expected a number, got {value!r}")
        if positive and value <= 0:
            raise self.error(name, f"must be positive, got {value!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.error(name, f"{value!r} is outside [{low}, {high}]")
        return float(value)

    def integer(self, name: str, default: Any = _MISSING, *, low: int = 0) -> int:
        value = self._get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise self.error(name, f"expected a whole number >= {low}, got {value!r}")
        return value

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

    def with_provenance(self, provenance: "Section", exempt: tuple[str, ...] = ()) -> "Section":
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
