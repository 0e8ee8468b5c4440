"""Every position's register read at once (Modbus TCP) or in order (a shared line), each read
timed where it happens, against the simulator's meters answering with a latency."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.metrology.quantities import ACTIVE
from bench.plans.limits import load_table
from bench.procedures import gating
from bench.sim import SimulatedBench
from bench.station.bench import Bench
from bench.station.meter_reads import BoardRead
from bench.station.profile import profile_from_data

LATENCY_MS = 40.0  # each simulated meter's answer: long beside loopback and the drivers (well under 1 ms)


@pytest.fixture
def slow_meters(make_board) -> Path:
    return make_board(board={"meter_latency_ms": LATENCY_MS})


def _bench(sim: SimulatedBench, *, in_order: bool) -> Bench:
    data = sim.profile_data()
    data["meters"] = {**data["meters"], "read_in_order": in_order}
    return Bench(profile_from_data(data, "<test>"))


@pytest.fixture
def scaled(slow_meters: Path) -> Iterator[SimulatedBench]:
    """Simulated time running with the wall clock, so a meter's latency is bench time too."""
    with SimulatedBench(slow_meters, scale=1.0) as sim:
        yield sim


def _overlapping(board: BoardRead) -> bool:
    """Every read was in flight at one moment: each started before any had its answer."""
    return max(r.t0 for r in board.reads.values()) < min(r.t1 for r in board.reads.values())


@pytest.mark.slow  # opens the bench on a simulated board of its own
def test_positions_on_links_of_their_own_are_read_at_once_and_on_one_line_in_order(slow_meters):
    with SimulatedBench(slow_meters) as sim:
        with _bench(sim, in_order=False) as bench:
            at_once = bench.meter_reads.read("serial")
        with _bench(sim, in_order=True) as bench:
            in_order = bench.meter_reads.read("serial")
    serials = {m.position: m.serial for m in sim.world.meters}
    for board in (at_once, in_order):
        assert not board.failed and {n: r.value for n, r in board.reads.items()} == serials
    # Eight meters each answering in 40 ms: at once, all eight requests are out before the first
    # answer is back; in order, each request goes out after the answer before it.
    assert _overlapping(at_once), sorted((r.t0, r.t1) for r in at_once.reads.values())
    windows = sorted((r.t0, r.t1) for r in in_order.reads.values())
    assert all(earlier[1] <= later[0] for earlier, later in zip(windows, windows[1:])), windows


def test_a_meter_whose_comms_fail_spoils_only_its_own_position_when_read_at_once(sim, sim_bench):
    sim.world.meters[2].link_fault = "EXCEPTION"  # position 3 answers every request with exception 6 (busy)
    board = sim_bench.meter_reads.read("energy_wh")
    assert set(board.failed) == {3} and "exception 6" in board.failed[3]
    assert set(board.reads) == {1, 2, 4, 5, 6, 7, 8}


@pytest.mark.slow  # opens the bench on a simulated board of its own
def test_each_read_is_paired_with_the_reference_energy_at_its_own_time_not_the_batch_time(scaled):
    # Full load at PF 1 on the Form 16S board: 10.8 kW, 3 Wh per second of bench time. Eight meters on
    # one line, 40 ms each: the reads span about 0.33 s, in which the reference registers about 1 Wh.
    # Against the simulator's ground truth (the reference's energy at the instant each meter sampled
    # its register) each position's interpolated reference energy is within its read-timing budget
    # (power x skew); one timestamp for the whole batch is out by more than that budget at both ends.
    with _bench(scaled, in_order=True) as bench:
        point = {p.id: p for p in load_table().points(bench.profile.meter_type)}["FL-PF1"]
        bench.apply(point.stimulus(bench))
        try:
            snapshot = gating._snapshot(bench, ACTIVE)
            power_wh_per_s = scaled.world.reference_power_w() / 3600.0
        finally:
            bench.safe_state()
    truth = {n: scaled.meters.sampled[n - 1][1] for n in snapshot.reference_wh}
    batch = sum(snapshot.reference_wh[n] for n in (1, 8)) / 2  # about the batch's midpoint, as one stamp
    for n, reference_wh in snapshot.reference_wh.items():
        budget_wh = power_wh_per_s * snapshot.skew_s[n]
        assert 0 < budget_wh < 0.1  # about 20 ms of half-width: 0.06 Wh
        assert abs(reference_wh - truth[n]) <= budget_wh, (
            f"position {n}: interpolated {reference_wh:.4f} Wh, true {truth[n]:.4f} Wh, budget {budget_wh:.4f} Wh")
    for n in (1, 8):
        assert abs(batch - truth[n]) > power_wh_per_s * snapshot.skew_s[n], (
            f"position {n}: one batch stamp {batch:.4f} Wh is within the read budget of the truth {truth[n]:.4f} Wh")
