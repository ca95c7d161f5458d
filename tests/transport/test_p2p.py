"""The libp2p transport on 127.0.0.1: delivery, requests, redial, allowlist, Noise only."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from afterchain.node.transport import FrameTooLarge, PeerUnavailable, TransportLimits
from afterchain.node.transport.p2p import P2PTransport
from afterchain.protocol.crypto import KeyPair

SEEDS = [bytes([i]) * 32 for i in range(1, 6)]
KEYS = [KeyPair.from_seed(s).public for s in SEEDS]


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def make(i: int, ports: list[int], n: int, **kw: object) -> P2PTransport:
    peers = {KEYS[j]: f"/ip4/127.0.0.1/tcp/{ports[j]}" for j in range(n)}
    return P2PTransport(seed=SEEDS[i], listen_addr=f"/ip4/127.0.0.1/tcp/{ports[i]}", peers=peers, **kw)  # type: ignore[arg-type]


async def until(cond: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait for a condition on the transport's own state (connections are real sockets)."""
    with trio.fail_after(timeout_s):
        while not cond():
            await trio.sleep(0.01)


@asynccontextmanager
async def cluster(n: int, **kw: object) -> AsyncIterator[list[P2PTransport]]:
    ports = free_ports(n)
    ts = [make(i, ports, n, **kw) for i in range(n)]
    async with trio.open_nursery() as nursery:
        for t in ts:
            await nursery.start(t.run)
        await until(lambda: all(len(t.connected_peers()) == n - 1 for t in ts))
        yield ts
        nursery.cancel_scope.cancel()


async def test_broadcast_send_request_on_three_hosts() -> None:
    async with cluster(3) as ts:
        subs = [t.subscribe("events") for t in ts]
        for i in range(20):
            await ts[0].broadcast("events", i.to_bytes(4, "big") * 100)
        for sub in subs[1:]:
            with trio.fail_after(10):
                got = [await sub.receive() for _ in range(20)]
            assert got == [(KEYS[0], i.to_bytes(4, "big") * 100) for i in range(20)]

        await ts[1].send(KEYS[2], b"direct")
        with trio.fail_after(10):
            assert await ts[2].inbox().receive() == (KEYS[1], b"direct")

        async def handler(sender: bytes, data: bytes) -> bytes:
            return sender + data

        ts[2].on_request(handler)
        assert await ts[0].request(KEYS[2], b"q", timeout_s=10) == KEYS[0] + b"q"
        big = bytes(range(256)) * 8000  # 2 MB both ways
        ts[1].on_request(lambda s, d: _echo(d))
        assert await ts[0].request(KEYS[1], big, timeout_s=10) == big


async def _echo(d: bytes) -> bytes:
    return d


async def test_killed_peer_is_redialed_and_messages_flow_again() -> None:
    ports = free_ports(3)
    a, c = make(0, ports, 3), make(2, ports, 3)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await nursery.start(c.run)
        sub_a = a.subscribe("t")
        never = trio.Event()

        async def hang(sender: bytes, data: bytes) -> bytes:
            await never.wait()
            return b""

        outcome: list[BaseException] = []

        async def doomed_request() -> None:
            try:
                await a.request(KEYS[1], b"?", timeout_s=30)
            except PeerUnavailable as e:
                outcome.append(e)

        async with trio.open_nursery() as b_nursery:
            b = make(1, ports, 3)
            b.on_request(hang)
            await b_nursery.start(b.run)
            await until(lambda: KEYS[1] in a.connected_peers() and len(b.connected_peers()) == 2)
            nursery.start_soon(doomed_request)
            await until(lambda: b.stats.frames_received >= 1)
            b_nursery.cancel_scope.cancel()  # kill b
        await until(lambda: KEYS[1] not in a.connected_peers() and KEYS[1] not in c.connected_peers())
        await until(lambda: len(outcome) == 1)  # the pending request failed, it did not hang
        before = a.stats.dropped_not_connected
        await a.send(KEYS[1], b"into the void")
        assert a.stats.dropped_not_connected == before + 1
        with pytest.raises(PeerUnavailable):
            await a.request(KEYS[1], b"?", timeout_s=5)

        b2 = make(1, ports, 3)  # restart on the same address, same key
        b2.on_request(lambda s, d: _echo(d))
        await nursery.start(b2.run)
        await until(lambda: KEYS[1] in a.connected_peers() and KEYS[1] in c.connected_peers() and len(b2.connected_peers()) == 2)
        assert a.stats.redials >= 1
        assert await a.request(KEYS[1], b"again", timeout_s=10) == b"again"
        await b2.broadcast("t", b"hello after restart")
        with trio.fail_after(10):
            assert await sub_a.receive() == (KEYS[1], b"hello after restart")
        nursery.cancel_scope.cancel()


