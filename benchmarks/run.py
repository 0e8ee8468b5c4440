"""The bench's speed figures (issue 13), each beside a baseline measured in the same run.

    .venv/bin/python benchmarks/run.py [--quick]

1. Per query: the SCPI driver against raw pyvisa-py against a bare socket, and the Modbus meter
   driver against raw pymodbus against a hand-built Modbus TCP frame, all on the same loopback
   instrument (the simulated bench served by ``bench sim`` in a process of its own).
2. Full-plan software wall time on variants of the default board with 1, 8, 40 and 80 positions
   (``--quick``: 1 and 8), split into start, measuring and end of run, with the run's peak memory.
3. Bench (simulated) time per family, meters per hour of bench time, and the same points at a
   fixed five-minute dwell; the plan runs in the meters' test mode (their default), the routine
   acceptance also in normal mode.

Speed targets live here, never in timed unit tests: a loaded CI machine would make such tests
flaky, while a ratio against a baseline timed in the same run on the same machine stays readable.
docs/BENCHMARKS.md says what each figure means and holds the latest figures.

This module is also a tiny pytest plugin: the plan runs it starts load it with ``-p benchmarks.run``
so they note when each phase starts and ends (and, when asked, the bench clock after each item).
It only observes; with its environment variable unset it does nothing.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
LIMITS_TABLE = REPO / "bench" / "standards" / "c12_20.toml"
FIXED_DWELL_S = 300.0  # the fixed five-minute dwell per gated point the planner is compared with
ROUTINE_POINTS = ("FL-PF1", "LL-PF1", "FL-PF05")  # a routine acceptance test of three points
TIMING_FILE_ENV = "METER_BENCH_BENCHMARK_TIMING"  # where the plugin writes its timestamps
CLOCK_ENV = "METER_BENCH_BENCHMARK_CLOCK"  # "1": also read the bench clock after every item
PLAN_TIMEOUT_S = 1200.0

# The targets (issue 13), checked against this run's figures at the end.
TARGET_DRIVER_OVERHEAD = 1.05  # driver / library beneath it
TARGET_WALL_40 = 2.5  # software wall time, 40 positions / 1 position
TARGET_WALL_80 = 4.0  # 80 positions / 1 position
TARGET_END_OF_RUN = 0.25  # end-of-run time / measuring time, at 40 positions
TARGET_BENCH_H = 1.0  # full plan bench time per board, hours
TARGET_C1220_VS_FIXED = 0.20  # C12.20 alone / the same points at a fixed dwell
TARGET_ROUTINE_MPH = 75.0  # routine acceptance, meters per hour of bench time

# A plan item's node id ends ``[<point>-pos<n>-<serial>]``; audit and firmware items name no point.
_ITEM = re.compile(r"\[(?:(?P<point>[A-Z0-9-]+?)-)?pos(?P<position>\d+)-")
_ROW_SUFFIX = re.compile(r"-[EC][0-9]+$")  # bench/plans/limits.py _expand: one point per element or circuit
_BENCH_TIME = re.compile(r"bench time covered: ([0-9.]+) s")


# --- pure computations (tests/test_benchmarks_script.py checks them) ------------------------------

def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN when the baseline is zero (a figure, never a crash)."""
    return numerator / denominator if denominator else float("nan")


def meters_per_hour(positions: int, bench_s: float) -> float:
    """Meters certified per hour of bench time: every position of the board is done in ``bench_s``."""
    return ratio(positions * 3600.0, bench_s)


def gated_points(table: Mapping[str, Any], points_run: Iterable[str]) -> list[str]:
    """The points of a run that are gated against the reference: those from a row stating a
    tolerance (a row for each element or current circuit becomes ``<row>-E<k>`` or ``<row>-C<k>``).
    The nameplate check, creep and starting take their own periods and are not dwell points."""
    gated = {row["id"] for row in table.get("point", []) if "tolerance" in row}
    return [point for point in points_run if _ROW_SUFFIX.sub("", point) in gated or point in gated]


def fixed_dwell_bench_s(measured_total_s: float, gated_measured_s: Mapping[str, float], settle_s: float,
                        dwell_s: float = FIXED_DWELL_S) -> float:
    """The same run's bench time had every gated point dwelt ``dwell_s`` after its settle:

    fixed = measured total - measured time of the gated points + n_gated x (settle_s + dwell_s)

    Everything that is not a gated point (creep, starting, nameplate, audit, demand, firmware)
    keeps the bench time it took in this run."""
    return measured_total_s - sum(gated_measured_s.values()) + len(gated_measured_s) * (settle_s + dwell_s)


def item_point(nodeid: str) -> str | None:
    """The point a plan item measures, from its node id (None for audit and firmware steps)."""
    match = _ITEM.search(nodeid)
    return match.group("point") if match else None


