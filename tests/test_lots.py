"""Lot acceptance by sampling: the plan tables and their checks, the Z1.9 statistic against the
standard's worked example, the switching rules, reproducible draws, and lots of simulated meters run
on the simulated bench and accepted or rejected as the plan says, with the records in SQLite (and
PostgreSQL when the tests have one)."""
from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import math
import random
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import tomli_w
from sqlalchemy import create_engine, inspect

from bench.cli import main
from bench.datafiles import ConfigError
from bench.lots import statistics
from bench.lots.draw import draw_lot
from bench.lots.inputs import read_serials
from bench.lots.ledger import (
    LotError,
    MeterType,
    create_lot,
    draw_history,
    load_lot,
    record_verdict,
    severity_state,
)
from bench.lots.switching import Outcome, after_lot, reduced_refusal
from bench.lots.tables import SAMPLING, SwitchingRules, load_plan, load_tables
from bench.lots.verdict import judge_lot, sample_meters
from bench.records import store
from bench.records.record import now_iso
from tests.helpers import EXACT, REPO, edited_toml, plan_command

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Z19, Z14 = "z1.9-level-II", "z1.4-level-II"
Z19_TABLES, Z14_TABLES = SAMPLING / "z1.9-variables.toml", SAMPLING / "z1.4-attributes.toml"
LIMITS = REPO / "bench" / "standards" / "c12_20.toml"  # the accuracy plan's shipped limits table
BOARD = REPO / "bench" / "sim" / "boards" / "default.toml"
ACCURACY_PLAN = "test_plans/accuracy/"
SIM_TYPE = MeterType("Simulated Metering Co.", "SIM-16S-200", "16S", 0.2)  # the simulated boards' meter type
TYPE_ARGS = ("--manufacturer", SIM_TYPE.manufacturer, "--model", SIM_TYPE.model, "--form", SIM_TYPE.form,
             "--accuracy-class", str(SIM_TYPE.accuracy_class))


