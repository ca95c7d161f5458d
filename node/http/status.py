"""Node status, health and metrics over HTTP.

- ``GET /v1/status``: the node's status JSON (height, view, peers, mempool, ...).
- ``GET /health``: ``{"ok", "reason"}``, 200 when healthy, 503 otherwise (load balancers
  and the cluster tools poll it).
- ``GET /metrics``: the Prometheus exposition, in its own content type.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from afterchain.node.http.ports import NodeReads
from afterchain.node.http.spec import ApiRoute, Op, Resp

__all__ = ["status_routes"]


def status_routes(chain: NodeReads) -> list[ApiRoute]:
    async def status(request: Request) -> Response:
        return JSONResponse(chain.status_json())

    async def health(request: Request) -> Response:
        ok, reason = chain.health()
        return JSONResponse({"ok": ok, "reason": reason}, status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        body, ctype = chain.metrics_text()
        return Response(body, media_type=ctype)

    return [
        ApiRoute("/v1/status", status, Op("The node's status", "chain",
                                          {200: Resp("height, view, peers, mempool, intake counters, ...", "$ref:Status")})),
        ApiRoute("/health", health, Op("Health for load balancers", "chain",
                                       {200: Resp("healthy", "$ref:Health"),
                                        503: Resp("not healthy (too few peers, or catching up); `reason` says why",
                                                  "$ref:Health")})),
        ApiRoute("/metrics", metrics, Op("Prometheus metrics", "chain",
                                         {200: Resp("the Prometheus text exposition", {"type": "string"},
                                                    media="text/plain")})),
    ]
