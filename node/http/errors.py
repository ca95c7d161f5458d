"""The API's error shape, its stable codes, request ids, and the app's error handlers.

An error is ``{"error": {"code", "message", "request_id"}}`` with a 4xx/5xx status
(`error`); ``code`` is stable (clients branch on it), ``message`` is for people, and
``request_id`` is the request's ``X-Request-Id`` (`node.http.middleware`), so an operator
can find the answer in the node's log. A rejected event's code maps to its status by
prefix (`status_for`). Unknown paths are 404 ``route.not_found``, known paths with another
method 405 ``method.not_allowed`` (with ``Allow``), malformed path or query parameters 400
``request.invalid`` (`node.http.params.BadParam`, answered by `node.http.spec.ApiRoute`); every 500 is logged with the request id.
Bytes in paths are hex (either case); answers give lowercase hex.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from afterchain.node.common.log import module_logger

__all__ = [
    "HTTP_CODES",
    "INTERNAL",
    "REQUEST_ID",
    "error",
    "error_handlers",
    "hex32",
    "hex_bytes",
    "invalid",
    "status_for",
]

REQUEST_ID: ContextVar[str | None] = ContextVar("afterchain_request_id", default=None)
"""The id of the request being answered (set by `node.http.middleware.RequestContext`)."""

INTERNAL = "internal"
"""The code of an unexpected failure (500); the node's log has the exception."""

HTTP_CODES = {
    400: "request.invalid",
    404: "route.not_found",
    405: "method.not_allowed",
    500: INTERNAL,
}
"""Codes of the errors the framework raises (starlette's `HTTPException`), by status;
any other such status gets ``http.<status>``."""

_log = module_logger()


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    rid = REQUEST_ID.get()
    if status == 500:
        _log.error("http_error", status=status, code=code, message=message, request_id=rid)
    return JSONResponse({"error": {"code": code, "message": message, "request_id": rid}}, status_code=status,
                        headers=headers)


def invalid(message: str) -> JSONResponse:
    """400 ``request.invalid``: a parameter that does not parse."""
    return error(400, "request.invalid", message)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    code = HTTP_CODES.get(status, f"http.{status}")
    if status == 404:
        message = f"no route {request.url.path}; the API reference is at /docs and /openapi.json"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    else:
        message = exc.detail
    return error(status, code, message, headers=dict(exc.headers) if exc.headers else None)


def error_handlers() -> dict[Any, Any]:
    """Starlette ``exception_handlers`` that answer in the error shape."""
    return {HTTPException: _http_exception}


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
