"""Committed blocks: stored (synced), then executed by the ledger, then forgotten by the
mempool and the verified-event cache; the replica hears the new executed height.

`store_commits` writes several blocks (one catch-up answer) in ONE synced batch before the
first executes; `execute` stores and executes one. `replay_stored` at start-up executes
the stored blocks the ledger lost (a crash between store and execute).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import trio

from afterchain.consensus.messages import CertifiedBlock
from afterchain.consensus.params import ConsensusParams as ReplicaParams
from afterchain.node.app.ledger import Ledger
from afterchain.node.runtime import threads
from afterchain.node.runtime.chain_store import ChainStore
from afterchain.node.runtime.intake import KnownEvents
from afterchain.node.runtime.mempool import Mempool
from afterchain.node.runtime.metrics import NodeMetrics
from afterchain.protocol.block import Block, CommitCertificate
from afterchain.protocol.events import SignedEvent

__all__ = ["BlockExecutor", "replay_stored"]

Decoded = tuple[tuple[bytes, ...], list[SignedEvent | None]]


class ExecutedSink(Protocol):
    """What the executor tells the replica (`consensus.replica.Replica` is one)."""

    params: ReplicaParams

    def executed(self, height: int) -> None: ...


def replay_stored(store: ChainStore, ledger: Ledger, known: KnownEvents, log: Any) -> None:
    """Execute stored blocks the ledger has not (a crash between store and execute)."""
    while ledger.height < store.head:
        h = ledger.height + 1
        block = store.block(h)
        if block is None:
            break
        _, decoded = known.decode_committed(block)
        preverified = {d.id for d in decoded if d is not None}
        ledger.apply_block(h, block.header.time_ms, block.events, preverified=preverified, decoded=decoded)
        log.info("ledger_replayed_block", height=h)


class BlockExecutor:
    def __init__(self, *, store: ChainStore, ledger: Ledger, mempool: Mempool, known: KnownEvents,
                 arrival: dict[bytes, float], replica: ExecutedSink, on_checkpoint: Callable[[], None],
                 metrics: NodeMetrics, log: Any) -> None:
        self.store = store
        self.ledger = ledger
        self.mempool = mempool
        self.known = known
        self.arrival = arrival
        self.replica = replica
        self.on_checkpoint = on_checkpoint
        """Called after a checkpoint height executes (the ledger schedules validator sets there)."""
        self.metrics = metrics
        self.log = log
        self.dirty_height = 0  # last executed height whose block had events
        self.last_commit_wall_ms: int | None = None
        self._last_commit_s = 0.0

    async def store_commits(self, commits: Sequence[CertifiedBlock]) -> None:
        """Several blocks committed at once (catch-up: a fetched answer): stored in ONE synced
        batch, then executed in order. Safe: each has a verified commit certificate, the
        batch is atomic and durable before the ledger applies any of them (the same "stored,
        synced, then executed" order as one block at a time), and nothing this node signs
        depends on them before that; a crash loses none or all of them (fetched again)."""
        pre = [(cb, self.known.decode_committed(cb.block)) for cb in commits]
        items = [(cb.block, cb.certificate, [d.id for d in dec if d is not None]) for cb, (_, dec) in pre]
        t0 = time.perf_counter()
        await threads.run_sync(self.store.commit_blocks, items)
        self.metrics.fsync_latency.observe(time.perf_counter() - t0)
        for cb, done in pre:
            await self.execute(cb.block, cb.certificate, stored=done)
            await trio.lowlevel.checkpoint()  # let fetches, the transport and the API run between blocks

    async def execute(self, block: Block, cert: CommitCertificate, stored: Decoded | None = None) -> None:
        """Store (synced) and execute one committed block; `stored`: already stored by
        `store_commits`, with its `decode_committed` result."""
        h = block.header.height
        hashes, decoded = self.known.decode_committed(block) if stored is None else stored
        ids = [d.id for d in decoded if d is not None]
        senders = {d.event.sender for d in decoded if d is not None}
        preverified = set(ids)
        if stored is None:
            t0 = time.perf_counter()
            await threads.run_sync(self.store.commit_block, block, cert, ids)
            self.metrics.fsync_latency.observe(time.perf_counter() - t0)
        result = self.ledger.apply_block(h, block.header.time_ms, block.events, preverified=preverified, decoded=decoded)
        all_ids = [o.event_id for o in result.outcomes]
        if result.sla_breaches:
            self.metrics.sla_breaches.inc(result.sla_breaches)
            self.log.info("sla_breaches", height=h, count=result.sla_breaches)
        if block.events:
            self.dirty_height = h
        dropped = self.mempool.on_commit(h, all_ids, senders)
        if dropped:
            self.store.journal_drop(dropped)
        now = time.monotonic()
        arrival_pop = self.arrival.pop
        observe = self.metrics.commit_latency.observe
        refused: dict[str, int] = {}
        for o in result.outcomes:
            t = arrival_pop(o.event_id, None)
            if t is not None:
                observe(now - t)
            if o.code != "ok":
                refused[o.code] = refused.get(o.code, 0) + 1
        # counters once per block, not per event (each `inc` takes a lock)
        self.metrics.events_committed.inc(len(result.outcomes) - sum(refused.values()))
        for code, n in refused.items():
            self.metrics.events_rejected.labels(code).inc(n)
        self.known.committed(hashes, decoded)
        if self._last_commit_s:
            self.metrics.block_interval.observe(now - self._last_commit_s)
        self._last_commit_s = now
        self.last_commit_wall_ms = int(time.time() * 1000)
        self.log.debug("block_committed", height=h, events=len(block.events), accepted=result.accepted)
        if h % self.replica.params.checkpoint_interval == 0:
            self.on_checkpoint()
        self.replica.executed(h)
