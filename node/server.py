"""Running a node process: config -> keys, genesis, libp2p transport, `Node`, HTTP API.

`run_node(config)` is what `afterchain node run --config node.toml` calls. `NodeHttp`
adapts a `Node` to the API's `NodeService` (reads are JSON-ready: bytes become hex).
"""

from __future__ import annotations

import gc
import signal
from functools import partial
from pathlib import Path
from typing import Any

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from afterchain.node.common.files import jsonable, load_genesis
from afterchain.node.common.keys import load_key
from afterchain.node.common.log import configure, get_logger
from afterchain.node.http.admin import admin_routes, load_admin_token
from afterchain.node.http.api import build_app, error, hex32
from afterchain.node.http.governance import governance_routes
from afterchain.node.http.proofs import proof_routes
from afterchain.node.runtime.config import NodeConfig
from afterchain.node.runtime.memory import reporter as memory_reporter
from afterchain.node.runtime.memory import start_tracing, trimmer, tune_malloc
from afterchain.node.runtime.mempool import AddOutcome
from afterchain.node.runtime.runner import Node, NodeOptions, SendHook
from afterchain.protocol.errors import ProtocolError

__all__ = ["NodeHttp", "jsonable", "load_genesis", "run_node", "serve_api"]

DASHBOARD_HTML = Path(__file__).parent / "http" / "dashboard" / "index.html"


class NodeHttp:
    """The API's view of a node."""

    def __init__(self, node: Node, *, admin_token: str | None = None) -> None:
        self.node = node
        self.admin_token = admin_token
        self.chain_id = node.chain_id
        self.max_request_bytes = node.options.max_request_bytes
        self.max_batch_events = node.options.max_batch_events

    async def submit(self, raws: list[bytes], pre_errors: dict[int, ProtocolError]) -> list[AddOutcome]:
        return await self.node.submit(raws, pre_errors)

    def event_status(self, event_id: bytes) -> dict[str, Any] | None:
        return self.node.event_status(event_id)

    def block_json(self, height: int, *, outcomes: bool = False) -> dict[str, Any] | None:
        return self.node.block_json(height, outcomes=outcomes)

    def ticket_json(self, ticket_id: bytes) -> dict[str, Any] | None:
        t = self.node.ledger.ticket(ticket_id)
        return None if t is None else {"id": ticket_id.hex(), **jsonable(t)}

    def status_json(self) -> dict[str, Any]:
        return self.node.status_json()

    def health(self) -> tuple[bool, str]:
        return self.node.health()

    def metrics_text(self) -> tuple[bytes, str]:
        return self.node.metrics.render()

    def extra_routes(self) -> list[Route]:
        led = self.node.ledger

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
            try:
                key = bytes.fromhex(request.path_params["key"])
            except ValueError:
                key = b""
            if len(key) != 32:
                return error(400, "request.invalid", "a key is 64 hex characters")
            return JSONResponse({"customer": key.hex(), "tickets": [i.hex() for i in led.tickets_by_customer(key)]})

        async def account(request: Request) -> Response:
            try:
                key = bytes.fromhex(request.path_params["key"])
            except ValueError:
                return error(400, "request.invalid", "a key is 64 hex characters")
            if len(key) != 32:
                return error(400, "request.invalid", "a key is 64 hex characters")
            pending = self.node.mempool.pending_nonces(key)
            last = led.nonce(key)
            return JSONResponse({"key": key.hex(), "nonce": last, "next_nonce": max([last, *pending]) + 1})

        async def escrow(request: Request) -> Response:
            try:
                eid = bytes.fromhex(request.path_params["escrow_id"])
            except ValueError:
                return error(400, "request.invalid", "an escrow id is 64 hex characters")
            e = led.escrow(eid)
            if e is None:
                return error(404, "escrow.not_found", "no such escrow")
            return JSONResponse({"id": eid.hex(), **jsonable(e)})

        async def orgs(request: Request) -> Response:
            # the ledger's members (governance admits and removes them), removed ones left out
            return JSONResponse({"orgs": [
                {"org_id": org_id, "name": o["name"], "roles": o["roles"], "keys": [k.hex() for k in o["keys"]]}
                for org_id, o in led.orgs() if o.get("removed") is None
            ]})

        async def dashboard(request: Request) -> Response:
            return HTMLResponse(DASHBOARD_HTML.read_text())

        async def evidence(request: Request) -> Response:
            who = request.query_params.get("validator")
            key = None
            if who is not None:
                key = hex32(who)
                if key is None:
                    return error(400, "request.invalid", "a validator key is 64 hex characters")
            rep = self.node.evidence_reporter
            return JSONResponse({
                "evidence": [jsonable(r) for r in led.evidence(validator=key, limit=1000)],
                "observed": {k.hex(): n for k, n in sorted(rep.observed.items())},
                "reported": rep.submitted,
            })

        async def balance(request: Request) -> Response:
            acct = request.path_params["account"]
            return JSONResponse({"account": acct, "balance": led.balance(acct)})

        return [
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
            Route("/", dashboard),
            *proof_routes(self.node),
            *governance_routes(led),
            *admin_routes(self.node.transport, self.admin_token),
        ]


