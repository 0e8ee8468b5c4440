"""Nameplate constant.

Each meter's programmed watt-hour constant Kh, read over its comms, agrees with the Kh its
nameplate states (the profile's meter_type.kh_wh). Meters that do not report their Kh have no
point here. Points: the limits table the run uses (bench/standards/, or the lab's own with --limits).
"""
FAMILY = "nameplate"


def test_nameplate_kh(point, position, certify):
    certify(point, position)
