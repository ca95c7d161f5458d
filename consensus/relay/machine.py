"""The relay of certified blocks (and of events on their way to the validators) as a pure
state machine: no I/O, no clock, randomness only from the `random.Random` passed in.

The shell drives it like the replica: inputs are `step(message, sender)`, `tick()` (every
`TICK_MS` of its clock), `connected` / `disconnected` / `dial_failed` (from the transport),
`local_block` (a certified block the node got outside the relay: a validator's commit, or
consensus catch-up), `verified(block, ok)` (the answer to a `verify` request),
`submit_event` and `set_members`; after each input it drains `ready()` and does what it
says: `sends` (message to one peer), `verify` (check a block's certificate against the
validator set of its height and that it extends the chain; answer with `verified`),
`deliver` (store and execute, strictly in height order: only verified blocks), `events`
(events new to this node, to check as the node's intake does; a member then calls
`submit_event(raw, local=False)` for the valid ones, a validator admits them to its
mempool), `dials`, `closes`.

The protocol (PROTOCOL.md section 11 is the normative text):

- **Peers.** Each node keeps `d_lo`..`d_hi` connections to admitted nodes (validators of
  the current set plus registered member nodes): below `d_lo` it dials random admitted
  keys up to `d`; it accepts inbound connections up to `d_hi`; above `d_hi` it closes
  random inbound ones down to `d`. Every `rotate_ticks` it swaps one outbound peer for a
  random new one (the overlay re-randomises, so a partition that healed is bridged); a
  member that knows no path to a validator, or delivered nothing for `stale_ticks`, dials
  one more peer every heartbeat (up to `d_hi`). Validators
  do not dial each other here (they have their consensus links).
- **Blocks.** A node verifies blocks strictly in height order (block h is asked for
  verification only after h - 1 is delivered) and relays only blocks it has delivered
  (verified). On delivering block h it pushes it whole (`RelayBlocks`) to `eager` random
  peers that are not validators and whose last status is below h, and announces it
  (`RelayStatus` with the new height) to the other non-validator peers (a validator, with
  `validator_push_rotate`, pushes only on its turn and announces it to its other member
  peers, unless `validator_announce` is off: `NODE_PARAMS`). A node that
  learns from a status that a peer has a block it lacks waits `fetch_delay_ticks` for a
  push, then asks one peer that has it (`RelayRequest`, members preferred to validators);
  an unanswered request times out after `fetch_timeout_ticks` and goes to another peer.
  The same request fetches whatever gossip lost (catch-up): nothing else is needed.
  Validators never push to or fetch from validators; their upload per block is bounded
  by `d_hi` whatever the number of members.
- **Events.** Statuses carry `hops`: 0 for a validator, else 1 + the least `hops` among
  the node's peers (a non-validator claiming 0 counts as 1). An event is sent to the
  `event_fanout` peers with the fewest hops (fewer than the node's own; an origin's
  re-send, short of such peers, also goes to peers with as many hops as its own); each node
  forwards an event once per wave of its origin's sends (de-duplicated by its SHA-256: a
  copy that comes half a retry period or more after the node took it is taken again,
  since the forward it made then may have been lost). The node where it was submitted
  (its *origin*) keeps it until a delivered block contains it and re-sends it every
  `event_retry_ticks` (to peers drawn again), so an event it accepted is never lost.
- **Bad peers.** A block that fails verification, a request flood or an unanswered
  request counts a strike against the sender; `max_strikes` close the connection and keep
  the peer undialed for `ban_ticks`. Statuses beyond the per-heartbeat budget are ignored.

`MUTATIONS` switch single rules off for the simulator's mutation checks (tests only).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from afterchain.protocol.codec import sha256
from afterchain.protocol.types import Height

from ..messages import CertifiedBlock
from .messages import MAX_HOPS, MAX_RELAY_BLOCKS, RelayBlocks, RelayEvents, RelayMessage, RelayRequest, RelayStatus

__all__ = ["MUTATIONS", "NODE_PARAMS", "TICK_MS", "BlockSource", "Relay", "RelayParams", "RelayReady"]

TICK_MS = 100
"""How often the shell calls `tick()` (every timing below is in ticks)."""

MUTATIONS = frozenset({
    "verify",       # blocks are delivered and relayed without being verified
    "fetch",        # missed blocks are never requested (push and announcements only)
    "event_retry",  # an origin sends an event once and forgets it
})


T = TypeVar("T")


class Rng(Protocol):
    """What the relay uses of a seeded `random.Random` (the shell passes one in)."""

    def random(self) -> float: ...

    def choice(self, seq: Sequence[T]) -> T: ...

    def sample(self, population: Sequence[T], k: int) -> list[T]: ...


class BlockSource(Protocol):
    """The node's store of delivered (verified) blocks, for answering requests."""

    def blocks(self, from_height: int, count: int) -> Sequence[CertifiedBlock]:
        """Consecutive stored blocks from `from_height` (fewer, or none, if not stored)."""
        ...


