"""Commissioning audit, step 1: recorded physical inspection.

The technician's terminal torque (50 in-lb on a residential socket) and jaw tension, from the
file given with --inspection or entered at the terminal. A missing entry fails; it never passes
by default. Limits: bench/standards/audit.toml.
"""


def test_physical_inspection(position, audit):
    audit("inspection", position)
