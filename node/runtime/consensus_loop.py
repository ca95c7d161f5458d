"""The consensus task: the only code that drives the replica.

Every input (`inputs.PeerMessage`, `Tick`, `FetchedBlocks`, `Nudge`) goes through one
bounded channel and is handled to the end, including its `Ready`, before the next. So the
replica is never touched concurrently and the order persist -> send -> commit -> execute
holds (`ConsensusLoop.handle_ready`):

1. `persist`: consensus records appended to the chain store's WAL, one synced batch;
2. `sends`: messages queued on each peer's outbox, never awaited (a slow peer cannot stall
   the replica); a pre-prepare goes compact (its events travel by gossip);
3. `fetches`: catch-up requests, started as background tasks before the commits execute,
   so the next range is on its way while the current one executes;
4. `commits`: each block + certificate stored (synced), then executed (`BlockExecutor`);
5. `evidence`: counted and reported on chain (`EvidenceReporter`).

`Proposer` holds the proposal timing rule (see `NodeOptions.busy_block_events`). Ticks
do not queue up while the task is busy (`ConsensusLoop.ticker`). A test-only `SendHook`
may add a message after each one sent (node/testing/byzantine.py); production has none.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import trio

from afterchain.consensus.messages import CheckpointProof, ConsensusMessage, PrePrepareMsg
from afterchain.consensus.replica import Ready, Replica, prunable
from afterchain.node.app.ledger import Ledger
from afterchain.node.common.log import short_id
from afterchain.node.runtime import clock, threads
from afterchain.node.runtime.chain_store import ChainStore
from afterchain.node.runtime.evidence import EvidenceReporter
from afterchain.node.runtime.executor import BlockExecutor
from afterchain.node.runtime.gossip import Outboxes
from afterchain.node.runtime.inputs import FetchedBlocks, InputQueue, PeerMessage, Tick
from afterchain.node.runtime.mempool import Mempool
from afterchain.node.runtime.metrics import NodeMetrics
from afterchain.node.runtime.options import NodeOptions
from afterchain.node.runtime.peer_inbox import compact_bytes
from afterchain.protocol.codec import Message, decode
from afterchain.protocol.genesis import ConsensusParams as GenesisConsensusParams

__all__ = ["ConsensusLoop", "ConsensusWal", "Proposer", "SendHook"]

SendHook = Callable[[ConsensusMessage], ConsensusMessage | None]
"""TEST ONLY: given a message this node sends, another one to send after it (or None)."""


class ConsensusWal:
    """The replica's persisted records in the chain store, in order, keyed by a sequence."""

    def __init__(self, store: ChainStore, metrics: NodeMetrics) -> None:
        self.store = store
        self.metrics = metrics
        self.records: list[tuple[bytes, Message]] = []
        self._seq = 0

    def load(self) -> list[Message]:
        """The stored records (at start-up, for `PersistedState`)."""
        out: list[Message] = []
        for k, v in self.store.consensus_records():
            out.append(decode(v, max_bytes=1 << 30))
            self.records.append((k, out[-1]))
            self._seq = max(self._seq, int.from_bytes(k, "big") + 1)
        return out

    async def persist(self, records: list[Message]) -> None:
        t0 = time.perf_counter()
        items = []
        for rec in records:
            k = self._seq.to_bytes(8, "big")
            self._seq += 1
            self.records.append((k, rec))
            items.append((k, rec.encode()))
        # fsync on a worker thread (RocksDB releases the GIL): the replica still waits for
        # it (persist before send) but the API, gossip and transport keep running
        await threads.run_sync(self.store.persist, items)
        self.metrics.fsync_latency.observe(time.perf_counter() - t0)

    def prune(self, stable_seq: int) -> None:
        # keep the newest stable checkpoint proof; drop what it makes obsolete
        newest_proof = max((k for k, rec in self.records if isinstance(rec, CheckpointProof)), default=None)
        drop = [k for k, rec in self.records if prunable(rec, stable_seq) and k != newest_proof]
        if drop:
            self.store.persist((k, None) for k in drop)
            dropset = set(drop)
            self.records = [(k, rec) for k, rec in self.records if k not in dropset]


