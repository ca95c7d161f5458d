"""Node status, liveness, readiness and metrics over HTTP.

- ``GET /v1/status``: the node's status JSON (versions, height, view, peers, mempool, ...).
- ``GET /livez``: 200 ``{"live": true}`` whenever the process answers: for an
  orchestrator's liveness probe (restart on failure). It checks nothing else on purpose: a
  node that is partitioned or catching up is alive, and restarting it would not help.
- ``GET /readyz``: 200 when the node is ready to serve (enough peers, caught up: see
  `node.runtime.status`), 503 otherwise; the body says why (``reasons``) and gives the
  figures. For a readiness probe and load balancers (take the node out of rotation),
  never for restarts.
- ``GET /health``: kept for compatibility: ``/readyz``'s verdict as ``{"ok", "reason"}``
  (200 / 503). New set-ups use ``/livez`` and ``/readyz``.
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

    async def livez(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def readyz(request: Request) -> Response:
        ready = chain.readiness()
        return JSONResponse(ready, status_code=200 if ready["ready"] else 503)

    async def health(request: Request) -> Response:
        ok, reason = chain.health()
        return JSONResponse({"ok": ok, "reason": reason}, status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        body, ctype = chain.metrics_text()
        return Response(body, media_type=ctype)

    return [
        ApiRoute("/v1/status", status, Op("The node's status", "chain",
                                          {200: Resp("versions, height, view, peers, mempool, intake counters, ...",
                                                     "$ref:Status")})),
        ApiRoute("/livez", livez, Op(
            "Liveness: the process serves", "chain", {200: Resp("the node process answers", "$ref:Liveness")},
            description="For an orchestrator's liveness probe (restart when it fails to answer). It is 200 whenever "
                        "the process answers: a partitioned or catching-up node is alive.")),
        ApiRoute("/readyz", readyz, Op(
            "Readiness: enough peers and caught up", "chain",
            {200: Resp("ready", "$ref:Readiness"),
             503: Resp("not ready; `reasons` says why (too few peers, catching up, executing)", "$ref:Readiness")},
            description="For a readiness probe or a load balancer, never for restarts (a partition makes every node "
                        "unready at once). Ready: a validator is connected to at least 2f other validators, an "
                        "observer to at least one peer whose height it has heard; and no peer reported a height more "
                        "than `max_lag` (two checkpoint intervals) above this node's.")),
        ApiRoute("/health", health, Op(
            "Readiness, in the form of earlier releases", "chain",
            {200: Resp("ready", "$ref:Health"),
             503: Resp("not ready (too few peers, or catching up); `reason` says why", "$ref:Health")},
            description="Kept for compatibility: `/readyz`'s verdict as `{ok, reason}`. Use `/livez` for restarts and "
                        "`/readyz` for traffic.")),
        ApiRoute("/metrics", metrics, Op("Prometheus metrics", "chain",
                                         {200: Resp("the Prometheus text exposition", {"type": "string"},
                                                    media="text/plain")})),
    ]
