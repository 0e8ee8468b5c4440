"""The pytest-html session report: it opens with each meter's verdicts as the run's record has
them, has no Environment table and no Duration column, and prints on Letter paper with every
column on the page."""
import base64
import json
import math
import re
import subprocess
from html import unescape
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest

from bench.pytest_plugin.report import meter_rows, summary_table
from tests.helpers import families_without_points, require_tool

DOCUMENTS = ("accuracy", "audit", "firmware")
HEADERS = ("Result", "Test", "Point", "Stimulus", "Measured", "U (k=2)", "Register", "Limit", "Verdict",
           "Diagnosis", "Baseline", "Change")
ROWS_PER_PAGE = 24


class Tables(HTMLParser):
    """Every table of a page by id: its rows, each a list of (attributes, text) cells, the text of
    a cell's parts joined by single spaces."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tables: dict[str | None, list[list[tuple[dict, str]]]] = {}
        self.open: list[str | None] = []
        self.cell: tuple[dict, list[str]] | None = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.open.append(dict(attrs).get("id"))
            self.tables.setdefault(self.open[-1], [])
        elif tag == "tr" and self.open:
            self.tables[self.open[-1]].append([])
        elif tag in ("td", "th") and self.open:
            self.cell = (dict(attrs), [])

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[1].append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.tables[self.open[-1]][-1].append((self.cell[0], " ".join(" ".join(self.cell[1]).split())))
            self.cell = None
        elif tag == "table" and self.open:
            self.open.pop()


def chromium_flags(profile):
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}"]


@pytest.fixture(scope="module")
def report(whole_plan):
    """The whole plan on the mixed board (meters that fail accuracy points, one that also fails
    its audit and firmware checks), with its pytest-html report and its run record."""
    run = whole_plan("mixed")
    assert run.process.returncode == 1 and " failed, " in run.process.stdout, run.process.stdout[-3000:]
    return SimpleNamespace(html=run.html_path, text=run.html, record=run.record)


@pytest.fixture(scope="module")
def rendered(report, tmp_path_factory):
    """The page after its script built the results table, as a browser has it."""
    chromium = require_tool("chromium")
    dom = subprocess.run([chromium, *chromium_flags(tmp_path_factory.mktemp("profile")), "--dump-dom",
                          report.html.as_uri()], capture_output=True, text=True, timeout=120)
    assert 'id="results-table"' in dom.stdout, dom.stderr[-2000:]
    return dom.stdout


@pytest.fixture(scope="module")
def printed(report, tmp_path_factory):
    """The report as Chromium prints it to PDF (Letter, its default paper), without header and footer."""
    require_tool("pdfinfo"), require_tool("pdftotext")
    chromium = require_tool("chromium")
    pdf = tmp_path_factory.mktemp("print") / "session.pdf"
    subprocess.run([chromium, *chromium_flags(tmp_path_factory.mktemp("profile")), "--no-pdf-header-footer",
                    f"--print-to-pdf={pdf}", report.html.as_uri()], capture_output=True, timeout=120, check=True)
    return pdf


def expected_summary(record):
    """Each meter's row, worked out from its results in the record: a document's verdict is its
    worst point's (FAIL, then ERROR, then INDETERMINATE), and its points that did not pass."""
    rows = []
    for meter in sorted(record["meters"], key=lambda m: m["position"]):
        row = [str(meter["position"]), meter["serial"]]
        for document in DOCUMENTS:
            results = [r for r in meter["results"] if (r["family"] if r["family"] in ("audit", "firmware")
                                                        else "accuracy") == document]
            verdicts = {r["verdict"] for r in results}
            worst = next((v for v in ("FAIL", "ERROR", "INDETERMINATE", "PASS") if v in verdicts), "NO RESULTS")
            row.append((worst, {r["point"] if r["verdict"] == "FAIL" else f"{r['point']} ({r['verdict']})"
                                for r in results if r["verdict"] != "PASS"}))
        rows.append(row)
    return rows


def summary_rows(table):
    """The summary's body rows as [position, serial, (verdict, {points}) per document]."""
    rows = []
    for cells in table[1:]:
        row = [text for _, text in cells[:2]]
        for _, text in cells[2:]:
            verdict = next(v for v in ("NO RESULTS", "PASS", "FAIL", "ERROR", "INDETERMINATE") if text.startswith(v))
            points = text[len(verdict):].strip()
            row.append((verdict, set(points.split(", ")) if points else set()))
        rows.append(row)
    return rows


