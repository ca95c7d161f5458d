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
from afterchain.node.common.rocks import StorageFault, report_storage_fault
from afterchain.node.runtime import threads
from afterchain.node.runtime.chain_store import ChainStore
from afterchain.node.runtime.feed import EventFeed
from afterchain.node.runtime.intake import KnownEvents
from afterchain.node.runtime.mempool import Mempool
from afterchain.node.runtime.metrics import NodeMetrics
from afterchain.protocol.block import Block, CommitCertificate
from afterchain.protocol.events import SignedEvent

__all__ = ["BlockExecutor", "StateDivergence", "replay_stored"]

Decoded = tuple[tuple[bytes, ...], list[SignedEvent | None]]


class StateDivergence(Exception):
    """A certified header names a state root this node's ledger does not have at that
    height: its application diverged from the validators' (a bug, a different version,
    a damaged store). The node stops rather than serve a state nobody certified."""


class ExecutedSink(Protocol):
    """What the executor tells the replica (`consensus.replica.Replica` is one)."""

    params: ReplicaParams

    def executed(self, height: int) -> None: ...


def replay_stored(store: ChainStore, ledger: Ledger, known: KnownEvents, log: Any, feed: EventFeed | None = None) -> None:
    """Execute stored blocks the ledger has not (a crash between store and execute); the
    feed (if any) tags them as `BlockExecutor.execute` does.

    A ledger ahead of the chain store means the chain store lost blocks it had synced (each
    block is stored, synced, before the ledger applies it): a damaged or truncated data
    file. That is a `StorageFault` (the node stops); the node never votes on a chain that
    forgot what it signed."""
    if ledger.height > store.head:
        fault = StorageFault("corruption", "chain", "start",
                             f"the state store has executed height {ledger.height} but the chain store ends at "
                             f"{store.head}: the chain store lost blocks it had synced")
        report_storage_fault(fault)
        raise fault
    while ledger.height < store.head:
        h = ledger.height + 1
        block = store.block(h)
        if block is None:
            break
        _, decoded = known.decode_committed(block)
        preverified = {d.id for d in decoded if d is not None}
        before = feed.prepare(decoded) if feed is not None else None
        # synced once, at the last stored block (see `BlockExecutor.store_commits`)
        result = ledger.apply_block(h, block.header.time_ms, block.events, preverified=preverified, decoded=decoded,
                                    sync=h >= store.head)
        if feed is not None and before is not None:
            feed.executed(block, decoded, result, before)
        log.info("ledger_replayed_block", height=h)


class BlockExecutor:
    def __init__(self, *, store: ChainStore, ledger: Ledger, mempool: Mempool, known: KnownEvents,
                 arrival: dict[bytes, float], replica: ExecutedSink, on_checkpoint: Callable[[], None],
                 metrics: NodeMetrics, log: Any, feed: EventFeed | None = None) -> None:
        self.store = store
        self.ledger = ledger
        self.mempool = mempool
        self.known = known
        self.arrival = arrival
        self.replica = replica
        self.on_checkpoint = on_checkpoint
        """Called after a checkpoint height executes (the ledger schedules validator sets
        there) and after a block that registered or removed member node keys."""
        self.metrics = metrics
        self.log = log
        self.feed = feed
        """Told of each block around its execution (`node.runtime.feed`: stream subscribers)."""
        self.on_committed: Callable[[Block, CommitCertificate], None] | None = None
        """Told of each committed block once its state root check passed, before it is
        stored and executed (the dissemination relay, `node.runtime.relay`: a certified
        block can be relayed at once; its push then leaves while the chain store syncs)."""
        self.dirty_height = 0  # last executed height whose block had events
        self.verified_height = 0
        """The highest height whose state root matched a certified header here."""
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
        last = len(pre) - 1
        for i, (cb, done) in enumerate(pre):
            # The blocks are durable in the chain store: the ledger syncs its write only for
            # the last one (a synced write makes the earlier ones durable too; after a crash
            # `replay_stored` executes whatever the ledger lost).
            await self.execute(cb.block, cb.certificate, stored=done, sync=i == last)
            await trio.lowlevel.checkpoint()  # let fetches, the transport and the API run between blocks

    def check_state_root(self, block: Block) -> None:
        """The certified header of `block` names the state root after `state_height`
        (executed here, since state_height < height): it must be this ledger's. Every node
        checks it; for a member it is what makes its state certified (`verified_height`)."""
        hdr = block.header
        mine = self.ledger.root_at(hdr.state_height)
        if mine is None:
            return  # older than the roots the ledger keeps (cannot happen within max_state_lag)
        if mine != hdr.state_root:
            self.log.critical("state_root_mismatch", height=hdr.height, state_height=hdr.state_height,
                              certified=hdr.state_root.hex(), local=mine.hex())
            raise StateDivergence(
                f"block {hdr.height} is certified with state root {hdr.state_root.hex()[:16]}... at height "
                f"{hdr.state_height}, but this node's state there is {mine.hex()[:16]}...: its application diverged "
                "from the validators'; the node stops (restore its data from a trusted node and check its version)")
        self.verified_height = max(self.verified_height, hdr.state_height)

    def _feed_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """The feed serves clients: a failure there is logged, never the consensus loop's."""
        try:
            return fn(*args)
        except Exception:
            self.log.exception("feed_failed", height=args[0].header.height if isinstance(args[0], Block) else None)
            return None

    async def execute(self, block: Block, cert: CommitCertificate, stored: Decoded | None = None, *,
                      sync: bool = True) -> None:
        """Store (synced) and execute one committed block; `stored`: already stored by
        `store_commits`, with its `decode_committed` result; `sync=False`: the ledger's write
        need not wait for the disk (see `store_commits`)."""
        h = block.header.height
        self.check_state_root(block)
        if self.on_committed is not None:
            self.on_committed(block, cert)
        hashes, decoded = self.known.decode_committed(block) if stored is None else stored
        ids = [d.id for d in decoded if d is not None]
        senders = {d.event.sender for d in decoded if d is not None}
        preverified = set(ids)
        if stored is None:
            t0 = time.perf_counter()
            await threads.run_sync(self.store.commit_block, block, cert, ids)
            self.metrics.fsync_latency.observe(time.perf_counter() - t0)
        feed = self.feed
        before = self._feed_call(feed.prepare, decoded) if feed is not None else None
        result = self.ledger.apply_block(h, block.header.time_ms, block.events, preverified=preverified, decoded=decoded,
                                         sync=sync)
        if feed is not None and before is not None:
            self._feed_call(feed.executed, block, decoded, result, before)
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
        if h % self.replica.params.checkpoint_interval == 0 or result.node_keys_changed:
            self.on_checkpoint()
        self.replica.executed(h)
