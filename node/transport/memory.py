"""In-memory transport: N nodes in one trio process, with fault injection for tests.

`MemoryNetwork` is the wire. `network.add(key)` returns a `MemoryTransport` (the
`Transport` interface); start it with `await nursery.start(t.run)`. Cancelling `run` is a
crash: its links close, queued frames are lost, and peers' outstanding requests to it
fail with `PeerUnavailable`. Running the same transport again is a restart.

Each ordered pair (a -> b) is one bounded FIFO link (capacity `send_queue_len`) drained
by a task in b's nursery, so frames arrive in order and a slow receiver blocks the
sender. Frames cross the real frame encoding (`node.transport.frames`) and size limits.

Faults (all take effect for frames sent afterwards; in-flight frames still arrive):
- `cut(a, b)` both directions, `drop(a, b)` one direction, `isolate(a)`,
  `partition(group, ...)` (no traffic between groups), `heal()` (clears all of these);
- `set_delay(delay_s, a=None, b=None)`: extra latency on one link or all (order kept);
- `set_loss(probability)`: each frame lost with this probability, drawn from the
  network's seeded `random.Random`;
- `hook`: optional `hook(sender, receiver, frame_bytes) -> bool`, False drops the frame.
Allowlist: every node reaches every other, except a peer that one side's `remove_peers`
took off (refused both ways, as libp2p's Noise gate refuses it) until `add_peers`.
Every injected drop is counted in the sender's `stats.dropped_fault`; a node that is not
running counts as not connected (`stats.dropped_not_connected`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Container, Iterable, Mapping

import structlog
import trio

from afterchain.node.transport.base import (
    PEER_KEY_BYTES,
    FaultSwitch,
    PeerBlocked,
    PeerUnavailable,
    RequestHandler,
    TransportLimits,
    TransportStats,
)
from afterchain.node.transport.dispatch import Dispatcher
from afterchain.node.transport.frames import FrameError

__all__ = ["MemoryNetwork", "MemoryTransport"]

_log = structlog.get_logger("afterchain.transport.memory")


class MemoryNetwork:
    def __init__(self, *, limits: TransportLimits | None = None, seed: int = 0) -> None:
        self.limits = limits or TransportLimits()
        self.nodes: dict[bytes, MemoryTransport] = {}
        self.rng = random.Random(seed)
        self._blocked: set[tuple[bytes, bytes]] = set()
        self._groups: list[frozenset[bytes]] | None = None
        self._delay_all_s = 0.0
        self._delay_s: dict[tuple[bytes, bytes], float] = {}
        self._loss = 0.0
        self.hook: Callable[[bytes, bytes, bytes], bool] | None = None

    def add(self, key: bytes) -> MemoryTransport:
        if len(key) != PEER_KEY_BYTES:
            raise ValueError(f"a peer key is {PEER_KEY_BYTES} bytes")
        if key in self.nodes:
            raise ValueError(f"node {key.hex()[:16]} already added")
        t = MemoryTransport(self, key)
        self.nodes[key] = t
        return t

    # ---- faults -----------------------------------------------------------------------
    def cut(self, a: bytes, b: bytes) -> None:
        self._blocked |= {(a, b), (b, a)}

    def drop(self, a: bytes, b: bytes) -> None:
        """Drop frames from `a` to `b` only."""
        self._blocked.add((a, b))

    def isolate(self, a: bytes) -> None:
        for b in self.nodes:
            if b != a:
                self.cut(a, b)

    def partition(self, *groups: Iterable[bytes]) -> None:
        """No traffic between different groups; a node in no group is isolated."""
        self._groups = [frozenset(g) for g in groups]

    def heal(self) -> None:
        self._blocked.clear()
        self._groups = None

    def set_delay(self, delay_s: float, a: bytes | None = None, b: bytes | None = None) -> None:
        if a is None and b is None:
            self._delay_all_s = delay_s
        elif a is not None and b is not None:
            self._delay_s[(a, b)] = delay_s
        else:
            raise ValueError("give both ends of the link, or neither")

    def set_loss(self, probability: float) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError("a probability is in [0, 1]")
        self._loss = probability

    def reachable(self, a: bytes, b: bytes) -> bool:
        """True if the faults let frames go from `a` to `b` (ignoring random loss)."""
        if (a, b) in self._blocked:
            return False
        if self._groups is not None:
            return any(a in g and b in g for g in self._groups)
        return True

    def _delay_for(self, a: bytes, b: bytes) -> float:
        return self._delay_s.get((a, b), self._delay_all_s)

    def _admit(self, a: bytes, b: bytes, frame: bytes) -> bool:
        if not self.reachable(a, b):
            return False
        if self._loss > 0.0 and self.rng.random() < self._loss:
            return False
        return self.hook is None or self.hook(a, b, frame)


class MemoryTransport:
    """One node's endpoint on a `MemoryNetwork`. Implements `node.transport.base.Transport`."""

    def __init__(self, network: MemoryNetwork, me: bytes) -> None:
        self.network = network
        self.me = me
        self.stats = TransportStats()
        self.log = _log.bind(node_key=me.hex()[:16])  # `node` is the name (node.common.log)
        self._dispatch = Dispatcher(me, network.limits, self.stats, self.log)
        self.faults = FaultSwitch(self.log, seed=int.from_bytes(me[:8], "big"))
        self._nursery: trio.Nursery | None = None
        self._links: dict[bytes, trio.MemorySendChannel[tuple[float, bytes]]] = {}
        self._removed: set[bytes] = set()
        self.running = False

    # ---- lifecycle --------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if self.running:
            raise RuntimeError("this transport is already running")
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._dispatch.nursery = nursery
                self.running = True
                task_status.started()
                await trio.sleep_forever()
        finally:
            self.running = False
            self._nursery = None
            self._dispatch.nursery = None
            for ch in self._links.values():
                ch.close()
            self._links.clear()
            for other in self.network.nodes.values():
                if other is not self:
                    other._dispatch.peer_lost(self.me)
                    self._dispatch.peer_lost(other.me)

    # ---- Transport ----------------------------------------------------------------------
    def connected_peers(self) -> set[bytes]:
        if not self.running:
            return set()
        return {
            k
            for k, t in self.network.nodes.items()
            if k != self.me and t.running and self.network.reachable(self.me, k) and self.network.reachable(k, self.me)
            and not self.faults.blocks(k) and k not in self._removed and self.me not in t._removed
        }

    def add_peers(self, peers: Mapping[bytes, str | None]) -> None:
        """Every node of a `MemoryNetwork` reaches every other unless `remove_peers` took it
        off this node's allowlist: those are allowed again."""
        for key in peers:
            if key in self._removed:
                self._removed.discard(key)
                self.log.info("transport_peer_added", peer=key.hex()[:16])

    def remove_peers(self, peers: Iterable[bytes]) -> None:
        """Refuse these peers from now on, both ways (like libp2p's Noise gate): frames to
        or from them are not delivered (counted as not connected), the links between us are
        closed and their outstanding requests fail."""
        for key in peers:
            if key == self.me or key in self._removed or key not in self.network.nodes:
                continue
            self._removed.add(key)
            self.stats.refused_peers += 1
            self.log.info("transport_peer_removed", peer=key.hex()[:16])
            link = self._links.pop(key, None)
            if link is not None:
                link.close()
            self._dispatch.peer_lost(key)
            other = self.network.nodes.get(key)
            if other is not None:
                back = other._links.pop(self.me, None)
                if back is not None:
                    back.close()
                other._dispatch.peer_lost(self.me)

    def refuses(self, peer: bytes) -> bool:
        """Whether `remove_peers` took `peer` off this node's allowlist."""
        return peer in self._removed

    def subscribe(self, topic: str) -> trio.MemoryReceiveChannel[tuple[bytes, bytes]]:
        return self._dispatch.subscribe(topic)

    def inbox(self) -> trio.MemoryReceiveChannel[tuple[bytes, bytes]]:
        return self._dispatch.inbox()

    def on_request(self, handler: RequestHandler) -> None:
        self._dispatch.on_request(handler)

    async def broadcast(self, topic: str, data: bytes, *, only: Container[bytes] | None = None) -> None:
        frame = self._dispatch.gossip_frame(topic, data)
        for peer in list(self.network.nodes):
            if peer != self.me and (only is None or peer in only):
                await self._send_best_effort(peer, frame)

    async def send(self, peer: bytes, data: bytes) -> None:
        await self._send_best_effort(peer, self._dispatch.direct_frame(data))

    async def request(self, peer: bytes, data: bytes, *, timeout_s: float) -> bytes:
        return await self._dispatch.request(peer, data, timeout_s, self._send_frame)

    # ---- the wire -----------------------------------------------------------------------
    async def _send_best_effort(self, peer: bytes, frame: bytes) -> None:
        try:
            await self._send_frame(peer, frame)
        except PeerBlocked:
            pass  # counted as a fault drop
        except PeerUnavailable:
            self.stats.dropped_not_connected += 1
            self.log.debug("transport_frame_dropped", peer=peer.hex()[:16], reason="not_connected")

    async def _send_frame(self, peer: bytes, frame: bytes) -> None:
        if not self.running:
            raise PeerUnavailable("this transport is not running")
        dest = self.network.nodes.get(peer)
        if dest is None or not dest.running or dest._nursery is None:
            raise PeerUnavailable(f"peer {peer.hex()[:16]} is not running")
        if peer in self._removed:
            raise PeerUnavailable(f"peer {peer.hex()[:16]} is not in the allowlist")
        if self.me in dest._removed:
            raise PeerUnavailable(f"peer {peer.hex()[:16]} refuses us (not in its allowlist)")
        if self.faults.drops_outgoing(peer):
            self.stats.dropped_fault += 1
            self.log.debug("transport_frame_dropped", peer=peer.hex()[:16], reason="fault_switch")
            if self.faults.blocks(peer):
                raise PeerBlocked(f"peer {peer.hex()[:16]} is blocked by the fault switch")
            return
        if not self.network._admit(self.me, peer, frame):
            self.stats.dropped_fault += 1
            self.log.debug("transport_frame_dropped", peer=peer.hex()[:16], reason="fault")
            return
        link = dest._links.get(self.me)
        if link is None:
            send, recv = trio.open_memory_channel[tuple[float, bytes]](self.network.limits.send_queue_len)
            try:
                dest._nursery.start_soon(dest._drain, self.me, recv)
            except RuntimeError:  # its nursery is closed to new tasks: it is stopping
                raise PeerUnavailable(f"peer {peer.hex()[:16]} is stopping") from None
            dest._links[self.me] = link = send
        delay_s = self.network._delay_for(self.me, peer)
        try:
            await link.send((trio.current_time() + delay_s if delay_s > 0 else -math.inf, frame))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise PeerUnavailable(f"peer {peer.hex()[:16]} stopped") from None
        self.stats.frames_sent += 1
        self.stats.bytes_sent += len(frame)
        self.stats.count_sent(peer, frame)

    async def _drain(self, sender: bytes, recv: trio.MemoryReceiveChannel[tuple[float, bytes]]) -> None:
        """Deliver the frames of the link `sender -> me`, in order. A bad frame closes the link."""
        async with recv:
            async for due, frame in recv:
                if due > -math.inf:
                    await trio.sleep_until(due)
                if self.faults.blocks(sender):
                    self.stats.dropped_fault += 1
                    continue
                if sender in self._removed:  # in flight when it was removed
                    self.stats.dropped_not_connected += 1
                    continue
                try:
                    await self._dispatch.deliver(sender, frame, self._send_frame)
                except FrameError as e:
                    self.log.warning("transport_bad_frame", peer=sender.hex()[:16], error=str(e))
                    link = self._links.pop(sender, None)
                    if link is not None:
                        link.close()
                    return
