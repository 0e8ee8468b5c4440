"""ANSI C12.20 polyphase tests (independence of elements, unbalanced load).

With balanced polyphase voltages: current in one element at a time (each element alone, at unity
and 0.5 lagging power factor), and an unbalanced load across the elements. Each meter's error
within the stated tolerance. Single-element meters have no points here.
Points and limits: the limits table the run uses (bench/standards/, or the lab's own with --limits).
"""
FAMILY = "polyphase"


def test_polyphase(point, position, certify):
    certify(point, position)
