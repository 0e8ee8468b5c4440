"""Print each driver's overhead per query against a bare socket on the same twin (a benchmark,
not a test): run with the project's python.

For every installed driver with a socket twin, the same identification query (``*IDN?``) is sent
N times through the driver (its transport, pyvisa-py) and N times by a bare TCP client that
writes the line and reads up to its LF: median and 95th percentile per query, and the ratio.
"""
from __future__ import annotations

import socket
import statistics
import time

from bench.sim.board import load_board
from bench.sim.simbench import board_path
from bench.sim.twins import twins
from instruments.registry import DriverSettings, drivers

N = 1000


def _per_query(action, n: int = N) -> list[float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        action()
        samples.append(time.perf_counter() - t0)
    return samples


def _bare(port: int, line: bytes) -> list[float]:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def ask() -> None:
            sock.sendall(line)
            reply = b""
            while not reply.endswith(b"\n"):
                reply += sock.recv(4096)

        return _per_query(ask)


def _figures(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e6, ordered[int(0.95 * len(ordered))] * 1e6


def main() -> None:
    print(f"{'driver':<26}{'driver µs (p50/p95)':>22}{'bare socket µs (p50/p95)':>28}{'ratio p50':>11}")
    for name, info in sorted(drivers().items()):
        serve = twins().get(name)
        if serve is None:
            continue
        served = serve(load_board(board_path("default")).world)
        try:
            if not served.address.startswith("TCPIP"):
                continue
            port = int(served.address.split("::")[2])
            instrument = info.create(DriverSettings(served.address, name)).open()
            try:
                via_driver = _figures(_per_query(lambda i=instrument: i.query("*IDN?")))
            finally:
                instrument.close()
            bare = _figures(_bare(port, b"*IDN?\n"))
            print(f"{name:<26}{via_driver[0]:>12.0f} / {via_driver[1]:<8.0f}{bare[0]:>17.0f} / {bare[1]:<9.0f}"
                  f"{via_driver[0] / bare[0]:>8.2f}")
        finally:
            served.stop()


if __name__ == "__main__":
    main()