@dataclass(frozen=True, slots=True)
class RelayParams:
    d: int = 6
    """Connections a node dials up to (GossipSub's D)."""
    d_lo: int = 4
    """Below this many connections, dial up to `d` (GossipSub's D_lo)."""
    d_hi: int = 12
    """Most connections kept; inbound ones above it are refused or closed (GossipSub's D_hi)."""
    eager: int = 2
    """Peers a member pushes a new block to whole; its other peers get an announcement (-1: all)."""
    validator_eager: int = 1
    """Members a validator pushes a new block to (its upload per block is about this many
    blocks, whatever the number of members)."""
    validator_push_rotate: bool = False
    """Only the validator at index `h mod n` of the (sorted) current set pushes block `h`
    (the others announce it): n validators together push each block `validator_eager`
    times, not n times (the node turns it on; the simulator's figures are without it)."""
    validator_announce: bool = True
    """Whether a validator announces each new block (`RelayStatus`) to the member peers it
    does not push it to. Off, members learn a validator's height from its heartbeat status
    only, and of each new block from the member that got the push: one status per member
    peer per heartbeat instead of one per block, but a block whose push went astray
    reaches the members only after the next heartbeat (a member-lag tail of ~1.3 s in
    `bench cluster --members 8`, docs/OPERATIONS.md). On (the node too), a member starts
    the clock of its fallback to a validator (`validator_fetch_delay_ticks`) at the
    validators' commit."""
    members_first: bool = False
    """A member dials members (validators only when no member is left to try, or when it
    knows no path to a validator or delivered nothing for `stale_ticks`), and keeps
    dialing one more member each heartbeat while it has fewer than `d_lo` member peers
    (a dial of a key it has no connection to fails: on a network where the members'
    connections come up after the validators', it would otherwise keep only validators,
    and every block would come from them). Validators still dial members up to `d`."""
    validator_fetch_delay_ticks: int = 6
    """A member asks a validator for a block only when no member peer has had it for this
    long after the announcement (validators' upload is the scarce one)."""
    heartbeat_ticks: int = 10
    fetch_delay_ticks: int = 2
    """After an announcement of a block it lacks, a node waits this long for a push."""
    fetch_timeout_ticks: int = 5
    peer_timeout_ticks: int = 35
    """A peer silent this long (no status, no message) is closed."""
    dial_timeout_ticks: int = 20
    rotate_ticks: int = 300
    stale_ticks: int = 30
    """A member that delivered nothing for this long dials one more peer every heartbeat
    (up to `d_hi`): its peers may all be cut off from the validators."""
    max_ahead: int = 2 * MAX_RELAY_BLOCKS
    """Unverified blocks kept above the delivered height."""
    event_fanout: int = 2
    event_retry_ticks: int = 30
    max_pending_events: int = 10_000
    seen_events: int = 100_000
    max_strikes: int = 3
    ban_ticks: int = 600
    requests_per_heartbeat: int = 20
    statuses_per_heartbeat: int = 40
    max_response_bytes: int = 4 * 1024 * 1024

    def __post_init__(self) -> None:
        if not 1 <= self.d_lo <= self.d <= self.d_hi:
            raise ValueError("need 1 <= d_lo <= d <= d_hi")
        if self.eager < -1 or self.validator_eager < -1:
            raise ValueError("eager and validator_eager are -1 (all) or >= 0")