def bench(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    """The `bench` command in this process: (exit status, stdout, stderr)."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def write_serials(path: Path, serials: list[str]) -> Path:
    path.write_text("# serials of the lot, one per line\n" + "\n".join(serials) + "\n")
    return path


def published_rank(seed: int, serial: str) -> str:
    """The draw's published rule, computed here independently: SHA-256 of '<seed>:<serial>'."""
    return hashlib.sha256(f"{seed}:{serial}".encode()).hexdigest()


# --- the statistic ---------------------------------------------------------------------------------

def test_the_incomplete_beta_meets_its_closed_forms():
    for x in (0.01, 0.2, 0.5, 0.77, 0.99):
        assert statistics.incomplete_beta(1, 1, x) == pytest.approx(x, abs=1e-14)
        assert statistics.incomplete_beta(2, 2, x) == pytest.approx(3 * x ** 2 - 2 * x ** 3, abs=1e-14)
        assert statistics.incomplete_beta(3.5, 3.5, x) == pytest.approx(1 - statistics.incomplete_beta(3.5, 3.5, 1 - x))
    # n = 4: a = 1, so the estimate is linear in Q: 100 (1/2 - Q / 3) %, and 0 from Q = 3 / 2 on
    for q in (-1.0, 0.0, 0.4, 1.2, 1.5, 2.0):
        assert statistics.percent_nonconforming(q, 4) == pytest.approx(max(0.0, 100 * (0.5 - q / 3)), abs=1e-12)


def test_the_z19_worked_example_gives_its_published_results():
    """ANSI/ASQ Z1.9 Section B's worked examples B-1 (one limit, Form 1) and B-3 (two limits,
    Form 2), as quoted in public course material (the lab confirms them against its copy): maximum
    temperature of operation 209 F, minimum 180 F, a lot of 40, level II, AQL 1 %, five readings.
    Published: mean 195, s = 8.80, Q_U = 1.59 >= k = 1.53: accept; p_U = 2.19 %, p_L = 0.66 %,
    p = 2.85 % <= M = 3.33 %: accept. The plan's n, k and M come from the shipped tables."""
    tables = load_tables(Z19_TABLES)
    cell = tables.cell("normal", 1.0, tables.letter(40, "II"))
    assert (cell.letter, cell.n, cell.k, cell.m_pct) == ("D", 5, 1.53, 3.33)
    readings = [197.0, 188.0, 184.0, 205.0, 201.0]
    assert len(readings) == cell.n
    upper_only = statistics.judge(readings, None, 209.0, "k", cell.k, cell.m_pct)
    assert upper_only.mean == 195.0 and round(upper_only.sd, 2) == 8.80 and round(upper_only.q_upper, 2) == 1.59
    assert upper_only.accepted
    both = statistics.judge(readings, 180.0, 209.0, "M", cell.k, cell.m_pct)
    assert round(both.q_lower, 2) == 1.70
    # the standard reads Table B-5 at Q rounded to two decimals
    assert round(statistics.percent_nonconforming(1.59, 5), 2) == 2.19
    assert round(statistics.percent_nonconforming(1.70, 5), 2) == 0.66
    assert both.p_pct <= cell.m_pct and both.accepted
    # a reading far enough out turns both forms round
    worse = statistics.judge([*readings[:4], 209.0], 180.0, 209.0, "M", cell.k, cell.m_pct)
    assert not worse.accepted and not statistics.judge([*readings[:4], 209.0], None, 209.0, "k", cell.k, 0).accepted


def test_form_one_judges_one_limit_and_a_sample_without_spread_is_decided_by_where_it_sits():
    with pytest.raises(ValueError, match="Form 1 .k. judges one limit"):
        statistics.judge([0.1, 0.2, 0.3], -0.2, 0.2, "k", 1.5, 3.0)
    with pytest.raises(ValueError, match="at least 3"):
        statistics.judge([0.1, 0.2], -0.2, 0.2, "M", 1.5, 3.0)
    assert statistics.judge([0.05] * 5, -0.2, 0.2, "M", 1.5, 3.0).accepted
    assert not statistics.judge([0.25] * 5, -0.2, 0.2, "M", 1.5, 3.0).accepted


# --- the tables -------------------------------------------------------------------------------------

def raw_cell_count(path: Path, lot_size: int, level: str) -> tuple[str, int]:
    """Code letter and sample size read straight from the TOML, without the loader."""
    data = tomllib.loads(path.read_text())
    row = max(i for i, start in enumerate(data["code_letters"]["lot_from"]) if start <= lot_size)
    letter = data["code_letters"]["levels"][level][row]
    sizes = data["sample_sizes"]
    return letter, (sizes["normal"] if "normal" in sizes else sizes)[letter]


def test_a_lot_of_200_at_level_ii_is_code_letter_g_and_15_meters_under_z19():
    plan = load_plan(Z19)
    cell = plan.cell("normal", 200)
    assert (cell.letter, cell.n) == raw_cell_count(Z19_TABLES, 200, "II") == ("G", 15)
    tightened, reduced = plan.cell("tightened", 200), plan.cell("reduced", 200)
    # tightened: the same sample, the next smaller AQL column's constants; reduced: a smaller sample
    assert tightened.n == cell.n and tightened.k > cell.k and tightened.m_pct < cell.m_pct
    assert reduced.n < cell.n


def test_every_shipped_k_agrees_with_its_m_through_the_table_b5_relation():
    """k (Table B-1) and M (Table B-3) come from different reproductions; the estimate at Q = k,
    each printed to three digits, brackets M on every shipped plan (the loader checks the same
    relation the other way round, through k_from_m)."""
    tables = load_tables(Z19_TABLES)
    assert len(tables.cells) == 5 + 4 + 5
    for column in tables.cells.values():
        for cell in column.values():
            assert cell.k is not None and cell.m_pct is not None
            low, high = (statistics.percent_nonconforming(cell.k + step, cell.n) for step in (0.01, -0.01))
            assert low <= cell.m_pct <= high, cell
    # n = 4 has a closed form: k = 3 (1/2 - M)
    assert statistics.k_from_m(1.49, 4) == pytest.approx(3 * (0.5 - 0.0149), abs=1e-12)


def test_the_z14_tables_are_diagonal_and_tightened_accepts_less_than_normal_at_the_aql():
    """In the printed Z1.4 tables a cell depends only on its letter's row plus its AQL's column; and
    at a lot quality equal to the AQL a tightened plan accepts no more often than the normal one."""
    data = tomllib.loads(Z14_TABLES.read_text())
    for severity in ("normal", "tightened", "reduced"):
        rows = list(data[severity]["plans"].values())
        for i in range(len(rows) - 1):
            assert rows[i + 1][:-1] == rows[i][1:], (severity, i)
    tables = load_tables(Z14_TABLES)

    def accepts(n: int, ac: int, p: float) -> float:
        return sum(math.comb(n, d) * p ** d * (1 - p) ** (n - d) for d in range(ac + 1))

    for (severity, aql), column in tables.cells.items():
        if severity != "normal":
            continue
        for letter, normal in column.items():
            tightened = tables.cell("tightened", aql, letter)
            assert tightened.ac is not None and normal.ac is not None
            assert accepts(tightened.n, tightened.ac, aql / 100) <= accepts(normal.n, normal.ac, aql / 100) + 1e-12


def test_a_lot_of_60_at_level_ii_under_z14_follows_the_arrow_to_letter_f():
    plan = load_plan(Z14)
    letter, n = raw_cell_count(Z14_TABLES, 60, "II")
    cell = plan.cell("normal", 60)
    assert (letter, n) == ("E", 13)  # Table I: 51 to 90 at level II; E's cell at AQL 2.5 is an arrow down
    assert (cell.letter, cell.n, cell.ac, cell.re) == ("F", 20, 1, 2)


def set_cell(data: dict, table: str, letter: str, column: int, value: object) -> None:
    data[table[0]][table[1]][letter][column] = value


@pytest.mark.parametrize("tables, edit, says", [
    (Z19_TABLES, lambda d: set_cell(d, ("normal", "k"), "G", 1, 1.97),
     r"normal\.k\.G: AQL 1: k = 1\.97 and M = 3\.06 % disagree for n = 15 \(M implies k = 1\.786\)"),
    (Z19_TABLES, lambda d: set_cell(d, ("normal", "M"), "G", 1, math.nan),
     r"normal\.M\.G: AQL 1: M must be a percentage in \(0, 50\) or an arrow, got nan"),
    (Z19_TABLES, lambda d: d["code_letters"]["levels"]["II"].__setitem__(6, "D"),
     r"code_letters\.levels\.II: row 7: letter D after F: code letters must not fall"),
    (Z19_TABLES, lambda d: d["sample_sizes"].update(H=12),
     r"sample_sizes\.H: sample size 12 is not above the previous letter's"),
    (Z19_TABLES, lambda d: d["tightened"].update(normal_column=[1.0, 1.0, 1.5, 2.5]),
     r"tightened\.normal_column: tightened AQL 1 reads normal column 1"),
    (Z14_TABLES, lambda d: set_cell(d, ("normal", "plans"), "R", 1, "down"),
     r"normal\.plans\.R: AQL 1: its arrow leads out of the table to no plan"),
    (Z14_TABLES, lambda d: set_cell(d, ("normal", "plans"), "K", 2, "5/7"),
     r"normal\.plans\.K: AQL 1\.5: Re 7 must be Ac \+ 1 = 6"),
    (Z14_TABLES, lambda d: set_cell(d, ("tightened", "plans"), "K", 3, "one/two"),
     r"tightened\.plans\.K: AQL 2\.5: expected \"Ac/Re\", \"down\" or \"up\", got 'one/two'"),
    (Z14_TABLES, lambda d: d["switching"].update(tightened_when_rejected=6),
     r"switching\.tightened_when_rejected: expected a whole number in \[1, 5\], got 6"),
])
def test_a_broken_table_is_one_line_naming_the_file_and_the_key(tmp_path, tables, edit, says):
    path = edited_toml(tables, edit, tmp_path / tables.name)
    with pytest.raises(ConfigError) as raised:
        load_tables(path)
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    assert re.search(says, message), message


@pytest.mark.parametrize("edit, says", [
    (lambda d: d["plan"].update(inspection_level="IV"), r"plan\.inspection_level: 'IV' is not one of S-3, S-4, I"),
    (lambda d: d["plan"].update(aql=0.1), r"plan\.aql: 0\.1 has no normal column in z1\.9-variables\.toml"),
    (lambda d: d["plan"].update(form="k"), r"quantity\[1\]\.side: Form 1 \(k\) judges one limit"),
    (lambda d: d["plan"].update(tables="z1.4-attributes.toml"), r"plan\.tables: z1\.4-attributes\.toml holds "
                                                                 r"attributes tables, not variables"),
    (lambda d: d["quantity"][0].update(lower_pct=0.3, upper_pct=0.1), r"quantity\[1\]\.upper_pct: 0\.1 is not above"),
])
def test_a_broken_plan_is_one_line_naming_the_file_and_the_key(tmp_path, edit, says):
    path = edited_toml(SAMPLING / f"{Z19}.toml", edit, tmp_path / "lab-plan.toml")
    with pytest.raises(ConfigError) as raised:
        load_plan(str(path))
    assert "\n" not in str(raised.value) and re.search(says, str(raised.value)), str(raised.value)


# --- switching ------------------------------------------------------------------------------------

RULES = load_tables(Z14_TABLES).switching


def test_switching_follows_mil_std_105e():
    A, R = Outcome(True), Outcome(False)

    def run(severity: str, outcomes: list[Outcome]) -> list[str]:
        since: list[bool] = []
        seen = []
        for outcome in outcomes:
            switch = after_lot(RULES, severity, since, outcome)
            since = [] if switch.severity != severity else [*since, outcome.accepted]
            severity = switch.severity
            seen.append(severity)
        return seen

    # two rejections within five consecutive lots: tightened; five lots apart: not
    assert run("normal", [R, A, A, A, R])[-1] == "tightened"
    assert run("normal", [R, A, A, A, A, R]) == ["normal"] * 6
    # tightened: five accepted in a row back to normal; a rejection restarts the count
    assert run("tightened", [A, A, A, A, A]) == ["tightened"] * 4 + ["normal"]
    assert run("tightened", [A, A, R, A, A, A, A])[-1] == "tightened"
    # five rejected on tightened: discontinued
    assert run("tightened", [R, A, R, R, A, R, R])[-1] == "discontinued"
    # reduced: a rejection, or an acceptance between Ac and Re, goes back to normal
    assert run("reduced", [A, A, R]) == ["reduced", "reduced", "normal"]
    assert run("reduced", [A, Outcome(True, back_to_normal=True)]) == ["reduced", "normal"]
    # reduced needs ten accepted in a row on normal (and the authority, which the draw takes)
    assert reduced_refusal(RULES, "normal", [True] * 9) == ("9 consecutive lot(s) accepted on normal inspection; "
                                                            "reduced inspection needs 10")
    assert reduced_refusal(RULES, "normal", [False] + [True] * 10) is None
    assert "this meter type is on tightened" in reduced_refusal(RULES, "tightened", [True] * 10)


# --- lots in the records, judged on synthetic complete runs ----------------------------------------

_SECONDS = itertools.count(1)


def later() -> str:
    """A start time after every draw so far and every run before it (records keep whole seconds)."""
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=next(_SECONDS))).isoformat(timespec="seconds")


