"""Ed25519 signatures on published documents and run records: real keys in a temporary bench home,
real files, and the real ``bench keys`` / ``bench verify`` commands."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bench.records.signing import (
    KEY_TAG,
    SIGNATURE_TAG,
    Signer,
    SigningKeyError,
    check_file,
    default_key_path,
    init_key,
    sign_html,
    sign_record,
)
from bench.records.store import canonical_json
from tests.helpers import REPO


def bench(*args: object, home: Path, cwd: Path | None = None, umask: int | None = None) -> subprocess.CompletedProcess:
    """``python -m bench.cli ARGS`` with its own bench home (the lab key lives there)."""
    env = {**os.environ, "METER_BENCH_HOME": str(home), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "bench.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or REPO, env=env, timeout=60,
                          preexec_fn=None if umask is None else (lambda: os.umask(umask)))


def document(public_key_b64: str, body: str = "Meter SIM16A00001: error +0.12 % ± 0.05 %, 25 °C") -> str:
    """A small certificate-like page with the two tags the real templates carry."""
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n{KEY_TAG.format(public_key_b64)}\n"
            f"{SIGNATURE_TAG.format('')}\n<title>Certificate</title></head>\n<body><p>{body}</p></body></html>\n")


def raw_public_key(key_file: Path) -> bytes:
    """Straight from the PEM file, not through bench.signing."""
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "bench-home"
    monkeypatch.setenv("METER_BENCH_HOME", str(path))
    return path


@pytest.fixture
def lab(home: Path) -> Signer:
    return init_key(default_key_path())


@pytest.fixture
def signed(tmp_path: Path, lab: Signer) -> Path:
    path = tmp_path / "SIM16A00001-1a2b3c4d.html"
    path.write_bytes(sign_html(document(lab.public_key_b64), lab).encode("utf-8"))
    return path


@pytest.mark.slow
def test_keys_init_creates_a_private_key_whatever_the_umask(home: Path) -> None:
    run = bench("keys", "init", home=home, umask=0)
    key_file = home / "keys" / "lab-ed25519.key"
    assert run.returncode == 0, run.stderr
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "keys").stat().st_mode) == 0o700 and stat.S_IMODE(home.stat().st_mode) == 0o700
    assert key_file.read_text().startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    raw = raw_public_key(key_file)
    fingerprint = "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")
    assert str(key_file) in run.stdout and "mode 600" in run.stdout and fingerprint in run.stdout
    shown = bench("keys", "show", home=home)
    assert shown.returncode == 0 and fingerprint in shown.stdout and base64.b64encode(raw).decode() in shown.stdout


@pytest.mark.slow
def test_keys_init_never_overwrites_a_key(home: Path, lab: Signer) -> None:
    key_file = default_key_path()
    before = key_file.read_bytes()
    run = bench("keys", "init", home=home)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and f"{key_file} already exists" in run.stderr
    assert key_file.read_bytes() == before
    with pytest.raises(SigningKeyError, match="already exists"):
        init_key(key_file)


@pytest.mark.slow
def test_a_key_others_can_read_is_refused_in_one_line(home: Path, lab: Signer, signed: Path) -> None:
    key_file = default_key_path()
    key_file.chmod(0o644)
    message = f"{key_file} is readable by group or others (mode 644): chmod 600 {key_file}"
    with pytest.raises(SigningKeyError) as refused:
        Signer.load(key_file)
    assert str(refused.value) == message
    for args in (("keys", "show"), ("verify", signed)):
        run = bench(*args, home=home)
        assert (run.returncode, run.stdout, run.stderr) == (2, "", f"bench: {message}\n")


def test_unusable_keys_are_named_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match=r"^no key at .*nothing\.key \(create one with `bench keys init`\)$"):
        Signer.load(tmp_path / "nothing.key")
    not_a_key = tmp_path / "notes.key"
    not_a_key.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    not_a_key.chmod(0o600)
    with pytest.raises(SigningKeyError, match=r"notes\.key: not an Ed25519 private key"):
        Signer.load(not_a_key)


@pytest.mark.slow
def test_a_signed_document_verifies_and_its_signature_covers_the_text_with_it_empty(
        home: Path, lab: Signer, signed: Path) -> None:
    run = bench("verify", signed, home=home)
    assert (run.returncode, run.stdout) == (0, f"{signed}: signature valid (key {lab.fingerprint})\n")
    # Independently of bench.signing: the signature is over the UTF-8 bytes with content="".
    data = signed.read_bytes()
    start = data.index(b'<meta name="bench-signature" content="') + len(b'<meta name="bench-signature" content="')
    end = data.index(b'"', start)
    Ed25519PublicKey.from_public_bytes(raw_public_key(default_key_path())).verify(
        base64.b64decode(data[start:end]), data[:start] + data[end:])


@pytest.mark.slow
def test_any_edited_byte_makes_a_document_invalid(home: Path, lab: Signer, signed: Path, tmp_path: Path) -> None:
    original = signed.read_bytes()
    edited = tmp_path / "edited.html"
    for i in range(len(original)):
        edited.write_bytes(original[:i] + bytes([original[i] ^ 0x01]) + original[i + 1:])
        check = check_file(edited, {lab.fingerprint})
        assert check.status == "invalid", (i, original[max(0, i - 20):i + 20], check)
    edited.write_bytes(original.replace(b"+0.12 %", b"+0.02 %"))
    run = bench("verify", edited, home=home)
    assert run.returncode == 1 and run.stdout.startswith(f"{edited}: INVALID: the signature does not match")


def test_a_signature_spelled_another_way_is_invalid(lab: Signer, signed: Path) -> None:
    """Base64 of 64 bytes leaves 4 unused bits in its last character: a lenient decoder reads the
    changed character as the same signature, so the check must refuse it."""
    text = signed.read_text(encoding="utf-8")
    value = text.split('<meta name="bench-signature" content="')[1].split('"')[0]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    respelled = value[:85] + alphabet[alphabet.index(value[85]) | 1] + value[86:]
    assert respelled != value and base64.b64decode(respelled) == base64.b64decode(value)
    signed.write_text(text.replace(value, respelled), encoding="utf-8")
    check = check_file(signed, {lab.fingerprint})
    assert (check.status, check.message) == ("invalid", f"{signed}: INVALID: the signature is not valid base64")


@pytest.mark.slow
def test_a_document_re_signed_by_another_key(home: Path, lab: Signer, signed: Path, tmp_path: Path) -> None:
    forger = init_key(tmp_path / "forger" / "key")
    text = signed.read_text(encoding="utf-8").replace("+0.12 %", "+0.02 %")
    start = text.index(SIGNATURE_TAG.format("")[:-2])
    text = text[:start] + SIGNATURE_TAG.format("") + text[text.index(">", start) + 1:]
    forged = tmp_path / "forged.html"
    forged.write_text(sign_html(text.replace(lab.public_key_b64, forger.public_key_b64), forger), encoding="utf-8")

    by_lab_key = bench("verify", forged, home=home)
    assert by_lab_key.returncode == 1
    assert by_lab_key.stdout == (f"{forged}: INVALID: signed by key {forger.fingerprint}, not the lab's key "
                                 f"({lab.fingerprint}, {default_key_path()})\n")
    trusted = bench("verify", forged, "--trust", lab.fingerprint, home=home)
    assert trusted.returncode == 1
    assert f"signed by key {forger.fingerprint}, which is not a trusted key" in trusted.stdout
    no_lab_key = bench("verify", forged, home=tmp_path / "customer-home")
    assert no_lab_key.returncode == 0
    assert no_lab_key.stdout.startswith(f"{forged}: signature valid (key {forger.fingerprint})")
    assert "compare this fingerprint with the one the lab publishes" in no_lab_key.stdout
    assert check_file(forged).fingerprint == forger.fingerprint != lab.fingerprint


@pytest.mark.slow
def test_unsigned_files_exit_3(home: Path, lab: Signer, tmp_path: Path) -> None:
    old = tmp_path / "old-certificate.html"
    old.write_text('<html><head><meta name="record-sha256" content="00"></head><body>CERTIFIED</body></html>')
    plain = tmp_path / "run-old.json"
    plain.write_text(json.dumps({"run_id": "1a2b", "meters": []}))
    run = bench("verify", old, plain, home=home)
    assert (run.returncode, run.stdout) == (3, f"{old}: unsigned\n{plain}: unsigned\n")


@pytest.mark.slow
def test_several_files_one_line_each_any_invalid_exits_1(home: Path, lab: Signer, signed: Path,
                                                         tmp_path: Path) -> None:
    unsigned = tmp_path / "unsigned.html"
    unsigned.write_text("<html><body>no signature</body></html>")
    tampered = tmp_path / "tampered.html"
    tampered.write_text(signed.read_text(encoding="utf-8").replace("SIM16A00001", "SIM16A00002"), encoding="utf-8")
    empty = tmp_path / "empty-signature.html"
    empty.write_text(document(lab.public_key_b64))
    binary = tmp_path / "certificate.pdf"
    binary.write_bytes(b"%PDF-1.7\n\xff\xfe\x00binary")
    missing, directory = tmp_path / "missing.html", tmp_path
    run = bench("verify", signed, unsigned, tampered, empty, binary, missing, directory, home=home)
    assert run.returncode == 1 and run.stderr == ""
    assert run.stdout.splitlines() == [
        f"{signed}: signature valid (key {lab.fingerprint})",
        f"{unsigned}: unsigned",
        f"{tampered}: INVALID: the signature does not match the content (changed after signing, "
        f"or not signed by the key it names)",
        f"{empty}: INVALID: its signature tag is empty (never signed, or the signature was removed)",
        f"{binary}: INVALID: not UTF-8 text, so not a bench document or record",
        f"{missing}: INVALID: no such file",
        f"{directory}: INVALID: a directory, not a file"]


@pytest.mark.slow
def test_a_signed_record_verifies_and_an_edited_number_fails(home: Path, lab: Signer, tmp_path: Path) -> None:
    record = {"run_id": "1a2b3c4d", "started_at": dt.datetime(2024, 5, 1, 9, 30), "status": "complete",
              "meters": [{"serial": "SIM16A00001", "results": [{"point": "LP-1", "value_pct": 0.12, "u_pct": 0.05}]}]}
    wrapper = sign_record(record, lab)
    assert wrapper["signature"]["fingerprint"] == lab.fingerprint and wrapper["signature"]["algorithm"] == "Ed25519"
    Ed25519PublicKey.from_public_bytes(base64.b64decode(wrapper["signature"]["public_key"])).verify(
        base64.b64decode(wrapper["signature"]["value"]), canonical_json(record).encode())
    path = tmp_path / "run-1a2b3c4d.json"
    path.write_text(json.dumps(wrapper, indent=1))
    run = bench("verify", path, "--trust", lab.fingerprint, home=home)
    assert (run.returncode, run.stdout) == (0, f"{path}: signature valid (key {lab.fingerprint})\n")
    path.write_text(json.dumps(wrapper))  # the same content laid out differently: still the signed record
    assert check_file(path).status == "valid"
    path.write_text(json.dumps(wrapper, indent=1).replace('"value_pct": 0.12', '"value_pct": 0.11'))
    run = bench("verify", path, home=home)
    assert run.returncode == 1 and run.stdout.startswith(f"{path}: INVALID: the signature does not match")


@pytest.mark.slow
def test_verify_needs_no_database(home: Path, lab: Signer, signed: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty-cwd"
    empty.mkdir()
    home_before = sorted(home.rglob("*"))
    run = bench("verify", signed, home=home, cwd=empty)
    assert run.returncode == 0 and list(empty.iterdir()) == [] and sorted(home.rglob("*")) == home_before
    # A "records database" that is not one: opening it would fail, so verify never opens it.
    (empty / "reports").mkdir()
    (empty / "reports" / "records.sqlite").write_bytes(b"not a database")
    run = bench("verify", signed, home=home, cwd=empty)
    assert run.returncode == 0 and (empty / "reports" / "records.sqlite").read_bytes() == b"not a database"
    assert bench("verify", signed, "--records", "sqlite:///x.sqlite", home=home, cwd=empty).returncode == 2


def test_sign_html_refuses_a_document_it_could_not_sign_verifiably(lab: Signer, tmp_path: Path) -> None:
    other = init_key(tmp_path / "other.key")
    with pytest.raises(ValueError, match="not the signing key"):
        sign_html(document(other.public_key_b64), lab)
    with pytest.raises(ValueError, match="exactly one"):
        sign_html("<html><head></head></html>", lab)
    with pytest.raises(ValueError, match="exactly one"):
        sign_html(document(lab.public_key_b64) + SIGNATURE_TAG.format(""), lab)
