"""The transport interface: how one node moves bytes to the other validators.

This module owns the `Transport` protocol, its errors and its limits. Implementations:
`node.transport.memory` (N nodes in one trio process, with fault injection, for tests) and
`node.transport.p2p` (py-libp2p, Noise only, an allowlist the node keeps to the chain's, redial).

Contract (every implementation):
- Peers are named by their 32-byte Ed25519 validator public key. The transport carries
  opaque bytes; the node signs and checks them. `sender` on received messages is the key
  the *transport* authenticated (the Noise handshake for libp2p), never a claim read from
  the payload.
- Per (sender, receiver) pair, messages are delivered at most once, uncorrupted and in
  the order sent (one ordered stream per direction). Across a crash, a partition or a
  redial, messages may be lost: the layers above retransmit on timeouts.
- Every queue is bounded. A full queue blocks the producer (backpressure) — e.g. a
  subscriber that does not read eventually stalls the peer's stream. The libp2p transport
  bounds that wait per peer (`send_stall_timeout_s`): a peer that stops draining is
  dropped and redialed, so one faulty validator cannot block sends to the others. The only drops are
  explicit protocol choices (a peer not connected, an injected fault); each is counted in
  `stats` and logged, never silent.
- Frames larger than `max_frame_bytes` are refused with a log line (`transport_frame_too_large`)
  on both the sending side (raises `FrameTooLarge`) and the receiving side (the stream
  is closed: a peer that sends one is faulty).
- Fault switch (`FaultSwitch`, off unless an operator sets it through the admin API):
  frames to and from a *blocked* peer are dropped and counted (`stats.dropped_fault`),
  in both directions and for every kind (consensus, gossip, requests: a request to a
  blocked peer fails at once with `PeerUnavailable`); the libp2p transport also closes
  the peer's connection and refuses (Noise gate) and does not redial it while blocked.
  `drop_rate` drops that fraction of outgoing frames at random. Every change is logged
  (`transport_faults_set`).
- `run(task_status=...)` is started with `await nursery.start(transport.run)` and reports
  ready once listening; cancelling it stops the transport and closes every stream.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
import trio

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "MAX_BLOCKED_PEERS",
    "PEER_KEY_BYTES",
    "FaultSwitch",
    "FrameTooLarge",
    "PeerBlocked",
    "PeerUnavailable",
    "RemoteRequestError",
    "RequestHandler",
    "RequestTimeout",
    "Transport",
    "TransportError",
    "TransportLimits",
    "TransportStats",
]

PEER_KEY_BYTES = 32
"""Length of a peer id: an Ed25519 public key."""

DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024
"""Largest frame (payload + a small header) sent or accepted unless configured otherwise.
Sized for the node's largest message (a catch-up response: up to 4 MiB of blocks plus one
block of up to `max_block_bytes`, or a view change carrying prepared blocks), matching the
runner's decode limit; the peers are allowlisted validators."""

RequestHandler = Callable[[bytes, bytes], Awaitable[bytes]]
"""`handler(sender_key, request_bytes) -> response_bytes`, registered with `on_request`."""


MAX_BLOCKED_PEERS = 1024
"""Most peers one fault switch blocks at once."""


