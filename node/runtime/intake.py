"""Event intake: from encoded events (API, peers' gossip, a pre-prepare) to the mempool.

`KnownEvents` is what this node knows of events by SHA-256 of their bytes: decoded and
signature-checked (`verified`, left at commit), being checked on a worker thread
(`verifying`), waiting in the gossip backlog (`incoming`) and recently committed
(`committed_recent`). Its `verify_once` checks each event's signature once per node: a
path that needs an event another path is checking waits for that check.

`Intake` admits events: `submit` (backpressure before any signature check, stateless
checks on threads, mempool admission with the ledger's pre-check, journal, gossip) and
the backlog of peers' gossip batches, worked off by its own task (`backlog_worker`) so a
peer's stream, which also carries consensus messages, never waits for verification.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

import trio

from afterchain.node.app.ledger import Ledger
from afterchain.node.common.log import short_id
from afterchain.node.runtime.chain_store import ChainStore
from afterchain.node.runtime.gossip import GOSSIP_MAX_EVENTS
from afterchain.node.runtime.mempool import AddOutcome, Mempool, decode_and_verify, verify_batch
from afterchain.node.runtime.metrics import NodeMetrics
from afterchain.node.runtime.options import NodeOptions
from afterchain.protocol.block import Block
from afterchain.protocol.codec import sha256
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.events import SignedEvent

__all__ = ["COMMITTED_CACHE_MAX", "GOSSIP_MERGE_MAX_EVENTS", "VERIFIED_CACHE_MAX", "Intake", "KnownEvents", "Verifying",
           "stateful_check"]

VERIFIED_CACHE_MAX = 60_000
"""Decoded, signature-checked events not yet committed (a block's events found here are not
verified again). Entries leave at commit; the bound only matters for events that never
commit, and pending events stay well below it under the intake limits
(`intake_limit_events`, `gossip_backlog_events`). A miss costs one more signature check,
never correctness."""
COMMITTED_CACHE_MAX = 50_000
"""Hashes of recently committed raw events: a late gossip copy is known without a signature
check (an older copy is verified again and then answered `duplicate` by the mempool's
committed-event lookup)."""
GOSSIP_MERGE_MAX_EVENTS = GOSSIP_MAX_EVENTS
"""The backlog worker admits queued peers' batches together up to a gossip batch's size."""

Counters = dict[str, int]


class Verifying:
    """One batch of signature checks in flight: `done` is set when `results` are in;
    `raws` are its events by hash (a compact pre-prepare may name them meanwhile)."""

    __slots__ = ("done", "raws", "results")

    def __init__(self, raws: dict[bytes, bytes]) -> None:
        self.done = trio.Event()
        self.raws = raws
        self.results: dict[bytes, SignedEvent | ProtocolError] = {}


class KnownEvents:
    """Events this node has, by sha256(raw); see the module docstring."""

    def __init__(self, chain_id: str, counters: Counters) -> None:
        self.chain_id = chain_id
        self.counters = counters
        self.verified: OrderedDict[bytes, SignedEvent] = OrderedDict()  # decoded, signature checked
        self.raws: dict[bytes, bytes] = {}  # the same keys -> the encoded event
        self.verifying: dict[bytes, Verifying] = {}
        """The signature check of an event now running on a worker thread (API or gossip
        intake, or a pre-prepare's events): another path that needs the same event waits
        for it instead of checking the signature a second time."""
        self.incoming: dict[bytes, bytes] = {}  # the events in the gossip backlog
        self.committed_recent: OrderedDict[bytes, bytes] = OrderedDict()  # -> event id

    def remember_verified(self, raw_hash: bytes, signed: SignedEvent, raw: bytes) -> None:
        self.verified[raw_hash] = signed
        self.raws[raw_hash] = raw
        if len(self.verified) > VERIFIED_CACHE_MAX:
            self.raws.pop(self.verified.popitem(last=False)[0], None)

    def raw_by_hash(self, h: bytes) -> bytes | None:
        """The encoded event with SHA-256 `h`, if this node has it: verified, being
        verified, or waiting in the gossip backlog."""
        raw = self.raws.get(h)
        if raw is None:
            raw = self.incoming.get(h)
            if raw is None and (job := self.verifying.get(h)) is not None:
                raw = job.raws.get(h)
        return raw

    async def verify_once(self, items: list[tuple[bytes, bytes]], *, counter: str) -> dict[bytes, SignedEvent | ProtocolError]:
        """Decode and check the signature of each (raw, sha256(raw)) on worker threads,
        except those another path is checking right now (`verifying`): for them, wait for
        that check's result. So an event that arrives by gossip and in a pre-prepare at the
        same moment is checked once. Results by hash; those that pass are put in `verified`
        as soon as their batch is done; `counter` counts the checks made here. (The callers
        look up the `verified` cache first.)"""
        mine: list[tuple[bytes, bytes]] = []
        theirs: list[tuple[bytes, bytes, Verifying]] = []
        seen: set[bytes] = set()
        for raw, h in items:
            other = self.verifying.get(h)
            if other is not None:
                theirs.append((raw, h, other))
            elif h not in seen:  # (a block may name an event twice: checked once)
                seen.add(h)
                mine.append((raw, h))
        out: dict[bytes, SignedEvent | ProtocolError] = {}
        if mine:
            self.counters[counter] += len(mine)
            job = Verifying({h: r for r, h in mine})
            for _, h in mine:
                self.verifying.setdefault(h, job)
            try:
                checked = await verify_batch([r for r, _ in mine], self.chain_id)
                job.results = dict(zip((h for _, h in mine), checked, strict=True))
                out.update(job.results)
                # into the cache before they leave `verifying`: this call may still wait
                # for other checks below, and a copy arriving meanwhile must find them
                for h, res in job.results.items():
                    if isinstance(res, SignedEvent):
                        self.remember_verified(h, res, job.raws[h])
            finally:
                for _, h in mine:
                    if self.verifying.get(h) is job:
                        del self.verifying[h]
                job.done.set()
        missing: list[tuple[bytes, bytes]] = []
        for raw, h, job in theirs:
            await job.done.wait()
            theirs_res = job.results.get(h)
            if theirs_res is None:  # that check was cancelled: check (or wait) again
                missing.append((raw, h))
            else:
                out[h] = theirs_res
        if missing:
            out.update(await self.verify_once(missing, counter=counter))
        return out

    async def preverify(self, block: Block) -> None:
        """Check the signatures of a pre-prepared block's events not yet verified here,
        before the replica sees the block (so `verify_payload` finds them cached)."""
        verified = self.verified
        unknown = [(r, h) for r, h in zip(block.events, block.event_hashes(), strict=True) if h not in verified]
        if unknown:
            await self.verify_once(unknown, counter="verified_preprepare")  # (it caches what passed)

    def decode_committed(self, block: Block) -> tuple[tuple[bytes, ...], list[SignedEvent | None]]:
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

    def committed(self, hashes: tuple[bytes, ...], decoded: list[SignedEvent | None]) -> None:
        """A block's events committed: out of the verified cache, into `committed_recent`."""
        verified_pop, raws_pop = self.verified.pop, self.raws.pop
        recent = self.committed_recent
        for x, d in zip(hashes, decoded, strict=True):
            verified_pop(x, None)
            raws_pop(x, None)
            if d is not None:
                recent[x] = d.id
        while len(recent) > COMMITTED_CACHE_MAX:
            recent.popitem(last=False)


def stateful_check(ledger: Ledger) -> Callable[[SignedEvent], tuple[str, str] | None]:
    """The mempool's pre-check: the ledger's verdict on an event now (signature already checked)."""
    def check(signed: SignedEvent) -> tuple[str, str] | None:
        oc = ledger.check(signed, verify_signature=False)
        return None if oc is None else (oc.code, oc.message)
    return check


class Intake:
    """Admission of events to the mempool; see the module docstring."""

    def __init__(self, *, known: KnownEvents, mempool: Mempool, store: ChainStore, options: NodeOptions,
                 metrics: NodeMetrics, log: Any, counters: Counters, arrival: dict[bytes, float],
                 gossip: Callable[[bytes], None], nudge: Callable[[], None]) -> None:
        self.known = known
        self.mempool = mempool
        self.store = store
        self.options = options
        self.metrics = metrics
        self.log = log
        self.counters = counters
        self.arrival = arrival
        """event id -> when it was admitted here (monotonic s): commit latency, re-gossip."""
        self.gossip = gossip
        self.nudge = nudge
        self.inflight = 0  # API / gossip events being verified now
        self.backlog: deque[tuple[list[bytes], list[bytes]]] = deque()  # peers' batches: (raws, their hashes)
        self.backlog_events = 0
        self._backlog_wakeup = trio.Event()

    def pending(self) -> int:
        """Events waiting for this node's pipeline: the mempool's *ready* events (not those
        behind a nonce gap: refusing new batches because of them could refuse the very
        event that fills the gap), the gossip backlog, and API batches being verified.
        Gapped events are capped apart (`max_gapped_events`): the API also refuses while the
        mempool holds 3 x `intake_limit_events` events that are not behind a gap (then the
        mempool's own bounds cap peers' gossip). Counting gapped ones there would let one
        sender's gaps shut the API for everyone."""
        limit = self.options.intake_limit_events
        return self.mempool.ready_count(limit) + self.backlog_events + self.inflight

    async def submit(self, raws: list[bytes], pre_errors: dict[int, ProtocolError] | None = None, *,
                     from_peer: bool = False, hashes: list[bytes] | None = None) -> list[AddOutcome]:
        """Stateless checks (threads), mempool admission, journal, gossip. One outcome per
        raw. `hashes`: sha256 of each raw, if the caller has them (no pre_errors then)."""
        pre_errors = pre_errors or {}
        if not from_peer and (len(self.mempool) - self.mempool.gapped() >= 3 * self.options.intake_limit_events
                              or self.pending() >= self.options.intake_limit_events):
            # refuse before the (expensive) signature checks: the client retries later
            self.counters["intake_refused_events"] += len(raws)
            self.metrics.events_rejected.labels("mempool.full").inc(len(raws))
            busy = AddOutcome(None, "rejected", "mempool.full",
                              f"the node is busy ({len(self.mempool)} events pending); retry later")
            return [busy] * len(raws)
        known = self.known
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
            hit = known.verified.get(h)  # read now: the cache may change while we await below
            if hit is not None:
                results[i] = hit
            elif (eid := known.committed_recent.get(h)) is not None:
                committed[i] = eid
            elif (j := first_of.setdefault(h, i)) != i:
                copies.append((i, j))
            else:
                unknown.append((i, r))
        if committed:
            self.counters["gossip_known_events"] += len(committed)
        self.inflight += len(unknown)
        try:
            checked = await known.verify_once([(r, hash_of[i]) for i, r in unknown], counter=(
                "verified_gossip" if from_peer else "verified_api"))
        finally:
            self.inflight -= len(unknown)
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
            admit.append((i, raw, res))  # (in `verified` already: the cache or `verify_once` put it there)
        admitted = self.mempool.admit([(raw, s) for _, raw, s in admit])
        if evicted := self.mempool.take_evicted():
            self.store.journal_drop(evicted)
            self.metrics.events_rejected.labels("mempool.evicted").inc(len(evicted))
            self.log.info("gapped_events_evicted", count=len(evicted))
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
                    self.gossip(raw)
        if journal:
            self.store.journal_add(journal)
        if any_accepted:
            self.nudge()
        rejected = [o for o in outcomes if o is not None and o.status == "rejected"]
        for o in rejected:
            self.metrics.events_rejected.labels(o.code).inc()
        if rejected and not from_peer:
            self.log.info("events_rejected_at_intake", count=len(rejected), first_code=rejected[0].code)
        return [o for o in outcomes if o is not None]

    def offer(self, sender: bytes, raws: list[bytes]) -> None:
        """A peer's gossip batch: into the backlog, or dropped (counted) when it is full."""
        n = len(raws)
        if self.backlog_events + n > self.options.gossip_backlog_events:
            self.counters["gossip_dropped_events"] += n
            self.log.info("gossip_batch_dropped", peer=short_id(sender), events=n, backlog=self.backlog_events)
            return
        hashes = [sha256(r) for r in raws]
        self.known.incoming.update(zip(hashes, raws, strict=True))
        self.backlog.append((raws, hashes))
        self.backlog_events += n
        self._backlog_wakeup.set()

    async def backlog_worker(self) -> None:
        """Verify and admit gossiped batches (off the peers' streams: see `gossip_backlog_events`)."""
        while True:
            while not self.backlog:
                self._backlog_wakeup = trio.Event()
                await self._backlog_wakeup.wait()
            # everything queued meanwhile in one go (up to a gossip batch's size): one thread
            # hop, one mempool admission and one journal write for several peers' batches
            backlog = self.backlog
            raws, hashes = backlog.popleft()
            while backlog and len(raws) + len(backlog[0][0]) <= GOSSIP_MERGE_MAX_EVENTS:
                more, more_hashes = backlog.popleft()  # (the popped lists are ours to extend)
                raws += more
                hashes += more_hashes
            try:
                await self.submit(raws, from_peer=True, hashes=hashes)
            finally:
                self.backlog_events -= len(raws)
                for h in hashes:  # (verified now, or refused)
                    self.known.incoming.pop(h, None)

    def reload_journal(self) -> None:
        """At start-up: the events this node accepted and had not committed, admitted again."""
        raws = [raw for _, raw in self.store.journal()]
        if not raws:
            return
        items = []
        for raw in raws:
            res = decode_and_verify(raw, self.known.chain_id)
            if isinstance(res, SignedEvent):
                items.append((raw, res))
                self.known.remember_verified(sha256(raw), res, raw)
        outcomes = self.mempool.admit(items)
        now = time.monotonic()
        for (raw, _), o in zip(items, outcomes, strict=True):
            if o.status == "accepted" and o.event_id is not None:
                self.arrival[o.event_id] = now
                self.gossip(raw)
            elif o.status == "rejected" and o.event_id is not None:
                self.store.journal_drop([(o.event_id, o.code, o.message)])
        self.log.info("mempool_journal_reloaded", events=len(raws), admitted=sum(o.status == "accepted" for o in outcomes))
