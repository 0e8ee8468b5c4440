"""Fixtures for the framework's own tests: a simulated bench on loopback, and board variants."""
from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import pytest
import tomli_w

from bench.bench import Bench
from bench.signing import default_key_path, init_key
from bench.sim import SimulatedBench, board_path
from bench.sim.control_client import SimControlClient

BENCH_HOME = pytest.StashKey[Path]()

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent


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
                data["position"] = [{**data["position"][i % len(data["position"])], **p} for i, p in enumerate(positions)]
            for name, values in tables.items():
                data[name] = {**data.get(name, {}), **values}

        return edited_toml(board_path("default"), edit, tmp_path / "board.toml")

    return make


def edited_toml(source: Path, edit: Callable[[dict], object], target: Path) -> Path:
    """Write a copy of a TOML file with ``edit`` applied to its data: a lab's variant of ours."""
    data = tomllib.loads(source.read_text())
    edit(data)
    target.write_text(tomli_w.dumps(data))
    return target


def plan_command(reports: Path, *args: str) -> list[str]:
    """A pytest run of the plans as a lab engineer would start it, writing its reports and
    records under ``reports`` (never into the repository's reports/)."""
    return [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider", "--reports-dir", str(reports)]


def require_tool(name: str) -> str:
    """A real tool the test talks to; missing is a skip on a developer machine, a failure in CI."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; `make test` installs it")
        pytest.skip(f"{name} not installed")
    return path


def read_line(sock: socket.socket) -> bytes:
    """One LF-terminated line (bytes are read one at a time so nothing after it is consumed)."""
    line = b""
    while not line.endswith(b"\n"):
        byte = sock.recv(1)
        if not byte:
            raise ConnectionError(f"closed after {line!r}")
        line += byte
    return line[:-1]


def query(sock: socket.socket, command: str) -> str:
    sock.sendall(command.encode() + b"\n")
    return read_line(sock).decode()