async def test_oversize_frames_are_refused_on_both_sides() -> None:
    limits = TransportLimits(max_frame_bytes=64 * 1024)
    async with cluster(2, limits=limits) as (a, b):
        with pytest.raises(FrameTooLarge):
            await a.send(KEYS[1], b"x" * 64 * 1024)
        with pytest.raises(FrameTooLarge):
            await a.broadcast("t", b"x" * 64 * 1024)
        assert a.stats.refused_oversize == 2
        # A faulty peer that skips its own check: the receiver refuses the length prefix,
        # resets the stream, delivers nothing; the sender redials and later frames flow.
        await a._peers[KEYS[1]].queue_send.send(b"\x02" + bytes(10) + b"y" * 100_000)
        await until(lambda: b.stats.refused_oversize == 1)
        await until(lambda: KEYS[1] in a.connected_peers() and a.stats.redials >= 1)
        await a.send(KEYS[1], b"small")
        with trio.fail_after(10):
            assert await b.inbox().receive() == (KEYS[0], b"small")
        assert b.inbox().statistics().current_buffer_used == 0


async def test_peer_not_in_the_allowlist_cannot_connect() -> None:
    outsider_key = KeyPair.from_seed(SEEDS[4]).public
    async with cluster(2) as (a, b), trio.open_nursery() as nursery:
        # The outsider allows the validators, but they do not list it.
        outsider = P2PTransport(
            seed=SEEDS[4],
            listen_addr="/ip4/127.0.0.1/tcp/0",
            peers={KEYS[0]: a.listen_addrs()[0], KEYS[1]: b.listen_addrs()[0]},
        )
        await nursery.start(outsider.run)
        await until(lambda: a.stats.refused_peers >= 1 and b.stats.refused_peers >= 1)
        sub = a.subscribe("t")
        await outsider.broadcast("t", b"let me in")
        await outsider.send(KEYS[0], b"let me in")
        assert outsider.connected_peers() == set()
        assert outsider_key not in a.connected_peers() | b.connected_peers()
        swarm = a.host.get_network()
        assert not [c for c in swarm.get_connections(outsider.host.get_id()) if not c.is_closed]
        await a.broadcast("t", b"x")  # the validators still talk to each other
        assert sub.statistics().current_buffer_used == 0
        assert a.inbox().statistics().current_buffer_used == 0
        nursery.cancel_scope.cancel()


async def test_plaintext_dialer_claiming_a_validator_identity_is_refused() -> None:
    import multiaddr
    from libp2p import new_host
    from libp2p.crypto.ed25519 import Ed25519PrivateKey
    from libp2p.crypto.keys import KeyPair as Libp2pKeyPair
    from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport

    from afterchain.node.transport.p2p import PROTOCOL_ID, libp2p_key_pair, peer_id_for

    # The forger holds its own private key but presents validator 1's public key: with the
    # plaintext "security" transport nothing proves possession of the key.
    validator_public = libp2p_key_pair(SEEDS[1]).public_key

    class ForgedKey(Ed25519PrivateKey):
        def get_public_key(self) -> Any:
            return validator_public

    own_private = Ed25519PrivateKey.new(b"\x66" * 32)
    forged = Libp2pKeyPair(ForgedKey(own_private.impl), validator_public)
    claimed = peer_id_for(KEYS[1])

    async def forge_dial(addr: str, target_key: bytes) -> object:
        own = Libp2pKeyPair(own_private, own_private.get_public_key())
        forger = new_host(key_pair=own, sec_opt={PLAINTEXT_PROTOCOL_ID: InsecureTransport(forged)})
        async with forger.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            try:
                with trio.fail_after(10):
                    await forger.get_network().dial_addr(multiaddr.Multiaddr(addr), peer_id_for(target_key))
                    stream = await forger.new_stream(peer_id_for(target_key), [PROTOCOL_ID])
                    await stream.write(b"\x00\x00\x00\x10" + b"\x02" + bytes(10) + b"forge")
                    return None
            except Exception as e:
                return e
            finally:
                await forger.close()

    # Control: against a *default* py-libp2p host the forgery works (so this test can fail).
    victim = new_host(key_pair=libp2p_key_pair(SEEDS[0]))
    seen: list[object] = []

    async def record(stream: object) -> None:
        seen.append(stream.muxed_conn.peer_id)  # type: ignore[attr-defined]

    victim.set_stream_handler(PROTOCOL_ID, record)  # type: ignore[arg-type]
    port = free_ports(1)[0]
    async with victim.run([multiaddr.Multiaddr(f"/ip4/127.0.0.1/tcp/{port}")]):
        assert await forge_dial(f"/ip4/127.0.0.1/tcp/{port}", KEYS[0]) is None
        await until(lambda: len(seen) == 1)
        assert seen == [claimed]
        await victim.close()

    # Our host offers Noise only: the plaintext dial fails and nothing is delivered.
    async with cluster(2) as (a, _b):
        error = await forge_dial(a.listen_addrs()[0], KEYS[0])
        assert error is not None
        assert a.stats.frames_received == 0 or a.inbox().statistics().current_buffer_used == 0
        assert a.inbox().statistics().current_buffer_used == 0
        assert a.connected_peers() == {KEYS[1]}  # the real validator 1 is still the one connected


