"""The bench profile (TOML): which driver and address plays each role, the meter type, positions.

A profile is the only thing that differs between the simulated bench and a real one.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import Section, load_toml
from bench.forms import forms
from bench.metrology import CertifiedUncertainty
from instruments.register_map import TYPES, Register, RegisterMap

DRIVERS = {
    "source": ("scpi-ac-source",),
    "load": ("scpi-phantom-load",),
    "reference": ("scpi-reference-standard",),
    "counter": ("serial-pulse-counter",),
    "meters": ("modbus-tcp",),
    "environment": ("scpi-thermometer",),
}
CLASSES = (0.1, 0.2, 0.5)
# Physical ranges for the profile's numbers: generous bounds of meter-test equipment and meters
# (ANSI current classes run to CL320; meter-test sources to a few hundred volts). A value outside
# them is a typo, not a bench.
MAX_VOLTAGE_V = 1000.0
MAX_CURRENT_A = 1000.0
MAX_KH_WH = 1000.0
MAX_BAUDRATE = 4_000_000
REQUIRED_REGISTERS = ("energy_wh", "serial", "mac", "firmware")


@dataclass(frozen=True)
class Calibration:
    date: dt.date
    due: dt.date
    certificate: str
    uncertainty: CertifiedUncertainty  # of active energy, by power factor


@dataclass(frozen=True)
class SourceConfig:
    driver: str
    address: str
    max_voltage_v: float  # instrument range, from its specification
    stability_pct: float  # output stability over a dwell, from its specification


@dataclass(frozen=True)
class LoadConfig:
    driver: str
    address: str
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
    baudrate: int
    timing_uncertainty_s: float  # timebase resolution and input-capture latency spread


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
    kh_wh: float
    pulse_jitter_s: float
    registers: RegisterMap


@dataclass(frozen=True)
class Position:
    number: int
    serial: str
    address: str


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
    positions: tuple[Position, ...]
    meter_type: MeterType
    interlock: str | None  # "counter": the counter board's interlock input
    environment_address: str | None  # a thermometer at the board, if there is one
    records_url: str | None  # SQLAlchemy URL of the records database, if the lab has one


def load_profile(path: Path) -> Profile:
    return parse_profile(load_toml(path))


def parse_profile(doc: Section) -> Profile:
    doc.unknown({"bench", "clock", "source", "load", "reference", "counter", "meters", "positions",
                 "meter_type", "interlock", "environment", "records"})
    bench = doc.table("bench")
    clock = doc.table("clock", {"kind": "wall"})
    clock_kind = clock.text("kind", choices=("wall", "sim"))
    src, load, ref, cnt, met = (doc.table(r) for r in ("source", "load", "reference", "counter", "meters"))
    for section, keys in ((bench, {"id"}), (clock, {"kind", "address"}),
                          (src, {"driver", "address", "max_voltage_v", "stability_pct"}),
                          (load, {"driver", "address", "max_current_a"}),
                          (ref, {"driver", "address", "serial", "calibration"}),
                          (cnt, {"driver", "address", "baudrate", "timing_uncertainty_s"}),
                          (met, {"driver", "device_id"})):
        section.unknown(keys)
    cal = ref.table("calibration")
    cal.unknown({"date", "due", "certificate", "uncertainty_pct_k2"})
    position_tables = doc.tables("positions")
    for table in position_tables:
        table.unknown({"serial", "address"})
    positions = tuple(Position(i, p.text("serial"), p.text("address")) for i, p in enumerate(position_tables, start=1))
    serials = [p.serial for p in positions]
    if len(set(serials)) != len(serials):
        raise doc.error("positions", "two positions share a meter serial")
    interlock = doc.table("interlock", None)
    calibration = Calibration(cal.date("date"), cal.date("due"), cal.text("certificate"), _uncertainty_by_pf(cal))
    if calibration.due <= calibration.date:
        raise cal.error("due", "calibration due date is not after the calibration date")
    return Profile(
        source_file=doc.source,
        digest=hashlib.sha256(json.dumps(doc.data, sort_keys=True, default=str).encode()).hexdigest(),
        bench_id=bench.text("id"),
        clock_kind=clock_kind,
        clock_address=clock.text("address") if clock_kind == "sim" else None,
        source=SourceConfig(_driver(src, "source"), src.text("address"),
                            src.number("max_voltage_v", positive=True, high=MAX_VOLTAGE_V),
                            src.number("stability_pct", low=0, high=1.0)),
        load=LoadConfig(_driver(load, "load"), load.text("address"),
                        load.number("max_current_a", positive=True, high=MAX_CURRENT_A)),
        reference=ReferenceConfig(_driver(ref, "reference"), ref.text("address"), ref.text("serial"), calibration),
        counter=CounterConfig(_driver(cnt, "counter"), cnt.text("address"),
                              cnt.integer("baudrate", 115200, low=50, high=MAX_BAUDRATE),
                              cnt.number("timing_uncertainty_s", low=0, high=1.0)),
        meters_driver=_driver(met, "meters"),
        meters_device_id=met.integer("device_id", 1, high=255),
        positions=positions,
        meter_type=parse_meter_type(doc.table("meter_type")),
        interlock=_interlock(interlock),
        environment_address=_environment(doc.table("environment", None)),
        records_url=_records(doc.table("records", None)),
    )


def parse_meter_type(mt: Section) -> MeterType:
    mt.unknown({f for f in MeterType.__dataclass_fields__})
    form = mt.text("form", choices=tuple(forms()))
    accuracy_class = mt.number("accuracy_class")
    if accuracy_class not in CLASSES:
        raise mt.error("accuracy_class", f"{accuracy_class:g} is not one of {', '.join(map(str, CLASSES))}")
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
        registers=parse_register_map(mt.table("registers")),
    )


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


def _uncertainty_by_pf(cal: Section) -> CertifiedUncertainty:
    """A single U for every PF, or a table such as ``{ "1.0" = 0.01, "0.5" = 0.015 }``."""
    value = cal.data.get("uncertainty_pct_k2")
    if not isinstance(value, dict):
        return CertifiedUncertainty(((0.0, cal.number("uncertainty_pct_k2", positive=True, high=10.0)),))
    table = cal.table("uncertainty_pct_k2")
    rows = []
    for key in table.data:
        try:
            pf = float(key)
        except ValueError:
            raise table.error(key, "keys are power factors such as \"1.0\" or \"0.5\"") from None
        if not 0 < pf <= 1:  # also refuses "nan"
            raise table.error(key, "a power factor is in (0, 1]")
        rows.append((pf, table.number(key, positive=True, high=10.0)))
    return CertifiedUncertainty(tuple(sorted(rows, reverse=True)))


def _records(section: Section | None) -> str | None:
    if section is None:
        return None
    section.unknown({"url"})
    return section.text("url")


def _environment(section: Section | None) -> str | None:
    if section is None:
        return None
    section.unknown({"driver", "address"})
    _driver(section, "environment")
    return section.text("address")


def _interlock(section: Section | None) -> str | None:
    if section is None:
        return None
    section.unknown({"via"})
    return section.text("via", choices=("counter",))


def _driver(section: Section, role: str) -> str:
    return section.text("driver", choices=DRIVERS[role])


def profile_from_data(data: dict[str, Any], source: str) -> Profile:
    return parse_profile(Section(data, source, ""))