class Proposer:
    """When this node, as primary, pre-prepares the next block; see `NodeOptions`."""

    def __init__(self, *, replica: Replica, mempool: Mempool, ledger: Ledger, options: NodeOptions,
                 params_for: Callable[[int], GenesisConsensusParams], dirty_height: Callable[[], int]) -> None:
        self.replica = replica
        self.mempool = mempool
        self.ledger = ledger
        self.options = options
        self.params_for = params_for
        self.dirty_height = dirty_height
        self.last_propose_s = 0.0  # monotonic
        self.last_events = 0  # events in the last proposal
        self.published_height = 0  # state height named by this node's last proposal

    def maybe_propose(self) -> None:
        r = self.replica
        if not (r.is_primary and r.active) or not r.can_propose():
            return
        now = time.monotonic()
        since_ms = (now - self.last_propose_s) * 1000
        cp = self.params_for(r.next_seq)
        if since_ms < cp.block_interval_ms:
            return
        has_events = self.mempool.any_proposable()
        opts = self.options
        if (has_events and self.last_events >= opts.busy_block_events and since_ms < opts.busy_block_interval_ms
                and self.mempool.unproposed() < min(opts.full_block_events, cp.max_block_events)):
            return  # busy: let this block fill (see NodeOptions.busy_block_events)
        # after blocks with events, one more block puts the resulting state root in a header
        unpublished = self.published_height < self.dirty_height() <= self.ledger.height
        # heartbeats well inside the view timeout: a backup's timer restarts at each commit,
        # so an idle cluster changes view whenever heartbeat + commit latency > the timeout
        heartbeat_ms = min(opts.heartbeat_ms, cp.view_timeout_ms // 4)
        if has_events or unpublished or since_ms >= heartbeat_ms:
            executed = self.ledger.height
            seq = r.next_seq
            if r.propose(clock.wall_ms()):
                block = r.own_proposal(seq)
                payload = block.events if block is not None else ()
                self.last_propose_s = now
                self.last_events = len(payload)
                self.published_height = executed
                ids = [eid for raw in payload if (eid := self.mempool.id_of(raw)) is not None]
                self.mempool.mark_proposed(seq, ids)


class ConsensusLoop:
    """See the module docstring. `run` needs `outboxes.nursery` set (`Node.run`)."""

    def __init__(self, *, replica: Replica, inputs: InputQueue, wal: ConsensusWal, proposer: Proposer,
                 executor: BlockExecutor, outboxes: Outboxes, unsent: Callable[[], set[bytes]],
                 connected: Callable[[], set[bytes]],
                 fetch: Callable[[bytes, int, int], Any], evidence: EvidenceReporter, mempool: Mempool,
                 me: bytes, tick_ms: int, counters: dict[str, int], metrics: NodeMetrics, log: Any,
                 send_hook: SendHook | None = None, may_send: Callable[[], bool] = lambda: True,
                 relay: Callable[[bytes], None] | None = None,
                 arrived: Callable[[int], None] | None = None) -> None:
        self.replica = replica
        self.inputs = inputs
        self.wal = wal
        self.proposer = proposer
        self.executor = executor
        self.outboxes = outboxes
        self.unsent = unsent
        self.fetch = fetch
        self.evidence = evidence
        self.mempool = mempool
        self.me = me
        self.tick_ms = tick_ms
        self.counters = counters
        self.metrics = metrics
        self.log = log
        self.send_hook = send_hook
        self.may_send = may_send
        """False on a member node (`member.MemberSendGate`): its replica's messages (STATUS
        only: it signs no vote) are withheld and counted."""
        self.relay = relay
        """Gossips one encoded event to the peers (request timers relay held events at T1)."""
        self.arrived = arrived
        """Told when the peer message being stepped came off the transport (0 after it):
        `ConsensusApp.received_ms`, against which a proposed block's time is judged."""
        self.connected = connected
        """The transport's connected peers: each tick, the replica greets those whose link
        opened since the last one (`Replica.greet`: its STATUS at once)."""
        self._greeted: set[bytes] = set()
        self._tick_queued = False
        self._stable_seen = 0
        self._view_seen = 0
        self._fetchers: trio.Nursery | None = None

    async def run(self) -> None:
        r = self.replica
        async with trio.open_nursery() as fetchers:
            self._fetchers = fetchers
            async for item in self.inputs.recv:
                if isinstance(item, PeerMessage):
                    if self.arrived is not None:
                        self.arrived(item.received_ms)
                    try:
                        stepped = r.step(item.msg, item.sender)
                    finally:
                        if self.arrived is not None:
                            self.arrived(0)
                    if not stepped:
                        self.metrics.peer_messages_rejected.labels("consensus").inc()
                        self.log.debug("peer_message_rejected", peer=short_id(item.sender), kind=type(item.msg).__name__)
                elif isinstance(item, Tick):
                    self._tick_queued = False
                    # request timers: the mempool's held / released events, then the tick
                    hold, release = self.mempool.take_timer_changes()
                    if release:
                        r.release(release)
                    if hold:
                        r.hold(hold)
                    r.tick()
                    self._greet_new_peers()
                elif isinstance(item, FetchedBlocks):
                    for cb in item.blocks:
                        r.deliver_block(cb)
                self.proposer.maybe_propose()
                while r.has_ready():
                    await self.handle_ready(r.ready())
                    self.proposer.maybe_propose()

    def _greet_new_peers(self) -> None:
        now = self.connected()
        if now != self._greeted:
            for peer in sorted(now - self._greeted):
                self.replica.greet(peer)
            self._greeted = set(now)

    async def ticker(self) -> None:
        """One tick per `tick_ms`, but at most one queued: while the consensus task is busy
        (a big block executing, a burst of messages) ticks do not pile up behind the
        messages that would have reset the view timer and then fire all at once. So the
        view timer measures time this node was ready to hear its peers, and a slow node
        does not start view changes that only its own slowness caused."""
        while True:
            await trio.sleep(self.tick_ms / 1000)
            if self._tick_queued:
                self.counters["ticks_coalesced"] += 1
                continue
            self._tick_queued = True
            await self.inputs.put(Tick())

    async def handle_ready(self, rd: Ready) -> None:
        r = self.replica
        if rd.persist:
            await self.wal.persist(rd.persist)
        sends = rd.sends
        if sends and not self.may_send():
            self.metrics.replica_sends_withheld.inc(len(sends))
            sends = []
        for s in sends:  # queued, never awaited here: a slow peer cannot stall the replica
            # a pre-prepare goes compact: its events travel by gossip (see CompactPrePrepareMsg)
            data = compact_bytes(s.message, self.unsent()) if type(s.message) is PrePrepareMsg else s.message.encode()
            for peer in (r.validators.validators if s.to is None else (s.to,)):
                if peer != self.me and self.outboxes.put(peer, data):
                    self.counters["outbox_dropped"] += 1
            if self.send_hook is not None:
                extra = self.send_hook(s.message)
                if extra is not None:
                    self.outboxes.put_existing(list(self.outboxes.boxes) if s.to is None else (s.to,), extra.encode())
        # catch-up requests first: they run in the background while the commits execute
        for fr in rd.fetches:
            assert self._fetchers is not None
            self._fetchers.start_soon(self.fetch, fr.peer, fr.from_height, fr.count)
        if len(rd.commits) > 1:
            await self.executor.store_commits(rd.commits)
        else:
            for cb in rd.commits:
                await self.executor.execute(cb.block, cb.certificate)
        if rd.forwards:
            raws = self.mempool.raw_by_digest(rd.forwards)
            self.metrics.request_forwards.inc(len(raws))
            if self.relay is not None:
                for raw in raws:
                    self.relay(raw)
            self.log.debug("request_forwarded", events=len(raws), primary=short_id(r.primary), view=rd.view)
        for digest, primary, reason in rd.expired:
            self.metrics.request_timer_expiries.labels(reason).inc()
            eid = self.mempool.held_event_id(digest)
            self.log.warning("request_timer_expired", reason=reason, primary=short_id(primary), new_view=rd.view,
                             event_id=eid.hex() if eid is not None else None, event_digest=digest.hex(),
                             held_events=len(r.held))
        for ev in rd.evidence:
            self.metrics.evidence.inc()
            self.log.warning("equivocation_evidence", kind=type(ev).__name__,
                             validator=short_id(bytes(ev.first.body.replica)))  # type: ignore[attr-defined]
            self.evidence.record(ev)
        if rd.stable_seq > self._stable_seen:
            self._stable_seen = rd.stable_seq
            self.wal.prune(rd.stable_seq)
        r.advance(rd)
        if r.view != self._view_seen:
            if r.view > self._view_seen:
                self.metrics.view_changes.inc()
                self.mempool.release_inflight()
                self.log.info("view_changed", view=r.view, primary=short_id(r.primary))
            self._view_seen = r.view