def synthetic_run(engine, serials: list[str], values: dict[str, float], tolerance: float = 0.2,
                  status: str = "complete", points: tuple[str, ...] = ("FL-PF1", "LL-PF1"),
                  meter_type: MeterType = SIM_TYPE, started_at: str | None = None) -> str:
    """A run record as the plugin publishes one, cut to what lot verdicts read: every meter's
    registration error at each point, judged against ±tolerance."""
    run_id = str(uuid.uuid4())
    started_at = started_at or later()
    meters = []
    for position, serial in enumerate(serials, start=1):
        value = values[serial]
        verdict = "PASS" if abs(value) <= tolerance else "FAIL"
        meters.append({"position": position, "serial": serial, "firmware": "fw", "mac": f"02:00:{position:04X}",
                       "verdict": verdict, "certified": status == "complete" and verdict == "PASS",
                       "results": [{"point": p, "family": "load_performance", "name": p, "verdict": verdict,
                                    "value_pct": value, "u_pct": 0.012,
                                    "evidence": {"limit_pct": tolerance, "counted": True}} for p in points]})
    record = {"run_id": run_id, "started_at": started_at, "ended_at": started_at, "status": status,
              "bench": {"id": "SYNTHETIC", "profile_sha256": "0" * 64}, "plan": {"name": "accuracy", "version": "t"},
              "decision_rule": {"rule": "simple"}, "operator": "test", "meter_type": meter_type.to_dict(),
              "meters": meters}
    store.publish(engine, store.CanonicalRecord.of(record))
    return run_id


