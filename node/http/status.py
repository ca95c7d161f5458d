"""Node status, health and metrics over HTTP.

- ``GET /v1/status``: the node's status JSON (height, view, peers, mempool, ...).
- ``GET /health``: ``{"ok", "reason"}``, 200 when healthy, 503 otherwise (load balancers
  and the cluster tools poll it).
- ``GET /metrics``: the Prometheus exposition, in its own content type.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from afterchain.node.http.ports import NodeReads

__all__ = ["status_routes"]


def status_routes(chain: NodeReads) -> list[Route]:
    async def status(request: Request) -> Response:
        return JSONResponse(chain.status_json())

    async def health(request: Request) -> Response:
        ok, reason = chain.health()
        return JSONResponse({"ok": ok, "reason": reason}, status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        body, ctype = chain.metrics_text()
        return Response(body, media_type=ctype)

    return [
        Route("/v1/status", status),
        Route("/health", health),
        Route("/metrics", metrics),
    ]
