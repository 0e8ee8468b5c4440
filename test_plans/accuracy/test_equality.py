"""Equality of current circuits (ANSI C12.1 test 7).

An element with more than one current circuit (a Form 2S meter's two current coils) is tested with
current in one circuit at a time, rated voltage on the element, and each circuit's error judged
against the table's limit. Meters whose elements have one circuit each have no points here.
Points and limits: the limits table the run uses (bench/standards/c12_1.toml, or --limits).
"""
FAMILY = "equality"


def test_equality_of_current_circuits(point, position, certify):
    certify(point, position)
