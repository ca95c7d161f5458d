"""The node's HTTP API (starlette, served by hypercorn on trio): `build_app(service)`.

Assembles the routes of each resource family over one `NodeService`:
`node.http.writes` (submit, event status), `node.http.reads` (blocks, tickets,
products, orgs, accounts, escrows, balances, evidence), `node.http.status` (status,
health, metrics), `node.http.dashboard`, `node.http.proofs` (light clients),
`node.http.governance` and `node.http.admin`. JSON everywhere unless stated; errors are
``{"error": {"code", "message"}}`` (`node.http.errors`); bytes are lowercase hex.
Paths of different families never overlap, so their order does not matter. Unknown
paths and methods get starlette's plain 404 / 405.
"""

from __future__ import annotations

from starlette.applications import Starlette

from afterchain.node.http.admin import admin_routes
from afterchain.node.http.dashboard import dashboard_routes
from afterchain.node.http.governance import governance_routes
from afterchain.node.http.ports import NodeService
from afterchain.node.http.proofs import proof_routes
from afterchain.node.http.reads import read_routes
from afterchain.node.http.status import status_routes
from afterchain.node.http.writes import write_routes

__all__ = ["build_app"]


def build_app(service: NodeService) -> Starlette:
    led = service.ledger
    return Starlette(routes=[
        *write_routes(service),
        *read_routes(service, led),
        *status_routes(service),
        *dashboard_routes(),
        *proof_routes(service),
        *governance_routes(led),
        *admin_routes(service.faults, service.admin_token),
    ])
