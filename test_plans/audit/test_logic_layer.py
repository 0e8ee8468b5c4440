"""Commissioning audit: logic layer.

The meter's provisioning service (ami-provision) is running, no memory-checksum fault (E0001) is
flagged, and no tamper alarm is set (clearing one needs `bench tamper-clear`, which writes the
new seal number to the audit trail).
"""
from bench.plans.audit import LOGIC as STEP


def test_logic_layer(position, audit):
    audit(STEP, position)
