"""The comparison of every point with a stored run (``--baseline``), or with nothing: both have
one interface, so the code that concludes an item never asks which one it has."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from bench.records.baseline import Baseline, Comparison, compare


class BaselineCheck(Protocol):
    @property
    def reference(self) -> str:
        """What the user asked for, as a regression's failure names it."""

    def compare(self, serial: str, now: dict[str, Any]) -> Comparison | None:
        """``now`` (a result entry) beside the baseline's; None when there is nothing to compare with."""

    def describe(self, points_run: int, compared: int, regressions: list[dict[str, str]]) -> dict[str, Any]:
        """What the run record says about the comparison (nothing, without a baseline)."""


@dataclass(frozen=True)
class AgainstRun:
    baseline: Baseline
    min_overlap: float
    margin_pct: float

    @property
    def reference(self) -> str:
        return self.baseline.reference

    def compare(self, serial: str, now: dict[str, Any]) -> Comparison | None:
        return compare(self.baseline, serial, now["point"], now, self.margin_pct)

    def describe(self, points_run: int, compared: int, regressions: list[dict[str, str]]) -> dict[str, Any]:
        return {"baseline": {"reference": self.baseline.reference, "run_id": self.baseline.run_id,
                             "started_at": self.baseline.started_at, "points_compared": compared,
                             "points_run": points_run, "min_overlap": self.min_overlap,
                             "margin_pct": self.margin_pct, "regressions": regressions}}


@dataclass(frozen=True)
class NoBaseline:
    reference: str = "no baseline"

    def compare(self, serial: str, now: dict[str, Any]) -> Comparison | None:
        return None

    def describe(self, points_run: int, compared: int, regressions: list[dict[str, str]]) -> dict[str, Any]:
        return {}
