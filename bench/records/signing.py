"""Ed25519 signatures on what the bench publishes: certificates and reports (HTML) and run records (JSON).

Anyone can re-render a document from an edited record, so a digest written into the document proves
nothing; a signature made with the lab's private key does. A published document carries the signer's
public key, and the lab publishes that key's fingerprint (``SHA256:...``), so a reader
checks both that the document is untouched and that it was the lab that signed it (RFC 8032 Ed25519,
via the ``cryptography`` package).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from bench.paths import bench_home
from bench.records.store import CanonicalRecord, canonical_json

KEY_TAG = '<meta name="bench-public-key" content="{}">'
SIGNATURE_TAG = '<meta name="bench-signature" content="{}">'
_KEY_TAG = re.compile(r'<meta name="bench-public-key" content="([^"]*)">')
_SIGNATURE_TAG = re.compile(r'<meta name="bench-signature" content="([^"]*)">')


class SigningKeyError(RuntimeError):
    """The lab's key cannot be created or used; the message is one line naming the key file."""


def default_key_path() -> Path:
    """The lab's key, outside the repository and outside reports/ (which is published)."""
    return bench_home() / "keys" / "lab-ed25519.key"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _fingerprint(raw_public_key: bytes) -> str:
    """Spelled as OpenSSH spells fingerprints (SHA-256, base64 without padding), but taken over the raw
    32-byte key, not OpenSSH's key blob: it is not what ``ssh-keygen -l`` prints for the same key."""
    return "SHA256:" + _b64(hashlib.sha256(raw_public_key).digest()).rstrip("=")


class Signer:
    """The lab's private key, loaded from a file only its owner can read."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.public_key_b64: str = _b64(raw)
        self.fingerprint: str = _fingerprint(raw)

    @classmethod
    def load(cls, path: Path) -> Signer:
        """Refuses a key that group or others can open: a key others could read signs nothing for the lab."""
        path = Path(path)
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            if path.is_dir():
                raise SigningKeyError(f"{path} is a directory, not a key file (create a key with `bench keys init`)")
            if mode & 0o077:
                access = "readable" if mode & 0o044 else "writable"
                raise SigningKeyError(f"{path} is {access} by group or others (mode {mode:03o}): chmod 600 {path}")
            data = path.read_bytes()
        except FileNotFoundError:
            raise SigningKeyError(f"no key at {path} (create one with `bench keys init`)") from None
        except OSError as error:
            raise SigningKeyError(f"cannot read the key {path}: {error.strerror or error}") from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as error:
            reason = "it is encrypted" if "encrypted" in str(error) else "not an unencrypted PEM private key"
            raise SigningKeyError(f"{path}: not an Ed25519 private key ({reason})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningKeyError(f"{path}: not an Ed25519 private key (a {type(key).__name__.lstrip('_')})")
        return cls(key)

    def sign(self, data: bytes) -> str:
        return _b64(self._key.sign(data))


def _make_private_dirs(directory: Path) -> None:
    """Create the missing directories, each mode 700 whatever the umask (mkdir -p ignores the mode)."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for created in reversed(missing):
        os.mkdir(created, 0o700)
        os.chmod(created, 0o700)


def init_key(path: Path) -> Signer:
    """A new lab key, PEM PKCS#8, mode 600 from its creation; never replaces an existing key, which
    would orphan every document signed with it."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise SigningKeyError(f"{path} already exists: the bench never overwrites a key "
                              f"(documents signed with it would no longer match the lab's published key)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        _make_private_dirs(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SigningKeyError(f"{path} already exists: the bench never overwrites a key") from None
    except OSError as error:
        raise SigningKeyError(f"cannot create the key {path}: {error.strerror or error}") from None
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
        os.fsync(fd)
    except OSError as error:
        path.unlink()
        raise SigningKeyError(f"cannot write the key {path}: {error.strerror or error}") from None
    finally:
        os.close(fd)
    return Signer(key)


def sign_html(html: str, signer: Signer) -> str:
    """Fill in the document's signature: over its UTF-8 bytes as they are with the signature empty.
    Raises ValueError if the document does not carry exactly one signer's key tag and one empty
    signature tag (a template error: the result could not be verified)."""
    keys, signatures = _KEY_TAG.findall(html), _SIGNATURE_TAG.findall(html)
    if len(keys) != 1 or len(signatures) != 1 or signatures[0]:
        raise ValueError(f"the document must contain exactly one {KEY_TAG.format('...')} and one "
                         f"{SIGNATURE_TAG.format('')} (found {len(keys)} key and {len(signatures)} signature tags"
                         f"{', the signature not empty' if signatures and any(signatures) else ''})")
    if keys[0] != signer.public_key_b64:
        raise ValueError(f"the document names public key {keys[0]!r}, not the signing key's {signer.public_key_b64!r}")
    empty = SIGNATURE_TAG.format("")
    return html.replace(empty, SIGNATURE_TAG.format(signer.sign(html.encode("utf-8"))), 1)


def _record_signature(made: CanonicalRecord, signer: Signer) -> dict[str, str]:
    """The signature of a record: over its canonical text's UTF-8 bytes, which is what a reader
    recomputes from the record as the written file holds it."""
    return {"algorithm": "Ed25519", "public_key": signer.public_key_b64, "fingerprint": signer.fingerprint,
            "value": signer.sign(made.utf8)}


def sign_record(record: dict[str, Any], signer: Signer) -> dict[str, Any]:
    """The record wrapped with its signature. The wrapped record is the JSON form of ``record`` (dates
    as strings...), so the signed text is exactly what a reader recomputes from the written file."""
    made = CanonicalRecord.of(record)
    return {"record": json.loads(made.text), "signature": _record_signature(made, signer)}


def write_signed_record(made: CanonicalRecord, signer: Signer, directory: Path) -> Path:
    """The record, signed, as ``run-<id>.json`` in ``directory``: ``{"record":TEXT,"signature":{...}}``
    in UTF-8 on one line, where TEXT is the record's canonical text itself, the very bytes signed
    and stored, so nothing is serialised again (``python -m json.tool FILE`` shows it indented)."""
    path = directory / f"run-{made.record['run_id']}.json"
    signature = json.dumps(_record_signature(made, signer), separators=(",", ":"))
    with path.open("wb") as out:
        out.write(b'{"record":')
        out.write(made.utf8)
        out.write(f',"signature":{signature}}}'.encode("ascii"))
    return path


@dataclass(frozen=True)
class FileCheck:
    """One file's verdict; ``fingerprint`` is the key whose signature verified (None if none did),
    ``message`` one line naming the file."""
    status: Literal["valid", "invalid", "unsigned"]
    fingerprint: str | None
    message: str


class _Invalid(Exception):
    """A reason the file's signature does not hold."""


