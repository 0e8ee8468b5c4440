"""The simulated world's physics, checked against the formulas it claims to follow."""
import math

import numpy as np
import pytest

from bench.sim.board import load_board
from bench.sim.meter_model import Conditions, ErrorCurve
from bench.sim.simbench import board_path


def energise(world, volts=120.0, amps=1000.0 / 360.0, phase=0.0):
    """The default board: three elements at 120 V; 1 kW in all by default."""
    world.source.voltage_v, world.source.output = volts, True
    world.load.currents_a, world.load.phase_deg, world.load.output = [amps] * 3, phase, True


def test_true_power_is_v_i_cos_phi_of_what_the_instruments_really_output():
    world = load_board(board_path("default")).world
    energise(world, 120.0, 5.0, 60.0)
    v = 120.0 * (1 + world.source.gain_error)
    i = 5.0 * (1 + world.load.gain_error)
    assert world.true_power_w() == pytest.approx(3 * v * i * 0.5, rel=1e-12)


def test_energy_and_pulses_follow_registered_power():
    world = load_board(board_path("default")).world
    energise(world)
    meter = world.meters[0]
    c = world.conditions()
    world.advance(300.0)
    expected_wh = meter.registered_power_w(c) * 300.0 / 3600.0
    assert meter.registered_power_w(c) == pytest.approx(c.active_power_w * (1 + meter.true_error_pct(c) / 100))
    assert meter.energy_wh == pytest.approx(expected_wh, rel=1e-12)
    assert meter.pulses == math.floor(expected_wh / meter.kh_wh)
    assert world.reference.accumulator_wh == pytest.approx(world.reference_power_w() * 300.0 / 3600.0)


def test_stepping_does_not_change_the_outcome():
    """One 300 s step or 3000 steps of 0.1 s: the same edges, the same gate evidence."""
    worlds = [load_board(board_path("default")).world for _ in range(2)]
    for world in worlds:
        energise(world)
        world.gates[0].arm(50)
    worlds[0].advance(300.0)
    for _ in range(3000):
        worlds[1].advance(0.1)
    a, b = worlds[0].gates[0], worlds[1].gates[0]
    assert a.state == b.state == "DONE"
    assert (a.ref_start, a.ref_stop) == (b.ref_start, b.ref_stop)
    assert a.t_stop == pytest.approx(b.t_stop, abs=1e-9)


def test_gate_counts_reference_pulses_between_mut_edges():
    world = load_board(board_path("default")).world
    for meter in world.meters:
        meter.pulse_jitter_s = 0.0
    energise(world)
    world.gates[0].arm(40)
    world.advance(200.0)
    gate, meter = world.gates[0], world.meters[0]
    c = world.conditions()
    # Between two MUT edges the meter registered exactly 40 Kh; the reference saw that energy
    # divided by the meter's gain and multiplied by its own, within one reference pulse.
    e_ref = 40 * meter.kh_wh / (1 + meter.true_error_pct(c) / 100) * (1 + world.reference.error_pct / 100)
    assert gate.ref_stop - gate.ref_start == pytest.approx(e_ref / world.reference.pulse_constant_wh, abs=1)


def test_no_registration_below_starting_current():
    world = load_board(board_path("default")).world
    meter = world.meters[0]
    energise(world, amps=meter.starting_current_a * 0.9)
    world.advance(3600.0)
    assert meter.energy_wh == 0.0 and meter.pulses == 0


def test_phase_error_shows_as_delta_tan_phi():
    curve = ErrorCurve(phase_error_mrad=1.0)
    nominal = dict(dc_pct=0.0, test_amperes=30, nominal_voltage=240, nominal_frequency=60)
    assert curve.element_error_pct(240, 30, 0.0, 60, **nominal) == pytest.approx(100 * (math.cos(-1e-3) - 1))
    assert (curve.element_error_pct(240, 30, 60.0, 60, **nominal)
            == pytest.approx(100 * 1e-3 * math.tan(math.radians(60)), rel=1e-3))


def test_scaled_world_refuses_to_be_stepped():
    world = load_board(board_path("default"), scale=10.0).world
    with pytest.raises(RuntimeError):
        world.advance(1.0)


WYE = (0.0, -120.0, 120.0)


def test_three_phase_phasors_are_symmetrical_and_sum_their_powers():
    c = Conditions.balanced(120.0, 10.0, 30.0, 60.0, WYE)
    assert abs(c.voltages.sum()) == pytest.approx(0.0, abs=1e-9)  # a balanced set sums to zero
    assert np.degrees(np.angle(c.voltages[1] / c.voltages[0])) == pytest.approx(-120.0)
    assert c.active_power_w == pytest.approx(3 * 120 * 10 * math.cos(math.radians(30)))
    assert c.reactive_power_var == pytest.approx(3 * 120 * 10 * math.sin(math.radians(30)))
    assert c.phase_deg == pytest.approx(30.0) and c.power_factor == pytest.approx(math.cos(math.radians(30)))


def test_leading_current_gives_negative_reactive_power():
    c = Conditions.balanced(240.0, 5.0, -36.87, 60.0, (0.0,))
    assert c.reactive_power_var < 0 and c.power_factor == pytest.approx(0.8, abs=1e-4)


def test_harmonic_power_adds_to_the_fundamental_on_every_element():
    from bench.metrology.harmonics import Harmonic
    c = Conditions.balanced(120.0, 10.0, 0.0, 60.0, WYE, voltage_harmonics=(Harmonic(5, 10.0, 0.0),),
                            current_harmonics=(Harmonic(5, 40.0, 0.0), Harmonic(0, 20.0, 0.0)))
    # 5th: 12 V x 4 A in phase on each element; DC current meets no DC voltage and adds nothing
    assert c.active_power_w == pytest.approx(3 * (120 * 10 + 12 * 4))


def test_element_alone_and_unbalanced_currents():
    world = load_board(board_path("default")).world
    energise(world, 120.0, 10.0)
    world.load.currents_a = [10.0, 0.0, 5.0]
    c = world.conditions()
    assert np.abs(c.currents) / (1 + world.load.gain_error) == pytest.approx([10.0, 0.0, 5.0])
    assert c.active_power_w == pytest.approx(120 * 1.0004 * 15 * 0.9997)


def test_a_meter_with_one_element_off_registers_through_each_elements_error():
    world = load_board(board_path("default")).world
    meter = world.meters[0]
    meter.element_offsets_pct = (0.5, 0.0, 0.0)
    energise(world, 120.0, 10.0)
    world.load.currents_a = [10.0, 0.0, 0.0]
    alone = meter.true_error_pct(world.conditions())
    world.load.currents_a = [0.0, 10.0, 0.0]
    assert alone - meter.true_error_pct(world.conditions()) == pytest.approx(0.5, abs=1e-9)


def test_creeping_meter_registers_with_voltage_and_no_current():
    world = load_board(board_path("default")).world
    meter = world.meters[0]
    meter.creep_w = 36.0
    energise(world, 138.0, 0.0)
    world.advance(500.0)
    assert meter.energy_wh == pytest.approx(36.0 * 500 / 3600) and meter.pulses == 5
