"""Commissioning audit: key rotation and identity.

The meter ID maps uniquely to its MAC in the bench's registry (a duplicate anywhere in the records
fails); a new key, written to a file of mode 600, is rotated into the meter through its comms and
the meter confirms it. The bench refuses keys that group or others can read.
"""
from bench.plans.audit import KEYS_IDENTITY as STEP


def test_key_rotation_and_identity(position, audit):
    audit(STEP, position)
