"""Start every simulated instrument on loopback and describe the result as a bench profile."""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.datafiles import Section
from bench.servers.scpi import ScpiServer
from bench.sim.board import Board, load_board
from bench.sim.counter_board import CounterFaults
from bench.sim.instruments import SimControl
from bench.sim.modbus_line import ModbusRtuMeters
from bench.sim.modbus_meters import MeterFaults, ModbusMeters
from bench.sim.twins import Served, twin
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


# Simulation working values: the instruments of a board that states no calibration dates were
# calibrated this many days before the simulated bench starts, for a year. The certificates are
# fiction either way (SIM-CAL numbers, a lab that says it is none); a board's stated dates are kept,
# and gate a run as a real instrument's do.
CALIBRATED_DAYS_BEFORE = 30
CALIBRATION_INTERVAL_DAYS = 365


def board_path(name: str) -> Path:
    """A built-in board by name, or a path to a board file."""
    candidate = BOARDS / f"{name}.toml"
    return candidate if candidate.exists() else Path(name)


# The house instruments: the documented reference design the simulator served from the start.
HOUSE_DRIVERS = {"source": "scpi-ac-source", "load": "scpi-phantom-load", "reference": "scpi-reference-standard",
                 "counter": "serial-pulse-counter", "environment": "scpi-thermometer"}
TWIN_ROLES = ("source", "load", "reference", "counter", "environment", "monitor")


