"""The figure-computing functions of benchmarks/run.py on hand-made data: the script's figures are
only as good as these formulas, and a wrong one would print a plausible number. Nothing here runs a
benchmark or times anything."""
from __future__ import annotations

import statistics

import pytest

from benchmarks import run as benchmark_run
from benchmarks.run import (
    Layer,
    PlanRun,
    QueryFigures,
    Scaling,
    alternating,
    bench_seconds_by,
    fixed_dwell_bench_s,
    gate_seconds,
    gated_points,
    item_plan,
    item_point,
    meters_per_hour,
    modbus_read_reply,
    modbus_read_request,
    point_families,
    run_phases,
    runs_from_to,
)

TABLE = {"dwell": {"settle_s": 10.0},
         "point": [{"id": "KH"}, {"id": "CREEP"}, {"id": "FL-PF1", "tolerance": {"0.2": 0.2}},
                   {"id": "EL-PF1", "tolerance": {"0.2": 0.3}}]}


def test_meters_per_hour_is_positions_over_bench_hours() -> None:
    assert meters_per_hour(8, 14_400.0) == pytest.approx(2.0)
    assert meters_per_hour(1, 48.0) == pytest.approx(75.0)


def test_only_rows_with_a_tolerance_are_gated_and_element_points_follow_their_row() -> None:
    assert gated_points(TABLE, ["KH", "CREEP", "FL-PF1", "EL-PF1-E1", "EL-PF1-E3", "DM-TA"]) == [
        "FL-PF1", "EL-PF1-E1", "EL-PF1-E3"]


def test_fixed_dwell_replaces_each_gated_points_time_with_settle_plus_five_minutes() -> None:
    # 1000 s measured, of which two gated points took 50 s and 70 s: the rest (880 s) is kept.
    assert fixed_dwell_bench_s(1000.0, {"FL-PF1": 50.0, "LL-PF1": 70.0}, settle_s=10.0) == pytest.approx(
        880.0 + 2 * 310.0)


def test_bench_seconds_charge_each_item_the_clock_advance_since_the_previous_one() -> None:
    items = [{"nodeid": "test_plans/audit/test_inspection.py::test_physical_inspection[pos1-SIM1]"},  # before open
             {"nodeid": "test_plans/audit/test_payload_accuracy.py::test_payload[pos1-SIM1]", "bench_end": 130.0},
             {"nodeid": "test_plans/accuracy/test_load_performance.py::test_load[FL-PF1-pos1-SIM1]",
              "bench_end": 180.0},
             {"nodeid": "test_plans/accuracy/test_load_performance.py::test_load[FL-PF1-pos2-SIM2]",
              "bench_end": 180.0}]
    by_point = bench_seconds_by(items, 100.0, lambda nodeid: item_point(nodeid) or item_plan(nodeid))
    assert by_point == {"audit": pytest.approx(30.0), "FL-PF1": pytest.approx(50.0)}


def test_families_and_gate_times_come_from_the_record() -> None:
    record = {"meters": [
        {"results": [{"point": "FL-PF1", "family": "load_performance", "evidence": {"gate": {"gate_time_s": 30.5}}},
                     {"point": "V90", "family": "voltage", "evidence": {"measured": {"gate": {"gate_time_s": 31.0}}}},
                     {"point": "KH", "family": "nameplate", "evidence": {}}]},
        {"results": [{"point": "FL-PF1", "family": "load_performance", "evidence": {"gate": {"gate_time_s": 32.0}}}]},
    ]}
    assert point_families(record) == {"FL-PF1": "load_performance", "V90": "voltage", "KH": "nameplate"}
    assert gate_seconds(record) == {"FL-PF1": 32.0, "V90": 31.0}  # the slowest position ends the point


def test_end_of_run_is_from_the_last_items_end_to_the_process_exit() -> None:
    timing = {"items": [{"wall_start": 102.0, "wall_end": 103.0}, {"wall_start": 103.0, "wall_end": 110.0}],
              "finish_start": 110.5, "unconfigured": 113.0}
    assert run_phases(100.0, 114.0, timing) == {"total": 14.0, "start": 2.0, "measuring": 8.0,
                                                "end_of_run": 4.0, "publish": 2.5}


