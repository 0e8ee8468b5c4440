"""The layout's floors hold: the bench core (everything but the simulator itself and the entry
points that start it) imports no part of the simulator, so a real bench never loads it."""
import subprocess
import sys

from tests.helpers import REPO

ENTRY_POINTS = {"bench.plugin", "bench.cli", "bench.session_report"}  # they start the simulator on request


def test_the_core_never_imports_the_simulator():
    core = sorted(f"bench.{path.stem}" for path in (REPO / "bench").glob("*.py")
                  if path.stem != "__init__" and f"bench.{path.stem}" not in ENTRY_POINTS)
    core += ["bench.documents"]
    probe = (f"import importlib, sys\nfor name in {core!r}: importlib.import_module(name)\n"
             "print(sorted(m for m in sys.modules if m.startswith('bench.sim')))")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert run.returncode == 0, run.stderr
    assert len(core) > 20 and run.stdout.strip() == "[]", run.stdout
