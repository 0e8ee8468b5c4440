"""ANSI C12.20 effect of voltage variation.

At TA and unity power factor, voltage at 90 % and 110 % of nominal: the shift of each meter's
error from its error at nominal voltage (full load, PF 1.0) within the class's allowed shift.
Points and limits: the limits table the run uses (bench/standards/, or the lab's own with --limits).
"""
FAMILY = "voltage"


def test_voltage_variation(point, position, certify):
    certify(point, position)
