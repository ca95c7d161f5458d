"""Key files on disk: written with mode 0600, refused when readable by group or others.

The file format is defined in `protocol.crypto.KeyPair.to_key_file_text`; this module
owns the I/O (the protocol layer does none).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from afterchain.protocol.crypto import KeyPair
from afterchain.protocol.errors import Code, ValidationError

__all__ = ["KeyFileError", "load_key", "write_key"]


class KeyFileError(ValidationError):
    def __init__(self, message: str) -> None:
        super().__init__(Code.KEY_FILE, message)


def write_key(path: str | os.PathLike[str], key: KeyPair, *, overwrite: bool = False) -> Path:
    """Write `key` to `path` with mode 0600 (created atomically; never world-readable)."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise KeyFileError(f"{p} already exists; refusing to overwrite a key (pass --force to replace it)")
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, key.to_key_file_text().encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, p)
    return p


def load_key(path: str | os.PathLike[str]) -> KeyPair:
    """Load a key file; clear errors for a missing, unreadable, too-open or malformed file."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise KeyFileError(f"key file {p} does not exist (create one with `afterchain keygen --out {p}`)") from None
    except PermissionError:
        raise KeyFileError(f"key file {p} is not accessible") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"key file {p} is not a regular file")
    if st.st_mode & 0o077:
        raise KeyFileError(
            f"key file {p} has mode {stat.S_IMODE(st.st_mode):04o}; it must not be readable by group or others "
            f"(run: chmod 600 {p})"
        )
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read key file {p}: {exc}") from None
    return KeyPair.from_key_file_text(text, source=str(p))