def item_plan(nodeid: str) -> str:
    """The plan folder an item comes from (``accuracy``, ``audit``, ``demand``, ``firmware``)."""
    parts = nodeid.split("::")[0].split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "test_plans" else parts[0]


def bench_seconds_by(items: Iterable[Mapping[str, Any]], clock_start: float,
                     key: Callable[[str], str]) -> dict[str, float]:
    """Bench seconds per ``key(nodeid)``: each item is charged the bench clock's advance since the
    item before it ended. A point is applied once for the whole board, so its first position's
    item carries the point's time and the other positions' items about none."""
    totals: dict[str, float] = {}
    previous = clock_start
    for item in items:
        end = item.get("bench_end")
        if end is None:  # the bench had not opened yet
            continue
        name = key(item["nodeid"])
        totals[name] = totals.get(name, 0.0) + end - previous
        previous = end
    return totals


def point_families(record: Mapping[str, Any]) -> dict[str, str]:
    """Each point's family, as the run record states it on every result."""
    return {result["point"]: result["family"] for meter in record["meters"] for result in meter["results"]}


def gate_seconds(record: Mapping[str, Any]) -> dict[str, float]:
    """Each gated point's gate time from the record (the slowest position's gate ends the point)."""
    gates: dict[str, float] = {}
    for meter in record["meters"]:
        for result in meter["results"]:
            evidence = result.get("evidence") or {}  # a shift point's gate is its measurement's
            gate = evidence.get("gate") or (evidence.get("measured") or {}).get("gate") or {}
            if "gate_time_s" in gate:
                gates[result["point"]] = max(gates.get(result["point"], 0.0), gate["gate_time_s"])
    return gates


def run_phases(spawned: float, exited: float, timing: Mapping[str, Any]) -> dict[str, float]:
    """A plan run's wall time split where the timing plugin saw it change phase (epoch seconds):
    start (interpreter, plugins, collection, until the first item starts), measuring (first item's
    start to the last item's end: opening the bench, every point, closing it) and end of run (the
    last item's end to the process's exit: the signed record, certificates, audit and firmware
    reports, charts, the terminal summary, interpreter exit)."""
    items = timing["items"]
    first, last = items[0]["wall_start"], items[-1]["wall_end"]
    return {"total": exited - spawned, "start": first - spawned, "measuring": last - first,
            "end_of_run": exited - last, "publish": timing["unconfigured"] - timing["finish_start"]}


def modbus_read_request(transaction: int, unit: int, address: int, count: int) -> bytes:
    """A Modbus TCP frame reading holding registers (function 3): MBAP header, then the PDU."""
    return struct.pack(">HHHBBHH", transaction & 0xFFFF, 0, 6, unit, 3, address, count)


def modbus_read_reply(frame: bytes, count: int) -> list[int]:
    """The registers of a function-3 reply frame; anything else is a ValueError."""
    if len(frame) != 9 + 2 * count or frame[7] != 3 or frame[8] != 2 * count:
        raise ValueError(f"not a reply of {count} registers: {frame.hex()}")
    return list(struct.unpack(f">{count}H", frame[9:]))


# --- the timing plugin, loaded into plan runs with ``-p benchmarks.run`` ---------------------------

_TIMING: dict[str, Any] = {"items": []}


def _plugin_active() -> bool:
    return bool(os.environ.get(TIMING_FILE_ENV))


def _bench_clock(config: pytest.Config) -> tuple[float, float] | None:
    """(bench clock now, bench clock when the run opened), once the bench is open."""
    from bench.pytest_plugin.session import SESSION_KEY

    session = config.stash.get(SESSION_KEY, None)
    run = session.run if session is not None else None
    return None if run is None else (run.bench.now(), run.clock_start)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    """Each item's wall start and end; with CLOCK_ENV, the bench clock after it."""
    start = time.time()
    try:
        return (yield)
    finally:
        if _plugin_active():
            entry: dict[str, Any] = {"nodeid": item.nodeid, "wall_start": start, "wall_end": time.time()}
            if os.environ.get(CLOCK_ENV) == "1":
                clock = _bench_clock(item.config)
                if clock is not None:
                    entry["bench_end"], _TIMING["clock_start"] = clock
            _TIMING["items"].append(entry)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    _TIMING["finish_start"] = time.time()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if _plugin_active():
        _TIMING["unconfigured"] = time.time()
        Path(os.environ[TIMING_FILE_ENV]).write_text(json.dumps(_TIMING))


# --- 1. per query ---------------------------------------------------------------------------------

