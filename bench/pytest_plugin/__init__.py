"""The bench's pytest plugin (the ``meter_bench`` pytest11 entry point): bench options, the
``point`` and ``position`` parameters, the fixtures that run a plan's items, the run's scope and
status, and its record and signed documents. The HTML session report is a plugin of its own
(``bench.pytest_plugin.report``).

Without ``--bench`` it starts the built-in simulated bench in this process and uses its profile.
A plan module names its family (``FAMILY = "load_performance"``) and gets one item per test
point of that family and board position; each point is measured once for the whole board.

pytest registers this module: the hooks and fixtures below are the plugin, each from the module
that does that job.
"""
from bench.pytest_plugin.direct import pytest_runtest_setup
from bench.pytest_plugin.fixtures import audit, bench, certify, demand, firmware, pytest_generate_tests
from bench.pytest_plugin.hooks import (
    pytest_collection_finish,
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_deselected,
    pytest_runtest_makereport,
    pytest_sessionfinish,
    pytest_unconfigure,
)
from bench.pytest_plugin.options import pytest_addoption
from bench.pytest_plugin.summary import pytest_terminal_summary

__all__ = [
    "audit", "bench", "certify", "demand", "firmware", "pytest_addoption", "pytest_collection_finish",
    "pytest_collection_modifyitems", "pytest_configure", "pytest_deselected", "pytest_generate_tests",
    "pytest_runtest_makereport", "pytest_runtest_setup", "pytest_sessionfinish", "pytest_terminal_summary",
    "pytest_unconfigure",
]