def lot_of(tmp_path: Path, name: str, size: int) -> list[str]:
    serials = [f"{name}-{i:04d}" for i in range(1, size + 1)]
    write_serials(tmp_path / f"{name}.txt", serials)
    return serials


def judge_synthetic(engine, tmp_path: Path, name: str, good: bool, rng: random.Random, **draw_options: object):
    """Create, draw and judge a lot of 200 whose sample measures good or bad; (lot, draw, decision)."""
    lot_of(tmp_path, name, 200)
    create_lot(engine, name, SIM_TYPE, read_serials(tmp_path / f"{name}.txt"), {}, now_iso())
    drawn = draw_lot(engine, name, Z19, now_iso(), seed=7, **draw_options)
    sample = drawn.draw["sample"]
    values = {s: rng.gauss(0.0, 0.03) if good else rng.gauss(0.15, 0.05) for s in sample}
    synthetic_run(engine, sample, values)
    lot = load_lot(engine, name)
    record, outcome = judge_lot(lot, sample_meters(engine, lot))
    record_verdict(engine, lot, record, outcome, SwitchingRules(**drawn.draw["plan"]["switching"]), now_iso())
    return lot, drawn.draw, record["decision"]


@pytest.fixture(params=["sqlite", "postgresql"])
def records_url(request, tmp_path):
    return f"sqlite:///{tmp_path / 'records.sqlite'}" if request.param == "sqlite" else request.getfixturevalue(
        "postgres_schema_url")


@pytest.mark.slow  # 26 lots judged in a row (PostgreSQL too)
def test_the_meter_types_severity_switches_lot_by_lot_and_each_draw_uses_it(tmp_path, records_url):
    engine = store.connect(records_url)
    rng = random.Random(20261122)
    plan = load_plan(Z19)
    normal, tightened, reduced = (plan.cell(s, 200) for s in ("normal", "tightened", "reduced"))
    verdicts = [judge_synthetic(engine, tmp_path, name, good, rng)[2]
                for name, good in (("A", True), ("B", False), ("C", False))]
    assert verdicts == ["ACCEPTED", "REJECTED", "REJECTED"]
    assert severity_state(engine, SIM_TYPE).severity == "tightened"  # 2 of the last 3 lots rejected
    lot, draw, _ = judge_synthetic(engine, tmp_path, "D", True, rng)
    assert draw["severity"] == "tightened" and draw["cell"]["m_pct"] == tightened.m_pct < normal.m_pct
    for name in "EFGH":
        judge_synthetic(engine, tmp_path, name, True, rng)
    assert severity_state(engine, SIM_TYPE).severity == "normal"  # 5 accepted on tightened
    for i in range(9):
        judge_synthetic(engine, tmp_path, f"N{i}", True, rng)
    lot_of(tmp_path, "R0", 200)
    create_lot(engine, "R0", SIM_TYPE, read_serials(tmp_path / "R0.txt"), {}, now_iso())
    with pytest.raises(LotError, match="9 consecutive lot.s. accepted on normal inspection; reduced inspection "
                                       "needs 10"):
        draw_lot(engine, "R0", Z19, now_iso(), reduced_approved_by="State inspector", production_steady=True)
    judge_synthetic(engine, tmp_path, "N9", True, rng)
    with pytest.raises(LotError, match="reduced inspection also needs production at a steady rate"):
        draw_lot(engine, "R0", Z19, now_iso(), reduced_approved_by="State inspector")
    drawn = draw_lot(engine, "R0", Z19, now_iso(), reduced_approved_by="State inspector", production_steady=True)
    assert drawn.draw["severity"] == "reduced" and drawn.draw["sample_size"] == reduced.n < normal.n
    _, _, decision = judge_synthetic(engine, tmp_path, "R1", False, rng)
    assert decision == "REJECTED" and severity_state(engine, SIM_TYPE).severity == "normal"
    # back on normal: two rejections tighten; five on tightened discontinue, and a draw is refused
    for name in ("X1", "X2", "T1", "T2", "T3", "T4", "T5"):
        judge_synthetic(engine, tmp_path, name, False, rng)
    assert severity_state(engine, SIM_TYPE).severity == "discontinued"
    lot_of(tmp_path, "Z", 200)
    create_lot(engine, "Z", SIM_TYPE, read_serials(tmp_path / "Z.txt"), {}, now_iso())
    with pytest.raises(LotError, match="is discontinued .* give --resume-approved-by NAME"):
        draw_lot(engine, "Z", Z19, now_iso())
    assert draw_lot(engine, "Z", Z19, now_iso(), resume_approved_by="QA manager").draw["severity"] == "tightened"
    judged = 3 + 1 + 4 + 10 + 1 + 2 + 5  # A-C, D, E-H, N0-N9, R1, X1-X2, T1-T5: one run each
    assert store.count_rows(engine)["runs"] == judged
    with engine.connect() as conn:
        entries = conn.execute(store.severity_log.select().order_by(store.severity_log.c.entry)).all()
    assert [e.event for e in entries].count("reduced approved") == 1 and entries[-1].event == "resumed"
    assert [e.severity_after for e in entries if e.severity_after != e.severity_before] == [
        "tightened", "normal", "reduced", "normal", "tightened", "discontinued", "tightened"]