NODE_PARAMS = RelayParams(validator_push_rotate=True, validator_announce=True, members_first=True)
"""The relay's parameters in a node (`node/runtime/relay.py`; the simulator's
`--node-params`): the defaults, with the validators taking turns to push (one push per
block for the whole validator set) and each validator announcing every new block to its
other member peers (a status, tens of bytes: a member that the push tree missed learns
of the block at the commit, not at the next heartbeat) and members dialing members first."""


@dataclass(slots=True)
class RelayReady:
    sends: list[tuple[bytes, RelayMessage]] = field(default_factory=list)
    verify: list[CertifiedBlock] = field(default_factory=list)
    deliver: list[CertifiedBlock] = field(default_factory=list)
    events: list[tuple[bytes, bytes]] = field(default_factory=list)
    """(sender, encoded event) for events new to this node."""
    dials: list[bytes] = field(default_factory=list)
    closes: list[bytes] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.sends or self.verify or self.deliver or self.events or self.dials or self.closes)


@dataclass(slots=True)
class _Peer:
    outbound: bool
    heard: int
    height: int = 0
    hops: int = MAX_HOPS
    strikes: int = 0
    requests: int = 0
    statuses: int = 0
    failed_until: int = 0
    """Not asked for blocks before this tick (it did not answer, or answered nothing)."""


@dataclass(slots=True)
class _Inflight:
    peer: bytes
    from_height: int
    count: int
    deadline: int


@dataclass(slots=True)
class _Pending:
    raw: bytes
    due: int


@dataclass(slots=True)
class RelayStats:
    blocks_received: int = 0
    duplicate_blocks: int = 0
    invalid_blocks: int = 0
    requests_sent: int = 0
    requests_served: int = 0
    blocks_pushed: int = 0
    """Blocks sent unasked (rule 3)."""
    blocks_served: int = 0
    """Blocks sent in answers to requests (rule 5)."""
    events_forwarded: int = 0
    duplicate_events: int = 0
    events_retaken: int = 0
    """Events taken again: a copy that came a retry period after this node took it."""
    event_retries: int = 0
    rejected: dict[str, int] = field(default_factory=dict)


