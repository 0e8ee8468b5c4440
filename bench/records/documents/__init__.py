"""The documents a complete run publishes, each signed and each with one verdict of its own:

- per meter, the accuracy certificate (the C12.20 plan's results only), ``certificates/SERIAL-RUN8.html``;
- per meter with audit results, the commissioning audit report, ``audit/SERIAL-RUN8.html``;
- for the run, when it has firmware results, the firmware regression report, ``firmware-RUN8.html``.

Each embeds its slice of the record as JSON for machines and prints the lab's public key and its
fingerprint for people; the same record and key always give the same bytes.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from markupsafe import Markup

from bench.datafiles import ConfigError
from bench.records.documents.content import (
    Verdict,
    accuracy_rows,
    accuracy_slice,
    accuracy_verdict,
    audit_slice,
    audit_verdict,
    firmware_slice,
    firmware_verdict,
    pulse_constants,
)
from bench.records.documents.render import (
    LAB_TEMPLATE,
    check_template,
    environment,
    render,
)
from bench.records.plots import error_curve_svgs, harmonic_spectrum_svg
from bench.records.signing import Signer, sign_html
from bench.records.store import canonical_json

__all__ = ["write_documents", "check_template"]


def write_documents(record: dict[str, Any], directory: Path, signer: Signer, template: Path | None = None,
                    canonical: Callable[[Any], str] = canonical_json) -> list[Path]:
    """Write and sign a complete run's documents under ``directory``; ``template`` is the lab's own
    certificate template (``[lab] template``), else ours. Everything is rendered before anything is
    written, so a broken template leaves no half-published run. Returns the files written."""
    if record["status"] != "complete":
        raise ValueError(f"run {record['run_id']} is {record['status']}: only a complete run publishes documents")
    env = environment(template)
    run8 = record["run_id"][:8]
    documents: dict[Path, str] = {}

    def render_to(path: Path, name: str, slice_: dict[str, Any], verdict: Verdict, title: str, footer: str,
                  **extra: Any) -> None:
        context = {"record": slice_, "lab": slice_["lab"], "verdict": verdict, "title": title, "footer": footer,
                   "key": {"public_key": signer.public_key_b64, "fingerprint": signer.fingerprint},
                   "record_json": Markup(canonical(slice_).replace("<", "\\u003c")), **extra}
        html = render(env, name, context, template)
        try:
            documents[path] = sign_html(html, signer)
        except ValueError as error:  # a lab's template without base.html.j2's signature slots
            if name != LAB_TEMPLATE:
                raise
            raise ConfigError(f"{template}: certificate template: {error}") from None

    accuracy_slices = {meter["serial"]: accuracy_slice(record, meter) for meter in record["meters"]}
    amperes = record["meter_type"]["test_amperes"]
    curves = dict(zip(accuracy_slices, error_curve_svgs([(a["meter"]["results"], amperes)
                                                         for a in accuracy_slices.values()])))
    for meter in record["meters"]:
        name = f"{_file_safe(meter['serial'])}-{run8}"
        accuracy = accuracy_slices[meter["serial"]]
        if accuracy["meter"]["results"]:
            number = meter["certificate"]["number"]
            results = accuracy["meter"]["results"]
            figures = [Markup(svg) for svg in (curves[meter["serial"]], harmonic_spectrum_svg(results)) if svg]
            render_to(directory / "certificates" / f"{name}.html", LAB_TEMPLATE if template else "certificate.html.j2",
                      accuracy, accuracy_verdict(accuracy), f"Meter accuracy certificate {number}",
                      f"Certificate {number}", meter=accuracy["meter"], rows=accuracy_rows(accuracy), figures=figures,
                      constants=pulse_constants(accuracy))
        audit = audit_slice(record, meter)
        if audit["meter"]["results"]:
            render_to(directory / "audit" / f"{name}.html", "audit.html.j2", audit, audit_verdict(audit),
                      f"Commissioning audit report: meter {meter['serial']}",
                      f"Audit report {meter['serial']}, run {run8}", meter=audit["meter"])
    firmware = firmware_slice(record)
    if firmware["meters"]:
        render_to(directory / f"firmware-{run8}.html", "firmware.html.j2", firmware, firmware_verdict(firmware),
                  f"Firmware regression report: run {run8}", f"Firmware report, run {run8}")
    for path, html in documents.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(html.encode("utf-8"))
    return list(documents)


def _file_safe(serial: str) -> str:
    """A serial as the meter reported it may hold anything; a file name must stay in its directory."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", serial).lstrip(".") or "_"
