"""Reactive and received energy end to end, and Kh against Kt: the quadrants' angles, the meter's
physics per quantity, the table rows, and points measured on the simulated bench against its
ground truth."""
from __future__ import annotations

import math
from contextlib import closing
from pathlib import Path

import pytest

from bench.datafiles import ConfigError
from bench.metrology.quantities import QUANTITIES
from bench.metrology.stimulus import Stimulus, pf_label
from bench.plans.limits import load_table
from bench.procedures.gating import AccuracyPoint, measure_point
from bench.procedures.nameplate import NameplatePoint, check_nameplate
from bench.procedures.results import PositionResult
from bench.sim import SimulatedBench, board_path
from bench.sim.meter_model import Conditions, ErrorCurve, MeterModel
from bench.station.bench import Bench
from instruments.sim_control import SimControlClient
from tests.helpers import edited_toml


@pytest.mark.parametrize(("quantity", "pf", "leading", "angle"), [
    ("Wh", 1.0, False, 0.0), ("Wh", 0.5, False, 60.0), ("Wh", 0.8, True, -36.87),
    ("Wh-received", 1.0, False, 180.0), ("Wh-received", 0.5, False, -120.0), ("Wh-received", 0.5, True, 120.0),
    ("varh", 0.0, False, 90.0), ("varh-received", 0.0, False, -90.0), ("varh", 0.5, False, 60.0),
])
def test_each_quantity_puts_the_current_in_its_quadrant(quantity, pf, leading, angle):
    q = QUANTITIES[quantity]
    found = q.angle_deg(pf, leading)
    assert found == pytest.approx(angle, abs=0.01)
    p, r = math.cos(math.radians(found)), math.sin(math.radians(found))
    assert q.of(p, r) > 0  # energy flows this quantity's way at its own angle ...
    for other in QUANTITIES.values():  # ... and no other quantity of its kind sees any
        if other.reactive == q.reactive and other is not q:
            assert other.of(p, r) == 0.0


def test_a_reactive_stimulus_is_all_var_and_says_so():
    stimulus = Stimulus(120.0, 30.0, 90.0, 60.0, 3)
    assert stimulus.power_w == pytest.approx(0.0, abs=1e-9)
    assert stimulus.reactive_power_var == pytest.approx(3 * 120.0 * 30.0)
    assert stimulus.describe().endswith("= 0.0 W, 10800.0 var")
    assert pf_label(90.0) == "sin φ 1 lag" and pf_label(-90.0) == "sin φ 1 lead"
    received = Stimulus(240.0, 30.0, 180.0, 60.0, 1)
    assert received.power_w == pytest.approx(-7200.0)
    assert pf_label(180.0) == "PF 1.0 received" and "PF 1.000 received" in received.describe()


def _meter(**kwargs) -> MeterModel:
    defaults = dict(position=1, serial="S1", mac="00", firmware="AMI-Release-v4.2", kh_wh=7.2, test_amperes=30.0,
                    nominal_voltage=240.0, nominal_frequency=60.0, curve=ErrorCurve(), starting_current_a=0.01,
                    pulse_jitter_s=0.0, test_outputs={"Wh": 1.0, "varh": 1.0})
    return MeterModel(**{**defaults, **kwargs})


def _conditions(lag_deg: float, current_a: float = 30.0) -> Conditions:
    return Conditions.from_phases([240.0], [0.0], [current_a], [lag_deg], 60.0)


def test_a_phase_displacement_spares_varh_at_sin_phi_one_and_shows_at_sin_phi_one_half():
    # A 1 mrad displacement moves active energy at PF 0.5 by 100 x tan(60°) x 1e-3 = 0.173 %, and
    # reactive energy at sin φ = 1 only by the second-order 100 x (cos δ - 1) = -5e-5 %; at
    # sin φ = 0.5 (φ = 30°) it moves varh by -100 x cot(30°) x 1e-3 = -0.173 %.
    meter = _meter(curve=ErrorCurve(phase_error_mrad=1.0))
    varh = QUANTITIES["varh"]
    assert meter.true_error_pct(_conditions(60.0)) == pytest.approx(100 * math.tan(math.radians(60)) * 1e-3, rel=1e-2)
    assert meter.true_error_pct(_conditions(90.0), varh) == pytest.approx(-5e-5, abs=1e-6)
    assert meter.true_error_pct(_conditions(30.0), varh) == pytest.approx(-100 / math.tan(math.radians(30)) * 1e-3,
                                                                          rel=1e-2)


