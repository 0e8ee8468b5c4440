"""The published documents of real runs: the accuracy certificate holds the C12.20 plan and the
demand register test and only them, the audit and firmware reports hold theirs, each has one
verdict, is signed, re-renders to the same bytes, takes a lab's own template, and prints on Letter
and A4 with numbered pages."""
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from markupsafe import escape
from matplotlib import image

from bench.datafiles import ConfigError
from bench.plans.demand import board_points, load_demand_table
from bench.records.documents import check_template, write_documents
from bench.records.signing import Signer, check_file, default_key_path, init_key
from bench.sim import SimulatedBench
from tests.helpers import REPO, require_tool

pytestmark = pytest.mark.slow  # whole plan runs, Chromium and poppler

NOT_ACCURACY = re.compile(r"\b(FW-[A-Z]+|INSPECTION|VOLTAGE-PHASE|LOGIC|NETWORK|KEYS-IDENTITY|PAYLOAD|FIRMWARE)\b")
BADGE = re.compile(r'<span class="verdict (?:ok|bad)">([^<]*)</span>')
EMBEDDED = re.compile(r'<script type="application/json" id="record">(.*?)</script>', re.S)
# The results table's column headers as pdftotext lays them out ("conditions measured" may wrap).
RESULTS_HEADER = re.compile(r"point\s+test and stimulus\s+conditions\s+(?:measured\s+)?measured\s+"
                            r"U \(k=2\)\s+limit\s+verdict")
ROWS_PER_PAGE = 17  # result rows a printed page holds at 8 pt: C12.20's 26 rows once took about a page and a half


@pytest.fixture(scope="module")
def home():
    """The tests' bench home (tests/conftest.py) and the lab's signing key in it, outside reports/
    as on a real bench."""
    return Path(os.environ["METER_BENCH_HOME"]), Signer.load(default_key_path())


def board_run(whole_plan, board):
    """The shared whole-plan run on a board: its reports and its record, complete."""
    run = whole_plan(board)
    assert run.process.returncode in (0, 1), run.process.stdout[-3000:] + run.process.stderr[-3000:]
    assert run.record["status"] == "complete", run.record["scope"]
    return run.reports, run.record


@pytest.fixture(scope="module")
def default(whole_plan):
    return board_run(whole_plan, "default")


@pytest.fixture(scope="module")
def audit_faults(whole_plan):
    return board_run(whole_plan, "audit_faults")


@pytest.fixture(scope="module")
def mixed(whole_plan):
    return board_run(whole_plan, "mixed")


def document(reports, kind, meter, record):
    return (reports / kind / f"{meter['serial']}-{record['run_id'][:8]}.html").read_text(encoding="utf-8")


def embedded(text):
    return json.loads(EMBEDDED.search(text).group(1))


def demand_points():
    """The demand register test's points on the default board's meters, in its table's order: on the
    certificate after the plan's points, whose list (the record's plan.points) they are not in."""
    return [p.id for p in board_points(load_demand_table(), SimulatedBench().meter_type())]


def rows(text):
    """{point id: the HTML of its result row} of a certificate."""
    return {m.group(1): m.group(0) for m in re.finditer(r'<tr><td class="num">([^<]+)</td>.*?</tr>', text, re.S)}


def test_a_default_run_publishes_signed_certificates_audit_reports_and_one_firmware_report(default, home):
    reports, record = default
    run8 = record["run_id"][:8]
    certificates, audits = sorted((reports / "certificates").glob("*.html")), sorted((reports / "audit").glob("*.html"))
    assert len(certificates) == len(audits) == len(record["meters"]) > 1
    firmware = reports / f"firmware-{run8}.html"
    for path in [*certificates, *audits, firmware]:
        text = path.read_text(encoding="utf-8")
        check = check_file(path, {home[1].fingerprint})
        assert check.status == "valid", check.message
        assert len(BADGE.findall(text)) == 1, path  # one overall verdict per document
        # shown, not only in <meta>
        assert home[1].public_key_b64 in text.split("</head>")[1] and home[1].fingerprint in text
        assert "bench verify FILE" in text
        # self-contained: nothing is fetched (namespace names in the SVG are identifiers, not links)
        assert re.findall(r'(?:src|href)="(?!#|data:)[^"]*"|url\((?!#)|@import', text) == []
        assert text.count("<table") == text.count("<thead>")  # every table repeats its header on each page
    assert BADGE.findall(firmware.read_text())[0] == "RELEASE ACCEPTED"
    assert all(BADGE.findall(p.read_text())[0] == "AUDIT PASSED" for p in audits)


