"""Record completeness (issue 12, item 6): every gated error and its U come back from the run
record alone; "as found" and "as left" follow the run's stated test reason; the weighted average
registration a limits table asks for is computed per meter with its U; the certificate shows the
reason, the constants and the weighted average.

Records here are real: the simulated bench measures the points in process and ``RunRecorder``
makes the record that a run publishes, round-tripped through JSON and stored in a real database."""
from __future__ import annotations

import json
import math
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.metrology.quantities import QUANTITIES
from bench.metrology.uncertainty import Rule
from bench.plans.limits import DEFAULT_TABLE, LimitTable, load_table
from bench.procedures.gating import AccuracyPoint, measure_point
from bench.procedures.results import Result
from bench.procedures.runner import Point, shift_result
from bench.records import store
from bench.records.documents import write_documents
from bench.records.record import (
    TEST_REASONS,
    PlanInfo,
    RunRecorder,
    Scope,
    as_found_as_left,
    entry,
)
from bench.records.signing import Signer
from bench.sim import SimulatedBench
from bench.station.bench import Bench
from bench.station.profile import Signatory
from tests.helpers import REPO, bench_cli, edited_toml, plan_command

MEASURED = ("LL-PF1", "FL-PF1", "FL-PF05", "V90")  # V90 is judged as its shift from FL-PF1
METHOD_1 = {"name": "Method 1: (4 FL + LL) / 5", "weights": {"FL-PF1": 4.0, "LL-PF1": 1.0},
            "provenance": "04 NCAC 11 R08-11(a)(1)"}
METHOD_4 = {"name": "Method 4: (4 FL + 2 LL + PF) / 7", "weights": {"FL-PF1": 4.0, "LL-PF1": 2.0, "FL-PF05": 1.0},
            "provenance": "04 NCAC 11 R08-11(a)(4)"}


@dataclass
class Measurements:
    """Points measured once on the simulated board, with the bench still open for recording."""

    bench: Bench
    table: LimitTable
    points: list[Point]
    reported: dict[tuple[str, int], tuple[str, Result]]

    def record(self, reason: str | None = None, status: str = "complete", plan: PlanInfo | None = None,
               started_at: str | None = None, only: tuple[str, ...] = MEASURED) -> dict[str, Any]:
        """The record a run with these results would publish, as JSON gives it back."""
        recorder = RunRecorder(self.bench.profile, plan or self.table.plan_info(), Rule.SIMPLE, "tester",
                               Signatory("A. Approver", "Quality Manager"), None, test_reason=reason)
        if started_at:
            recorder.started_at = started_at
        reported = {key: value for key, value in self.reported.items() if key[0] in only}
        ids = tuple(f"{p.id}@pos{n}" for p in self.points for n in self.bench.meters if p.id not in only)
        scope = Scope(status, len(self.points) * len(self.bench.meters), len(reported), ids, "")
        record = recorder.record(self.bench, reported, {}, self.points, scope)
        return json.loads(store.canonical_json(record))


@pytest.fixture(scope="module")
def measured() -> Iterator[Measurements]:
    table = load_table()
    with SimulatedBench() as sim, Bench(sim.profile()) as bench:
        points = table.points(sim.meter_type())
        by_id = {p.id: p for p in points}
        found: dict[str, dict[int, Any]] = {}
        for point_id in MEASURED:
            point = by_id[point_id]
            assert isinstance(point, AccuracyPoint)
            found[point_id] = measure_point(bench, point)
        reported: dict[tuple[str, int], tuple[str, Result]] = {}
        for point_id, results in found.items():
            family = by_id[point_id].family
            for number, result in results.items():
                shift_from = by_id[point_id].shift_from  # type: ignore[union-attr]
                if shift_from:
                    result = shift_result(result, found[shift_from][number])
                reported[(point_id, number)] = (family, result)
        yield Measurements(bench, table, points, reported)


# recomputing from the record alone --------------------------------------------------------------------------


def gated_error(evidence: dict[str, Any]) -> float:
    """(E_mut - E_ref) / E_ref x 100 from the counts and the constants the result names."""
    constants = evidence["constants"]
    assert constants is not None, ("the result does not name its constants: gating.py must pass "
                                   "constants=PulseConstants(...) to PositionResult")
    e_mut = evidence["gate"]["mut_pulses"] * constants["meter_wh_per_pulse"]
    e_ref = evidence["gate"]["ref_pulses"] * constants["reference_wh_per_pulse"]
    return (e_mut - e_ref) / e_ref * 100.0


