"""Commissioning audit: network.

Radio diagnostics (RSSI within its window, SNR above its floor) and a mesh ping whose packet loss
stays within its limit.
"""
from bench.plans.audit import NETWORK as STEP


def test_network(position, audit):
    audit(STEP, position)
