"""The ``bench`` command: the simulated bench standalone, profile and calibration checks, the lab's
signing key, and the records (re-publish a run, a meter's history, the audit trail, verify signed
documents)."""
from __future__ import annotations

import argparse
import datetime as dt
import signal
import sys
import threading
import time
from pathlib import Path

import tomli_w

from bench.counterd import cli as counterd_cli
from bench.datafiles import ConfigError, number_argument
from bench.lots import cli as lot_cli
from bench.lots.cli import table
from bench.operator.panel import cli as panel_cli
from bench.plans.limits import beyond_ranges, default_table, load_table
from bench.records.documents import check_template, write_documents
from bench.records.record import as_found_as_left, now_iso, reason_text
from bench.records.signing import (
    Signer,
    SigningKeyError,
    check_file,
    default_key_path,
    init_key,
    write_signed_record,
)
from bench.records.store import (
    CanonicalRecord,
    RecordsError,
    append_audit,
    audit_entries,
    connect,
    history,
    load_run,
)
from bench.station.bench import Bench, make_safe_if_energised
from bench.station.profile import load_profile
from bench.station.safety import SafetyError
from instruments.errors import InstrumentError
from instruments.meter_modbus import ModbusMeter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description="Meter certification bench")
    commands = parser.add_subparsers(dest="command", required=True)
    sim = commands.add_parser("sim", help="serve the simulated bench on loopback until interrupted")
    sim.add_argument("--sim-scenario", default="default", metavar="BOARD",
                     help="board name (bench/sim/boards) or file, as pytest's --sim-scenario")
    sim.add_argument("--sim-scale", type=number_argument("--sim-scale", above=0.0), default=None, metavar="FACTOR",
                     help="simulated seconds per wall second, as pytest's --sim-scale "
                          "(default: stepped by the bench's clock)")
    sim.add_argument("--profile-kind", type=Path, default=None, metavar="PROFILE",
                     help="serve the twins of the instruments this profile names (e.g. examples/fluke_6105a.toml), "
                          "with its source's and load's ranges, and write the profile for them; "
                          "default: the house instruments")
    sim.add_argument("--profile", type=Path, default=Path("sim-bench/profile.toml"),
                     help="where to write the bench profile for these addresses (default: sim-bench/profile.toml); "
                          "the simulated technician's inspection goes beside it")
    counterd_cli.add_parser(commands)
    lot_cli.add_parser(commands)
    panel_cli.add_parser(commands)
    commands.add_parser("drivers", help="list the installed instrument drivers: roles, capabilities, manual, twin")
    check = commands.add_parser("check", help="validate a bench profile and every instrument's calibration date")
    check.add_argument("profile", type=Path)
    check.add_argument("--limits", type=Path, metavar="TABLE",
                       help="the limits table the bench must reach, as pytest's --limits (default: C12.20)")
    check.add_argument("--connect", action="store_true",
                       help="also open and identify every role (an energised board found is made safe; "
                            "no output is touched otherwise)")
    report = commands.add_parser("report", help="(re)publish a run's certificates and JSON record from the records")
    report.add_argument("run_id", help="run id, or a unique prefix of it")
    report.add_argument("--bench", type=Path, metavar="PROFILE",
                        help="the profile whose [lab] template and signing key to use (default: built-in template, "
                             "default key)")
    report.add_argument("--reports-dir", type=Path, default=Path("reports"),
                        help="directory for the files, as pytest's --reports-dir (default: reports)")
    history = commands.add_parser("history", help="list a meter's runs, oldest first, with each run's test reason "
                                  "and which are 'as found' and 'as left'")
    history.add_argument("serial")
    verify = commands.add_parser(
        "verify", help="check the signatures of published documents and run records (no database needed)",
        description="Check that each file (a .html certificate or report, or a .json run record) carries\n"
                    "a valid Ed25519 signature by a trusted key and was not changed after signing.\n"
                    "Needs no records database.",
        epilog="trusted keys: the fingerprints given with --trust; else the lab key at --key or the\n"
               "default key path, if it exists; else any key (each valid line then says to compare\n"
               "its fingerprint with the one the lab publishes).\n\n"
               "exit status:\n"
               "  0  every file has a valid signature by a trusted key\n"
               "  1  some file is INVALID (edited, badly signed, unreadable, or signed by another key)\n"
               "  3  none invalid, but some file is unsigned\n"
               "  2  usage or key error", formatter_class=argparse.RawDescriptionHelpFormatter)
    verify.add_argument("files", nargs="+", type=Path, metavar="FILE",
                        help="a signed document (.html) or run record (.json); one output line each")
    trust = verify.add_mutually_exclusive_group()
    trust.add_argument("--trust", action="append", metavar="FINGERPRINT",
                       help="a trusted key fingerprint, SHA256:... as `bench keys show` prints it (repeatable)")
    trust.add_argument("--key", type=Path, metavar="PATH",
                       help="trust this lab key file's public key (default: $METER_BENCH_HOME/keys/lab-ed25519.key, "
                            "if it exists)")
    keys = commands.add_parser("keys", help="create or show the lab's Ed25519 signing key")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    for name, text in (("init", "create the lab's signing key (mode 600; never overwrites a key)"),
                       ("show", "print the key's fingerprint and public key, which the lab publishes")):
        key_command = key_commands.add_parser(name, help=text, description=text)
        key_command.add_argument("--key", type=Path, metavar="PATH",
                                 help="the key file (default: $METER_BENCH_HOME/keys/lab-ed25519.key, "
                                      "METER_BENCH_HOME defaulting to ~/.meter-bench)")
    tamper = commands.add_parser("tamper-clear", help="clear a meter's tamper alarm after replacing its seal (audited)")
    tamper.add_argument("serial")
    tamper.add_argument("--bench", type=Path, required=True, metavar="PROFILE",
                        help="the bench profile the meter is on")
    tamper.add_argument("--operator", required=True, help="who replaced the seal")
    tamper.add_argument("--seal", required=True, help="the new seal's number")
    tamper.add_argument("--records", help="records database URL (default: the profile's, else reports/records.sqlite)")
    trail = commands.add_parser("trail",
                                help="show the append-only audit trail (tamper clearances), of one meter or all")
    trail.add_argument("serial", nargs="?", help="a meter serial (default: every meter)")
    for sub in (report, history, trail):
        sub.add_argument("--records", default=f"sqlite:///{Path('reports/records.sqlite').resolve()}",
                         help="records database URL (default: reports/records.sqlite)")
    args = parser.parse_args(argv)
    commands_by_name = {"sim": run_sim, "counterd": counterd_cli.run, "drivers": list_drivers, "check": check_profile,
                        "report": publish_report, "history": show_history, "verify": verify_files, "keys": manage_keys,
                        "tamper-clear": clear_tamper, "trail": show_trail}
    commands_by_name["lot"] = lot_cli.run
    commands_by_name["panel"] = panel_cli.run
    try:
        return commands_by_name[args.command](args)
    except (ConfigError, RecordsError, InstrumentError, SafetyError, SigningKeyError) as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2


