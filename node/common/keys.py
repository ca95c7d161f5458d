"""Key files on disk: written with mode 0600, refused when readable by group or others;
optionally encrypted with a passphrase.

The plain file format is defined in `protocol.crypto.KeyPair.to_key_file_text`; this module
owns the I/O (the protocol layer does none) and the encrypted form:

    afterchain-encrypted-key 1
    kdf argon2id opslimit=3 memlimit=268435456
    salt <16 bytes hex>
    public <32-byte Ed25519 public key hex>
    box <nonce || ciphertext hex>

The box is libsodium's `crypto_secretbox` (XSalsa20-Poly1305, PyNaCl's `SecretBox`) over
the plain key file text, keyed by Argon2id (PyNaCl's `pwhash.argon2id.kdf`) of the
passphrase with that salt and those limits. The public key is in clear so that
`afterchain pubkey` works without the passphrase; it is checked against the decrypted
seed. A wrong passphrase fails the box's authentication: "wrong passphrase".

The passphrase comes from (first found): the caller (`passphrase=`), a file
(`passphrase_file=`, the node's `node.key_passphrase_file`), the file named by
`$AFTERCHAIN_KEY_PASSPHRASE_FILE`, or `$AFTERCHAIN_KEY_PASSPHRASE`. A passphrase file is
held to the key file's rule (not readable by group or others); one trailing newline is
not part of the passphrase.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from afterchain.protocol.crypto import KeyPair
from afterchain.protocol.errors import Code, ValidationError

__all__ = [
    "ENV_PASSPHRASE",
    "ENV_PASSPHRASE_FILE",
    "KDF_LIMITS",
    "KeyFileError",
    "is_encrypted",
    "load_key",
    "read_passphrase",
    "read_public",
    "write_key",
]

ENV_PASSPHRASE = "AFTERCHAIN_KEY_PASSPHRASE"
ENV_PASSPHRASE_FILE = "AFTERCHAIN_KEY_PASSPHRASE_FILE"
_HEADER = "afterchain-encrypted-key 1"
_argon = nacl.pwhash.argon2id
KDF_LIMITS = {
    "interactive": (_argon.OPSLIMIT_INTERACTIVE, _argon.MEMLIMIT_INTERACTIVE),  # 64 MiB, ~0.3 s here
    "moderate": (_argon.OPSLIMIT_MODERATE, _argon.MEMLIMIT_MODERATE),  # 256 MiB, ~1.6 s here (the default)
    "sensitive": (_argon.OPSLIMIT_SENSITIVE, _argon.MEMLIMIT_SENSITIVE),  # 1 GiB
}
"""Argon2id work limits by name (libsodium's presets); times measured on this project's
2-core machine (`nacl.pwhash.argon2id.kdf` of a 32-byte key, once each)."""


class KeyFileError(ValidationError):
    def __init__(self, message: str) -> None:
        super().__init__(Code.KEY_FILE, message)


def _derive(passphrase: bytes, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return _argon.kdf(nacl.secret.SecretBox.KEY_SIZE, passphrase, salt, opslimit=opslimit, memlimit=memlimit)


def _encrypted_text(key: KeyPair, passphrase: bytes, opslimit: int, memlimit: int) -> str:
    if not passphrase:
        raise KeyFileError("the passphrase is empty")
    salt = nacl.utils.random(_argon.SALTBYTES)
    box = nacl.secret.SecretBox(_derive(passphrase, salt, opslimit, memlimit)).encrypt(key.to_key_file_text().encode())
    return (f"{_HEADER}\nkdf argon2id opslimit={opslimit} memlimit={memlimit}\nsalt {salt.hex()}\n"
            f"public {key.public.hex()}\nbox {bytes(box).hex()}\n")


def write_key(path: str | os.PathLike[str], key: KeyPair, *, overwrite: bool = False, passphrase: bytes | None = None,
              kdf: str = "moderate") -> Path:
    """Write `key` to `path` with mode 0600 (created atomically; never world-readable);
    encrypted under `passphrase` when one is given (Argon2id limits `kdf`, see `KDF_LIMITS`)."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise KeyFileError(f"{p} already exists; refusing to overwrite a key (pass --force to replace it)")
    if kdf not in KDF_LIMITS:
        raise KeyFileError(f"unknown key derivation strength {kdf!r} (known: {', '.join(KDF_LIMITS)})")
    text = key.to_key_file_text() if passphrase is None else _encrypted_text(key, passphrase, *KDF_LIMITS[kdf])
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, p)
    return p


def _read_private(p: Path, what: str) -> str:
    """The text of a secret file: it must exist, be a regular file, and not be readable by
    group or others."""
    try:
        st = p.stat()
    except FileNotFoundError:
        hint = f" (create one with `afterchain keygen --out {p}`)" if what == "key file" else ""
        raise KeyFileError(f"{what} {p} does not exist{hint}") from None
    except PermissionError:
        raise KeyFileError(f"{what} {p} is not accessible") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"{what} {p} is not a regular file")
    if st.st_mode & 0o077:
        raise KeyFileError(
            f"{what} {p} has mode {stat.S_IMODE(st.st_mode):04o}; it must not be readable by group or others "
            f"(run: chmod 600 {p})"
        )
    try:
        return p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read {what} {p}: {exc}") from None


