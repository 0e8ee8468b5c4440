"""Simulated firmware releases as data (bench/sim/firmware.toml): what a release changes."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from bench.datafiles import load_toml

FIRMWARE_FILE = Path(__file__).parent / "firmware.toml"


@dataclass(frozen=True)
class Release:
    name: str
    harmonic_gain_pct: float = 0.0  # added to the meter's own harmonic error
    drops_every_nth_interval: int = 0  # 0: keeps every interval record
    buffers_alarms: bool = True  # non-critical alarms go into the daily payload


@cache
def releases() -> dict[str, Release]:
    doc = load_toml(FIRMWARE_FILE)
    found = {}
    for name in doc.data:
        table = doc.table(name)
        table.unknown({"description", "harmonic_gain_pct", "drops_every_nth_interval", "buffers_alarms"})
        table.text("description")
        found[name] = Release(name, table.number("harmonic_gain_pct", 0.0, low=-100.0, high=100.0),
                              table.integer("drops_every_nth_interval", 0, high=1000),
                              table.boolean("buffers_alarms", True))
    return found


def release_for(firmware: str) -> Release:
    return releases().get(firmware, Release(firmware))