def check_profile(args: argparse.Namespace) -> int:
    """Validate a profile, show every role's calibration (past due blocks a run: exit 1), and with
    --connect open and identify every role."""
    profile = load_profile(args.profile)
    mt = profile.meter_type
    print(f"{args.profile}: profile OK: bench {profile.bench_id}, {len(profile.positions)} positions of {mt.model} "
          f"(form {mt.form}, class {mt.accuracy_class:g}), lab {profile.lab.name}, sha256 {profile.digest[:16]}")
    if profile.lab.template is not None:
        check_template(profile.lab.template)
        print(f"  certificate template {profile.lab.template}: OK")
    today = dt.date.today()
    for role, cal in profile.calibrations().items():
        state = f"PAST DUE since {cal.due}" if cal.past_due(today) else f"due {cal.due} ({(cal.due - today).days} days)"
        print(f"  {role:<12} calibration {cal.certificate} of {cal.date}: {state}")
    past = profile.past_due(today)
    table = load_table(args.limits or default_table(mt.form))
    print(f"  limits       {table.source}: {table.name} (forms {', '.join(table.forms)})")
    beyond = table.not_applicable(mt) or beyond_ranges(profile, table.points(mt))
    for line in beyond:
        print(line)
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
    if beyond:
        print(f"{args.profile}: NOT READY for {table.name}: {len(beyond)} problem(s) listed above; a run of that "
              f"plan is refused")
    if past:
        print(f"{args.profile}: NOT READY: {', '.join(past)} past calibration due date: a run is blocked "
              f"(pytest --allow-expired-calibration REASON overrides it, recorded on every certificate)")
    return 1 if past or beyond else 0


def _records(url: str):
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        raise RecordsError(f"no records database at {url.removeprefix('sqlite:///')} "
                           f"(run the plans first, or give --records)")
    return connect(url)