def test_the_certificate_shows_every_plan_point_with_its_conditions_and_nothing_of_the_audit(default, home):
    reports, record = default
    meter = record["meters"][2]
    text = document(reports, "certificates", meter, record)
    assert BADGE.findall(text) == ["CERTIFIED"] and meter["certified"]
    assert not NOT_ACCURACY.search(text), NOT_ACCURACY.search(text)
    shown = rows(text)
    accuracy = {r["point"]: r for r in meter["results"] if r["family"] not in ("audit", "firmware")}
    # every point, in plan order, then the demand register's
    assert list(shown) == record["plan"]["points"] + demand_points() and set(accuracy) == set(shown)
    for point, result in accuracy.items():
        evidence = result["evidence"].get("measured", result["evidence"])
        if "conditions" not in evidence:  # the nameplate check: what the meter reported against the nameplate
            assert all(escape(result["cells"][cell]) in shown[point] for cell in ("Measured", "Limit"))
            continue
        conditions = evidence["conditions"]
        for expected in (result["cells"]["Measured"], result["cells"]["U (k=2)"], result["cells"]["Limit"],
                         f"{conditions['frequency_hz']:.3f} Hz", f"{conditions['voltages_v'][0]:.2f}",
                         f"THD {conditions['thd_voltage_pct']:.2f} %", f"{conditions['temperature_c']:.1f} °C"):
            assert escape(expected) in shown[point], (point, expected)
        assert 'class="PASS">PASS<' in shown[point]
    lab, cert = record["lab"], meter["certificate"]
    for expected in (lab["name"], lab["accreditation_body"], lab["accreditation_number"],
                     cert["number"], cert["issued"],
                     record["plan"]["standard"], record["plan"]["version"], record["plan"]["provenance"],
                     lab["traceability"], record["decision_rule"]["text"], meter["serial"], meter["mac"],
                     meter["firmware"], record["meter_type"]["model"], record["operator"],
                     record["approved_by"]["name"], record["approved_by"]["title"], record["run_id"],
                     "Tested by", "Approved by"):
        assert escape(expected) in text, expected
    for instrument in record["instruments"]:
        assert all(instrument["calibration"][k] in text for k in ("certificate", "date", "due")), instrument["role"]
    assert text.count("<figure><svg") == 2  # the error curve and the harmonic spectrum, whole figures
    # the machine-readable copy is this document's slice: the C12.20 results and verdict only
    slice_ = embedded(text)
    assert slice_["meter"]["verdicts"] == {"accuracy": "PASS"}
    assert set(accuracy) == {r["point"] for r in slice_["meter"]["results"]}
    assert slice_["bench"]["profile"].startswith("<") and "<" not in EMBEDDED.search(text).group(1)


