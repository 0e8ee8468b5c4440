"""The ``bench`` command: the simulated bench standalone, profile checks, and the records
(re-publish a run, a meter's history, verify a certificate)."""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

import tomli_w

from bench.bench import Bench, SafetyError, make_safe_if_energised
from bench.certificate import verify, write_certificates
from bench.config import ConfigError, number_argument
from bench.profile import load_profile
from bench.record import now_iso
from bench.store import RecordsError, append_audit, connect, history, load_run
from instruments.errors import InstrumentError
from instruments.meter_modbus import ModbusMeter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description="Meter certification bench")
    commands = parser.add_subparsers(dest="command", required=True)
    sim = commands.add_parser("sim", help="serve the simulated bench on loopback until interrupted")
    sim.add_argument("--scenario", default="default", help="board name (bench/sim/boards) or file")
    sim.add_argument("--scale", type=number_argument("--scale", above=0.0), default=None,
                     help="simulated seconds per wall second (default: stepped by the bench's clock)")
    sim.add_argument("--profile", type=Path, default=Path("reports/sim-profile.toml"),
                     help="where to write the bench profile for these addresses")
    check = commands.add_parser("check", help="validate a bench profile")
    check.add_argument("profile", type=Path)
    check.add_argument("--connect", action="store_true",
                       help="also open and identify every role (an energised board found is made safe; "
                            "no output is touched otherwise)")
    report = commands.add_parser("report", help="(re)publish a run's certificates and JSON record from the records")
    report.add_argument("run_id", help="run id, or a unique prefix of it")
    report.add_argument("--out", type=Path, default=Path("reports"), help="directory for the files (default: reports)")
    history = commands.add_parser("history", help="list a meter's runs, oldest ('as found') first")
    history.add_argument("serial")
    verify = commands.add_parser("verify", help="check that a certificate is genuine and untouched")
    verify.add_argument("certificate", type=Path)
    tamper = commands.add_parser("tamper-clear", help="clear a meter's tamper alarm after replacing its seal (audited)")
    tamper.add_argument("serial")
    tamper.add_argument("--bench", type=Path, required=True, metavar="PROFILE", help="the bench profile the meter is on")
    tamper.add_argument("--operator", required=True, help="who replaced the seal")
    tamper.add_argument("--seal", required=True, help="the new seal's number")
    tamper.add_argument("--records", help="records database URL (default: the profile's, else reports/records.sqlite)")
    for sub in (report, history, verify):
        sub.add_argument("--records", default=f"sqlite:///{Path('reports/records.sqlite').resolve()}",
                         help="records database URL (default: reports/records.sqlite)")
    args = parser.parse_args(argv)
    commands_by_name = {"sim": run_sim, "check": check_profile, "report": publish_report,
                        "history": show_history, "verify": verify_certificate, "tamper-clear": clear_tamper}
    try:
        return commands_by_name[args.command](args)
    except (ConfigError, RecordsError, InstrumentError, SafetyError) as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2


def check_profile(args: argparse.Namespace) -> int:
    """Validate a profile and summarise it; with --connect, open and identify every role."""
    profile = load_profile(args.profile)
    mt = profile.meter_type
    print(f"{args.profile}: OK: bench {profile.bench_id}, {len(profile.positions)} positions of {mt.model} "
          f"(form {mt.form}, class {mt.accuracy_class:g}), sha256 {profile.digest[:16]}")
    if args.connect:
        started = time.monotonic()
        bench = Bench(profile).open()
        try:
            for instrument in bench.instruments():
                print(f"  {instrument.name:<12} {instrument.address}  {getattr(instrument, 'idn', '') or 'connected'}")
            for number, identity in bench.identities.items():
                print(f"  position {number}: meter {identity.serial}, MAC {identity.mac}, firmware {identity.firmware}")
        finally:
            bench.release()
        print(f"{args.profile}: every role answered in {time.monotonic() - started:.2f} s")
    return 0


