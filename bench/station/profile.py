"""The bench profile (TOML): which driver and address plays each role, the meter type, positions.

A profile is the only thing that differs between the simulated bench and a real one.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.datafiles import Section, load_toml
from bench.metrology.forms import forms
from bench.metrology.quantities import Quantity
from bench.metrology.uncertainty import CertifiedUncertainty
from instruments.register_map import TYPES, Register, RegisterMap
from instruments.registry import DriverError, driver

MIN_CLASS, MAX_CLASS = 0.01, 5.0  # accuracy classes run from 0.1 (ANSI C12.20) to 3 (IEC 62053-23)
# Physical ranges for the profile's numbers: generous bounds of meter-test equipment and meters
# (ANSI current classes run to CL320; meter-test sources to a few hundred volts). A value outside
# them is a typo, not a bench.
MAX_VOLTAGE_V = 1000.0
MAX_CURRENT_A = 1000.0
MAX_KH_WH = 1000.0
MAX_CHANNEL = 1024  # counter channels: a board of 80 positions with two test outputs each uses 160
MAX_BAUDRATE = 4_000_000
REQUIRED_REGISTERS = ("energy_wh", "serial", "mac", "firmware")


@dataclass(frozen=True)
class CalibrationRecord:
    """An instrument's calibration: its certificate, when it was done, and when it is due."""
    certificate: str
    date: dt.date
    due: dt.date

    def past_due(self, today: dt.date) -> bool:
        return today > self.due

    def to_dict(self) -> dict[str, str]:
        return {"certificate": self.certificate, "date": str(self.date), "due": str(self.due)}


@dataclass(frozen=True)
class Calibration(CalibrationRecord):
    uncertainty: CertifiedUncertainty  # of active energy, by power factor
    reactive_uncertainty: CertifiedUncertainty | None = None  # of reactive energy, by sin φ, if certified


@dataclass(frozen=True)
class Signatory:
    name: str
    title: str


@dataclass(frozen=True)
class Lab:
    """Who issues the certificates: printed on each, with the number pattern and the signatories."""
    name: str
    address: str
    accreditation_body: str
    accreditation_number: str
    certificate_number: str  # a pattern: {year}, {seq} (the lab's running number), {serial}, {run}
    traceability: str
    signatories: tuple[Signatory, ...]
    template: Path | None  # the lab's own certificate template (Jinja2)
    signing_key: Path | None  # the lab's Ed25519 key; default: bench.signing.default_key_path()

    def certificate_number_for(self, seq: int, year: int, serial: str, run_id: str) -> str:
        return self.certificate_number.format(seq=seq, year=year, serial=serial, run=run_id[:8])

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "address": self.address, "accreditation_body": self.accreditation_body,
                "accreditation_number": self.accreditation_number, "traceability": self.traceability,
                "signatories": [{"name": s.name, "title": s.title} for s in self.signatories]}


@dataclass(frozen=True)
class SourceConfig:
    driver: str
    address: str
    calibration: CalibrationRecord
    max_voltage_v: float  # instrument range, from its specification
    stability_pct: float  # output stability over a dwell, from its specification


@dataclass(frozen=True)
class LoadConfig:
    driver: str
    address: str
    calibration: CalibrationRecord
    max_current_a: float


@dataclass(frozen=True)
class ReferenceConfig:
    driver: str
    address: str
    serial: str
    calibration: Calibration


@dataclass(frozen=True)
class CounterConfig:
    driver: str
    address: str
    calibration: CalibrationRecord
    baudrate: int
    timing_uncertainty_s: float  # timebase resolution and input-capture latency spread


@dataclass(frozen=True)
class MonitorConfig:
    driver: str
    address: str
    calibration: CalibrationRecord


MIN_DEMAND_INTERVAL_S, MAX_DEMAND_INTERVAL_S = 60.0, 3600.0  # demand intervals in use: 1 to 60 minutes


