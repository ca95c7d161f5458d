"""The dissemination relay in a running node: drives `consensus.relay.Relay` (the pure
state machine of docs/PROTOCOL.md section 11) from trio.

- **Wire.** The relay's messages (tags 0xA0-0xA4) travel as DIRECT frames on the node's
  transport streams, like consensus messages; `PeerInbox` hands them here (`offer_frame`,
  never blocking the peer's stream: a full queue drops them, counted). Blocks go deflated
  (`RelayBlocksDeflated`) when that is smaller; a received one is inflated (bounded) and
  taken as the `RelayBlocks` inside.
- **Peers.** The relay's peers are a bounded subset (`RelayParams.d_lo`..`d_hi`) of the
  node's live, authenticated transport connections to admitted keys. A *dial* of the
  machine takes a connected key as an outbound relay peer (it gets our `RelayStatus`), a
  key that is not connected fails at once (`dial_failed`); the first relay message of a
  connected admitted key that is not a relay peer makes it an inbound one. A *close*
  stops relaying with that key: its relay messages are ignored for `SHUT_S` (it times us
  out), while its transport connection (consensus, catch-up) stays.
- **Blocks.** A block to verify goes through `member.BlockReceiver.offer` (a member: the
  same checks as the follower's, then committed and executed through the consensus loop),
  so a node relays only what it verified; a validator relays what it committed (its
  certificate from consensus), as soon as the state root check passed and before storing
  and executing it (`BlockExecutor.on_committed`). Blocks the follower accepted are given to the machine as
  local blocks (`BlockReceiver.on_accept`). Verified blocks are kept in memory
  (`CACHE_BLOCKS`) to answer requests without reading the chain store.
- **Events.** A member's own clients' events go to the machine (`submit_local`: re-sent
  until a delivered block holds them; the intake's journal keeps them across restarts);
  events from peers are checked as the intake checks them (signature, stateful pre-check)
  before a member forwards them; a validator admits them through its intake, which
  gossips them to the other validators (section 7 paths from there on).
- **Bad peers.** Besides the machine's own strikes, each peer's requests and statuses are
  rate-limited (`PeerLimiter`): over the limit a message is refused, logged, counted, and a
  strike; `MAX_FLOOD_STRIKES` strikes block the peer at the transport for `BAN_S`.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import trio

from afterchain.consensus.messages import CertifiedBlock
from afterchain.consensus.relay import (
    MAX_HOPS,
    Relay,
    RelayBlocks,
    RelayBlocksDeflated,
    RelayEvents,
    RelayMessage,
    RelayParams,
    RelayRequest,
    RelayStatus,
    deflate_blocks,
)
from afterchain.consensus.relay.machine import NODE_PARAMS, TICK_MS
from afterchain.node.common.log import short_id
from afterchain.node.runtime.catchup import certified_block_parts
from afterchain.node.runtime.chain_store import ChainStore
from afterchain.node.runtime.gossip import Outboxes
from afterchain.node.runtime.inputs import PEER_MESSAGE_MAX_BYTES
from afterchain.node.runtime.member import BlockReceiver
from afterchain.node.runtime.ratelimit import PeerLimiter
from afterchain.node.transport.base import Transport
from afterchain.protocol.block import Block, CommitCertificate
from afterchain.protocol.codec import decode_as, sha256
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.events import SignedEvent

__all__ = ["CACHE_BLOCKS", "INBOX_LEN", "NODE_PARAMS", "SHUT_S", "RelayService", "event_checker", "is_relay_frame"]

DEFLATED_KEPT_BYTES = 8 * 1024 * 1024
"""Bytes of deflated block frames (and their blocks' encodings) kept for passing the same
blocks on (`RelayService._deflate`); the oldest go first."""

INBOX_LEN = 1024
"""Relay messages queued for the relay task; beyond it they are dropped (counted)."""
SHUT_S = 10.0
"""How long the relay messages of a key it closed are ignored (it times us out meanwhile)."""
CACHE_BLOCKS = 128
"""Verified blocks kept in memory to answer requests."""
ACTIVE_S = 3.0
"""The relay counts as delivering while it took a new block this recently."""
EVENT_TASKS_MAX = 16
"""Batches of peers' events being checked at once; more are dropped (their origins re-send)."""





def is_relay_frame(data: bytes) -> bool:
    """Whether an encoded message is one of the relay's (tag 0xA0-0xAF: `[tag, 1, ...]`
    with the tag a uint8 `cc`)."""
    return len(data) >= 3 and 0x90 <= data[0] <= 0x9F and data[1] == 0xCC and 0xA0 <= data[2] <= 0xAF


class _Source:
    """`BlockSource` over the in-memory cache, then the chain store."""

    def __init__(self, store: ChainStore) -> None:
        self.store = store
        self.cache: OrderedDict[int, CertifiedBlock] = OrderedDict()

    def put(self, cb: CertifiedBlock) -> None:
        h = int(cb.block.header.height)
        self.cache[h] = cb
        self.cache.move_to_end(h)
        while len(self.cache) > CACHE_BLOCKS:
            self.cache.popitem(last=False)

    def blocks(self, from_height: int, count: int) -> Sequence[CertifiedBlock]:
        out: list[CertifiedBlock] = []
        for h in range(from_height, from_height + count):
            cb = self.cache.get(h)
            if cb is None:
                parts = certified_block_parts(self.store, h, 1)
                if not parts:
                    break
                cb = CertifiedBlock.decode(parts[0], max_bytes=PEER_MESSAGE_MAX_BYTES)
            out.append(cb)
        return out


class RelayService:
    """See the module docstring. `run` is the relay's one task."""

    def __init__(self, *, me: bytes, transport: Transport, store: ChainStore, receiver: BlockReceiver,
                 validators: Callable[[], Iterable[bytes]], admitted: Callable[[], Iterable[bytes]],
                 executed: Callable[[], int], check_events: Callable[[list[bytes]], Any],
                 admit_events: Callable[[bytes, list[bytes]], Any], heads: dict[bytes, int],
                 counters: dict[str, int], log: Any, enabled: bool = True, params: RelayParams | None = None,
                 limiter: PeerLimiter | None = None, seed: int | None = None) -> None:
        self.me = me
        self.transport = transport
        self.store = store
        self.receiver = receiver
        self.validators = validators
        self.admitted = admitted
        self.executed = executed
        self.check_events = check_events
        """Members: `await check_events(raws)` -> the raws that pass the intake's checks."""
        self.admit_events = admit_events
        """Validators: `await admit_events(sender, raws)` (the intake, which gossips them on)."""
        self.heads = heads
        """The follower's heads by peer: validators' statuses update it (`known_head`)."""
        self.counters = counters
        self.log = log
        self.enabled = enabled
        self.source = _Source(store)
        self.limiter = limiter or PeerLimiter(log=log, counters=counters, transport=transport)
        self.machine = Relay(me, height=store.head, validators=list(validators()), admitted=list(admitted()),
                             store=self.source, rng=random.Random(seed), params=params or NODE_PARAMS)
        self.outboxes = Outboxes(transport, log)
        send, self._recv = trio.open_memory_channel[tuple[bytes, bytes]](INBOX_LEN)
        self._send = send
        self._shut: dict[bytes, float] = {}
        self._waiting: CertifiedBlock | None = None  # a block to verify once V(h) is known
        self._members: tuple[frozenset[bytes], frozenset[bytes]] = (frozenset(), frozenset())
        self._progress_s = 0.0
        self._event_tasks = 0
        self._nursery: trio.Nursery | None = None
        # RelayBlocks encoding -> its deflated frame, received or made here: a block passed
        # on goes out in the frame it came in (or was first sent in), not compressed again
        self._deflated: dict[bytes, bytes] = {}
        self._deflated_bytes = 0
        for k in ("relay_in", "relay_out", "relay_dropped", "relay_decode", "relay_shut", "relay_blocks",
                  "relay_events_in", "relay_events_refused", "relay_deflated", "relay_inflated",
                  "relay_deflate_reused"):
            counters.setdefault(k, 0)

    # ------------------------------------------------------------------ hooks other parts call

    def offer_frame(self, sender: bytes, data: bytes) -> None:
        """A relay frame from the transport's inbox (`PeerInbox`): queued, never blocking."""
        if not self.enabled:
            self.counters["relay_dropped"] += 1
            return
        try:
            self._send.send_nowait((sender, data))
        except trio.WouldBlock:
            self.counters["relay_dropped"] += 1

    def _wake(self) -> None:
        with contextlib.suppress(trio.WouldBlock):  # (full: the task drains the machine after each message anyway)
            self._send.send_nowait((b"", b""))

    def on_committed(self, block: Block, cert: CommitCertificate) -> None:
        """A block this node committed (a validator's; a member's too), about to be
        stored and executed."""
        if not self.enabled:
            return
        h = block.header.height
        if h <= self.machine.height:
            return
        cb = CertifiedBlock(block=block, certificate=cert)
        self.source.put(cb)
        self.machine.local_block(cb)
        self._wake()

    def on_follower_blocks(self, blocks: Sequence[CertifiedBlock]) -> None:
        """Blocks the follower's poll accepted (checked by `BlockReceiver`): relay them."""
        if not self.enabled:
            return
        for cb in blocks:
            if cb.block.header.height == self.machine.height + 1:
                self.source.put(cb)
                self.machine.local_block(cb)
        self._wake()

    def submit_local(self, raw: bytes) -> bool:
        """An event this member's intake accepted from a client: towards the validators."""
        ok = self.machine.submit_event(raw, local=True)
        self._wake()
        return ok

    def active(self) -> bool:
        """Whether the relay delivers (the follower then only fills gaps)."""
        m = self.machine
        if not self.enabled or not m.peers:
            return False
        if time.monotonic() - self._progress_s < ACTIVE_S:
            return True  # it brought a block lately
        # or nobody it hears from has anything newer (and some peer has a path to a validator)
        return m.hops() < MAX_HOPS and all(st.height <= m.height for st in m.peers.values())

    def describe(self) -> dict[str, Any]:
        m = self.machine
        st = m.stats
        return {
            "enabled": self.enabled, "height": m.height, "hops": m.hops(), "peers": sorted(short_id(p) for p in m.peers),
            "blocks_received": st.blocks_received, "duplicate_blocks": st.duplicate_blocks,
            "invalid_blocks": st.invalid_blocks, "requests_sent": st.requests_sent, "requests_served": st.requests_served,
            "blocks_pushed": st.blocks_pushed, "blocks_served": st.blocks_served,
            "events_forwarded": st.events_forwarded, "pending_events": len(m.pending), "rejected": dict(st.rejected),
            "limited": self.limiter.describe(),
        }

    # ------------------------------------------------------------------ the task

    async def run(self) -> None:
        if not self.enabled:
            return
        async with trio.open_nursery() as nursery:
            self._nursery = self.outboxes.nursery = nursery
            next_tick = trio.current_time() + TICK_MS / 1000
            while True:
                got: tuple[bytes, bytes] | None = None
                with trio.move_on_at(next_tick):  # (only the wait: what follows must not be cancelled)
                    got = await self._recv.receive()
                if got is not None:
                    if got[1]:
                        self._on_frame(*got)
                    await self._drain()
                    if trio.current_time() < next_tick:
                        continue
                next_tick = trio.current_time() + TICK_MS / 1000
                self._sync()
                self.machine.tick()
                if self._waiting is not None:
                    cb = self._waiting
                    self._waiting = None
                    await self._verify(cb)
                await self._drain()

    def _sync(self) -> None:
        """Membership and connections from the chain and the transport."""
        m = self.machine
        live = self.transport.connected_peers()
        # admitted: the chain's allowlist, and whoever the transport let in (static peers)
        key = (frozenset(self.validators()), frozenset(self.admitted()) | live)
        if key != self._members:
            self._members = key
            m.set_members(*key)
        for peer in [p for p in m.peers if p not in live]:
            m.disconnected(peer)
        now = time.monotonic()
        for peer in [p for p, t in self._shut.items() if t <= now]:
            del self._shut[peer]
        self.limiter.refill(now)

    def _on_frame(self, sender: bytes, data: bytes) -> None:
        self.counters["relay_in"] += 1
        if sender in self._shut:
            self.counters["relay_shut"] += 1
            return
        try:
            msg = decode_as(RelayMessage, data, max_bytes=PEER_MESSAGE_MAX_BYTES)
            if type(msg) is RelayBlocksDeflated:
                self.counters["relay_inflated"] += 1
                msg = msg.inflate()
                self._remember_deflated(msg.encode(), data)
        except ProtocolError as exc:
            self.counters["relay_decode"] += 1
            self.log.warning("relay_message_rejected", peer=short_id(sender), code=str(exc.code), error=str(exc))
            self.limiter.strike(sender, "malformed")
            return
        m = self.machine
        if type(msg) in (RelayRequest, RelayStatus, RelayEvents) and not self.limiter.allow(sender, type(msg).__name__):
            return
        if sender not in m.peers:
            if sender not in self.transport.connected_peers():
                return
            m.connected(sender, outbound=False)
            if sender not in m.peers:
                return  # refused (not admitted, full): the machine closes it
        if type(msg) is RelayStatus and sender in set(self.validators()) and msg.hops == 0:
            self.heads[sender] = max(self.heads.get(sender, 0), int(msg.height))
        m.step(msg, sender)

    def _remember_deflated(self, raw: bytes, frame: bytes) -> None:
        size = len(raw) + len(frame)
        if raw in self._deflated or size > DEFLATED_KEPT_BYTES:
            return
        kept = self._deflated
        while kept and self._deflated_bytes + size > DEFLATED_KEPT_BYTES:
            old_raw = next(iter(kept))  # the oldest
            self._deflated_bytes -= len(old_raw) + len(kept.pop(old_raw))
        kept[raw] = frame
        self._deflated_bytes += size

    def _deflate(self, raw: bytes, msg: RelayBlocks) -> bytes:
        """The frame for `msg` (encoded `raw`): deflated when that is smaller (about half
        the bytes), reusing the frame these blocks came in or were first sent in."""
        frame = self._deflated.get(raw)
        if frame is not None:
            self.counters["relay_deflate_reused"] += 1
            return frame
        packed = deflate_blocks(msg, raw)
        if packed is msg:
            return raw
        self.counters["relay_deflated"] += 1
        frame = packed.encode()
        self._remember_deflated(raw, frame)
        return frame

    async def _drain(self) -> None:
        m = self.machine
        while True:
            out = m.ready()
            if out.empty():
                return
            encoded: dict[int, bytes] = {}
            for peer, msg in out.sends:
                data = encoded.get(id(msg))
                if data is None:
                    data = msg.encode()
                    if type(msg) is RelayBlocks and msg.blocks:
                        data = self._deflate(data, msg)
                    encoded[id(msg)] = data
                self.counters["relay_out"] += 1
                if self.outboxes.put(peer, data):
                    self.counters["relay_dropped"] += 1
            for cb in out.deliver:
                self.source.put(cb)
            for cb in out.verify:
                await self._verify(cb)
            if out.events:
                self._on_events(out.events)
            if out.dials:
                live = self.transport.connected_peers()
                for peer in out.dials:
                    if peer in live and peer not in self._shut:
                        m.connected(peer, outbound=True)
                    else:
                        m.dial_failed(peer)
            for peer in out.closes:
                self._shut[peer] = time.monotonic() + SHUT_S

    async def _verify(self, cb: CertifiedBlock) -> None:
        """The machine asks whether `cb` (the next height) is certified and chained."""
        m = self.machine
        entry = m.verifying
        sender = entry[1] if entry is not None and entry[0] is cb else None
        h = int(cb.block.header.height)
        if self.me in set(self.validators()):
            # a validator commits by consensus: it only confirms blocks it has stored (rule 3:
            # nobody pushes blocks to validators)
            ok = self.receiver.accepted_hash(h) == cb.block.header.hash()
            m.verified(cb, ok)
            return
        if sender is None:
            m.verified(cb, False)  # (cannot happen: a block to verify came from a peer)
            return
        verdict = await self.receiver.offer(sender, cb, executed=self.executed())
        if verdict == "wait":
            self._waiting = cb
            return
        ok = verdict in ("accepted", "known")
        if ok:
            self.counters["relay_blocks"] += verdict == "accepted"
            self._progress_s = time.monotonic()
            self.source.put(cb)
        m.verified(cb, ok)

    def _on_events(self, events: list[tuple[bytes, bytes]]) -> None:
        by_sender: dict[bytes, list[bytes]] = {}
        for sender, raw in events:
            by_sender.setdefault(sender, []).append(raw)
        self.counters["relay_events_in"] += len(events)
        for sender, raws in by_sender.items():
            if self._nursery is None or self._event_tasks >= EVENT_TASKS_MAX:
                self.counters["relay_dropped"] += len(raws)
                continue
            self._event_tasks += 1
            self._nursery.start_soon(self._check_events, sender, raws)

    async def _check_events(self, sender: bytes, raws: list[bytes]) -> None:
        try:
            if self.me in set(self.validators()):
                await self.admit_events(sender, raws)
                return
            good = await self.check_events(raws)
            self.counters["relay_events_refused"] += len(raws) - len(good)
            for raw in good:
                self.machine.submit_event(raw, local=False)
            self._wake()
        finally:
            self._event_tasks -= 1


def event_checker(known: Any, stateful: Callable[[SignedEvent], tuple[str, str] | None]
                  ) -> Callable[[list[bytes]], Any]:
    """The checks a member applies to a peer's event before forwarding it: the signature
    (once per node, `KnownEvents.verify_once`) and the ledger's stateful pre-check."""

    async def check(raws: list[bytes]) -> list[bytes]:
        items = [(raw, sha256(raw)) for raw in raws]
        res = await known.verify_once(items, counter="verified_gossip")
        out = []
        for raw, h in items:
            r = res.get(h)
            if isinstance(r, SignedEvent) and stateful(r) is None:
                out.append(raw)
        return out

    return check
