"""Gossip of events and the per-peer queues of consensus messages.

- `GossipQueue`: encoded events this node accepted from clients, waiting for the next
  flush (a batch goes out every `GOSSIP_FLUSH_S`, or at once when full); `unsent()` names
  them (a compact pre-prepare carries those inline: peers would not have them yet).
- `Gossip`: the events topic: flushing the queue as `EventBatch`es, re-gossiping events
  pending here for `REGOSSIP_AFTER_S` (a peer may have missed them), and handing peers'
  batches to the intake (`offer`), never blocking the peer's stream.
- `Outboxes`: one bounded `Outbox` per peer (oldest dropped: consensus retransmits) and
  one task per peer feeding the transport, so a full or stalled peer never blocks the
  replica.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Container, Iterable
from typing import Any

import trio

from afterchain.node.common.log import short_id
from afterchain.node.runtime.mempool import Mempool
from afterchain.node.runtime.metrics import NodeMetrics
from afterchain.node.transport.base import Transport, TransportError
from afterchain.protocol.codec import Message, message
from afterchain.protocol.errors import ProtocolError

__all__ = ["EVENTS_TOPIC", "GOSSIP_FLUSH_S", "GOSSIP_MAX_BYTES", "GOSSIP_MAX_EVENTS", "OUTBOX_MAX_MESSAGES",
           "REGOSSIP_AFTER_S", "EventBatch", "Gossip", "GossipQueue", "Outbox", "Outboxes"]

EVENTS_TOPIC = "afterchain/events/1"
GOSSIP_FLUSH_S = 0.05
GOSSIP_MAX_EVENTS = 2000
GOSSIP_MAX_BYTES = 768 * 1024
REGOSSIP_AFTER_S = 5.0
OUTBOX_MAX_MESSAGES = 1024
"""Consensus messages queued per peer; beyond it the oldest is dropped (consensus retransmits)."""


@message(tag=0x70)
class EventBatch(Message):
    """Gossip: a batch of encoded `SignedEvent`s."""

    events: tuple[bytes, ...]


class GossipQueue:
    """Encoded events waiting for the next gossip flush, oldest first."""

    def __init__(self) -> None:
        self.raws: list[bytes] = []
        self.size_bytes = 0
        self.wakeup = trio.Event()

    def put(self, raw: bytes) -> None:
        self.raws.append(raw)
        self.size_bytes += len(raw)
        if len(self.raws) >= GOSSIP_MAX_EVENTS or self.size_bytes >= GOSSIP_MAX_BYTES:
            self.wakeup.set()

    def unsent(self) -> set[bytes]:
        return set(self.raws)

    def take_batch(self) -> list[bytes]:
        """The longest prefix within the count and byte limits (at least one event)."""
        size = 0
        n = 0
        for raw in self.raws[:GOSSIP_MAX_EVENTS]:
            if n and size + len(raw) > GOSSIP_MAX_BYTES:
                break
            size += len(raw)
            n += 1
        batch = self.raws[:n]
        del self.raws[:n]
        self.size_bytes -= size
        return batch


class Gossip:
    """The events topic; see the module docstring."""

    def __init__(self, *, transport: Transport, queue: GossipQueue, mempool: Mempool, arrival: dict[bytes, float],
                 offer: Callable[[bytes, list[bytes]], None], metrics: NodeMetrics, log: Any) -> None:
        self.transport = transport
        self.queue = queue
        self.mempool = mempool
        self.arrival = arrival
        self.offer = offer
        self.metrics = metrics
        self.log = log
        self.gossip_to: Callable[[], Container[bytes]] | None = None
        """The keys event batches go to (set by the node: the keys of the scheduled validator
        sets; a member takes no event gossip, so sending it some is wasted upload)."""

    async def receive(self) -> None:
        async for sender, data in self.transport.subscribe(EVENTS_TOPIC):
            try:
                batch = EventBatch.decode(data, max_bytes=GOSSIP_MAX_BYTES * 2)
            except ProtocolError as exc:
                self.metrics.peer_messages_rejected.labels("gossip_decode").inc()
                self.log.warning("gossip_batch_rejected", peer=short_id(sender), code=str(exc.code), error=str(exc))
                continue
            self.offer(sender, list(batch.events))

    async def flush(self) -> None:
        queue = self.queue
        last_regossip = time.monotonic()
        while True:
            with trio.move_on_after(GOSSIP_FLUSH_S):
                await queue.wakeup.wait()
            queue.wakeup = trio.Event()
            now = time.monotonic()
            if now - last_regossip >= REGOSSIP_AFTER_S:
                last_regossip = now
                self.regossip_stale(now)
            while queue.raws:
                batch = queue.take_batch()
                try:
                    await self.transport.broadcast(EVENTS_TOPIC, EventBatch(events=tuple(batch)).encode(),
                                                   only=self.gossip_to() if self.gossip_to is not None else None)
                except TransportError as exc:
                    self.log.warning("gossip_broadcast_failed", error=str(exc), events=len(batch))

    def regossip_stale(self, now: float) -> None:
        """Events pending here for a while may have missed a peer (down, partitioned):
        gossip them again so whichever node becomes primary has them."""
        old = [eid for eid, t in self.arrival.items() if now - t >= REGOSSIP_AFTER_S]
        stale = [eid for eid in old if eid in self.mempool]
        if len(stale) < len(old):  # dropped with a reason (superseded, evicted): never committed, so never popped
            for eid in set(old).difference(stale):
                del self.arrival[eid]
        for eid in stale[:GOSSIP_MAX_EVENTS]:
            raw = self.mempool.raw(eid)
            if raw is not None:
                self.queue.put(raw)
                self.arrival[eid] = now


class Outbox:
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


class Outboxes:
    """The send queue of each peer, created (with its pump task) on first use once
    `nursery` is set (`Node.run`)."""

    def __init__(self, transport: Transport, log: Any) -> None:
        self.transport = transport
        self.log = log
        self.boxes: dict[bytes, Outbox] = {}
        self.nursery: trio.Nursery | None = None

    def put(self, peer: bytes, data: bytes) -> bool:
        """Queue `data` for `peer`; True if the peer's oldest message was dropped for it."""
        box = self.boxes.get(peer)
        if box is None:
            if self.nursery is None:
                return False
            box = self.boxes[peer] = Outbox(OUTBOX_MAX_MESSAGES)
            self.nursery.start_soon(self._pump, peer, box)
        return box.put(data)

    def put_existing(self, peers: Iterable[bytes], data: bytes) -> None:
        """Queue `data` for those of `peers` that have an outbox already (drops not counted)."""
        for peer in peers:
            box = self.boxes.get(peer)
            if box is not None:
                box.put(data)

    async def _pump(self, peer: bytes, box: Outbox) -> None:
        """Send one peer's queued consensus messages; only this task waits on its queue."""
        while True:
            while not box.messages:
                box.wakeup = trio.Event()
                await box.wakeup.wait()
            data = box.messages.popleft()
            try:
                await self.transport.send(peer, data)
            except TransportError as exc:
                self.log.debug("send_failed", peer=short_id(peer), error=str(exc))