def _runs(*phases: tuple[float, float, float]) -> list[PlanRun]:
    return [PlanRun(total, 0.0, {"total": total, "measuring": measuring, "end_of_run": end}, {}, "", 0.0, {})
            for total, measuring, end in phases]


def test_wall_ratios_pair_each_repetition_with_the_baseline_run_beside_it() -> None:
    # The machine runs at half speed through the second repetition: both sizes take twice as long
    # there. Paired, the ratios are 3, 3 and 2.75; the ratio of the medians (3.3 s / 1.2 s) would be
    # 2.75, the two medians coming from different repetitions.
    one = Scaling(1, _runs((1.0, 0.5, 0.2), (2.0, 1.0, 0.4), (1.2, 0.6, 0.3)))
    forty = Scaling(40, _runs((3.0, 2.0, 0.5), (6.0, 4.0, 1.0), (3.3, 2.1, 0.6)))
    assert forty.over(one) == pytest.approx(3.0)
    assert forty.spread(one) == pytest.approx((2.75, 3.0))  # the repetitions' own ratios, not min over min
    assert runs_from_to(forty, one, 2.9) == "   (runs 2.75x to 3.00x; 2 of 3 over the target)"
    assert forty.share("end_of_run", "measuring") == pytest.approx(0.25)  # 0.25, 0.25, 0.2857: the median
    with pytest.raises(ValueError):
        Scaling(80, _runs((9.0, 6.0, 1.0))).over(one)  # repetitions that do not pair up are refused


def _layer(*connections: list[float]) -> Layer:
    """A layer whose rounds' connections took these times per query (µs), as ``timed`` keeps them."""
    return Layer(wall=[t * 1e-6 for c in connections for t in c],
                 connections=[statistics.median(c) * 1e-6 for c in connections])


def test_layer_ratios_pair_each_connection_with_the_one_of_its_round() -> None:
    # Round 2 ran on loopback's slow mode, and the driver's first connection had a slow tail: each
    # round's connection medians pair up as 1.1, 1.1 and 1.0 (median 1.1). The medians of all the
    # samples (220 µs against 100 µs) would say 2.2.
    driver = _layer([110, 110, 300], [220, 220, 220], [99, 99, 220])
    library = _layer([100, 100, 100], [200, 200, 200], [99, 99, 99])
    assert driver.over(library) == pytest.approx(1.1)
    assert driver.median_us() / library.median_us() == pytest.approx(2.2)  # what the pooled figure said
    with pytest.raises(ValueError):
        _layer([1.0]).over(library)  # rounds that do not pair up are refused


def test_driver_and_library_take_turns_on_one_connection_and_their_medians_compare(monkeypatch) -> None:
    # A fake clock each query moves on: the driver takes 110 µs, the library 100 µs, except that the
    # connection turns slow (x3) halfway through; both sides see the slow half, so the ratio of the
    # medians stays the driver's own 1.1.
    now, calls = [0.0], []
    monkeypatch.setattr(benchmark_run.time, "perf_counter", lambda: now[0])

    def query(name: str, us: float):
        def action() -> None:
            calls.append(name)
            now[0] += us * 1e-6 * (3 if len(calls) > 10 else 1)
        return action

    assert alternating(query("driver", 110), query("library", 100), 10) == pytest.approx(1.1)
    assert calls[:4] == ["library", "driver", "driver", "library"]  # turns, and turns at going first
    assert calls.count("driver") == calls.count("library") == 10
    assert QueryFigures({}, [1.02, 0.99, 1.2]).driver_over_library() == pytest.approx(1.02)


def test_the_hand_built_modbus_frame_is_function_3_and_its_reply_decodes() -> None:
    assert modbus_read_request(7, 1, 0, 4).hex() == "000700000006" + "01" + "03" + "0000" + "0004"
    reply = bytes.fromhex("0007000000 0b 01 03 08 0001 0002 0003 0004".replace(" ", ""))
    assert modbus_read_reply(reply, 4) == [1, 2, 3, 4]
    with pytest.raises(ValueError):
        modbus_read_reply(bytes.fromhex("000700000003018302"), 4)  # an exception reply
