"""The `bench` CLI imports only what a command needs: reading the records (`bench history`,
`bench show`) must not pay for matplotlib, which only certificates draw with."""
import subprocess
import sys


def test_the_cli_does_not_import_matplotlib_until_a_command_draws():
    loaded = subprocess.run([sys.executable, "-c", "import sys, bench.cli; print('matplotlib' in sys.modules)"],
                            capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    assert loaded == "False"