@dataclass
class Layer:
    """One layer's samples: wall seconds per query, the median of each connection's queries (one
    connection a round, in round order) and this process's CPU seconds in all."""

    wall: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    connections: list[float] = field(default_factory=list)

    def over(self, below: Layer) -> float:
        """This layer against another timed in the same rounds: the median of each round's own
        ratio of connection medians. A round's connections run back to back, so a slow minute of
        the machine, or a connection on loopback's slower mode, weighs on both sides of its ratio,
        which pooled medians of each layer apart do not see."""
        pairs = zip(self.connections, below.connections, strict=True)
        return statistics.median(ratio(mine, theirs) for mine, theirs in pairs)

    def median_us(self) -> float:
        return statistics.median(self.wall) * 1e6

    def p95_us(self) -> float:
        return sorted(self.wall)[int(0.95 * (len(self.wall) - 1))] * 1e6

    def cpu_us(self) -> float:
        return ratio(self.cpu_s, len(self.wall)) * 1e6


def timed(action: Callable[[], object], n: int, layer: Layer) -> None:
    """Call ``action`` n times, adding each call's wall time and the CPU time in all to ``layer``."""
    cpu, samples = time.process_time(), []
    for _ in range(n):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    layer.cpu_s += time.process_time() - cpu
    layer.wall.extend(samples)
    layer.connections.append(statistics.median(samples))


def interleaved(clients: Mapping[str, Callable[[int, Layer], None]], rounds: int, n: int) -> dict[str, Layer]:
    """Each client in turn, ``rounds`` times, each time on a fresh connection for n queries.

    Loopback latency on a small VM is bimodal per connection and depends on what ran just before,
    so every layer gets many connections and the clients take turns going first."""
    layers = {name: Layer() for name in clients}
    names = list(clients)
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            clients[name](n, layers[name])
    return layers


def alternating(driver: Callable[[], object], library: Callable[[], object], n: int) -> float:
    """n queries each, the driver's and the library's taking turns (and turns at going first) on
    one connection: the median of the driver's over the median of the library's. Whatever mode the
    connection's loopback is in, both see it, which two connections side by side do not."""
    times: dict[Callable[[], object], list[float]] = {driver: [], library: []}
    for i in range(n):
        for action in (driver, library) if i % 2 else (library, driver):
            start = time.perf_counter()
            action()
            times[action].append(time.perf_counter() - start)
    return ratio(statistics.median(times[driver]), statistics.median(times[library]))


def same_connection(pair: Callable[[int], float], rounds: int, n: int) -> list[float]:
    """``pair``'s ratio on each of ``rounds`` fresh connections."""
    return [pair(n) for _ in range(rounds)]


def _line_socket(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=2.0)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as pyvisa-py and pymodbus do
    return sock


def scpi_clients(resource: str, command: str) -> dict[str, Callable[[int, Layer], None]]:
    """The same query three ways: the project's driver, raw pyvisa-py, a bare socket."""
    import pyvisa
    from pyvisa.resources import MessageBasedResource

    from instruments.reference_standard import ScpiReferenceStandard

    manager = pyvisa.ResourceManager("@py")
    match = re.fullmatch(r"TCPIP0?::(.+)::(\d+)::SOCKET", resource)
    if match is None:
        raise ValueError(f"not a raw socket resource: {resource}")
    host, port = match.groups()

    def driver(n: int, layer: Layer) -> None:
        reference = ScpiReferenceStandard(resource)
        reference.open()
        try:
            timed(lambda: reference.power, n, layer)
        finally:
            reference.close()

    def raw_pyvisa(n: int, layer: Layer) -> None:
        visa = manager.open_resource(resource, read_termination="\n", write_termination="\n")
        if not isinstance(visa, MessageBasedResource):
            raise TypeError(f"{resource} does not read and write lines")
        try:
            timed(lambda: visa.query(command), n, layer)
        finally:
            visa.close()

    def bare_socket(n: int, layer: Layer) -> None:
        with _line_socket((host, int(port))) as sock:
            def ask() -> bytes:
                sock.sendall(command.encode() + b"\n")
                reply = b""
                while not reply.endswith(b"\n"):
                    chunk = sock.recv(4096)
                    if not chunk:
                        raise ConnectionError("the instrument closed the connection")
                    reply += chunk
                return reply

            timed(ask, n, layer)

    return {"driver": driver, "pyvisa-py": raw_pyvisa, "socket": bare_socket}


def scpi_pair(resource: str, command: str) -> Callable[[int], float]:
    """The driver's query against pyvisa-py's on the driver's own pyvisa-py session."""
    from instruments.reference_standard import ScpiReferenceStandard

    def pair(n: int) -> float:
        reference = ScpiReferenceStandard(resource)
        reference.open()
        visa = cast(Any, reference)._transport._resource  # the session the driver itself queries through
        try:
            return alternating(lambda: reference.power, lambda: visa.query(command), n)
        finally:
            reference.close()

    return pair


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the meter closed the connection")
        data += chunk
    return data