def test_the_var_path_has_its_own_gain():
    meter = _meter(curve=ErrorCurve(offset_pct=0.05, reactive_offset_pct=0.4))
    assert meter.true_error_pct(_conditions(0.0)) == pytest.approx(0.05)
    assert meter.true_error_pct(_conditions(90.0), QUANTITIES["varh"]) == pytest.approx(0.45)
    assert meter.true_error_pct(_conditions(-90.0), QUANTITIES["varh-received"]) == pytest.approx(0.45)


def test_a_net_meter_registers_received_energy_and_pulses_for_it_a_detented_one_neither():
    received = QUANTITIES["Wh-received"]
    net, detented = _meter(bidirectional=True), _meter()
    back = _conditions(180.0)
    assert net.registered(back, received) == pytest.approx(7200.0)
    assert detented.registered(back, received) == 0.0
    for meter in (net, detented):
        meter.advance(0.0, 3600.0, back)
    assert (net.received_wh, net.energy_wh, net.output_pulses["Wh"]) == (pytest.approx(7200.0), 0.0, 7200)
    assert (detented.received_wh, detented.energy_wh, detented.output_pulses["Wh"]) == (0.0, 0.0, 0)


def test_the_varh_output_counts_with_its_own_kt():
    meter = _meter(test_outputs={"Wh": 1.0, "varh": 0.5})
    meter.advance(0.0, 3600.0, _conditions(90.0))  # 7200 var for an hour
    assert meter.output_pulses == {"Wh": 0, "varh": 14400}
    assert meter.varh == pytest.approx(7200.0) and meter.received_varh == 0.0


def _table_with(tmp_path: Path, row: str) -> Path:
    source = Path(load_table().source)
    target = tmp_path / "table.toml"
    target.write_text(source.read_text() + "\n[[point]]\n" + row)
    return target


@pytest.mark.parametrize(("row", "message"), [
    ('id = "Q1"\nfamily = "reactive"\nquantity = "varh"\ncurrent = 1.0\nof = "TA"\npf = 0.0\n'
     'tolerance = { "0.1" = 0.5, "0.2" = 0.5, "0.5" = 1.0 }\nprovenance = "x"\n',
     r"point\[\d+\] Q1\.pf: a reactive-energy row \(varh\) states sin_phi"),
    ('id = "Q2"\nfamily = "reactive"\nquantity = "varh"\ncurrent = 1.0\nof = "TA"\nsin_phi = 1.5\n'
     'tolerance = { "0.1" = 0.5, "0.2" = 0.5, "0.5" = 1.0 }\nprovenance = "x"\n', r"Q2\.sin_phi"),
    ('id = "Q3"\nfamily = "received"\nquantity = "Wh-received"\ncurrent = 1.0\nof = "TA"\nsin_phi = 1.0\n'
     'tolerance = { "0.1" = 0.5, "0.2" = 0.5, "0.5" = 1.0 }\nprovenance = "x"\n',
     r"Q3\.sin_phi: an active-energy row \(Wh-received\) states pf"),
    ('id = "Q4"\nfamily = "reactive"\nquantity = "VAh"\ncurrent = 1.0\nof = "TA"\nsin_phi = 1.0\n'
     'tolerance = { "0.1" = 0.5, "0.2" = 0.5, "0.5" = 1.0 }\nprovenance = "x"\n', r"Q4\.quantity"),
    ('id = "Q5"\nfamily = "creep"\nquantity = "varh"\nvoltage_pct = 115.0\nmax_pulses = 1\n'
     'period_constant = { "0.1" = 900e6, "0.2" = 900e6, "0.5" = 600e6 }\nprovenance = "x"\n',
     r"Q5\.quantity: creep rows count the Wh test output's pulses"),
])
def test_a_bad_quantity_row_is_one_line_naming_the_row(tmp_path, row, message):
    with pytest.raises(ConfigError, match=message):
        load_table(_table_with(tmp_path, row))


