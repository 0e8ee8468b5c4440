"""Where the bench keeps what it must not publish: the lab's signing key and the meters' key files.

One home outside reports/ (which QA publishes) and outside the repository: ``$METER_BENCH_HOME``,
by default ``~/.meter-bench``.
"""
from __future__ import annotations

import os
from pathlib import Path


def bench_home() -> Path:
    return Path(os.environ.get("METER_BENCH_HOME") or "~/.meter-bench").expanduser()


def meter_keys_dir() -> Path:
    """The commissioning audit's per-meter key files (mode 600)."""
    return bench_home() / "meter-keys"
