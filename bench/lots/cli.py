"""`bench lot`: create a lot of meters, draw its sample under a plan, judge it from the sample's
runs, and show where it stands. Registered from bench/cli.py (`add_parser`, `run`).

Exit status: 0 done (a verdict: the lot accepted), 1 the lot rejected, 3 a verdict refused (sample
meters without a usable complete run, named), 2 a usage, file or records error (one line).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from bench.datafiles import ConfigError
from bench.lots.draw import draw_lot
from bench.lots.inputs import read_manufacturer_data, read_serials
from bench.lots.ledger import (
    Lot,
    LotError,
    MeterType,
    check_lot_id,
    create_lot,
    draw_history,
    load_lot,
    record_verdict,
    severity_state,
)
from bench.lots.report import finite, write_report
from bench.lots.tables import SwitchingRules, shipped_plans
from bench.lots.verdict import ACCEPTED, judge_lot, refusal, sample_meters
from bench.metrology.forms import forms
from bench.records.record import now_iso
from bench.records.signing import Signer, SigningKeyError, default_key_path
from bench.records.store import RecordsError, connect
from bench.station.profile import MAX_CLASS, MIN_CLASS

DEFAULT_RECORDS = f"sqlite:///{Path('reports/records.sqlite').resolve()}"
REFUSED = 3


def _class(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--accuracy-class: {text!r} is not a number") from None
    if not math.isfinite(value) or not MIN_CLASS <= value <= MAX_CLASS:
        raise argparse.ArgumentTypeError(f"--accuracy-class: {text!r} is outside [{MIN_CLASS:g}, {MAX_CLASS:g}]")
    return value


def _seed(text: str) -> int:
    if not text.isdigit() or int(text) >= 2 ** 63:
        raise argparse.ArgumentTypeError(f"--seed: {text[:30]!r} is not a whole number in [0, 2**63)")
    return int(text)


def _name(text: str) -> str:
    if not text.strip() or not text.isprintable() or len(text) > 100:
        raise argparse.ArgumentTypeError(f"{text[:30]!r}: expected a printable name of at most 100 characters")
    return text.strip()


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    lot = subparsers.add_parser(
        "lot", help="lot acceptance by sampling (ANSI/ASQ Z1.9 variables, Z1.4 attributes): "
                    "create, draw, verdict, show",
        description="Accept or reject a lot of new meters on a sample drawn under a plan "
                    f"(shipped plans: {', '.join(shipped_plans())}; bench/standards/sampling/).",
        epilog="exit status: 0 done (lot accepted), 1 lot rejected, 3 verdict refused (sample meters without a "
               "usable complete run), 2 usage, file or records error")
    commands = lot.add_subparsers(dest="lot_command", required=True)
    create = commands.add_parser("create", help="record a lot: its meter type and every meter's serial")
    create.add_argument("lot_id", metavar="LOT")
    create.add_argument("--serials", type=Path, required=True, metavar="FILE",
                        help="the lot's serials: one per line (# comments), or CSV with a 'serial' column")
    create.add_argument("--manufacturer", type=_name, required=True)
    create.add_argument("--model", type=_name, required=True)
    create.add_argument("--form", required=True, help=f"meter form ({', '.join(forms())})")
    create.add_argument("--accuracy-class", type=_class, required=True, metavar="CLASS", help="e.g. 0.2")
    create.add_argument("--manufacturer-data", type=Path, metavar="CSV",
                        help="the manufacturer's results: CSV serial,point,value_pct (shown beside the lab's)")
    draw = commands.add_parser(
        "draw", help="draw the lot's sample (reproducible: seeded; a second draw is refused unless --redraw)",
        description="Draw the lot's sample: the plan's sample size for the lot's size at the meter type's current "
                    "severity, chosen by a seed (given, or generated and recorded). The sample is the n serials "
                    "with the smallest SHA-256 of '<seed>:<serial>'. Drawing again with the same plan prints the "
                    "stored sample; a different draw needs --redraw REASON and keeps the first on record.")
    draw.add_argument("lot_id", metavar="LOT")
    draw.add_argument("--plan", required=True, metavar="PLAN", help="a shipped plan's name or a plan file")
    draw.add_argument("--seed", type=_seed, help="the draw's seed (default: a random 12-digit seed, recorded)")
    draw.add_argument("--redraw", type=_name, metavar="REASON", help="replace the lot's draw (before any verdict)")
    draw.add_argument("--reduced-approved-by", type=_name, metavar="NAME",
                      help="the responsible authority approves reduced inspection (with --production-steady)")
    draw.add_argument("--production-steady", action="store_true", help="production is at a steady rate")
    draw.add_argument("--resume-approved-by", type=_name, metavar="NAME",
                      help="resume discontinued inspection (tightened) after the supplier's corrective action")
    verdict = commands.add_parser("verdict", help="judge the lot from its sample meters' complete runs; "
                                                  "write the signed lot report")
    verdict.add_argument("lot_id", metavar="LOT")
    verdict.add_argument("--reports-dir", type=Path, default=Path("reports"),
                         help="where lot-LOT.json and lot-LOT.html go (default: reports)")
    verdict.add_argument("--key", type=Path, metavar="PATH",
                         help="the lab's signing key (default: $METER_BENCH_HOME/keys/lab-ed25519.key)")
    show = commands.add_parser("show", help="the lot, its sample, which sample meters have results, its verdict")
    show.add_argument("lot_id", metavar="LOT")
    for sub in (create, draw, verdict, show):
        sub.add_argument("--records", default=DEFAULT_RECORDS, metavar="URL",
                         help="records database URL (default: reports/records.sqlite)")
    return lot


def run(args: argparse.Namespace) -> int:
    try:
        check_lot_id(args.lot_id)
        handler = {"create": _create, "draw": _draw, "verdict": _verdict, "show": _show}[args.lot_command]
        return handler(args)
    except (LotError, ConfigError, RecordsError, SigningKeyError) as error:
        print(f"bench lot: {error}", file=sys.stderr)
        return 2


def _engine(url: str, creating: bool = False) -> Engine:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if creating:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.exists():
            raise RecordsError(f"no records database at {path} (create a lot first, or give --records)")
    return connect(url)


def _create(args: argparse.Namespace) -> int:
    if args.form not in forms():
        raise ConfigError(f"--form {args.form}: not a meter form (known: {', '.join(forms())})")
    serials = read_serials(args.serials)
    data = read_manufacturer_data(args.manufacturer_data, serials) if args.manufacturer_data else {}
    meter_type = MeterType(args.manufacturer, args.model, args.form, args.accuracy_class)
    lot, created = create_lot(_engine(args.records, creating=True), args.lot_id, meter_type, serials, data, now_iso())
    print(f"lot {lot.lot_id}: {lot.size} meters of {meter_type.describe()}"
          + (f", manufacturer's data for {len(data)}" if data else "")
          + (f" (created {lot.created_at})" if created else f" (already created {lot.created_at}: unchanged)"))
    return 0


def _draw(args: argparse.Namespace) -> int:
    drawn = draw_lot(_engine(args.records), args.lot_id, args.plan, now_iso(), seed=args.seed, redraw=args.redraw,
                     reduced_approved_by=args.reduced_approved_by, production_steady=args.production_steady,
                     resume_approved_by=args.resume_approved_by)
    d = drawn.draw
    cell = d["cell"]
    criteria = f"k = {cell['k']:g}, M = {cell['m_pct']:g} %" if "k" in cell else f"Ac = {cell['ac']}, Re = {cell['re']}"
    when = ("already drawn at " if drawn.already else "drawn at ") + d["drawn_at"]
    print(f"lot {args.lot_id}: {when} with plan {d['plan']['name']}, {d['severity']} inspection, "
          f"level {d['plan']['inspection_level']}, AQL {d['plan']['aql']:g} %: "
          f"lot of {d['lot_size']} -> code letter {d['code_letter']}"
          + (f" (plan of letter {cell['letter']})" if cell["letter"] != d["code_letter"] else "")
          + f", n = {d['sample_size']}, {criteria}; seed {d['seed']}")
    if drawn.note:
        print(f"note: {drawn.note}")
    print(f"sample ({len(d['sample'])} meters, in draw order):")
    for serial in d["sample"]:
        print(serial)
    return 0


def _signer(args: argparse.Namespace) -> Signer:
    return Signer.load(args.key or default_key_path())


def _verdict(args: argparse.Namespace) -> int:
    engine = _engine(args.records)
    lot = load_lot(engine, args.lot_id)
    signer = _signer(args)  # before anything is recorded: a verdict is published signed, or not at all
    if lot.verdict_record is not None:
        written = write_report(lot.verdict_record, args.reports_dir, signer)
        _print_verdict(lot.verdict_record, written, again=True)
        return 0 if lot.verdict == ACCEPTED else 1
    meters = sample_meters(engine, lot)
    why = refusal(lot, meters)
    if why:
        print(f"bench lot: {why}", file=sys.stderr)
        return REFUSED
    record, outcome = judge_lot(lot, meters)
    at = now_iso()
    record["judged_at"] = at
    record = finite(record)
    rules = SwitchingRules(**_rules(lot))
    record_verdict(engine, lot, record, outcome, rules, at)
    written = write_report(record, args.reports_dir, signer)
    _print_verdict(record, written, again=False)
    return 0 if record["decision"] == ACCEPTED else 1


def _rules(lot: Lot) -> dict[str, Any]:
    """The switching rules the lot was drawn with (its draw keeps them, so later edits of the
    tables never change how an old draw is judged)."""
    assert lot.draw is not None
    return dict(lot.draw["plan"]["switching"])


def _print_verdict(record: dict[str, Any], written: list[Path], again: bool) -> None:
    lot, d = record["lot"], record["draw"]
    print(f"lot {lot['lot_id']}: {record['decision']}" + (f" (judged {record['judged_at']}; re-published)" if again
                                                          else "")
          + f": {record['reason']}")
    cell = d["cell"]
    if "statistics" in record:
        for s in record["statistics"]:
            print(f"  {s['point']}: n = {s['n']}, mean {s['mean']:+.4f} %, s {s['sd']:.4f} %, "
                  f"L {_opt(s['lower'])}, U {_opt(s['upper'])}, Q_L {_opt(s['q_lower'])}, Q_U {_opt(s['q_upper'])}, "
                  f"p {s['p_pct']:.3f} % (M {cell['m_pct']:g} %, k {cell['k']:g}): "
                  f"{'accepted' if s['accepted'] else 'rejected'}")
    else:
        a = record["attributes"]
        print(f"  d = {a['d']} of {a['n']} not certified (Ac {a['ac']}, Re {a['re']}): "
              f"{', '.join(a['nonconforming']) or 'none'}")
    severity = record["severity"]
    print(f"  inspection: drawn under {severity['drawn_under']}; the meter type is now {severity['after']}"
          + (f" ({severity['why']})" if severity.get("why") else ""))
    print(f"  report: {', '.join(str(p) for p in written)}")


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A plain text table for the terminal, as the other bench commands print them."""
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _opt(value: Any) -> str:
    return "-" if value is None else value if isinstance(value, str) else f"{value:.3f}"