def publish_report(args: argparse.Namespace) -> int:
    """Re-publish a stored run: its signed JSON record and, for a complete run, its signed documents."""
    record = load_run(_records(args.records), args.run_id)
    out = args.reports_dir
    lab = load_profile(args.bench).lab if args.bench else None
    signer = Signer.load(lab.signing_key if lab and lab.signing_key else default_key_path())
    out.mkdir(parents=True, exist_ok=True)
    write_signed_record(CanonicalRecord.of(record), signer, out)
    complete = record["status"] == "complete"
    written = write_documents(record, out, signer, lab.template if lab else None) if complete else []
    print(f"run {record['run_id']} ({record['status']}), {record['started_at']}, bench {record['bench']['id']}, "
          f"{record['plan']['name']} {record['plan']['version']}, rule {record['decision_rule']['rule']}")
    print(table(["pos", "serial", "firmware", "accuracy", "audit", "firmware check", "certificate"],
                [[m["position"], m["serial"], m["firmware"], *m["verdicts"].values(),
                  (m.get("certificate") or {}).get("number", "-")] for m in record["meters"]]))
    if record["status"] != "complete":
        scope = record["scope"]
        print(f"the run is {record['status']} ({scope['why']}): {scope['ran']} of {scope['planned']} "
              f"planned item(s) ran; no certificates")
    else:
        print(f"{len(written)} signed document(s) in {out} (key {signer.fingerprint})")
    return 0


def show_history(args: argparse.Namespace) -> int:
    """A meter's runs, oldest first, with their test reason and test episode; the rule for "as
    found" and "as left" is ``record.as_found_as_left``'s, and is printed under the table."""
    rows = history(_records(args.records), args.serial)
    if not rows:
        print(f"no runs for meter {args.serial}")
        return 1
    standings = as_found_as_left(rows)
    print(table(["", "episode", "run", "started", "reason", "status", "bench", "pos", "firmware", "verdict",
                 "certified"],
                [[s.label, s.episode or "", r["run_id"][:8], r["started_at"],
                  reason_text({"reason": r["test_reason"], "stated": r["test_reason_stated"]})
                  if r["test_reason"] else "not recorded",
                  r["status"], r["bench_id"], r["position"], r["firmware"], r["verdict"],
                  "yes" if r["certified"] else "no"] for s, r in zip(standings, rows)]))
    print("rule: 'as found' is the first complete run of a test episode (an acceptance, in-service or complaint "
          "test: the meter as it came);\n      'as left' is the episode's last complete run, after any "
          "after-adjustment runs (the meter as it left).")
    outside = sum(1 for s in standings if s.episode is None)
    if outside:
        print(f"{outside} run(s) partial or incomplete: in no episode, never 'as found' or 'as left', certify nothing")
    return 0


def verify_files(args: argparse.Namespace) -> int:
    """One line per file; exit 0 all valid, 1 any invalid, 3 none invalid but some unsigned. Reads
    only the files (and the lab key's public half): a customer can verify without the records."""
    trusted: set[str] | None = None
    lab_key: tuple[Path, str] | None = None  # the lab key trusted by default: path, fingerprint
    if args.trust:
        malformed = [f for f in args.trust if not f.startswith("SHA256:")]
        if malformed:
            print(f"bench: --trust {malformed[0]}: not a key fingerprint (SHA256:..., as `bench keys show` prints it)",
                  file=sys.stderr)
            return 2
        trusted = set(args.trust)
    elif args.key or default_key_path().exists():
        path = args.key or default_key_path()
        try:
            lab_key = (path, Signer.load(path).fingerprint)
        except SigningKeyError as error:
            print(f"bench: {error}", file=sys.stderr)
            return 2
        trusted = {lab_key[1]}
    statuses = set()
    for path in args.files:
        check = check_file(path, trusted)
        statuses.add(check.status)
        if check.status == "invalid" and check.fingerprint and lab_key:
            print(f"{path}: INVALID: signed by key {check.fingerprint}, not the lab's key "
                  f"({lab_key[1]}, {lab_key[0]})")
        elif check.status == "valid" and trusted is None:
            print(f"{check.message}: no trusted key given: compare this fingerprint with the one the lab publishes")
        else:
            print(check.message)
    return 1 if "invalid" in statuses else 3 if "unsigned" in statuses else 0


def manage_keys(args: argparse.Namespace) -> int:
    """The lab's signing key: created once, then only its public half is ever shown."""
    path = args.key or default_key_path()
    try:
        signer = init_key(path) if args.keys_command == "init" else Signer.load(path)
    except SigningKeyError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    if args.keys_command == "init":
        print(f"created {path} (mode 600): keep it private, and a copy offline")
    else:
        print(f"key:         {path}")
    print(f"fingerprint: {signer.fingerprint}")
    print(f"public key:  {signer.public_key_b64} (Ed25519, raw 32 bytes, base64)")
    if args.keys_command == "init":
        print("publish the fingerprint: readers check documents with `bench verify --trust FINGERPRINT FILE...`")
    return 0