@dataclass(frozen=True)
class TestMode:
    """A meter's high-resolution test output, entered over its comms (a smaller Kt: more pulses
    per unit of energy, so a gate reaches its pulse count sooner). Writing ``ENTER`` to the
    register enters it, ``LEAVE`` leaves it; reading the register back tells the mode."""

    __test__ = False  # a data class, not a pytest test class
    ENTER, LEAVE = 1, 0
    register: str  # a writable register of the meter's register map
    test_outputs: dict[str, float]  # Kt in test mode per test output; outputs not named keep their Kt
    demand_interval_s: float | None = None  # the demand interval in test mode, where the meter has its own

    def kt(self, normal: dict[str, float]) -> dict[str, float]:
        """The Kt of every test output while the meter is in test mode."""
        return {**normal, **self.test_outputs}

    def to_dict(self) -> dict[str, Any]:
        return {"register": self.register, "test_outputs": dict(self.test_outputs),
                "demand_interval_s": self.demand_interval_s}


@dataclass(frozen=True)
class MeterType:
    manufacturer: str
    model: str
    form: str
    accuracy_class: float
    test_amperes: float
    max_current_a: float
    nominal_voltage_v: float
    max_voltage_v: float  # nameplate rating: the bench never applies more
    frequency_hz: float
    elements: int
    kh_wh: float  # the nameplate watt-hour constant, checked against what the meter reports
    pulse_jitter_s: float
    registers: RegisterMap
    test_outputs: dict[str, float]  # Kt per test output ("Wh", "varh") in normal mode
    test_mode: TestMode | None = None  # the meter's test mode, if it offers one

    def lacks(self, quantity: Quantity) -> str | None:
        """Why this meter type cannot be tested for a quantity (no test output or register), or None."""
        if quantity.output not in self.test_outputs:
            return f"the meter has no {quantity.output} test output (meter_type.test_outputs)"
        if quantity.register not in self.registers:
            return f"the meter has no '{quantity.register}' register (meter_type.registers)"
        return None


@dataclass(frozen=True)
class Position:
    number: int
    serial: str
    address: str
    channels: dict[str, int]  # the counter channel each test output is wired to


@dataclass(frozen=True)
class Profile:
    source_file: str
    digest: str
    bench_id: str
    clock_kind: str  # "wall" on hardware, "sim" on the simulated bench
    clock_address: str | None
    source: SourceConfig
    load: LoadConfig
    reference: ReferenceConfig
    counter: CounterConfig
    meters_driver: str
    meters_device_id: int
    meters_read_in_order: bool  # positions share one line (RS-485): read one after another, never at once
    positions: tuple[Position, ...]
    meter_type: MeterType
    interlock: str | None  # "counter": the counter board's interlock input
    environment_driver: str | None
    environment_address: str | None  # a thermometer at the board, if there is one
    environment_calibration: CalibrationRecord | None
    monitor: MonitorConfig | None  # a power analyser watching the board's conditions, if there is one
    records_url: str | None  # SQLAlchemy URL of the records database, if the lab has one
    lab: Lab

    def calibrations(self) -> dict[str, CalibrationRecord]:
        """Every role whose calibration a result depends on (the thermometer gates reference conditions)."""
        found: dict[str, CalibrationRecord] = {"source": self.source.calibration, "load": self.load.calibration,
                                               "reference": self.reference.calibration,
                                               "counter": self.counter.calibration}
        if self.environment_calibration is not None:
            found["environment"] = self.environment_calibration
        if self.monitor is not None:
            found["monitor"] = self.monitor.calibration
        return found

    def drivers(self) -> dict[str, str]:
        """The driver of every instrument role the profile fills (what a simulated twin must speak)."""
        found = {"source": self.source.driver, "load": self.load.driver, "reference": self.reference.driver,
                 "counter": self.counter.driver}
        if self.environment_driver is not None:
            found["environment"] = self.environment_driver
        if self.monitor is not None:
            found["monitor"] = self.monitor.driver
        return found

    def past_due(self, today: dt.date) -> dict[str, CalibrationRecord]:
        return {role: cal for role, cal in self.calibrations().items() if cal.past_due(today)}


def load_profile(path: Path) -> Profile:
    return parse_profile(load_toml(path), path.parent)


