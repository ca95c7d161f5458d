"""Errors of the protocol layer: every one carries a stable code and names the field.

A `ProtocolError` is always the *peer's* (or the input's) fault: the caller rejects the
input, logs it, and changes nothing. Our own broken invariants raise `InvariantError`
(see `require`), which is never caught on an input path.

Codes are stable strings (documented in docs/PROTOCOL.md); clients match on them.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "Code",
    "DecodeError",
    "InvariantError",
    "ProtocolError",
    "SignatureError",
    "ValidationError",
    "require",
]


class Code(StrEnum):
    # decoding (bytes -> value)
    DECODE_MALFORMED = "decode.malformed"
    DECODE_TOO_LARGE = "decode.too_large"
    DECODE_TOO_DEEP = "decode.too_deep"
    DECODE_TRAILING_BYTES = "decode.trailing_bytes"
    DECODE_NOT_CANONICAL = "decode.not_canonical"
    DECODE_WRONG_TYPE = "decode.wrong_type"
    DECODE_UNKNOWN_TAG = "decode.unknown_tag"
    DECODE_UNSUPPORTED_VERSION = "decode.unsupported_version"
    DECODE_WRONG_ARITY = "decode.wrong_arity"
    # stateless validation (value -> valid value)
    FIELD_OUT_OF_RANGE = "field.out_of_range"
    FIELD_WRONG_LENGTH = "field.wrong_length"
    FIELD_INVALID = "field.invalid"
    UNKNOWN_EVENT_TYPE = "event.unknown_type"
    WRONG_CHAIN_ID = "chain.wrong_id"
    # signatures
    BAD_SIGNATURE = "signature.invalid"
    WRONG_DOMAIN = "signature.wrong_domain"
    # keys
    KEY_FILE = "key.file"


class ProtocolError(Exception):
    """Input rejected. `code` is stable; `field` names the offending field (dotted path)."""

    code: Code
    field: str | None

    def __init__(self, code: Code, message: str, *, field: str | None = None) -> None:
        self.code = code
        self.field = field
        self.message = message
        super().__init__(f"{code}: {message}" if field is None else f"{code}: {field}: {message}")

    def to_dict(self) -> dict[str, str]:
        d = {"code": str(self.code), "message": str(self)}
        if self.field is not None:
            d["field"] = self.field
        return d


class DecodeError(ProtocolError):
    """Bytes that are not a canonical encoding of a known message."""


class ValidationError(ProtocolError):
    """A well-formed value whose fields break a stateless rule."""


class SignatureError(ProtocolError):
    """A signature that does not verify for the claimed key, domain and chain."""


class InvariantError(RuntimeError):
    """Our own invariant is broken: a bug. Never caught on an input path."""


def require(condition: bool, message: str) -> None:
    """Check an internal invariant (unlike `assert`, survives `python -O`)."""
    if not condition:
        raise InvariantError(message)
