"""Ed25519 keys, key files and domain-separated signing bound to the chain id.

Sign bytes are ``b"afterchain/v1/" + DOMAIN + b"\\0" + chain_id + encode(msg)``. Chain ids
are ASCII (see `validate_chain_id`) and every encoding starts with a msgpack array
header byte (>= 0x90), so the concatenation is unambiguous. A signature made for one
domain or one chain never verifies for another.

Key files hold the 32-byte seed as hex in a small text file written with mode 0600; a
key file readable by group or others is refused.
"""

from __future__ import annotations

import re
from enum import StrEnum

import nacl.exceptions
import nacl.signing

from .codec import Message, encode
from .errors import Code, SignatureError, ValidationError
from .types import PublicKey, Signature

__all__ = [
    "Domain",
    "KeyPair",
    "sign_bytes",
    "validate_chain_id",
    "verify",
    "verify_raw",
]

PREFIX = b"afterchain/v1/"
_CHAIN_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class Domain(StrEnum):
    EVENT = "EVENT"
    PREPREPARE = "PREPREPARE"
    PREPARE = "PREPARE"
    COMMIT = "COMMIT"
    CHECKPOINT = "CHECKPOINT"
    VIEW_CHANGE = "VIEW_CHANGE"
    NEW_VIEW = "NEW_VIEW"
    HEADER = "HEADER"
    PEER = "PEER"
    LIGHT = "LIGHT"


def validate_chain_id(chain_id: str, *, field: str = "chain_id") -> None:
    if type(chain_id) is not str or not _CHAIN_ID.match(chain_id):
        raise ValidationError(
            Code.FIELD_INVALID,
            f"chain id {chain_id!r} must be 1-64 characters of a-z 0-9 . _ - starting with a letter or digit",
            field=field,
        )


_PREFIXES: dict[tuple[Domain, str], bytes] = {}


def _prefix(domain: Domain, chain_id: str) -> bytes:
    p = _PREFIXES.get((domain, chain_id))
    if p is None:
        p = PREFIX + domain.value.encode() + b"\0" + chain_id.encode()
        if len(_PREFIXES) < 1024:  # bounded: a node knows one chain and a dozen domains
            _PREFIXES[(domain, chain_id)] = p
    return p


def sign_bytes(domain: Domain, chain_id: str, msg: Message | bytes) -> bytes:
    """The exact bytes signed for `msg` (an encoded message may be passed as bytes)."""
    body = msg if isinstance(msg, bytes) else encode(msg)
    return _prefix(domain, chain_id) + body


def verify_raw(public_key: bytes, signature: bytes, data: bytes) -> bool:
    """True if `signature` is a valid Ed25519 signature of `data` by `public_key`."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        nacl.signing.VerifyKey(public_key).verify(data, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, nacl.exceptions.TypeError):
        return False
    return True


def verify(
    public_key: bytes, signature: bytes, domain: Domain, chain_id: str, msg: Message | bytes, *, field: str = "signature"
) -> None:
    """Raise `SignatureError` unless `signature` signs `msg` for this domain and chain.

    On failure it tells a signature made for another domain (``signature.wrong_domain``)
    from one that is simply invalid (``signature.invalid``); the extra checks cost time
    only on the failure path.
    """
    body = msg if isinstance(msg, bytes) else encode(msg)
    if verify_raw(public_key, signature, sign_bytes(domain, chain_id, body)):
        return
    for other in Domain:
        if other is not domain and verify_raw(public_key, signature, sign_bytes(other, chain_id, body)):
            raise SignatureError(
                Code.WRONG_DOMAIN, f"signature was made for domain {other.value}, expected {domain.value}", field=field
            )
    raise SignatureError(Code.BAD_SIGNATURE, f"signature does not verify for key {public_key.hex()[:16]}...", field=field)


class KeyPair:
    """An Ed25519 signing key. `public` is the 32-byte public key."""

    __slots__ = ("_signing", "public")

    def __init__(self, signing_key: nacl.signing.SigningKey) -> None:
        self._signing = signing_key
        self.public = PublicKey(bytes(signing_key.verify_key))

    @classmethod
    def generate(cls) -> KeyPair:
        return cls(nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> KeyPair:
        if len(seed) != 32:
            raise ValidationError(Code.FIELD_WRONG_LENGTH, f"a key seed is 32 bytes, got {len(seed)}", field="seed")
        return cls(nacl.signing.SigningKey(seed))

    @property
    def seed(self) -> bytes:
        return bytes(self._signing)

    def sign(self, domain: Domain, chain_id: str, msg: Message | bytes) -> Signature:
        return Signature(self._signing.sign(sign_bytes(domain, chain_id, msg)).signature)

    def sign_raw(self, data: bytes) -> Signature:
        return Signature(self._signing.sign(data).signature)

    def __repr__(self) -> str:  # never print the secret
        return f"KeyPair(public={self.public.hex()})"

    # Key files are the only I/O-shaped thing here, but reading/writing them is done by
    # `node.keys`; this module only defines the text format.
    def to_key_file_text(self) -> str:
        return f"afterchain-ed25519-seed {self.seed.hex()}\npublic {self.public.hex()}\n"

    @classmethod
    def from_key_file_text(cls, text: str, *, source: str = "key file") -> KeyPair:
        lines = [ln.split() for ln in text.strip().splitlines() if ln.strip()]
        if not lines or len(lines[0]) != 2 or lines[0][0] != "afterchain-ed25519-seed":
            raise ValidationError(Code.KEY_FILE, f"{source}: not an afterchain key file (first line must be 'afterchain-ed25519-seed HEX')")
        try:
            seed = bytes.fromhex(lines[0][1])
        except ValueError:
            raise ValidationError(Code.KEY_FILE, f"{source}: the seed is not hex") from None
        if len(seed) != 32:
            raise ValidationError(Code.KEY_FILE, f"{source}: the seed must be 32 bytes, got {len(seed)}")
        kp = cls.from_seed(seed)
        for ln in lines[1:]:
            if len(ln) == 2 and ln[0] == "public" and ln[1] != kp.public.hex():
                raise ValidationError(Code.KEY_FILE, f"{source}: the public key does not match the seed")
        return kp