def modbus_clients(address: str, profile: Any, unit: int, register: str) -> dict[str, Callable[[int, Layer], None]]:
    """The same register read four ways: the meter driver (its value), pymodbus reading and
    converting it to the same value (the library doing the driver's work), pymodbus's read alone
    (16-bit words), and a hand-built frame."""
    from pymodbus.client import ModbusTcpClient

    from instruments.meter_modbus import ModbusMeter

    host, _, port = address.rpartition(":")
    reg = profile.meter_type.registers.get(register)
    datatype = ModbusTcpClient.DATATYPE[reg.type.upper()]  # the register map's types are pymodbus's names

    def driver(n: int, layer: Layer) -> None:
        meter = ModbusMeter(address, profile.meter_type.registers, device_id=unit).open()
        try:
            timed(lambda: meter.read(register), n, layer)
        finally:
            meter.close()

    def pymodbus_value(n: int, layer: Layer) -> None:
        client = ModbusTcpClient(host, port=int(port), timeout=2.0, retries=0)
        client.connect()

        def value() -> object:
            words = client.read_holding_registers(reg.address, count=reg.count, device_id=unit).registers
            return client.convert_from_registers(words, datatype) * reg.scale

        try:
            timed(value, n, layer)
        finally:
            client.close()

    def raw_pymodbus(n: int, layer: Layer) -> None:
        client = ModbusTcpClient(host, port=int(port), timeout=2.0, retries=0)
        client.connect()
        try:
            timed(lambda: client.read_holding_registers(reg.address, count=reg.count, device_id=unit), n, layer)
        finally:
            client.close()

    def bare_frame(n: int, layer: Layer) -> None:
        transaction = iter(range(1, 1 << 30))
        with _line_socket((host, int(port))) as sock:
            def ask() -> list[int]:
                sock.sendall(modbus_read_request(next(transaction), unit, reg.address, reg.count))
                header = _recv_exact(sock, 7)
                (length,) = struct.unpack(">H", header[4:6])
                return modbus_read_reply(header + _recv_exact(sock, length - 1), reg.count)

            timed(ask, n, layer)

    return {"driver": driver, "pymodbus": pymodbus_value, "pymodbus read": raw_pymodbus, "socket": bare_frame}


def modbus_pair(address: str, profile: Any, unit: int, register: str) -> Callable[[int], float]:
    """The driver's read against pymodbus reading and converting the same value, on the driver's
    own pymodbus client."""
    from pymodbus.client import ModbusTcpClient

    from instruments.meter_modbus import ModbusMeter

    reg = profile.meter_type.registers.get(register)
    datatype = ModbusTcpClient.DATATYPE[reg.type.upper()]

    def pair(n: int) -> float:
        meter = ModbusMeter(address, profile.meter_type.registers, device_id=unit).open()
        client = cast(Any, meter)._client  # the client the driver itself reads through

        def value() -> object:
            words = client.read_holding_registers(reg.address, count=reg.count, device_id=unit).registers
            return client.convert_from_registers(words, datatype) * reg.scale

        try:
            return alternating(lambda: meter.read(register), value, n)
        finally:
            meter.close()

    return pair


