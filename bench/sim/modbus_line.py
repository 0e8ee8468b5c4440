"""Every board position's meter on one Modbus RTU line (RS-485), over a null-modem pty pair.

The meters answer by unit id (the position's number) on one shared line, served by one pymodbus
RTU server: one transaction at a time, as on a real bus, each with the meters' latency.
"""
from __future__ import annotations

from pymodbus import FramerType
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer

from bench.servers.null_modem import NullModem
from bench.sim.modbus_meters import LATENCY_S, ModbusMeters
from bench.sim.world import World
from instruments.meter_modbus_rtu import BAUDRATE
from instruments.register_map import RegisterMap


class ModbusRtuMeters(ModbusMeters):
    """The simulator holds one end of the line; the bench opens ``port``, the other."""

    DRIVER = "modbus-rtu"
    SHARED_LINE = True

    def __init__(self, world: World, register_map: RegisterMap, device_id: int = 1,
                 latency_s: float = LATENCY_S) -> None:
        super().__init__(world, register_map, device_id, latency_s)
        self._modem = NullModem()
        self.port = self._modem.client_port

    def start(self) -> ModbusRtuMeters:
        self._modem.start()
        super().start()
        return self

    def addresses(self) -> list[str]:
        return [f"{self.port}@{meter.position}" for meter in self.world.meters]

    async def _start_all(self) -> None:
        devices = [self._device(meter, meter.position) for meter in self.world.meters]
        # trace_pdu: as for the TCP servers (bench/sim/modbus_meters.py), a request traced to None is not served.
        server = ModbusSerialServer(devices, framer=FramerType.RTU, port=self._modem.server_port, baudrate=BAUDRATE,
                                    trace_pdu=self._received_on_line)  # type: ignore[arg-type]
        await server.serve_forever(background=True)
        self._servers.append(server)

    def _received_on_line(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU | None:
        """The line's requests reach the meter their unit id names (a unit nobody has is not answered)."""
        if sending:
            return pdu
        if not 1 <= pdu.dev_id <= len(self.world.meters):
            return None
        return self._received(self.world.meters[pdu.dev_id - 1], sending, pdu)

    def stop(self) -> None:
        super().stop()
        self._modem.stop()
