"""Talking to the person at the bench from inside a test: pytest captures a test's output and
its stdin, so a line or a question has to lift that capture and put it back after."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest


def say(config: pytest.Config, line: str, **markup: bool) -> None:
    """One line on the terminal now, from a test or a fixture (not from a session hook: outside a
    test the capture is already lifted, and lifting it again would turn it back on after)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        reporter.write_line(line, **markup)


@contextlib.contextmanager
def asking(config: pytest.Config) -> Iterator[None]:
    """stdin and stdout are the terminal's inside this block (``-s`` is not needed)."""
    capture = config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        yield
        return
    capture.suspend_global_capture(in_=True)
    try:
        yield
    finally:
        capture.resume_global_capture()
