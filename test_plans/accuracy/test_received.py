"""Received energy (energy flowing back from the customer: net metering).

The current turned by 180° from the delivered points, at PF 1 and 0.5: each meter's Wh test output
(which pulses for energy either way) gated against the reference, and its received-energy register
against the reference's register, within the delivered point's tolerance. Meters that do not
register received energy have no points here.
Points and limits: the limits table the run uses (bench/standards/, or the lab's own with --limits).
"""
FAMILY = "received"


def test_received_energy(point, position, certify):
    certify(point, position)
