"""The API's error shape and its path/query parameter parsers.

An error is ``{"error": {"code", "message"}}`` with a 4xx/5xx status (`error`); a
rejected event's code maps to its status by prefix (`status_for`). Parsers return None
for input that is not what they parse, and the route answers 400 ``request.invalid``.
Bytes in paths are hex (either case); answers give lowercase hex.
"""

from __future__ import annotations

from starlette.responses import JSONResponse

__all__ = ["error", "hex32", "hex_bytes", "invalid", "status_for"]


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def invalid(message: str) -> JSONResponse:
    """400 ``request.invalid``: a parameter that does not parse."""
    return error(400, "request.invalid", message)


_STATUS_BY_CODE_PREFIX = [
    ("mempool.full", 503),
    ("mempool.quota", 429),
    ("nonce.", 409),
    ("decode.", 400),
    ("field.", 400),
    ("event.", 400),
    ("chain.", 400),
    ("signature.", 400),
    ("request.", 400),
]


def status_for(code: str) -> int:
    """The HTTP status of a rejection code; ledger pre-check refusals are 422."""
    for prefix, status in _STATUS_BY_CODE_PREFIX:
        if code.startswith(prefix):
            return status
    return 422


def hex_bytes(text: str) -> bytes | None:
    """Bytes given as hex, or None if `text` is not hex."""
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def hex32(text: str) -> bytes | None:
    """A 32-byte id or key given as 64 hex characters, or None if it is not one."""
    b = hex_bytes(text)
    return b if b is not None and len(b) == 32 else None