def standalone_sim(profile_path: Path) -> subprocess.Popen[str]:
    """The simulated bench in a process of its own, as an instrument is a box of its own: its
    servers share no interpreter lock with the client being timed."""
    process = subprocess.Popen([sys.executable, "-m", "bench.cli", "sim", "--profile", str(profile_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("profile:"):
            return process
    process.wait(timeout=10)
    raise RuntimeError("bench sim did not start")


@dataclass
class QueryFigures:
    """Section 1 for one query: every layer on connections of its own, and the driver against the
    library beneath it on shared connections (``same_connection``), which the target is judged on."""

    layers: dict[str, Layer]
    shared: list[float]

    def driver_over_library(self) -> float:
        return statistics.median(self.shared)


def per_query(rounds: int, n: int) -> dict[str, QueryFigures]:
    """Section 1: every layer's samples, SCPI and Modbus, against one standalone simulator."""
    from bench.station.profile import load_profile

    with tempfile.TemporaryDirectory(prefix="bench-figures-sim-") as where:
        profile_path = Path(where) / "profile.toml"
        sim = standalone_sim(profile_path)
        try:
            profile = load_profile(profile_path)
            unit = int(tomllib.loads(profile_path.read_text())["meters"].get("device_id", 1))
            reference, meter = profile.reference.address, profile.positions[0].address
            scpi = QueryFigures(interleaved(scpi_clients(reference, "MEAS:POW?"), rounds, n),
                                same_connection(scpi_pair(reference, "MEAS:POW?"), rounds, n))
            modbus = QueryFigures(interleaved(modbus_clients(meter, profile, unit, "energy_wh"), rounds, n),
                                  same_connection(modbus_pair(meter, profile, unit, "energy_wh"), rounds, n))
        finally:
            sim.terminate()
            sim.wait(timeout=10)
    return {"SCPI reference MEAS:POW?": scpi, "Modbus meter energy_wh": modbus}


# --- 2. and 3. plan runs ----------------------------------------------------------------------

def board_variant(positions: int, target: Path) -> Path:
    """The default board with ``positions`` positions, as tests/conftest.py ``make_board`` writes
    one: position k repeats the default board's position (k mod 8), with a serial and MAC of its own."""
    import tomli_w

    from bench.sim import board_path

    data = tomllib.loads(board_path("default").read_text())
    stated = data["position"]
    data["position"] = [{**stated[i % len(stated)], "serial": f"SIM16A{i + 1:05d}",
                         "mac": f"00:1B:C5:16:{(i + 1) >> 8:02X}:{(i + 1) & 0xFF:02X}"} for i in range(positions)]
    data["board"] = {**data["board"], "name": f"default-{positions}"}
    target.write_text(tomli_w.dumps(data))
    return target


@dataclass
class PlanRun:
    """One ``pytest test_plans/...`` process: its wall time, peak memory, output and what it wrote."""

    wall_s: float
    max_rss_mib: float
    phases: dict[str, float]
    timing: dict[str, Any]
    output: str
    bench_s: float
    record: dict[str, Any]


def fresh_bench_home(where: Path) -> Path:
    """A METER_BENCH_HOME of the run's own, with a lab key (``bench keys init``), as the tests make one."""
    home = where / "home"
    home.mkdir()
    subprocess.run([sys.executable, "-m", "bench.cli", "keys", "init"], cwd=REPO, check=True, capture_output=True,
                   env={**os.environ, "METER_BENCH_HOME": str(home)}, timeout=60)
    return home


# Starts the plan run and reports its peak memory, CPU time and times. A child's ru_maxrss starts from
# the RSS of the process that forked it (Linux carries the old mm's high-water mark across exec), so
# the plan run is forked by this small launcher, never by the benchmark, which holds every record;
# the launcher's only child is the run, so RUSAGE_CHILDREN is the run's own (benchmarks/panel.py too).
LAUNCHER = """import json, resource, subprocess, sys, time
spawned = time.time()
try:
    code = subprocess.run(sys.argv[3:], timeout=float(sys.argv[2])).returncode
except subprocess.TimeoutExpired:
    code = -9
exited = time.time()
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "spawned": spawned, "exited": exited, "cpu_s": usage.ru_utime + usage.ru_stime,
               "max_rss_kib": usage.ru_maxrss}, out)
"""


def run_plan(where: Path, board: Path, plans: list[str], *extra: str, clock: bool = False) -> PlanRun:
    """Run the plans as a lab engineer does, in a process of their own with a fresh bench home."""
    where.mkdir(parents=True)
    home, timing_file, log = fresh_bench_home(where), where / "timing.json", where / "output.txt"
    env = {**os.environ, "METER_BENCH_HOME": str(home), TIMING_FILE_ENV: str(timing_file),
           CLOCK_ENV: "1" if clock else "0"}
    # As a lab's Python runs: it keeps compiled bytecode (and pytest its rewritten plugin modules),
    # so the warm-up run pays for compiling once. A machine that sets PYTHONDONTWRITEBYTECODE (CI
    # images often do) would compile every module in every run, a fixed second that no lab pays.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    command = [sys.executable, "-m", "pytest", *plans, "--sim-scenario", str(board), "--reports-dir",
               str(where / "reports"), "-q", "-p", "no:cacheprovider", "-p", "benchmarks.run", *extra]
    with log.open("wb") as out:
        subprocess.run([sys.executable, "-c", LAUNCHER, str(where / "launcher.json"), str(PLAN_TIMEOUT_S), *command],
                       cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    output = log.read_text(errors="replace")
    launched = json.loads((where / "launcher.json").read_text())
    if launched["code"] != 0:
        raise RuntimeError(f"plan run failed (exit {launched['code']}): {' '.join(command)}\n{output[-3000:]}")
    timing = json.loads(timing_file.read_text())
    bench_time = _BENCH_TIME.search(output)
    [record_file] = (where / "reports").glob("run-*.json")
    spawned, exited, rss_mib = launched["spawned"], launched["exited"], launched["max_rss_kib"] / 1024
    return PlanRun(exited - spawned, rss_mib, run_phases(spawned, exited, timing), timing, output,
                   float(bench_time.group(1)) if bench_time else float("nan"),
                   json.loads(record_file.read_text())["record"])


@dataclass
class Scaling:
    """Section 2 for one board size: the median of its repetitions, and the largest peak memory."""

    positions: int
    runs: list[PlanRun]

    def median(self, phase: str) -> float:
        return statistics.median(run.phases[phase] for run in self.runs)

    def max_rss_mib(self) -> float:
        return max(run.max_rss_mib for run in self.runs)

    def share(self, part: str, whole: str) -> float:
        """The median over the runs of one phase over another, each run's own pair."""
        return statistics.median(ratio(run.phases[part], run.phases[whole]) for run in self.runs)

    def over(self, baseline: Scaling) -> float:
        """The median of paired ratios: each repetition's wall over the baseline's wall in the same
        repetition (run minutes apart at most), so a machine that slows for a while slows both."""
        return statistics.median(self.paired(baseline))

    def spread(self, baseline: Scaling) -> tuple[float, float]:
        """The lowest and highest paired ratio: how far one repetition alone could have put the
        figure, printed beside a verdict taken on the median."""
        ratios = self.paired(baseline)
        return min(ratios), max(ratios)

    def paired(self, baseline: Scaling) -> list[float]:
        return [ratio(run.phases["total"], base.phases["total"])
                for run, base in zip(self.runs, baseline.runs, strict=True)]


def scaling(where: Path, sizes: list[int], repetitions: int) -> list[Scaling]:
    """Section 2: the full plan on each board size, repeated after one warm-up run; sizes alternate
    between repetitions so a burst of load from elsewhere on the machine does not land on one size alone."""
    boards = {n: board_variant(n, where / f"board-{n}.toml") for n in sizes}
    runs: dict[int, list[PlanRun]] = {n: [] for n in sizes}
    print(f"  plan run: {sizes[0]} position(s), warm-up (not counted: the first run pays for cold caches)", flush=True)
    run_plan(where / "warm-up", boards[sizes[0]], ["test_plans/"])
    for repetition in range(repetitions):
        for n in sizes:
            print(f"  plan run: {n} position(s), repetition {repetition + 1} of {repetitions}", flush=True)
            runs[n].append(run_plan(where / f"wall-{n}-{repetition}", boards[n], ["test_plans/"]))
    return [Scaling(n, runs[n]) for n in sizes]


@dataclass
class BenchTime:
    """Section 3 for one selection of the plan: bench seconds, meters per hour, the fixed-dwell figure."""

    label: str
    positions: int
    bench_s: float
    fixed_s: float
    gated: int
    by_family: dict[str, float]
    gate_by_family: dict[str, float]

    def meters_per_hour(self) -> float:
        return meters_per_hour(self.positions, self.bench_s)

    def fixed_meters_per_hour(self) -> float:
        return meters_per_hour(self.positions, self.fixed_s)


def bench_time(label: str, run: PlanRun, positions: int, table: Mapping[str, Any]) -> BenchTime:
    """Bench time of one run, per family and at the fixed dwell (see ``fixed_dwell_bench_s``)."""
    families = point_families(run.record)
    by_point = bench_seconds_by(run.timing["items"], run.timing.get("clock_start", 0.0),
                                lambda nodeid: item_point(nodeid) or item_plan(nodeid))
    by_family: dict[str, float] = {}
    for name, seconds in by_point.items():
        family = families.get(name, name)
        by_family[family] = by_family.get(family, 0.0) + seconds
    gate_by_family: dict[str, float] = {}
    for point, seconds in gate_seconds(run.record).items():
        gate_by_family[families[point]] = gate_by_family.get(families[point], 0.0) + seconds
    gated = gated_points(table, sorted(families))
    fixed = fixed_dwell_bench_s(run.bench_s, {p: by_point.get(p, 0.0) for p in gated},
                                float(table["dwell"]["settle_s"]))
    return BenchTime(label, positions, run.bench_s, fixed, len(gated), by_family, gate_by_family)


def bench_times(where: Path) -> list[BenchTime]:
    """Section 3: the full plan and C12.20 alone on the default board, the routine three points
    on one position, in the meters' test mode (the runs' default) and again in normal mode
    (``--no-test-mode``); each run also reads the bench clock after every item."""
    table = tomllib.loads(LIMITS_TABLE.read_text())
    default = board_variant(8, where / "board-8.toml")
    single = board_variant(1, where / "board-1.toml")
    routine = " or ".join(ROUTINE_POINTS)
    runs = [("full plan (test_plans/)", default, 8, ["test_plans/"]),
            ("C12.20 alone (test_plans/accuracy)", default, 8, ["test_plans/accuracy"]),
            (f"routine acceptance ({', '.join(ROUTINE_POINTS)})", single, 1, ["test_plans/accuracy", "-k", routine]),
            ("routine acceptance, --no-test-mode", single, 1,
             ["test_plans/accuracy", "-k", routine, "--no-test-mode"])]
    figures = []
    for number, (label, board, positions, args) in enumerate(runs):
        print(f"  bench-time run: {label}, {positions} position(s)", flush=True)
        run = run_plan(where / f"bench-{number}", board, args, clock=True)
        figures.append(bench_time(label, run, positions, table))
    return figures


# --- report ---------------------------------------------------------------------------------------

def verdict(met: bool) -> str:
    return "MET" if met else "NOT MET"


def machine() -> str:
    """Date, CPU model, cores and Python: the figures mean nothing without them."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"{now}; {model}, {os.cpu_count()} cores; Python {platform.python_version()} "
            f"({platform.system()} {platform.release()})")


def print_per_query(figures: dict[str, QueryFigures], rounds: int, n: int) -> list[tuple[str, float, float]]:
    """Section 1's table; returns (what, driver/library ratio, target) for the targets."""
    print(f"\n1. Per query, loopback, `bench sim` in its own process ({rounds} fresh connections x {n} queries "
          "per layer, layers taking turns)")
    print(f"   {'query':<26}{'layer':<15}{'median µs':>10}{'p95 µs':>9}{'CPU µs':>8}{'vs layer below':>22}")
    checks = []
    for query, figure in figures.items():
        layers = figure.layers
        names = list(layers)
        for k, name in enumerate(names):
            below = layers[name].over(layers[names[k + 1]]) if k + 1 < len(names) else None
            shown = f"{below:.2f}x {names[k + 1]}" if below is not None else "(baseline)"
            print(f"   {query if k == 0 else '':<26}{name:<15}{layers[name].median_us():>10.0f}"
                  f"{layers[name].p95_us():>9.0f}{layers[name].cpu_us():>8.0f}{shown:>22}")
        shared = figure.driver_over_library()
        print(f"   {'':<26}driver / {names[1]} on one connection, queries taking turns: {shared:.3f}x "
              f"(connections {min(figure.shared):.3f}x to {max(figure.shared):.3f}x)")
        checks.append((f"{query}: driver/{names[1]}", shared, TARGET_DRIVER_OVERHEAD))
    print("   median and p95: wall time per query; CPU: this client's CPU per query (scheduling-independent);\n"
          "   vs layer below: the median of each round's ratio of the two layers' connection medians;\n"
          f"   on one connection: {rounds} fresh connections of the driver, each with {n} of its queries and {n} of\n"
          "   the library's on its own session or client, taking turns; the median of each connection's ratio of\n"
          "   medians (the target is judged on it: a connection's loopback mode no longer falls on one side only)")
    return checks


def print_scaling(sizes: list[Scaling]) -> dict[int, Scaling]:
    """Section 2's table."""
    print("\n2. Full plan (pytest test_plans/) software wall time, variants of the default board "
          f"(median of {len(sizes[0].runs)} run(s) each; the ratios are medians of each run's own ratio)")
    print(f"   {'positions':>9}{'wall s':>9}{'start s':>9}{'measuring s':>13}{'end-of-run s':>14}"
          f"{'of which publish s':>20}{'end/meas':>10}{'peak MiB':>10}{'wall/1 pos':>12}{'runs from-to':>16}")
    for size in sizes:
        low, high = size.spread(sizes[0])
        print(f"   {size.positions:>9}{size.median('total'):>9.1f}{size.median('start'):>9.1f}"
              f"{size.median('measuring'):>13.1f}{size.median('end_of_run'):>14.1f}{size.median('publish'):>20.1f}"
              f"{size.share('end_of_run', 'measuring'):>10.2f}{size.max_rss_mib():>10.0f}"
              f"{size.over(sizes[0]):>11.2f}x{low:>8.2f}-{high:.2f}x")
    print("   start: process start to the first item's start (interpreter, plugins, collection); measuring: first\n"
          "   item's start to the last item's end; end-of-run: last item's end to process exit (signed record,\n"
          "   certificates, reports, charts, summary, interpreter exit), of which publish = pytest_sessionfinish\n"
          "   to pytest_unconfigure, timed by this script's plugin (-p benchmarks.run) in the run itself;\n"
          "   runs from-to: the lowest and highest of the repetitions' own ratios (the verdicts are on the median);\n"
          "   peak MiB: getrusage(RUSAGE_CHILDREN).ru_maxrss in a small launcher whose only child is the run")
    return {size.positions: size for size in sizes}


def print_bench_times(figures: list[BenchTime], settle_s: float) -> None:
    """Section 3's tables."""
    print("\n3. Bench (simulated) time, meters per hour of bench time, against a fixed "
          f"{FIXED_DWELL_S:g} s dwell per gated point")
    full = figures[0]
    print(f"   bench time per family, {full.label}, {full.positions} positions (bench clock read after every item;")
    print("   the record itself stores no start/end time per point, only each gated point's gate time):")
    print(f"   {'family':<20}{'bench s':>10}{'share':>8}{'gate s (record)':>17}{'settle+overhead s':>19}")
    for family, seconds in sorted(full.by_family.items(), key=lambda kv: -kv[1]):
        gate = full.gate_by_family.get(family)
        rest = f"{seconds - gate:>19.0f}" if gate is not None else f"{'':>19}"
        shown = f"{gate:>17.0f}" if gate is not None else f"{'-':>17}"
        print(f"   {family:<20}{seconds:>10.0f}{ratio(seconds, full.bench_s):>8.0%}{shown}{rest}")
    print(f"   {'total (summary)':<20}{full.bench_s:>10.0f}")
    print(f"\n   {'selection':<46}{'pos':>4}{'bench s':>9}{'meters/h':>10}{'gated':>7}{'fixed s':>9}"
          f"{'meters/h':>10}{'bench/fixed':>12}")
    for figure in figures:
        print(f"   {figure.label:<46}{figure.positions:>4}{figure.bench_s:>9.0f}{figure.meters_per_hour():>10.2f}"
              f"{figure.gated:>7}{figure.fixed_s:>9.0f}{figure.fixed_meters_per_hour():>10.2f}"
              f"{ratio(figure.bench_s, figure.fixed_s):>11.0%}")
    print(f"   meters/h = positions x 3600 / bench s; fixed s = bench s - (bench s of the gated points)"
          f" + gated x ({settle_s:g} s settle + {FIXED_DWELL_S:g} s),\n   settle from bench/standards/c12_20.toml "
          "[dwell] settle_s, gated = the run's points whose row states a tolerance (not KH, CREEP, START)")


def print_targets(checks: list[tuple[str, float, float]], wall: dict[int, Scaling], bench: list[BenchTime]) -> None:
    """Every target of issue 13 this run can judge, with the figure and MET / NOT MET."""
    print("\nTargets (issue 13)")
    rows = [(what, f"{value:.2f}x", f"<= {target:g}x", value <= target, "") for what, value, target in checks]
    if 40 in wall and 1 in wall:
        w40 = wall[40].over(wall[1])
        rows.append(("software wall 40 positions / 1", f"{w40:.2f}x", f"<= {TARGET_WALL_40:g}x", w40 <= TARGET_WALL_40,
                     runs_from_to(wall[40], wall[1], TARGET_WALL_40)))
        eor = wall[40].share("end_of_run", "measuring")
        rows.append(("end-of-run / measuring, 40 positions", f"{eor:.0%}", f"<= {TARGET_END_OF_RUN:.0%}",
                     eor <= TARGET_END_OF_RUN, ""))
    if 80 in wall and 1 in wall:
        w80 = wall[80].over(wall[1])
        rows.append(("software wall 80 positions / 1", f"{w80:.2f}x", f"<= {TARGET_WALL_80:g}x", w80 <= TARGET_WALL_80,
                     runs_from_to(wall[80], wall[1], TARGET_WALL_80)))
    full, c1220, routine = bench[:3]  # the last, routine acceptance in normal mode, is for comparison
    rows.append(("full plan bench time per board", f"{full.bench_s / 3600:.2f} h", f"<= {TARGET_BENCH_H:g} h",
                 full.bench_s / 3600 <= TARGET_BENCH_H, ""))
    share = ratio(c1220.bench_s, c1220.fixed_s)
    rows.append(("C12.20 alone / fixed-dwell bench time", f"{share:.0%}", f"<= {TARGET_C1220_VS_FIXED:.0%}",
                 share <= TARGET_C1220_VS_FIXED, ""))
    rows.append(("routine acceptance, 1 position", f"{routine.meters_per_hour():.1f} meters/h",
                 f">= {TARGET_ROUTINE_MPH:g} meters/h", routine.meters_per_hour() >= TARGET_ROUTINE_MPH, ""))
    for what, value, target, met, spread in rows:
        print(f"   {what:<46}{value:>16}{target:>18}   {verdict(met):<7}{spread}".rstrip())


def runs_from_to(size: Scaling, baseline: Scaling, target: float) -> str:
    """Beside a wall ratio's verdict: the repetitions' lowest and highest ratio, and how many of
    them alone would have missed the target, so a verdict within the machine's spread reads as one."""
    ratios = size.paired(baseline)
    over = sum(r > target for r in ratios)
    return f"   (runs {min(ratios):.2f}x to {max(ratios):.2f}x; {over} of {len(ratios)} over the target)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="1 and 8 positions only, fewer repetitions (a smoke run of a couple of minutes)")
    args = parser.parse_args(argv)
    rounds, n, sizes, repetitions = (10, 30, [1, 8], 1) if args.quick else (30, 100, [1, 8, 40, 80], 7)
    started = time.perf_counter()
    print(f"meter bench figures ({'quick' if args.quick else 'full'} mode)", flush=True)
    queries = per_query(rounds, n)
    with tempfile.TemporaryDirectory(prefix="bench-figures-") as where:
        wall = scaling(Path(where), sizes, repetitions)
        bench = bench_times(Path(where))
    checks = print_per_query(queries, rounds, n)
    by_size = print_scaling(wall)
    print_bench_times(bench, float(tomllib.loads(LIMITS_TABLE.read_text())["dwell"]["settle_s"]))
    print_targets(checks, by_size, bench)
    print(f"\n{'quick' if args.quick else 'full'} mode, {time.perf_counter() - started:.0f} s; {machine()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