@pytest.mark.slow
async def test_order_and_integrity_under_repeated_kills() -> None:
    """Every host broadcasts numbered, checksummed messages while one host is killed and
    restarted again and again. Receivers may miss messages around a kill, but never see
    one corrupted, duplicated or out of order (per sender and incarnation)."""
    import hashlib

    n = 3
    ports = free_ports(n)
    seen: dict[tuple[bytes, bytes], tuple[int, int]] = {}  # (receiver, sender) -> last (incarnation, seq)
    received = 0
    from_restarted = 0  # messages of host 0 (the one restarted) seen by the others

    def payload(incarnation: int, seq: int) -> bytes:
        head = incarnation.to_bytes(4, "big") + seq.to_bytes(8, "big")
        return head + hashlib.sha256(head).digest() * 100

    async def node_life(i: int, incarnation: int, stop: trio.Event, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        t = make(i, ports, n)
        sub = t.subscribe("t")

        async def consume() -> None:
            nonlocal received, from_restarted
            async for sender, data in sub:
                head, body = data[:12], data[12:]
                assert body == hashlib.sha256(head).digest() * 100, "corrupted"
                mark = (int.from_bytes(head[:4], "big"), int.from_bytes(head[4:], "big"))
                last = seen.get((t.me, sender))
                assert last is None or mark > last, f"reordered or duplicated: {last} then {mark}"
                seen[(t.me, sender)] = mark
                received += 1
                from_restarted += sender == KEYS[0]

        async def produce() -> None:
            seq = 0
            while not stop.is_set():
                await t.broadcast("t", payload(incarnation, seq))
                seq += 1
                if seq % 20 == 0:
                    await trio.sleep(0.001)

        async with trio.open_nursery() as nursery:
            await nursery.start(t.run)
            nursery.start_soon(consume)
            nursery.start_soon(produce)
            task_status.started()
            await stop.wait()
            nursery.cancel_scope.cancel()

    stop_all = trio.Event()
    async with trio.open_nursery() as nursery:
        for i in range(1, n):
            await nursery.start(node_life, i, 0, stop_all)
        for incarnation in range(1, 6):
            stop = trio.Event()
            await nursery.start(node_life, 0, incarnation, stop)
            before = from_restarted
            await until(lambda before=before: from_restarted > before + 200, timeout_s=30)  # type: ignore[misc]
            stop.set()
            await trio.sleep(0.05)
        stop_all.set()
    assert received > 1000


async def test_a_peer_that_stops_reading_does_not_block_the_others() -> None:
    limits = TransportLimits(subscriber_queue_len=2, send_queue_len=4)
    async with cluster(3, limits=limits, send_stall_timeout_s=0.3) as (a, b, c):
        b.subscribe("t")  # b subscribes and never reads: its stream stops, then a's queue to b fills
        # 600 x 64 KiB = 38 MiB: more than loopback TCP buffers can absorb, so b really stalls
        sub_c = c.subscribe("t")
        got: list[bytes] = []

        async def read_c() -> None:
            async for _sender, data in sub_c:
                got.append(data)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_c)
            with trio.fail_after(30):  # without the stall timeout this would block forever
                for i in range(600):
                    await a.broadcast("t", i.to_bytes(4, "big") * 16_384)  # 64 KiB
            await until(lambda: len(got) == 600)
            nursery.cancel_scope.cancel()
        assert got == [i.to_bytes(4, "big") * 16_384 for i in range(600)]  # c lost nothing
        assert a.stats.stalled_peers >= 1
        assert a.stats.dropped_not_connected >= 1


