"""The per-meter certificate: one self-contained HTML file made from the meter's record slice.

The record is embedded (JSON) with its SHA-256; ``verify`` checks the hash, re-renders the
certificate from the embedded record and compares it byte for byte, and, when a records database
is at hand, compares the hash with the stored run. Editing any number shows.
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from bench.plots import error_curve_svg, harmonic_spectrum_svg
from bench.record import fingerprint, meter_slice
from bench.store import RecordsError, canonical_json, load_run

CSS = """
@page { size: auto; margin: 14mm; }
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 9.5pt; color: #111; max-width: 190mm; margin: auto; }
h1 { font-size: 15pt; margin: 0 0 2mm 0; } h2 { font-size: 11pt; margin: 5mm 0 1.5mm 0; border-bottom: 1px solid #999; }
table { border-collapse: collapse; width: 100%; } td, th { border: 1px solid #bbb; padding: 1mm 1.5mm; text-align: left; vertical-align: top; }
th { background: #eee; } tr, figure { page-break-inside: avoid; break-inside: avoid; }
.verdict { display: inline-block; padding: 1.5mm 4mm; font-weight: bold; font-size: 12pt; border: 2px solid; }
.CERTIFIED { color: #0a6b0a; } .NOT-CERTIFIED, .FAIL { color: #b00000; } .INCOMPLETE, .INDETERMINATE { color: #a06000; }
.small { font-size: 8pt; color: #444; } figure { margin: 3mm 0; } svg { max-width: 100%; height: auto; }
"""


def overall(meter: dict[str, Any], record: dict[str, Any]) -> tuple[str, str]:
    """(badge, explanation) for the meter as a whole."""
    if record["status"] != "complete":
        return "INCOMPLETE", "the run did not finish; nothing in it certifies this meter"
    if meter["certified"]:
        return "CERTIFIED", f"every test point of {record['plan']['name']} passed for class {record['meter_type']['accuracy_class']:g}"
    failed = [r["point"] for r in meter["results"] if r["verdict"] != "PASS"]
    missing = [p for p in record["plan"]["points"] if p not in {r["point"] for r in meter["results"]}]
    reasons = ([f"not passed: {', '.join(failed)}"] if failed else []) + ([f"not run: {', '.join(missing)}"] if missing else [])
    return "NOT CERTIFIED", "; ".join(reasons) or "the plan does not apply to this meter"


def _rows(cells: list[tuple[str, Any]]) -> str:
    return "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in cells)


def _conditions(evidence: dict[str, Any]) -> str:
    readings = evidence.get("conditions") or (evidence.get("measured") or {}).get("conditions")
    if not readings:
        return ""
    volts = "/".join(f"{v:.2f}" for v in readings["voltages_v"])
    text = f"{volts} V, {readings['frequency_hz']:.3f} Hz, THD V {readings['thd_voltage_pct']:.2f} %"
    if readings.get("temperature_c") is not None:
        text += f", {readings['temperature_c']:.1f} °C"
    return text


def render(slice_: dict[str, Any]) -> str:
    """The certificate's HTML; the same record always gives the same bytes."""
    meter, mt = slice_["meter"], slice_["meter_type"]
    badge, why = overall(meter, slice_)
    digest = fingerprint(slice_)
    results = "".join(
        f"<tr><td>{html.escape(r['point'])}</td><td>{html.escape(r['cells']['Point'])}<br><span class=small>"
        f"{html.escape(r['cells']['Stimulus'])}</span></td><td class=small>{html.escape(_conditions(r['evidence']))}</td>"
        f"<td>{html.escape(r['cells']['Measured'])}</td><td>{html.escape(r['cells']['U (k=2)'])}</td>"
        f"<td>{html.escape(r['cells']['Limit'])}</td><td class={r['verdict']}>{r['verdict']}</td></tr>"
        for r in meter["results"])
    instruments = "".join(
        f"<tr><td>{html.escape(i['role'])}</td><td>{html.escape(i['idn'])}</td><td>{html.escape(i['serial'])}</td>"
        f"<td>{html.escape(i.get('calibration_date', ''))}</td><td>{html.escape(i.get('calibration_due', ''))}</td>"
        f"<td class=small>{html.escape(i.get('certificate', ''))} {html.escape(i.get('uncertainty', ''))}</td></tr>"
        for i in slice_["instruments"])
    figures = [svg for svg in (error_curve_svg(meter["results"], mt["test_amperes"]), harmonic_spectrum_svg(meter["results"])) if svg]
    override = slice_.get("reference_override")
    record_json = canonical_json(slice_).replace("<", "\\u003c")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="record-sha256" content="{digest}">
<title>Certificate {html.escape(meter['serial'])}</title><style>{CSS}</style></head>
<body>
<h1>Meter accuracy certificate: {html.escape(meter['serial'])}</h1>
<p><span class="verdict {badge.replace(' ', '-')}">{badge}</span> {html.escape(why)}</p>
<h2>Meter</h2><table>{_rows([("serial", meter["serial"]), ("MAC", meter["mac"]), ("firmware", meter["firmware"]),
    ("type", f"{mt['manufacturer']} {mt['model']}"), ("form / class", f"{mt['form']} / {mt['accuracy_class']:g}"),
    ("TA / Imax / nominal", f"{mt['test_amperes']:g} A / {mt['max_current_a']:g} A / {mt['nominal_voltage_v']:g} V, {mt['frequency_hz']:g} Hz"),
    ("Kh", f"{mt['kh_wh']:g} Wh per pulse"), ("board position", meter["position"])])}</table>
<h2>Run and traceability</h2><table>{_rows([("run", slice_["run_id"]), ("started / ended", f"{slice_['started_at']} / {slice_['ended_at'] or 'not finished'}"),
    ("status", slice_["status"]), ("bench", f"{slice_['bench']['id']} (profile sha256 {slice_['bench']['profile_sha256'][:16]})"),
    ("operator", slice_["operator"]), ("test plan and limits", f"{slice_['plan']['name']}, version {slice_['plan']['version']}"),
    ("limits provenance", slice_["plan"]["provenance"]), ("decision rule", slice_["decision_rule"]["text"])]
    + ([("reference standard override", override)] if override else []))}</table>
<table style="margin-top:2mm"><tr><th>role</th><th>identity (*IDN?)</th><th>serial</th><th>calibrated</th><th>due</th><th>certificate</th></tr>{instruments}</table>
<h2>Results</h2>
<table><tr><th>point</th><th>test and stimulus</th><th>conditions</th><th>measured</th><th>U (k=2)</th><th>limit</th><th>verdict</th></tr>{results}</table>
{''.join(f'<figure>{svg}</figure>' for svg in figures)}
<p class=small>Record SHA-256: {digest}. Check this certificate with <code>bench verify FILE</code>.</p>
<script type="application/json" id="record">{record_json}</script>
</body></html>
"""


def write_certificates(record: dict[str, Any], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for meter in record["meters"]:
        path = directory / f"{meter['serial']}-{record['run_id'][:8]}.html"
        path.write_text(render(meter_slice(record, meter["serial"])), encoding="utf-8")
        written.append(path)
    return written


def verify(path: Path, engine: Engine | None = None) -> tuple[bool, str]:
    """(genuine, one-line reason)."""
    try:
        text = path.read_text(encoding="utf-8")
    except IsADirectoryError:
        return False, f"{path}: a directory, not a certificate"
    except OSError as error:
        return False, f"{path}: cannot read: {error.strerror or error}"
    except UnicodeDecodeError:
        return False, f"{path}: not a bench certificate (not UTF-8 text)"
    embedded = re.search(r'<script type="application/json" id="record">(.*?)</script>', text, re.S)
    stated = re.search(r'<meta name="record-sha256" content="([0-9a-f]{64})">', text)
    if not embedded or not stated:
        return False, f"{path}: not a bench certificate (no embedded record or SHA-256)"
    try:
        slice_ = json.loads(embedded.group(1))
    except json.JSONDecodeError:
        return False, f"{path}: TAMPERED: the embedded record is not valid JSON"
    if fingerprint(slice_) != stated.group(1):
        return False, f"{path}: TAMPERED: the embedded record does not match the stated SHA-256"
    if render(slice_) != text:
        return False, f"{path}: TAMPERED: the certificate's content differs from what its record renders"
    if engine is not None:
        try:
            stored = meter_slice(load_run(engine, slice_["run_id"]), slice_["meter"]["serial"])
        except (RecordsError, StopIteration):
            return False, f"{path}: run {slice_['run_id']} or meter {slice_['meter']['serial']} is not in the records database"
        if fingerprint(stored) != stated.group(1):
            return False, f"{path}: does not match run {slice_['run_id']} as stored in the records database"
    return True, f"{path}: genuine: {slice_['meter']['serial']}, run {slice_['run_id']}, sha256 {stated.group(1)[:16]}"
