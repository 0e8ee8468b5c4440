"""A simulated board as data: meter type, instruments' true errors, and each position's meter."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.datafiles import Section, load_toml
from bench.metrology.forms import forms
from bench.sim.meter_model import DEMAND_INTERVAL_S, Demand, ErrorCurve, Functional, MeterModel
from bench.sim.modbus_meters import LATENCY_S, QUANTITIES
from bench.sim.world import LoadState, ReferenceState, SourceState, World
from bench.station.profile import (
    MAX_CURRENT_A,
    MAX_DEMAND_INTERVAL_S,
    MAX_KH_WH,
    MAX_VOLTAGE_V,
    MIN_DEMAND_INTERVAL_S,
    parse_register_map,
    parse_test_mode,
    parse_test_outputs,
)
from instruments.register_map import RegisterMap

_CURVE_KEYS = tuple(ErrorCurve.__dataclass_fields__)
_FUNCTIONAL_KEYS = ("service_running", "checksum_fault", "firmware_conflict", "rssi_dbm", "snr_db", "ping_loss",
                    "phase_rotation", "tamper", "rejects_keys", "ct_reversed", "voltage_reading_gain",
                    "interval_record_gain")
_INSPECTION_KEYS = ("torque_in_lb", "jaw_tension_ok", "seals", "inspected")  # what the simulated technician records
_POSITION_KEYS = {"serial", "mac", "firmware", "alarm_code", "starting_current_a", "pulse_jitter_s", "kh_wh",
                  "element_offsets_pct", "circuit_offsets_pct", "creep_w", "clock_offset_s", "fault", "fails",
                  "diagnosis",
                  *_CURVE_KEYS, *_FUNCTIONAL_KEYS,
                  *_INSPECTION_KEYS}


# The demand register: its interval (seconds) and a demand-timer fault (% fast; < 0 slow).
_DEMAND_KEYS = {"demand_interval_s", "demand_clock_error_pct"}
MAX_DEMAND_CLOCK_ERROR_PCT = 50.0


def _demand(pos: Section) -> Demand:
    """The demand register a position declares: its interval and any fault of its timer."""
    return Demand(pos.number("demand_interval_s", DEMAND_INTERVAL_S, low=MIN_DEMAND_INTERVAL_S,
                             high=MAX_DEMAND_INTERVAL_S),
                  pos.number("demand_clock_error_pct", 0.0, low=-MAX_DEMAND_CLOCK_ERROR_PCT,
                             high=MAX_DEMAND_CLOCK_ERROR_PCT))


MAX_ERROR_PCT = 100.0  # a simulated meter's error terms; a real meter is within a few percent
MAX_CLOCK_OFFSET_S = 86400.0  # a meter's clock runs up to a day ahead of the simulated world's


def _functional(pos: Section) -> Functional:
    """The firmware and comms behaviour a position declares, each value of the type its field has."""
    typed: dict[type, Callable[[str], Any]] = {bool: pos.boolean, str: pos.text,
                                               float: lambda key: pos.number(key, low=-1000.0, high=1000.0)}
    defaults = Functional()
    return Functional(**{key: typed[type(getattr(defaults, key))](key) for key in _FUNCTIONAL_KEYS if key in pos})


@dataclass
class Board:
    name: str
    world: World
    register_map: RegisterMap
    meter_type: dict[str, Any]  # as the profile states it
    reference: Section
    counter: Section
    calibrations: Section  # role -> the simulated instrument's calibration certificate
    ambient_c: float | None  # a thermometer is on the board when set
    expected_failures: dict[int, tuple[str, ...]]  # position -> test points its fault should fail
    expected_diagnoses: dict[int, str]  # position -> the troubleshooting code its fault should show
    inspection: dict[str, dict[str, Any]]  # serial -> the simulated technician's entries
    meter_latency_s: float  # how long each meter takes to answer a Modbus transaction (wall time)
    meter_link: str  # "tcp": a Modbus TCP link per position; "rtu": every position on one Modbus RTU line


METER_TYPES = Path(__file__).parent / "meter_types"


def _meter_type(doc: Section) -> Section:
    """A board names a shared meter type (``meter_type = "sim_16s_cl200"``: bench/sim/meter_types/)
    or states its own ``[meter_type]`` table."""
    name = doc.data.get("meter_type")
    if not isinstance(name, str):
        return doc.table("meter_type")
    try:
        return shared_meter_type(name)
    except KeyError as error:
        raise doc.error("meter_type", str(error.args[0])) from None


def shared_meter_type(name: str) -> Section:
    """The ``[meter_type]`` table of bench/sim/meter_types/NAME.toml (KeyError: no such type)."""
    if not re.fullmatch(r"[a-z0-9_]+", name) or not (METER_TYPES / f"{name}.toml").is_file():
        known = ", ".join(sorted(p.stem for p in METER_TYPES.glob("*.toml")))
        raise KeyError(f"no meter type '{name}' (known: {known})")
    return load_toml(METER_TYPES / f"{name}.toml").table("meter_type")


def load_board(path: Path, scale: float | None = None) -> Board:
    doc = load_toml(path)
    board = doc.table("board")
    seed = board.integer("seed", 0)
    mt = _meter_type(doc)
    register_map = parse_register_map(mt.table("registers"))
    unknown = set(register_map) - set(QUANTITIES)
    if unknown:
        raise mt.error("registers", f"the simulated meter has no quantity {sorted(unknown)}")
    test_outputs = parse_test_outputs(mt.table("test_outputs"))
    test_mode = parse_test_mode(mt.table("test_mode"), register_map, test_outputs) if "test_mode" in mt else None
    form_name = mt.text("form", choices=tuple(forms()))
    form = forms()[form_name]
    if mt.integer("elements", low=1, high=3) != form.elements:
        raise mt.error("elements", f"form {form_name} has {form.elements} elements")
    src, load, ref = doc.table("source"), doc.table("load"), doc.table("reference")
    phases = src.integer("phases", low=1, high=3)
    if phases < form.elements:
        raise src.error("phases", f"a {form.elements}-element meter needs at least {form.elements} source phases")
    load_phases = load.integer("phases", max(phases, form.circuits), low=1, high=3)
    if load_phases < form.circuits:
        raise load.error("phases", f"Form {form_name} has {form.circuits} current circuits, one load phase each")
    meters, expected, diagnoses, inspection = [], {}, {}, {}
    for index, pos in enumerate(doc.tables("position"), start=1):
        pos.unknown(_POSITION_KEYS | _DEMAND_KEYS)
        offsets = pos.numbers("element_offsets_pct", (), low=-MAX_ERROR_PCT, high=MAX_ERROR_PCT)
        if offsets and len(offsets) != form.elements:
            raise pos.error("element_offsets_pct", f"needs {form.elements} values, one per element")
        circuit_offsets = pos.numbers("circuit_offsets_pct", (), length=form.circuits if "circuit_offsets_pct" in pos
                                      else None, low=-MAX_ERROR_PCT, high=MAX_ERROR_PCT)
        meters.append(MeterModel(
            position=index,
            serial=pos.text("serial"),
            mac=pos.text("mac"),
            firmware=pos.text("firmware"),
            kh_wh=pos.number("kh_wh", mt.number("kh_wh", positive=True, high=MAX_KH_WH), positive=True,
                             high=MAX_KH_WH),  # a position's own: a meter programmed with another Kh
            test_amperes=mt.number("test_amperes", positive=True, high=MAX_CURRENT_A),
            nominal_voltage=mt.number("nominal_voltage_v", positive=True, high=MAX_VOLTAGE_V),
            nominal_frequency=mt.number("frequency_hz", low=45.0, high=65.0),
            curve=ErrorCurve(**{k: pos.number(k, 0.0, low=-MAX_ERROR_PCT, high=MAX_ERROR_PCT) for k in _CURVE_KEYS}),
            starting_current_a=pos.number("starting_current_a",
                                          mt.number("starting_current_a", positive=True, high=MAX_CURRENT_A),
                                          positive=True, high=MAX_CURRENT_A),
            pulse_jitter_s=pos.number("pulse_jitter_s", mt.number("pulse_jitter_s", low=0, high=1.0), low=0, high=1.0),
            element_offsets_pct=offsets,
            circuit_offsets_pct=circuit_offsets,
            creep_w=pos.number("creep_w", 0.0, low=0, high=1000.0),
            clock_offset_s=pos.number("clock_offset_s", 0.0, low=0.0, high=MAX_CLOCK_OFFSET_S),
            alarm_code=pos.text("alarm_code") if "alarm_code" in pos else "",
            seed=seed,
            functional=_functional(pos),
            demand=_demand(pos),
            test_outputs=test_outputs,
            test_mode_outputs=test_mode.test_outputs if test_mode else {},
            test_mode_demand_interval_s=test_mode.demand_interval_s if test_mode else None,
            bidirectional="received_wh" in register_map,
        ))
        if "fails" in pos:
            expected[index] = pos.texts("fails")
        if "diagnosis" in pos:
            diagnoses[index] = pos.text("diagnosis")
        if pos.boolean("inspected", True):
            serial = pos.text("serial")
            inspection[serial] = {  # bench/plans/inspection.py checks them as it checks a technician's file
                "torque_in_lb": (list(pos.numbers("torque_in_lb", low=0.0, high=1000.0))
                                 if isinstance(pos.data.get("torque_in_lb"), list)
                                 else pos.number("torque_in_lb", 50.0, positive=True, high=1000.0)),
                "jaw_tension_ok": pos.boolean("jaw_tension_ok", True),
                "seals": list(pos.texts("seals", (f"SEAL-{serial}",))),
                "technician": "simulated technician"}
    world = World(
        source=SourceState(phases=phases, max_voltage_v=src.number("max_voltage_v", positive=True, high=MAX_VOLTAGE_V),
                           frequency_hz=mt.number("frequency_hz", low=45.0, high=65.0),
                           gain_error=src.number("gain_error", 0.0, low=-0.5, high=0.5)),
        load=LoadState(phases=load_phases,
                       max_current_a=load.number("max_current_a", positive=True, high=MAX_CURRENT_A),
                       gain_error=load.number("gain_error", 0.0, low=-0.5, high=0.5)),
        reference=ReferenceState(error_pct=ref.number("error_pct", 0.0, low=-MAX_ERROR_PCT, high=MAX_ERROR_PCT),
                                 pulse_constant_wh=ref.number("pulse_constant_wh", positive=True, high=MAX_KH_WH)),
        meters=meters,
        angles_deg=form.voltage_angles_deg,
        circuit_map=form.circuit_map,
        outputs=tuple(test_outputs),
        scale=scale,
    )
    meter_type = {k: v for k, v in mt.data.items() if k != "starting_current_a"}  # physics, not rating
    ambient = board.number("ambient_c", low=-40.0, high=85.0) if "ambient_c" in board else None
    world.ambient_c = ambient
    calibrations = doc.table("calibrations")
    calibrations.unknown({"source", "load", "counter", "environment"})
    return Board(board.text("name"), world, register_map, meter_type, ref, doc.table("counter"), calibrations, ambient,
                 expected, diagnoses, inspection,
                 board.number("meter_latency_ms", LATENCY_S * 1000, low=0, high=1000.0) / 1000,
                 board.text("meter_link", "tcp", choices=("tcp", "rtu")))
