"""Ids, keys and hashes as the client takes them: bytes inside, 64 lowercase hex on the wire.

Every function that takes an id or a key accepts bytes or hex (and a key pair for a key);
a malformed value is `InvalidInput` (``client.invalid_id``). Free text becomes
`content_hash` (SHA-256) before it goes into an event body: personal data stays local.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from afterchain.node.client.outcomes import InvalidInput
from afterchain.node.common.keys import load_key
from afterchain.protocol.crypto import KeyPair
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.types import Hash32, PublicKey

__all__ = ["as_id", "as_key", "content_hash", "customer_account", "load_client_key", "load_signing_key", "opt_id"]


def content_hash(data: bytes | str) -> Hash32:
    """SHA-256 of `data` (text is UTF-8 encoded): what goes on the ledger instead of the data."""
    return Hash32(hashlib.sha256(data.encode() if isinstance(data, str) else data).digest())


def as_id(value: bytes | str, what: str = "id") -> Hash32:
    """A 32-byte id from bytes or 64 hex characters."""
    if isinstance(value, str):
        try:
            value = bytes.fromhex(value)
        except ValueError:
            raise InvalidInput("client.invalid_id", f"{what} must be 64 hex characters") from None
    if len(value) != 32:
        raise InvalidInput("client.invalid_id", f"{what} must be 32 bytes (64 hex characters), got {len(value)} bytes")
    return Hash32(bytes(value))


def as_key(value: bytes | str | KeyPair) -> PublicKey:
    """A public key from bytes, 64 hex characters or a key pair."""
    if isinstance(value, KeyPair):
        return PublicKey(value.public)
    return PublicKey(as_id(value, "public key"))


def opt_id(value: bytes | str | None, what: str) -> Hash32 | None:
    """`as_id` of an optional id (None stays None)."""
    return None if value is None else as_id(value, what)


def customer_account(public_key: bytes | str) -> str:
    """The ledger account name of a customer key (``cust:<hex>``), for balances."""
    return "cust:" + as_key(public_key).hex()


def load_signing_key(key: KeyPair | str | os.PathLike[str] | None) -> KeyPair | None:
    """A key pair as given, or loaded from a key file (`InvalidInput` on failure); None stays None."""
    if key is None or isinstance(key, KeyPair):
        return key
    try:
        return load_key(key)
    except ProtocolError as exc:
        raise InvalidInput(str(exc.code), exc.message) from None


def load_client_key(path: str | Path) -> KeyPair:
    """Load a key file, as `InvalidInput` on failure (for callers outside `Client`)."""
    kp = load_signing_key(path)
    if kp is None:
        raise InvalidInput("key.file", "no key file given")
    return kp
