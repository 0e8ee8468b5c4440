"""``bench counterd``: serve the pulse counter protocol from a Linux board's GPIO lines."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from bench.datafiles import ConfigError

LOOPBACK = "127.0.0.1"


def tcp_address(text: str) -> tuple[str, int]:
    """``[HOST:]PORT``; the host defaults to loopback, port 0 takes a free one (printed)."""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"--tcp: {text!r} is not [HOST:]PORT with a port in 0..65535")
    return host or LOOPBACK, int(port)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "counterd", help="serve the pulse counter protocol from GPIO lines (a Linux board, libgpiod v2)",
        description="Count MUT and reference edges on GPIO lines (libgpiod v2: pip install gpiod) and serve "
                    "the counter protocol of instruments/PULSE_COUNTER.md until interrupted.")
    parser.add_argument("config", type=Path, help="the board's TOML file (bench/counterd/example.toml shows one)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--pty", action="store_true", help="serve on a pseudo-terminal; its path is printed")
    where.add_argument("--tcp", type=tcp_address, metavar="[HOST:]PORT",
                       help=f"serve on TCP (host default {LOOPBACK}; the bench network's address to reach it "
                            "from the bench); the driver opens socket://HOST:PORT")
    return parser


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or Ctrl-C (0), or until the GPIO side fails (1); a bad file or a chip
    that cannot be opened is one line and status 2."""
    from bench.counterd.config import load_config
    from bench.counterd.daemon import Daemon
    from bench.counterd.gpio import GpioError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s bench counterd: %(levelname)s %(message)s")
    try:
        daemon = Daemon(load_config(args.config)).start(tcp=args.tcp)
    except (ConfigError, GpioError, OSError) as error:
        print(f"bench counterd: {error}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: daemon.done.set())
    config = daemon.config
    print(f"counter board {config.serial}: {len(config.channels)} channels on {config.chip}, "
          f"serving {daemon.address}", flush=True)
    try:
        daemon.done.wait()
    except KeyboardInterrupt:
        pass
    daemon.stop()
    if daemon.failure:
        print(f"bench counterd: {daemon.failure}", file=sys.stderr)
        return 1
    return 0