async def test_a_send_queue_is_bounded_in_bytes_too() -> None:
    # 256 frames of 64 KiB would be 16 MiB queued for a peer that stops reading; the byte
    # bound holds it to 1 MiB (issue 10: ~1 MB gossip frames piled up to 480 MB in a node)
    limits = TransportLimits(subscriber_queue_len=2, send_queue_len=256, send_queue_bytes=1 << 20)
    async with cluster(2, limits=limits, send_stall_timeout_s=0.3) as (a, b):
        b.subscribe("t")  # never read
        peer = a._peers[KEYS[1]]
        most = 0
        with trio.fail_after(30):
            for i in range(600):
                await a.broadcast("t", i.to_bytes(4, "big") * 16_384)  # 64 KiB
                most = max(most, peer.queued_bytes)
        assert 0 < most <= 1 << 20
        assert a.stats.stalled_peers >= 1  # b's queue stayed full: stalled, as by count


async def test_fault_switch_blocks_a_peer_both_ways_and_heals() -> None:
    async with cluster(3) as (a, b, c):
        subs = {t.me: t.subscribe("t") for t in (a, b, c)}
        b.on_request(lambda s, d: _echo(d))
        # a partitions itself from b; b does the same (as the nemesis does on both sides)
        a.faults.set(block=[KEYS[1]])
        b.faults.set(block=[KEYS[0]])
        await until(lambda: KEYS[1] not in a.connected_peers() and KEYS[0] not in b.connected_peers())
        assert a.faults.describe() == {"block": [KEYS[1].hex()], "drop_rate": 0.0}
        await a.broadcast("t", b"from a")
        await a.send(KEYS[1], b"direct from a")
        with pytest.raises(PeerUnavailable):
            await a.request(KEYS[1], b"q", timeout_s=5)
        await b.broadcast("t", b"from b")
        with trio.fail_after(10):  # c hears both; a and b do not hear each other
            assert {await subs[KEYS[2]].receive(), await subs[KEYS[2]].receive()} == {(KEYS[0], b"from a"), (KEYS[1], b"from b")}
        await trio.sleep(0.3)  # nothing can arrive: there is no connection between them
        assert subs[KEYS[1]].statistics().current_buffer_used == 0
        assert subs[KEYS[0]].statistics().current_buffer_used == 0
        assert b.inbox().statistics().current_buffer_used == 0
        assert a.stats.dropped_fault >= 3 and b.stats.dropped_fault >= 1
        # a one-sided block: b unblocks, a still refuses b's dials (Noise gate)
        b.faults.set(block=[])
        await until(lambda: a.stats.refused_peers >= 1)
        assert KEYS[1] not in a.connected_peers()
        # heal: both reconnect and deliver again
        a.faults.set(block=[])
        await until(lambda: KEYS[1] in a.connected_peers() and KEYS[0] in b.connected_peers())
        await a.broadcast("t", b"healed")
        with trio.fail_after(10):
            assert await subs[KEYS[1]].receive() == (KEYS[0], b"healed")
        assert await a.request(KEYS[1], b"q", timeout_s=10) == b"q"
        with pytest.raises(ValueError):
            a.faults.set(block=[b"short"])
        with pytest.raises(ValueError):
            a.faults.set(drop_rate=1.5)


async def test_connection_limits_are_configured_on_the_swarm() -> None:
    async with cluster(2) as (a, _):
        cfg = a.host.get_network().connection_config  # type: ignore[attr-defined]
        assert cfg.max_connections_per_peer == 3 and cfg.max_connections == 3 * 1 + 4
        assert cfg.inbound_upgrade_timeout == 5.0


