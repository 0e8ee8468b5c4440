"""Print the C12.20 plan's figures (a benchmark, not a test): run with the project's python.

The full plan on the default simulated board, twice in one process: with the dwell planner
(fewest pulses for the target U, at least 25 pulses and 30 s), and with a fixed five-minute
dwell per accuracy point. Creep and starting points take the periods their rules give either way.
"""
from __future__ import annotations

import dataclasses
import time

from bench.plans.limits import load_table
from bench.procedures.gating import AccuracyPoint
from bench.procedures.runner import Certification
from bench.sim import SimulatedBench
from bench.station.bench import Bench

FIXED_DWELL_S = 300.0


def run_plan(fixed_dwell: bool) -> tuple[float, float, int, int]:
    """(simulated bench seconds, wall seconds, points, positions) for the whole plan."""
    with SimulatedBench() as sim, Bench(sim.profile()) as bench:
        points = load_table().points(sim.meter_type())
        if fixed_dwell:
            points = [dataclasses.replace(p, dwell=dataclasses.replace(p.dwell, min_pulses=1, min_dwell_s=FIXED_DWELL_S,
                                                                       target_u_pct=10.0))
                      if isinstance(p, AccuracyPoint) else p for p in points]
        certification = Certification(bench, {p.id: p for p in points})
        start_bench, start_wall = bench.clock.now(), time.perf_counter()
        for point in points:
            certification.run(point)
        bench.safe_state()
        return (bench.clock.now() - start_bench, time.perf_counter() - start_wall,
                len(points), len(bench.profile.positions))


def main() -> None:
    planned, planned_wall, points, positions = run_plan(fixed_dwell=False)
    fixed, fixed_wall, _, _ = run_plan(fixed_dwell=True)
    for label, bench_s, wall_s in (("dwell planner", planned, planned_wall),
                                   (f"fixed {FIXED_DWELL_S:g} s dwell", fixed, fixed_wall)):
        print(f"{label:>20}: {bench_s:8.0f} s of bench time ({bench_s / 3600:.2f} h) for {points} points x {positions} "
              f"positions = {positions * 3600 / bench_s:5.2f} meters/hour; wall {wall_s:.2f} s")
    print(f"planner saves {100 * (1 - planned / fixed):.0f} % of bench time ({fixed / planned:.2f}x the throughput)")


if __name__ == "__main__":
    main()