def pages_text(pdf, first=None, last=None, layout=False):
    pages = ["-f", str(first), "-l", str(last)] if first else []
    return subprocess.run(["pdftotext", *pages, *(["-layout"] if layout else []), str(pdf), "-"],
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.slow
def test_the_report_opens_with_every_meter_and_its_documents_verdicts_as_recorded(report):
    prefix = report.text[report.text.index('class="additional-summary prefix"'):]
    first_element = re.search(r"<(table|p|div)\b[^>]*>", prefix[prefix.index("</style>"):])
    assert first_element.group(0) == '<table id="meter-summary">'  # before the traceability lines and the results
    table = Tables(report.text).tables["meter-summary"]
    assert [text for _, text in table[0]] == ["Position", "Serial", "Accuracy (C12.20)", "Commissioning audit",
                                              "Firmware"]
    assert [attrs.get("data-document") for attrs, _ in table[1][2:]] == list(DOCUMENTS)
    expected = expected_summary(report.record)
    assert summary_rows(table) == expected
    # the mixed board fails each document somewhere, so the failed points are really listed
    assert all(any(row[2 + i][0] == "FAIL" and row[2 + i][1] for row in expected) for i in range(len(DOCUMENTS)))
    # the record's own per-document verdicts agree with its results
    meters = sorted(report.record["meters"], key=lambda m: m["position"])
    assert [[m["verdicts"][d] for d in DOCUMENTS] for m in meters] == [[verdict for verdict, _ in row[2:]]
                                                                      for row in expected]


def test_a_document_without_results_says_so_and_a_point_not_failed_says_its_verdict():
    def result(verdict):
        return SimpleNamespace(verdict=SimpleNamespace(value=verdict))

    reported = {("LL-PF1", 1): ("load_performance", result("PASS")), ("H5", 1): ("harmonics", result("INDETERMINATE")),
                ("V90", 1): ("voltage", result("FAIL")), ("PAYLOAD", 2): ("audit", result("ERROR")),
                ("FW-VERSION", 2): ("firmware", result("PASS"))}
    positions = [SimpleNamespace(number=1, serial="SIM-A"), SimpleNamespace(number=2, serial="SIM-B")]
    table = Tables(summary_table(meter_rows(positions, reported))).tables["meter-summary"]
    assert [[text for _, text in cells] for cells in table[1:]] == [
        ["1", "SIM-A", "FAIL H5 (INDETERMINATE), V90", "NO RESULTS", "NO RESULTS"],
        ["2", "SIM-B", "NO RESULTS", "ERROR PAYLOAD (ERROR)", "PASS"],
    ]


@pytest.mark.slow
def test_no_environment_table_and_no_duration_column(report, rendered):
    data = json.loads(unescape(re.search(r'data-jsonblob="([^"]*)"', report.text).group(1)))
    assert data["environment"] == {}
    tests = [test for tests in data["tests"].values() for test in tests]
    rows = [test["resultsTableRow"] for test in tests]
    # a row per item: each result of the record, and each item that skipped and so has none (a module
    # of the accuracy plan whose family the table has no points of for this meter, one per meter)
    skipped = [test["testId"] for test in tests if test["result"] == "Skipped"]
    empty = families_without_points({r["family"] for m in report.record["meters"] for r in m["results"]})
    assert empty and len(skipped) == len(empty) * len(report.record["meters"])
    assert all("[not-applicable-pos" in t for t in skipped)
    assert len(rows) == sum(len(m["results"]) for m in report.record["meters"]) + len(skipped)
    assert not any("col-duration" in cell for row in rows for cell in row)

    tables = Tables(rendered).tables
    assert tables["environment"] == []
    header = [text for _, text in tables["results-table"][0]]
    assert header == [*HEADERS, "Links"]
    assert "col-duration" not in rendered and "Duration" not in header


@pytest.mark.slow
def test_it_prints_on_letter_with_every_column_and_every_item(report, printed):
    """Bound: the summary and the traceability lines share the first page with the first rows, and
    an item prints in at most four lines of 8 px text (most in three; a failed one adds a line for
    its message), so a Letter page, about 980 px high inside its margins, holds at least
    ROWS_PER_PAGE items. Before this report was laid out for print, the same run's 407 items took
    34 pages with the last columns cut off; now they take 17."""
    items = sum(len(m["results"]) for m in report.record["meters"])
    info = subprocess.run(["pdfinfo", str(printed)], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))
    assert re.search(r"^Page size:\s+612 x 792 pts", info, re.M)
    assert 2 <= pages <= 1 + math.ceil(items / ROWS_PER_PAGE), f"{pages} pages for {items} items"

    text = pages_text(printed, layout=True)
    assert len(re.findall(r"^\s*(?:Passed|Failed)\b", text, re.M)) == items  # every item's row, no control text
    assert not {"Environment", "Platform", "Duration"} & set(text.split())

    first = next(n for n in range(1, pages + 1)
                 if re.search(r"^\s*Result\s+Test\b", pages_text(printed, n, n, True), re.M))
    lines = pages_text(printed, first, first, layout=True).splitlines()
    at = next(i for i, line in enumerate(lines) if re.match(r"\s*Result\s+Test\b", line))
    header = " ".join(lines[max(at - 1, 0):at + 2])  # a header that wraps ("U (k=2)") spans the lines around it
    # every header on its line, left to right; the rest of a wrapped one ("(k=2)") may be on the next
    words = [name.split() for name in HEADERS]
    in_order = r"\s+".join(re.escape(first) + "".join(rf"(?:\s+{re.escape(w)})?" for w in rest)
                           for first, *rest in words)
    assert re.search(in_order, lines[at]), lines[at]
    assert "(k=2)" in header and "Links" not in header  # a link to an item's JSON is no use on paper
    summary = pages_text(printed, 1, 1)
    assert summary.index("Meters: each document") < summary.index(f"run {report.record['run_id']}")


@pytest.mark.slow
def test_each_items_measurement_json_is_the_evidence_its_record_entry_holds(report):
    """The report's "measurement" extra is made from the entry the item was stored with: the same
    evidence, item for item, as the signed record (JSON round trip: the record's own form)."""
    data = json.loads(unescape(re.search(r'data-jsonblob="([^"]*)"', report.text).group(1)))
    shown = sorted(json.dumps(json.loads(base64.b64decode(extra["content"].partition("base64,")[2])), sort_keys=True)
                   for tests in data["tests"].values() for test in tests
                   for extra in test.get("extras", []) if extra.get("name") == "measurement")
    recorded = sorted(json.dumps(r["evidence"], sort_keys=True) for m in report.record["meters"] for r in m["results"])
    assert shown and shown == recorded
