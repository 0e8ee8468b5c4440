"""Commissioning audit, step 3: logic layer.

The meter's provisioning service (ami-provision) is running, no memory-checksum fault (E0001) is
flagged, and no tamper alarm is set (clearing one needs `bench tamper-clear`, which writes the
new seal number to the audit trail).
"""


def test_logic_layer(position, audit):
    audit("logic_layer", position)
