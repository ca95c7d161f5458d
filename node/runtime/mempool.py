"""The mempool: events accepted by this node and not yet committed.

Path of an event: stateless checks (decode with a size limit, chain id, signature — on
worker threads, see `verify_batch`), then `Mempool.admit` (dedup by id, nonce order per
sender, per-sender quota, bounded count and bytes, the ledger's stateful pre-check),
then the journal (so a killed node never loses an accepted event), then gossip.

Invariants:
- everything admitted here has passed the stateless checks (the caller verified the
  signature once; the node's cache of verified events lives in `node.runner`);
- `select` returns, per sender, only runs of consecutive nonces starting at the next
  nonce the chain expects (counting events already in this node's in-flight proposals),
  oldest first across senders: each sender's next event competes by its admission order,
  so a busy sender (or organisation, or event type) cannot starve one that came later;
- the *held* events are the proposable ones (each sender's run of consecutive nonces from
  the next one the chain expects); `take_timer_changes` hands the replica's request timers
  (issue 28) the digests (sha256 of the encoded event) that became held or stopped being
  held (committed, superseded, or no longer proposable) since the last call;
- an accepted event leaves only by being committed (`on_commit`) or by being dropped
  with a reason the client can read (`dropped`, persisted by the caller);
- never a silent drop: when full, `admit` answers `mempool.full` / `mempool.quota` and the
  API turns that into 503 / 429 with Retry-After.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from heapq import heapify, heappop, heapreplace
from typing import NamedTuple

import trio

from afterchain.node.runtime.threads import run_sync as _in_thread
from afterchain.protocol.codec import sha256
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.events import MAX_CONTRACT_EVENT_BYTES, SignedEvent, verify_event

__all__ = ["AddOutcome", "Mempool", "decode_and_verify", "verify_batch"]

_NONCE_CACHE_MAX = 100_000


class AddOutcome(NamedTuple):
    """One event's answer at intake. A named tuple (immutable): one is made per submitted
    event, and a frozen dataclass took ~4x as long to build (object.__setattr__ per field)."""

    event_id: bytes | None
    status: str  # accepted | duplicate | rejected
    code: str = ""
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("accepted", "duplicate")


@dataclass(slots=True)
class _Entry:
    event_id: bytes
    raw: bytes
    sender: bytes
    nonce: int
    order: int  # admission order: oldest first across senders in `select`


def decode_and_verify(raw: bytes, chain_id: str) -> SignedEvent | ProtocolError:
    """Stateless checks of one encoded signed event; never raises on input."""
    try:
        signed = SignedEvent.decode(raw, max_bytes=MAX_CONTRACT_EVENT_BYTES)
        verify_event(signed, chain_id)
    except ProtocolError as exc:
        return exc
    return signed


VERIFY_INLINE_BELOW_EVENTS = 8
"""Batches smaller than this are checked on the calling (trio) thread: a thread hop (thread
wake-up, trio's wake-up socket, GIL hand-over) costs about two verifications."""
VERIFY_CHUNK_MIN_EVENTS = 1024
"""A batch is split over several worker threads only in chunks of at least this many events.
Each extra chunk costs a thread hop, and two threads of one node decoding at once contend for
the GIL, so one thread per batch costs less CPU per event (docs/ARCHITECTURE.md, "Measurements behind the code"). Several batches (API
requests, gossip, pre-prepares) still verify concurrently, each on its thread."""


def _decode_and_verify_all(raws: Sequence[bytes], chain_id: str) -> list[SignedEvent | ProtocolError]:
    return [decode_and_verify(r, chain_id) for r in raws]


async def verify_batch(raws: Sequence[bytes], chain_id: str, *, threads: int = 2) -> list[SignedEvent | ProtocolError]:
    """`decode_and_verify` for many events, on worker threads (PyNaCl releases the GIL):
    one thread unless the batch has `VERIFY_CHUNK_MIN_EVENTS` per thread."""
    if len(raws) < VERIFY_INLINE_BELOW_EVENTS:
        return [decode_and_verify(r, chain_id) for r in raws]
    threads = max(1, min(threads, len(raws) // VERIFY_CHUNK_MIN_EVENTS))
    if threads == 1:
        return await _in_thread(_decode_and_verify_all, raws, chain_id)
    size = (len(raws) + threads - 1) // threads
    chunks = [raws[i : i + size] for i in range(0, len(raws), size)]
    results: list[list[SignedEvent | ProtocolError]] = [[] for _ in chunks]

    async def run(i: int) -> None:
        results[i] = await _in_thread(_decode_and_verify_all, chunks[i], chain_id)

    async with trio.open_nursery() as nursery:
        for i in range(len(chunks)):
            nursery.start_soon(run, i)
    return [r for chunk in results for r in chunk]


class Mempool:
    def __init__(
        self,
        *,
        max_events: int,
        max_bytes: int,
        per_sender_quota: int,
        expected_nonce: Callable[[bytes], int],
        stateful_check: Callable[[SignedEvent], tuple[str, str] | None] | None = None,
        is_committed: Callable[[bytes], bool] = lambda _eid: False,
        max_gapped_events: int = 20_000,
        max_gapped_per_sender: int = 5_000,
    ) -> None:
        self.max_events = max_events
        self.max_gapped_events = max_gapped_events
        self.max_gapped_per_sender = max_gapped_per_sender
        self.max_bytes = max_bytes
        self.per_sender_quota = per_sender_quota
        self._expected_nonce = expected_nonce
        self._nonce_cache: dict[bytes, int] = {}
        """sender -> next nonce the chain expects: the ledger changes only between a block's
        execution and `on_commit`, which forgets the block's senders (one ledger read per
        sender and block instead of one per event and per `select`)."""
        self._hole: dict[bytes, int] = {}
        """sender -> its first free nonce: the first one from `_expected` that no pending
        event holds. Events above it are *gapped*: they wait for the missing nonce."""
        self._gapped_cache = (-1, 0)  # (version, count) of the last `gapped`
        self._evicted: list[tuple[bytes, str, str]] = []
        self._check = stateful_check
        self._is_committed = is_committed
        self._by_id: dict[bytes, _Entry] = {}
        self._id_by_raw: dict[bytes, bytes] = {}
        self._by_sender: dict[bytes, dict[int, _Entry]] = {}
        self._cursor: dict[bytes, int] = {}  # next nonce to propose, per sender
        self._inflight: dict[int, list[bytes]] = {}  # seq -> ids this node proposed
        self._inflight_ids: set[bytes] = set()
        self.bytes = 0
        self._version = 0  # bumped by every change of the pending events
        self._ready_cache = (-1, 0, 0)  # (version, limit, count) of the last `ready_count`
        self._order = 0
        self._held: dict[bytes, dict[int, tuple[bytes, _Entry]]] = {}
        """sender -> nonce -> (digest, entry) of its held (proposable) events, as last handed
        out by `take_timer_changes`."""
        self._held_by_digest: dict[bytes, _Entry] = {}
        self._timer_dirty: dict[bytes, None] = {}  # senders whose held run may have changed
        self.changed = trio.Event()

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._by_id

    def pending_nonces(self, sender: bytes) -> list[int]:
        return list(self._by_sender.get(sender, {}))

    def id_of(self, raw: bytes) -> bytes | None:
        return self._id_by_raw.get(raw)

    def raw(self, event_id: bytes) -> bytes | None:
        e = self._by_id.get(event_id)
        return e.raw if e else None

    def ready_count(self, limit: int) -> int:
        """Events that could be proposed now (per sender, the run of consecutive nonces from
        the next one the chain expects), counted up to `limit`. Events behind a nonce gap
        are not ready: they wait for an earlier event that may not have arrived yet."""
        if self._ready_cache[:2] == (self._version, limit):
            return self._ready_cache[2]  # O(senders): computed once per change of the mempool
        n = 0
        for sender in self._by_sender:
            n += self.first_free_nonce(sender) - self._expected(sender)
            if n >= limit:
                break
        self._ready_cache = (self._version, limit, n)
        return n

    def first_free_nonce(self, sender: bytes) -> int:
        """The first nonce from the next one the chain expects that no pending event of
        `sender` holds: the nonce its next event should carry (pending events above it wait
        behind the gap until an event with it arrives)."""
        h = self._hole.get(sender)
        if h is None:
            h = self._expected(sender)
            pending = self._by_sender.get(sender)
            if pending:
                while h in pending:
                    h += 1
            self._hole[sender] = h
        return h

    def _gapped_of(self, sender: bytes) -> int:
        pending = self._by_sender.get(sender)
        return 0 if not pending else len(pending) - (self.first_free_nonce(sender) - self._expected(sender))

    def gapped(self) -> int:
        """Pending events behind a nonce gap (O(senders), once per change of the mempool)."""
        if self._gapped_cache[0] != self._version:
            self._gapped_cache = (self._version, sum(self._gapped_of(x) for x in self._by_sender))
        return self._gapped_cache[1]

    def take_evicted(self) -> list[tuple[bytes, str, str]]:
        """(id, code, message) of accepted events `admit` gave up on since the last call
        (gapped events evicted for ready ones): the caller records why, as for `on_commit`."""
        out, self._evicted = self._evicted, []
        return out

    # ------------------------------------------------------------------ admission
    def admit(self, items: Iterable[tuple[bytes, SignedEvent]]) -> list[AddOutcome]:
        """Admit verified events. Returns one outcome per item, in order.

        Events behind a nonce gap are bounded apart (`max_gapped_per_sender`,
        `max_gapped_events`): a sender that skips nonces (or whose events were refused
        mid-run) cannot fill the mempool with events that can never be proposed. When the
        mempool is full, an event that is ready (it carries its sender's first free nonce)
        evicts gapped events, the highest nonces of the sender with the most of them first,
        once the stateful check has passed it (an event that will be refused evicts
        nothing); they are reported through `take_evicted`."""
        out: list[AddOutcome] = []
        added = False
        gapped = self.gapped()
        for raw, signed in items:
            eid = signed.id
            if eid in self._by_id or self._is_committed(eid):
                out.append(AddOutcome(eid, "duplicate"))
                continue
            ev = signed.event
            sender = ev.sender
            expected = self._expected(sender)
            if ev.nonce < expected:
                out.append(AddOutcome(eid, "rejected", "nonce.replayed",
                                      f"nonce {ev.nonce} was already used; the next nonce of this sender is {expected}"))
                continue
            pending = self._by_sender.get(sender)
            if pending is not None and ev.nonce in pending:
                out.append(AddOutcome(eid, "rejected", "nonce.conflict",
                                      f"another pending event of this sender already has nonce {ev.nonce}"))
                continue
            if pending is not None and len(pending) >= self.per_sender_quota:
                out.append(AddOutcome(eid, "rejected", "mempool.quota",
                                      f"this sender already has {len(pending)} pending events (quota {self.per_sender_quota})"))
                continue
            hole = self.first_free_nonce(sender)
            ready = ev.nonce == hole
            if not ready and (gapped >= self.max_gapped_events or self._gapped_of(sender) >= self.max_gapped_per_sender):
                out.append(AddOutcome(eid, "rejected", "nonce.gap",
                                      f"nonce {ev.nonce} is ahead of this sender's next free nonce {hole}, and this "
                                      "node holds as many events behind nonce gaps as it keeps; send nonce "
                                      f"{hole} first"))
                continue
            full = self._no_room(len(raw))
            if full and not (ready and gapped):
                out.append(AddOutcome(eid, "rejected", "mempool.full", "the mempool is full; retry later"))
                continue
            # the stateful check before any eviction: an event it refuses evicts nothing
            if self._check is not None:
                verdict = self._check(signed)
                if verdict is not None:
                    out.append(AddOutcome(eid, "rejected", verdict[0], verdict[1]))
                    continue
            if full:
                gapped -= self._evict_gapped(len(raw))
                if self._no_room(len(raw)):
                    out.append(AddOutcome(eid, "rejected", "mempool.full", "the mempool is full; retry later"))
                    continue
            entry = _Entry(eid, raw, sender, ev.nonce, self._order)
            self._order += 1
            self._timer_dirty[sender] = None
            self._by_id[eid] = entry
            self._id_by_raw[raw] = eid
            pending = self._by_sender.setdefault(sender, {})
            pending[ev.nonce] = entry
            self.bytes += len(raw)
            if ready:  # the run grows, over any gapped events it now reaches
                h = hole + 1
                while h in pending:
                    h += 1
                self._hole[sender] = h
                gapped -= h - hole - 1
            else:
                gapped += 1
            added = True
            out.append(AddOutcome(eid, "accepted"))
        if added or self._evicted:
            self._notify()
        return out

    def _no_room(self, nbytes: int) -> bool:
        """Whether one more event of `nbytes` would exceed `max_events` or `max_bytes`."""
        return len(self._by_id) >= self.max_events or self.bytes + nbytes > self.max_bytes

    def _evict_gapped(self, room_bytes: int) -> int:
        """Drop gapped events until one more event of `room_bytes` fits; returns how many."""
        n = 0
        while self._no_room(room_bytes):
            victim = max(self._by_sender, key=self._gapped_of, default=None)
            if victim is None or self._gapped_of(victim) == 0:
                break
            pending = self._by_sender[victim]
            e = pending[max(pending)]  # the highest nonce is always behind the gap
            if e.event_id in self._inflight_ids:
                break
            self._by_id.pop(e.event_id, None)
            self._remove_from_sender(e)
            self._evicted.append((e.event_id, "mempool.evicted",
                                  f"nonce {e.nonce} waited behind a gap (this sender's next free nonce is "
                                  f"{self.first_free_nonce(victim)}) and the mempool needed room for an event "
                                  "that could be proposed"))
            n += 1
        return n

    def _expected(self, sender: bytes) -> int:
        n = self._nonce_cache.get(sender)
        if n is None:
            if len(self._nonce_cache) >= _NONCE_CACHE_MAX:
                self._nonce_cache.clear()
                self._hole.clear()
            n = self._nonce_cache[sender] = self._expected_nonce(sender)
        return n

    def _notify(self) -> None:
        self._version += 1
        self.changed.set()
        self.changed = trio.Event()

    # ------------------------------------------------------------------ proposals
    def select(self, max_events: int, max_bytes: int) -> list[bytes]:
        """Encoded events for the next proposal (not removed until committed), oldest first
        across senders (see the module docstring)."""
        chosen: list[bytes] = []
        if max_events <= 0:
            return chosen
        size = 0
        heap: list[tuple[int, int, bytes]] = []
        for sender, pending in self._by_sender.items():
            nonce = max(self._cursor.get(sender, 0), self._expected(sender))
            e = pending.get(nonce)
            if e is not None and e.event_id not in self._inflight_ids:
                heap.append((e.order, nonce, sender))
        heapify(heap)
        while heap:
            _, nonce, sender = heap[0]
            pending = self._by_sender[sender]
            e = pending[nonce]
            if len(chosen) >= max_events or size + len(e.raw) > max_bytes:
                return chosen
            chosen.append(e.raw)
            size += len(e.raw)
            nxt = pending.get(nonce + 1)
            if nxt is None or nxt.event_id in self._inflight_ids:
                heappop(heap)
            else:
                heapreplace(heap, (nxt.order, nonce + 1, sender))
        return chosen

    def any_proposable(self) -> bool:
        """Whether `select` would return something (cheaper: stops at the first sender)."""
        for sender, pending in self._by_sender.items():
            e = pending.get(max(self._cursor.get(sender, 0), self._expected(sender)))
            if e is not None and e.event_id not in self._inflight_ids:
                return True
        return False

    # ------------------------------------------------------------------ request timers
    def take_timer_changes(self) -> tuple[list[bytes], list[bytes]]:
        """(held, released): digests of events that became proposable here, and of held
        events that stopped being so (committed, superseded, or behind a new gap), since
        the last call. The replica's request timers run on these (consensus.replica)."""
        hold: list[bytes] = []
        release: list[bytes] = []
        for sender in self._timer_dirty:
            old = self._held.get(sender, {})
            pending = self._by_sender.get(sender)
            new: dict[int, tuple[bytes, _Entry]] = {}
            if pending:
                nonce = self._expected(sender)
                while (e := pending.get(nonce)) is not None:
                    prev = old.get(nonce)
                    if prev is not None and prev[1] is e:
                        new[nonce] = prev
                    else:
                        d = sha256(e.raw)
                        new[nonce] = (d, e)
                        hold.append(d)
                        self._held_by_digest[d] = e
                    nonce += 1
            for nonce, (d, e) in old.items():
                if new.get(nonce, (None, None))[1] is not e:
                    release.append(d)
                    self._held_by_digest.pop(d, None)
            if new:
                self._held[sender] = new
            else:
                self._held.pop(sender, None)
        self._timer_dirty.clear()
        return hold, release

    def raw_by_digest(self, digests: Iterable[bytes]) -> list[bytes]:
        """The encoded held events with these digests (unknown ones are skipped): what a
        backup forwards to the primary when a request timer passes T1."""
        return [e.raw for d in digests if (e := self._held_by_digest.get(d)) is not None]

    def held_event_id(self, digest: bytes) -> bytes | None:
        e = self._held_by_digest.get(digest)
        return e.event_id if e is not None else None

    def held_count(self) -> int:
        return len(self._held_by_digest)

    def unproposed(self) -> int:
        """Pending events not in one of this node's uncommitted proposals (an upper bound on
        what `select` can return: events behind a nonce gap are counted too)."""
        return max(0, len(self._by_id) - len(self._inflight_ids))

    def mark_proposed(self, seq: int, event_ids: Sequence[bytes]) -> None:
        self._inflight[seq] = list(event_ids)
        self._inflight_ids.update(event_ids)
        for eid in event_ids:
            e = self._by_id.get(eid)
            if e is not None and e.nonce >= self._cursor.get(e.sender, 0):
                self._cursor[e.sender] = e.nonce + 1

    def release_inflight(self) -> None:
        """Forget this node's uncommitted proposals (e.g. after a view change)."""
        self._inflight.clear()
        self._inflight_ids.clear()
        self._cursor.clear()

    # ------------------------------------------------------------------ commits
    def on_commit(self, seq: int, event_ids: Iterable[bytes],
                  senders: Iterable[bytes] | None = None) -> list[tuple[bytes, str, str]]:
        """Remove committed events; return the (id, code, message) of events dropped as superseded.

        `senders`: the senders of the block's events (only their nonces can have moved);
        None re-checks every sender with pending events (one ledger read each: slow when
        thousands of senders are pending)."""
        for eid in event_ids:
            e = self._by_id.pop(eid, None)
            if e is not None:
                self._remove_from_sender(e)
        for s in [s for s in self._inflight if s <= seq]:
            self._inflight_ids.difference_update(self._inflight.pop(s))
        if seq not in self._inflight and self._cursor and not self._inflight:
            self._cursor.clear()
        dropped: list[tuple[bytes, str, str]] = []
        # events whose nonce the chain has now passed can never commit: drop them with a reason
        if senders is None:
            self._nonce_cache.clear()
            self._hole.clear()
        else:
            senders = set(senders)
            for x in senders:
                self._nonce_cache.pop(x, None)
                self._hole.pop(x, None)
        self._timer_dirty.update(dict.fromkeys(self._by_sender if senders is None else senders))
        # a sender with nothing pending has nothing in flight: its cursor goes (under steady
        # load `_inflight` is never empty, so the clear above never ran and `_cursor` kept
        # one entry per sender ever proposed)
        for x in self._cursor.keys() - self._by_sender.keys() if senders is None else senders:
            if x not in self._by_sender:
                self._cursor.pop(x, None)
        for sender in list(self._by_sender) if senders is None else [x for x in senders if x in self._by_sender]:
            expected = self._expected(sender)
            for nonce in [n for n in self._by_sender[sender] if n < expected]:
                e = self._by_sender[sender][nonce]
                self._by_id.pop(e.event_id, None)
                self._remove_from_sender(e)
                dropped.append((e.event_id, "nonce.superseded",
                                f"another event of this sender committed with nonce {nonce}"))
        self._notify()
        return dropped

    def _remove_from_sender(self, e: _Entry) -> None:
        self._id_by_raw.pop(e.raw, None)
        self._hole.pop(e.sender, None)
        self._timer_dirty[e.sender] = None
        pending = self._by_sender.get(e.sender)
        if pending is not None and pending.get(e.nonce) is e:
            del pending[e.nonce]
            if not pending:
                del self._by_sender[e.sender]
        self.bytes -= len(e.raw)
        self._inflight_ids.discard(e.event_id)
