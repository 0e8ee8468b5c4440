"""Each board position's meter served as a Modbus TCP device (bench/servers/modbus_tcp.py, one loop thread).

A read fills the registers it asks for from the live meter model, so it returns what the meter
holds at that simulated instant, and works out only those quantities. Every position is served
at once: a meter takes ``latency_s`` of wall time to take a request in before it samples its
registers and answers, while the loop serves the other positions. Faults on a meter's link
(``MeterFaults``) act per position: the others keep being served.
"""
from __future__ import annotations

import asyncio
import bisect
import math
import threading
from collections.abc import Callable
from functools import cached_property

from bench.servers import modbus_tcp
from bench.servers.scpi import ScpiError, out_of_range, parse_whole, scpi
from bench.sim.meter_model import INTERVAL_S, Conditions, MeterModel
from bench.sim.world import World
from instruments.register_map import Register, RegisterMap, span

LINK_FAULTS = ("NONE", "EXCEPTION", "TIMEOUT", "SWAP")  # persistent until the next one; REBOOT happens once
# Simulation working value: a meter answers at once. On the stepped clock a latency is wall time
# only (no bench time passes while reading), so it would slow every run and test and show nothing;
# a board states one (meter_latency_ms, real meters take a few to tens of ms) to see reads overlap,
# and with a scaled clock (--sim-scale) the skew between a meter's read and the reference's.
LATENCY_S = 0.0


class Reading:
    """One read of a meter's registers, under the world's lock. The conditions are worked out once,
    and only if a register read needs them: most reads are of one register."""

    def __init__(self, meter: MeterModel, world: World) -> None:
        self.meter, self.world, self.functional = meter, world, meter.functional

    @cached_property
    def conditions(self) -> Conditions:
        return self.world.conditions()


def _power_factor(r: Reading) -> float:
    c = r.conditions
    return (c.power_factor if c.current_a else 1.0) * (-1 if r.functional.ct_reversed else 1)


def _selected_interval_wh(r: Reading) -> float:
    f = r.functional
    return f.intervals_wh[f.interval_select] if 0 <= f.interval_select < len(f.intervals_wh) else 0.0


# What the meter's own metrology and firmware report in each quantity a register map may name:
# the one table of what each register holds (a board's register map may name only these).
QUANTITIES: dict[str, Callable[[Reading], float | int | str]] = {
    "energy_wh": lambda r: r.meter.register_wh,
    "received_wh": lambda r: r.meter.received_wh,
    "varh": lambda r: r.meter.varh,
    "received_varh": lambda r: r.meter.received_varh,
    "kh_wh": lambda r: r.meter.kh_wh,
    "voltage_v": lambda r: r.conditions.voltage_v * r.functional.voltage_reading_gain,
    "current_a": lambda r: r.conditions.current_a,
    "power_w": lambda r: r.meter.registered_power_w(r.conditions),
    "power_factor": _power_factor,
    "frequency_hz": lambda r: r.conditions.frequency_hz,
    "serial": lambda r: r.meter.serial,
    "mac": lambda r: r.meter.mac,
    "firmware": lambda r: r.meter.firmware,
    "alarm_code": lambda r: r.meter.alarm(),
    "service_state": lambda r: int(r.functional.service_running),
    "rssi_dbm": lambda r: round(r.functional.rssi_dbm),
    "snr_db": lambda r: round(r.functional.snr_db),
    "phase_rotation": lambda r: r.functional.phase_rotation,
    "tamper": lambda r: int(r.functional.tamper),
    "key": lambda r: "",
    "key_status": lambda r: r.functional.key_status,
    "key_fingerprint": lambda r: r.functional.key_fingerprint,
    "ping_count": lambda r: 0,
    "ping_size": lambda r: 0,
    "ping_received": lambda r: r.functional.ping_received,
    "interval_count": lambda r: len(r.functional.intervals_wh),
    "interval_select": lambda r: r.functional.interval_select,
    "interval_energy_wh": _selected_interval_wh,
    "clock_s": lambda r: math.floor(r.meter.clock_s(r.world.time_s)),  # whole seconds, as a meter's clock shows
    "interval_length_s": lambda r: INTERVAL_S,
    "daily_alarms": lambda r: ",".join(r.functional.daily_alarms),
    "tamper_clear": lambda r: 0,
    # The block-interval demand register (bench/sim/meter_model.py ``Demand``), in kW as meters show
    # demand: interval length, intervals closed since the reset, last-interval, maximum and present
    # demand, and the reset command.
    "demand_interval_s": lambda r: r.meter.demand.interval_s,
    "demand_count": lambda r: r.meter.demand.closed,
    "demand_kw": lambda r: r.meter.demand.last_w / 1000.0,
    "max_demand_kw": lambda r: r.meter.demand.max_w / 1000.0,
    "present_demand_kw": lambda r: r.meter.demand.present_w / 1000.0,
    "demand_reset": lambda r: 0,
    "test_mode": lambda r: int(r.meter.in_test_mode),
}


