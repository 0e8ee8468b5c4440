"""The pytest-html session report (``--html``): a per-meter summary first, then the bench's
traceability, then every item with the bench's columns, laid out to print on Letter paper.

The hooks are pytest-html 4's documented ones (its user guide, "Enhancing reports"). The
Environment table comes from pytest-metadata and says nothing about the meters, so it is left
empty; the Duration column is dropped because a simulated bench takes ~0 s per item.
"""
from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytest

from bench.procedures.results import COLUMNS
from bench.pytest_plugin.items import RESULT_KEY
from bench.pytest_plugin.session import SESSION_KEY
from bench.pytest_plugin.summary import traceability
from bench.records.plots import result_svg
from bench.records.record import document_of, meter_verdict
from bench.station.profile import Position

REPORT_COLUMNS = (*COLUMNS, "Baseline", "Change")
DOCUMENTS = {"accuracy": "Accuracy (C12.20)", "audit": "Commissioning audit", "firmware": "Firmware"}

# Chromium prints at 96 CSS px per inch: portrait Letter less its default margins is about 740 px,
# narrower than pytest-html's body min-width of 800 px, which is what cut the columns off. In
# print the table gets fixed column widths (shared out by how much each column holds), 8 px text
# that wraps anywhere, and loses what paper cannot use: the controls, the log expander, the plots
# and the links to each item's JSON.
STYLE = """
#environment-header, #environment { display: none; }
#meter-summary { border-collapse: collapse; margin: 6px 0 12px; color: black; }
#meter-summary caption { text-align: left; font-weight: bold; padding-bottom: 4px; }
#meter-summary th, #meter-summary td { border: 1px solid #ccc; padding: 3px 6px; text-align: left;
  vertical-align: top; }
#meter-summary .points { display: block; font-size: 90%; color: #333; }
#meter-summary .PASS { color: green; }
#meter-summary .FAIL { color: red; }
#meter-summary .ERROR, #meter-summary .INDETERMINATE { color: darkorange; }
@media print {
  body { min-width: 0; margin: 0; }
  .controls, p.filter, .summary__reload, .summary__spacer, .logexpander, div.media, .col-links { display: none; }
  .additional-summary p { margin: 2px 0; }
  #results-table { table-layout: fixed; font-size: 8px; color: black; }
  #results-table th, #results-table td { padding: 1px 2px; }
  #results-table td { overflow-wrap: anywhere; }
  #results-table thead { display: table-header-group; }
  #results-table tbody { break-inside: avoid; }
  .sortable.asc:after, .sortable.desc:after { display: none; }
  .logwrapper { max-height: none; overflow: visible; background: none; }
  .logwrapper .log { top: 0; height: auto; min-height: 0; padding: 1px 2px; border: none; }
  #results-table th[data-column-type="result"] { width: 4%; }
  #results-table th[data-column-type="testId"] { width: 21%; }
  th.col-point { width: 9.5%; } th.col-stimulus { width: 12%; } th.col-measured { width: 11%; }
  th.col-u-k-2 { width: 5.5%; } th.col-register { width: 6%; } th.col-limit { width: 10.5%; }
  th.col-verdict { width: 4.5%; } th.col-diagnosis { width: 6%; } th.col-baseline { width: 5.5%; }
  th.col-change { width: 4.5%; }
}
"""


def slug(name: str) -> str:
    """A bench column's CSS class suffix, as the print widths name it: "U (k=2)" -> "u-k-2"."""
    return "-".join(re.findall(r"[a-z0-9]+", name.lower()))


@dataclass(frozen=True)
class DocumentCell:
    """One document's verdict for one meter and the points that kept it from PASS, in run order."""

    verdict: str
    not_passed: tuple[tuple[str, str], ...]  # (point id, verdict)


