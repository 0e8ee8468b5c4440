"""The layout's floors hold (docs/ARCHITECTURE.md): each capability folder imports only from the
floors below it, the drivers import nothing of the bench, and the bench core never loads the
simulator, so a real bench never runs a line of it."""
import ast
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

# Lowest first; a module may import from its own floor and any floor below.
FLOORS = (
    ("bench.datafiles", "bench.paths", "bench.servers", "bench.operator.events"),
    ("bench.metrology",),
    ("bench.station",),
    ("bench.procedures",),
    ("bench.records",),
    ("bench.plans", "bench.lots", "bench.operator"),
    ("bench.pytest_plugin", "bench.cli"),
)
ENTRY_POINTS = FLOORS[-1]  # they start the simulator on request
SIMULATOR = "bench.sim"
# What serves protocols rather than runs a bench: the simulator, and the counter daemon, which runs
# on the counter's own board and serves through bench.servers (floor 0), never the simulator.
COUNTER_DAEMON = "bench.counterd"
SERVERS = (SIMULATOR, COUNTER_DAEMON)
PANEL = "bench.operator.panel"  # its web server's loop waits for new events, never the bench


def _module(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _floor(module: str) -> int | None:
    return next((k for k, prefixes in enumerate(FLOORS)
                 if any(module == p or module.startswith(p + ".") for p in prefixes)), None)


def _imports(path: Path) -> set[str]:
    """Every bench or instruments module the file imports, at any depth (function bodies too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] in ("bench", "instruments")}


def _sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (REPO / folder).rglob("*.py") if "__pycache__" not in p.parts)


def test_every_bench_module_lives_on_a_floor():
    homeless = [_module(p) for p in _sources("bench") if _module(p) != "bench"
                and _floor(_module(p)) is None and not _module(p).startswith(SERVERS)]
    assert homeless == []


def test_each_floor_imports_only_from_the_floors_below_it():
    upward = []
    for path in _sources("bench"):
        here = _floor(_module(path))
        if here is None:  # the simulator: it may use any floor but the entry points
            here = len(FLOORS) - 2
        for name in _imports(path):
            there = _floor(name)
            if there is not None and there > here:
                upward.append(f"{_module(path)} imports {name}")
            if name.startswith(SIMULATOR) and _module(path) not in ENTRY_POINTS and not _module(path).startswith(
                    ENTRY_POINTS) and not _module(path).startswith(SERVERS):
                upward.append(f"{_module(path)} imports the simulator ({name})")
    assert upward == []


def test_the_drivers_import_nothing_of_the_bench():
    assert [f"{p.name}: {name}" for p in _sources("instruments")
            for name in _imports(p) if name.startswith("bench")] == []


def test_the_core_never_loads_the_simulator():
    core = [_module(p) for p in _sources("bench") if (_floor(_module(p)) or 0) < len(FLOORS) - 1
            and not _module(p).startswith(SERVERS) and _module(p) != "bench"]
    probe = (f"import importlib, sys\nfor name in {core!r}: importlib.import_module(name)\n"
             "print(sorted(m for m in sys.modules if m.startswith('bench.sim')))")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert run.returncode == 0, run.stderr
    assert len(core) > 20 and run.stdout.strip() == "[]", run.stdout


def test_the_counter_daemon_never_loads_the_simulator():
    """`bench counterd` runs on a Raspberry Pi class board: it must not pull in the simulator
    (its world model, Modbus servers, numpy) to serve the counter protocol."""
    static = [f"{_module(p)} imports {name}" for p in _sources("bench/counterd")
              for name in _imports(p) if name.startswith(SIMULATOR)]
    assert static == []
    probe = ("import importlib, pkgutil, sys, bench.counterd as d\n"
             "for m in pkgutil.iter_modules(d.__path__): importlib.import_module('bench.counterd.' + m.name)\n"
             "print(sorted(m for m in sys.modules if m.startswith('bench.sim')))")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]", run.stdout


def test_only_the_bench_lets_time_pass():
    """Energised waits go through ``Bench.wait``, which watches the interlock and the source's
    protection: nothing else in the bench core calls a clock's (or time's) ``sleep``."""
    sleepers = []
    for path in _sources("bench"):
        module = _module(path)
        if module.startswith((SIMULATOR, PANEL)) or module in ("bench.station.clock", "bench.station.bench"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "sleep":
                sleepers.append(f"{module}:{node.lineno}")
    assert sleepers == []
    bench = ast.parse((REPO / "bench" / "station" / "bench.py").read_text())
    callers = {fn.name for fn in ast.walk(bench) if isinstance(fn, ast.FunctionDef)
               for node in ast.walk(fn) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
               and node.func.attr == "sleep"}
    assert callers == {"_sleep_watched"}  # Bench.wait's own: a slice, then the interlock and protection read