def _decode(text: object, what: str, length: int) -> bytes:
    """Strict base64: one spelling per value, so no edited character can still decode to the same bytes."""
    try:
        raw = base64.b64decode(text, validate=True) if isinstance(text, str) else None
    except (binascii.Error, ValueError):
        raw = None
    if raw is None or _b64(raw) != text:
        raise _Invalid(f"the {what} is not valid base64")
    if len(raw) != length:
        raise _Invalid(f"the {what} is {len(raw)} bytes, not the {length} of an Ed25519 {what}")
    return raw


def _verify(public_key: object, signature: object, data: bytes) -> str:
    """The fingerprint of the key that signed ``data``."""
    raw_key = _decode(public_key, "public key", 32)
    raw_signature = _decode(signature, "signature", 64)
    try:
        Ed25519PublicKey.from_public_bytes(raw_key).verify(raw_signature, data)
    except (InvalidSignature, ValueError):
        raise _Invalid("the signature does not match the content (changed after signing, "
                       "or not signed by the key it names)") from None
    return _fingerprint(raw_key)


def _check_html(text: str) -> str | None:
    if "bench-signature" not in text and "bench-public-key" not in text:
        return None
    signatures, keys = list(_SIGNATURE_TAG.finditer(text)), _KEY_TAG.findall(text)
    if len(signatures) != 1 or len(keys) != 1:
        raise _Invalid(f"expected one bench-public-key and one bench-signature tag, "
                       f"found {len(keys)} and {len(signatures)}")
    signature = signatures[0]
    if not signature.group(1):
        raise _Invalid("its signature tag is empty (never signed, or the signature was removed)")
    signed = text[:signature.start()] + SIGNATURE_TAG.format("") + text[signature.end():]
    return _verify(keys[0], signature.group(1), signed.encode("utf-8"))


def _check_record(text: str) -> str | None:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise _Invalid(f"not valid JSON (line {error.lineno})") from None
    except (ValueError, RecursionError):  # a number too long to convert, nesting too deep
        raise _Invalid("not JSON the bench can read") from None
    if not isinstance(data, dict) or not ({"record", "signature"} & data.keys()):
        return None
    signature = data.get("signature")
    if data.keys() != {"record", "signature"} or not isinstance(signature, dict):
        raise _Invalid('not a signed record: expected exactly "record" and a "signature" object')
    if signature.get("algorithm") != "Ed25519":
        raise _Invalid(f"signature algorithm {signature.get('algorithm')!r}, not Ed25519")
    fingerprint = _verify(signature.get("public_key"), signature.get("value"),
                          canonical_json(data["record"]).encode("utf-8"))
    if signature.get("fingerprint") != fingerprint:
        raise _Invalid(f"the stated fingerprint {signature.get('fingerprint')!r} is not its key's ({fingerprint})")
    return fingerprint


def check_file(path: Path, trusted: set[str] | None = None) -> FileCheck:
    """Whether a published document (.html) or run record (.json) is signed, untouched, and, if
    ``trusted`` is given, signed by one of those key fingerprints. Never raises for a bad file."""
    def invalid(reason: str, fingerprint: str | None = None) -> FileCheck:
        return FileCheck("invalid", fingerprint, f"{path}: INVALID: {reason}")

    try:
        text = Path(path).read_bytes().decode("utf-8")
    except IsADirectoryError:
        return invalid("a directory, not a file")
    except FileNotFoundError:
        return invalid("no such file")
    except OSError as error:
        return invalid(f"cannot read: {error.strerror or error}")
    except UnicodeDecodeError:
        return invalid("not UTF-8 text, so not a bench document or record")
    try:
        fingerprint = (_check_record if Path(path).suffix.lower() == ".json" else _check_html)(text)
    except _Invalid as error:
        return invalid(str(error))
    if fingerprint is None:
        return FileCheck("unsigned", None, f"{path}: unsigned")
    if trusted is not None and fingerprint not in trusted:
        return invalid(f"signed by key {fingerprint}, which is not a trusted key", fingerprint)
    return FileCheck("valid", fingerprint, f"{path}: signature valid (key {fingerprint})")
