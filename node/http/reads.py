"""Ledger and chain reads over HTTP (all GET, JSON; bytes are lowercase hex).

- ``/v1/blocks/{height}[?outcomes=1]``: a committed block (404 ``block.not_found``).
- ``/v1/tickets/{id}``: a ticket (404 ``ticket.not_found``).
- ``/v1/products/{gtin}/{serial}`` and ``.../history``: a product and its history
  (404 ``product.not_found``).
- ``/v1/orgs``: the member organisations (removed ones left out);
  ``/v1/orgs/{org}/quality`` (404 ``org.not_found``); ``/v1/orgs/{org}/tickets[?status=S]``.
- ``/v1/nodes``: every registered member node key; ``/v1/orgs/{org}/nodes``: one
  organisation's (an unknown organisation has none).
- ``/v1/customers/{key}/tickets``: a customer's tickets.
- ``/v1/accounts/{key}``: the committed nonce and the next free one (mempool included).
- ``/v1/escrows/{id}`` (404 ``escrow.not_found``); ``/v1/balances/{account}``.
- ``/v1/evidence[?validator=K]``: recorded equivocation evidence, and what this node
  observed and reported itself.

List answers come in pages (`node.http.paging`): ``?cursor=&limit=`` in, ``next_cursor``
out (null at the end).

Parameters are parsed by `node.http.params` (400 ``request.invalid`` when malformed): keys
and ids are 64 hex characters, heights decimal u64, organisation ids, GTINs and serials
as the protocol defines them. Governance
reads live in `node.http.governance`, proofs in `node.http.proofs`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from afterchain.node.common.files import jsonable
from afterchain.node.http.errors import error
from afterchain.node.http.paging import PAGE_PARAMS, encode_cursor, filtered_page, read_page
from afterchain.node.http.params import ACCOUNT, BOOL_FLAG, GTIN, HEIGHT, HEX32, ORG_ID, SERIAL, TICKET_STATUS, Param
from afterchain.node.http.ports import LedgerReads, NodeReads
from afterchain.node.http.spec import ApiRoute, Err, Op, Resp

__all__ = ["MAX_NODES_LISTED", "read_routes"]

MAX_NODES_LISTED = 4096
"""Most node keys `/v1/nodes` lists (``truncated`` says when there are more)."""

HEIGHT_P = Param("height", "path", HEIGHT, "a block height (the first block is 1)", "a height")
OUTCOMES_P = Param("outcomes", "query", BOOL_FLAG, "1 or true: add the ledger's verdict on each event")
TICKET_ID_P = Param("ticket_id", "path", HEX32, "the ticket's id (the id of the event that opened it)", "a ticket id")
GTIN_P = Param("gtin", "path", GTIN, "the product's GTIN-14")
SERIAL_P = Param("serial", "path", SERIAL, "the product's serial (GS1 AI 21)")
ORG_P = Param("org", "path", ORG_ID, "an organisation id", "an organisation id")
STATUS_P = Param("status", "query", TICKET_STATUS, "only tickets in this status")
CUSTOMER_P = Param("key", "path", HEX32, "the customer's public key", "a key")
ACCOUNT_KEY_P = Param("key", "path", HEX32, "the sender's public key", "a key")
ESCROW_P = Param("escrow_id", "path", HEX32, "the escrow's id (the id of the event that opened it)", "an escrow id")
ACCOUNT_P = Param("account", "path", ACCOUNT, "an organisation id, or cust: and a customer's key in hex", "an account")
VALIDATOR_P = Param("validator", "query", HEX32, "only evidence against this validator key", "a validator key")


def read_routes(chain: NodeReads, led: LedgerReads) -> list[ApiRoute]:
    async def block(request: Request) -> Response:
        h = HEIGHT_P.read(request)
        b = chain.block_json(h, outcomes=OUTCOMES_P.flag(request))
        if b is None:
            return error(404, "block.not_found", f"no committed block at height {h}")
        return JSONResponse(b)

    async def ticket(request: Request) -> Response:
        tid = TICKET_ID_P.read(request)
        t = led.ticket(tid)
        if t is None:
            return error(404, "ticket.not_found", "no such ticket")
        return JSONResponse({"id": tid.hex(), **jsonable(t)})

    async def product(request: Request) -> Response:
        gtin, serial = GTIN_P.read(request), SERIAL_P.read(request)
        p = led.product(gtin, serial)
        if p is None:
            return error(404, "product.not_found", f"no product {gtin}/{serial}")
        return JSONResponse({"gtin": gtin, "serial": serial, **jsonable(p)})

    async def product_history(request: Request) -> Response:
        gtin, serial = GTIN_P.read(request), SERIAL_P.read(request)
        page = read_page(request)
        if led.product(gtin, serial) is None:
            return error(404, "product.not_found", f"no product {gtin}/{serial}")
        # append-only: the position is the index of the page's last entry
        start = 0 if page.after is None else int.from_bytes(page.after, "big") + 1
        hist = led.product_history(gtin, serial)
        items = hist[start:start + page.limit]
        more = start + page.limit < len(hist)
        return JSONResponse({"gtin": gtin, "serial": serial, "history": jsonable(items),
                             "next_cursor": encode_cursor((start + page.limit - 1).to_bytes(4, "big")) if more else None})

    async def quality(request: Request) -> Response:
        org = ORG_P.read(request)
        q = led.quality(org)
        if q is None:
            return error(404, "org.not_found", f"no quality report for {org!r}")
        return JSONResponse({"org": org, **jsonable(q)})

    async def org_tickets(request: Request) -> Response:
        org = ORG_P.read(request)
        status = STATUS_P.read(request)
        page = read_page(request)
        ids, nxt = page.answer(led.ticket_page(org=org, status=status, limit=page.limit + 1, after=page.after))
        return JSONResponse({"org": org, "status": status, "tickets": [i.hex() for i in ids], "next_cursor": nxt})

    async def customer_tickets(request: Request) -> Response:
        key = CUSTOMER_P.read(request)
        page = read_page(request)
        ids, nxt = page.answer(led.ticket_page(customer=key, limit=page.limit + 1, after=page.after))
        return JSONResponse({"customer": key.hex(), "tickets": [i.hex() for i in ids], "next_cursor": nxt})

    async def account(request: Request) -> Response:
        key = ACCOUNT_KEY_P.read(request)
        # the first nonce no pending event holds: a rejected event's nonce is reused
        return JSONResponse({"key": key.hex(), "nonce": led.nonce(key), "next_nonce": chain.next_nonce(key)})

    async def escrow(request: Request) -> Response:
        eid = ESCROW_P.read(request)
        e = led.escrow(eid)
        if e is None:
            return error(404, "escrow.not_found", "no such escrow")
        return JSONResponse({"id": eid.hex(), **jsonable(e)})

    async def balance(request: Request) -> Response:
        acct = ACCOUNT_P.read(request)
        return JSONResponse({"account": acct, "balance": led.balance(acct)})

    async def orgs(request: Request) -> Response:
        # the ledger's members (governance admits and removes them), removed ones left out
        page = read_page(request)

        def fetch(after: bytes | None, n: int) -> list[tuple[bytes, tuple[str, dict[str, Any]]]]:
            return [(org_id.encode(), (org_id, o)) for org_id, o in led.orgs(limit=n, after=after)]

        def member(row: tuple[str, dict[str, Any]]) -> dict[str, Any] | None:
            org_id, o = row
            if o.get("removed") is not None:
                return None
            return {"org_id": org_id, "name": o["name"], "roles": o["roles"], "keys": [k.hex() for k in o["keys"]]}

        items, nxt = filtered_page(page, fetch, member)
        return JSONResponse({"orgs": items, "next_cursor": nxt})

    def node_json(key: bytes, rec: dict[str, Any]) -> dict[str, Any]:
        return {"key": key.hex(), "org": rec["org"], "since_ms": rec["since"],
                "height": rec["height"]}

    async def nodes(request: Request) -> Response:
        found = led.node_keys(limit=MAX_NODES_LISTED + 1)
        return JSONResponse({"nodes": [node_json(k, r) for k, r in found[:MAX_NODES_LISTED]],
                             "truncated": len(found) > MAX_NODES_LISTED})

    async def org_nodes(request: Request) -> Response:
        org = ORG_P.read(request)
        return JSONResponse({"org": org, "nodes": [node_json(k, r) for k, r in led.node_keys(org=org)]})

    async def evidence(request: Request) -> Response:
        key = VALIDATOR_P.read(request)
        page = read_page(request)
        records, nxt = page.answer(led.evidence_page(validator=key, limit=page.limit + 1, after=page.after))
        observed, reported = chain.evidence_seen()
        return JSONResponse({
            "evidence": [jsonable(r) for r in records], "next_cursor": nxt,
            "observed": {k.hex(): n for k, n in sorted(observed.items())},
            "reported": reported,
        })

    return [
        ApiRoute("/v1/blocks/{height}", block, Op(
            "A committed block", "chain",
            {200: Resp("the block: header, certificate and event ids (and outcomes on request)", "$ref:Block"),
             404: Err("no committed block at that height", ("block.not_found",))}, params=(HEIGHT_P, OUTCOMES_P))),
        ApiRoute("/v1/tickets/{ticket_id}", ticket, Op(
            "A ticket", "ledger", {200: Resp("the ticket", "$ref:Ticket"),
                                   404: Err("no such ticket", ("ticket.not_found",))}, params=(TICKET_ID_P,))),
        ApiRoute("/v1/products/{gtin}/{serial}", product, Op(
            "A product", "ledger", {200: Resp("the product", "$ref:Product"),
                                    404: Err("no such product", ("product.not_found",))}, params=(GTIN_P, SERIAL_P))),
        ApiRoute("/v1/products/{gtin}/{serial}/history", product_history, Op(
            "A product's history", "ledger",
            {200: Resp("a page of its history, oldest first", "$ref:ProductHistory"),
             404: Err("no such product", ("product.not_found",))}, params=(GTIN_P, SERIAL_P, *PAGE_PARAMS))),
        ApiRoute("/v1/orgs/{org}/quality", quality, Op(
            "An organisation's service-quality report", "ledger",
            {200: Resp("the report (integers)", "$ref:Quality"),
             404: Err("no report for that organisation", ("org.not_found",))}, params=(ORG_P,))),
        ApiRoute("/v1/orgs/{org}/tickets", org_tickets, Op(
            "Tickets assigned to an organisation", "ledger",
            {200: Resp("a page of ticket ids (by status, then id)", "$ref:OrgTickets")},
            params=(ORG_P, STATUS_P, *PAGE_PARAMS))),
        ApiRoute("/v1/customers/{key}/tickets", customer_tickets, Op(
            "A customer's tickets", "ledger",
            {200: Resp("a page of ticket ids (by id)", "$ref:CustomerTickets")}, params=(CUSTOMER_P, *PAGE_PARAMS))),
        ApiRoute("/v1/accounts/{key}", account, Op(
            "A sender's nonces", "events",
            {200: Resp("the committed nonce and the next free one (the mempool included)", "$ref:Account")},
            params=(ACCOUNT_KEY_P,))),
        ApiRoute("/v1/escrows/{escrow_id}", escrow, Op(
            "An escrow", "ledger", {200: Resp("the escrow", "$ref:Escrow"),
                                    404: Err("no such escrow", ("escrow.not_found",))}, params=(ESCROW_P,))),
        ApiRoute("/v1/balances/{account}", balance, Op(
            "An account's balance", "ledger", {200: Resp("the balance in minor units (0 for an unknown account)",
                                                         "$ref:Balance")}, params=(ACCOUNT_P,))),
        ApiRoute("/v1/orgs", orgs, Op(
            "The member organisations", "ledger",
            {200: Resp("a page of members by org id (removed ones left out)", "$ref:Orgs")}, params=PAGE_PARAMS)),
        ApiRoute("/v1/nodes", nodes, Op(
            "Registered member node keys", "ledger",
            {200: Resp(f"every organisation's node keys, in key order (at most {MAX_NODES_LISTED})", "$ref:NodeKeys")},
            description="Keys that organisations registered with node.register: with the validators' keys, the "
                        "peer allowlist of every node.")),
        ApiRoute("/v1/orgs/{org}/nodes", org_nodes, Op(
            "An organisation's member node keys", "ledger",
            {200: Resp("its registered node keys (none for an unknown organisation)", "$ref:OrgNodeKeys")},
            params=(ORG_P,))),
        ApiRoute("/v1/evidence", evidence, Op(
            "Equivocation evidence", "chain",
            {200: Resp("a page of recorded evidence (by validator, phase, view, seq), and what this node "
                       "observed and reported itself", "$ref:Evidence")}, params=(VALIDATOR_P, *PAGE_PARAMS))),
    ]
