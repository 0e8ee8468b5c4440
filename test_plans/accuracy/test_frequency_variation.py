"""ANSI C12.20 effect of frequency variation.

At TA and unity power factor, frequency at 98 % and 102 % of nominal: the shift of each meter's
error from its error at nominal frequency (full load, PF 1.0) within the class's allowed shift.
Points and limits: the limits table the run uses (bench/standards/, or the lab's own with --limits).
"""
FAMILY = "frequency"


def test_frequency_variation(point, position, certify):
    certify(point, position)
