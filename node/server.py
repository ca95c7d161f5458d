"""Running a node process: config -> keys, genesis, libp2p transport, `Node`, HTTP API.

`run_node(config)` is what `afterchain node run --config node.toml` calls; `serve_api`
serves `node.http.app.build_app` over a `Node` (through `node.http.service.NodeHttp`).
Also owns the process's GC and malloc tuning. Routes live in `node.http`.
"""

from __future__ import annotations

import gc
import logging
import signal
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve

from afterchain.node.common.files import load_genesis
from afterchain.node.common.keys import load_key
from afterchain.node.common.log import bind_process, configure, get_logger, short_id
from afterchain.node.http.admin import load_admin_token
from afterchain.node.http.app import build_app
from afterchain.node.http.service import NodeHttp
from afterchain.node.runtime.config import NodeConfig
from afterchain.node.runtime.memory import reporter as memory_reporter
from afterchain.node.runtime.memory import start_tracing, trimmer, tune_malloc
from afterchain.node.runtime.runner import Node, NodeOptions, SendHook
from afterchain.protocol.types import ValidatorId

__all__ = ["run_node", "serve_api"]


async def serve_api(node: Node, host: str, port: int, *, admin_token: str | None = None,
                    cors_origins: tuple[str, ...] = ("*",), access_log: bool = False,
                    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """`access_log`: one ``http_access`` line per request (our middleware writes them;
    hypercorn's own text access log stays off). Hypercorn's errors go to the standard
    logger ``hypercorn.error`` (from level warning), rendered like every other line
    (node.common.log)."""
    cfg = HyperConfig()
    cfg.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]  # an IPv6 address goes in brackets
    cfg.accesslog = None
    cfg.errorlog = errorlog = logging.getLogger("hypercorn.error")
    if errorlog.level == logging.NOTSET:  # its info lines ("Running on ...") repeat our api_listening
        errorlog.setLevel(logging.WARNING)
    cfg.keep_alive_timeout = 30
    app = build_app(NodeHttp(node, admin_token=admin_token), cors_origins=cors_origins, access_log=access_log)
    await serve(app, cfg, task_status=task_status)  # type: ignore[arg-type]


async def _state_sync(config: NodeConfig, key: Any, genesis: Any, peers: dict[bytes, str], log: Any) -> None:
    """`[statesync] enable`: on an empty data directory, fill it from a snapshot fetched
    from peers (node.runtime.statesync) over a transport of its own, closed afterwards (the
    node then starts its own on the same address). Without a usable snapshot the node
    replays the chain from genesis, as without state sync."""
    from afterchain.node.runtime.statesync import StateSyncError, state_sync
    from afterchain.node.transport.p2p import P2PTransport

    data = config.data_dir
    if data.exists() and any(data.iterdir()):
        log.info("statesync_skipped", reason="the data directory is not empty", data_dir=str(data))
        return
    transport = P2PTransport(seed=key.seed, listen_addr=config.p2p.listen_multiaddr, peers=peers)
    async with trio.open_nursery() as nursery:
        await nursery.start(transport.run)
        try:
            await state_sync(transport, genesis, data, log, discovery_s=config.statesync.discovery_s)
        except StateSyncError as exc:
            log.error("statesync_failed", error=str(exc), fallback="replaying the chain from genesis")
        nursery.cancel_scope.cancel()


GC_THRESHOLDS = (20_000, 20, 20)
"""The cyclic GC of a running node: start-up objects (modules, genesis, compiled contracts)
are frozen out of its scans, and young collections run every 20,000 net allocations instead
of 700. The node's per-event objects are acyclic (freed by reference counting), so the
default thresholds spent CPU under load scanning for cycles that are not there."""