def test_points_for_a_quantity_exist_only_on_meters_that_have_it():
    table = load_table()
    ids = {}
    for form, board in (("16S", "default"), ("12S", "network_12s")):
        with SimulatedBench(board) as sim:
            ids[form] = {p.id for p in table.points(sim.profile().meter_type)}
    reactive = {"VARH-LL", "VARH-FL", "VARH-R-FL"}
    assert reactive <= ids["12S"] and not reactive & ids["16S"]
    assert not {"RX-LL-PF1", "RX-FL-PF1"} & ids["12S"]  # the 12S type registers no received energy


def _measured(board: Path | str, point_id: str, table_file: Path | None = None
              ) -> tuple[dict[int, PositionResult], dict[int, float]]:
    """One point on a whole simulated board, and each position's true error of its quantity
    (read from the simulator while the point's stimulus is still applied)."""
    with SimulatedBench(board) as sim, Bench(sim.profile()) as bench:
        table = load_table(table_file) if table_file else load_table()
        point = next(p for p in table.points(bench.profile.meter_type) if p.id == point_id)
        assert isinstance(point, AccuracyPoint)
        results = measure_point(bench, point)
        with closing(SimControlClient(sim.control.resource).open()) as control:
            truth = {n: control.true_error_pct(n, point.quantity.name) for n in results}
    assert all(isinstance(r, PositionResult) for r in results.values())
    return results, truth  # type: ignore[return-value]


@pytest.mark.parametrize("point_id", ["VARH-FL", "VARH-R-FL"])
def test_a_varh_point_measures_each_meters_true_reactive_error(point_id):
    results, truth = _measured("network_12s", point_id)
    for n, result in results.items():
        assert result.quantity == QUANTITIES[point_id == "VARH-FL" and "varh" or "varh-received"].name
        assert result.stimulus.phase_deg == (90.0 if point_id == "VARH-FL" else -90.0)
        assert result.pulses is not None and result.register_check is not None
        # Gated against the reference's var pulses, with the budget at sin φ = 1 from the reactive certificate.
        assert abs(result.pulses.error_pct - truth[n]) <= result.pulses.expanded_pct
        assert any("sin φ 1" in c.basis for c in result.pulses.budget.components)
        assert abs(result.register_check.error_pct - truth[n]) <= result.register_check.expanded_pct


def test_a_meter_whose_var_path_is_off_fails_varh_and_still_passes_active_energy(tmp_path):
    def misadjust(data: dict) -> None:
        data["position"][2]["reactive_offset_pct"] = 0.8  # beyond the ±0.5 % of class 0.5 S
    board = edited_toml(board_path("network_12s"), misadjust, tmp_path / "board.toml")
    results, truth = _measured(board, "VARH-FL")
    assert truth[3] == pytest.approx(0.8, abs=0.05)
    assert results[3].verdict.value == "FAIL" and all(r.verdict.value == "PASS" for n, r in results.items() if n != 3)
    active, _ = _measured(board, "FL-PF1")
    assert active[3].verdict.value == "PASS"


@pytest.mark.parametrize("point_id", ["RX-FL-PF1", "RX-FL-PF05"])
def test_a_received_energy_point_measures_each_meters_true_error_of_energy_flowing_back(point_id):
    results, truth = _measured("residential_2s", point_id)
    for n, result in results.items():
        assert result.stimulus.power_w < 0 and result.quantity == "Wh-received"
        assert result.register is not None and result.register.meter_wh > 0  # the received register advanced
        assert abs(result.pulses.error_pct - truth[n]) <= result.pulses.expanded_pct
        assert abs(result.register_check.error_pct - truth[n]) <= result.register_check.expanded_pct


def test_a_meter_programmed_with_another_kh_fails_the_nameplate_check(sim, sim_bench):
    sim.world.meters[3].kh_wh = 1.8  # nameplate (and the profile) say 1.0
    found = check_nameplate(sim_bench, NameplatePoint("KH", "nameplate Kh", "nameplate"))
    assert [n for n, r in found.items() if not r.passed] == [4]
    assert found[4].observed == "the meter reports Kh 1.8 Wh" and "meter_type.kh_wh" in found[4].expected


def test_gating_counts_with_kt_not_the_nameplate_kh():
    # The residential 2S type: nameplate Kh 7.2, test output Kt 1.0. Gating with Kh would read +620 %.
    results, truth = _measured("residential_2s", "FL-PF1")
    for n, result in results.items():
        assert result.constants is not None and result.constants.meter_wh_per_pulse == 1.0
        assert abs(result.pulses.error_pct - truth[n]) <= result.pulses.expanded_pct