def read_passphrase(path: str | os.PathLike[str]) -> bytes:
    """A passphrase file's content without one trailing newline (mode rules as a key file)."""
    text = _read_private(Path(path), "passphrase file").removesuffix("\n").removesuffix("\r")
    if not text:
        raise KeyFileError(f"passphrase file {path} is empty")
    return text.encode()


def _passphrase(passphrase: bytes | None, passphrase_file: str | os.PathLike[str] | None,
                env: Mapping[str, str]) -> bytes | None:
    if passphrase is not None:
        return passphrase
    if passphrase_file is not None:
        return read_passphrase(passphrase_file)
    if env.get(ENV_PASSPHRASE_FILE):
        return read_passphrase(env[ENV_PASSPHRASE_FILE])
    if env.get(ENV_PASSPHRASE):
        return env[ENV_PASSPHRASE].encode()
    return None


def _fields(text: str, p: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for ln in text.strip().splitlines()[1:]:
        parts = ln.split()
        if parts:
            out[parts[0]] = parts[1:]
    if set(out) != {"kdf", "salt", "public", "box"}:
        raise KeyFileError(f"key file {p}: an encrypted key file has the lines kdf, salt, public and box")
    return out


def is_encrypted(path: str | os.PathLike[str]) -> bool:
    """Whether the key file at `path` is encrypted (read with the key file's checks)."""
    return _read_private(Path(path), "key file").startswith(_HEADER)


def read_public(path: str | os.PathLike[str]) -> bytes:
    """The public key of a key file, encrypted or not, without its passphrase."""
    p = Path(path)
    text = _read_private(p, "key file")
    if not text.startswith(_HEADER):
        return KeyPair.from_key_file_text(text, source=str(p)).public
    try:
        pub = bytes.fromhex(_fields(text, p)["public"][0])
    except (ValueError, IndexError):
        raise KeyFileError(f"key file {p}: the public key is not hex") from None
    if len(pub) != 32:
        raise KeyFileError(f"key file {p}: the public key must be 32 bytes, got {len(pub)}")
    return pub


def _decrypt(text: str, p: Path, passphrase: bytes) -> KeyPair:
    f = _fields(text, p)
    try:
        kdf = f["kdf"]
        if len(kdf) != 3 or kdf[0] != "argon2id":
            raise ValueError("kdf")
        limits = dict(x.split("=", 1) for x in kdf[1:])
        opslimit, memlimit = int(limits["opslimit"]), int(limits["memlimit"])
        salt, public, box = bytes.fromhex(f["salt"][0]), bytes.fromhex(f["public"][0]), bytes.fromhex(f["box"][0])
    except (ValueError, KeyError, IndexError):
        raise KeyFileError(f"key file {p}: a malformed encrypted key file (kdf, salt, public or box)") from None
    if len(salt) != _argon.SALTBYTES:
        raise KeyFileError(f"key file {p}: the salt must be {_argon.SALTBYTES} bytes")
    if not (_argon.OPSLIMIT_MIN <= opslimit <= _argon.OPSLIMIT_MAX and _argon.MEMLIMIT_MIN <= memlimit <= _argon.MEMLIMIT_MAX):
        raise KeyFileError(f"key file {p}: kdf limits out of range")
    try:
        plain = nacl.secret.SecretBox(_derive(passphrase, salt, opslimit, memlimit)).decrypt(box)
    except nacl.exceptions.CryptoError:
        raise KeyFileError(f"key file {p}: wrong passphrase (or the file was altered)") from None
    try:
        kp = KeyPair.from_key_file_text(plain.decode(), source=str(p))
    except UnicodeDecodeError:
        raise KeyFileError(f"key file {p}: the decrypted key is not a key file") from None
    if kp.public != public:
        raise KeyFileError(f"key file {p}: the public key does not match the encrypted seed")
    return kp


def load_key(path: str | os.PathLike[str], *, passphrase: bytes | None = None,
             passphrase_file: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> KeyPair:
    """Load a key file; clear errors for a missing, unreadable, too-open or malformed file,
    and for an encrypted one without its passphrase or with a wrong one. The passphrase:
    `passphrase`, else `passphrase_file`, else `$AFTERCHAIN_KEY_PASSPHRASE_FILE`, else
    `$AFTERCHAIN_KEY_PASSPHRASE` (of `env`, default the process environment)."""
    p = Path(path)
    text = _read_private(p, "key file")
    if not text.startswith(_HEADER):
        return KeyPair.from_key_file_text(text, source=str(p))
    pw = _passphrase(passphrase, passphrase_file, os.environ if env is None else env)
    if pw is None:
        raise KeyFileError(
            f"key file {p} is encrypted: give its passphrase (node.key_passphrase_file, ${ENV_PASSPHRASE_FILE} "
            f"or ${ENV_PASSPHRASE})"
        )
    return _decrypt(text, p, pw)
