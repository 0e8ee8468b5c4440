"""Commissioning audit: payload accuracy.

The payload point's power at the meter's nominal voltage, once for the whole board, held for the
procedure's interval. Each position passes when its registration error is within the point's
limit measured two ways: by gating its test pulses against the reference standard, and by its
Modbus energy register against the reference's energy register. A failure with a negative power
factor at the meter points to a reversed CT or phase wiring.
"""
from bench.plans.audit import PAYLOAD as STEP


def test_payload_accuracy(position, audit):
    audit(STEP, position)
