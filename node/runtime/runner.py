"""The node: builds the runtime's components around one PBFT replica and runs them.

`Node` owns the lifecycle: it opens the chain store and the ledger, replays stored blocks
the ledger lost, restores the replica from its WAL, wires the components (each gets only
what it uses), starts their tasks in `run` and closes the stores. The components:

- `intake.KnownEvents` / `intake.Intake`: events by hash, verified once; admission to the
  mempool (backpressure, journal), peers' gossip backlog;
- `gossip`: the events topic (batches, flush, re-gossip) and the per-peer outboxes;
- `peer_inbox.PeerInbox`: consensus messages from peers (compact pre-prepares rebuilt);
- `catchup.CatchUp`: serving and fetching blocks and events;
- `consensus_loop`: the consensus task (inputs, `Ready` handling, proposal timing), with
  `executor.BlockExecutor` storing and executing committed blocks;
- `app_adapter.ConsensusApp`: the replica's `Application`;
- `member`: the member role (a key in no current validator set): `BlockReceiver` (the one
  door for certified blocks), `Follower` (polls peers for them), `MemberSendGate` (a
  member's replica sends nothing);
- `relay.RelayService`: the dissemination relay (docs/PROTOCOL.md section 11) of certified
  blocks to every node and of members' events towards the validators, over a bounded set
  of peers (`NodeOptions.relay`; off: members follow by polling only);
- `ratelimit.PeerLimiter`: per-peer limits on `FollowRequest`s and relay messages served;
- `status.NodeStatus`: the API's reads.

A test-only `send_hook` (node/testing/byzantine.py) may be given; production passes none.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import trio

from afterchain.consensus.evidence import check_evidence
from afterchain.consensus.replica import PersistedState, Replica
from afterchain.node.app.ledger import Ledger
from afterchain.node.common.log import get_logger, short_id
from afterchain.node.runtime.app_adapter import ConsensusApp
from afterchain.node.runtime.catchup import CatchUp
from afterchain.node.runtime.chain_store import ChainStore
from afterchain.node.runtime.consensus_loop import ConsensusLoop, ConsensusWal, Proposer, SendHook
from afterchain.node.runtime.evidence import EvidenceReporter
from afterchain.node.runtime.executor import BlockExecutor, replay_stored
from afterchain.node.runtime.feed import EventFeed
from afterchain.node.runtime.gossip import Gossip, GossipQueue, Outboxes
from afterchain.node.runtime.inputs import InputQueue
from afterchain.node.runtime.intake import Intake, KnownEvents, stateful_check
from afterchain.node.runtime.member import BlockReceiver, Follower, MemberSendGate
from afterchain.node.runtime.mempool import AddOutcome, Mempool
from afterchain.node.runtime.metrics import NodeMetrics
from afterchain.node.runtime.options import NodeOptions, consensus_params_at, replica_params, request_timers
from afterchain.node.runtime.peer_inbox import PeerInbox
from afterchain.node.runtime.ratelimit import PeerLimiter
from afterchain.node.runtime.relay import RelayService, event_checker
from afterchain.node.runtime.statesync import SnapshotServer
from afterchain.node.runtime.status import NodeStatus
from afterchain.node.runtime.traffic import traffic_label
from afterchain.node.transport.base import Transport
from afterchain.protocol.crypto import KeyPair
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.genesis import Genesis
from afterchain.protocol.jsonform import to_json

__all__ = ["Node", "NodeOptions", "SendHook"]

_COUNTERS = (
    "outbox_dropped", "gossip_dropped_events", "intake_refused_events", "gossip_known_events", "ticks_coalesced",
    # event signatures checked, by where (each event once per node is the goal)
    "verified_api", "verified_gossip", "verified_preprepare", "verified_payload",
    # compact pre-prepares taken, events they carried (prefilled), events asked of their
    # sender, and those dropped for want of events
    "preprepare_compact", "preprepare_prefilled", "preprepare_events_fetched", "preprepare_dropped",
    # proposed blocks refused for their time: ahead of / behind this node's clock beyond the bound
    "block_time_future", "block_time_past",
)


class Node:
    """One validator node. Create, then `await nursery.start(node.run)`."""

    def __init__(
        self,
        *,
        key: KeyPair,
        genesis: Genesis,
        data_dir: str | Path,
        transport: Transport,
        options: NodeOptions | None = None,
        ledger_hooks: Any = None,
        contracts: Any = None,
        send_hook: SendHook | None = None,
        snapshot_finish_args: Any = None,
    ) -> None:
        self.key = key
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.options = opts = options or NodeOptions()
        self.transport = transport
        self.data_dir = Path(data_dir)
        self.metrics = metrics = NodeMetrics()
        self.log = log = get_logger(node=opts.name, node_key=short_id(key.public))
        self.store = store = ChainStore(self.data_dir / "chain")
        # the chain store keeps the blocks; the ledger need not keep a second copy. Nor need
        # it fsync: a block is in the chain store (synced) before the ledger applies it, the
        # ledger writes each block as one atomic batch, and at start-up `replay_stored`
        # re-executes whatever stored blocks the ledger lost. Its caches are sized below the
        # library defaults: a node's memory stays flat under load (docs/OPERATIONS.md).
        self.ledger = ledger = Ledger.open(str(self.data_dir / "state"), genesis, ledger_hooks, contracts,
                                           keep_blocks=False, sync=False, node_cache_nodes=32_768,
                                           state_cache_entries=8_192, evidence_check=check_evidence)
        self.counters: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self.arrival: dict[bytes, float] = {}  # event id -> admitted here (monotonic s)
        self.known = known = KnownEvents(self.chain_id, self.counters)
        self.mempool = mempool = Mempool(
            max_events=opts.max_events, max_bytes=opts.max_bytes, per_sender_quota=opts.per_sender_quota,
            max_gapped_events=opts.max_gapped_events, max_gapped_per_sender=opts.max_gapped_per_sender,
            expected_nonce=lambda sender: ledger.nonce(sender) + 1,
            stateful_check=stateful_check(ledger), is_committed=ledger.has_outcome,
        )
        self.consensus_params = functools.partial(consensus_params_at, ledger, genesis)
        self.inputs = inputs = InputQueue()
        self.gossip_queue = GossipQueue()
        self.intake = intake = Intake(known=known, mempool=mempool, store=store, options=opts, metrics=metrics, log=log,
                                      counters=self.counters, arrival=self.arrival, gossip=self._gossip_event,
                                      nudge=inputs.nudge)
        self.send_gate = MemberSendGate(key.public)
        self.gossip = Gossip(transport=transport, queue=self.gossip_queue, mempool=mempool, arrival=self.arrival,
                             offer=self._offer_gossip, metrics=metrics, log=log)
        self.gossip.gossip_to = lambda: self._validator_keys
        self.outboxes = Outboxes(transport, log)
        self.inbox = PeerInbox(transport=transport, known=known, inputs=inputs, counters=self.counters,
                               metrics=metrics, log=log)
        self.evidence_reporter = EvidenceReporter(key=key, chain_id=self.chain_id, submit=intake.submit,
                                                  committed_nonce=ledger.nonce, pending_nonces=mempool.pending_nonces,
                                                  log=log)
        self.started = trio.Event()
        self._chain_peers: set[bytes] = set()  # the allowlist `_sync_peers` derived from the chain last
        self._validator_keys: frozenset[bytes] = frozenset(genesis.validators.validators)  # of every scheduled set
        self.feed = feed = EventFeed(store=store, ledger=ledger, max_subscribers=opts.stream_max_subscribers,
                                     max_per_client=opts.stream_max_per_client, queue_events=opts.stream_queue_events,
                                     log=log)
        metrics.bind_feed(feed.stats)
        replay_stored(store, ledger, known, log, feed)
        self.app = ConsensusApp(ledger=ledger, mempool=mempool, known=known, params_for=self.consensus_params,
                                counters=self.counters, log=log)
        self.wal = ConsensusWal(store, metrics)
        self.replica = replica = self._restore_replica()
        self.app.attach(replica)
        # state sync: periodic snapshots offered to peers (`snapshot_finish_args()`: the
        # hooks and contracts `finish_snapshot` executes with, a fresh VM host each time)
        self.snapshots = SnapshotServer(ledger=ledger, store=store, genesis=genesis, data_dir=self.data_dir, log=log,
                                        interval=opts.snapshot_interval, keep=opts.snapshot_keep,
                                        finish_args=snapshot_finish_args or dict)
        metrics.bind_statesync(self.snapshots.metrics)
        self.catchup = CatchUp(store=store, transport=transport, inputs=inputs, preprepared=replica.preprepared_blocks,
                               raw_by_hash=known.raw_by_hash, log=log, more=self.snapshots)
        self.executor = executor = BlockExecutor(store=store, ledger=ledger, mempool=mempool, known=known,
                                                 arrival=self.arrival, replica=replica, on_checkpoint=self._sync_peers,
                                                 metrics=metrics, log=log, feed=feed)
        self.proposer = Proposer(replica=replica, mempool=mempool, ledger=ledger, options=opts,
                                 params_for=self.consensus_params, dirty_height=lambda: executor.dirty_height)
        self.loop = ConsensusLoop(replica=replica, inputs=inputs, wal=self.wal, proposer=self.proposer,
                                  executor=executor, outboxes=self.outboxes, unsent=self.gossip_queue.unsent,
                                  connected=transport.connected_peers, fetch=self.catchup.fetch,
                                  evidence=self.evidence_reporter, mempool=mempool,
                                  me=key.public, tick_ms=opts.tick_ms, counters=self.counters, metrics=metrics,
                                  log=log, send_hook=send_hook, may_send=self.send_gate.allows,
                                  relay=self.gossip_queue.put, arrived=self._set_arrival)
        self.receiver = BlockReceiver(chain_id=self.chain_id, genesis_hash=genesis.hash(), store=store, ledger=ledger,
                                      known=known, inputs=inputs, transport=transport,
                                      checkpoint_interval=lambda: replica.params.checkpoint_interval,
                                      verify_event_signatures=opts.verify_event_signatures, metrics=metrics,
                                      counters=self.counters, log=log)
        self.follower = Follower(me=key.public, receiver=self.receiver, transport=transport, store=store,
                                 executed=lambda: ledger.height, validators=lambda: replica.validators, log=log,
                                 poll_s=opts.member_poll_ms / 1000)
        self.limiter = limiter = PeerLimiter(log=log, counters=self.counters, transport=transport,
                                             strike=self.receiver.refuse)
        self.catchup.limiter = limiter
        self.relay = relay = RelayService(
            me=key.public, transport=transport, store=store, receiver=self.receiver,
            validators=lambda: replica.validators.validators, admitted=lambda: self._chain_peers,
            executed=lambda: ledger.height, check_events=event_checker(known, stateful_check(ledger)),
            admit_events=lambda sender, raws: intake.submit(raws), heads=self.follower.heads,
            counters=self.counters, log=log, enabled=opts.relay, limiter=limiter)
        if opts.relay:
            self.receiver.on_accept = relay.on_follower_blocks
            executor.on_committed = relay.on_committed
            self.follower.relay_active = relay.active
        self.inbox.relay = relay.offer_frame
        # the upload's breakdown by peer role and message (`/v1/status` transport.sent_by)
        transport.stats.label = traffic_label(lambda: self._validator_keys)
        self.status = NodeStatus(name=opts.name, chain_id=self.chain_id, me=key.public, store=store, ledger=ledger,
                                 mempool=mempool, replica=replica, transport=transport, metrics=metrics,
                                 counters=self.counters, pending_intake=intake.pending,
                                 gossip_backlog=lambda: intake.backlog_events,
                                 last_commit_wall_ms=lambda: executor.last_commit_wall_ms, data_dir=self.data_dir,
                                 known_head=self.follower.known_head, verified_height=lambda: executor.verified_height)

    def _restore_replica(self) -> Replica:
        records = self.wal.load()
        store = self.store
        head = store.block(store.head) if store.head else None
        persisted = PersistedState(records=records, committed_header=head.header if head else None) if (records or head) else None
        params = replica_params(self.genesis.consensus, self.options.tick_ms)
        return Replica(
            self.key, self.genesis.validators, params, self.app, persisted,
            chain_id=self.chain_id, genesis_hash=self.genesis.hash(), genesis_time_ms=self.genesis.genesis_time_ms,
            timers=request_timers(self.options),
        )

    def _set_arrival(self, received_ms: int) -> None:
        self.app.received_ms = received_ms

    def _sync_peers(self) -> None:
        """The peer allowlist from chain state: every key of every validator set the chain
        has scheduled (genesis, then those governance adopted: a new validator must reach us
        before its epoch starts, as an observer first; a removed one may still follow the
        chain) plus the registered member node keys (`Ledger.node_keys`). Run at start, at
        each checkpoint and after a block that registered or removed node keys. A key that
        left the set since the last run (a member node key its organisation removed, or
        whose organisation was removed) is taken off the transport, which closes its
        connections. Peers of the node's static configuration unknown to the chain stay."""
        sets = list(self.ledger.validator_sets_by_hash().values())
        keys: set[bytes] = {k for vs in sets for k in vs.validators}
        self._validator_keys = frozenset(keys)
        keys.update(k for k, _ in self.ledger.node_keys(limit=None))
        gone = self._chain_peers - keys
        if gone:
            self.transport.remove_peers(gone)
            self.log.info("peers_removed", peers=sorted(k.hex()[:16] for k in gone))
        self.transport.add_peers(dict.fromkeys(keys))  # it skips itself and known peers, and logs new ones
        self._chain_peers = keys
        self.send_gate.update(sets)
        # the newest scheduled consensus parameters: timers apply at once (local), block
        # limits are also clamped per height in build_payload / verify_payload
        rp = replica_params(self.consensus_params(self.ledger.height + 1), self.options.tick_ms)
        if rp != self.replica.params:
            self.log.info("consensus_params_changed", params=to_json(rp))
            self.replica.params = rp

    # ------------------------------------------------------------------ run
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self.transport.on_request(self.catchup.on_request)
                await nursery.start(self.transport.run)
                self.intake.reload_journal()
                nursery.start_soon(self.inbox.run)
                nursery.start_soon(self.gossip.receive)
                nursery.start_soon(self.intake.backlog_worker)
                self.inbox.nursery = self.outboxes.nursery = nursery
                self._sync_peers()
                nursery.start_soon(self.gossip.flush)
                nursery.start_soon(self.loop.ticker)
                nursery.start_soon(self.loop.run)
                nursery.start_soon(self.evidence_reporter.run)
                nursery.start_soon(self.follower.run)
                nursery.start_soon(self.relay.run)
                nursery.start_soon(self.snapshots.run)
                self.log.info("node_started", height=self.store.head, view=self.replica.view,
                              validators=self.replica.validators.n, role=self.role(),
                              verify_event_signatures=self.options.verify_event_signatures, relay=self.options.relay)
                self.started.set()
                task_status.started()
        finally:
            self.close()

    def role(self) -> str:
        """"validator" while this node's key is in its current validator set, else "member"."""
        return "validator" if self.key.public in self.replica.validators else "member"

    def _gossip_event(self, raw: bytes) -> None:
        """An event this node's intake accepted from a client (or its journal): a member
        with the relay on sends it towards the validators through the relay (which keeps
        and re-sends it until a block holds it); otherwise it is gossiped (`EventBatch`)."""
        if self.options.relay and self.key.public not in self.replica.validators:
            self.relay.submit_local(raw)
        else:
            self.gossip_queue.put(raw)

    def _offer_gossip(self, sender: bytes, raws: list[bytes]) -> None:
        """Peers' event gossip goes to the intake, except on a member that no scheduled
        validator set names: it relays its own clients' events towards the validators but
        neither verifies nor keeps everyone else's (it relies on certified blocks)."""
        if not self.send_gate.allows():
            self.counters["gossip_ignored_member"] = self.counters.get("gossip_ignored_member", 0) + len(raws)
            return
        self.intake.offer(sender, raws)

    async def snapshot(self, out: str | Path, *, timeout_s: float = 60.0) -> dict[str, Any]:
        """Checkpoints of both stores into `out`, consistent between two blocks
        (`node.runtime.snapshot.take_checkpoints`; `afterchain node snapshot` finishes them)."""
        from afterchain.node.runtime.snapshot import SnapshotError, take_checkpoints

        try:
            taken = await take_checkpoints(ledger=self.ledger, store=self.store, out=Path(out), timeout_s=timeout_s)
        except SnapshotError as exc:
            self.log.warning("snapshot_failed", dir=str(out), error=str(exc))
            raise
        self.log.info("snapshot_checkpointed", dir=str(out), **taken)
        return {"dir": str(out), **taken}

    async def offer_snapshot(self) -> dict[str, Any]:
        """A snapshot now, offered to peers for state sync (`statesync.SnapshotServer.take`)."""
        offer = await self.snapshots.take()
        path = next((str(s.path) for s in self.snapshots.served if s.offer is offer), None)
        return {"dir": path, "state_height": offer.state_height,
                "chain_height": offer.height, "bytes": offer.total_bytes, "chunks": len(offer.chunk_hashes)}

    def close(self) -> None:
        """Close the chain store and the ledger (`run` does it when it ends; a node that was
        never started, as in benches and tests, is closed with this)."""
        self.store.close()
        self.ledger.close()

    # ------------------------------------------------------------------ what other rooms use
    async def submit(self, raws: list[bytes], pre_errors: dict[int, ProtocolError] | None = None, *,
                     from_peer: bool = False, hashes: list[bytes] | None = None) -> list[AddOutcome]:
        """Admit encoded events (see `Intake.submit`): one outcome per raw."""
        return await self.intake.submit(raws, pre_errors, from_peer=from_peer, hashes=hashes)

    def pending_intake(self) -> int:
        return self.intake.pending()

    def event_status(self, event_id: bytes) -> dict[str, Any] | None:
        return self.status.event_status(event_id)

    def block_json(self, height: int, *, outcomes: bool = False) -> dict[str, Any] | None:
        return self.status.block_json(height, outcomes=outcomes)

    def status_json(self) -> dict[str, Any]:
        st = self.status.status_json()
        st["relay"] = self.relay.describe()
        return st

    def health(self) -> tuple[bool, str]:
        return self.status.health()

    def readiness(self) -> dict[str, Any]:
        return self.status.readiness()