def test_only_the_first_complete_run_on_the_lots_type_with_the_plans_points_counts(tmp_path):
    engine = store.connect(f"sqlite:///{tmp_path / 'records.sqlite'}")
    lot_of(tmp_path, "L", 30)
    create_lot(engine, "L", SIM_TYPE, read_serials(tmp_path / "L.txt"), {}, now_iso())
    sample = draw_lot(engine, "L", Z19, now_iso(), seed=1).draw["sample"]
    values = {s: 0.01 * i for i, s in enumerate(sample)}
    synthetic_run(engine, sample, values, status="partial")
    synthetic_run(engine, sample[:2], values, meter_type=MeterType("Other Co.", "X", "16S", 0.2))
    synthetic_run(engine, sample[2:4], values, points=("FL-PF1",))
    meters = sample_meters(engine, load_lot(engine, "L"))
    assert [m.run_id for m in meters] == [None] * len(sample)
    assert "is of meter type Other Co. X, not the lot's Simulated Metering Co. SIM-16S-200" in meters[0].problem
    assert "did not measure LL-PF1" in meters[2].problem
    with pytest.raises(LotError, match=f"{len(sample)} of {len(sample)} sample meters have no complete run since"):
        judge_lot(load_lot(engine, "L"), meters)
    counted = synthetic_run(engine, sample, values)
    synthetic_run(engine, sample[:1], {sample[0]: -0.5})  # a re-test after the first complete run
    meters = sample_meters(engine, load_lot(engine, "L"))
    assert {m.run_id for m in meters} == {counted} and meters[0].values["FL-PF1"]["value_pct"] == values[sample[0]]
    assert [r["status"] for r in meters[0].other_runs] == ["partial", "complete", "complete"]
    record, _ = judge_lot(load_lot(engine, "L"), meters)
    assert [s["mean"] for s in record["statistics"]] == [pytest.approx(sum(values.values()) / len(values))] * 2


def test_two_complete_runs_of_a_sample_meter_in_the_same_second_are_named_not_guessed(tmp_path):
    engine = store.connect(f"sqlite:///{tmp_path / 'records.sqlite'}")
    lot_of(tmp_path, "L", 30)
    create_lot(engine, "L", SIM_TYPE, read_serials(tmp_path / "L.txt"), {}, now_iso())
    sample = draw_lot(engine, "L", Z19, now_iso(), seed=1).draw["sample"]
    at = later()
    for value in (0.01, 0.3):
        synthetic_run(engine, sample[:1], {sample[0]: value}, started_at=at)
    synthetic_run(engine, sample[1:], dict.fromkeys(sample[1:], 0.01))
    named = rf"1 cannot be counted: {sample[0]} \(two complete runs started at {re.escape(at)} "
    with pytest.raises(LotError, match=named):
        judge_lot(load_lot(engine, "L"), sample_meters(engine, load_lot(engine, "L")))


def test_a_sample_judged_against_different_tolerances_is_refused(tmp_path):
    engine = store.connect(f"sqlite:///{tmp_path / 'records.sqlite'}")
    lot_of(tmp_path, "L", 30)
    create_lot(engine, "L", SIM_TYPE, read_serials(tmp_path / "L.txt"), {}, now_iso())
    sample = draw_lot(engine, "L", Z19, now_iso(), seed=1).draw["sample"]
    values = dict.fromkeys(sample, 0.01)
    synthetic_run(engine, sample[:3], values, tolerance=0.5)
    synthetic_run(engine, sample[3:], values, tolerance=0.2)
    with pytest.raises(LotError, match=r"the sample's FL-PF1 results were judged against different limits "
                                       r"\(±0\.2, 0\.5 %\)"):
        judge_lot(load_lot(engine, "L"), sample_meters(engine, load_lot(engine, "L")))