def parse_profile(doc: Section, directory: Path | None = None) -> Profile:
    """``directory`` resolves relative paths in the profile (the lab's template and key)."""
    doc.unknown({"bench", "clock", "source", "load", "reference", "counter", "meters", "positions",
                 "meter_type", "interlock", "environment", "monitor", "records", "lab"})
    bench = doc.table("bench")
    clock = doc.table("clock", {"kind": "wall"})
    clock_kind = clock.text("kind", choices=("wall", "sim"))
    src, load, ref, cnt, met = (doc.table(r) for r in ("source", "load", "reference", "counter", "meters"))
    for section, keys in ((bench, {"id"}), (clock, {"kind", "address"}),
                          (src, {"driver", "address", "max_voltage_v", "stability_pct", "calibration"}),
                          (load, {"driver", "address", "max_current_a", "calibration"}),
                          (ref, {"driver", "address", "serial", "calibration"}),
                          (cnt, {"driver", "address", "baudrate", "timing_uncertainty_s", "calibration"}),
                          (met, {"driver", "device_id", "read_in_order"})):
        section.unknown(keys)
    cal = ref.table("calibration")
    position_tables = doc.tables("positions")
    meter_type = parse_meter_type(doc.table("meter_type"))
    outputs = tuple(meter_type.test_outputs)
    positions = tuple(_position(i, p, outputs, len(position_tables)) for i, p in enumerate(position_tables, start=1))
    channels = [c for p in positions for c in p.channels.values()]
    if len(set(channels)) != len(channels):
        raise doc.error("positions", "two test outputs share a counter channel (positions.channels)")
    serials = [p.serial for p in positions]
    if len(set(serials)) != len(serials):
        raise doc.error("positions", "two positions share a meter serial")
    interlock = doc.table("interlock", None)
    reference_cal = _calibration(cal, {"uncertainty_pct_k2", "reactive_uncertainty_pct_k2"})
    calibration = Calibration(reference_cal.certificate, reference_cal.date, reference_cal.due, _uncertainty_by_pf(cal),
                              _uncertainty_by_pf(cal, "reactive_uncertainty_pct_k2", "sin φ")
                              if "reactive_uncertainty_pct_k2" in cal else None)
    environment = doc.table("environment", None)
    return Profile(
        source_file=doc.source,
        digest=hashlib.sha256(json.dumps(doc.data, sort_keys=True, default=str).encode()).hexdigest(),
        bench_id=bench.text("id"),
        clock_kind=clock_kind,
        clock_address=clock.text("address") if clock_kind == "sim" else None,
        source=SourceConfig(_driver(src, "source"), src.text("address"), _calibration(src.table("calibration")),
                            src.number("max_voltage_v", positive=True, high=MAX_VOLTAGE_V),
                            src.number("stability_pct", low=0, high=1.0)),
        load=LoadConfig(_driver(load, "load"), load.text("address"), _calibration(load.table("calibration")),
                        load.number("max_current_a", positive=True, high=MAX_CURRENT_A)),
        reference=ReferenceConfig(_driver(ref, "reference"), ref.text("address"), ref.text("serial"), calibration),
        counter=CounterConfig(_driver(cnt, "counter"), cnt.text("address"), _calibration(cnt.table("calibration")),
                              cnt.integer("baudrate", 115200, low=50, high=MAX_BAUDRATE),
                              cnt.number("timing_uncertainty_s", low=0, high=1.0)),
        meters_driver=_driver(met, "meter"),
        meters_device_id=met.integer("device_id", 1, high=255),
        meters_read_in_order=met.boolean("read_in_order", False),
        positions=positions,
        meter_type=meter_type,
        interlock=_interlock(interlock),
        environment_driver=_driver(environment, "environment") if environment is not None else None,
        environment_address=_environment(environment),
        environment_calibration=_calibration(environment.table("calibration")) if environment is not None else None,
        monitor=_monitor(doc.table("monitor", None)),
        records_url=_records(doc.table("records", None)),
        lab=parse_lab(doc.table("lab"), directory),
    )


def _calibration(cal: Section, also: set[str] | None = None) -> CalibrationRecord:
    cal.unknown({"date", "due", "certificate"} | (also or set()))
    record = CalibrationRecord(cal.text("certificate"), cal.date("date"), cal.date("due"))
    if record.due <= record.date:
        raise cal.error("due", "calibration due date is not after the calibration date")
    return record


NUMBER_FIELDS = {"seq", "year", "serial", "run"}


