"""Reactive energy (IEC 62053-24 limits; ANSI C12.20 and C12.1 state none).

At sin φ = 1, lagging (delivered varh) and leading (received varh), each meter's varh test output
gated against the reference's var pulse output: its registration error within the table's
tolerance. Meters without a varh test output and register have no points here.
Points and limits: the limits table the run uses (bench/standards/, or the lab's own with --limits).
"""
FAMILY = "reactive"


def test_reactive_energy(point, position, certify):
    certify(point, position)
