"""Per-meter certificates: made from the record, opened in a real browser, verified, and any
edit detected; the session report, JSON record and JUnit XML beside them."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from matplotlib import image

from bench import store
from bench.certificate import render, verify
from bench.record import fingerprint
from tests.conftest import REPO, plan_command, require_tool


@pytest.fixture(scope="module")
def certified(tmp_path_factory):
    """The whole plan on the default board: 8 certified meters, their certificates and records."""
    reports = tmp_path_factory.mktemp("reports")
    run = subprocess.run(plan_command(reports, "test_plans/", "-q", f"--junitxml={reports / 'junit.xml'}",
                                      f"--html={reports / 'session.html'}", "--self-contained-html"),
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:]
    return reports


def engine_for(reports):
    return store.connect(f"sqlite:///{reports / 'records.sqlite'}")


def test_every_meter_gets_a_certified_certificate_and_the_reports_are_all_there(certified):
    certificates = sorted((certified / "certificates").glob("*.html"))
    assert len(certificates) == 8 and (certified / "junit.xml").stat().st_size and (certified / "session.html").stat().st_size
    [record_file] = certified.glob("run-*.json")
    record = json.loads(record_file.read_text())
    assert all(m["certified"] for m in record["meters"])
    text = certificates[0].read_text()
    assert "CERTIFIED</span>" in text and text.count("<svg") == 2  # the error curve and the harmonic spectrum
    # self-contained: nothing is fetched (namespace names in the SVG are identifiers, not links)
    assert re.findall(r'(?:src|href)="(?!#|data:)[^"]*"|url\((?!#)|@import', text) == []


def test_certificates_verify_and_re_publishing_gives_the_same_bytes(certified, tmp_path):
    engine = engine_for(certified)
    for path in (certified / "certificates").glob("*.html"):
        genuine, message = verify(path, engine)
        assert genuine, message
    [record_file] = certified.glob("run-*.json")
    run_id = json.loads(record_file.read_text())["run_id"]
    subprocess.run([sys.executable, "-m", "bench.cli", "report", run_id[:8], "--out", str(tmp_path),
                    "--records", f"sqlite:///{certified / 'records.sqlite'}"], check=True, capture_output=True, cwd=REPO)
    for path in (certified / "certificates").glob("*.html"):
        assert (tmp_path / "certificates" / path.name).read_bytes() == path.read_bytes()


def test_an_edited_certificate_fails_verify(certified, tmp_path):
    original = next((certified / "certificates").glob("*.html"))
    text = original.read_text()
    number = re.search(r"<td>([+-]\d\.\d{4}) %</td>", text)
    edited = text[:number.start(1)] + "+0.0000" + text[number.end(1):]
    tampered = tmp_path / original.name
    tampered.write_text(edited)
    genuine, message = verify(tampered)
    assert not genuine and "TAMPERED: the certificate's content differs" in message
    run = subprocess.run([sys.executable, "-m", "bench.cli", "verify", str(tampered)], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 1 and "TAMPERED" in run.stdout


def test_a_forged_certificate_with_a_consistent_hash_fails_against_the_records(certified, tmp_path):
    """Someone with the code changes a result and re-renders: the hash and the HTML agree with
    each other, but not with the run stored in the records database."""
    original = next((certified / "certificates").glob("*.html"))
    slice_ = json.loads(re.search(r'id="record">(.*?)</script>', original.read_text(), re.S).group(1))
    slice_["meter"]["results"][0]["cells"]["Measured"] = "0 pulses in 1 s"
    forged = tmp_path / original.name
    forged.write_text(render(slice_))
    assert verify(forged)[0]  # consistent in itself...
    genuine, message = verify(forged, engine_for(certified))
    assert not genuine and "does not match run" in message  # ...but not what was measured
    assert fingerprint(slice_) in forged.read_text()


def test_a_certificate_in_a_real_browser_shows_the_meter(certified, tmp_path):
    chromium = require_tool("chromium")
    certificate = next((certified / "certificates").glob("*.html"))
    serial = certificate.name.split("-")[0]
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", certificate.as_uri()], capture_output=True, text=True, timeout=60)
    assert f"Meter accuracy certificate: {serial}" in dom.stdout and "<svg" in dom.stdout
    screenshot = tmp_path / "certificate.png"
    subprocess.run([chromium, *flags, "--window-size=900,1300", f"--screenshot={screenshot}", certificate.as_uri()],
                   capture_output=True, timeout=60, check=True)
    pixels = image.imread(screenshot)[..., :3]
    inked = float(np.mean(pixels.min(axis=2) < 0.9))  # share of pixels that are not near-white
    assert 0.02 < inked < 0.6, f"{inked:.3f} of the page is inked"
    pdf = tmp_path / "certificate.pdf"
    subprocess.run([chromium, *flags, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", certificate.as_uri()],
                   capture_output=True, timeout=60, check=True)
    data = pdf.read_bytes()
    boxes = re.findall(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", data)
    letter, a4 = (612, 792), (595.92, 842.88)
    assert data.startswith(b"%PDF") and 1 <= len(boxes) <= 12  # a few pages, not a runaway layout
    assert all(min(abs(float(w) - p[0]) + abs(float(h) - p[1]) for p in (letter, a4)) < 2 for w, h in boxes)