def parse_lab(lab: Section, directory: Path | None) -> Lab:
    lab.unknown({"name", "address", "accreditation_body", "accreditation_number", "certificate_number",
                 "traceability", "signatories", "template", "signing_key"})
    pattern = lab.text("certificate_number")
    try:
        fields = {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(pattern)
                  if name is not None}
        unknown = fields - NUMBER_FIELDS
        if unknown or "seq" not in fields:
            raise ValueError(f"fields {sorted(unknown)} are unknown" if unknown else "it has no {seq}")
        pattern.format(seq=1, year=2026, serial="S", run="0123abcd")
    except (ValueError, IndexError, KeyError) as error:
        raise lab.error("certificate_number", f"not a usable pattern ({error}); use {{year}}, {{seq}} (required, "
                                              f"e.g. {{seq:05d}}), {{serial}}, {{run}}") from None
    signatories = tuple(Signatory(s.text("name"), s.text("title")) for s in lab.tables("signatories"))
    for table in lab.tables("signatories"):
        table.unknown({"name", "title"})
    return Lab(lab.text("name"), lab.text("address"), lab.text("accreditation_body"), lab.text("accreditation_number"),
               pattern, lab.text("traceability"), signatories,
               _path(lab, "template", directory), _path(lab, "signing_key", directory))


def _path(section: Section, key: str, directory: Path | None) -> Path | None:
    if key not in section:
        return None
    path = Path(section.text(key)).expanduser()
    return path if path.is_absolute() or directory is None else directory / path


def _position(number: int, table: Section, outputs: tuple[str, ...], count: int) -> Position:
    """A board position; its test outputs are on counter channels ``number``, ``count + number``,
    ... in the meter type's output order, unless ``channels = { varh = 17 }`` says otherwise."""
    table.unknown({"serial", "address", "channels"})
    wired = table.table("channels") if "channels" in table else None
    channels = {}
    for k, output in enumerate(outputs):
        default = k * count + number
        channels[output] = wired.integer(output, default, low=1, high=MAX_CHANNEL) if wired else default
    if wired:
        wired.unknown(set(outputs))
    return Position(number, table.text("serial"), table.text("address"), channels)


def parse_meter_type(mt: Section) -> MeterType:
    mt.unknown({f for f in MeterType.__dataclass_fields__})
    form = mt.text("form", choices=tuple(forms()))
    # Which classes a limits table judges is the table's (table.classes); a run refuses a meter whose
    # class its table does not hold.
    accuracy_class = mt.number("accuracy_class", low=MIN_CLASS, high=MAX_CLASS)
    test_amperes = mt.number("test_amperes", positive=True, high=MAX_CURRENT_A)
    max_current = mt.number("max_current_a", positive=True, high=MAX_CURRENT_A)
    if max_current < test_amperes:
        raise mt.error("max_current_a", f"{max_current:g} A is below test_amperes {test_amperes:g} A")
    elements = mt.integer("elements", low=1, high=3)
    if elements != forms()[form].elements:
        raise mt.error("elements", f"form {form} has {forms()[form].elements} elements, not {elements}")
    nominal = mt.number("nominal_voltage_v", positive=True, high=MAX_VOLTAGE_V)
    max_voltage = mt.number("max_voltage_v", positive=True, high=MAX_VOLTAGE_V)
    if max_voltage < nominal:
        raise mt.error("max_voltage_v", f"{max_voltage:g} V is below nominal_voltage_v {nominal:g} V")
    registers, test_outputs = parse_register_map(mt.table("registers")), parse_test_outputs(mt.table("test_outputs"))
    return MeterType(
        manufacturer=mt.text("manufacturer"),
        model=mt.text("model"),
        form=form,
        accuracy_class=accuracy_class,
        test_amperes=test_amperes,
        max_current_a=max_current,
        nominal_voltage_v=nominal,
        max_voltage_v=max_voltage,
        frequency_hz=mt.number("frequency_hz", low=45, high=65),
        elements=elements,
        kh_wh=mt.number("kh_wh", positive=True, high=MAX_KH_WH),
        pulse_jitter_s=mt.number("pulse_jitter_s", low=0, high=1.0),
        registers=registers,
        test_outputs=test_outputs,
        test_mode=parse_test_mode(mt.table("test_mode"), registers, test_outputs) if "test_mode" in mt else None,
    )


OUTPUTS = ("Wh", "varh")  # the test outputs a meter may have


def parse_test_outputs(outputs: Section) -> dict[str, float]:
    """Kt per test output: a Wh output always, a varh output where the meter has one."""
    outputs.unknown(set(OUTPUTS))
    if "Wh" not in outputs:
        raise outputs.error("Wh", "missing: the Kt of the meter's Wh test output")
    return {name: outputs.number(name, positive=True, high=MAX_KH_WH) for name in outputs.data}


