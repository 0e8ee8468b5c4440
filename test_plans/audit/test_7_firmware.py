"""Commissioning audit, step 7: firmware baseline.

Every meter runs the configured baseline release (AMI-Release-v4.2 unless --firmware-baseline
says otherwise).
"""


def test_firmware_baseline(position, audit):
    audit("firmware", position)