def _show(args: argparse.Namespace) -> int:
    engine = _engine(args.records)
    lot = load_lot(engine, args.lot_id)
    mt = lot.meter_type
    state = severity_state(engine, mt)
    print(f"lot {lot.lot_id}: {lot.size} meters of {mt.describe()}, created {lot.created_at} from {lot.serials_file}"
          + (f"; manufacturer's data for {len(lot.manufacturer_data)} meters" if lot.manufacturer_data else ""))
    print(f"meter type {mt.manufacturer} {mt.model}: {state.severity} inspection"
          + (f" since {state.since} ({len(state.history)} lot(s) judged since)" if state.since else " (no lot judged)"))
    if lot.draw is None:
        print("not drawn yet (bench lot draw LOT --plan PLAN)")
        return 0
    d = lot.draw
    draws = draw_history(engine, lot.lot_id)
    print(f"drawn {d['drawn_at']}: plan {d['plan']['name']} ({d['severity']}), code letter {d['code_letter']}, "
          f"n = {d['sample_size']}, seed {d['seed']}"
          + (f"; {len(draws) - 1} earlier draw(s) replaced (last reason: {d['reason']})" if len(draws) > 1 else ""))
    meters = sample_meters(engine, lot)
    points = [q["point"] for q in d["plan"]["quantities"]]
    rows = []
    for m in meters:
        values = [f"{m.values[p]['value_pct']:+.4f}" if m.values.get(p, {}).get("value_pct") is not None else "-"
                  for p in points]
        certified = "-" if m.certified is None else "yes" if m.certified else "no"
        rows.append([m.order, m.serial, m.run_id[:8] if m.run_id else "-", *values, certified,
                     " ".join(f"{o['run_id'][:8]}({o['status']})" for o in m.other_runs) or "",
                     m.problem])
    print(table(["#", "serial", "run", *[f"{p} %" for p in points], "certified", "other runs", "problem"], rows))
    with_run = sum(1 for m in meters if m.run_id)
    print(f"{with_run} of {len(meters)} sample meters have a complete run since the draw")
    if lot.verdict:
        print(f"verdict: {lot.verdict} ({lot.verdict_at})")
    else:
        why = refusal(lot, meters)
        print("verdict: not yet judged" + (f" ({why.split(': verdict refused: ', 1)[1]})" if why else
                                           " (every sample meter has its result: bench lot verdict LOT)"))
    return 0
