"""The house reference standard's reactive and received-energy commands, pinned to its command set
(instruments/reference_standard.py's docstring, the house reference design), then against the
simulated reference on loopback with the physics it should read."""
from __future__ import annotations

import pytest

from bench.sim import SimulatedBench
from instruments.errors import InstrumentError
from instruments.reference_standard import ScpiReferenceStandard
from tests.drivers.protocol import expected_protocol

NO_ERROR = '0,"No error"'


def test_the_pulse_output_is_switched_to_varh_and_its_constant_read_back():
    with expected_protocol(ScpiReferenceStandard("scripted"), [
        ("PULS:QUAN REAC;:SYST:ERR?", NO_ERROR),
        ("PULS:CONS?", "1e-05"),
        ("PULS:QUAN ACT;:SYST:ERR?", NO_ERROR),
    ]) as reference:
        reference.select_pulses(True)
        assert reference.pulse_constant_wh() == 1e-05
        reference.select_pulses(False)


def test_var_and_varh_are_read_signed():
    with expected_protocol(ScpiReferenceStandard("scripted"), [
        ("MEAS:POW:REAC?", "-10800"),
        ("ENER:REAC?", "-2.5"),
        ("ENER?", "-7.25"),
    ]) as reference:
        assert reference.reactive_power == -10800.0
        assert reference.reactive_energy_varh() == -2.5
        assert reference.energy_wh() == -7.25  # received active energy counts down


def test_a_refused_selection_is_an_error_naming_the_reference():
    with expected_protocol(ScpiReferenceStandard("scripted"), [
        ("PULS:QUAN REAC;:SYST:ERR?", '-224,"Illegal parameter value"'),
        ("SYST:ERR?", NO_ERROR),  # the rest of the queue, drained
    ]) as reference, pytest.raises(InstrumentError, match="Illegal parameter value"):
        reference.select_pulses(True)


def test_the_simulated_reference_counts_varh_pulses_and_registers_signed_energy():
    with SimulatedBench("network_12s") as sim:
        world = sim.world
        reference = ScpiReferenceStandard(sim.scpi["reference"].resource).open()
        try:
            world.source.voltage_v, world.source.output = 120.0, True
            world.load.currents_a, world.load.phase_deg, world.load.output = [2.5] * 3, -90.0, True  # leading: Q < 0
            reference.select_pulses(True)
            reference.set("ENER:RES")
            before = world.reference.total_wh
            world.advance(3600.0)
            true_q = world.conditions().reactive_power_var  # the board's source and load gain errors included
            assert true_q == pytest.approx(-world.elements * 120.0 * 2.5, rel=1e-3)
            q = true_q * (1 + world.reference.error_pct / 100)  # var, as the reference reads it
            assert reference.reactive_power == pytest.approx(q)
            assert reference.reactive_energy_varh() == pytest.approx(q)  # one hour, signed
            assert reference.energy_wh() == pytest.approx(0.0, abs=1e-9)
            assert world.reference.total_wh - before == pytest.approx(-q)  # the pulse output counts |varh|
        finally:
            reference.close()