class ModbusMeters:
    """One Modbus TCP server per position on 127.0.0.1, all driven by one asyncio loop."""

    DRIVER = "modbus-tcp"  # the driver a profile names for these meters
    SHARED_LINE = False  # each position on a link of its own: read at once

    def __init__(self, world: World, register_map: RegisterMap, device_id: int = 1,
                 latency_s: float = LATENCY_S) -> None:
        self.world = world
        self.register_map = register_map
        self.device_id = device_id
        self.latency_s = latency_s
        self.ports: list[int] = []
        self.requests: list[int] = [0] * len(world.meters)  # requests each position received, answered or not
        # Ground truth for read timing: (simulated time, reference energy Wh) when each position last
        # sampled its registers for a read.
        self.sampled: list[tuple[float, float] | None] = [None] * len(world.meters)
        # The map by address, and where each register ends, to find the registers a read touches.
        self._by_address = sorted(register_map.values(), key=lambda register: register.address)
        self._ends = [register.address + register.count for register in self._by_address]
        self._listeners: list[modbus_tcp.Listener] = []
        self._hooks: list[tuple[MeterModel, Callable[[], None]]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="modbus-meters", daemon=True)

    def start(self) -> ModbusMeters:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start_all(), self._loop).result(timeout=10)
        return self

    def addresses(self) -> list[str]:
        """Each position's address as its driver takes it."""
        return [f"127.0.0.1:{port}" for port in self.ports]

    async def _start_all(self) -> None:
        for meter in self.world.meters:
            listener = await modbus_tcp.listen(_Position(self, meter))
            self._listeners.append(listener)
            self.ports.append(listener.port)
            meter.restart_hooks.append(listener.drop_connections)
            self._hooks.append((meter, listener.drop_connections))

    async def _stop_all(self) -> None:
        for listener in self._listeners:
            await listener.close()

    def _heard(self, meter: MeterModel) -> bool:
        """Count a request that reached the meter; a TIMEOUT meter never answers it (and holds up
        nobody: the loop goes on serving the other positions)."""
        self.requests[meter.position - 1] += 1
        return meter.link_fault != "TIMEOUT"

    def _answer(self, meter: MeterModel, function_code: int, address: int, count: int,
                words: list[int] | None) -> modbus_tcp.Answer:
        """A request the server has checked against the register block: the registers read, an
        exception code, or None (written)."""
        if meter.link_fault == "EXCEPTION":
            return modbus_tcp.DEVICE_BUSY
        if function_code in (modbus_tcp.WRITE_SINGLE, modbus_tcp.WRITE_MULTIPLE):
            return self._write(meter, address, words or [])
        if function_code != modbus_tcp.READ_HOLDING:
            return modbus_tcp.ILLEGAL_FUNCTION
        return self._read(meter, address, count)

    def _read(self, meter: MeterModel, address: int, count: int) -> list[int] | int:
        """The registers from ``address`` on, from the quantities of the registers they touch (a
        register partly read is worked out whole); addresses no register holds read 0. A value its
        register cannot hold is a server device failure (exception 4)."""
        end, index, touched = address + count, bisect.bisect_right(self._ends, address), []
        while index < len(self._by_address) and self._by_address[index].address < end:
            touched.append(self._by_address[index])
            index += 1
        with self.world.lock:
            self.world.sync()
            reading = Reading(meter, self.world)
            values = [QUANTITIES[register.name](reading) for register in touched]
            self.sampled[meter.position - 1] = (self.world.time_s, self.world.reference.accumulator_wh)
        words = [0] * count
        for register, value in zip(touched, values):
            try:
                encoded = _on_the_wire(meter, register, register.encode(value))
            except (ValueError, TypeError):
                return modbus_tcp.DEVICE_FAILURE
            low, high = max(register.address, address), min(register.address + register.count, end)
            words[low - address:high - address] = encoded[low - register.address:high - register.address]
        return words

    def _write(self, meter: MeterModel, address: int, words: list[int]) -> int | None:
        """Writes must cover whole writable registers, each one a command to the meter; values
        the registers cannot hold are refused whole (exception 3), before any is carried out."""
        end, commands = address + len(words), []
        try:
            for register in self.register_map.values():
                if register.address >= address and register.address + register.count <= end and register.writable:
                    offset = register.address - address
                    served = _on_the_wire(meter, register, words[offset:offset + register.count])
                    commands.append((register, register.decode(served)))
        except ValueError:
            return modbus_tcp.ILLEGAL_VALUE
        if sum(register.count for register, _ in commands) != len(words):
            return modbus_tcp.ILLEGAL_ADDRESS
        with self.world.lock:
            self.world.sync()
            for register, value in commands:
                meter.write(register.name, value)
        return None

    def stop(self) -> None:
        for meter, hook in self._hooks:
            meter.restart_hooks.remove(hook)
        self._hooks.clear()
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._stop_all(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self._loop.close()


class _Position:
    """One position's meter as the Modbus TCP server sees it (``modbus_tcp.Unit``)."""

    def __init__(self, meters: ModbusMeters, meter: MeterModel) -> None:
        self.unit_id, self.size = meters.device_id, span(meters.register_map)
        self._meters, self._meter = meters, meter

    @property
    def latency_s(self) -> float:
        return self._meters.latency_s

    def heard(self) -> bool:
        return self._meters._heard(self._meter)

    def answer(self, function: int, address: int, count: int, words: list[int] | None) -> modbus_tcp.Answer:
        return self._meters._answer(self._meter, function, address, count, words)


def _on_the_wire(meter: MeterModel, register: Register, words: list[int]) -> list[int]:
    """A SWAP link (a firmware or gateway with the wrong word order) reverses the 16-bit words
    of every multi-word number, both ways; text is not affected."""
    if meter.link_fault == "SWAP" and register.type != "string":
        return words[::-1]
    return words


class MeterFaults:
    """Fault injection on the meters' Modbus links, served on the simulator's control channel.

    ``SIMulation:FAULt:METer <position>,<kind>``: NONE, EXCEPTION (every request answered with
    exception 6, busy), TIMEOUT (no answer at all), SWAP (multi-word numbers in the wrong word
    order) persist until the next kind; REBOOT happens once and leaves the persistent kind as it was.
    """

    def __init__(self, world: World) -> None:
        self.world = world

    def _meter(self, arg: str | None) -> MeterModel:
        position = parse_whole(arg)
        if not 1 <= position <= len(self.world.meters):
            raise out_of_range(arg)
        return self.world.meters[position - 1]

    @scpi("SIMulation:FAULt:METer")
    def inject(self, arg: str | None) -> None:
        position, _, kind = (arg or "").partition(",")
        meter, kind = self._meter(position), kind.strip().upper()
        if kind == "REBOOT":
            meter.reboot()
        elif kind in LINK_FAULTS:
            meter.link_fault = kind
        else:
            raise ScpiError(-224, f"Illegal parameter value;{arg}")

    @scpi("SIMulation:FAULt:METer?")
    def link_fault(self, arg: str | None) -> str:
        return self._meter(arg).link_fault
