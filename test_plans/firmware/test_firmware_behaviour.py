"""Firmware regression: the behaviour a meter release must keep.

Run with `--baseline RUN_OR_RELEASE` (for instance `--baseline AMI-Release-v4.2`) to compare
every point of this run, the metrology included, with a stored run: a point that newly fails or
moves towards its limit by more than `--regression-margin` fails here and is listed in the report.
"""
import pytest

from bench.plans.firmware import ALARM_BUFFER, INTERVALS, REGISTER_MAP, VERSION


def test_register_map_and_scaling(position, firmware):
    """Voltage, current, power and frequency registers decode to the reference's values at 1.0 kW."""
    firmware(REGISTER_MAP, position)


@pytest.mark.whole_run
def test_interval_records(position, firmware):
    """Every interval record the meter closed during the run holds the reference's energy over the
    same window: none missing, none off. Runs last, so the rest of the run supplies the records."""
    firmware(INTERVALS, position)


def test_alarms_buffered_into_the_daily_payload(position, firmware):
    """A voltage sag's non-critical alarm is buffered for the daily payload."""
    firmware(ALARM_BUFFER, position)


def test_version_string(position, firmware):
    firmware(VERSION, position)
