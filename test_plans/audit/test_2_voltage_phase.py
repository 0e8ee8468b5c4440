"""Commissioning audit, step 2: voltage and phase.

Every phase within ±5 % of nominal at the reference standard and as the meter reads it; phase
rotation correct at the reference standard and at the meter; voltage THD above 3 % is recorded.
"""


def test_voltage_and_phase(position, audit):
    audit("voltage_phase", position)
