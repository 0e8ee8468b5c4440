"""The nameplate check: the watt-hour constant Kh marked on the meter agrees with the one the meter
is programmed with (what it reports over its comms). A meter programmed with another Kh turns its
registers at another rate than its nameplate states, whatever its test output's Kt says."""
from __future__ import annotations

import math
from dataclasses import dataclass

from bench.procedures.results import CheckResult, FaultResult
from bench.station.bench import Bench
from instruments.errors import InstrumentError

KH_REGISTER = "kh_wh"
# The meter reports Kh as a float32: 7.2 comes back as 7.19999981, 2.6e-8 off. One part in a
# million is far below any two Kh values a meter could be programmed with.
KH_RELATIVE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class NameplatePoint:
    id: str
    name: str
    family: str


def check_nameplate(bench: Bench, point: NameplatePoint) -> dict[int, CheckResult | FaultResult]:
    """Each meter's programmed Kh against the profile's nameplate ``meter_type.kh_wh``."""
    nameplate = bench.profile.meter_type.kh_wh
    found: dict[int, CheckResult | FaultResult] = {}
    for pos in bench.profile.positions:
        try:
            programmed = float(bench.meters[pos.number].read(KH_REGISTER))
        except InstrumentError as error:
            found[pos.number] = FaultResult(point.id, point.name, pos, f"Kh not read: {error}")
            continue
        found[pos.number] = CheckResult(
            point.id, point.name, pos, math.isclose(programmed, nameplate, rel_tol=KH_RELATIVE_TOLERANCE),
            f"the meter reports Kh {programmed:.6g} Wh", f"nameplate Kh {nameplate:g} Wh (meter_type.kh_wh)")
    return found
