"""Every board position's meter on one Modbus RTU line (RS-485), over a null-modem pty pair.

The meters answer by unit id (the position's number) on one shared line, served by one pymodbus
RTU server: one transaction at a time, as on a real bus, each with the meters' latency. What a
meter answers is ``ModbusMeters``'s, as over TCP; only the serving is pymodbus's here.
"""
from __future__ import annotations

import asyncio
import logging
from functools import partial

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from bench.servers.null_modem import NullModem
from bench.sim.meter_model import MeterModel
from bench.sim.modbus_meters import LATENCY_S, ModbusMeters
from bench.sim.world import World
from instruments.meter_modbus_rtu import BAUDRATE
from instruments.register_map import RegisterMap, span


class ModbusRtuMeters(ModbusMeters):
    """The simulator holds one end of the line; the bench opens ``port``, the other."""

    DRIVER = "modbus-rtu"
    SHARED_LINE = True

    def __init__(self, world: World, register_map: RegisterMap, device_id: int = 1,
                 latency_s: float = LATENCY_S) -> None:
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        super().__init__(world, register_map, device_id, latency_s)
        self._modem = NullModem()
        self.port = self._modem.client_port
        self._server: ModbusSerialServer | None = None

    def start(self) -> ModbusRtuMeters:
        self._modem.start()
        super().start()
        return self

    def addresses(self) -> list[str]:
        return [f"{self.port}@{meter.position}" for meter in self.world.meters]

    async def _start_all(self) -> None:
        devices = [self._device(meter) for meter in self.world.meters]
        # pymodbus annotates trace_pdu as returning a PDU, but its transaction layer takes a request
        # traced to None as no request (see _received_on_line): the annotation is narrower than the code.
        self._server = ModbusSerialServer(devices, framer=FramerType.RTU, port=self._modem.server_port,
                                          baudrate=BAUDRATE, trace_pdu=self._received_on_line)  # type: ignore[arg-type]
        await self._server.serve_forever(background=True)

    async def _stop_all(self) -> None:
        if self._server is not None:
            await self._server.shutdown()

    def _device(self, meter: MeterModel) -> SimDevice:
        """The meter as pymodbus serves it: one block of registers, filled by ``_serve`` on every request."""
        return SimDevice(id=meter.position,
                         simdata=[SimData(0, count=span(self.register_map), values=0, datatype=DataType.REGISTERS)],
                         action=partial(self._serve, meter))

    def _received_on_line(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU | None:
        """pymodbus's trace hook on every PDU. The line's requests reach the meter their unit id
        names (a unit nobody has is not answered); a request handed back as None is never served
        (the handler only answers a PDU it gets back), which is how a TIMEOUT meter stays silent."""
        if sending:
            return pdu
        if not 1 <= pdu.dev_id <= len(self.world.meters):
            return None
        return pdu if self._heard(self.world.meters[pdu.dev_id - 1]) else None

    async def _serve(self, meter: MeterModel, function_code: int, start: int, address: int,
                     count: int, registers: list[int], set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        """pymodbus's action on every access, after its own address check: the meter's answer,
        written into the block pymodbus then replies from."""
        await asyncio.sleep(self.latency_s)  # the meter taking the request in (the line is busy meanwhile)
        words = None if set_values is None else [int(value) for value in set_values]
        answer = self._answer(meter, function_code, address, count, words)
        if isinstance(answer, int):
            return ExcCodes(answer)
        if answer is not None:
            registers[address - start:address - start + count] = answer
        return None

    def stop(self) -> None:
        super().stop()
        self._modem.stop()
