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
import time
from pathlib import Path

from bench.profile import load_profile
from instruments.ac_source import ScpiAcSource
from instruments.meter_modbus import ModbusMeter

REPO = Path(__file__).resolve().parents[2]
N = 2000


def timed(action, n: int = N) -> list[float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        action()
        samples.append(time.perf_counter() - t0)
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
        source = ScpiAcSource(profile.source.address).open()
        host, port = re.match(r"TCPIP0::(.+)::(\d+)::SOCKET", profile.source.address).groups()
        with socket.create_connection((host, int(port))) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            bare_samples, driver_samples = [], []
            for _ in range(10):  # interleaved rounds, so drift on the machine hits both alike
                bare_samples += timed(lambda: bare_query(sock), N // 10)
                driver_samples += timed(lambda: source.voltage, N // 10)
        bare, driver = statistics.median(bare_samples), statistics.median(driver_samples)
        source.close()
        meter = ModbusMeter(profile.positions[0].address, profile.meter_type.registers).open()
        modbus = statistics.median(timed(meter.energy_wh, 500))
        meter.close()
    finally:
        sim.terminate()
        sim.wait()
    print(f"SCPI query median: driver {driver * 1e6:.0f} µs, bare socket {bare * 1e6:.0f} µs, "
          f"ratio {driver / bare:.2f} (n={N})")
    print(f"Modbus energy register read median: {modbus * 1e6:.0f} µs (n=500)")

    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "pytest", "test_plans/", "-q", "-p", "no:cacheprovider"],
                         cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    covered = re.search(r"bench time covered: ([\d.]+) s", run.stdout)
    summary = run.stdout.strip().splitlines()[-1]
    print(f"certification run (pytest test_plans/): {wall:.2f} s wall including interpreter start, "
          f"{covered.group(1) if covered else '?'} s of simulated bench time; {summary}")


if __name__ == "__main__":
    main()
