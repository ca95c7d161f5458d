"""The libp2p transport (py-libp2p 0.8.1): Noise only, the peer allowlist, redial, streams.

The host's libp2p identity key is the node's Ed25519 key; Noise is the only security
transport and a remote key outside the allowlist fails the upgrade. One persistent,
length-prefixed frame stream per peer carries consensus, requests, responses and gossip.
Every queue is bounded: a full one blocks its sender for a bounded time, then the peer is
declared stalled and redialed. Why each of these choices, and what was measured for them:
docs/ARCHITECTURE.md, "The transport".

Protocol versions: the stream's libp2p protocol id carries the node-to-node protocol
version (`protocol_id`: ``/afterchain/transport/<version>.0.0``). A node offers the versions
it speaks, newest first, and answers each of them; a peer that speaks none of them is
refused with a warning (`transport_peer_version_unsupported`, naming both sides' versions,
which the dialer learns with multistream's ``ls``), counted (`stats.refused_version`), its
connection closed, and redialed with back-off (it may be upgraded).

Use: `t = P2PTransport(seed=..., listen_addr="/ip4/127.0.0.1/tcp/7001", peers={key: addr})`,
then `await nursery.start(t.run)`; `t.listen_addrs()` gives the bound address (port 0 in
tests). A transport object runs once; a restarted node builds a new one.

Addresses are `/ip4/A/tcp/P`, `/ip6/A/tcp/P` or a name: `/dns4/N/tcp/P` (IPv4 only),
`/dns6/N/tcp/P` (IPv6 only), `/dns/N/tcp/P` (both). A peer's name is resolved by the
system resolver (`getaddrinfo`: the hosts file, then DNS, as the machine is configured)
at *each* dial, so a peer that comes back under another address (a container restarted,
a DNS record changed) is found again; its addresses are tried in the resolver's order.
A name that does not resolve is logged (`transport_peer_unresolved`, once per change of
error) and retried with the redial back-off. A listen name is resolved once at start; if
it does not resolve, `run` fails with `AddressError`.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import IHost, INetStream
from libp2p.host.exceptions import StreamFailure
from libp2p.network.config import ConnectionConfig, RetryConfig
from libp2p.peer.id import ID
from libp2p.protocol_muxer.exceptions import MultiselectClientError
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID

from afterchain.node.common.log import short_id
from afterchain.node.common.version import SUPPORTED_PROTOCOL_VERSIONS
from afterchain.node.transport.base import (
    FaultSwitch,
    PeerBlocked,
    PeerUnavailable,
    RequestHandler,
    TransportLimits,
    TransportStats,
)
from afterchain.node.transport.dispatch import Dispatcher
from afterchain.node.transport.frames import LENGTH_PREFIX, FrameError
from afterchain.node.transport.libp2p_parts import (
    _READ_CHUNK_BYTES,
    PROTOCOL_ID,
    PROTOCOL_PREFIX,
    AddressError,
    AllowlistNoise,
    _log,
    _no_background_task,
    _peer_fields,
    libp2p_key_pair,
    peer_id_for,
    protocol_id,
    quiet_libp2p_logging,
    resolve_addr,
    route_libp2p_logging,
    tune_yamux,
)
from afterchain.protocol.types import PublicKey

__all__ = ["PROTOCOL_ID", "PROTOCOL_PREFIX", "AddressError", "AllowlistNoise", "P2PTransport", "libp2p_key_pair",
           "peer_id_for", "protocol_id", "quiet_libp2p_logging", "resolve_addr", "route_libp2p_logging", "tune_yamux"]

class _Peer:
    __slots__ = ("addr", "came_back", "connected", "drained", "end_session", "key", "peer_id", "queue_recv",
                 "queue_send", "queued_bytes", "refused_versions", "removed", "unresolved")

    def __init__(self, key: bytes, addr: multiaddr.Multiaddr | None, queue_len: int) -> None:
        self.key = key
        self.peer_id = peer_id_for(key)
        self.addr = addr
        self.unresolved: str | None = None
        """The last resolver error for `addr` (logged once per change), None once it resolves."""
        self.connected = False
        self.queue_send, self.queue_recv = trio.open_memory_channel[bytes](queue_len)
        self.queued_bytes = 0
        self.drained = trio.Event()
        """Set (and replaced) whenever frames leave the send queue."""
        self.end_session = trio.Event()
        """Set to end the current outbound session (connection closed, or peer stalled)."""
        self.came_back = trio.Event()
        """Set when the peer opens a stream to us while our outbound session is down: it is
        up again, so the redial back-off (up to `redial_max_s`) is cut short."""
        self.removed = trio.CancelScope()
        """Cancelled when `remove_peers` takes the peer off: its `_maintain` task ends."""
        self.refused_versions: tuple[str, ...] | None = None
        """The protocol ids the peer offered when it was last refused for its version
        (logged as a warning once per change, then at debug level)."""

    def try_put(self, frame: bytes, max_bytes: int) -> bool:
        """Queue `frame` if the queue has room for it (by count and by bytes)."""
        if self.queued_bytes and self.queued_bytes + len(frame) > max_bytes:
            return False
        try:
            self.queue_send.send_nowait(frame)
        except trio.WouldBlock:
            return False
        self.queued_bytes += len(frame)
        return True

    async def put(self, frame: bytes, max_bytes: int) -> None:
        """Queue `frame`, waiting until the queue has room for it."""
        while not self.try_put(frame, max_bytes):
            await self.drained.wait()

    def took(self, nbytes: int) -> None:
        """Frames of `nbytes` left the queue (written or dropped): wake waiting senders."""
        self.queued_bytes = max(0, self.queued_bytes - nbytes)
        self.drained.set()
        self.drained = trio.Event()


class _StreamReader:
    """Exact-length reads over a libp2p stream (which returns what it has)."""

    def __init__(self, stream: INetStream) -> None:
        self.stream = stream
        self.buf = bytearray()

    async def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = await self.stream.read(max(_READ_CHUNK_BYTES, n - len(self.buf)))
            if not chunk:
                raise EOFError("stream closed")
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


class P2PTransport:
    """The libp2p `Transport`. See the module docstring for the rules it keeps."""

    def __init__(
        self,
        *,
        seed: bytes,
        listen_addr: str,
        peers: Mapping[bytes, str] | Mapping[PublicKey, str],
        limits: TransportLimits | None = None,
        redial_min_s: float = 0.05,
        redial_max_s: float = 2.0,
        dial_timeout_s: float = 5.0,
        write_batch_bytes: int = 256 * 1024,
        close_timeout_s: float = 2.0,
        send_stall_timeout_s: float = 5.0,
        quiet_libp2p_logs: bool = True,
        max_connections_per_peer: int = 3,
        max_connections: int | None = None,
        inbound_upgrade_timeout_s: float = 5.0,
        protocol_versions: Sequence[int] = SUPPORTED_PROTOCOL_VERSIONS,
    ) -> None:
        """`protocol_versions`: the node-to-node protocol versions to speak, newest first
        (the default is this software's; tests and upgrades may narrow or widen it)."""
        tune_yamux()
        route_libp2p_logging()
        if not protocol_versions:
            raise ValueError("protocol_versions: at least one version")
        self.protocols = [protocol_id(v) for v in protocol_versions]
        key_pair = libp2p_key_pair(seed)
        self.me = key_pair.public_key.to_bytes()
        self.limits = limits or TransportLimits()
        self.stats = TransportStats()
        self.log = _log.bind(node_key=short_id(self.me))
        self.redial_min_s = redial_min_s
        self.redial_max_s = redial_max_s
        self.dial_timeout_s = dial_timeout_s
        self.write_batch_bytes = write_batch_bytes
        self.close_timeout_s = close_timeout_s
        self.send_stall_timeout_s = send_stall_timeout_s
        self._listen = multiaddr.Multiaddr(listen_addr)
        self._peers = {k: _Peer(k, multiaddr.Multiaddr(a), self.limits.send_queue_len) for k, a in peers.items() if k != self.me}
        self._by_id = {p.peer_id: p for p in self._peers.values()}
        self._allowed: set[ID] = set(self._by_id)
        self.faults = FaultSwitch(self.log)
        self._security = AllowlistNoise(key_pair, self._allowed, self.stats, self.log, blocked=self._blocked_id)
        self._maintain_nursery: trio.Nursery | None = None
        # Connection limits (py-libp2p's ConnectionConfig, enforced by its swarm when a
        # connection is registered, both directions): a few per allowlisted peer (ours, theirs
        # and one being replaced during a redial) and a total of that times the peers (grown
        # by `add_peers`); a handshake that does not finish within `inbound_upgrade_timeout_s`
        # is dropped.
        self._fixed_max_connections = max_connections
        self.connection_config = ConnectionConfig(
            max_connections_per_peer=max_connections_per_peer, inbound_upgrade_timeout=inbound_upgrade_timeout_s,
            min_connections=0, low_watermark=0,
        )
        self._size_connection_limit()
        self.host: IHost = new_host(key_pair=key_pair, sec_opt={NOISE_PROTOCOL_ID: self._security}, listen_addrs=[self._listen],
                                    connection_config=self.connection_config)
        swarm: Any = self.host.get_network()
        swarm.retry_config = RetryConfig(max_retries=0)
        # `_maintain` is the only dialer: py-libp2p's auto-connector would otherwise dial
        # every peer in the peerstore (up to 200 per cycle) behind our back.
        swarm.auto_connector.run_background_task = _no_background_task
        if quiet_libp2p_logs:
            quiet_libp2p_logging()
        self._dispatch = Dispatcher(self.me, self.limits, self.stats, self.log)
        self._started = False
        self._maintain_scope = trio.CancelScope()
        self._inbound: dict[bytes, trio.CancelScope] = {}
        self._removed_addrs: dict[bytes, multiaddr.Multiaddr | None] = {}
        """Addresses of peers `remove_peers` took off (`add_peers` without one reuses it)."""

    def _blocked_id(self, peer_id: ID) -> bool:
        p = self._by_id.get(peer_id)
        return p is not None and self.faults.blocks(p.key)

    # ---- lifecycle --------------------------------------------------------------------
    def listen_addrs(self) -> list[str]:
        """The bound listen addresses (without the /p2p/ suffix), once running."""
        return [str(a.decapsulate(multiaddr.Multiaddr(f"/p2p/{self.host.get_id()}"))) for a in self.host.get_addrs()]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if self._started:
            raise RuntimeError("a P2PTransport runs once; build a new one to restart")
        self._started = True
        # py-libp2p only closes its sockets if `host.close()` runs while its own tasks are
        # still alive; a plain cancellation reaches them first and leaks the TCP sockets.
        # So the host runs under a shielded scope, and cancelling `run` closes it in order.
        host_scope = trio.CancelScope(shield=True)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self._run_host, host_scope)
                task_status.started()
                try:
                    await trio.sleep_forever()
                finally:
                    self._maintain_scope.cancel()  # no redial while closing
                    with trio.CancelScope(shield=True), trio.move_on_after(self.close_timeout_s):
                        await self.host.close()
                    host_scope.cancel()
        finally:
            self._dispatch.nursery = None
            for p in self._peers.values():
                p.connected = False
                self._dispatch.peer_lost(p.key)

    async def _run_host(self, host_scope: trio.CancelScope, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with host_scope:
            listen = await resolve_addr(self._listen)
            async with self.host.run(listen), trio.open_nursery() as nursery:
                for proto in self.protocols:
                    self.host.set_stream_handler(proto, self._on_stream)
                self._dispatch.nursery = nursery
                nursery.start_soon(self._maintain_all)
                nursery.start_soon(self._enforce_faults)
                self.log.info("transport_listening", addrs=self.listen_addrs(), peers=len(self._peers))
                task_status.started()
                await trio.sleep_forever()

    async def _maintain_all(self) -> None:
        with self._maintain_scope:
            async with trio.open_nursery() as nursery:
                self._maintain_nursery = nursery
                for p in list(self._peers.values()):
                    nursery.start_soon(self._maintain, p)

    def add_peers(self, peers: Mapping[bytes, str | None]) -> None:
        """Allow more peers (validators that governance added). A peer with an address is
        dialed like the configured ones; one without (None) is waited for: it dials us (its
        configuration lists our address) and our outbound stream then rides its connection.
        An address given later for a known peer replaces a missing one. A peer that
        `remove_peers` took off comes back (with its old address if none is given)."""
        for key, addr in peers.items():
            if key == self.me:
                continue
            p = self._peers.get(key)
            if p is not None:
                if p.addr is None and addr is not None:
                    p.addr = multiaddr.Multiaddr(addr)
                continue
            old_addr = self._removed_addrs.pop(key, None)
            p = _Peer(key, multiaddr.Multiaddr(addr) if addr is not None else old_addr, self.limits.send_queue_len)
            self._peers[key] = p
            self._by_id[p.peer_id] = p
            self._allowed.add(p.peer_id)
            self.log.info("transport_peer_added", peer=short_id(key), addr=addr)
            self._size_connection_limit()
            if self._maintain_nursery is not None:
                self._maintain_nursery.start_soon(self._maintain, p)

    def remove_peers(self, peers: Iterable[bytes]) -> None:
        """Take peers off the allowlist (their member node keys were removed from the
        chain): the Noise gate refuses them from now on, `_maintain` stops dialing them,
        their inbound stream is cancelled, their connections are closed, their queued
        frames dropped (counted) and their outstanding requests fail."""
        for key in peers:
            p = self._peers.pop(key, None)
            if p is None:
                continue
            del self._by_id[p.peer_id]
            self._allowed.discard(p.peer_id)
            self._removed_addrs[key] = p.addr
            p.removed.cancel()
            p.end_session.set()
            p.connected = False
            inbound = self._inbound.pop(key, None)
            if inbound is not None:
                inbound.cancel()
            dropped = dropped_bytes = 0
            while True:
                try:
                    dropped_bytes += len(p.queue_recv.receive_nowait())
                except trio.WouldBlock:
                    break
                dropped += 1
            p.took(dropped_bytes)
            self.stats.dropped_not_connected += dropped
            self._dispatch.peer_lost(key)
            self.log.info("transport_peer_removed", peer=key.hex()[:16], dropped_frames=dropped)
            self._size_connection_limit()
            if self._maintain_nursery is not None:
                self._maintain_nursery.start_soon(self._close_peer, p.peer_id)

    async def _close_peer(self, peer_id: ID) -> None:
        with trio.move_on_after(self.close_timeout_s):
            try:
                await self.host.get_network().close_peer(peer_id)
            except Exception as e:
                self.log.debug("transport_close_failed", peer=str(peer_id), error=repr(e))

    async def _enforce_faults(self) -> None:
        """On every fault-switch change, close the connections of newly blocked peers
        (`_maintain` does not redial them and the Noise gate refuses them until unblocked)."""
        while True:
            await self.faults.changed.wait()
            for p in list(self._peers.values()):  # add_peers / remove_peers may run meanwhile
                if not self.faults.blocks(p.key):
                    continue
                p.end_session.set()
                with trio.move_on_after(self.close_timeout_s):
                    try:
                        await self.host.get_network().close_peer(p.peer_id)
                    except Exception as e:
                        self.log.debug("transport_close_failed", peer=short_id(p.key), error=repr(e))

    def _size_connection_limit(self) -> None:
        cfg = self.connection_config
        total = self._fixed_max_connections or cfg.max_connections_per_peer * max(1, len(self._peers)) + 4
        cfg.max_connections = cfg.high_watermark = total

    # ---- Transport ----------------------------------------------------------------------
    def connected_peers(self) -> set[bytes]:
        return {k for k, p in self._peers.items() if p.connected}

    def subscribe(self, topic: str) -> trio.MemoryReceiveChannel[tuple[bytes, bytes]]:
        return self._dispatch.subscribe(topic)

    def inbox(self) -> trio.MemoryReceiveChannel[tuple[bytes, bytes]]:
        return self._dispatch.inbox()

    def on_request(self, handler: RequestHandler) -> None:
        self._dispatch.on_request(handler)

    async def broadcast(self, topic: str, data: bytes, *, only: Container[bytes] | None = None) -> None:
        frame = self._dispatch.gossip_frame(topic, data)
        slow: list[_Peer] = []
        for p in self._peers.values():
            if only is not None and p.key not in only:
                continue
            if self.faults.drops_outgoing(p.key):
                self._count_fault(p.key)
                continue
            if not p.connected:
                self._count_not_connected(p.key)
                continue
            if not p.try_put(frame, self.limits.send_queue_bytes):
                slow.append(p)
        if slow:  # wait for the full queues side by side: one slow peer does not delay the others more
            async with trio.open_nursery() as nursery:
                for p in slow:
                    nursery.start_soon(self._send_best_effort, p.key, frame)

    async def send(self, peer: bytes, data: bytes) -> None:
        await self._send_best_effort(peer, self._dispatch.direct_frame(data))

    async def request(self, peer: bytes, data: bytes, *, timeout_s: float) -> bytes:
        return await self._dispatch.request(peer, data, timeout_s, self._send_frame)

    # ---- sending --------------------------------------------------------------------
    async def _send_best_effort(self, peer: bytes, frame: bytes) -> None:
        try:
            await self._send_frame(peer, frame)
        except PeerBlocked:
            pass  # counted as a fault drop
        except PeerUnavailable:
            self._count_not_connected(peer)

    def _count_fault(self, peer: bytes) -> None:
        self.stats.dropped_fault += 1
        self.log.debug("transport_frame_dropped", peer=short_id(peer), reason="fault_switch")

    def _count_not_connected(self, peer: bytes) -> None:
        self.stats.dropped_not_connected += 1
        self.log.debug("transport_frame_dropped", peer=short_id(peer), reason="not_connected")

    async def _send_frame(self, peer: bytes, frame: bytes) -> None:
        """Queue `frame` for `peer`: blocks while its queue is full (backpressure), but at
        most `send_stall_timeout_s`; a peer that long without draining is stalled (dead link
        or not reading): its connection is closed (redialed later) and the frame dropped."""
        p = self._peers.get(peer)
        if p is None:
            raise PeerUnavailable(f"peer {short_id(peer)} is not in the allowlist")
        if self.faults.drops_outgoing(peer):
            self._count_fault(peer)
            if self.faults.blocks(peer):
                raise PeerBlocked(f"peer {short_id(peer)} is blocked by the fault switch")
            return
        if not p.connected:
            raise PeerUnavailable(f"peer {short_id(peer)} is not connected")
        if p.try_put(frame, self.limits.send_queue_bytes):
            return
        with trio.move_on_after(self.send_stall_timeout_s):
            await p.put(frame, self.limits.send_queue_bytes)
            return
        if p.connected:
            self.stats.stalled_peers += 1
            self.log.warning("transport_peer_stalled", peer=short_id(peer), waited_s=self.send_stall_timeout_s)
            p.end_session.set()
        raise PeerUnavailable(f"peer {short_id(peer)} stalled: its send queue stayed full for {self.send_stall_timeout_s} s")

    async def _maintain(self, p: _Peer) -> None:
        """Keep one outbound stream to `p`: dial, pump the send queue, redial on loss; until
        `remove_peers` takes it off."""
        with p.removed:
            await self._maintain_session(p)

    async def _maintain_session(self, p: _Peer) -> None:
        backoff_s = self.redial_min_s
        first = True
        while True:
            while self.faults.blocks(p.key):  # partitioned by the operator: no dialing
                await self.faults.changed.wait()
            try:
                stream = await self._open(p)
            except Exception as e:  # any dial/upgrade/negotiation failure: back off, retry
                if isinstance(e, StreamFailure) and isinstance(e.__cause__, MultiselectClientError):
                    await self._check_version(p)
                self.log.debug("transport_dial_failed", peer=short_id(p.key), error=repr(e), retry_in_s=backoff_s)
                # a restarted peer dials us as soon as it is up: redial then, not after the
                # rest of the back-off (its first STATUS, and so its catch-up, waited on it)
                with trio.move_on_after(backoff_s):
                    await p.came_back.wait()
                p.came_back = trio.Event()
                backoff_s = min(backoff_s * 2, self.redial_max_s)
                continue
            backoff_s = self.redial_min_s
            if not first:
                self.stats.redials += 1
            first = False
            p.end_session = trio.Event()
            p.connected = True
            p.refused_versions = None
            self.log.info("transport_peer_connected", peer=short_id(p.key), protocol=str(stream.get_protocol()))
            try:
                await self._pump(p, stream)
            finally:
                p.connected = False
                dropped = dropped_bytes = 0
                while True:
                    try:
                        dropped_bytes += len(p.queue_recv.receive_nowait())
                    except trio.WouldBlock:
                        break
                    dropped += 1
                p.took(dropped_bytes)
                self.stats.dropped_not_connected += dropped
                self._dispatch.peer_lost(p.key)
                self.log.info("transport_peer_lost", peer=short_id(p.key), dropped_frames=dropped)
                with trio.CancelScope(shield=True), trio.move_on_after(self.close_timeout_s):
                    try:
                        await stream.reset()
                        if p.end_session.is_set():  # stalled: a half-open connection must not be reused
                            await self.host.get_network().close_peer(p.peer_id)
                    except Exception as e:
                        self.log.debug("transport_stream_reset_failed", error=repr(e))

    async def _check_version(self, p: _Peer) -> None:
        """The peer would not open our protocol: ask it (multistream ``ls``) which
        afterchain protocol versions it speaks; if it speaks some, but none of ours, refuse it:
        log it (a warning the first time, or when its versions change), count it and close
        its connection (redialed with back-off: it may be upgraded)."""
        with trio.move_on_after(self.dial_timeout_s):
            try:
                offered = await self.host.send_command(p.peer_id, "ls")  # type: ignore[attr-defined]  # BasicHost's
            except Exception as e:
                self.log.debug("transport_version_query_failed", peer=short_id(p.key), error=repr(e))
                return
            theirs = tuple(sorted(x for x in offered if x.startswith(PROTOCOL_PREFIX)))
            if not theirs or set(theirs) & set(self.protocols):
                return  # not a version mismatch (a peer still starting, a transient failure)
            self.stats.refused_version += 1
            log = self.log.warning if theirs != p.refused_versions else self.log.debug
            p.refused_versions = theirs
            log("transport_peer_version_unsupported", peer=short_id(p.key), ours=list(self.protocols),
                theirs=list(theirs), action="refused: no protocol version in common; upgrade one side")
            try:
                await self.host.get_network().close_peer(p.peer_id)
            except Exception as e:
                self.log.debug("transport_close_failed", peer=short_id(p.key), error=repr(e))

    async def _open(self, p: _Peer) -> INetStream:
        swarm: Any = self.host.get_network()
        with trio.fail_after(self.dial_timeout_s):
            if not [c for c in swarm.get_connections(p.peer_id) if not c.is_closed]:
                if p.addr is None:  # no address: wait for the peer to dial us (see add_peers)
                    raise PeerUnavailable(f"peer {short_id(p.key)} has no known address and is not connected")
                try:
                    addrs = await resolve_addr(p.addr)  # at each dial: the peer may have moved
                except AddressError as e:
                    if p.unresolved != str(e):
                        self.log.warning("transport_peer_unresolved", peer=short_id(p.key), addr=str(p.addr), error=str(e))
                    p.unresolved = str(e)
                    raise
                if p.unresolved is not None:
                    self.log.info("transport_peer_resolved", peer=short_id(p.key), addr=str(p.addr),
                                  resolved=[str(a) for a in addrs])
                    p.unresolved = None
                swarm.unblock_peer(p.peer_id)
                for i, a in enumerate(addrs):  # in the resolver's order; the last failure is raised
                    try:
                        await swarm.dial_addr(a, p.peer_id)
                        break
                    except Exception:
                        if i == len(addrs) - 1:
                            raise
            return await self.host.new_stream(p.peer_id, self.protocols)

    async def _pump(self, p: _Peer, stream: INetStream) -> None:
        """Write queued frames until the stream or its connection fails."""
        swarm_conn = getattr(stream, "swarm_conn", None)
        closed: trio.Event = swarm_conn.event_closed if swarm_conn is not None else stream.muxed_conn.event_closed  # type: ignore[attr-defined]
        async with trio.open_nursery() as nursery:

            async def watch_connection() -> None:
                await closed.wait()
                nursery.cancel_scope.cancel()

            async def watch_stall() -> None:
                await p.end_session.wait()
                nursery.cancel_scope.cancel()

            async def pump() -> None:
                try:
                    while True:
                        frame = await p.queue_recv.receive()
                        parts = [LENGTH_PREFIX.pack(len(frame)), frame]
                        size, count = len(frame), 1
                        while size < self.write_batch_bytes:
                            try:
                                frame = p.queue_recv.receive_nowait()
                            except trio.WouldBlock:
                                break
                            parts += (LENGTH_PREFIX.pack(len(frame)), frame)
                            size += len(frame)
                            count += 1
                        p.took(size)
                        await stream.write(b"".join(parts))
                        self.stats.frames_sent += count
                        self.stats.bytes_sent += size
                        if self.stats.label is not None:  # the breakdown (frames are parts 1, 3, 5, ...)
                            for i in range(1, len(parts), 2):
                                self.stats.count_sent(p.key, parts[i])
                except Exception as e:  # the stream or connection broke
                    self.log.info("transport_stream_write_failed", peer=short_id(p.key), error=repr(e))
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch_connection)
            nursery.start_soon(watch_stall)
            nursery.start_soon(pump)

    # ---- receiving --------------------------------------------------------------------
    async def _on_stream(self, stream: INetStream) -> None:
        p = self._by_id.get(stream.muxed_conn.peer_id)
        if p is not None and self.faults.blocks(p.key):
            self._count_fault(p.key)
            await stream.reset()
            return
        if p is None:  # the Noise gate should have refused it already
            self.stats.refused_peers += 1
            self.log.warning("transport_peer_refused", direction="stream", **_peer_fields(stream.muxed_conn.peer_id))
            await stream.reset()
            return
        if not p.connected:
            p.came_back.set()  # our outbound session is down: redial now (see `_maintain`)
        # Only the newest inbound stream of a peer delivers: a reader still draining the
        # stream of a lost connection would otherwise interleave with the new one.
        previous = self._inbound.get(p.key)
        if previous is not None:
            previous.cancel()
        scope = self._inbound[p.key] = trio.CancelScope()
        reader = _StreamReader(stream)
        try:
            with scope:
                while True:
                    (length,) = LENGTH_PREFIX.unpack(await reader.exactly(LENGTH_PREFIX.size))
                    if length > self.limits.max_frame_bytes:
                        self.stats.refused_oversize += 1
                        self.log.warning("transport_frame_too_large", direction="in", peer=short_id(p.key), frame_bytes=length)
                        break
                    data = await reader.exactly(length)
                    if self.faults.blocks(p.key):
                        self._count_fault(p.key)
                        continue
                    await self._dispatch.deliver(p.key, data, self._send_frame)
            if scope.cancelled_caught:
                self.log.debug("transport_stream_superseded", peer=short_id(p.key))
                await stream.reset()
                return
        except FrameError as e:
            self.log.warning("transport_bad_frame", peer=short_id(p.key), error=str(e))
        except Exception as e:  # EOF, reset, connection closed: the peer redials
            self.log.debug("transport_stream_ended", peer=short_id(p.key), error=repr(e))
            return
        finally:
            if self._inbound.get(p.key) is scope:
                del self._inbound[p.key]
        # A faulty frame: drop the whole connection (resetting only this stream would leave
        # the peer writing into a dead stream). Both sides see it close; the dialer redials.
        with trio.move_on_after(self.close_timeout_s):
            await self.host.get_network().close_peer(p.peer_id)
