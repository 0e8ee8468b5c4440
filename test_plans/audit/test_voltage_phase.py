"""Commissioning audit: voltage and phase.

Every phase near nominal at the reference standard and as the meter reads it; phase rotation
correct at both; a voltage THD above the recording threshold is recorded.
"""
from bench.plans.audit import VOLTAGE_PHASE as STEP


def test_voltage_and_phase(position, audit):
    audit(STEP, position)
