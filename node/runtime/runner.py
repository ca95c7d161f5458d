"""The node: drives the PBFT replica and the ledger over a transport, serves the API.

One trio task (`_consensus_loop`) owns the replica: every input (a peer message, a tick, a
fetched block, a nudge that the mempool changed) goes through one bounded channel and is
handled to the end, including its `Ready`, before the next. So the replica is never
touched concurrently and the order persist -> send -> commit -> execute holds:

1. `persist`: consensus records appended to the chain store's WAL, one synced batch;
2. `sends`: messages queued on each peer's outbox (`_Outbox`, bounded, oldest dropped:
   consensus retransmits); one task per peer feeds the transport, so a full or stalled
   peer never blocks the replica (nor, through it, the reader of any peer's stream);
3. `commits`: each block + certificate stored (synced), then executed by the ledger,
   then the mempool forgets its events and the replica hears the new executed height;
4. `evidence`: counted and reported on chain as a ``consensus.evidence`` event
   (`node.evidence.EvidenceReporter`);
5. `fetches`: catch-up requests, run as background tasks whose answers come back
   through the input channel (one input per answer; the replica checks each block's
   certificate). They are started before the commits execute, so the next range is on its
   way while the current one executes; the commits of one answer are stored in one synced
   batch before the first of them executes (`_store_commits`).

Backpressure (issue 10): the API refuses new events (503 `mempool.full`, before any
signature check) while `NodeOptions.intake_limit_events` ready events are pending here;
gossip from peers goes to a bounded backlog worked off by its own task (a full backlog
drops the batch, counted: the origin re-gossips), so a peer's stream, which also carries
consensus messages, is never blocked by event verification. Ticks do not queue up while
the consensus task is busy (see `_ticker`).

Events: the API and gossip hand encoded events to `submit`, which decodes and verifies
signatures on worker threads, admits them to the mempool, journals them (a killed node
never loses an accepted event) and queues them for gossip in batches. A pre-prepared
block's events not yet seen here are verified on threads *before* the replica sees the
block, so each event's signature is checked once per node.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import trio

from afterchain.consensus.app import VerifyResult
from afterchain.consensus.evidence import check_evidence
from afterchain.consensus.messages import (
    BlockRequest,
    BlockResponse,
    CertifiedBlock,
    CheckpointProof,
    CompactPrePrepareMsg,
    ConsensusMessage,
    EventsRequest,
    EventsResponse,
    PrePrepareMsg,
)
from afterchain.consensus.params import ConsensusParams as ReplicaParams
from afterchain.consensus.replica import PersistedState, Ready, Replica, prunable
from afterchain.node.app.ledger import Ledger
from afterchain.node.common.log import get_logger
from afterchain.node.runtime import threads
from afterchain.node.runtime.chain_store import ChainStore
from afterchain.node.runtime.evidence import EvidenceReporter
from afterchain.node.runtime.mempool import AddOutcome, Mempool, decode_and_verify, verify_batch
from afterchain.node.runtime.metrics import NodeMetrics
from afterchain.node.testing.byzantine import conflicting
from afterchain.node.transport.base import Transport, TransportError
from afterchain.protocol.block import Block, CommitCertificate, ValidatorSet
from afterchain.protocol.codec import Message, decode, decode_as, message, sha256
from afterchain.protocol.crypto import KeyPair
from afterchain.protocol.errors import Code, ProtocolError
from afterchain.protocol.events import SignedEvent, event_id_of_signed
from afterchain.protocol.genesis import ConsensusParams as GenesisConsensusParams
from afterchain.protocol.genesis import Genesis
from afterchain.protocol.jsonform import to_json

__all__ = ["EventBatch", "Node", "NodeOptions"]

EVENTS_TOPIC = "afterchain/events/1"
GOSSIP_FLUSH_S = 0.05
GOSSIP_MAX_EVENTS = 2000
GOSSIP_MAX_BYTES = 768 * 1024
REGOSSIP_AFTER_S = 5.0
FETCH_TIMEOUT_S = 10.0
EVENTS_FETCH_TIMEOUT_S = 2.0
"""How long a backup waits for the events of a compact pre-prepare it asked the sender for."""
COMPACT_WAITING_MAX = 8
"""Compact pre-prepares of one peer that may wait for events at a time (more are dropped:
the primary retransmits; bounds what a peer naming unknown events can make us hold)."""
FETCH_RESPONSE_MAX_BYTES = 4 * 1024 * 1024
"""A block response stops after the block that crosses this size (at least one block)."""
VERIFIED_CACHE_MAX = 60_000
"""Decoded, signature-checked events not yet committed (a block's events found here are not
verified again). Entries leave at commit; the bound only matters for events that never
commit. ~1.5 KB each: 400,000 could hold ~600 MB; pending events stay well below 60,000
under the intake limits (`intake_limit_events`, `gossip_backlog_events`). A miss costs one
more signature check, never correctness."""
COMMITTED_CACHE_MAX = 50_000
"""Hashes of recently committed raw events: a late gossip copy is known without a signature
check (~230 B each; 50,000 is >= 10 s of commits at the target rate; an older copy is
verified again and then answered `duplicate` by the mempool's committed-event lookup)."""
OUTBOX_MAX_MESSAGES = 1024
"""Consensus messages queued per peer; beyond it the oldest is dropped (consensus retransmits)."""


@message(tag=0x70)
class EventBatch(Message):
    """Gossip: a batch of encoded `SignedEvent`s."""

    events: tuple[bytes, ...]


def block_response_bytes(store: ChainStore, from_height: int, count: int) -> bytes:
    """The canonical encoding of `BlockResponse` with the stored blocks from_height .. (at
    most `count`, stopping after FETCH_RESPONSE_MAX_BYTES), spliced from the stored bytes:
    the blocks were checked when this node committed them, so serving a catch-up request
    decodes nothing (a message's encoding is the msgpack array [tag, version, *fields],
    nested messages inline, so this equals `BlockResponse(blocks=...).encode()`)."""
    parts: list[bytes] = []
    size = 0
    for h in range(from_height, from_height + count):
        raw = store.block_bytes(h)
        cert = store.certificate_bytes(h)
        if raw is None or cert is None:
            break
        size += len(raw)
        parts.append(_CERTIFIED_BLOCK_HEAD + raw + cert)
        if size > FETCH_RESPONSE_MAX_BYTES:
            break
    return _BLOCK_RESPONSE_HEAD + _PACKER.pack_array_header(len(parts)) + b"".join(parts)


_PACKER = msgpack.Packer(use_bin_type=True)
_CERTIFIED_BLOCK_HEAD = _PACKER.pack_array_header(4) + _PACKER.pack(CertifiedBlock.TAG) + _PACKER.pack(CertifiedBlock.VERSION)
_BLOCK_RESPONSE_HEAD = _PACKER.pack_array_header(3) + _PACKER.pack(BlockResponse.TAG) + _PACKER.pack(BlockResponse.VERSION)


@dataclass(frozen=True, slots=True)
class NodeOptions:
    name: str = "node"
    tick_ms: int = 50
    heartbeat_ms: int = 1000
    """An idle primary proposes an (empty) block this often, so backups see progress
    and the latest state root gets into a header."""
    busy_block_events: int = 100
    busy_block_interval_ms: int = 300
    full_block_events: int = 500
    """Fewer, fuller blocks under load: a primary whose last block carried at least
    `busy_block_events` events waits `busy_block_interval_ms` since that proposal (not the
    genesis `block_interval_ms`), unless `full_block_events` are ready sooner. A block
    costs each node roughly 12 ms of CPU besides its events' own (docs/OPERATIONS.md), so at
    ~1,000 events/s ten 100-event blocks a second cost far more than three of 300; a
    lone event on a quiet network is still proposed after `block_interval_ms`. Local to
    the primary: backups check no timing but the block's time."""
    max_events: int = 200_000
    max_bytes: int = 256 * 1024 * 1024
    per_sender_quota: int = 20_000
    max_request_bytes: int = 8 * 1024 * 1024
    max_batch_events: int = 5000
    intake_limit_events: int = 4000
    """Backpressure: the API refuses new events (503 mempool.full, before any signature
    check) while this many are pending here (mempool + gossip backlog + being verified).
    Pending events wait ~ pending / throughput, so this bounds finality latency under
    overload; peers' gossip is still admitted up to `max_events`."""
    byzantine: str | None = None
    """TEST ONLY (`node.byzantine`): ``"equivocate"`` makes this node sign conflicting
    messages. Set by `service.run_node` only from the guarded test environment variables."""
    gossip_backlog_events: int = 20_000
    """Gossiped events from peers queued for verification; a batch beyond it is dropped
    (counted): its origin keeps the events and re-gossips them, and a block carrying them
    is verified on arrival. So a slow node never blocks its peers' streams (which also
    carry consensus messages)."""


def replica_params(c: GenesisConsensusParams, tick_ms: int) -> ReplicaParams:
    timeout = max(2, math.ceil(c.view_timeout_ms / tick_ms))
    return ReplicaParams(
        checkpoint_interval=c.checkpoint_interval,
        watermark_window=c.watermark_window,
        view_timeout_ticks=timeout,
        view_timeout_max_ticks=max(timeout, math.ceil(c.view_timeout_max_ms / tick_ms)),
        max_block_events=c.max_block_events,
        max_block_bytes=c.max_block_bytes,
        retransmit_ticks=max(1, math.ceil(500 / tick_ms)),
    )


class _Outbox:
    """Encoded consensus messages for one peer, oldest first; bounded: `put` drops the
    oldest when full (and says so). Consensus retransmits what matters."""

    __slots__ = ("maxlen", "messages", "wakeup")

    def __init__(self, maxlen: int) -> None:
        self.maxlen = maxlen
        self.messages: deque[bytes] = deque()
        self.wakeup = trio.Event()

    def put(self, data: bytes) -> bool:
        dropped = len(self.messages) >= self.maxlen
        if dropped:
            self.messages.popleft()
        self.messages.append(data)
        self.wakeup.set()
        return dropped


class _Verifying:
    """One batch of signature checks in flight: `done` is set when `results` are in;
    `raws` are its events by hash (a compact pre-prepare may name them meanwhile)."""

    __slots__ = ("done", "raws", "results")

    def __init__(self, raws: dict[bytes, bytes]) -> None:
        self.done = trio.Event()
        self.raws = raws
        self.results: dict[bytes, SignedEvent | ProtocolError] = {}


class _App:
    """The consensus `Application` over the ledger and the mempool (see consensus/app.py)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def build_payload(self, max_events: int, max_bytes: int) -> tuple[bytes, ...]:
        # Events already in a pre-prepared, not yet committed block (this node's earlier
        # proposals, or blocks a NEW-VIEW re-issued from the previous primary) must not be
        # proposed again: they would be in two blocks.
        pending: set[bytes] = set()
        pending_bytes = 0
        for slot in self.node.replica.slots.values():
            for raw in slot.block.events:
                pending.add(raw)
                pending_bytes += len(raw)
        # the limits of the height being proposed (governance may have changed them there)
        cp = self.node.consensus_params(self.node.replica.next_seq)
        max_events, max_bytes = min(max_events, cp.max_block_events), min(max_bytes, cp.max_block_bytes)
        candidates = self.node.mempool.select(max_events + len(pending), max_bytes + pending_bytes)
        raws: list[bytes] = []
        size = 0
        for raw in candidates:
            if raw in pending:
                continue
            if len(raws) >= max_events or size + len(raw) > max_bytes:
                break
            raws.append(raw)
            size += len(raw)
        self.node.last_payload = raws
        return tuple(raws)

    def verify_payload(self, block: Block) -> VerifyResult:
        p = self.node.consensus_params(block.header.height)
        if len(block.events) > p.max_block_events:
            return VerifyResult.reject(f"{len(block.events)} events exceed max_block_events {p.max_block_events}")
        if sum(len(e) for e in block.events) > p.max_block_bytes:
            return VerifyResult.reject("block exceeds max_block_bytes")
        cache = self.node.verified
        for raw, h in zip(block.events, block.event_hashes(), strict=True):
            if h in cache:
                continue
            self.node.counters["verified_payload"] += 1
            res = decode_and_verify(raw, self.node.chain_id)
            if isinstance(res, ProtocolError):
                return VerifyResult.reject(f"event {h.hex()[:16]}: {res}")
            self.node.remember_verified(h, res, raw)
        return VerifyResult.accept()

    def state_root_at(self, height: int) -> bytes | None:
        return self.node.ledger.root_at(height)

    def executed_height(self) -> int:
        return self.node.ledger.height

    def validators_for(self, height: int) -> ValidatorSet | None:
        return self.node.ledger.validators_for(height)


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
    ) -> None:
        self.key = key
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.options = options or NodeOptions()
        self.transport = transport
        self.data_dir = Path(data_dir)
        self.metrics = NodeMetrics()
        self.log = get_logger(node=self.options.name, key=key.public.hex()[:12])
        self.store = ChainStore(self.data_dir / "chain")
        # the chain store keeps the blocks; the ledger need not keep a second copy. Nor need
        # it fsync: a block is in the chain store (synced) before the ledger applies it, the
        # ledger writes each block as one atomic batch, and at start-up `_catch_up_ledger`
        # re-executes whatever stored blocks the ledger lost (measured: the ledger's synced
        # write was ~10% of the consensus task's time under load)
        # caches: 32k SMT nodes and 8k state values (x2, generational) instead of the
        # library defaults 131k / 32k: a ledger applying 300k bench events then peaks at
        # 402 MB instead of 521 MB (RSS flat after ~200k events instead of still growing) for
        # the same CPU (24.7 vs 24.5 user-s, back-to-back runs; issue 10)
        self.ledger = Ledger.open(str(self.data_dir / "state"), genesis, ledger_hooks, contracts, keep_blocks=False,
                                  sync=False, node_cache_nodes=32_768, state_cache_entries=8_192, evidence_check=check_evidence)
        self.verified: OrderedDict[bytes, SignedEvent] = OrderedDict()  # sha256(raw) -> decoded, signature checked
        self._verified_raws: dict[bytes, bytes] = {}  # the same keys -> the encoded event
        self.mempool = Mempool(
            max_events=self.options.max_events,
            max_bytes=self.options.max_bytes,
            per_sender_quota=self.options.per_sender_quota,
            expected_nonce=lambda sender: self.ledger.nonce(sender) + 1,
            stateful_check=self._stateful_check,
            is_committed=self.ledger.has_outcome,
        )
        self.arrival: dict[bytes, float] = {}
        self.params = replica_params(genesis.consensus, self.options.tick_ms)
        self._inputs_send, self._inputs_recv = trio.open_memory_channel[tuple[str, Any]](1024)
        self._outboxes: dict[bytes, _Outbox] = {}
        self._nursery: trio.Nursery | None = None
        self._gossip_backlog: deque[tuple[list[bytes], list[bytes]]] = deque()  # (raws, their hashes)
        self._gossip_backlog_n = 0
        self._incoming: dict[bytes, bytes] = {}  # sha256(raw) -> raw of the events in the gossip backlog
        self._expanding: dict[bytes, int] = {}  # peer -> its compact pre-prepares waiting for events asked of it
        self._gossip_backlog_wakeup = trio.Event()
        self._intake_inflight = 0
        self._verifying: dict[bytes, _Verifying] = {}
        """sha256(raw) -> the signature check of that event now running on a worker thread
        (API or gossip intake, or a pre-prepare's events): another path that needs the same
        event waits for it instead of checking the signature a second time."""
        self._tick_queued = False
        self.committed_recent: OrderedDict[bytes, bytes] = OrderedDict()  # sha256(raw) -> event id
        self.counters: dict[str, int] = {"outbox_dropped": 0, "gossip_dropped_events": 0, "intake_refused_events": 0,
                                         "gossip_known_events": 0, "ticks_coalesced": 0,
                                         # event signatures checked, by where (each event once per node is the goal)
                                         "verified_api": 0, "verified_gossip": 0, "verified_preprepare": 0,
                                         "verified_payload": 0,
                                         # compact pre-prepares taken, events they carried (prefilled), events
                                         # asked of their sender, and those dropped for want of events
                                         "preprepare_compact": 0, "preprepare_prefilled": 0,
                                         "preprepare_events_fetched": 0, "preprepare_dropped": 0}
        self._gossip_out: list[bytes] = []
        self._gossip_bytes = 0
        self._gossip_wakeup = trio.Event()
        self._wal_seq = 0
        self._wal: list[tuple[bytes, Message]] = []
        self._stable_seen = 0
        self._last_propose = 0.0
        self._last_proposal_events = 0
        self._last_commit_time = 0.0
        self._published_height = 0  # state height named by this node's last proposal
        self._dirty_height = 0  # last executed height whose block had events
        self._fetching: set[tuple[bytes, int]] = set()
        self.evidence: list[Message] = []
        self.evidence_reporter = EvidenceReporter(self)
        self.last_payload: list[bytes] = []
        self.last_commit_wall_ms: int | None = None
        self._view_seen = 0
        self.started = trio.Event()
        self._catch_up_ledger()
        self.replica = self._make_replica()

    # ------------------------------------------------------------------ start-up
    def _catch_up_ledger(self) -> None:
        """Execute stored blocks the ledger has not (a crash between store and execute)."""
        while self.ledger.height < self.store.head:
            h = self.ledger.height + 1
            block = self.store.block(h)
            if block is None:
                break
            _, decoded = self._decode_committed(block)
            preverified = {d.id for d in decoded if d is not None}
            self.ledger.apply_block(h, block.header.time_ms, block.events, preverified=preverified, decoded=decoded)
            self.log.info("ledger_replayed_block", height=h)

    def _decode_committed(self, block: Block) -> tuple[tuple[bytes, ...], list[SignedEvent | None]]:
        """The raw hashes and decoded events of a committed block (None where an event does
        not decode), taken from the verified cache where possible. No signature is checked:
        a committed block was accepted by a quorum, and an honest validator accepts a block
        only if every event's signature verifies (`verify_payload`), whether this node saw
        it in a pre-prepare, fetched it (catch-up) or replays it from its store."""
        hashes = block.event_hashes()
        decoded: list[SignedEvent | None] = []
        verified = self.verified
        for raw, h in zip(block.events, hashes, strict=True):
            ev = verified.get(h)
            if ev is None:
                try:
                    ev = SignedEvent.decode(raw)
                except ProtocolError:
                    ev = None
            decoded.append(ev)
        return hashes, decoded

    def _make_replica(self) -> Replica:
        records: list[Message] = []
        for k, v in self.store.consensus_records():
            records.append(decode(v, max_bytes=1 << 30))
            self._wal.append((k, records[-1]))
            self._wal_seq = max(self._wal_seq, int.from_bytes(k, "big") + 1)
        head = self.store.block(self.store.head) if self.store.head else None
        persisted = PersistedState(records=records, committed_header=head.header if head else None) if (records or head) else None
        return Replica(
            self.key, self.genesis.validators, self.params, _App(self), persisted,
            chain_id=self.chain_id, genesis_hash=self.genesis.hash(), genesis_time_ms=self.genesis.genesis_time_ms,
        )

    def _reload_journal(self) -> None:
        raws = [raw for _, raw in self.store.journal()]
        if not raws:
            return
        items = []
        for raw in raws:
            res = decode_and_verify(raw, self.chain_id)
            if isinstance(res, SignedEvent):
                items.append((raw, res))
                self.remember_verified(sha256(raw), res, raw)
        outcomes = self.mempool.admit(items)
        now = time.monotonic()
        for (raw, _), o in zip(items, outcomes, strict=True):
            if o.status == "accepted" and o.event_id is not None:
                self.arrival[o.event_id] = now
                self._queue_gossip(raw)
            elif o.status == "rejected" and o.event_id is not None:
                self.store.journal_drop([(o.event_id, o.code, o.message)])
        self.log.info("mempool_journal_reloaded", events=len(raws), admitted=sum(o.status == "accepted" for o in outcomes))

    # ------------------------------------------------------------------ helpers
    # ------------------------------------------------------------------ validator sets
    def consensus_params(self, height: int) -> GenesisConsensusParams:
        """The chain's consensus parameters for block `height` (governance may change the
        block limits and timers at an epoch boundary; the latest known ones while the
        schedule for `height` is not yet known here)."""
        cp = self.ledger.consensus_params_for(height) or self.ledger.consensus_params_for(self.ledger.height + 1)
        return cp if cp is not None else self.genesis.consensus

    def _sync_peers(self) -> None:
        """Allow every key of every validator set the chain has scheduled (genesis, then
        those governance adopted) on the transport: a new validator must reach us before its
        epoch starts (it catches up as an observer first). Peers are never dropped while
        running (a removed validator may still follow the chain)."""
        keys = {k for vs in self.ledger.validator_sets_by_hash().values() for k in vs.validators}
        self.transport.add_peers(dict.fromkeys(keys))  # it skips itself and known peers, and logs new ones
        # the newest scheduled consensus parameters: timers apply at once (local), block
        # limits are also clamped per height in build_payload / verify_payload
        rp = replica_params(self.consensus_params(self.ledger.height + 1), self.options.tick_ms)
        if rp != self.replica.params:
            self.log.info("consensus_params_changed", params=to_json(rp))
            self.replica.params = self.params = rp

    def _outbox(self, peer: bytes) -> _Outbox | None:
        """The send queue of `peer` (created, with its pump task, on first use)."""
        box = self._outboxes.get(peer)
        if box is None and self._nursery is not None:
            box = self._outboxes[peer] = _Outbox(OUTBOX_MAX_MESSAGES)
            self._nursery.start_soon(self._outbox_pump, peer, box)
        return box

    def remember_verified(self, raw_hash: bytes, signed: SignedEvent, raw: bytes) -> None:
        self.verified[raw_hash] = signed
        self._verified_raws[raw_hash] = raw
        if len(self.verified) > VERIFIED_CACHE_MAX:
            self._verified_raws.pop(self.verified.popitem(last=False)[0], None)

    def _raw_by_hash(self, h: bytes) -> bytes | None:
        """The encoded event with SHA-256 `h`, if this node has it: verified, being
        verified, or waiting in the gossip backlog."""
        raw = self._verified_raws.get(h)
        if raw is None:
            raw = self._incoming.get(h)
            if raw is None and (job := self._verifying.get(h)) is not None:
                raw = job.raws.get(h)
        return raw

    async def _verify_once(self, items: list[tuple[bytes, bytes]], *, counter: str) -> dict[bytes, SignedEvent | ProtocolError]:
        """Decode and check the signature of each (raw, sha256(raw)) on worker threads,
        except those another path is checking right now (`_verifying`): for them, wait for
        that check's result. So an event that arrives by gossip and in a pre-prepare at the
        same moment is checked once. Results by hash; those that pass are put in `verified`
        as soon as their batch is done; `counter` counts the checks made here. (The callers
        look up the `verified` cache first.)"""
        mine: list[tuple[bytes, bytes]] = []
        theirs: list[tuple[bytes, bytes, _Verifying]] = []
        seen: set[bytes] = set()
        for raw, h in items:
            other = self._verifying.get(h)
            if other is not None:
                theirs.append((raw, h, other))
            elif h not in seen:  # (a block may name an event twice: checked once)
                seen.add(h)
                mine.append((raw, h))
        out: dict[bytes, SignedEvent | ProtocolError] = {}
        if mine:
            self.counters[counter] += len(mine)
            job = _Verifying({h: r for r, h in mine})
            for _, h in mine:
                self._verifying.setdefault(h, job)
            try:
                checked = await verify_batch([r for r, _ in mine], self.chain_id)
                job.results = dict(zip((h for _, h in mine), checked, strict=True))
                out.update(job.results)
                # into the cache before they leave `_verifying`: this call may still wait
                # for other checks below, and a copy arriving meanwhile must find them
                # (it did not: node3 of `bench cluster` checked 1.18 signatures per event)
                for h, res in job.results.items():
                    if isinstance(res, SignedEvent):
                        self.remember_verified(h, res, job.raws[h])
            finally:
                for _, h in mine:
                    if self._verifying.get(h) is job:
                        del self._verifying[h]
                job.done.set()
        missing: list[tuple[bytes, bytes]] = []
        for raw, h, job in theirs:
            await job.done.wait()
            res = job.results.get(h)
            if res is None:  # that check was cancelled: check (or wait) again
                missing.append((raw, h))
            else:
                out[h] = res
        if missing:
            out.update(await self._verify_once(missing, counter=counter))
        return out

    def _stateful_check(self, signed: SignedEvent) -> tuple[str, str] | None:
        oc = self.ledger.check(signed, verify_signature=False)
        return None if oc is None else (oc.code, oc.message)

    def _queue_gossip(self, raw: bytes) -> None:
        self._gossip_out.append(raw)
        self._gossip_bytes += len(raw)
        if len(self._gossip_out) >= GOSSIP_MAX_EVENTS or self._gossip_bytes >= GOSSIP_MAX_BYTES:
            self._gossip_wakeup.set()

    # ------------------------------------------------------------------ event intake
    async def submit(self, raws: list[bytes], pre_errors: dict[int, ProtocolError] | None = None, *,
                     from_peer: bool = False, hashes: list[bytes] | None = None) -> list[AddOutcome]:
        """Stateless checks (threads), mempool admission, journal, gossip. One outcome per
        raw. `hashes`: sha256 of each raw, if the caller has them (no pre_errors then)."""
        pre_errors = pre_errors or {}
        if not from_peer and (len(self.mempool) >= 3 * self.options.intake_limit_events
                              or self.pending_intake() >= self.options.intake_limit_events):
            # refuse before the (expensive) signature checks: the client retries later
            self.counters["intake_refused_events"] += len(raws)
            self.metrics.events_rejected.labels("mempool.full").inc(len(raws))
            busy = AddOutcome(None, "rejected", "mempool.full",
                              f"the node is busy ({len(self.mempool)} events pending); retry later")
            return [busy] * len(raws)
        todo = [(i, r) for i, r in enumerate(raws) if i not in pre_errors]
        if hashes is None or pre_errors:
            hashes = [sha256(r) for _, r in todo]
        results: dict[int, SignedEvent | ProtocolError] = {}
        unknown: list[tuple[int, bytes]] = []
        committed: dict[int, bytes] = {}
        first_of: dict[bytes, int] = {}  # an event twice in this call is checked once
        copies: list[tuple[int, int]] = []
        hash_of = dict(zip((i for i, _ in todo), hashes, strict=True))
        for (i, r), h in zip(todo, hashes, strict=True):
            known = self.verified.get(h)  # read now: the cache may change while we await below
            if known is not None:
                results[i] = known
            elif (eid := self.committed_recent.get(h)) is not None:
                committed[i] = eid
            elif (j := first_of.setdefault(h, i)) != i:
                copies.append((i, j))
            else:
                unknown.append((i, r))
        if committed:
            self.counters["gossip_known_events"] += len(committed)
        self._intake_inflight += len(unknown)
        try:
            checked = await self._verify_once([(r, hash_of[i]) for i, r in unknown], counter=(
                "verified_gossip" if from_peer else "verified_api"))
        finally:
            self._intake_inflight -= len(unknown)
        for i, _ in unknown:
            results[i] = checked[hash_of[i]]
        for i, j in copies:
            results[i] = results[j]  # the mempool answers the second copy `duplicate`
        outcomes: list[AddOutcome | None] = [None] * len(raws)
        admit: list[tuple[int, bytes, SignedEvent]] = []
        for i, raw in enumerate(raws):
            if i in pre_errors:
                e = pre_errors[i]
                outcomes[i] = AddOutcome(None, "rejected", str(e.code), str(e))
                continue
            if i in committed:
                outcomes[i] = AddOutcome(committed[i], "duplicate")
                continue
            res = results[i]
            if isinstance(res, ProtocolError):
                outcomes[i] = AddOutcome(None, "rejected", str(res.code), str(res))
                continue
            admit.append((i, raw, res))  # (in `verified` already: the cache or `_verify_once` put it there)
        admitted = self.mempool.admit([(raw, s) for _, raw, s in admit])
        journal: list[tuple[bytes, bytes]] = []
        now = time.monotonic()
        any_accepted = False
        for (i, raw, _), o in zip(admit, admitted, strict=True):
            outcomes[i] = o
            if o.status == "accepted" and o.event_id is not None:
                any_accepted = True
                self.arrival[o.event_id] = now
                if not from_peer:
                    # only the node that answered the client journals (and gossips) it:
                    # a peer's copy is a spare (its origin keeps it and re-gossips it)
                    journal.append((o.event_id, raw))
                    self._queue_gossip(raw)
        if journal:
            self.store.journal_add(journal)
        if any_accepted:
            self.metrics.mempool_size.set(len(self.mempool))
            self.metrics.mempool_bytes.set(self.mempool.bytes)
            self._nudge()
        rejected = [o for o in outcomes if o is not None and o.status == "rejected"]
        for o in rejected:
            self.metrics.events_rejected.labels(o.code).inc()
        if rejected and not from_peer:
            self.log.info("events_rejected_at_intake", count=len(rejected), first_code=rejected[0].code)
        return [o for o in outcomes if o is not None]

    def pending_intake(self) -> int:
        """Events waiting for this node's pipeline: the mempool's *ready* events (not those
        behind a nonce gap: refusing new batches because of them could refuse the very
        event that fills the gap), the gossip backlog, and API batches being verified.
        Gapped events are capped apart: the API also refuses while the whole mempool holds
        3 x `intake_limit_events` (then the mempool's own bounds cap peers' gossip)."""
        limit = self.options.intake_limit_events
        return self.mempool.ready_count(limit) + self._gossip_backlog_n + self._intake_inflight

    def _nudge(self) -> None:
        # if the channel is full the loop is busy; it re-checks proposals after every input anyway
        with contextlib.suppress(trio.WouldBlock):
            self._inputs_send.send_nowait(("nudge", None))

    # ------------------------------------------------------------------ run
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self.transport.on_request(self._on_request)
                await nursery.start(self.transport.run)
                self._reload_journal()
                nursery.start_soon(self._peer_messages)
                nursery.start_soon(self._gossip_in)
                nursery.start_soon(self._gossip_worker)
                self._nursery = nursery
                self._sync_peers()
                nursery.start_soon(self._gossip_flush)
                nursery.start_soon(self._ticker)
                nursery.start_soon(self._consensus_loop)
                nursery.start_soon(self.evidence_reporter.run)
                self.log.info("node_started", height=self.store.head, view=self.replica.view,
                              validators=self.replica.validators.n,
                              role="validator" if self.key.public in self.replica.validators else "observer")
                self.started.set()
                task_status.started()
        finally:
            self.close()

    def close(self) -> None:
        """Close the chain store and the ledger (`run` does it when it ends; a node that was
        never started, as in benches and tests, is closed with this)."""
        self.store.close()
        self.ledger.close()

    async def _ticker(self) -> None:
        """One tick per `tick_ms`, but at most one queued: while the consensus task is busy
        (a big block executing, a burst of messages) ticks do not pile up behind the
        messages that would have reset the view timer and then fire all at once. So the
        view timer measures time this node was ready to hear its peers, and a slow node
        does not start view changes that only its own slowness caused."""
        while True:
            await trio.sleep(self.options.tick_ms / 1000)
            if self._tick_queued:
                self.counters["ticks_coalesced"] += 1
                continue
            self._tick_queued = True
            await self._inputs_send.send(("tick", None))

    async def _peer_messages(self) -> None:
        async for sender, data in self.transport.inbox():
            try:
                msg = decode_as(ConsensusMessage, data, max_bytes=self.transport_limit())
            except ProtocolError as exc:
                self.metrics.peer_messages_rejected.labels("decode").inc()
                self.log.warning("peer_message_rejected", peer=sender.hex()[:12], code=str(exc.code), error=str(exc))
                continue
            if isinstance(msg, CompactPrePrepareMsg):
                full = self._expand(msg, sender)
                if full is None:
                    continue  # events missing: being asked of the sender (`_expand_later`)
                msg = full
            if isinstance(msg, PrePrepareMsg):
                await self._preverify(msg.block)
            await self._inputs_send.send(("msg", (msg, sender)))

    def _expand(self, msg: CompactPrePrepareMsg, sender: bytes) -> PrePrepareMsg | None:
        """The full pre-prepare of a compact one, from the events this node has; or None,
        after starting `_expand_later` (or dropping it: see `COMPACT_WAITING_MAX`)."""
        self.counters["preprepare_compact"] += 1
        self.counters["preprepare_prefilled"] += len(msg.prefilled)
        pre = {sha256(r): r for r in msg.prefilled}
        find = self._raw_by_hash
        events = [pre.get(h) or find(h) for h in msg.event_hashes]
        missing = [h for h, r in zip(msg.event_hashes, events, strict=True) if r is None]
        if not missing:
            return msg.expand(tuple(events))  # type: ignore[arg-type]
        waiting = self._expanding.get(sender, 0)
        if waiting >= COMPACT_WAITING_MAX or self._nursery is None:
            # the sender retransmits a pre-prepare its backups have not prepared
            self.counters["preprepare_dropped"] += 1
            self.log.info("compact_preprepare_dropped", peer=sender.hex()[:12], seq=int(msg.preprepare.body.seq),
                          missing=len(missing), reason="too many waiting for this peer")
            return None
        self._expanding[sender] = waiting + 1
        self._nursery.start_soon(self._expand_later, msg, sender, events, missing)
        return None

    async def _expand_later(self, msg: CompactPrePrepareMsg, sender: bytes, events: list[bytes | None],
                            missing: list[bytes]) -> None:
        """Ask the sender of a compact pre-prepare for the events this node lacks, then hand
        the full pre-prepare to the replica as if it had come so. On failure the message is
        dropped (logged): the primary retransmits it to backups whose PREPARE it lacks."""
        seq = int(msg.preprepare.body.seq)
        try:
            try:
                data = await self.transport.request(sender, EventsRequest(hashes=tuple(missing)).encode(),  # type: ignore[arg-type]
                                                    timeout_s=EVENTS_FETCH_TIMEOUT_S)
                got = {sha256(r): r for r in EventsResponse.decode(data, max_bytes=self.transport_limit()).events}
            except (TransportError, ProtocolError) as exc:
                self.counters["preprepare_dropped"] += 1
                self.log.info("compact_preprepare_dropped", peer=sender.hex()[:12], seq=seq, missing=len(missing),
                              reason=f"asking for its events failed: {exc}")
                return
            find = self._raw_by_hash
            full = [r if r is not None else (got.get(h) or find(h)) for r, h in zip(events, msg.event_hashes, strict=True)]
            lacking = sum(1 for r in full if r is None)
            if lacking:
                self.counters["preprepare_dropped"] += 1
                self.log.info("compact_preprepare_dropped", peer=sender.hex()[:12], seq=seq, missing=lacking,
                              reason="the sender did not have every event it named")
                return
            self.counters["preprepare_events_fetched"] += len(missing)
            pp = msg.expand(tuple(full))  # type: ignore[arg-type]
            await self._preverify(pp.block)
            await self._inputs_send.send(("msg", (pp, sender)))
        finally:
            left = self._expanding[sender] - 1
            if left:
                self._expanding[sender] = left
            else:
                del self._expanding[sender]

    def _compact(self, msg: PrePrepareMsg) -> bytes:
        """The encoding of `msg` as a compact pre-prepare; events still waiting for this
        node's next gossip flush travel in it (peers would not have them yet)."""
        unsent = set(self._gossip_out)
        prefilled = tuple(r for r in msg.block.events if r in unsent) if unsent else ()
        return CompactPrePrepareMsg.of(msg, prefilled).encode()

    def transport_limit(self) -> int:
        return 64 * 1024 * 1024

    async def _preverify(self, block: Block) -> None:
        verified = self.verified
        unknown = [(r, h) for r, h in zip(block.events, block.event_hashes(), strict=True) if h not in verified]
        if not unknown:
            return
        await self._verify_once(unknown, counter="verified_preprepare")  # (it caches what passed)

    async def _gossip_in(self) -> None:
        async for sender, data in self.transport.subscribe(EVENTS_TOPIC):
            try:
                batch = EventBatch.decode(data, max_bytes=GOSSIP_MAX_BYTES * 2)
            except ProtocolError as exc:
                self.metrics.peer_messages_rejected.labels("gossip_decode").inc()
                self.log.warning("gossip_batch_rejected", peer=sender.hex()[:12], code=str(exc.code), error=str(exc))
                continue
            n = len(batch.events)
            if self._gossip_backlog_n + n > self.options.gossip_backlog_events:
                self.counters["gossip_dropped_events"] += n
                self.log.info("gossip_batch_dropped", peer=sender.hex()[:12], events=n, backlog=self._gossip_backlog_n)
                continue
            raws = list(batch.events)
            hashes = [sha256(r) for r in raws]
            self._incoming.update(zip(hashes, raws, strict=True))
            self._gossip_backlog.append((raws, hashes))
            self._gossip_backlog_n += n
            self._gossip_backlog_wakeup.set()

    async def _gossip_worker(self) -> None:
        """Verify and admit gossiped batches (off the peers' streams: see `gossip_backlog_events`)."""
        while True:
            while not self._gossip_backlog:
                self._gossip_backlog_wakeup = trio.Event()
                await self._gossip_backlog_wakeup.wait()
            # everything queued meanwhile in one go (up to a gossip batch's size): one thread
            # hop, one mempool admission and one journal write for several peers' batches
            backlog = self._gossip_backlog
            raws, hashes = backlog.popleft()
            while backlog and len(raws) + len(backlog[0][0]) <= GOSSIP_MAX_EVENTS:
                more, more_hashes = backlog.popleft()  # (the popped lists are ours to extend)
                raws += more
                hashes += more_hashes
            try:
                await self.submit(raws, from_peer=True, hashes=hashes)
            finally:
                self._gossip_backlog_n -= len(raws)
                for h in hashes:  # (verified now, or refused)
                    self._incoming.pop(h, None)

    async def _outbox_pump(self, peer: bytes, box: _Outbox) -> None:
        """Send one peer's queued consensus messages; only this task waits on its queue."""
        while True:
            while not box.messages:
                box.wakeup = trio.Event()
                await box.wakeup.wait()
            data = box.messages.popleft()
            try:
                await self.transport.send(peer, data)
            except TransportError as exc:
                self.log.debug("send_failed", peer=peer.hex()[:12], error=str(exc))

    async def _gossip_flush(self) -> None:
        last_regossip = time.monotonic()
        while True:
            with trio.move_on_after(GOSSIP_FLUSH_S):
                await self._gossip_wakeup.wait()
            self._gossip_wakeup = trio.Event()
            now = time.monotonic()
            if now - last_regossip >= REGOSSIP_AFTER_S:
                last_regossip = now
                self._regossip_stale(now)
            while self._gossip_out:
                # the longest prefix within the count and byte limits (at least one event)
                size = 0
                n = 0
                for raw in self._gossip_out[:GOSSIP_MAX_EVENTS]:
                    if n and size + len(raw) > GOSSIP_MAX_BYTES:
                        break
                    size += len(raw)
                    n += 1
                batch = self._gossip_out[:n]
                del self._gossip_out[:n]
                self._gossip_bytes -= size
                try:
                    await self.transport.broadcast(EVENTS_TOPIC, EventBatch(events=tuple(batch)).encode())
                except TransportError as exc:
                    self.log.warning("gossip_broadcast_failed", error=str(exc), events=len(batch))

    def _regossip_stale(self, now: float) -> None:
        """Events pending here for a while may have missed a peer (down, partitioned):
        gossip them again so whichever node becomes primary has them."""
        stale = [eid for eid, t in self.arrival.items() if now - t >= REGOSSIP_AFTER_S and eid in self.mempool]
        for eid in stale[:GOSSIP_MAX_EVENTS]:
            raw = self.mempool.raw(eid)
            if raw is not None:
                self._queue_gossip(raw)
                self.arrival[eid] = now

    async def _on_request(self, sender: bytes, data: bytes) -> bytes:
        req = decode(data, max_bytes=self.transport_limit())
        if isinstance(req, BlockRequest):
            return block_response_bytes(self.store, req.from_height, req.count)
        if isinstance(req, EventsRequest):
            return self._events_response(req)
        raise ProtocolError(Code.DECODE_UNKNOWN_TAG, f"{type(req).__name__} is not a request")

    def _events_response(self, req: EventsRequest) -> bytes:
        """The events asked for that this node has: in its own pre-prepared blocks (a
        primary asked by its backups), verified, or being verified; at most
        FETCH_RESPONSE_MAX_BYTES of them."""
        in_slots: dict[bytes, bytes] = {}
        for slot in self.replica.slots.values():
            in_slots.update(zip(slot.block.event_hashes(), slot.block.events, strict=True))
        out: list[bytes] = []
        size = 0
        for h in req.hashes:
            raw = in_slots.get(h) or self._raw_by_hash(h)
            if raw is None:
                continue
            size += len(raw)
            if size > FETCH_RESPONSE_MAX_BYTES:
                break
            out.append(raw)
        return EventsResponse(events=tuple(out)).encode()

    async def _fetch(self, peer: bytes, from_height: int, count: int) -> None:
        key = (peer, from_height)
        if key in self._fetching:
            return
        self._fetching.add(key)
        try:
            # The replica asks for up to `count` blocks it can accept now; a peer answers at
            # most FETCH_RESPONSE_MAX_BYTES at a time, so the rest of the range is asked for
            # at once (the replica would only ask again after its fetch interval, ~1 s, and
            # catch-up waited that long per 4 MB: measured, issue 10).
            end = from_height + count
            nxt = from_height
            while nxt < end:
                data = await self.transport.request(peer, BlockRequest(from_height=nxt, count=end - nxt).encode(),
                                                    timeout_s=FETCH_TIMEOUT_S)
                resp = BlockResponse.decode(data, max_bytes=64 * 1024 * 1024)
                if not resp.blocks:
                    break
                # one input per answer: the replica applies the blocks together and the chain
                # store writes them in one synced batch (see `_store_commits`). No event
                # signature checks here: the replica checks each block's certificate, and a
                # certified block's events were verified by the quorum that committed it
                await self._inputs_send.send(("blocks", resp.blocks))
                top = resp.blocks[-1].block.header.height
                if top < nxt or top >= end - 1 or self.store.head >= end - 1:
                    break  # done, a peer answering out of range, or this node has the range already
                nxt = top + 1
        except (TransportError, ProtocolError) as exc:
            self.log.info("fetch_failed", peer=peer.hex()[:12], from_height=from_height, error=str(exc))
        finally:
            self._fetching.discard(key)

    # ------------------------------------------------------------------ the consensus task
    async def _consensus_loop(self) -> None:
        async with trio.open_nursery() as fetchers:
            self._fetchers = fetchers
            async for kind, item in self._inputs_recv:
                if kind == "msg":
                    msg, sender = item
                    if not self.replica.step(msg, sender):
                        self.metrics.peer_messages_rejected.labels("consensus").inc()
                        self.log.debug("peer_message_rejected", peer=sender.hex()[:12], kind=type(msg).__name__)
                elif kind == "tick":
                    self._tick_queued = False
                    self.replica.tick()
                elif kind == "blocks":
                    for cb in item:
                        self.replica.deliver_block(cb)
                self._maybe_propose()
                while self.replica.has_ready():
                    await self._handle_ready(self.replica.ready())
                    self._maybe_propose()

    def _maybe_propose(self) -> None:
        r = self.replica
        if not (r.is_primary and r.active) or not r.can_propose():
            return
        now = time.monotonic()
        since = (now - self._last_propose) * 1000
        cp = self.consensus_params(r.next_seq)
        interval = cp.block_interval_ms
        if since < interval:
            return
        has_events = bool(self.mempool.select(1, 1 << 30))
        opts = self.options
        if (has_events and self._last_proposal_events >= opts.busy_block_events and since < opts.busy_block_interval_ms
                and self.mempool.unproposed() < min(opts.full_block_events, cp.max_block_events)):
            return  # busy: let this block fill (see NodeOptions.busy_block_events)
        # after blocks with events, one more block puts the resulting state root in a header
        unpublished = self._published_height < self._dirty_height <= self.ledger.height
        # heartbeats well inside the view timeout: a backup's timer restarts at each commit,
        # so an idle cluster changes view whenever heartbeat + commit latency > the timeout
        heartbeat_ms = min(self.options.heartbeat_ms, cp.view_timeout_ms // 4)
        if has_events or unpublished or since >= heartbeat_ms:
            self.last_payload = []
            executed = self.ledger.height
            if r.propose(int(time.time() * 1000)):
                self._last_propose = now
                self._last_proposal_events = len(self.last_payload)
                self._published_height = executed
                ids = [eid for raw in self.last_payload if (eid := self.mempool.id_of(raw)) is not None]
                self.mempool.mark_proposed(r.next_seq - 1, ids)

    async def _handle_ready(self, rd: Ready) -> None:
        r = self.replica
        if rd.persist:
            t0 = time.perf_counter()
            items = []
            for rec in rd.persist:
                k = self._wal_seq.to_bytes(8, "big")
                self._wal_seq += 1
                self._wal.append((k, rec))
                items.append((k, rec.encode()))
            # fsync on a worker thread (RocksDB releases the GIL): the replica still waits for
            # it (persist before send) but the API, gossip and transport keep running
            await threads.run_sync(self.store.persist, items)
            self.metrics.fsync_latency.observe(time.perf_counter() - t0)
        for s in rd.sends:  # queued, never awaited here: a slow peer cannot stall the replica
            # a pre-prepare goes compact: its events travel by gossip (see CompactPrePrepareMsg)
            data = self._compact(s.message) if type(s.message) is PrePrepareMsg else s.message.encode()
            for peer in (r.validators.validators if s.to is None else (s.to,)):
                if peer == self.key.public:
                    continue
                box = self._outbox(peer)
                if box is not None and box.put(data):
                    self.counters["outbox_dropped"] += 1
            if self.options.byzantine == "equivocate":  # TEST ONLY: see node.byzantine
                twin = conflicting(s.message, self.key, self.chain_id)
                if twin is not None:
                    twin_data = twin.encode()
                    for peer in (self._outboxes if s.to is None else (s.to,)):
                        box = self._outboxes.get(peer)
                        if box is not None:
                            box.put(twin_data)
        # catch-up requests first: they run in the background while the commits execute
        for fr in rd.fetches:
            self._fetchers.start_soon(self._fetch, fr.peer, fr.from_height, fr.count)
        if len(rd.commits) > 1:
            await self._store_commits(rd.commits)
        else:
            for cb in rd.commits:
                await self._execute(cb.block, cb.certificate)
        for ev in rd.evidence:
            self.evidence.append(ev)
            del self.evidence[:-1000]  # bounded: the reporter keeps what it needs
            self.metrics.evidence.inc()
            self.log.warning("equivocation_evidence", kind=type(ev).__name__,
                             validator=bytes(ev.first.body.replica).hex()[:12])  # type: ignore[attr-defined]
            self.evidence_reporter.record(ev)
        if rd.stable_seq > self._stable_seen:
            self._stable_seen = rd.stable_seq
            self._prune_wal(rd.stable_seq)
        r.advance(rd)
        if r.view != self._view_seen:
            if r.view > self._view_seen:
                self.metrics.view_changes.inc()
                self.mempool.release_inflight()
                self.log.info("view_changed", view=r.view, primary=r.primary.hex()[:12])
            self._view_seen = r.view
            self.metrics.view.set(r.view)

    def _prune_wal(self, stable_seq: int) -> None:
        # keep the newest stable checkpoint proof; drop what it makes obsolete
        newest_proof = max((k for k, rec in self._wal if isinstance(rec, CheckpointProof)), default=None)
        drop = [k for k, rec in self._wal if prunable(rec, stable_seq) and k != newest_proof]
        if drop:
            self.store.persist((k, None) for k in drop)
            dropset = set(drop)
            self._wal = [(k, rec) for k, rec in self._wal if k not in dropset]

    async def _store_commits(self, commits: Sequence[CertifiedBlock]) -> None:
        """Several blocks committed at once (catch-up: a fetched answer): stored in ONE synced
        batch, then executed in order. Safe: each has a verified commit certificate, the
        batch is atomic and durable before the ledger applies any of them (the same "stored,
        synced, then executed" order as one block at a time), and nothing this node signs
        depends on them before that; a crash loses none or all of them (fetched again).
        Measured: an fsync per block was ~2 ms of the catch-up's ~10 ms per block."""
        pre = [(cb, self._decode_committed(cb.block)) for cb in commits]
        items = [(cb.block, cb.certificate, [d.id for d in dec if d is not None]) for cb, (_, dec) in pre]
        t0 = time.perf_counter()
        await threads.run_sync(self.store.commit_blocks, items)
        self.metrics.fsync_latency.observe(time.perf_counter() - t0)
        for cb, done in pre:
            await self._execute(cb.block, cb.certificate, stored=done)
            await trio.lowlevel.checkpoint()  # let fetches, the transport and the API run between blocks

    async def _execute(self, block: Block, cert: CommitCertificate,
                       stored: tuple[tuple[bytes, ...], list[SignedEvent | None]] | None = None) -> None:
        """Store (synced) and execute one committed block; `stored`: already stored by
        `_store_commits`, with its `_decode_committed` result."""
        h = block.header.height
        hashes, decoded = self._decode_committed(block) if stored is None else stored
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
            self._dirty_height = h
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
        verified_pop, raws_pop = self.verified.pop, self._verified_raws.pop
        for x, d in zip(hashes, decoded, strict=True):
            verified_pop(x, None)
            raws_pop(x, None)
            if d is not None:
                self.committed_recent[x] = d.id
        while len(self.committed_recent) > COMMITTED_CACHE_MAX:
            self.committed_recent.popitem(last=False)
        if self._last_commit_time:
            self.metrics.block_interval.observe(now - self._last_commit_time)
        self._last_commit_time = now
        self.last_commit_wall_ms = int(time.time() * 1000)
        self.metrics.height.set(h)
        self.metrics.mempool_size.set(len(self.mempool))
        self.metrics.mempool_bytes.set(self.mempool.bytes)
        self.log.debug("block_committed", height=h, events=len(block.events), accepted=result.accepted)
        if h % self.params.checkpoint_interval == 0:
            self._sync_peers()  # the ledger schedules validator sets at checkpoint heights
        self.replica.executed(h)

    # ------------------------------------------------------------------ reads (API)
    def event_status(self, event_id: bytes) -> dict[str, Any] | None:
        oc = self.ledger.event_outcome(event_id)
        if oc is not None:
            base = {"id": event_id.hex(), "height": oc.height, "index": oc.index}
            if oc.code == "ok":
                return {**base, "status": "committed"}
            return {**base, "status": "rejected", "code": oc.code, "message": oc.message}
        if event_id in self.mempool:
            return {"id": event_id.hex(), "status": "pending"}
        dropped = self.store.dropped(event_id)
        if dropped is not None:
            return {"id": event_id.hex(), "status": "rejected", "code": dropped[0], "message": dropped[1]}
        return None

    def block_json(self, height: int, *, outcomes: bool = False) -> dict[str, Any] | None:
        block = self.store.block(height)
        cert = self.store.certificate(height)
        if block is None or cert is None:
            return None
        ids = [event_id_of_signed(e).hex() for e in block.events]
        # on request (`?outcomes=1`): the ledger's verdict on each event ("ok" or the reason
        # it was refused), once executed here (one store read per event)
        codes: list[str] | None = None
        if outcomes and height <= self.ledger.height:
            codes = []
            for e in ids:
                oc = self.ledger.event_outcome(bytes.fromhex(e))
                codes.append("?" if oc is None else oc.code)
        return {
            "height": height,
            "hash": block.header.hash().hex(),
            "header": to_json(block.header),
            "certificate": to_json(cert),
            "event_ids": ids,
            **({"outcomes": codes} if outcomes else {}),
        }

    def status_json(self) -> dict[str, Any]:
        r = self.replica
        head = self.store.block(self.store.head) if self.store.head else None
        return {
            "chain_id": self.chain_id,
            "node": self.options.name,
            "node_id": self.key.public.hex(),
            "height": self.store.head,
            "executed_height": self.ledger.height,
            "state_root": self.ledger.state_root.hex(),
            "view": r.view,
            "primary": r.primary.hex(),
            "is_primary": r.is_primary,
            "peers": sorted(p.hex() for p in self.transport.connected_peers()),
            "last_block_hash": head.header.hash().hex() if head else None,
            "last_commit_ms": self.last_commit_wall_ms,
            "mempool": {"events": len(self.mempool), "bytes": self.mempool.bytes},
            "intake": {"pending": self.pending_intake(), "gossip_backlog": self._gossip_backlog_n, **self.counters},
            "stable_checkpoint": r.stable_seq,
            "consensus_rejected": dict(r.rejected),
            # vote signatures: checked, and answered from memory (the same vote again)
            "consensus_signatures": {"checked": r.verifier.misses, "repeats_skipped": r.verifier.hits},
            "validators": [v.hex() for v in r.validators.validators],
            "role": "validator" if self.key.public in r.validators else "observer",
        }

    def health(self) -> tuple[bool, str]:
        peers = len(self.transport.connected_peers())
        need = 2 * self.replica.validators.f
        self.metrics.peers.set(peers)
        if peers < need:
            return False, f"connected to {peers} peers, need {need}"
        best = max(self.replica.peer_committed.values(), default=0)
        if best > self.store.head + 2 * self.params.checkpoint_interval:
            return False, f"catching up: at height {self.store.head}, peers at {best}"
        return True, "ok"