class SimulatedBench:
    """The whole simulated bench. ``scale=None`` steps time only when the bench's clock waits.

    ``drivers`` names, by role, the driver whose twin serves it (default: the house instruments);
    roles naming the same driver share one twin, as they share one instrument on a real bench.
    ``kind`` is a lab's profile to stand in for: its drivers, and its source's and load's ranges
    and stability (bounded by the board's instruments), go into the profile this bench describes.
    Its lab, records and calibrations do not: a simulated run is nobody's certificate.
    ``today`` is the day its instruments' undated certificates are dated from (default: the day it is made).
    """

    def __init__(self, board: Path | str = "default", scale: float | None = None,
                 drivers: Mapping[str, str] | None = None, kind: Profile | None = None,
                 today: dt.date | None = None) -> None:
        self.today = today or dt.date.today()
        self.board_file = board_path(str(board))
        self.board: Board = load_board(self.board_file, scale)
        self.world = self.board.world
        self.kind = kind
        self.drivers = {**HOUSE_DRIVERS, **(kind.drivers() if kind else {}), **(drivers or {})}
        unknown = set(self.drivers) - set(TWIN_ROLES)
        if unknown:
            raise ValueError(f"no simulated role {sorted(unknown)} (roles: {', '.join(TWIN_ROLES)})")
        if self.board.ambient_c is None:
            self.drivers.pop("environment", None)
        self.served: dict[str, Served] = {}  # by role
        self._servers: list[Any] = []

    def start(self) -> SimulatedBench:
        world = self.world
        try:
            by_driver: dict[str, Served] = {}
            for role, name in self.drivers.items():
                if name not in by_driver:
                    by_driver[name] = twin(name)(world)
                    self._servers.append(by_driver[name])
                self.served[role] = by_driver[name]
            devices = {role.upper(): served.device for role, served in self.served.items() if role != "environment"}
            self.source, self.load = devices["SOURCE"], devices["LOAD"]
            self.reference, self.counter = devices["REFERENCE"], devices["COUNTER"]
            self.scpi = {role: served.servers[0] for role, served in self.served.items()
                         if isinstance(served.servers[0], ScpiServer)}
            self.counter_line = self.served["counter"].servers[0]
            self.control = ScpiServer(SimControl(world, devices, (CounterFaults(world), MeterFaults(world)))).start()
            self._servers.append(self.control)
            served = ModbusRtuMeters if self.board.meter_link == "rtu" else ModbusMeters
            self.meters = served(world, self.board.register_map, latency_s=self.board.meter_latency_s).start()
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
        max_voltage_v, max_current_a = self.world.source.max_voltage_v, self.world.load.max_current_a
        stability_pct = 0.005
        if self.kind is not None:
            max_voltage_v = min(max_voltage_v, self.kind.source.max_voltage_v)
            max_current_a = min(max_current_a, self.kind.load.max_current_a)
            stability_pct = self.kind.source.stability_pct
        data = {
            "bench": {"id": f"SIM-{self.kind.bench_id}" if self.kind else f"SIM-{self.board.name}"},
            "clock": {"kind": "sim", "address": self.control.resource},
            "source": {"driver": self.drivers["source"], "address": self.served["source"].address,
                       "max_voltage_v": max_voltage_v, "stability_pct": stability_pct,
                       "calibration": self._calibration("source")},
            "load": {"driver": self.drivers["load"], "address": self.served["load"].address,
                     "max_current_a": max_current_a, "calibration": self._calibration("load")},
            "reference": {
                "driver": self.drivers["reference"], "address": self.served["reference"].address,
                "serial": ref.text("serial"),
                "calibration": {**self._dates(ref, "calibration_date", "calibration_due"),
                                "certificate": ref.text("certificate"),
                                "uncertainty_pct_k2": ref.data["uncertainty_pct_k2"],
                                **{key: ref.data[key] for key in ("reactive_uncertainty_pct_k2",) if key in ref}},
            },
            "counter": {"driver": self.drivers["counter"], "address": self.served["counter"].address,
                        "baudrate": 115200,
                        "timing_uncertainty_s": cnt.number("timing_uncertainty_s", low=0, high=1.0),
                        "calibration": self._calibration("counter")},
            "meters": {"driver": self.meters.DRIVER, "device_id": self.meters.device_id,
                       "read_in_order": self.meters.SHARED_LINE},
            "positions": [{"serial": m.serial, "address": address}
                          for m, address in zip(self.world.meters, self.meters.addresses())],
            "meter_type": self.board.meter_type,
            "interlock": {"via": "counter"},
            "lab": SIM_LAB,
        }
        if "environment" in self.served:
            data["environment"] = {"driver": self.drivers["environment"], "address": self.served["environment"].address,
                                   "calibration": self._calibration("environment")}
        if "monitor" in self.served:
            data["monitor"] = {"driver": self.drivers["monitor"], "address": self.served["monitor"].address,
                               "calibration": self._calibration("monitor")}
        return data

    def _calibration(self, role: str) -> dict[str, Any]:
        """The board's certificate for the role; a role the board file predates (a monitor) gets
        the source's dates under a certificate number of its own."""
        if role in self.board.calibrations:
            stated = self.board.calibrations.table(role)
            return {**stated.data, **self._dates(stated, "date", "due")}
        return {**self._calibration("source"), "certificate": f"SIM-CAL-{role.upper()}"}

    def _dates(self, stated: Section, date_key: str, due_key: str) -> dict[str, dt.date]:
        """The certificate's dates as the board states them (both, or neither), else dated from ``today``."""
        if date_key in stated or due_key in stated:
            return {"date": stated.date(date_key), "due": stated.date(due_key)}
        issued = self.today - dt.timedelta(days=CALIBRATED_DAYS_BEFORE)
        return {"date": issued, "due": issued + dt.timedelta(days=CALIBRATION_INTERVAL_DAYS)}

    def meter_type(self) -> MeterType:
        """The meter type the board holds, known before any server starts."""
        return parse_meter_type(Section(self.board.meter_type, str(self.board_file), "meter_type"))

    def profile(self) -> Profile:
        return self.profile_of(self.profile_data())

    def profile_of(self, data: dict[str, Any]) -> Profile:
        """The profile for ``profile_data`` (this bench's, or its process's: ``bench.sim.process``)."""
        return profile_from_data(data, f"<simulated bench '{self.board_file.name}'>")