async def test_total_connection_limit_is_enforced() -> None:
    ports = free_ports(3)
    ts = [make(0, ports, 3, max_connections=1), make(1, ports, 3), make(2, ports, 3)]
    async with trio.open_nursery() as nursery:
        for t in ts:
            await nursery.start(t.run)
        await until(lambda: KEYS[2] in ts[1].connected_peers() and bool(ts[0].connected_peers()))
        swarm = ts[0].host.get_network()
        for _ in range(20):  # both others keep (re)dialing node 0: it never holds more than one
            live = [c for c in swarm.get_connections() if not c.is_closed]  # type: ignore[attr-defined]
            assert len(live) <= 1
            await trio.sleep(0.05)
        assert len(ts[0].connected_peers()) <= 1
        nursery.cancel_scope.cancel()


async def test_yamux_does_not_return_window_credit_after_every_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # py-libp2p's default sends a WINDOW_UPDATE after every read: one more encrypted frame
    # and syscall per frame received (issue 10). The transport turns that off (tune_yamux).
    from libp2p.stream_muxer.yamux.yamux import YamuxStream

    updates: list[int] = []
    original = YamuxStream.send_window_update

    async def counting(self: YamuxStream, increment: int, skip_lock: bool = False) -> None:
        updates.append(increment)
        await original(self, increment, skip_lock)

    monkeypatch.delenv("PY_YAMUX_RELEASE_ON_READ", raising=False)
    monkeypatch.setattr(YamuxStream, "send_window_update", counting)
    async with cluster(2) as (a, b):
        sub = b.subscribe("t")
        updates.clear()
        with trio.fail_after(30):
            for i in range(200):  # one frame in flight at a time: each arrives in a read of its own
                await a.broadcast("t", i.to_bytes(4, "big") * 250)
                assert await sub.receive() == (KEYS[0], i.to_bytes(4, "big") * 250)
        # 200 reads of ~1 KB. py-libp2p's default: an update per read (200 here). Tuned, its
        # "partial slack" rule still returns credit every second read once the window has
        # grown (101 here): half the frames, not a handful
        assert len(updates) <= 120, len(updates)


def test_tune_yamux_keeps_an_operators_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from afterchain.node.transport.p2p import tune_yamux

    monkeypatch.setenv("PY_YAMUX_RELEASE_ON_READ", "1")
    tune_yamux()
    assert os.environ["PY_YAMUX_RELEASE_ON_READ"] == "1"
    monkeypatch.delenv("PY_YAMUX_RELEASE_ON_READ")
    tune_yamux()
    assert os.environ["PY_YAMUX_RELEASE_ON_READ"] == "0"


async def test_remove_peers_closes_refuses_and_add_peers_restores() -> None:
    async with cluster(3) as (a, b, c):
        sub_a = a.subscribe("t")
        a.remove_peers([KEYS[2], KEYS[0]])  # my own key is ignored
        assert KEYS[2] not in a.connected_peers()
        swarm = a.host.get_network()
        await until(lambda: not [x for x in swarm.get_connections(c.host.get_id()) if not x.is_closed])
        await until(lambda: KEYS[0] not in c.connected_peers())
        refused = a.stats.refused_peers
        await until(lambda: a.stats.refused_peers > refused)  # c redials and the Noise gate refuses it
        with pytest.raises(PeerUnavailable):
            await a.request(KEYS[2], b"x", timeout_s=5)
        await c.broadcast("t", b"from c")
        await b.broadcast("t", b"from b")  # the others are not affected
        with trio.fail_after(10):
            assert await sub_a.receive() == (KEYS[1], b"from b")
        assert sub_a.statistics().current_buffer_used == 0
        # allowed again, without an address: the one it had is reused
        a.add_peers({KEYS[2]: None})
        await until(lambda: KEYS[2] in a.connected_peers() and KEYS[0] in c.connected_peers())
        await c.send(KEYS[0], b"back")
        with trio.fail_after(10):
            assert await a.inbox().receive() == (KEYS[2], b"back")


def test_peer_id_is_the_documented_identity_multihash() -> None:
    from afterchain.node.transport.p2p import peer_id_for

    pid = peer_id_for(KEYS[0])
    assert pid.to_bytes() == bytes.fromhex("002408011220") + KEYS[0]  # docs/PROTOCOL.md, member node keys
    assert str(pid).startswith("12D3KooW")
