"""Start every simulated instrument on loopback and describe the result as a bench profile."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.datafiles import Section
from bench.sim.board import Board, load_board
from bench.sim.counter_board import CounterFaults, SimCounter
from bench.sim.instruments import (
    SimControl,
    SimLoad,
    SimReference,
    SimSource,
    SimThermometer,
)
from bench.sim.modbus_meters import MeterFaults, ModbusMeters
from bench.sim.scpi import ScpiServer
from bench.sim.serial_line import PtySerialServer
from bench.station.profile import (
    MeterType,
    Profile,
    parse_meter_type,
    profile_from_data,
)

BOARDS = Path(__file__).parent / "boards"
# The simulated bench is nobody's laboratory: its certificates say so where a lab's name would be.
SIM_LAB = {
    "name": "Meter bench simulator (demonstration: not a laboratory, not accredited)",
    "address": "simulated bench on loopback (127.0.0.1)",
    "accreditation_body": "none",
    "accreditation_number": "none (simulated bench)",
    "certificate_number": "SIM-{year}-{seq:05d}",
    "traceability": "None: the instruments are simulated. On a real bench this states the chain of calibrations "
                    "from the reference standard to national standards (e.g. NIST), with the certificates "
                    "listed below.",
    "signatories": [{"name": "Simulated Approver", "title": "demonstration only"}],
}


def board_path(name: str) -> Path:
    """A built-in board by name, or a path to a board file."""
    candidate = BOARDS / f"{name}.toml"
    return candidate if candidate.exists() else Path(name)


class SimulatedBench:
    """The whole simulated bench. ``scale=None`` steps time only when the bench's clock waits."""

    def __init__(self, board: Path | str = "default", scale: float | None = None) -> None:
        self.board_file = board_path(str(board))
        self.board: Board = load_board(self.board_file, scale)
        self.world = self.board.world
        self._servers: list[Any] = []

    def start(self) -> SimulatedBench:
        world = self.world
        self.source, self.load, self.reference = SimSource(world), SimLoad(world), SimReference(world)
        self.counter = SimCounter(world)
        devices = {"SOURCE": self.source, "LOAD": self.load, "REFERENCE": self.reference, "COUNTER": self.counter}
        try:
            self.scpi = {name.lower(): ScpiServer(device).start() for name, device in devices.items()
                         if name != "COUNTER"}
            self._servers.extend(self.scpi.values())
            if self.board.ambient_c is not None:
                self.scpi["environment"] = ScpiServer(SimThermometer(world, self.board.ambient_c)).start()
                self._servers.append(self.scpi["environment"])
            self.control = ScpiServer(SimControl(world, devices, (CounterFaults(world), MeterFaults(world)))).start()
            self._servers.append(self.control)
            self.counter_line = PtySerialServer(self.counter).start()
            self._servers.append(self.counter_line)
            self.meters = ModbusMeters(world, self.board.register_map).start()
            self._servers.append(self.meters)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        while self._servers:
            self._servers.pop().stop()

    def __enter__(self) -> SimulatedBench:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def profile_data(self) -> dict[str, Any]:
        """The profile a lab would write for this bench, with the addresses just assigned."""
        ref, cnt = self.board.reference, self.board.counter
        data = {
            "bench": {"id": f"SIM-{self.board.name}"},
            "clock": {"kind": "sim", "address": self.control.resource},
            "source": {"driver": "scpi-ac-source", "address": self.scpi["source"].resource,
                       "max_voltage_v": self.world.source.max_voltage_v, "stability_pct": 0.005,
                       "calibration": self._calibration("source")},
            "load": {"driver": "scpi-phantom-load", "address": self.scpi["load"].resource,
                     "max_current_a": self.world.load.max_current_a, "calibration": self._calibration("load")},
            "reference": {
                "driver": "scpi-reference-standard", "address": self.scpi["reference"].resource,
                "serial": ref.text("serial"),
                "calibration": {"date": ref.date("calibration_date"), "due": ref.date("calibration_due"),
                                "certificate": ref.text("certificate"),
                                "uncertainty_pct_k2": ref.data["uncertainty_pct_k2"]},
            },
            "counter": {"driver": "serial-pulse-counter", "address": self.counter_line.port, "baudrate": 115200,
                        "timing_uncertainty_s": cnt.number("timing_uncertainty_s", low=0, high=1.0),
                        "calibration": self._calibration("counter")},
            "meters": {"driver": "modbus-tcp", "device_id": self.meters.device_id},
            "positions": [{"serial": m.serial, "address": f"127.0.0.1:{port}"}
                          for m, port in zip(self.world.meters, self.meters.ports)],
            "meter_type": self.board.meter_type,
            "interlock": {"via": "counter"},
            "lab": SIM_LAB,
        }
        if "environment" in self.scpi:
            data["environment"] = {"driver": "scpi-thermometer", "address": self.scpi["environment"].resource,
                                   "calibration": self._calibration("environment")}
        return data

    def _calibration(self, role: str) -> dict[str, Any]:
        return dict(self.board.calibrations.table(role).data)

    def meter_type(self) -> MeterType:
        """The meter type the board holds, known before any server starts."""
        return parse_meter_type(Section(self.board.meter_type, str(self.board_file), "meter_type"))

    def profile(self) -> Profile:
        return profile_from_data(self.profile_data(), f"<simulated bench '{self.board_file.name}'>")
