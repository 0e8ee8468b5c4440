"""Plain helpers the framework's own tests share: running the plans as a lab engineer would, reading
what they wrote, editing a TOML file, talking to a simulated instrument line by line.

Fixtures and the pytest hooks stay in tests/conftest.py; a test module imports what it needs from
here, never from another test module."""
from __future__ import annotations

import datetime as dt
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
import tomli_w

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent

# A board position whose meter is exact apart from what a test sets (e.g. ``{"offset_pct": 0.5, **EXACT}``).
EXACT = {"light_load_pct": 0.0, "phase_error_mrad": 0.0, "voltage_pct_per_10pct": 0.0, "frequency_pct_per_pct": 0.0,
         "harmonic_gain_pct": 0.0, "dc_pct_per_10pct": 0.0, "element_offsets_pct": [0.0, 0.0, 0.0]}
PAYLOAD_PLAN = "test_plans/audit/test_payload_accuracy.py"

# A plan item's JUnit name: ``test_x[<point>-pos<n>-<serial>]``; the payload item has no point.
ITEM = re.compile(r"\[(?:(?P<point>[A-Z0-9-]+?)-)?pos(?P<position>\d+)-")


def edited_toml(source: Path, edit: Callable[[dict], object], target: Path) -> Path:
    """Write a copy of a TOML file with ``edit`` applied to its data: a lab's variant of ours."""
    data = tomllib.loads(source.read_text())
    edit(data)
    target.write_text(tomli_w.dumps(data))
    return target


def in_calibration(data: dict, today: dt.date) -> None:
    """Date every instrument's calibration in a profile's data from 30 days before ``today``, due a
    year after: the example profiles state a real lab's dates, which fall due; a test must not."""
    for table in data.values():
        if isinstance(table, dict) and isinstance(table.get("calibration"), dict):
            table["calibration"].update(date=today - dt.timedelta(days=30), due=today + dt.timedelta(days=335))


def bench_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """The ``bench`` command as a user runs it, its output captured."""
    return subprocess.run([sys.executable, "-m", "bench.cli", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=60)


def start_bench_sim(profile: Path, *args: str) -> tuple[subprocess.Popen, str]:
    """`bench sim` in a process of its own, as a user starts it, once it has written ``profile``:
    (the process, its banner). Stop it with terminate(); SIGTERM is a clean stop."""
    process = subprocess.Popen([sys.executable, "-m", "bench.cli", "sim", "--profile", str(profile), *args],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    assert process.stdout is not None
    banner = []
    for line in process.stdout:
        banner.append(line)
        if line.startswith("profile:"):
            return process, "".join(banner)
    process.wait(timeout=10)
    pytest.fail("bench sim did not start: " + "".join(banner))


def plan_command(reports: Path, *args: str) -> list[str]:
    """A pytest run of the plans as a lab engineer would start it, writing its reports and
    records under ``reports`` (never into the repository's reports/)."""
    return [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider", "--reports-dir", str(reports)]


def run_plans(tmp_path: Path, *args: str, plans: str = PAYLOAD_PLAN):
    """Run ``plans`` in a pytest process of their own, with JUnit XML and HTML reports under
    ``tmp_path``: (the finished process, {test case name: JUnit <testcase>}, the HTML report)."""
    junit, html = tmp_path / "junit.xml", tmp_path / "report.html"
    run = subprocess.run(plan_command(tmp_path / "reports", plans, f"--junitxml={junit}", f"--html={html}",
                                        "--self-contained-html", *args),
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    cases = {case.get("name"): case for case in ET.parse(junit).getroot().iter("testcase")}
    return run, cases, html.read_text()


def properties(case: ET.Element) -> dict[str, str]:
    """A JUnit test case's recorded properties, by name."""
    return {p.get("name"): p.get("value") for p in case.iter("property")}


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
    """Send one command line and read one reply line."""
    sock.sendall(command.encode() + b"\n")
    return read_line(sock).decode()


def families_without_points(point_families: set[str]) -> set[str]:
    """The accuracy plan modules' families (each module names its ``FAMILY``) that have no point
    among these: each such module gives one skipped item per position, saying it is not applicable."""
    modules = (REPO / "test_plans" / "accuracy").glob("test_*.py")
    families = {re.search(r'^FAMILY = "(\w+)"$', m.read_text(), re.M).group(1) for m in modules}
    return families - point_families


class Terminal:
    """The controlling side of a pseudo-terminal: everything the child wrote, read as it comes."""

    def __init__(self, fd):
        self.fd, self.seen, self.at = fd, "", 0

    def expect(self, text, within_s=60.0):
        deadline = time.monotonic() + within_s
        while text not in self.seen[self.at:]:
            assert time.monotonic() < deadline, self.seen[-2000:]
            if select.select([self.fd], [], [], 0.5)[0]:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # the child closed the terminal
                    chunk = b""
                assert chunk, f"the terminal closed before {text!r}: {self.seen[-2000:]}"
                self.seen += chunk.decode(errors="replace")
        self.at = self.seen.index(text, self.at) + len(text)

    def answer(self, line):
        os.write(self.fd, line.encode() + b"\n")

    def read_to_end(self, within_s=120.0):
        """Everything until the child closes the terminal."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if select.select([self.fd], [], [], 0.5)[0]:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    return self.seen
                if not chunk:
                    return self.seen
                self.seen += chunk.decode(errors="replace")
        raise AssertionError(f"the terminal was still open after {within_s} s: {self.seen[-2000:]}")
