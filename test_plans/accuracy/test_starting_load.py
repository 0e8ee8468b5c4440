"""ANSI C12.20 starting load.

The starting current (a fraction of TA, unity power factor): each meter must start and keep
registering, giving the stated number of pulses within the stated multiple of their expected time.
Points and limits: the limits table the run uses (bench/standards/, or the lab's own with --limits).
"""
FAMILY = "starting"


def test_starting_load(point, position, certify):
    certify(point, position)