def parse_test_mode(table: Section, registers: RegisterMap, normal: dict[str, float]) -> TestMode:
    """``[meter_type.test_mode]``: the writable register that enters and leaves it, and the Kt of
    each test output in test mode, smaller than its normal Kt (else test mode gains nothing)."""
    table.unknown({"register", "demand_interval_s", *OUTPUTS})
    for name in table.data:
        if name in OUTPUTS and name not in normal:
            raise table.error(name, f"the meter has no {name} test output (meter_type.test_outputs)")
    register = table.text("register")
    if register not in registers or not registers[register].writable:
        raise table.error("register", f"'{register}' is not a writable register of meter_type.registers")
    outputs = {name: table.number(name, positive=True, high=MAX_KH_WH) for name in normal if name in table}
    if not outputs:
        raise table.error(next(iter(normal)), f"missing: the Kt in test mode of at least one test output "
                                              f"({', '.join(normal)})")
    for name, kt in outputs.items():
        if kt >= normal[name]:
            raise table.error(name, f"Kt {kt:g} in test mode is not smaller than the normal Kt {normal[name]:g} "
                                    f"(meter_type.test_outputs.{name})")
    demand = (table.number("demand_interval_s", low=MIN_DEMAND_INTERVAL_S, high=MAX_DEMAND_INTERVAL_S)
              if "demand_interval_s" in table else None)
    return TestMode(register, outputs, demand)


def parse_register_map(regs: Section) -> RegisterMap:
    register_map = {}
    for name in regs.data:
        entry = regs.table(name)
        entry.unknown({"address", "type", "scale", "words", "writable"})
        register_map[name] = Register(name, entry.integer("address", high=65535), entry.text("type", choices=TYPES),
                                      entry.number("scale", 1.0, low=1e-12, high=1e12),
                                      entry.integer("words", 1, low=1, high=125),  # one Modbus read
                                      entry.boolean("writable", False))
    for name in REQUIRED_REGISTERS:
        if name not in register_map:
            raise regs.error(name, "missing (the bench needs it to identify the meter and cross-check energy)")
    spans = sorted((r.address, r.address + r.count, r.name) for r in register_map.values())
    for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
        if start < end:
            raise regs.error(second, f"overlaps register '{first}'")
    return register_map


def _uncertainty_by_pf(cal: Section, key: str = "uncertainty_pct_k2", against: str = "PF") -> CertifiedUncertainty:
    """A single U for every PF (or sin φ, for reactive energy), or a table such as
    ``{ "1.0" = 0.01, "0.5" = 0.015 }``."""
    value = cal.data.get(key)
    if not isinstance(value, dict):
        return CertifiedUncertainty(((0.0, cal.number(key, positive=True, high=10.0)),), against)
    table = cal.table(key)
    rows = []
    for name in table.data:
        try:
            factor = float(name)
        except ValueError:
            raise table.error(name, f"keys are values of {against} such as \"1.0\" or \"0.5\"") from None
        if not 0 < factor <= 1:  # also refuses "nan"
            raise table.error(name, f"{against} is in (0, 1]")
        rows.append((factor, table.number(name, positive=True, high=10.0)))
    return CertifiedUncertainty(tuple(sorted(rows, reverse=True)), against)


def _records(section: Section | None) -> str | None:
    if section is None:
        return None
    section.unknown({"url"})
    return section.text("url")


def _environment(section: Section | None) -> str | None:
    if section is None:
        return None
    section.unknown({"driver", "address", "calibration"})
    return section.text("address")


def _monitor(section: Section | None) -> MonitorConfig | None:
    if section is None:
        return None
    section.unknown({"driver", "address", "calibration"})
    return MonitorConfig(_driver(section, "monitor"), section.text("address"),
                         _calibration(section.table("calibration")))


def _interlock(section: Section | None) -> str | None:
    if section is None:
        return None
    section.unknown({"via"})
    return section.text("via", choices=("counter",))


def _driver(section: Section, role: str) -> str:
    """An installed driver that can fill the role (`bench drivers` lists them)."""
    name = section.text("driver")
    try:
        driver(name, role)
    except DriverError as error:
        raise section.error("driver", str(error)) from None
    return name


def profile_from_data(data: dict[str, Any], source: str) -> Profile:
    return parse_profile(Section(data, source, ""))
