"""Each board position's meter served as a Modbus TCP device (pymodbus server, one loop thread).

Registers are filled from the live meter model on every read, so a read returns what the
meter holds at that simulated instant.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from functools import partial

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from bench.sim.meter_model import MeterModel
from bench.sim.world import World
from instruments.register_map import RegisterMap, span

READ_HOLDING, WRITE_SINGLE, WRITE_MULTIPLE = 3, 6, 16
QUANTITIES = ("energy_wh", "voltage_v", "current_a", "power_w", "power_factor", "frequency_hz",
              "serial", "mac", "firmware", "alarm_code", "service_state", "rssi_dbm", "snr_db", "phase_rotation",
              "tamper", "key", "key_status", "key_fingerprint", "ping_count", "ping_size", "ping_received",
              "interval_count", "interval_select", "interval_energy_wh", "daily_alarms", "tamper_clear")


def meter_values(meter: MeterModel, world: World) -> dict[str, float | int | str]:
    """What the meter's own metrology reports: its registered energy and its readings."""
    c, f = world.conditions(), meter.functional
    pf = (c.power_factor if c.current_a else 1.0) * (-1 if f.ct_reversed else 1)
    selected = f.intervals_wh[f.interval_select] if 0 <= f.interval_select < len(f.intervals_wh) else 0.0
    return {
        "energy_wh": meter.energy_wh,
        "voltage_v": c.voltage_v * f.voltage_reading_gain,
        "current_a": c.current_a,
        "power_w": meter.registered_power_w(c),
        "power_factor": pf,
        "frequency_hz": c.frequency_hz,
        "serial": meter.serial,
        "mac": meter.mac,
        "firmware": meter.firmware,
        "alarm_code": meter.alarm(),
        "service_state": int(f.service_running),
        "rssi_dbm": round(f.rssi_dbm),
        "snr_db": round(f.snr_db),
        "phase_rotation": f.phase_rotation,
        "tamper": int(f.tamper),
        "key": "",
        "key_status": f.key_status,
        "key_fingerprint": f.key_fingerprint,
        "ping_count": 0,
        "ping_size": 0,
        "ping_received": f.ping_received,
        "interval_count": len(f.intervals_wh),
        "interval_select": f.interval_select,
        "interval_energy_wh": selected,
        "daily_alarms": ",".join(f.daily_alarms),
        "tamper_clear": 0,
    }


class ModbusMeters:
    """One Modbus TCP server per position on 127.0.0.1, all driven by one asyncio loop."""

    def __init__(self, world: World, register_map: RegisterMap, device_id: int = 1) -> None:
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        self.world = world
        self.register_map = register_map
        self.device_id = device_id
        self.ports: list[int] = []
        self._servers: list[ModbusTcpServer] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="modbus-meters", daemon=True)

    def start(self) -> "ModbusMeters":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start_all(), self._loop).result(timeout=10)
        return self

    async def _start_all(self) -> None:
        for meter in self.world.meters:
            device = SimDevice(
                id=self.device_id,
                simdata=[SimData(0, count=span(self.register_map), values=0, datatype=DataType.REGISTERS)],
                action=partial(self._serve, meter),
            )
            server = ModbusTcpServer(device, address=("127.0.0.1", 0))
            await server.serve_forever(background=True)
            self._servers.append(server)
            self.ports.append(server.transport.sockets[0].getsockname()[1])

    async def _serve(self, meter: MeterModel, function_code: int, start: int, address: int,
                     count: int, registers: list[int], set_values: object) -> ExcCodes | None:
        if function_code in (WRITE_SINGLE, WRITE_MULTIPLE):
            return self._write(meter, address, list(set_values or []))
        if function_code != READ_HOLDING:
            return ExcCodes.ILLEGAL_FUNCTION
        with self.world.lock:
            self.world.sync()
            values = meter_values(meter, self.world)
        for register in self.register_map.values():
            if register.address < address + count and address < register.address + register.count:
                words = register.encode(values[register.name])
                registers[register.address - start: register.address - start + register.count] = words
        return None

    def _write(self, meter: MeterModel, address: int, words: list[int]) -> ExcCodes | None:
        """Writes must cover whole writable registers; each one is a command to the meter."""
        end, covered = address + len(words), 0
        for register in self.register_map.values():
            if register.address >= address and register.address + register.count <= end and register.writable:
                offset = register.address - address
                with self.world.lock:
                    self.world.sync()
                    meter.write(register.name, register.decode(words[offset:offset + register.count]))
                covered += register.count
        return None if covered == len(words) else ExcCodes.ILLEGAL_ADDRESS

    def stop(self) -> None:
        async def shutdown() -> None:
            for server in self._servers:
                await server.shutdown()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self._loop.close()


class MeterFaults:
    """Fault injection on the meters' Modbus links, served on the simulator's control channel."""

    def __init__(self, world: World) -> None:
        self.world = world