def test_an_older_records_database_gains_the_lot_tables(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    with create_engine(url).begin() as conn:
        store.schema_version.create(conn)
        conn.execute(store.schema_version.insert().values(version=4))
        for migration in store.MIGRATIONS[:4]:
            migration(conn)
    engine = store.connect(url)
    with engine.connect() as conn:
        assert {"lots", "lot_meters", "lot_draws", "inspection_severity", "severity_log"} <= set(
            inspect(conn).get_table_names())
        assert conn.execute(store.schema_version.select()).scalar_one() == store.SCHEMA_VERSION


# --- hostile input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("content, says", [
    (b"A-1\nA-2\nA-1\n", "{path}:3: serial A-1 repeats line 1"),
    (b"", "{path}: no serials"),
    (b"# only a comment\n\n", "{path}: no serials"),
    (b"A-1\nhas space\n", "{path}:2: 'has space' is not a meter serial"),
    (b"A-1\n" + b"9" * 65 + b"\n", "{path}:2: '" + "9" * 65 + "' is not a meter serial"),
    (b"id,model\nA-1,X\n", "{path}:1: a CSV header needs a 'serial' column"),
    (b"serial,model\nA-1,X\nA-2\n", "{path}:3: 1 columns where the header has 2"),
    (b"\x00\x01binary", "{path}: contains NUL bytes"),
    (b"A-1\n\xff\xfe\n", "{path}: not UTF-8 text"),
])
def test_a_bad_serials_file_is_one_line_naming_the_file_and_line(tmp_path, capsys, content, says):
    path = tmp_path / "serials.txt"
    path.write_bytes(content)
    code, _, err = bench(capsys, "lot", "create", "L1", "--serials", path, *TYPE_ARGS, "--records",
                         f"sqlite:///{tmp_path / 'r.sqlite'}")
    assert code == 2 and one_line(err).startswith("bench lot: " + says.format(path=path))


