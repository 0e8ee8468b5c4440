"""`bench panel`: the board panel of a run that is going on or has ended, from its event log
(``run-<id>.events.jsonl`` beside its record). It only watches: a run is stopped where it runs."""
from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from bench.datafiles import ConfigError
from bench.operator.events import LogFollower


def add_parser(commands: argparse._SubParsersAction) -> None:
    panel = commands.add_parser("panel", help="watch a running or past run on the board panel (a local web page)")
    panel.add_argument("run", help="the run's event log (run-<id>.events.jsonl), or its run id or a prefix of it")
    panel.add_argument("--reports-dir", type=Path, default=Path("reports"),
                       help="where to look for a run id's event log (default: reports)")
    panel.add_argument("--bind", default="127.0.0.1", help="where to listen (default 127.0.0.1; any other "
                       "address requires a token, made and printed unless --token gives one)")
    panel.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free port)")
    panel.add_argument("--token", default=None, help="require this token on every request")


def find_log(run: str, reports_dir: Path) -> Path:
    path = Path(run)
    if path.suffix == ".jsonl":
        if not path.is_file():
            raise ConfigError(f"{path}: no such event log")
        return path
    found = sorted(reports_dir.glob(f"run-{run}*.events.jsonl"))
    if len(found) != 1:
        why = "no run" if not found else f"{len(found)} runs"
        raise ConfigError(f"{reports_dir}: {why} with an event log matches '{run}'")
    return found[0]


def run(args: argparse.Namespace) -> int:
    from bench.operator.panel.server import PanelServer

    log = find_log(args.run, args.reports_dir)
    try:
        server = PanelServer(LogFollower(log).after, host=args.bind, port=args.port, token=args.token)
    except OSError as error:
        raise ConfigError(str(error)) from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    print(f"bench: board panel of {log} at {server.url} (Ctrl-C to stop)", flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0

