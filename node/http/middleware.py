"""Request ids and the last line of defence against unexpected failures (pure ASGI).

`RequestContext` wraps the app: every HTTP response carries ``X-Request-Id`` (the
client's own if it sent a sane one, 1-128 characters of ``A-Z a-z 0-9 . _ : -``, else a
fresh random one), the id is visible to handlers through `node.http.errors.REQUEST_ID`
(so error bodies carry it), and an exception that escapes a route is logged with the
request id, method and path and answered 500 ``internal`` in the error shape. Nothing of
the exception reaches the client. Cancellation (a BaseException) passes through.

With `access_log` (``log.access_log`` in the node's configuration; off by default: a busy
node answers thousands of requests a second), every answered request is one
``http_access`` line: method, path (without the query string, which may carry an
account), status, ``duration_ms``, ``request_id`` and the client's address.
"""

from __future__ import annotations

import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from afterchain.node.common.log import module_logger
from afterchain.node.http.errors import INTERNAL, REQUEST_ID

__all__ = ["CORS_CLOSED_PREFIXES", "REQUEST_ID_HEADER", "ReadCors", "RequestContext", "request_id_of"]

REQUEST_ID_HEADER = "X-Request-Id"
_SANE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

_log = module_logger()


def request_id_of(given: str | None) -> str:
    """The client's request id if it is sane, else a new one (32 hex characters)."""
    if given is not None and _SANE_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


class RequestContext:
    def __init__(self, app: ASGIApp, *, access_log: bool = False) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id_of(Headers(scope=scope).get(REQUEST_ID_HEADER))
        token = REQUEST_ID.set(rid)
        started = False
        status = 0
        t0 = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            _log.error("http_internal_error", request_id=rid, method=scope.get("method"), path=scope.get("path"),
                       exc_info=exc)
            if started:  # too late for an answer: the server closes the connection
                raise
            response = JSONResponse({"error": {"code": INTERNAL, "request_id": rid, "message":
                                               "the node failed to answer this request; its log has the details"}},
                                    status_code=500)
            await response(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
            if self.access_log:
                client = scope.get("client")
                _log.info("http_access", method=scope.get("method"), path=scope.get("path"), status=status,
                          duration_ms=round((time.perf_counter() - t0) * 1000, 3), request_id=rid,
                          client=client[0] if client else None)


CORS_CLOSED_PREFIXES = ("/v1/admin", "/metrics")
"""Paths that never get CORS headers (besides every non-GET request)."""


class ReadCors:
    """CORS for the read and proof routes only: a GET or HEAD request (or the preflight of
    one) to a path outside `CORS_CLOSED_PREFIXES` goes through starlette's `CORSMiddleware`
    (`origins`, methods GET and HEAD, ``X-Request-Id`` allowed and exposed); every other
    request (writes, admin, metrics) passes untouched, so a browser page of another origin
    can neither read their answers nor send them with custom headers."""

    def __init__(self, app: ASGIApp, origins: tuple[str, ...]) -> None:
        self.app = app
        self.cors: ASGIApp | None = None
        if origins:
            self.cors = CORSMiddleware(app, allow_origins=list(origins), allow_methods=["GET", "HEAD"],
                                       allow_headers=[REQUEST_ID_HEADER], expose_headers=[REQUEST_ID_HEADER], max_age=600)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.cors is not None and scope["type"] == "http" and self._open(scope):
            await self.cors(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _open(scope: Scope) -> bool:
        path = scope.get("path", "")
        if path.startswith(CORS_CLOSED_PREFIXES):
            return False
        method = scope.get("method")
        if method in ("GET", "HEAD"):
            return True
        if method == "OPTIONS":  # a preflight: only for a GET or HEAD
            wanted = Headers(scope=scope).get("access-control-request-method", "")
            return wanted in ("GET", "HEAD")
        return False
