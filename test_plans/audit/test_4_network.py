"""Commissioning audit, step 4: network.

Radio diagnostics within the window (RSSI -120..-30 dBm, SNR above its floor), and a mesh ping of
10 probes of 64 bytes with at most 2 % packet loss. Limits: bench/standards/audit.toml.
"""


def test_network(position, audit):
    audit("network", position)