class Relay:
    def __init__(
        self,
        me: bytes,
        *,
        height: int,
        validators: Iterable[bytes],
        admitted: Iterable[bytes],
        store: BlockSource,
        rng: Rng,
        params: RelayParams | None = None,
        mutations: Iterable[str] = (),
    ) -> None:
        self.me = bytes(me)
        self.height = height
        self.p = params or RelayParams()
        self.rng = rng
        self.store = store
        self.mutations = frozenset(mutations)
        unknown = self.mutations - MUTATIONS
        if unknown:
            raise ValueError(f"unknown mutations {sorted(unknown)}")
        self.validators: frozenset[bytes] = frozenset()
        self.admitted: frozenset[bytes] = frozenset()
        self.now = 0
        self.peers: dict[bytes, _Peer] = {}
        self.dialing: dict[bytes, int] = {}
        self.banned: dict[bytes, int] = {}
        self.candidates: dict[int, tuple[CertifiedBlock, bytes | None]] = {}
        self.verifying: tuple[CertifiedBlock, bytes | None] | None = None
        self.inflight: _Inflight | None = None
        self.missing_since: int | None = None
        self.pending: dict[bytes, _Pending] = {}
        """Events submitted here, until a delivered block holds them."""
        self.seen: OrderedDict[bytes, tuple[bytes | None, int]] = OrderedDict()
        """Events taken, by SHA-256: (the peer it came from, the tick it was taken)."""
        self.stats = RelayStats()
        self._next_heartbeat = 0
        self._next_rotate = self.p.rotate_ticks
        self._progress = 0
        """Tick of the last new height."""
        self._out = RelayReady()
        self._status_to: set[bytes] = set()
        self._events_to: dict[bytes, list[bytes]] = {}
        self.set_members(validators, admitted)

    # ------------------------------------------------------------------ membership

    @property
    def is_validator(self) -> bool:
        return self.me in self.validators

    def set_members(self, validators: Iterable[bytes], admitted: Iterable[bytes]) -> None:
        """The current validator set and every admitted key (validators included), as the
        chain says after each committed block. Peers no longer admitted are closed."""
        self.validators = frozenset(bytes(v) for v in validators)
        self.admitted = frozenset(bytes(a) for a in admitted) | self.validators
        for peer in [p for p in self.peers if p not in self.admitted]:
            self._close(peer)

    def hops(self) -> int:
        if self.is_validator:
            return 0
        best = min((st.hops for st in self.peers.values()), default=MAX_HOPS)
        return min(MAX_HOPS, best + 1)

    # ------------------------------------------------------------------ connections

    def connected(self, peer: bytes, outbound: bool) -> None:
        peer = bytes(peer)
        self.dialing.pop(peer, None)
        if peer == self.me or peer not in self.admitted or peer in self.peers:
            if peer not in self.peers:
                self._reject("not_admitted" if peer != self.me else "self")
                self._out.closes.append(peer)
            return
        if not outbound and len(self.peers) >= self.p.d_hi:
            self._reject("full")
            self._out.closes.append(peer)
            return
        self.peers[peer] = _Peer(outbound=outbound, heard=self.now)
        self._status_to.add(peer)

    def disconnected(self, peer: bytes) -> None:
        peer = bytes(peer)
        self.dialing.pop(peer, None)
        self._status_to.discard(peer)
        self._events_to.pop(peer, None)
        if self.peers.pop(peer, None) is not None and self.inflight is not None and self.inflight.peer == peer:
            self.inflight = None
            self._maybe_fetch()

    def dial_failed(self, peer: bytes) -> None:
        self.dialing.pop(bytes(peer), None)

    def _close(self, peer: bytes) -> None:
        self.disconnected(peer)
        self._out.closes.append(peer)

    def _strike(self, peer: bytes | None, reason: str) -> None:
        self._reject(reason)
        st = self.peers.get(peer) if peer is not None else None
        if st is None or peer is None:
            return
        st.strikes += 1
        if st.strikes >= self.p.max_strikes:
            self.banned[peer] = self.now + self.p.ban_ticks
            self._close(peer)

    def _reject(self, reason: str) -> None:
        self.stats.rejected[reason] = self.stats.rejected.get(reason, 0) + 1

    # ------------------------------------------------------------------ inputs

    def step(self, msg: RelayMessage, sender: bytes) -> None:
        st = self.peers.get(sender)
        if st is None:
            self._reject("not_connected")
            return
        st.heard = self.now
        if type(msg) is RelayStatus:
            self._on_status(sender, st, msg)
        elif type(msg) is RelayBlocks:
            self._on_blocks(sender, st, msg)
        elif type(msg) is RelayRequest:
            self._on_request(sender, st, msg)
        elif type(msg) is RelayEvents:
            self._on_events(sender, msg)
        else:
            self._reject("unknown_message")

    def _on_status(self, sender: bytes, st: _Peer, msg: RelayStatus) -> None:
        st.statuses += 1
        if st.statuses > self.p.statuses_per_heartbeat:
            self._reject("status_flood")
            return
        st.height = int(msg.height)
        # only a validator of the current set is 0 hops away; a member claiming 0 counts as 1
        st.hops = msg.hops if msg.hops or sender in self.validators else 1
        if st.height > self.height and self.missing_since is None:
            self.missing_since = self.now
        self._maybe_fetch()

    def _on_blocks(self, sender: bytes, st: _Peer, msg: RelayBlocks) -> None:
        inflight = self.inflight
        if inflight is not None and inflight.peer == sender:
            self.inflight = None
            if not msg.blocks:
                st.failed_until = self.now + 4 * self.p.fetch_timeout_ticks
        for cb in msg.blocks:
            h = int(cb.block.header.height)
            self.stats.blocks_received += 1
            st.height = max(st.height, h)
            if h <= self.height or h in self.candidates or (self.verifying is not None and
                                                             int(self.verifying[0].block.header.height) == h):
                self.stats.duplicate_blocks += 1
                continue
            if h > self.height + self.p.max_ahead:
                self._reject("too_far_ahead")
                continue
            self.candidates[h] = (cb, sender)
        self._advance()
        self._maybe_fetch()

    def _on_request(self, sender: bytes, st: _Peer, msg: RelayRequest) -> None:
        st.requests += 1
        if st.requests > self.p.requests_per_heartbeat:
            self._strike(sender, "request_flood")
            return
        start = int(msg.from_height)
        count = min(msg.count, max(0, self.height - start + 1))
        blocks: list[CertifiedBlock] = []
        size = 0
        if count > 0:
            for cb in self.store.blocks(start, count):
                size += len(cb.encode())
                if blocks and size > self.p.max_response_bytes:
                    break
                blocks.append(cb)
        self.stats.requests_served += 1
        self.stats.blocks_served += len(blocks)
        self._out.sends.append((sender, RelayBlocks(blocks=tuple(blocks))))

    def _on_events(self, sender: bytes, msg: RelayEvents) -> None:
        seen = self.seen
        window = self.p.event_retry_ticks // 2
        for raw in msg.events:
            h = sha256(raw)
            if h in self.pending:
                self.stats.duplicate_events += 1
                continue
            taken = seen.get(h)
            if taken is not None and self.now - taken[1] < window:
                self.stats.duplicate_events += 1  # another path's copy of the same send
                continue
            # new, or a copy that came a retry period later: the origin sent it again, so
            # the forward this node made may have been lost on the way (it is taken again,
            # checked and forwarded by the same rule: once per wave of the origin's sends)
            if taken is not None:
                self.stats.events_retaken += 1
            self._remember(h, sender)
            self._out.events.append((sender, raw))

    def _remember(self, h: bytes, sender: bytes | None) -> None:
        self.seen[h] = (sender, self.now)
        self.seen.move_to_end(h)
        if len(self.seen) > self.p.seen_events:
            self.seen.popitem(last=False)

    def local_block(self, cb: CertifiedBlock) -> None:
        """A certified block this node got outside the relay (and has verified): relay it."""
        h = int(cb.block.header.height)
        if h != self.height + 1:
            self.height = max(self.height, h)  # a gap: the shell delivers in order, so move on
            self._advance()
            return
        self._accept(cb, None, deliver=False)
        self._advance()

    def verified(self, cb: CertifiedBlock, ok: bool) -> None:
        cur = self.verifying
        if cur is None or not (cur[0] is cb or cur[0] == cb):
            self._reject("unexpected_verified")
            return
        self.verifying = None
        if ok and int(cb.block.header.height) <= self.height:
            pass  # the shell took it as a local block meanwhile: nothing to deliver
        elif ok:
            self._accept(cb, cur[1], deliver=True)
        else:
            self.stats.invalid_blocks += 1
            src = cur[1]
            if src is not None and src in self.peers:
                self.peers[src].failed_until = self.now + self.p.ban_ticks
            self._strike(src, "invalid_block")
            self._fetch_now()
        self._advance()
        self._maybe_fetch()

    def submit_event(self, raw: bytes, *, local: bool = True) -> bool:
        """An event this node checked: `local` if it was submitted here (kept and re-sent
        until a delivered block holds it), else one a peer relayed. False: too many pending."""
        h = sha256(raw)
        if local:
            if h in self.pending:
                return True
            if len(self.pending) >= self.p.max_pending_events:
                self._reject("pending_full")
                return False
            self.pending[h] = _Pending(raw=raw, due=self.now + self.p.event_retry_ticks)
            if "event_retry" in self.mutations:
                del self.pending[h]
        taken = self.seen.get(h)
        sender = taken[0] if taken is not None else None
        if taken is None:
            self._remember(h, None)
        if not self.is_validator:
            self._send_event(raw, sender)
        return True

    def _send_event(self, raw: bytes, exclude: bytes | None, *, sideways: bool = False) -> None:
        """To the `event_fanout` peers with the fewest hops, fewer than this node's;
        `sideways` (an origin's re-send): short of such peers, the rest are drawn among the
        peers with as many hops as this node (a way round a closer peer that drops it)."""
        mine = self.hops()
        ranked = [(st.hops, self.rng.random(), p) for p, st in self.peers.items()
                  if p != exclude and (st.hops < mine or (sideways and st.hops == mine))]
        ranked.sort()
        for _, _, p in ranked[: self.p.event_fanout]:
            self._events_to.setdefault(p, []).append(raw)
            self.stats.events_forwarded += 1

    # ------------------------------------------------------------------ blocks

    def _advance(self) -> None:
        cur = self.verifying
        if cur is not None and int(cur[0].block.header.height) <= self.height:
            self.verifying = None  # a local block passed it (its `verified` is then ignored)
        while self.verifying is None:
            entry = self.candidates.pop(self.height + 1, None)
            if entry is None:
                break
            if "verify" in self.mutations:
                self._accept(entry[0], entry[1], deliver=True)
                continue
            self.verifying = entry
            self._out.verify.append(entry[0])
        for h in [h for h in self.candidates if h <= self.height]:
            del self.candidates[h]

    def _accept(self, cb: CertifiedBlock, source: bytes | None, *, deliver: bool) -> None:
        h = int(cb.block.header.height)
        self.height = h
        self._progress = self.now
        self.missing_since = None
        if deliver:
            self._out.deliver.append(cb)
        if self.pending:
            for eh in cb.block.event_hashes():
                self.pending.pop(eh, None)
        if self.inflight is not None and self.inflight.from_height + self.inflight.count - 1 <= h:
            self.inflight = None
        if any(st.height > h for st in self.peers.values()):
            self.missing_since = self.now
        self._relay(cb, source, h)

    def _relay(self, cb: CertifiedBlock, source: bytes | None, h: int) -> None:
        targets = [p for p, st in self.peers.items() if p != source and p not in self.validators and st.height < h]
        if not targets:
            return
        eager = self.p.validator_eager if self.is_validator else self.p.eager
        if self.is_validator and self.p.validator_push_rotate:
            order = sorted(self.validators)
            if order[h % len(order)] != self.me:
                eager = 0
        k = len(targets) if eager < 0 else min(eager, len(targets))
        push = set(self.rng.sample(targets, k)) if k else set()
        msg = RelayBlocks(blocks=(cb,))
        announce = self.p.validator_announce or not self.is_validator
        for p in targets:
            if p in push:
                self.stats.blocks_pushed += 1
                self._out.sends.append((p, msg))
                self.peers[p].height = max(self.peers[p].height, h - 1)
            elif announce:
                self._status_to.add(p)

    def _fetch_now(self) -> None:
        """No more waiting for a push: the next fetch goes out as soon as a member has it."""
        since = self.now - self.p.fetch_delay_ticks
        self.missing_since = since if self.missing_since is None else min(self.missing_since, since)

    def _maybe_fetch(self) -> None:
        if self.inflight is not None or self.is_validator or "fetch" in self.mutations:
            return
        want = self.height + 1
        if want in self.candidates or self.verifying is not None:
            return
        if self.missing_since is None or self.now - self.missing_since < self.p.fetch_delay_ticks:
            return
        ready = [p for p, st in self.peers.items() if st.height >= want and st.failed_until <= self.now]
        if not ready:
            return
        members = [p for p in ready if p not in self.validators]
        if not members and self.now - self.missing_since < self.p.validator_fetch_delay_ticks:
            return
        peer = self.rng.choice(members or ready)
        st = self.peers[peer]
        count = max(1, min(MAX_RELAY_BLOCKS, st.height - self.height))
        self.inflight = _Inflight(peer=peer, from_height=want, count=count, deadline=self.now + self.p.fetch_timeout_ticks)
        self.stats.requests_sent += 1
        self._out.sends.append((peer, RelayRequest(from_height=Height(want), count=count)))

    # ------------------------------------------------------------------ time

    def tick(self) -> None:
        self.now += 1
        now = self.now
        inflight = self.inflight
        if inflight is not None and now >= inflight.deadline:
            self.inflight = None
            st = self.peers.get(inflight.peer)
            if st is not None:
                st.failed_until = now + 4 * self.p.fetch_timeout_ticks
            self._strike(inflight.peer, "request_timeout")
            self._fetch_now()
        for peer, deadline in list(self.dialing.items()):
            if deadline <= now:
                del self.dialing[peer]
        if self.pending:
            for entry in self.pending.values():
                if entry.due <= now:
                    entry.due = now + self.p.event_retry_ticks
                    self.stats.event_retries += 1
                    self._send_event(entry.raw, None, sideways=True)
        if now >= self._next_heartbeat:
            self._heartbeat()
        self._maybe_fetch()

    def _heartbeat(self) -> None:
        p = self.p
        now = self.now
        self._next_heartbeat = now + p.heartbeat_ticks
        for peer in [k for k, until in self.banned.items() if until <= now]:
            del self.banned[peer]
        for peer, st in list(self.peers.items()):
            if now - st.heard > p.peer_timeout_ticks:
                self._reject("peer_timeout")
                self._close(peer)
                continue
            st.requests = st.statuses = 0
        self._status_to.update(self.peers)
        n = len(self.peers) + len(self.dialing)
        want = 0
        lost = not self.is_validator and (self.hops() >= MAX_HOPS or now - self._progress > p.stale_ticks)
        if n < p.d_lo:
            want = p.d - n
        elif not self.is_validator and n < p.d_hi:
            few_members = p.members_first and sum(1 for k in self.peers if k not in self.validators) < p.d_lo
            if lost or few_members:
                want = 1
        if now >= self._next_rotate:
            self._next_rotate = now + p.rotate_ticks
            outbound = [k for k, st in self.peers.items() if st.outbound]
            if len(outbound) > 1:
                self._close(self.rng.choice(outbound))
                want = max(want, 1)
        if want:
            self._dial(want, any_key=lost)
        if len(self.peers) > p.d_hi:
            inbound = [k for k, st in self.peers.items() if not st.outbound]
            excess = len(self.peers) - p.d
            for peer in self.rng.sample(inbound, min(excess, len(inbound))):
                self._close(peer)

    def _dial(self, count: int, *, any_key: bool = False) -> None:
        skip = self.validators if self.is_validator else frozenset()
        choices = sorted(k for k in self.admitted
                         if k != self.me and k not in self.peers and k not in self.dialing and k not in self.banned and k not in skip)
        if self.p.members_first and not self.is_validator and not any_key:
            members = [k for k in choices if k not in self.validators]
            picks = self.rng.sample(members, min(count, len(members)))
            rest = [k for k in choices if k in self.validators]
            picks += self.rng.sample(rest, min(count - len(picks), len(rest)))
        else:
            picks = self.rng.sample(choices, min(count, len(choices)))
        for peer in picks:
            self.dialing[peer] = self.now + self.p.dial_timeout_ticks
            self._out.dials.append(peer)

    # ------------------------------------------------------------------ output

    def ready(self) -> RelayReady:
        out = self._out
        if not (self._status_to or self._events_to) and out.empty():
            return out  # nothing to do (and nothing allocated)
        if self._status_to:
            status = RelayStatus(height=Height(self.height), hops=self.hops())
            for peer in self.peers:
                if peer in self._status_to:
                    out.sends.append((peer, status))
            self._status_to.clear()
        if self._events_to:
            for peer, events in self._events_to.items():
                for i in range(0, len(events), 1024):
                    out.sends.append((peer, RelayEvents(events=tuple(events[i:i + 1024]))))
            self._events_to.clear()
        self._out = RelayReady()
        return out