def clear_tamper(args: argparse.Namespace) -> int:
    """Clear the alarm on the meter, confirm it, then write the audit trail (once per seal). A meter
    with no alarm is left alone: the trail is append-only, so a false entry could never go."""
    profile = load_profile(args.bench)
    make_safe_if_energised(profile)
    position = next((p for p in profile.positions if p.serial == args.serial), None)
    if position is None:
        raise ConfigError(f"{args.bench}: positions: no meter {args.serial} on this bench")
    meter = ModbusMeter(position.address, profile.meter_type.registers, name=f"position {position.number}",
                        device_id=profile.meters_device_id).open()
    try:
        if not meter.read("tamper"):
            print(f"bench: meter {args.serial} shows no tamper alarm: nothing cleared, nothing recorded",
                  file=sys.stderr)
            return 1
        meter.write("tamper_clear", 1)
        still_set = meter.read("tamper")
    finally:
        meter.close()
    if still_set:
        print(f"bench: meter {args.serial} still reports its tamper alarm; nothing recorded", file=sys.stderr)
        return 1
    url = args.records or profile.records_url or f"sqlite:///{Path('reports/records.sqlite').resolve()}"
    added = append_audit(connect(url), args.serial, "tamper-clear", args.operator, args.seal,
                         f"tamper alarm cleared at position {position.number} of {profile.bench_id}; "
                         f"new seal {args.seal}",
                         now_iso())
    print(f"meter {args.serial}: tamper alarm cleared, seal {args.seal} by {args.operator} "
          + ("recorded in the audit trail" if added else "was already in the audit trail"))
    return 0


def show_trail(args: argparse.Namespace) -> int:
    entries = audit_entries(_records(args.records), args.serial)
    if not entries:
        print(f"no audit-trail entries{f' for meter {args.serial}' if args.serial else ''}")
        return 1
    print(table(["#", "at", "serial", "action", "operator", "seal", "detail"],
                [[e["entry"], e["at"], e["serial"], e["action"], e["operator"], e["seal"], e["detail"]]
                 for e in entries]))
    return 0


def list_drivers(args: argparse.Namespace) -> int:
    from bench.sim.twins import twins
    from instruments.registry import drivers

    simulated = twins()
    for name, info in sorted(drivers().items()):
        print(f"{name}  ({info.distribution}: {info.cls.__module__}.{info.cls.__name__})")
        print(f"  roles:        {', '.join(info.roles)}")
        print(f"  capabilities: {', '.join(info.capabilities) or 'none beyond the role'}")
        print(f"  manual:       {info.manual}")
        twin = ("the simulated board's meters" if "meter" in info.roles
                else "yes" if name in simulated else "none installed")
        print(f"  twin:         {twin}")
    return 0


def run_sim(args: argparse.Namespace) -> int:
    from bench.sim import SimulatedBench

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    kind = load_profile(args.profile_kind) if args.profile_kind else None
    with SimulatedBench(args.sim_scenario, scale=args.sim_scale, kind=kind) as sim:
        data = sim.profile_data()
        args.profile.parent.mkdir(parents=True, exist_ok=True)
        args.profile.write_text(tomli_w.dumps(data))
        inspection = args.profile.with_name("inspection.toml")
        inspection.write_text(tomli_w.dumps(sim.board.inspection))
        clock = "stepped (advances on SIM:ADV)" if args.sim_scale is None else f"scaled x{args.sim_scale:g}"
        print(f"simulated bench '{sim.board.name}': {len(sim.world.meters)} positions, clock {clock}")
        print(f"  control    {data['clock']['address']}  (SIM:TIME?, SIM:ADV <s>, SIM:TRUT:ERR? <pos>)")
        for role, driver_name in sim.drivers.items():
            print(f"  {role:<10} {sim.served[role].address}  (twin of driver '{driver_name}')")
        for number, pos in enumerate(data["positions"], start=1):
            print(f"  position {number} {pos['serial']}  Modbus TCP {pos['address']} "
                  f"unit {data['meters']['device_id']}")
        print(f"profile: {args.profile}, the simulated technician's inspection: {inspection}")
        print(f"  pytest test_plans/ --bench {args.profile} --inspection {inspection}", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