def gated_components(evidence: dict[str, Any], spec: dict[str, Any]) -> dict[str, float]:
    """The budget's standard uncertainties (%) from the record's bench spec and the gate."""
    pf = abs(evidence["power_factor"])
    certified = next(u for at, u in spec["reference_u"]["by_pf"] if at <= pf + 1e-9)
    gate = evidence["gate"]
    edge_s = math.hypot(spec["counter_timing_s"], spec["mut_jitter_s"])
    return {"reference standard": certified / spec["coverage_k"],
            "source stability": spec["source_stability_pct"] / math.sqrt(3),
            "reference quantization": 100.0 / (gate["ref_pulses"] * math.sqrt(3)),
            "edge timing": 100.0 * math.sqrt(2) * edge_s / gate["gate_time_s"]}


def expanded(components: list[float], k: float) -> float:
    return k * math.sqrt(sum(u * u for u in components))


def gated_results(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every result whose value is a gated error or the shift between two (the payload check's
    included); a demand register's result is judged on its own evidence, not by gating."""
    for meter in record["meters"]:
        for result in meter["results"]:
            evidence = result["evidence"]
            if result["value_pct"] is not None and ("shift" in evidence or evidence.get("gate")):
                yield result


def check_recomputes(record: dict[str, Any]) -> dict[str, float]:
    """Recompute every gated error, shift and U of the record from the record alone; the largest
    difference from what the run recorded, by kind."""
    spec, k = record["bench_spec"], record["bench_spec"]["coverage_k"]
    reference = next(i for i in record["instruments"] if i["role"] == "reference")
    mt = record["meter_type"]  # the Kt each test output gated with: the test mode's, where the run used it
    kt_in_force = {**mt["test_outputs"], **(mt["test_mode"]["test_outputs"] if record["test_mode"]["used"] else {})}
    worst = {"error": 0.0, "u": 0.0, "register": 0.0, "checked": 0.0}
    for result in gated_results(record):
        evidence = result["evidence"]
        if "shift" in evidence:  # the shift of the error here from the error at the reference point
            here, there = evidence["measured"], evidence["reference"]
            value = gated_error(here) - gated_error(there)
            ours = gated_components(here, spec)
            theirs = {n: u for n, u in gated_components(there, spec).items() if n != "reference standard"}
            u = expanded([*ours.values(), *theirs.values()], k)
            gated = [here, there]
        else:
            value = gated_error(evidence)
            u = expanded(list(gated_components(evidence, spec).values()), k)
            gated = [evidence]
        for one in gated:  # the run-level pointer names the same constants the result was gated with
            assert one["constants"]["reference_wh_per_pulse"] == reference["pulse_constant_wh"]
            assert one["constants"]["meter_wh_per_pulse"] == kt_in_force[QUANTITIES[one["quantity"]].output]
            assert one["constants"]["test_mode"] is record["test_mode"]["used"]
            assert one["gate"]["gate_time_s"] == one["gate"]["duration_ticks"] / one["gate"]["timebase_hz"]
        worst["error"] = max(worst["error"], abs(value - result["value_pct"]))
        worst["u"] = max(worst["u"], abs(u - result["u_pct"]) / result["u_pct"])
        worst["checked"] += 1
        register = evidence.get("register")
        if register:
            assert register["meter_wh"] == pytest.approx(register["end_wh"] - register["start_wh"], abs=1e-9)
            error = (register["meter_wh"] - register["reference_wh"]) / register["reference_wh"] * 100.0
            worst["register"] = max(worst["register"], abs(error - evidence["register_check"]["error_pct"]))
    return worst


def test_every_gated_error_shift_and_u_recompute_from_the_record_alone(measured):
    worst = check_recomputes(measured.record())
    assert worst["checked"] == len(MEASURED) * len(measured.bench.meters)
    assert worst["error"] < 1e-12 and worst["register"] < 1e-12  # percent of reading
    assert worst["u"] < 1e-12  # relative


def test_the_register_checks_u_recomputes_from_its_readings_and_resolution(measured):
    record = measured.record()
    spec, k = record["bench_spec"], record["bench_spec"]["coverage_k"]
    checked = 0
    for result in gated_results(record):
        evidence = result["evidence"]
        if "shift" in evidence:
            continue
        register, pf = evidence["register"], abs(evidence["power_factor"])
        certified = next(u for at, u in spec["reference_u"]["by_pf"] if at <= pf + 1e-9)
        reference_wh, power_w = register["reference_wh"], evidence["conditions"]["power_w"]
        components = [certified / k, spec["source_stability_pct"] / math.sqrt(3),
                      100.0 * register["resolution_wh"] / math.sqrt(6) / reference_wh,
                      100.0 * power_w * register["skew_s"] / 3600.0 / math.sqrt(3) / reference_wh]
        budget = evidence["register_check"]["budget"]["components"]
        u = k * math.sqrt(sum(c["u_pct"] ** 2 for c in budget))
        assert expanded(components, k) == pytest.approx(u, rel=1e-12)
        checked += 1
    assert checked == (len(MEASURED) - 1) * len(measured.bench.meters)


@pytest.mark.slow
def test_every_accuracy_result_of_a_whole_run_recomputes_from_its_record(whole_plan):
    record = whole_plan("default").record
    worst = check_recomputes(record)
    valued = [r for m in record["meters"] for r in m["results"] if r["value_pct"] is not None]
    demand = [r for r in valued if "demand" in r["evidence"]]  # not gated: the demand plan's own evidence
    assert worst["checked"] == len(valued) - len(demand) > 20 * len(record["meters"])
    assert worst["error"] < 1e-12 and worst["register"] < 1e-12 and worst["u"] < 1e-12


# the test reason and as found / as left -------------------------------------------------------------------


def test_the_test_reason_is_recorded_as_stated_or_plainly_as_the_default(measured):
    assert measured.record()["test_reason"] == {"reason": "acceptance", "stated": False}
    for reason in TEST_REASONS:
        assert measured.record(reason)["test_reason"] == {"reason": reason, "stated": True}
    with pytest.raises(ValueError, match="test reason 'repair': one of acceptance, in-service, complaint, "
                                         "after-adjustment"):
        measured.record("repair")


# (reason, status) of a meter's runs, oldest first, and what each run is under the rule
EPISODES = [
    (None, "complete", 1, "as found, as left"),  # acceptance (default): not adjusted
    ("in-service", "partial", None, ""),  # never as found: a partial run states nothing about the meter
    ("in-service", "complete", 2, "as found"),
    ("after-adjustment", "incomplete", None, ""),
    ("after-adjustment", "complete", 2, ""),  # adjusted again afterwards
    ("after-adjustment", "complete", 2, "as left"),
    ("complaint", "complete", 3, "as found, as left"),
    ("complaint", "partial", None, ""),
]


def history_of(measured: Measurements, url: str) -> tuple[list[dict[str, Any]], str]:
    engine = store.connect(url)
    for i, (reason, status, _, _) in enumerate(EPISODES):
        record = measured.record(reason, status, started_at=f"2026-0{i + 1}-01T08:00:00+00:00")
        store.publish(engine, store.CanonicalRecord.of(record))
    return store.history(engine, measured.bench.profile.positions[2].serial), measured.bench.profile.positions[2].serial


def check_history(rows: list[dict[str, Any]], serial: str, url: str) -> None:
    assert [(r["test_reason"], r["test_reason_stated"], r["status"]) for r in rows] == [
        (reason or "acceptance", reason is not None, status) for reason, status, _, _ in EPISODES]
    standings = as_found_as_left(rows)
    assert [(s.episode, s.label) for s in standings] == [(episode, label) for _, _, episode, label in EPISODES]
    shown = bench_cli("history", serial, "--records", url)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    body = [line for line in lines if re.match(r"^(as |\s)", line) and re.search(r"\b2026-0\d-01", line)]
    assert len(body) == len(EPISODES)
    for line, (reason, status, episode, label) in zip(body, EPISODES):
        assert line.startswith(label) if label else line.startswith(" ")
        first = line[len(label):].split()[0]  # the episode column, or the run id when it is empty
        assert first == str(episode) if episode else re.fullmatch(r"[0-9a-f]{8}", first)
        assert (reason or "acceptance (default)") in line and status in line
    assert any("as found" in line and "first complete run" in line for line in lines)  # the rule, stated


def test_as_found_and_as_left_follow_the_stated_test_reason_in_sqlite(measured, tmp_path):
    url = f"sqlite:///{tmp_path / 'records.sqlite'}"
    rows, serial = history_of(measured, url)
    check_history(rows, serial, url)


def test_as_found_and_as_left_follow_the_stated_test_reason_in_postgresql(measured, postgres_schema_url):
    rows, serial = history_of(measured, postgres_schema_url)
    assert store.connect(postgres_schema_url).dialect.name == "postgresql"
    check_history(rows, serial, postgres_schema_url)


def test_a_run_after_adjustment_with_no_as_found_before_it_is_as_left_only():
    rows = [{"status": "complete", "test_reason": "after-adjustment"},
            {"status": "complete", "test_reason": "in-service"},
            {"status": "partial", "test_reason": "after-adjustment"}]
    assert [(s.episode, s.label) for s in as_found_as_left(rows)] == [(1, "as left"), (2, "as found, as left"),
                                                                      (None, "")]


@pytest.mark.slow
def test_the_test_reason_option_reaches_the_record_and_a_wrong_one_is_one_line(tmp_path):
    one_point = ("test_plans/accuracy/test_load_performance.py", "-k", "FL-PF1", "-q")
    run = subprocess.run(plan_command(tmp_path, *one_point, "--test-reason", "complaint"),
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:]
    [path] = tmp_path.glob("run-*.json")
    assert json.loads(path.read_text())["record"]["test_reason"] == {"reason": "complaint", "stated": True}
    wrong = subprocess.run(plan_command(tmp_path / "wrong", *one_point, "--test-reason", "repair"),
                           capture_output=True, text=True, cwd=REPO, timeout=300)
    assert wrong.returncode == 4
    named = [line for line in wrong.stderr.splitlines() if "--test-reason" in line and "repair" in line]
    assert len(named) == 1 and "acceptance" in named[0] and "after-adjustment" in named[0]


# weighted average registration --------------------------------------------------------------------------------


def plan_with(weighted: dict[str, Any] | None, table: LimitTable) -> PlanInfo:
    info = table.plan_info()
    return PlanInfo(info.name, info.version, info.standard, info.source, info.provenance,
                    info.reference_conditions, weighted)


def components_of(result: dict[str, Any]) -> dict[str, float]:
    return {c["name"]: c["u_pct"] for c in result["evidence"]["pulses"]["budget"]["components"]}


@pytest.mark.parametrize("method", [METHOD_1, METHOD_4], ids=["method-1", "method-4"])
def test_weighted_average_registration_and_its_u_where_the_table_asks_for_it(measured, method):
    record = measured.record(plan=plan_with(method, measured.table))
    assert record["plan"]["weighted_average"] == method
    k = record["bench_spec"]["coverage_k"]
    for meter in record["meters"]:
        war, by_point = meter["weighted_average"], {r["point"]: r for r in meter["results"]}
        weights = method["weights"]
        total = sum(weights.values())
        error = sum(w * by_point[p]["value_pct"] for p, w in weights.items()) / total
        assert war["registration_pct"] == pytest.approx(100.0 + error, abs=1e-12)
        assert war["error_pct"] == pytest.approx(error, abs=1e-12)
        # the reference standard's term adds linearly (one instrument, one calibration: fully
        # correlated); every other term in quadrature (each point's own dwell)
        budgets = {p: components_of(by_point[p]) for p in weights}
        systematic = sum(w * budgets[p]["reference standard"] for p, w in weights.items()) / total
        random = sum((w / total) ** 2 * sum(u * u for n, u in budgets[p].items() if n != "reference standard")
                     for p, w in weights.items())
        assert war["u_pct"] == pytest.approx(k * math.sqrt(systematic ** 2 + random), rel=1e-12)
        uncorrelated = k * math.sqrt(sum((w / total) ** 2 * sum(u * u for u in budgets[p].values())
                                         for p, w in weights.items()))
        assert war["u_pct"] > uncorrelated  # treating the reference as uncorrelated would understate U
        assert war["points"] == {p: {"weight": w, "error_pct": by_point[p]["value_pct"],
                                     "u_pct": by_point[p]["u_pct"]} for p, w in weights.items()}
        assert war["name"] == method["name"] and war["provenance"] == method["provenance"]
        assert war["not_computed"] == ""


def test_no_weighted_average_without_the_table_asking_and_none_from_a_missing_point(measured):
    assert all(m["weighted_average"] is None for m in measured.record()["meters"])
    partial = measured.record(status="partial", plan=plan_with(METHOD_1, measured.table), only=("FL-PF1",))
    for meter in partial["meters"]:
        war = meter["weighted_average"]
        assert war["registration_pct"] is None and war["u_pct"] is None
        assert war["not_computed"] == "LL-PF1 has no measured error on this run"
    weightless = measured.record(plan=plan_with({**METHOD_1, "weights": {}}, measured.table))
    assert {m["weighted_average"]["not_computed"] for m in weightless["meters"]} == {
        "the table gives no positive weights"}


def test_the_limits_tables_weighted_average_reaches_the_record(measured, tmp_path):
    def ask(data: dict[str, Any]) -> None:
        data["weighted_average"] = METHOD_1

    table = load_table(edited_toml(DEFAULT_TABLE, ask, tmp_path / "nc.toml"))
    record = measured.record(plan=table.plan_info())
    assert record["plan"]["weighted_average"] == METHOD_1
    assert all(m["weighted_average"]["registration_pct"] is not None for m in record["meters"])


# the certificate ---------------------------------------------------------------------------------------------


def certificate_of(record: dict[str, Any], directory: Path) -> str:
    for n, meter in enumerate(record["meters"], start=1):
        meter["certificate"] = {"number": f"T-{n:03d}", "issued": "2026-05-01"}
    written = write_documents(record, directory, Signer(Ed25519PrivateKey.generate()))
    meter = record["meters"][0]
    [path] = [p for p in written if p.parent.name == "certificates" and p.name.startswith(meter["serial"])]
    return path.read_text(encoding="utf-8")


def test_the_certificate_shows_the_test_reason_the_constants_and_the_weighted_average(measured, tmp_path):
    record = measured.record("in-service", plan=plan_with(METHOD_1, measured.table))
    text = certificate_of(record, tmp_path / "stated")
    war = record["meters"][0]["weighted_average"]
    reference = next(i for i in record["instruments"] if i["role"] == "reference")
    assert re.search(r"<th>test reason</th><td[^>]*>in-service</td>", text)
    assert f"{war['registration_pct']:.4f} %" in text and f"{war['u_pct']:.4f} %" in text
    assert "Method 1: (4 FL + LL) / 5" in text and "04 NCAC 11 R08-11(a)(1)" in text
    assert "fully correlated" in text
    kh, constant = record["meter_type"]["kh_wh"], reference["pulse_constant_wh"]
    assert f"meter {kh:g}, reference {constant:g} Wh/pulse" in text  # as the results were gated
    default = certificate_of(measured.record(), tmp_path / "default")
    assert re.search(r"<th>test reason</th><td[^>]*>acceptance \(default: no test reason stated\)</td>", default)
    assert "weighted average" not in default.lower()


def test_a_record_from_before_these_fields_still_renders(measured, tmp_path):
    """``bench report`` re-publishes old runs from the database: their records lack the new fields."""
    record = measured.record()
    for key in ("test_reason", "bench_spec"):
        del record[key]
    for instrument in record["instruments"]:
        instrument.pop("pulse_constant_wh", None)
    for meter in record["meters"]:
        del meter["weighted_average"]
        for result in meter["results"]:
            evidence = result["evidence"]
            for gated in (evidence, evidence.get("measured"), evidence.get("reference")):
                if gated:
                    gated.pop("constants", None)
    text = certificate_of(record, tmp_path)
    assert "test reason" not in text and "Wh/pulse" not in text


def test_the_record_holds_the_entries_its_items_were_stored_with(measured):
    """The session's end builds the record from the entries made when each item concluded (the
    ones the records database got), not a second conversion: those very dicts, and the same
    record as converting afresh would give."""
    recorder = RunRecorder(measured.bench.profile, measured.table.plan_info(), Rule.SIMPLE, "tester",
                           Signatory("A. Approver", "Quality Manager"), None)
    scope = Scope("complete", len(measured.reported), len(measured.reported), (), "")
    made = {(point_id, n): entry(point_id, family, result, []) for (point_id, n), (family, result)
            in measured.reported.items()}
    reused = recorder.record(measured.bench, measured.reported, {}, measured.points, scope, made)
    fresh = recorder.record(measured.bench, measured.reported, {}, measured.points, scope)
    for meter in reused["meters"]:
        assert all(e is made[(e["point"], meter["position"])] for e in meter["results"])
    assert [m["results"] for m in reused["meters"]] == [m["results"] for m in fresh["meters"]]