def test_hostile_lot_commands_are_one_line_each(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    serials = write_serials(tmp_path / "serials.txt", [f"H-{i}" for i in range(1, 51)])
    data = tmp_path / "maker.csv"
    data.write_text("serial,point,value_pct\nH-1,FL-PF1,0.02\nH-99,FL-PF1,0.01\n")
    cases = [
        (("draw", "L1", "--plan", Z19), f"no records database at {tmp_path / 'r.sqlite'}"),
        (("create", "L1", "--serials", serials, "--manufacturer-data", data, *TYPE_ARGS),
         f"{data}:3: serial H-99 is not in the lot ({serials})"),
        (("create", "../L1", "--serials", serials, *TYPE_ARGS), "lot id '../L1': use letters, digits and ._-"),
        (("create", "L1", "--serials", serials, *TYPE_ARGS[:4], "--form", "99Z", "--accuracy-class", "0.2"),
         "--form 99Z: not a meter form"),
    ]
    for args, says in cases:
        code, _, err = bench(capsys, "lot", *args, "--records", url)
        assert code == 2 and one_line(err).startswith(f"bench lot: {says}"), err
    assert bench(capsys, "lot", "create", "L1", "--serials", serials, *TYPE_ARGS, "--records", url)[0] == 0
    again = bench(capsys, "lot", "create", "L1", "--serials", serials, *TYPE_ARGS, "--records", url)
    assert again[0] == 0 and "already created" in again[1]
    serials.write_text("H-1\nH-2\nH-3\n")
    cases = [
        (("create", "L1", "--serials", serials, *TYPE_ARGS), "lot L1 exists (created "),
        (("draw", "L2", "--plan", Z19), "no lot 'L2' in the records (create it with `bench lot create`)"),
        (("verdict", "L1"), "lot L1 has no sample yet: draw it first"),
        (("draw", "L1", "--plan", "z9.9-level-XX"), "--plan z9.9-level-XX: unknown plan (shipped: z1.4-level-II, "
                                                    "z1.9-level-II; or give a plan file)"),
        (("draw", "L1", "--plan", str(tmp_path / "none.toml")), f"{tmp_path / 'none.toml'}: cannot read"),
        (("draw", "L1", "--plan", Z19, "--production-steady"), "--production-steady is stated only with"),
        (("draw", "L1", "--plan", Z19, "--reduced-approved-by", "X", "--production-steady"),
         "--reduced-approved-by: Simulated Metering Co. SIM-16S-200: 0 consecutive lot(s) accepted"),
        (("draw", "L1", "--plan", Z19, "--resume-approved-by", "X"), "--resume-approved-by: inspection of "),
    ]
    for args, says in cases:
        code, _, err = bench(capsys, "lot", *args, "--records", url)
        assert code == 2 and one_line(err).startswith(f"bench lot: {says}"), err
    code, out, _ = bench(capsys, "lot", "show", "L1", "--records", url)
    assert code == 0 and "not drawn yet" in out


def test_a_redraw_needs_a_reason_and_keeps_the_replaced_draw_on_record(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    serials = write_serials(tmp_path / "serials.txt", [f"R-{i}" for i in range(1, 201)])
    assert bench(capsys, "lot", "create", "L1", "--serials", serials, *TYPE_ARGS, "--records", url)[0] == 0
    code, _, err = bench(capsys, "lot", "draw", "L1", "--plan", Z19, "--redraw", "why", "--records", url)
    assert code == 2 and one_line(err) == "bench lot: --redraw: lot L1 has no draw to replace"
    first = bench(capsys, "lot", "draw", "L1", "--plan", Z19, "--seed", 1, "--records", url)[1]
    second = bench(capsys, "lot", "draw", "L1", "--plan", Z19, "--seed", 2, "--redraw", "seed mistyped",
                   "--records", url)[1]
    samples = [out.split("in draw order):\n")[1].split() for out in (first, second)]
    assert samples[0] != samples[1] and all(len(sample) == 15 for sample in samples)
    assert samples == [sorted(load_lot(store.connect(url), "L1").serials, key=lambda s: published_rank(seed, s))[:15]
                       for seed in (1, 2)]
    history = draw_history(store.connect(url), "L1")
    assert [(h["seed"], h["reason"]) for h in history] == [("1", None), ("2", "seed mistyped")]
    assert history[0]["draw"]["sample"] == samples[0]
    shown = bench(capsys, "lot", "show", "L1", "--records", url)[1]
    assert "seed 2; 1 earlier draw(s) replaced (last reason: seed mistyped)" in shown


# --- lots of simulated meters on the simulated bench ------------------------------------------------

def tolerance(point: str, accuracy_class: float) -> float:
    row = next(r for r in tomllib.loads(LIMITS.read_text())["point"] if r["id"] == point)
    return float(row["tolerance"][f"{accuracy_class:g}"])


def small_limits(tmp_path: Path, points: list[str]) -> Path:
    """The shipped accuracy table cut to the plan's points: a complete run of just what it judges."""
    def keep(data: dict) -> None:
        data["point"] = [row for row in data["point"] if row["id"] in points]
        assert [row["id"] for row in data["point"]] == sorted(points, key=[r["id"] for r in data["point"]].index)
    return edited_toml(LIMITS, keep, tmp_path / "lot-points.toml")


def sample_board(tmp_path: Path, name: str, offsets: dict[str, float]) -> Path:
    """The default simulated board holding the drawn meters, each exact but for its gain error."""
    board = tomllib.loads(BOARD.read_text())
    board["board"]["name"] = name
    board["position"] = [{"serial": serial, "mac": f"02:4C:{i >> 8:02X}:{i & 255:02X}:00:01",
                          "firmware": board["position"][0]["firmware"], "offset_pct": offset, **EXACT}
                         for i, (serial, offset) in enumerate(offsets.items(), start=1)]
    path = tmp_path / f"{name}.toml"
    path.write_text(tomli_w.dumps(board))
    return path


def measured(offset: float) -> float:
    """The error the bench measures for a meter of this gain error: against the board's reference,
    which is itself off by its stated true error."""
    reference = tomllib.loads(BOARD.read_text())["reference"]["error_pct"]
    return 100 * ((1 + offset / 100) / (1 + reference / 100) - 1)


def run_sample(tmp_path: Path, board: Path, limits: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    run = subprocess.run(plan_command(tmp_path / "runs", ACCURACY_PLAN, "--sim-scenario", str(board), "--limits",
                                      str(limits), "--records", url, "-q", *args),
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode in (0, 1), run.stdout[-3000:] + run.stderr[-2000:]
    return run


def make_lot(tmp_path: Path, capsys, url: str, name: str, size: int, offsets: dict[str, float], plan: str,
             seed: int, *create_args: object) -> list[str]:
    """Create the lot and draw its sample through the `bench lot` command; the drawn serials."""
    serials = write_serials(tmp_path / f"{name}.txt", list(offsets))
    created = bench(capsys, "lot", "create", name, "--serials", serials, *TYPE_ARGS, *create_args, "--records", url)
    assert created[0] == 0, created
    code, out, _ = bench(capsys, "lot", "draw", name, "--plan", plan, "--seed", seed, "--records", url)
    assert code == 0, out
    return out.split("in draw order):\n", 1)[1].split()


@pytest.mark.slow
def test_a_lot_built_to_pass_is_accepted_and_one_built_to_fail_is_rejected(tmp_path, capsys):
    """Two lots of 200 simulated meters: gain errors N(0, 0.03 %) and N(0.14 %, 0.05 %), seeded. Each
    lot's sample is drawn reproducibly, run on the simulated bench (the C12.20 plan cut to the plan's
    points), and judged: the decision is the one the plan's table gives for the drawn meters' true
    errors, and the designed one."""
    url = f"sqlite:///{tmp_path / 'records.sqlite'}"
    plan = load_plan(Z19)
    cell = plan.cell("normal", 200)
    points = [q.point for q in plan.quantities]
    limits = small_limits(tmp_path, points)
    rng = random.Random(414)
    lots = {"PASS": {f"PA{i:05d}": round(rng.gauss(0.0, 0.03), 4) for i in range(1, 201)},
            "FAIL": {f"FA{i:05d}": round(rng.gauss(0.14, 0.05), 4) for i in range(1, 201)}}
    maker = tmp_path / "maker.csv"
    maker.write_text("serial,point,value_pct\n" + "".join(f"{s},FL-PF1,{o:.4f}\n" for s, o in lots["PASS"].items()))
    seed = 20261122
    expected: dict[str, str] = {}
    for name, offsets in lots.items():
        sample = make_lot(tmp_path, capsys, url, name, 200, offsets, Z19, seed,
                          *(("--manufacturer-data", maker) if name == "PASS" else ()))
        # the published rule, computed here: the n serials of smallest SHA-256("<seed>:<serial>")
        assert sample == sorted(offsets, key=lambda s: published_rank(seed, s))[:cell.n] and len(sample) == 15
        again = bench(capsys, "lot", "draw", name, "--plan", Z19, "--records", url)
        assert again[0] == 0 and "already drawn" in again[1]
        assert again[1].split("in draw order):\n")[1].split() == sample
        refused = bench(capsys, "lot", "draw", name, "--plan", Z19, "--seed", seed + 1, "--records", url)
        assert refused[0] == 2 and "a different draw is refused" in one_line(refused[2])
        tol = tolerance(points[0], SIM_TYPE.accuracy_class)
        truth = [measured(offsets[s]) for s in sample]
        expected[name] = "ACCEPTED" if statistics.judge(truth, -tol, tol, "M", cell.k, cell.m_pct).accepted \
            else "REJECTED"
        board = sample_board(tmp_path, name.lower(), {s: offsets[s] for s in sample})
        if name == "PASS":  # a partial run (-k) leaves the lot unjudged: only complete runs count
            run_sample(tmp_path, board, limits, url, "-k", points[0])
            code, _, err = bench(capsys, "lot", "verdict", name, "--records", url, "--reports-dir", tmp_path / "out")
            assert code == 3 and "15 of 15 sample meters have no complete run since the draw" in one_line(err)
            shown = bench(capsys, "lot", "show", name, "--records", url)[1]
            assert shown.count("(partial)") == 15 and "0 of 15 sample meters have a complete run" in shown
        run = run_sample(tmp_path, board, limits, url)
        assert "run complete" in run.stdout, run.stdout[-2000:]
        code, out, err = bench(capsys, "lot", "verdict", name, "--records", url, "--reports-dir", tmp_path / "out")
        assert code == (0 if expected[name] == "ACCEPTED" else 1), out + err
        record = json.loads((tmp_path / "out" / f"lot-{name}.json").read_text())["record"]
        assert record["decision"] == expected[name]
        for statistic in record["statistics"]:
            values = [measured(offsets[s]) for s in sample]
            true_mean = sum(values) / len(values)
            assert statistic["n"] == cell.n and statistic["m_pct"] == cell.m_pct and statistic["k"] == cell.k
            assert statistic["mean"] == pytest.approx(true_mean, abs=0.002)  # the bench measures to ~0.0005 %
            assert (statistic["lower"], statistic["upper"]) == (-tol, tol)
        run_ids = {m["run_id"] for m in record["sample"]}
        assert len(run_ids) == 1 and [m["serial"] for m in record["sample"]] == sample
        assert record["draw"]["seed"] == str(seed) and "MIL-STD-414" in record["draw"]["plan"]["tables"]["provenance"]
        if name == "PASS":
            assert all(m["manufacturer"] == {"FL-PF1": offsets[m["serial"]]} for m in record["sample"])
        published = [str(tmp_path / "out" / f"lot-{name}.{suffix}") for suffix in ("json", "html")]
        verified = subprocess.run([sys.executable, "-m", "bench.cli", "verify", *published], capture_output=True,
                                  text=True, cwd=REPO, timeout=60)
        assert verified.returncode == 0, verified.stdout
        # judged once: the verdict is re-published, never recomputed, and the lot's sample is final
        before = (tmp_path / "out" / f"lot-{name}.json").read_bytes()
        again = bench(capsys, "lot", "verdict", name, "--records", url, "--reports-dir", tmp_path / "out")
        assert again[0] == code and "re-published" in again[1]
        assert (tmp_path / "out" / f"lot-{name}.json").read_bytes() == before
        redraw = bench(capsys, "lot", "draw", name, "--plan", Z19, "--redraw", "typo", "--records", url)
        assert redraw[0] == 2 and "its sample is final" in one_line(redraw[2])
    assert expected == {"PASS": "ACCEPTED", "FAIL": "REJECTED"}  # the lots were built for these
    engine = store.connect(url)
    assert severity_state(engine, SIM_TYPE).severity == "normal"  # one rejection in two lots tightens nothing


@pytest.mark.slow
def test_an_attributes_lot_counts_the_sample_meters_the_bench_did_not_certify(tmp_path, capsys):
    """A lot of 60 under Z1.4 (level II, AQL 2.5 %): n, Ac and Re from the table; a quarter of the
    meters built outside their class's tolerance. The nonconforming count is the drawn meters that
    are truly outside, and the decision follows Ac/Re."""
    url = f"sqlite:///{tmp_path / 'records.sqlite'}"
    cell = load_plan(Z14).cell("normal", 60)
    rng = random.Random(105)
    offsets = {f"AT{i:04d}": round(rng.choice([-1, 1]) * rng.uniform(0.3, 0.6), 4) if rng.random() < 0.25
               else round(rng.gauss(0.0, 0.03), 4) for i in range(1, 61)}
    sample = make_lot(tmp_path, capsys, url, "ATTR", 60, offsets, Z14, 99)
    assert len(sample) == cell.n == 20
    tol = tolerance("FL-PF1", SIM_TYPE.accuracy_class)
    outside = [s for s in sample if abs(measured(offsets[s])) > tol]
    assert len(outside) >= cell.re  # built to be rejected
    run_sample(tmp_path, sample_board(tmp_path, "attr", {s: offsets[s] for s in sample}),
               small_limits(tmp_path, ["FL-PF1", "LL-PF1"]), url)
    code, out, err = bench(capsys, "lot", "verdict", "ATTR", "--records", url, "--reports-dir", tmp_path / "out")
    assert code == 1, out + err
    record = json.loads((tmp_path / "out" / "lot-ATTR.json").read_text())["record"]
    assert record["decision"] == "REJECTED"
    assert record["attributes"] == {"n": cell.n, "nonconforming": outside, "d": len(outside), "ac": cell.ac,
                                    "re": cell.re}
