"""ANSI C12.20 no load (creep).

Voltage at 115 % of nominal, no current, for the period the meter's constant and rating call for
(period >= C / (k m Un Imax) minutes); each meter may emit at most one test-output pulse.
Points and limits: the limits table the run uses (bench/standards/, or the lab's own with --limits).
"""
FAMILY = "creep"


def test_no_load(point, position, certify):
    certify(point, position)
