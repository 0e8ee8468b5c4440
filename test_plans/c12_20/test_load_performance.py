"""ANSI C12.20 load performance.

Light load (10 % TA), full load (TA) and maximum current (Imax), each at power factor 1.0,
0.5 lagging and 0.8 leading, all elements loaded: each meter's registration error, measured by
gating against the reference standard, within its accuracy class's tolerance.
Points and limits: bench/standards/c12_20.toml (or the lab's table given with --limits).
"""
FAMILY = "load_performance"


def test_load_performance(point, position, certify):
    certify(point, position)
