"""What each published document holds, as data: its slice of the run record and its one verdict.

A document carries only its own results (the accuracy certificate the C12.20 plan's, the audit
report the commissioning audit's, the firmware report the regression checks'), so its single
overall verdict covers everything on it and nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.records.baseline import compared_enough
from bench.records.record import document_of


@dataclass(frozen=True)
class Verdict:
    """A document's one overall verdict: the badge, whether it is favourable, and why."""
    text: str
    ok: bool
    why: str


IDENTITY = ("position", "serial", "mac", "firmware")


def _meter_part(meter: dict[str, Any], document: str, *extra: str) -> dict[str, Any]:
    """The meter's identity, its verdict for this document only, and this document's results."""
    return {**{k: meter[k] for k in (*IDENTITY, *extra)}, "verdicts": {document: meter["verdicts"][document]},
            "results": [r for r in meter["results"] if document_of(r["family"]) == document]}


def _context(record: dict[str, Any]) -> dict[str, Any]:
    """The run's context without its meters or the baseline comparison (that is the firmware report's)."""
    return {k: v for k, v in record.items() if k not in ("meters", "baseline")}


def accuracy_slice(record: dict[str, Any], meter: dict[str, Any]) -> dict[str, Any]:
    """The run's context and the meter's accuracy results, with its weighted average registration
    when its record has one (a record from before the field has none)."""
    extra = ("weighted_average",) if "weighted_average" in meter else ()
    return {**_context(record), "meter": _meter_part(meter, "accuracy", "certified", "certificate", *extra)}


def audit_slice(record: dict[str, Any], meter: dict[str, Any]) -> dict[str, Any]:
    return {**_context(record), "meter": _meter_part(meter, "audit")}


def firmware_slice(record: dict[str, Any]) -> dict[str, Any]:
    meters = [_meter_part(m, "firmware") for m in record["meters"]]
    return {**_context(record), "meters": [m for m in meters if m["results"]],
            **({"baseline": record["baseline"]} if "baseline" in record else {})}


def _named(results: list[dict[str, Any]]) -> list[str]:
    return [f"{r['point']} ({r['verdict']})" for r in results if r["verdict"] != "PASS"]


def accuracy_verdict(slice_: dict[str, Any]) -> Verdict:
    """CERTIFIED only when the record says so, naming what passed beyond the plan (the demand
    register's points); otherwise which points failed or did not run."""
    meter, plan = slice_["meter"], slice_["plan"]
    if meter["certified"]:
        others = [r["point"] for r in meter["results"] if r["point"] not in plan["points"]]
        also = f", and so did {', '.join(others)}" if others else ""
        return Verdict("CERTIFIED", True, f"every point of {plan['name']}, version {plan['version']}, passed for "
                                          f"accuracy class {slice_['meter_type']['accuracy_class']:g}{also}")
    ran = {r["point"] for r in meter["results"]}
    reasons = []
    if failed := _named(meter["results"]):
        reasons.append("not passed: " + ", ".join(failed))
    if missing := [p for p in plan["points"] if p not in ran]:
        reasons.append("not run: " + ", ".join(missing))
    return Verdict("NOT CERTIFIED", False, "; ".join(reasons) or
                   f"the plan does not apply to this meter (form {slice_['meter_type']['form']})")


def audit_verdict(slice_: dict[str, Any]) -> Verdict:
    meter = slice_["meter"]
    if meter["verdicts"]["audit"] == "PASS":
        return Verdict("AUDIT PASSED", True,
                       f"every step of the commissioning audit passed ({len(meter['results'])} steps)")
    return Verdict("AUDIT FAILED", False, "not passed: " + ", ".join(_named(meter["results"])))


def firmware_verdict(slice_: dict[str, Any]) -> Verdict:
    """A failed check outranks a regression, which outranks acceptance."""
    failed = [f"{m['serial']} {name}" for m in slice_["meters"] for name in _named(m["results"])]
    if failed:
        return Verdict("FAIL", False, "not passed: " + ", ".join(failed))
    baseline = slice_.get("baseline")
    if baseline and not compared_enough(baseline):
        return Verdict("NOT COMPARED", False,
                       f"only {baseline['points_compared']} of {baseline['points_run']} points had "
                       f"a baseline value (at least {baseline['min_overlap']:.0%} needed)")
    if baseline and baseline["regressions"]:
        return Verdict("REGRESSION", False,
                       "; ".join(f"{r['serial']} {r['point']}: {r['why']}" for r in baseline["regressions"]))
    against = (f", and no point regressed against {baseline['reference']} (run {baseline['run_id'][:8]})"
               if baseline else "")
    return Verdict("RELEASE ACCEPTED", True,
                   f"every firmware check passed on {len(slice_['meters'])} meter(s){against}")


def conditions(evidence: dict[str, Any]) -> str:
    """The conditions measured during the point: voltages, frequency, voltage THD, temperature."""
    readings = evidence.get("conditions") or (evidence.get("measured") or {}).get("conditions")
    if not readings:
        return ""
    volts = readings["voltages_v"]
    shown = f"{len(volts)} × {volts[0]:.2f}" if len(set(volts)) == 1 else "/".join(f"{v:.2f}" for v in volts)
    text = f"{shown} V, {readings['frequency_hz']:.3f} Hz, THD {readings['thd_voltage_pct']:.2f} %"
    if readings.get("temperature_c") is not None:
        text += f", {readings['temperature_c']:.1f} °C"
    return text


def accuracy_rows(slice_: dict[str, Any]) -> list[dict[str, str]]:
    """Every point of the plan in plan order, measured or not, then any other accuracy result."""
    by_point = {r["point"]: r for r in slice_["meter"]["results"]}
    order = list(slice_["plan"]["points"]) + [p for p in by_point if p not in slice_["plan"]["points"]]
    rows = []
    for point in order:
        result = by_point.get(point)
        if result is None:
            rows.append({"point": point, "name": "", "stimulus": "", "conditions": "", "measured": "", "u": "",
                         "limit": "", "verdict": "NOT RUN", "diagnosis": ""})
            continue
        cells = result["cells"]
        rows.append({"point": point, "name": result["name"], "stimulus": cells["Stimulus"],
                     "conditions": conditions(result["evidence"]), "measured": cells["Measured"],
                     "u": cells["U (k=2)"], "limit": cells["Limit"], "verdict": result["verdict"],
                     "diagnosis": cells["Diagnosis"]})
    return rows


def pulse_constants(slice_: dict[str, Any]) -> list[dict[str, float]]:
    """The distinct constants the document's gated results were computed with, as their evidence
    names them (none for a record from before results named them)."""
    found: list[dict[str, float]] = []
    for result in slice_["meter"]["results"]:
        evidence = result["evidence"]
        for gated in (evidence, evidence.get("measured"), evidence.get("reference")):
            constants = (gated or {}).get("constants")
            if constants and constants not in found:
                found.append(constants)
    return found
