"""The twins of the house instruments (the documented reference design): the simulator's own
source, phantom load, reference standard, counter board and thermometer."""
from __future__ import annotations

from bench.servers.scpi import ScpiDevice, ScpiServer
from bench.servers.serial_line import PtySerialServer
from bench.sim.counter_board import SimCounter
from bench.sim.instruments import SimLoad, SimReference, SimSource, SimThermometer
from bench.sim.twins import Served
from bench.sim.world import World


def _on_socket(device: ScpiDevice) -> Served:
    server = ScpiServer(device).start()
    return Served(server.resource, device, [server])


def serve_source(world: World) -> Served:
    return _on_socket(SimSource(world))


def serve_load(world: World) -> Served:
    return _on_socket(SimLoad(world))


def serve_reference(world: World) -> Served:
    return _on_socket(SimReference(world))


def serve_thermometer(world: World) -> Served:
    """Only a board that states its air temperature has a thermometer."""
    if world.ambient_c is None:
        raise ValueError("this board states no ambient_c: it has no thermometer to serve")
    return _on_socket(SimThermometer(world, world.ambient_c))


def serve_counter(world: World) -> Served:
    """The counter protocol on a pty, as the board (or `bench counterd`) gives it on USB serial."""
    device = SimCounter(world)
    line = PtySerialServer(device).start()
    return Served(line.port, device, [line])