def meter_rows(positions: Iterable[Position], reported: dict[tuple[str, int], tuple[str, Any]]
               ) -> list[tuple[Position, dict[str, DocumentCell]]]:
    """Each position's verdict per document, from the items' results (``Tally.reported``)."""
    rows = []
    for pos in positions:
        cells = {}
        for document in DOCUMENTS:
            found = [(point, result.verdict.value) for (point, number), (family, result) in reported.items()
                     if number == pos.number and document_of(family) == document]
            cells[document] = DocumentCell(meter_verdict({v for _, v in found}),
                                           tuple((p, v) for p, v in found if v != "PASS"))
        rows.append((pos, cells))
    return rows


def summary_table(rows: list[tuple[Position, dict[str, DocumentCell]]]) -> str:
    """The per-meter table that opens the report; a point that did not pass is named by its id
    (with its verdict when that is not FAIL)."""
    head = "".join(f"<th>{html.escape(name)}</th>" for name in ("Position", "Serial", *DOCUMENTS.values()))
    body = []
    for pos, cells in rows:
        tds = [f"<td>{pos.number}</td>", f"<td>{html.escape(pos.serial)}</td>"]
        for document, cell in cells.items():
            points = ", ".join(p if v == "FAIL" else f"{p} ({v})" for p, v in cell.not_passed)
            tds.append(f'<td data-document="{document}"><b class="{cell.verdict}">{cell.verdict}</b>'
                       + (f'<span class="points">{html.escape(points)}</span>' if points else "") + "</td>")
        body.append(f"<tr>{''.join(tds)}</tr>")
    return (f'<table id="meter-summary"><caption>Meters: each document\'s verdict; the points that did not pass'
            f'</caption><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Empty the Environment table's data (pytest-metadata fills it in its own, earlier configure)."""
    metadata = config.pluginmanager.get_plugin("metadata")  # pytest-metadata's plugin module
    if config.getoption("htmlpath", None) and metadata is not None:
        config.stash.get(metadata.metadata_key, {}).clear()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Each measured item carries its result as JSON (the evidence its record entry holds: converted
    once) and, where it has an uncertainty, a plot."""
    report = yield
    concluded = item.stash.get(RESULT_KEY, None)
    if concluded is None or report.when != "call" or not item.config.getoption("htmlpath", None):
        return report  # pytest-html loaded but writing no report (no --html): no extras to build
    from pytest_html import extras

    result, stored = concluded
    plot = result_svg(result)
    report.extras = [*getattr(report, "extras", []), extras.json(stored["evidence"], name="measurement")]
    if plot:
        report.extras.append(extras.svg(base64.b64encode(plot.encode()).decode(), name="plot"))
    return report


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_header(cells: list[str]) -> None:
    cells[:] = [cell.replace("<th>Links", '<th class="col-links">Links') for cell in cells
                if 'data-column-type="duration"' not in cell]
    for offset, name in enumerate(REPORT_COLUMNS):
        cells.insert(2 + offset, f'<th class="col-{slug(name)}">{html.escape(name)}</th>')


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_row(report: pytest.TestReport, cells: list[str]) -> None:
    if not cells:  # another plugin dropped this row
        return
    cells[:] = [cell for cell in cells if 'class="col-duration"' not in cell]
    values = dict(p for p in report.user_properties if p[0] in REPORT_COLUMNS)
    for offset, name in enumerate(REPORT_COLUMNS):
        cells.insert(2 + offset, f"<td>{html.escape(str(values.get(name, '')))}</td>")


@pytest.hookimpl(optionalhook=True)
def pytest_html_report_title(report: Any) -> None:
    report.title = "Meter certification report"


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_summary(prefix: list[str], summary: list[str], postfix: list[str],
                                session: pytest.Session) -> None:
    prefix.insert(0, f"<style>{STYLE}</style>")
    run = session.config.stash[SESSION_KEY].run
    if run is not None:
        prefix.append(summary_table(meter_rows(run.profile.positions, run.tally.reported)))
        prefix.extend(f"<p>{html.escape(line)}</p>" for line in traceability(run))
