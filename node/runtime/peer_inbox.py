"""Consensus messages from peers, on their way to the consensus loop.

`PeerInbox.run` decodes each message from the transport's inbox; a compact pre-prepare
(its events named by hash: their bytes came by gossip) is rebuilt from the events this
node has (`expand`), asking the sender for the rest in the background (`_expand_later`,
at most `COMPACT_WAITING_MAX` per peer); a pre-prepared block's events not yet verified
are checked on threads before the replica sees the block, so each event's signature is
checked once per node. `compact_bytes` is the sending side.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from afterchain.consensus.messages import (
    CompactPrePrepareMsg,
    ConsensusMessage,
    EventsRequest,
    EventsResponse,
    PrePrepareMsg,
)
from afterchain.node.common.log import short_id
from afterchain.node.runtime import clock
from afterchain.node.runtime.inputs import PEER_MESSAGE_MAX_BYTES, InputQueue, PeerMessage
from afterchain.node.runtime.intake import KnownEvents
from afterchain.node.runtime.metrics import NodeMetrics
from afterchain.node.runtime.relay import is_relay_frame
from afterchain.node.transport.base import Transport, TransportError
from afterchain.protocol.codec import decode_as, sha256
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.types import Hash32

__all__ = ["COMPACT_WAITING_MAX", "EVENTS_FETCH_TIMEOUT_S", "PeerInbox", "compact_bytes"]

EVENTS_FETCH_TIMEOUT_S = 2.0
"""How long a backup waits for the events of a compact pre-prepare it asked the sender for."""
COMPACT_WAITING_MAX = 8
"""Compact pre-prepares of one peer that may wait for events at a time (more are dropped:
the primary retransmits; bounds what a peer naming unknown events can make us hold)."""


def compact_bytes(msg: PrePrepareMsg, unsent: set[bytes]) -> bytes:
    """The encoding of `msg` as a compact pre-prepare; its events in `unsent` (still
    waiting for this node's next gossip flush: peers would not have them) travel in it."""
    prefilled = tuple(r for r in msg.block.events if r in unsent) if unsent else ()
    return CompactPrePrepareMsg.of(msg, prefilled).encode()


class PeerInbox:
    """See the module docstring. `nursery` (for the background asks) is set by `Node.run`."""

    def __init__(self, *, transport: Transport, known: KnownEvents, inputs: InputQueue, counters: dict[str, int],
                 metrics: NodeMetrics, log: Any) -> None:
        self.transport = transport
        self.known = known
        self.inputs = inputs
        self.counters = counters
        self.metrics = metrics
        self.log = log
        self.expanding: dict[bytes, int] = {}  # peer -> its compact pre-prepares waiting for events asked of it
        self.nursery: trio.Nursery | None = None
        self.relay: Callable[[bytes, bytes], None] | None = None
        """Where the dissemination relay's messages go (`RelayService.offer_frame`)."""

    async def run(self) -> None:
        async for sender, data in self.transport.inbox():
            received = clock.wall_ms()
            if self.relay is not None and is_relay_frame(data):
                self.relay(sender, data)
                continue
            try:
                msg = decode_as(ConsensusMessage, data, max_bytes=PEER_MESSAGE_MAX_BYTES)
            except ProtocolError as exc:
                self.metrics.peer_messages_rejected.labels("decode").inc()
                self.log.warning("peer_message_rejected", peer=short_id(sender), code=str(exc.code), error=str(exc))
                continue
            if isinstance(msg, CompactPrePrepareMsg):
                full = self.expand(msg, sender, received)
                if full is None:
                    continue  # events missing: being asked of the sender (`_expand_later`)
                msg = full
            if isinstance(msg, PrePrepareMsg):
                await self.known.preverify(msg.block)
            await self.inputs.put(PeerMessage(msg, sender, received))

    def expand(self, msg: CompactPrePrepareMsg, sender: bytes, received_ms: int = 0) -> PrePrepareMsg | None:
        """The full pre-prepare of a compact one, from the events this node has; or None,
        after starting `_expand_later` (or dropping it: see `COMPACT_WAITING_MAX`)."""
        self.counters["preprepare_compact"] += 1
        self.counters["preprepare_prefilled"] += len(msg.prefilled)
        pre = {sha256(r): r for r in msg.prefilled}
        find = self.known.raw_by_hash
        events = [pre.get(h) or find(h) for h in msg.event_hashes]
        missing = [h for h, r in zip(msg.event_hashes, events, strict=True) if r is None]
        if not missing:
            return msg.expand(tuple(events))  # type: ignore[arg-type]
        waiting = self.expanding.get(sender, 0)
        if waiting >= COMPACT_WAITING_MAX or self.nursery is None:
            # the sender retransmits a pre-prepare its backups have not prepared
            self.counters["preprepare_dropped"] += 1
            self.log.info("compact_preprepare_dropped", peer=short_id(sender), seq=int(msg.preprepare.body.seq),
                          missing=len(missing), reason="too many waiting for this peer")
            return None
        self.expanding[sender] = waiting + 1
        self.nursery.start_soon(self._expand_later, msg, sender, events, missing, received_ms)
        return None

    async def _expand_later(self, msg: CompactPrePrepareMsg, sender: bytes, events: list[bytes | None],
                            missing: list[Hash32], received_ms: int = 0) -> None:
        """Ask the sender of a compact pre-prepare for the events this node lacks, then hand
        the full pre-prepare to the replica as if it had come so. On failure the message is
        dropped (logged): the primary retransmits it to backups whose PREPARE it lacks."""
        seq = int(msg.preprepare.body.seq)
        try:
            try:
                data = await self.transport.request(sender, EventsRequest(hashes=tuple(missing)).encode(),
                                                    timeout_s=EVENTS_FETCH_TIMEOUT_S)
                got = {sha256(r): r for r in EventsResponse.decode(data, max_bytes=PEER_MESSAGE_MAX_BYTES).events}
            except (TransportError, ProtocolError) as exc:
                self.counters["preprepare_dropped"] += 1
                self.log.info("compact_preprepare_dropped", peer=short_id(sender), seq=seq, missing=len(missing),
                              reason=f"asking for its events failed: {exc}")
                return
            find = self.known.raw_by_hash
            full = [r if r is not None else (got.get(h) or find(h)) for r, h in zip(events, msg.event_hashes, strict=True)]
            lacking = sum(1 for r in full if r is None)
            if lacking:
                self.counters["preprepare_dropped"] += 1
                self.log.info("compact_preprepare_dropped", peer=short_id(sender), seq=seq, missing=lacking,
                              reason="the sender did not have every event it named")
                return
            self.counters["preprepare_events_fetched"] += len(missing)
            pp = msg.expand(tuple(full))  # type: ignore[arg-type]
            await self.known.preverify(pp.block)
            await self.inputs.put(PeerMessage(pp, sender, received_ms))
        finally:
            left = self.expanding[sender] - 1
            if left:
                self.expanding[sender] = left
            else:
                del self.expanding[sender]
