"""Ledger and chain reads over HTTP (all GET, JSON; bytes are lowercase hex).

- ``/v1/blocks/{height}[?outcomes=1]``: a committed block (404 ``block.not_found``).
- ``/v1/tickets/{id}``: a ticket (404 ``ticket.not_found``).
- ``/v1/products/{gtin}/{serial}`` and ``.../history``: a product and its history
  (404 ``product.not_found``).
- ``/v1/orgs``: the member organisations (removed ones left out);
  ``/v1/orgs/{org}/quality`` (404 ``org.not_found``); ``/v1/orgs/{org}/tickets[?status=S]``.
- ``/v1/customers/{key}/tickets``: a customer's tickets.
- ``/v1/accounts/{key}``: the committed nonce and the next free one (mempool included).
- ``/v1/escrows/{id}`` (404 ``escrow.not_found``); ``/v1/balances/{account}``.
- ``/v1/evidence[?validator=K]``: recorded equivocation evidence, and what this node
  observed and reported itself.

Keys and ids in paths are 64 hex characters (400 ``request.invalid`` otherwise). Governance
reads live in `node.http.governance`, proofs in `node.http.proofs`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from afterchain.node.common.files import jsonable
from afterchain.node.http.errors import error, hex32, hex_bytes, invalid
from afterchain.node.http.ports import LedgerReads, NodeReads

__all__ = ["read_routes"]


def read_routes(chain: NodeReads, led: LedgerReads) -> list[Route]:
    async def block(request: Request) -> Response:
        h = request.path_params["height"]
        b = chain.block_json(h, outcomes=request.query_params.get("outcomes") in ("1", "true"))
        if b is None:
            return error(404, "block.not_found", f"no committed block at height {h}")
        return JSONResponse(b)

    async def ticket(request: Request) -> Response:
        tid = hex32(request.path_params["ticket_id"])
        if tid is None:
            return invalid("a ticket id is 64 hex characters")
        t = led.ticket(tid)
        if t is None:
            return error(404, "ticket.not_found", "no such ticket")
        return JSONResponse({"id": tid.hex(), **jsonable(t)})

    async def product(request: Request) -> Response:
        gtin, serial = request.path_params["gtin"], request.path_params["serial"]
        p = led.product(gtin, serial)
        if p is None:
            return error(404, "product.not_found", f"no product {gtin}/{serial}")
        return JSONResponse({"gtin": gtin, "serial": serial, **jsonable(p)})

    async def product_history(request: Request) -> Response:
        gtin, serial = request.path_params["gtin"], request.path_params["serial"]
        if led.product(gtin, serial) is None:
            return error(404, "product.not_found", f"no product {gtin}/{serial}")
        return JSONResponse({"gtin": gtin, "serial": serial, "history": jsonable(led.product_history(gtin, serial))})

    async def quality(request: Request) -> Response:
        org = request.path_params["org"]
        q = led.quality(org)
        if q is None:
            return error(404, "org.not_found", f"no quality report for {org!r}")
        return JSONResponse({"org": org, **jsonable(q)})

    async def org_tickets(request: Request) -> Response:
        org = request.path_params["org"]
        status = request.query_params.get("status")
        ids = led.tickets_by_org(org, status)
        return JSONResponse({"org": org, "status": status, "tickets": [i.hex() for i in ids]})

    async def customer_tickets(request: Request) -> Response:
        key = hex32(request.path_params["key"])
        if key is None:
            return invalid("a key is 64 hex characters")
        return JSONResponse({"customer": key.hex(), "tickets": [i.hex() for i in led.tickets_by_customer(key)]})

    async def account(request: Request) -> Response:
        key = hex32(request.path_params["key"])
        if key is None:
            return invalid("a key is 64 hex characters")
        pending = chain.pending_nonces(key)
        last = led.nonce(key)
        return JSONResponse({"key": key.hex(), "nonce": last, "next_nonce": max([last, *pending]) + 1})

    async def escrow(request: Request) -> Response:
        eid = hex_bytes(request.path_params["escrow_id"])
        if eid is None:
            return invalid("an escrow id is 64 hex characters")
        e = led.escrow(eid)
        if e is None:
            return error(404, "escrow.not_found", "no such escrow")
        return JSONResponse({"id": eid.hex(), **jsonable(e)})

    async def balance(request: Request) -> Response:
        acct = request.path_params["account"]
        return JSONResponse({"account": acct, "balance": led.balance(acct)})

    async def orgs(request: Request) -> Response:
        # the ledger's members (governance admits and removes them), removed ones left out
        return JSONResponse({"orgs": [
            {"org_id": org_id, "name": o["name"], "roles": o["roles"], "keys": [k.hex() for k in o["keys"]]}
            for org_id, o in led.orgs() if o.get("removed") is None
        ]})

    async def evidence(request: Request) -> Response:
        who = request.query_params.get("validator")
        key = None
        if who is not None:
            key = hex32(who)
            if key is None:
                return invalid("a validator key is 64 hex characters")
        observed, reported = chain.evidence_seen()
        return JSONResponse({
            "evidence": [jsonable(r) for r in led.evidence(validator=key, limit=1000)],
            "observed": {k.hex(): n for k, n in sorted(observed.items())},
            "reported": reported,
        })

    return [
        Route("/v1/blocks/{height:int}", block),
        Route("/v1/tickets/{ticket_id}", ticket),
        Route("/v1/products/{gtin}/{serial}", product),
        Route("/v1/products/{gtin}/{serial}/history", product_history),
        Route("/v1/orgs/{org}/quality", quality),
        Route("/v1/orgs/{org}/tickets", org_tickets),
        Route("/v1/customers/{key}/tickets", customer_tickets),
        Route("/v1/accounts/{key}", account),
        Route("/v1/escrows/{escrow_id}", escrow),
        Route("/v1/balances/{account}", balance),
        Route("/v1/orgs", orgs),
        Route("/v1/evidence", evidence),
    ]