class FaultSwitch:
    """Operator-driven network faults of one transport (partitions for drills and tests).

    `blocked`: peers whose frames are dropped both ways (and whose connections the libp2p
    transport closes and refuses); `drop_rate`: fraction of outgoing frames dropped at
    random. Off (nothing blocked, rate 0) until `set` is called. `changed` is replaced by a
    fresh event after each change, so tasks can wait for the next one.
    """

    __slots__ = ("_rng", "blocked", "changed", "drop_rate", "log")

    def __init__(self, log: Any = None, *, seed: int | None = None) -> None:
        self.blocked: frozenset[bytes] = frozenset()
        self.drop_rate = 0.0
        self.changed = trio.Event()
        self.log = log if log is not None else structlog.get_logger("afterchain.transport")
        self._rng = random.Random(seed)

    def set(self, *, block: Iterable[bytes] | None = None, drop_rate: float | None = None) -> None:
        """Replace the blocked set and/or the drop rate (None leaves it as is). Raises
        `ValueError` on a bad key or rate (nothing changes then)."""
        new_block = self.blocked
        if block is not None:
            keys = list(block)
            if len(keys) > MAX_BLOCKED_PEERS:
                raise ValueError(f"at most {MAX_BLOCKED_PEERS} blocked peers")
            for k in keys:
                if not isinstance(k, bytes) or len(k) != PEER_KEY_BYTES:
                    raise ValueError(f"a peer key is {PEER_KEY_BYTES} bytes")
            new_block = frozenset(keys)
        new_rate = self.drop_rate
        if drop_rate is not None:
            if not isinstance(drop_rate, int | float) or isinstance(drop_rate, bool) or not 0.0 <= drop_rate <= 1.0:
                raise ValueError("drop_rate is a number in 0..1")
            new_rate = float(drop_rate)
        self.blocked, self.drop_rate = new_block, new_rate
        self.log.warning("transport_faults_set", blocked=sorted(k.hex()[:16] for k in new_block), drop_rate=new_rate)
        old, self.changed = self.changed, trio.Event()
        old.set()

    def blocks(self, peer: bytes) -> bool:
        return peer in self.blocked

    def drops_outgoing(self, peer: bytes) -> bool:
        """Whether a frame to `peer` is to be dropped now (blocked, or the random drop)."""
        if peer in self.blocked:
            return True
        return self.drop_rate > 0.0 and self._rng.random() < self.drop_rate

    def describe(self) -> dict[str, Any]:
        return {"block": sorted(k.hex() for k in self.blocked), "drop_rate": self.drop_rate}


class TransportError(Exception):
    """Base of the errors raised by `Transport` methods."""


class PeerUnavailable(TransportError):
    """The peer is unknown, not connected, or the connection dropped before a reply."""


class PeerBlocked(PeerUnavailable):
    """The peer is blocked by the operator's fault switch (the frame was dropped and counted)."""


class RequestTimeout(TransportError):
    """No response to `request` within `timeout_s`."""


class RemoteRequestError(TransportError):
    """The peer's request handler failed (or there is none); the message says why."""


