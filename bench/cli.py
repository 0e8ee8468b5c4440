"""The ``bench`` command: run the simulated bench standalone, or check a profile."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

import tomli_w

from bench.config import ConfigError
from bench.profile import load_profile


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description="Meter certification bench")
    commands = parser.add_subparsers(dest="command", required=True)
    sim = commands.add_parser("sim", help="serve the simulated bench on loopback until interrupted")
    sim.add_argument("--scenario", default="default", help="board name (bench/sim/boards) or file")
    sim.add_argument("--scale", type=float, default=None,
                     help="simulated seconds per wall second (default: stepped by the bench's clock)")
    sim.add_argument("--profile", type=Path, default=Path("reports/sim-profile.toml"),
                     help="where to write the bench profile for these addresses")
    check = commands.add_parser("check", help="validate a bench profile")
    check.add_argument("profile", type=Path)
    args = parser.parse_args(argv)
    try:
        return run_sim(args) if args.command == "sim" else check_profile(args.profile)
    except ConfigError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2


def check_profile(path: Path) -> int:
    profile = load_profile(path)
    mt = profile.meter_type
    print(f"{path}: OK: bench {profile.bench_id}, {len(profile.positions)} positions of {mt.model} "
          f"(form {mt.form}, class {mt.accuracy_class:g}), sha256 {profile.digest[:16]}")
    return 0


def run_sim(args: argparse.Namespace) -> int:
    from bench.sim import SimulatedBench

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with SimulatedBench(args.scenario, scale=args.scale) as sim:
        data = sim.profile_data()
        args.profile.parent.mkdir(parents=True, exist_ok=True)
        args.profile.write_text(tomli_w.dumps(data))
        clock = "stepped (advances on SIM:ADV)" if args.scale is None else f"scaled x{args.scale:g}"
        print(f"simulated bench '{sim.board.name}': {len(sim.world.meters)} positions, clock {clock}")
        print(f"  control    {data['clock']['address']}  (SIM:TIME?, SIM:ADV <s>, SIM:TRUT:ERR? <pos>)")
        for role in ("source", "load", "reference"):
            print(f"  {role:<10} {data[role]['address']}  (SCPI, LF-terminated)")
        print(f"  counter    {data['counter']['address']}  (serial 115200 8N1, instruments/PULSE_COUNTER.md)")
        for number, pos in enumerate(data["positions"], start=1):
            print(f"  position {number} {pos['serial']}  Modbus TCP {pos['address']} unit {data['meters']['device_id']}")
        print(f"profile: {args.profile}  (pytest test_plans/ --bench {args.profile})", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
