"""Commissioning audit: firmware baseline.

Every meter runs the audit limits' baseline release, unless --firmware-baseline names another.
"""
from bench.plans.audit import FIRMWARE as STEP


def test_firmware_baseline(position, audit):
    audit(STEP, position)