class FrameTooLarge(TransportError):
    """A frame to send exceeds `max_frame_bytes`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportLimits:
    """Bounds shared by the implementations (every queue has one)."""

    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    """Largest frame sent or accepted (payload plus header)."""
    subscriber_queue_len: int = 256
    """Messages buffered per `subscribe` channel / the inbox before the sender is blocked."""
    send_queue_len: int = 256
    """Frames buffered per peer on the sending side before `send`/`broadcast` block."""
    send_queue_bytes: int = 32 << 20
    """Bytes buffered per peer on the sending side before `send`/`broadcast` block (a frame
    into an empty queue is always taken). Without a byte bound, full frame queues towards a
    few slow peers held hundreds of MB in one node."""
    max_pending_requests: int = 1024
    """Outstanding outgoing requests across all peers (`request` blocks beyond)."""
    max_concurrent_handlers: int = 64
    """Incoming requests served at once (the peer's stream is blocked beyond)."""


@dataclass(slots=True)
class TransportStats:
    """Counters (exported as metrics by the node)."""

    frames_sent: int = 0
    frames_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    dropped_not_connected: int = 0
    """`send`/`broadcast` frames not sent because the peer had no connection."""
    dropped_fault: int = 0
    """Frames dropped by an injected fault (the memory network's faults, or the `FaultSwitch`)."""
    dropped_no_subscriber: int = 0
    """GOSSIP frames for a topic nobody on this node subscribes to."""
    refused_oversize: int = 0
    stalled_peers: int = 0
    """Times a peer's send queue stayed full past the stall timeout (libp2p): its frame was
    dropped and its connection closed."""
    refused_peers: int = 0
    """Connections refused because the remote key is not in the allowlist."""
    refused_version: int = 0
    """Dials that found a peer speaking no protocol version this node speaks (libp2p)."""
    redials: int = 0
    per_topic_received: dict[str, int] = field(default_factory=dict)
    label: Callable[[bytes, bytes], str] | None = None
    """Names a frame written to a peer, `label(peer, frame)` (the node sets it: the runtime
    knows what the bytes mean, the transport does not); None: no breakdown."""
    sent_by: dict[str, list[int]] = field(default_factory=dict)
    """`[frames, bytes]` written, by `label` (the upload's breakdown)."""

    def count_sent(self, peer: bytes, frame: bytes) -> None:
        """One frame written to `peer`, for the breakdown by `label` (no-op without one)."""
        if self.label is None:
            return
        key = self.label(peer, frame)
        entry = self.sent_by.get(key)
        if entry is None:
            self.sent_by[key] = [1, len(frame)]
        else:
            entry[0] += 1
            entry[1] += len(frame)


class Transport(Protocol):
    """What the node uses to talk to the other validators. See the module docstring."""

    me: bytes
    """My validator public key (32 bytes)."""
    stats: TransportStats
    faults: FaultSwitch
    """The operator's fault switch (see the module docstring)."""

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen, dial the allowlisted peers, keep them connected; report ready once listening."""

    async def broadcast(self, topic: str, data: bytes, *, only: Container[bytes] | None = None) -> None:
        """Deliver `data` to the `topic` subscribers of every *connected* peer (not to me);
        with `only`, to those of them whose key it holds (the others are not counted as drops).

        Blocks while a peer's send queue is full (backpressure). Peers not connected at
        this moment miss it (counted in `stats.dropped_not_connected`). Raises
        `FrameTooLarge` if the frame would exceed the limit.
        """

    def subscribe(self, topic: str) -> trio.MemoryReceiveChannel[tuple[bytes, bytes]]:
        """A bounded channel of `(sender_key, data)` broadcast on `topic` by peers.

        Each call returns a new channel; every subscriber of a topic gets every message.
        A subscriber that does not read blocks delivery from the peers (backpressure).
        Close the channel to unsubscribe.
        """

    async def send(self, peer: bytes, data: bytes) -> None:
        """One-way message to one peer, delivered on the peer's `inbox()`.

        Best effort: if the peer is not connected it is dropped and counted (the consensus
        layer retransmits). Ordered per peer. Blocks on a full send queue.
        """

    def inbox(self) -> trio.MemoryReceiveChannel[tuple[bytes, bytes]]:
        """The channel of `(sender_key, data)` sent to me with `send` (one shared channel;
        `clone()` it for several readers)."""

    async def request(self, peer: bytes, data: bytes, *, timeout_s: float) -> bytes:
        """Send a request to `peer` and wait for the response bytes of its handler.

        Raises `PeerUnavailable` (not connected / connection lost), `RequestTimeout`,
        `RemoteRequestError` (the remote handler raised or none is registered),
        `FrameTooLarge`.
        """

    def on_request(self, handler: RequestHandler) -> None:
        """Register the one handler for incoming requests (replaces any previous one)."""

    def connected_peers(self) -> set[bytes]:
        """Keys of the peers with a live, authenticated connection right now."""

    def add_peers(self, peers: Mapping[bytes, str | None]) -> None:
        """Allow (and keep connected) more peers: key -> address, or None when only the
        peer knows ours (it dials us). A peer that `remove_peers` took off is allowed again
        (with the address it had when none is given)."""

    def remove_peers(self, peers: Iterable[bytes]) -> None:
        """Take peers off the allowlist: their connections are closed, they are not dialed,
        their new connections are refused (the Noise gate for libp2p) and frames to them
        fail as not connected, until `add_peers` allows them again. Their outstanding
        requests fail with `PeerUnavailable`; frames still queued for them are dropped and
        counted (`stats.dropped_not_connected`). Unknown keys and my own are ignored; each
        removal is logged (`transport_peer_removed`)."""
