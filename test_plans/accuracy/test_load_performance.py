"""Load performance (ANSI C12.20 and C12.1 test 3, IEC 62053).

Light load (10 % TA), full load (TA) and maximum current (Imax), each at power factor 1.0,
0.5 lagging and 0.8 leading, all elements loaded: each meter's registration error, measured by
gating against the reference standard, within its accuracy class's tolerance.
Points and limits: the limits table the run uses (bench/standards/, or the lab's own with --limits).
"""
FAMILY = "load_performance"


def test_load_performance(point, position, certify):
    certify(point, position)