def _tune_gc() -> None:
    # A young collection, not a full one: a full one scans the whole start-up heap (modules
    # and all) on the path of a restarted node's catch-up, to find almost no garbage; what
    # start-up left is frozen as it is.
    gc.collect(1)
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def run_node(config: NodeConfig, *, send_hook: SendHook | None = None) -> None:
    """`send_hook`: test only (node/testing/byzantine.py); production passes none."""
    tune_malloc()  # before RocksDB's and trio's threads exist (node.memory)
    configure(json=None if config.log.format == "auto" else config.log.format == "json", level=config.log.level)
    key = load_key(config.key_file, passphrase_file=config.key_passphrase_file)
    bind_process(node=config.name, node_key=short_id(key.public))  # on every line, library records included
    log = get_logger()
    genesis = load_genesis(config.genesis_file)
    admin_token = load_admin_token(config.api.admin_token_file)
    from afterchain.node.app.vm.agreements import VmAgreementHooks, VmContractHost
    from afterchain.node.transport.p2p import P2PTransport

    peers = {p.key: p.multiaddr for p in config.p2p.peers}  # a name is resolved at each dial (transport)
    me = ValidatorId(key.public)  # a validator is known by its public key
    if me in genesis.validators:
        missing = [v.hex()[:16] for v in genesis.validators.validators if v != me and v not in peers]
        if missing:
            raise ValueError(f"p2p.peers: no address for validator(s) {', '.join(missing)}")
    else:
        # a joining node: it follows the chain as an observer and votes once governance
        # has added its key and that epoch has started (docs/OPERATIONS.md, "Governance")
        if not peers:
            raise ValueError(f"p2p.peers: key {key.public.hex()[:16]}... is not a genesis validator, so this node "
                             "joins an existing network: list at least one running node to catch up from")
        log.info("node_joining", key=key.public.hex(), peers=len(peers))
    if config.statesync.enable:
        await _state_sync(config, key, genesis, peers, log)
    transport = P2PTransport(seed=key.seed, listen_addr=config.p2p.listen_multiaddr, peers=peers)
    host = VmContractHost()
    start_tracing()  # AFTERCHAIN_TRACEMALLOC (diagnostics, off by default)
    options = NodeOptions(
        name=config.name, max_events=config.mempool.max_events, max_bytes=config.mempool.max_bytes,
        per_sender_quota=config.mempool.per_sender_quota,
        max_gapped_events=config.mempool.max_gapped_events, max_gapped_per_sender=config.mempool.max_gapped_per_sender, max_request_bytes=config.api.max_request_bytes,
        max_batch_events=config.api.max_batch_events,
        stream_max_subscribers=config.api.stream_max_subscribers,
        stream_max_per_client=config.api.stream_max_per_client, stream_queue_events=config.api.stream_queue_events,
        verify_event_signatures=config.member.verify_event_signatures, member_poll_ms=config.member.poll_ms,
        relay=config.member.relay,
        snapshot_interval=config.statesync.snapshot_interval, snapshot_keep=config.statesync.snapshot_keep,
        request_forward_ms=config.consensus.request_forward_ms,
        request_timeout_ms=config.consensus.request_timeout_ms, slow_blocks=config.consensus.slow_blocks,
    )

    def snapshot_vm() -> dict[str, Any]:  # a fresh VM host for each snapshot (finished on a worker thread)
        h = VmContractHost()
        return {"hooks": VmAgreementHooks(h), "contracts": h}

    node = Node(key=key, genesis=genesis, data_dir=config.data_dir, transport=transport, options=options,
                ledger_hooks=VmAgreementHooks(host), contracts=host, send_hook=send_hook,
                snapshot_finish_args=snapshot_vm)
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        # how other operators reach this node: its libp2p peer id (from its key) and full
        # multiaddrs (docs/OPERATIONS.md, "Running a member node"); also in /v1/status
        from afterchain.node.transport.p2p import peer_id_for

        pid = str(peer_id_for(key.public))
        node.status.identity = {"peer_id": pid, "multiaddrs": [f"{a}/p2p/{pid}" for a in transport.listen_addrs()]}
        log.info("node_identity", role=node.role(), key=key.public.hex(), **node.status.identity)
        bound = await nursery.start(partial(serve_api, admin_token=admin_token, cors_origins=config.api.cors_origins,
                                          access_log=config.log.access_log),
                                  node, config.api.host, config.api.port)
        log.info("api_listening", addrs=bound)
        _tune_gc()
        nursery.start_soon(trimmer)
        nursery.start_soon(memory_reporter, node, log)  # AFTERCHAIN_MEMREPORT_S (off by default)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for sig in signals:
                log.info("node_stopping", signal=signal.Signals(sig).name)
                nursery.cancel_scope.cancel()
                break
