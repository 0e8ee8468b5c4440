"""Firmware regression: the behaviour a meter release must keep.

Run with `--baseline RUN_OR_RELEASE` (for instance `--baseline AMI-Release-v4.2`) to compare
every point of this run, the metrology included, with a stored run: a point that newly fails or
moves towards its limit by more than `--regression-margin` fails here and is listed in the report.
Limits: bench/standards/firmware.toml.
"""


def test_register_map_and_scaling(position, firmware):
    """Voltage, current, power and frequency registers decode to the reference's values at 1.0 kW."""
    firmware("register_map", position)


def test_interval_records(position, firmware):
    """An hour at constant 1.0 kW gives four 15-minute records, each P x 15 min."""
    firmware("intervals", position)


def test_alarms_buffered_into_the_daily_payload(position, firmware):
    """A voltage sag's non-critical alarm is buffered for the daily payload."""
    firmware("alarm_buffer", position)


def test_version_string(position, firmware):
    firmware("version", position)
