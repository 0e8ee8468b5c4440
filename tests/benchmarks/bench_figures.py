"""Print the bench's speed figures (a benchmark, not a test): run with the project's python.

- SCPI query round trip through the driver (pyvisa-py) against a bare socket client, same server;
- Modbus register read through the meter driver;
- the certification run (`pytest test_plans/`) on the simulated bench: wall time and the
  simulated bench time it covered.
"""
from __future__ import annotations

import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.station.profile import load_profile
from instruments.ac_source import ScpiAcSource
from instruments.meter_modbus import ModbusMeter
from instruments.transport import resource_manager

REPO = Path(__file__).resolve().parents[2]
N = 2000


CPU: dict[str, float] = {}


def timed(action, n: int = N, cpu_key: str | None = None) -> list[float]:
    """Wall time per call; with ``cpu_key``, also add up this process's CPU time for the calls."""
    samples = []
    cpu0 = time.process_time()
    for _ in range(n):
        t0 = time.perf_counter()
        action()
        samples.append(time.perf_counter() - t0)
    if cpu_key:
        CPU[cpu_key] = CPU.get(cpu_key, 0.0) + time.process_time() - cpu0
    return samples


def bare_query(sock: socket.socket) -> str:
    sock.sendall(b"VOLT?\n")
    data = b""
    while not data.endswith(b"\n"):
        data += sock.recv(4096)
    return data.decode()


def standalone_sim(profile_path: Path) -> subprocess.Popen:
    """The simulator in its own process, as an instrument is: no GIL shared with the client."""
    process = subprocess.Popen([sys.executable, "-m", "bench.cli", "sim", "--profile", str(profile_path)],
                               stdout=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("profile:"):
            return process
    raise RuntimeError("bench sim did not start")


def main() -> None:
    profile_path = REPO / "reports" / "benchmark-profile.toml"
    sim = standalone_sim(profile_path)
    try:
        profile = load_profile(profile_path)
        host, port = re.match(r"TCPIP0::(.+)::(\d+)::SOCKET", profile.source.address).groups()
        samples: dict[str, list[float]] = {"bare": [], "raw": [], "driver": []}

        def bare_client() -> None:
            with socket.create_connection((host, int(port))) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                samples["bare"].extend(timed(lambda: bare_query(sock), N // 30, "bare"))

        def raw_client() -> None:
            raw = resource_manager().open_resource(profile.source.address, read_termination="\n",
                                                   write_termination="\n")
            samples["raw"].extend(timed(lambda: raw.query("VOLT?"), N // 30, "raw"))
            raw.close()

        def driver_client() -> None:
            source = ScpiAcSource(profile.source.address).open()
            samples["driver"].extend(timed(lambda: source.voltage, N // 30, "driver"))
            source.close()

        # Latency on this kind of VM is bimodal per connection and depends on what ran just
        # before, so each round opens fresh connections and the clients take turns going first.
        clients = [bare_client, raw_client, driver_client]
        for round_ in range(30):
            for client in clients[round_ % 3:] + clients[:round_ % 3]:
                client()
        bare, raw_visa, driver = (statistics.median(samples[k]) for k in ("bare", "raw", "driver"))
        meter = ModbusMeter(profile.positions[0].address, profile.meter_type.registers).open()
        modbus = statistics.median(timed(meter.energy_wh, 500))
        meter.close()
    finally:
        sim.terminate()
        sim.wait()
    cpu = {k: v / len(samples[k]) * 1e6 for k, v in CPU.items()}
    print(f"SCPI query client CPU per query: driver {cpu['driver']:.0f} µs, raw pyvisa-py {cpu['raw']:.0f} µs, "
          f"bare socket {cpu['bare']:.0f} µs (scheduling-independent cost of each layer)")
    print("SCPI query wall median (bimodal per connection on a 2-core VM, 30 fresh connections each): "
          f"driver {driver * 1e6:.0f} µs, raw pyvisa-py {raw_visa * 1e6:.0f} µs, "
          f"bare socket {bare * 1e6:.0f} µs; driver/bare {driver / bare:.2f}, "
          f"driver/raw pyvisa {driver / raw_visa:.2f} (n={N})")
    print(f"Modbus energy register read median: {modbus * 1e6:.0f} µs (n=500)")

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as reports:  # the benchmark's run is not a record to keep
        run = subprocess.run([sys.executable, "-m", "pytest", "test_plans/", "-q", "-p", "no:cacheprovider",
                              "--reports-dir", reports], cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    covered = re.search(r"bench time covered: ([\d.]+) s", run.stdout)
    summary = run.stdout.strip().splitlines()[-1]
    print(f"certification run (pytest test_plans/): {wall:.2f} s wall including interpreter start, "
          f"{covered.group(1) if covered else '?'} s of simulated bench time; {summary}")


if __name__ == "__main__":
    main()