async def serve_api(node: Node, host: str, port: int, *, admin_token: str | None = None,
                    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    cfg = HyperConfig()
    cfg.bind = [f"{host}:{port}"]
    cfg.accesslog = None
    cfg.errorlog = None
    cfg.keep_alive_timeout = 30
    app = build_app(NodeHttp(node, admin_token=admin_token))
    await serve(app, cfg, task_status=task_status)  # type: ignore[arg-type]


GC_THRESHOLDS = (20_000, 20, 20)
"""The cyclic GC of a running node: start-up objects (modules, genesis, compiled contracts)
are frozen out of its scans, and young collections run every 20,000 net allocations instead
of 700. The node's per-event objects are acyclic (freed by reference counting); with the
defaults the collector took 3.5-4.5% of a node's CPU under load (perf, issue 10)."""


def _tune_gc() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def run_node(config: NodeConfig, *, send_hook: SendHook | None = None) -> None:
    """`send_hook`: test only (node/testing/byzantine.py); production passes none."""
    tune_malloc()  # before RocksDB's and trio's threads exist (node.memory)
    configure(json=None if config.log.format == "auto" else config.log.format == "json", level=config.log.level)
    log = get_logger(node=config.name)
    key = load_key(config.key_file)
    genesis = load_genesis(config.genesis_file)
    admin_token = load_admin_token(config.api.admin_token_file)
    from afterchain.node.app.vm.agreements import VmAgreementHooks, VmContractHost
    from afterchain.node.transport.p2p import P2PTransport

    peers = {p.key: f"/ip4/{p.host}/tcp/{p.port}" for p in config.p2p.peers}
    if key.public in genesis.validators:
        missing = [v.hex()[:16] for v in genesis.validators.validators if v != key.public and v not in peers]
        if missing:
            raise ValueError(f"p2p.peers: no address for validator(s) {', '.join(missing)}")
    else:
        # a joining node: it follows the chain as an observer and votes once governance
        # has added its key and that epoch has started (docs/OPERATIONS.md, "Governance")
        if not peers:
            raise ValueError(f"p2p.peers: key {key.public.hex()[:16]}... is not a genesis validator, so this node "
                             "joins an existing network: list at least one running node to catch up from")
        log.info("node_joining", key=key.public.hex(), peers=len(peers))
    transport = P2PTransport(seed=key.seed, listen_addr=f"/ip4/{config.p2p.host}/tcp/{config.p2p.port}", peers=peers)
    host = VmContractHost()
    start_tracing()  # AFTERCHAIN_TRACEMALLOC (diagnostics, off by default)
    options = NodeOptions(
        name=config.name, max_events=config.mempool.max_events, max_bytes=config.mempool.max_bytes,
        per_sender_quota=config.mempool.per_sender_quota, max_request_bytes=config.api.max_request_bytes,
        max_batch_events=config.api.max_batch_events,
    )
    node = Node(key=key, genesis=genesis, data_dir=config.data_dir, transport=transport, options=options,
                ledger_hooks=VmAgreementHooks(host), contracts=host, send_hook=send_hook)
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        bound = await nursery.start(partial(serve_api, admin_token=admin_token), node, config.api.host, config.api.port)
        log.info("api_listening", addrs=bound)
        _tune_gc()
        nursery.start_soon(trimmer)
        nursery.start_soon(memory_reporter, node, log)  # AFTERCHAIN_MEMREPORT_S (off by default)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for sig in signals:
                log.info("node_stopping", signal=signal.Signals(sig).name)
                nursery.cancel_scope.cancel()
                break
