"""Fixtures for the framework's own tests: a simulated bench on loopback, and board variants.
The plain helpers the tests share are in tests/helpers.py."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from bench.records.signing import default_key_path, init_key
from bench.sim import SimulatedBench, board_path
from bench.sim.board import shared_meter_type
from bench.station.bench import Bench
from instruments.sim_control import SimControlClient
from tests.helpers import edited_toml, run_plans

BENCH_HOME = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    """The tests never touch the user's own lab signing key or meter keys: a bench home of their own
    (inherited by every bench and pytest process they start), with a lab key in it."""
    home = Path(tempfile.mkdtemp(prefix="meter-bench-tests-"))
    os.environ["METER_BENCH_HOME"] = str(home)
    init_key(default_key_path())
    config.stash[BENCH_HOME] = home


def pytest_unconfigure(config: pytest.Config) -> None:
    home = config.stash.get(BENCH_HOME, None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def sim() -> Iterator[SimulatedBench]:
    with SimulatedBench() as simulated:
        yield simulated


@pytest.fixture
def control(sim: SimulatedBench) -> Iterator[SimControlClient]:
    """The simulator's control channel: ground truth, independent of the bench under test."""
    client = SimControlClient(sim.control.resource).open()
    yield client
    client.close()


@pytest.fixture
def sim_bench(sim: SimulatedBench) -> Iterator[Bench]:
    with Bench(sim.profile()) as opened:
        yield opened


@pytest.fixture
def make_board(tmp_path: Path) -> Callable[..., Path]:
    """Write a variant of the default board: ``make_board(positions=[{...}, ...], **top_level)``."""

    def make(positions: list[dict] | None = None, **tables: dict) -> Path:
        def edit(data: dict) -> None:
            if positions is not None:
                stated = data["position"]
                data["position"] = [{**stated[i % len(stated)], **p} for i, p in enumerate(positions)]
            for name, values in tables.items():
                stated = data.get(name, {})
                if name == "meter_type" and isinstance(stated, str):  # a shared type, by name
                    stated = shared_meter_type(stated).data
                data[name] = {**stated, **values}

        return edited_toml(board_path("default"), edit, tmp_path / "board.toml")

    return make


@dataclass(frozen=True)
class PlanRun:
    """A whole-plan run (C12.20, audit, firmware) on a simulated board, as a lab engineer starts it."""

    process: subprocess.CompletedProcess
    reports: Path  # certificates, reports, the signed record and the records database
    cases: dict[str, ET.Element]  # JUnit test cases by name
    html: str  # the pytest-html session report
    html_path: Path
    record: dict[str, Any]


@pytest.fixture(scope="session")
def whole_plan(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], PlanRun]:
    """``whole_plan(board)``: run once per session and shared by every test that only reads it
    (a test that writes copies what it needs first)."""
    runs: dict[str, PlanRun] = {}

    def run(board: str) -> PlanRun:
        if board not in runs:
            where = tmp_path_factory.mktemp(f"plan-{board}")
            process, cases, html = run_plans(where, "--sim-scenario", board, plans="test_plans/")
            [record_file] = (where / "reports").glob("run-*.json")
            runs[board] = PlanRun(process, where / "reports", cases, html, where / "report.html",
                                  json.loads(record_file.read_text())["record"])
        return runs[board]

    return run


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A schema of its own in the tests' PostgreSQL database (BENCH_TEST_POSTGRES_URL, which other
    tests may use at the same time), dropped afterwards; skipped without PostgreSQL, failed in CI."""
    url = os.environ.get("BENCH_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("BENCH_TEST_POSTGRES_URL is not set; `make test` starts PostgreSQL and sets it")
        pytest.skip("no PostgreSQL (set BENCH_TEST_POSTGRES_URL, or run `make test` as root)")
    schema = f"tests_{uuid.uuid4().hex[:12]}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        engine.dispose()