def _records(url: str):
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        raise RecordsError(f"no records database at {url.removeprefix('sqlite:///')} (run the plans first, or give --records)")
    return connect(url)


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A plain text table for the terminal."""
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def publish_report(args: argparse.Namespace) -> int:
    record = load_run(_records(args.records), args.run_id)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"run-{record['run_id']}.json").write_text(json.dumps(record, indent=1, default=str))
    written = write_certificates(record, args.out / "certificates") if record["status"] == "complete" else []
    print(f"run {record['run_id']} ({record['status']}), {record['started_at']}, bench {record['bench']['id']}, "
          f"{record['plan']['name']} {record['plan']['version']}, rule {record['decision_rule']['rule']}")
    print(table(["pos", "serial", "firmware", "verdict", "certified", "certificate"],
                [[m["position"], m["serial"], m["firmware"], m["verdict"], "yes" if m["certified"] else "no",
                  next((str(p) for p in written if p.name.startswith(m["serial"] + "-")), "-")] for m in record["meters"]]))
    if record["status"] != "complete":
        held = sum(len(m["results"]) for m in record["meters"])
        print(f"the run is {record['status']}: it holds {held} result(s) of {len(record['plan']['points'])} "
              f"plan point(s) x {len(record['meters'])} position(s); no certificates")
    return 0


def show_history(args: argparse.Namespace) -> int:
    rows = history(_records(args.records), args.serial)
    if not rows:
        print(f"no runs for meter {args.serial}")
        return 1
    labels = ["as found"] + [""] * (len(rows) - 2) + ["as left"] if len(rows) > 1 else ["only run"]
    print(table(["", "run", "started", "status", "bench", "pos", "firmware", "verdict", "certified"],
                [[label, r["run_id"][:8], r["started_at"], r["status"], r["bench_id"], r["position"], r["firmware"],
                  r["verdict"], "yes" if r["certified"] else "no"] for label, r in zip(labels, rows)]))
    return 0


def verify_certificate(args: argparse.Namespace) -> int:
    if not args.certificate.is_file():
        print(f"bench: {args.certificate}: " + ("a directory, not a certificate" if args.certificate.is_dir()
                                               else "no such file"), file=sys.stderr)
        return 2
    url = args.records
    engine = connect(url) if not url.startswith("sqlite:///") or Path(url.removeprefix("sqlite:///")).exists() else None
    genuine, message = verify(args.certificate, engine)
    print(message if engine else f"{message} (no records database to compare with)")
    return 0 if genuine else 1


def clear_tamper(args: argparse.Namespace) -> int:
    """Clear the alarm on the meter, confirm it, then write the audit trail (once per seal)."""
    profile = load_profile(args.bench)
    make_safe_if_energised(profile)
    position = next((p for p in profile.positions if p.serial == args.serial), None)
    if position is None:
        raise ConfigError(f"{args.bench}: positions: no meter {args.serial} on this bench")
    meter = ModbusMeter(position.address, profile.meter_type.registers, name=f"position {position.number}",
                        device_id=profile.meters_device_id).open()
    try:
        meter.write("tamper_clear", 1)
        still_set = meter.read("tamper")
    finally:
        meter.close()
    if still_set:
        print(f"bench: meter {args.serial} still reports its tamper alarm; nothing recorded", file=sys.stderr)
        return 1
    url = args.records or profile.records_url or f"sqlite:///{Path('reports/records.sqlite').resolve()}"
    added = append_audit(connect(url), args.serial, "tamper-clear", args.operator, args.seal,
                         f"tamper alarm cleared at position {position.number} of {profile.bench_id}; new seal {args.seal}",
                         now_iso())
    print(f"meter {args.serial}: tamper alarm cleared, seal {args.seal} by {args.operator} "
          + ("recorded in the audit trail" if added else "was already in the audit trail"))
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
