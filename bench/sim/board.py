"""A simulated board as data: meter type, instruments' true errors, and each position's meter."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import Section, load_toml
from bench.profile import parse_register_map
from bench.sim.meter_model import PHASE_ANGLES_DEG, ErrorCurve, MeterModel
from bench.sim.modbus_meters import QUANTITIES
from bench.sim.world import LoadState, ReferenceState, SourceState, World
from instruments.register_map import RegisterMap

_CURVE_KEYS = ("offset_pct", "light_load_pct", "phase_error_mrad", "voltage_pct_per_10pct")


@dataclass
class Board:
    name: str
    world: World
    register_map: RegisterMap
    meter_type: dict[str, Any]  # as the profile states it
    reference: Section
    counter: Section


def load_board(path: Path, scale: float | None = None) -> Board:
    doc = load_toml(path)
    seed = doc.table("board").integer("seed", 0)
    mt = doc.table("meter_type")
    register_map = parse_register_map(mt.table("registers"))
    ta, vn = mt.number("test_amperes", positive=True), mt.number("nominal_voltage_v", positive=True)
    meters = []
    for index, pos in enumerate(doc.tables("position"), start=1):
        pos.unknown({"serial", "mac", "firmware", "alarm_code", "starting_current_a", "pulse_jitter_s", *_CURVE_KEYS})
        meters.append(MeterModel(
            position=index,
            serial=pos.text("serial"),
            mac=pos.text("mac"),
            firmware=pos.text("firmware"),
            kh_wh=mt.number("kh_wh", positive=True),
            test_amperes=ta,
            nominal_voltage=vn,
            curve=ErrorCurve(**{k: pos.number(k, 0.0) for k in _CURVE_KEYS}),
            starting_current_a=pos.number("starting_current_a", mt.number("starting_current_a", positive=True)),
            pulse_jitter_s=pos.number("pulse_jitter_s", mt.number("pulse_jitter_s", low=0)),
            alarm_code=pos.data.get("alarm_code", ""),
            seed=seed,
        ))
    unknown = set(register_map) - set(QUANTITIES)
    if unknown:
        raise mt.error("registers", f"the simulated meter has no quantity {sorted(unknown)}")
    src, load, ref = doc.table("source"), doc.table("load"), doc.table("reference")
    elements = mt.integer("elements", low=1)
    if elements not in PHASE_ANGLES_DEG:
        raise mt.error("elements", f"the simulator models {sorted(PHASE_ANGLES_DEG)} elements, not {elements}")
    if src.integer("phases", low=1) < elements:
        raise src.error("phases", f"a {elements}-element meter needs at least {elements} source phases")
    world = World(
        source=SourceState(phases=src.integer("phases", low=1), max_voltage_v=src.number("max_voltage_v", positive=True),
                           frequency_hz=mt.number("frequency_hz", positive=True), gain_error=src.number("gain_error", 0.0)),
        load=LoadState(max_current_a=load.number("max_current_a", positive=True), gain_error=load.number("gain_error", 0.0)),
        reference=ReferenceState(error_pct=ref.number("error_pct", 0.0),
                                 pulse_constant_wh=ref.number("pulse_constant_wh", positive=True)),
        meters=meters,
        elements=elements,
        scale=scale,
    )
    meter_type = {k: v for k, v in mt.data.items() if k != "starting_current_a"}  # physics, not rating
    return Board(doc.table("board").text("name"), world, register_map, meter_type, ref, doc.table("counter"))

