"""Commissioning audit: recorded physical inspection.

The technician's terminal torque and jaw tension, from the file given with --inspection or
entered at the terminal. A missing entry fails; it never passes by default.
"""
from bench.plans.audit import INSPECTION as STEP


def test_physical_inspection(position, audit):
    audit(STEP, position)
