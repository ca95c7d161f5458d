"""The node's HTTP API (starlette, served by hypercorn on trio): `build_app(service)`.

Assembles the routes of each resource family over one `NodeService`:
`node.http.writes` (submit, event status), `node.http.reads` (blocks, tickets,
products, orgs, accounts, escrows, balances, evidence), `node.http.status` (status,
liveness, readiness, health, metrics), `node.http.dashboard`, `node.http.proofs` (light clients),
`node.http.pages` (customer pages verified in the browser),
`node.http.governance`, `node.http.stream` (committed events as Server-Sent Events),
`node.http.admin` and `node.http.reference` (``/openapi.json``,
``/docs``). Every route is an `ApiRoute` that carries its documentation. JSON everywhere
unless stated; bytes are lowercase hex. GET requests of the read and proof routes carry CORS
headers for the configured origins (``[api] cors_origins``; never writes, admin or
metrics). Every answer carries ``X-Request-Id``
(`node.http.middleware`); every error, unknown routes and methods and unexpected failures
included, is ``{"error": {"code", "message", "request_id"}}`` (`node.http.errors`).
Paths of different families never overlap, so their order does not matter.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware

from afterchain.node.common.version import package_version
from afterchain.node.http.admin import admin_routes
from afterchain.node.http.dashboard import dashboard_routes
from afterchain.node.http.errors import error_handlers
from afterchain.node.http.governance import governance_routes
from afterchain.node.http.middleware import ReadCors, RequestContext
from afterchain.node.http.pages import page_routes
from afterchain.node.http.ports import NodeService
from afterchain.node.http.proofs import proof_routes
from afterchain.node.http.reads import read_routes
from afterchain.node.http.reference import reference_routes
from afterchain.node.http.status import status_routes
from afterchain.node.http.stream import stream_routes
from afterchain.node.http.writes import write_routes

__all__ = ["build_app"]


def build_app(service: NodeService, *, cors_origins: tuple[str, ...] = ("*",), access_log: bool = False) -> Starlette:
    """The API over `service`; `cors_origins`: the origins whose browser pages may GET the
    read and proof routes (`node.http.middleware.ReadCors`; () = none); `access_log`: one
    ``http_access`` log line per request (`node.http.middleware`)."""
    led = service.ledger
    app = Starlette(
        routes=[
            *write_routes(service),
            *read_routes(service, led),
            *status_routes(service),
            *dashboard_routes(),
            *proof_routes(service),
            *page_routes(),  # customer pages
            *governance_routes(led),
            *stream_routes(service.feed),
            *admin_routes(service.faults, service.admin_token, getattr(service, "take_snapshot", None)),
        ],
        middleware=[Middleware(RequestContext, access_log=access_log), Middleware(ReadCors, origins=tuple(cors_origins))],
        exception_handlers=error_handlers(),
    )
    app.router.routes.extend(reference_routes(lambda: app.routes, version=package_version()))
    # a path that differs from a route only by a trailing slash is not that route: it gets
    # the JSON 404 of every unknown path, never starlette's redirect (307) to the other one
    app.router.redirect_slashes = False
    return app
