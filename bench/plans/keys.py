"""Meter key files: written mode 600 through no symlink, and refused when anyone else can read them."""
from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path


class KeyFileError(OSError):
    """A key file the bench will not write through or use."""


def write_key(directory: Path, serial: str, key: str) -> Path:
    """A fresh key file readable by its owner only (mode 600, whatever the umask).

    Written to a new file beside it and renamed into place: a symlink planted at the key's path
    is refused (writing through it would truncate its target), and an old key file, whatever
    its mode, is replaced, never reused.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / f"{serial}.key"
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise KeyFileError(f"{path}: is a symlink or not a regular file; refusing to write a key there")
    staging = directory / f".{serial}.key.{secrets.token_hex(4)}"
    descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        os.write(descriptor, key.encode())
    finally:
        os.close(descriptor)
    os.replace(staging, path)
    return path


def read_key(path: Path) -> str:
    """Refuse a key that anyone but its owner can read."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise PermissionError(f"{path}: mode {mode:03o} lets group or others read it; "
                              f"the bench only uses keys with mode 600")
    return path.read_text()
