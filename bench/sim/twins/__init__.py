"""Simulated twins: for each driver, an instrument that speaks that driver's documented protocol
and acts on the simulated world. A twin registers under its driver's name in the entry-point
group ``meter_bench.twins``, so a lab's package ships a driver file and a twin file together.

A twin's entry point is a callable ``serve(world) -> Served``: it starts its server(s) on
loopback and says where a client connects.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol

from bench.servers.scpi import ScpiDevice
from bench.sim.world import World

GROUP = "meter_bench.twins"


class Server(Protocol):
    def stop(self) -> None: ...


@dataclass
class Served:
    """A running twin: the address its driver opens, the device a fault can be injected into
    (SIM:FAULt <role>,<kind>), and the servers to stop."""

    address: str
    device: ScpiDevice
    servers: list[Server] = field(default_factory=list)

    def stop(self) -> None:
        while self.servers:
            self.servers.pop().stop()


Twin = Callable[[World], Served]


@functools.cache
def twins() -> dict[str, Twin]:
    found: dict[str, Any] = {}
    for point in entry_points(group=GROUP):
        found[point.name] = point.load()
    return found


def twin(driver: str) -> Twin:
    known = twins()
    if driver not in known:
        raise KeyError(f"no simulated twin for driver '{driver}' (twins: {', '.join(sorted(known))})")
    return known[driver]