def test_re_publishing_gives_the_same_bytes_and_an_edit_or_a_forgery_shows(default, home, tmp_path):
    """Re-published from the records database by ``bench report``: the stored record and the key give
    back exactly the bytes the run published."""
    reports, record = default
    subprocess.run([sys.executable, "-m", "bench.cli", "report", record["run_id"][:8], "--reports-dir", str(tmp_path),
                    "--records", f"sqlite:///{reports / 'records.sqlite'}"], check=True, capture_output=True, cwd=REPO,
                   env={**os.environ, "METER_BENCH_HOME": str(home[0])})
    published = sorted(p.relative_to(reports) for p in reports.rglob("*.html"))
    assert len(published) == 2 * len(record["meters"]) + 1
    assert published == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.html"))
    for path in published:
        assert (tmp_path / path).read_bytes() == (reports / path).read_bytes(), path
    original = next((reports / "certificates").glob("*.html"))
    text = original.read_text(encoding="utf-8")
    number = re.search(r"<td>([+-]\d\.\d{4}) %", text)
    edited = tmp_path / "edited.html"
    edited.write_text(text[:number.start(1)] + "+0.0000" + text[number.end(1):], encoding="utf-8")
    assert check_file(edited).status == "invalid"
    # a forger re-renders an edited record with a key of their own: valid in itself, not the lab's
    forged_record = json.loads(json.dumps(record))
    forged_record["meters"][0]["results"][3]["cells"]["Measured"] = "+0.0000 %"
    [forged, *_] = write_documents(forged_record, tmp_path / "forged", init_key(tmp_path / "forger.key"))
    assert check_file(forged).status == "valid" and check_file(forged, {home[1].fingerprint}).status == "invalid"
    # ...or with the lab's key and genuine signature pasted in from the real certificate
    signature = re.search(r'name="bench-signature" content="([^"]*)"', text).group(1)
    pasted_text = re.sub(r'(name="bench-public-key" content=")[^"]*', rf"\g<1>{home[1].public_key_b64}",
                         forged.read_text(encoding="utf-8"))
    pasted = tmp_path / "pasted.html"
    pasted.write_text(re.sub(r'(name="bench-signature" content=")[^"]*', rf"\g<1>{signature}", pasted_text),
                      encoding="utf-8")
    assert f'content="{home[1].public_key_b64}"' in pasted.read_text()
    assert f'content="{signature}"' in pasted.read_text()
    # bench verify, as a customer runs it: no records database anywhere, the lab's key trusted
    empty = tmp_path / "customer"
    empty.mkdir()
    verify = subprocess.run([sys.executable, "-m", "bench.cli", "verify", "--trust", home[1].fingerprint, str(original),
                             str(forged), str(pasted), str(edited)], capture_output=True, text=True, cwd=empty,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    lines = verify.stdout.splitlines()
    assert verify.returncode == 1 and list(empty.iterdir()) == [], verify.stderr
    assert lines[0] == f"{original}: signature valid (key {home[1].fingerprint})"
    assert all(line.startswith(f"{path}: INVALID") for line, path in zip(lines[1:], (forged, pasted, edited)))
    with pytest.raises(ValueError, match="only a complete run"):
        write_documents({**record, "status": "partial"}, tmp_path / "partial", home[1])


def test_a_meter_that_failed_the_audit_keeps_an_accuracy_certificate_with_only_its_accuracy_verdict(audit_faults):
    reports, record = audit_faults
    failed = [m for m in record["meters"] if m["verdicts"]["audit"] == "FAIL"]
    assert any(m["certified"] for m in failed)  # the case that used to print CERTIFIED above a failed audit row
    for meter in failed:
        certificate, audit = document(reports, "certificates", meter, record), document(reports, "audit", meter, record)
        assert BADGE.findall(certificate) == ["CERTIFIED" if meter["certified"] else "NOT CERTIFIED"]
        assert not NOT_ACCURACY.search(certificate) and "AUDIT" not in certificate
        assert BADGE.findall(audit) == ["AUDIT FAILED"] and "CERTIFIED" not in audit
        steps = [r["point"] for r in meter["results"] if r["family"] == "audit" and r["verdict"] != "PASS"]
        assert steps and all(f"{step} (" in audit.split('class="verdict bad">')[1].split("</div>")[0] for step in steps)


def test_a_failed_c12_20_point_is_named_and_never_certified(mixed):
    reports, record = mixed
    by_serial = {m["serial"]: m for m in record["meters"]}
    voltage = by_serial["SIM16M00007"]  # voltage coefficient: fails V90 and V110 of the C12.20 plan only
    text = document(reports, "certificates", voltage, record)
    assert BADGE.findall(text) == ["NOT CERTIFIED"] and text.count("CERTIFIED") == text.count("NOT CERTIFIED")
    why = text.split('class="verdict bad">')[1].split("</div>")[0]
    assert "V90 (FAIL)" in why and "V110 (FAIL)" in why and "LL-PF1" not in why
    assert 'class="FAIL">FAIL<' in rows(text)["V90"]
    tail = by_serial["SIM16M00009"]  # light-load tail: fails LL-PF* on the certificate and PAYLOAD in the audit
    certificate, audit = document(reports, "certificates", tail, record), document(reports, "audit", tail, record)
    assert BADGE.findall(certificate) == ["NOT CERTIFIED"]
    assert "LL-PF1 (FAIL)" in certificate and "PAYLOAD" not in certificate
    assert BADGE.findall(audit) == ["AUDIT FAILED"] and "PAYLOAD (FAIL)" in audit


def test_the_firmware_report_names_a_regression_against_the_baseline(default, home, tmp_path):
    _, record = default
    regressed = {**record, "baseline": {"reference": "AMI-Release-v4.1", "run_id": "0" * 36, "started_at": "2026-01-01",
                                        "points_compared": 296, "points_run": 296,
                                        "min_overlap": 0.8, "margin_pct": 0.05,
                                        "regressions": [{"serial": "SIM16A00003", "point": "FW-INTERVALS",
                                                         "why": "newly FAIL (was PASS in run 00000000)"}]}}
    [report] = [p for p in write_documents(regressed, tmp_path, home[1]) if p.name.startswith("firmware-")]
    text = report.read_text(encoding="utf-8")
    assert BADGE.findall(text) == ["REGRESSION"] and "SIM16A00003 FW-INTERVALS: newly FAIL" in text
    assert embedded(text)["baseline"] == regressed["baseline"]
    certificate = next((tmp_path / "certificates").glob("*.html")).read_text(encoding="utf-8")
    assert "baseline" not in embedded(certificate)  # the comparison is the firmware report's, not the certificate's
    failed = json.loads(json.dumps(regressed))
    meter = failed["meters"][4]
    check = next(r for r in meter["results"] if r["family"] == "firmware")
    check["verdict"] = "ERROR"  # a firmware check the bench could not decide
    [report] = [p for p in write_documents(failed, tmp_path / "failed", home[1]) if p.name.startswith("firmware-")]
    text = report.read_text(encoding="utf-8")
    why = text.split('class="verdict bad">')[1].split("</div>")[0]
    assert BADGE.findall(text) == ["FAIL"] and f"{meter['serial']} {check['point']} (ERROR)" in why
    thin = {**record, "baseline": {**regressed["baseline"], "points_compared": 100, "regressions": []}}
    [report] = [p for p in write_documents(thin, tmp_path / "thin", home[1]) if p.name.startswith("firmware-")]
    text = report.read_text(encoding="utf-8")  # too little compared: no verdict of acceptance
    assert BADGE.findall(text) == ["NOT COMPARED"]
    assert "only 100 of 296 points had a baseline value (at least 80% needed)" in text


LAB_TEMPLATE = """{% extends "base.html.j2" %}
{% block content %}<p id="lab-layout">Our layout: {{ meter.serial }}, {{ rows|length }} points,
{{ record.meter_type.model }}</p>{% endblock %}
"""


def test_the_labs_certificate_template_is_used_and_a_broken_one_is_one_line_naming_it(default, home, tmp_path):
    _, record = default
    template = tmp_path / "our-certificate.html.j2"
    template.write_text(LAB_TEMPLATE)
    check_template(template)
    written = write_documents(record, tmp_path / "out", home[1], template)
    meter = record["meters"][0]
    text = document(tmp_path / "out", "certificates", meter, record)
    assert f"Our layout: {meter['serial']}, {len(record['plan']['points']) + len(demand_points())} points," in text
    assert check_file(written[0], {home[1].fingerprint}).status == "valid" and BADGE.findall(text) == ["CERTIFIED"]
    assert "Our layout" not in document(tmp_path / "out", "audit", meter, record)  # the override is the certificate's
    broken = {"missing.html.j2": None, "syntax.html.j2": "{% extends 'base.html.j2' %}\n{% block content %}{% if %}",
              "undefined.html.j2": "{% extends 'base.html.j2' %}{% block content %}{{ meter.seriall }}{% endblock %}",
              "binary.html.j2": "\udcff", "unsigned.html.j2": "<html><body>{{ meter.serial }}</body></html>"}
    for name, source in broken.items():
        path = tmp_path / name
        if source is not None:
            path.write_bytes(source.encode("utf-8", "surrogateescape"))
        with pytest.raises(ConfigError) as error:
            write_documents(record, tmp_path / name, home[1], path)
        message = str(error.value)
        assert message.startswith(str(path)) and "\n" not in message, message
    assert "line 2" in str(pytest.raises(ConfigError, check_template, tmp_path / "syntax.html.j2").value)


def print_pdf(chromium, html, size, shift_mm, tmp_path):
    """Chromium's print to PDF of a copy of the document with the paper size set (as a print dialog
    would) and the body pushed down by ``shift_mm`` (as a lab's longer heading texts would)."""
    copy = tmp_path / f"{html.stem}-{size}.html"
    css = f"@page {{ size: {size} }} body {{ padding-top: {shift_mm}mm }}"
    copy.write_text(html.read_text(encoding="utf-8").replace("</style>", f"{css}</style>", 1), encoding="utf-8")
    pdf = copy.with_suffix(".pdf")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--no-pdf-header-footer"]
    subprocess.run([chromium, *flags, f"--print-to-pdf={pdf}", copy.as_uri()],
                   capture_output=True, timeout=120, check=True)
    return pdf


@pytest.mark.parametrize("shift_mm", [0, 60])
@pytest.mark.parametrize("size, points", [("letter", (612, 792)), ("A4", (595, 842))])
def test_the_certificate_prints_on_few_numbered_pages_with_headers_and_a_real_last_page(default, tmp_path, size, points,
                                                                                       shift_mm):
    """Few pages on Letter and on A4: the lab, meter, method and instrument tables and the two plots
    take about a page, the result rows (the plan's points and the demand register's) about
    ROWS_PER_PAGE a page at 8 pt, and the closing block (which keeps the last row with it) may need a
    page of its own after a full one; a 60 mm shift (where the signatures once fell alone onto a
    page of their own) may add one page, but no more. With 26 C12.20 rows that was 3 pages unshifted (the
    hand-written certificate took 7). Wherever the page ends fall, the last result row and the
    signature block stay together, and every page with result rows repeats the table's header."""
    chromium, pdfinfo = require_tool("chromium"), require_tool("pdfinfo")
    pdftotext, pdftoppm = require_tool("pdftotext"), require_tool("pdftoppm")
    reports, record = default
    meter = record["meters"][0]
    html = reports / "certificates" / f"{meter['serial']}-{record['run_id'][:8]}.html"
    pdf = print_pdf(chromium, html, size, shift_mm, tmp_path)
    info = subprocess.run([pdfinfo, pdf], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))
    width, height = map(float, re.search(r"^Page size:\s+([\d.]+) x ([\d.]+)", info, re.M).groups())
    shown = record["plan"]["points"] + demand_points()  # the certificate's rows, in its order
    most = 2 + math.ceil(len(shown) / ROWS_PER_PAGE) + (1 if shift_mm else 0)
    assert 1 < pages <= most and abs(width - points[0]) < 2 and abs(height - points[1]) < 2
    text = subprocess.run([pdftotext, "-layout", pdf, "-"], capture_output=True, text=True, check=True).stdout
    texts = text.split("\f")[:pages]
    number = meter["certificate"]["number"]
    names = {r["point"]: r["name"] for r in meter["results"]}
    row_starts = [re.compile(rf"^\s*{re.escape(point)}\s+{re.escape(names[point][:10])}", re.M) for point in shown]
    for page, content in enumerate(texts, start=1):
        assert f"Certificate {number} — page {page} of {pages}" in content, page
        if any(row.search(content) for row in row_starts):
            assert RESULTS_HEADER.search(content), page
    last = texts[-1]
    assert row_starts[-1].search(last) and "Tested by" in last and "Approved by" in last and "bench verify" in last
    assert "Approved by" not in texts[-2]  # the closing block is whole
    subprocess.run([pdftoppm, "-r", "60", "-png", pdf, tmp_path / size], check=True)
    for png in sorted(tmp_path.glob(f"{size}-*.png")):
        pixels = image.imread(png)[..., :3]
        inked = float(np.mean(pixels.min(axis=2) < 0.9))  # share of the page that is not near-white
        assert inked > 0.03, f"{png.name}: only {inked:.3f} of the page is inked"  # a footer alone is ~0.001
