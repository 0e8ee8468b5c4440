"""A plan item's arguments handed to it directly: its ``point`` and ``position`` parameters and the
runner of the plan fixture it asks for, without pytest's fixture machinery.

Every item of a board pays that machinery for its three arguments (a definition and a sub-request
per argument, pytest 9 building one anew for ``request`` each time): about 0.4 ms an item on a slow
machine, 52 items a position, the largest single part of what a position costs the run after the
measurement itself. An item is handed its arguments only when it asks for nothing else, and the
plan fixture it asks for is the plugin's own (a conftest that overrides ``certify``, an autouse
fixture, ``usefixtures``: pytest sets the item up as usual), and not under ``--setup-show``,
``--setup-only`` or ``--setup-plan``, which are there to show the fixtures being set up. pytest's
own setup then finds every argument there and sets up nothing more (``TopRequest._fillfixtures``
fills only the names missing from ``funcargs``).
"""
from __future__ import annotations

from collections.abc import Collection

import pytest
from _pytest.fixtures import FuncFixtureInfo

from bench.pytest_plugin import fixtures
from bench.pytest_plugin.fixtures import RUNNERS

RUNNER_KEY = pytest.StashKey[str]()  # the plan fixture an item is handed directly
PARAMETERS = ("point", "position")  # what the plugin's pytest_generate_tests parametrizes (directly)


def mark(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Note, on each item that can be handed its arguments directly, which runner it takes."""
    if config.option.setupshow or config.option.setuponly or config.option.setupplan:
        return
    decided: dict[int, str | None] = {}  # an item's fixtures and parameter names are its function's, shared
    for item in items:
        if not isinstance(item, pytest.Function) or not hasattr(item, "callspec"):
            continue
        info = item._fixtureinfo  # what pytest resolved the item's fixtures to (no public accessor)
        if id(info) not in decided:
            decided[id(info)] = _runner(info, item.callspec.params.keys())
        runner = decided[id(info)]
        if runner is not None:
            item.stash[RUNNER_KEY] = runner


def _runner(info: FuncFixtureInfo, parametrized: Collection[str]) -> str | None:
    """The plugin's plan fixture an item asks for, if that, its parameters (``point`` and
    ``position`` parametrized, not fixtures of a conftest) and ``request`` are all it asks for;
    else None (pytest sets it up)."""
    names = set(info.names_closure)
    runners = names & RUNNERS.keys()
    if len(runners) != 1 or not names - runners <= {*PARAMETERS, "request"}:
        return None
    if not names & set(PARAMETERS) <= set(parametrized):
        return None
    runner = runners.pop()
    definitions = info.name2fixturedefs.get(runner, ())
    chosen = definitions[-1].func if definitions else None  # the nearest definition: a conftest's overrides ours
    return runner if getattr(chosen, "__module__", None) == fixtures.__name__ else None


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before pytest's own setup (called in the reverse of registration: builtin plugins first
    registered, last called) and after its skip marks' (``tryfirst``): a skipped item opens nothing."""
    runner = item.stash.get(RUNNER_KEY, None)
    if runner is None or not isinstance(item, pytest.Function):
        return
    item.funcargs.update(item.callspec.params)
    item.funcargs["request"] = item._request  # what pytest gives for ``request``: the item's own request
    item.funcargs[runner] = RUNNERS[runner](item)
