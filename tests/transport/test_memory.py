"""The in-memory transport: delivery, order, request/response, faults, limits, crash."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from afterchain.node.transport import (
    FrameTooLarge,
    PeerUnavailable,
    RemoteRequestError,
    RequestTimeout,
    TransportLimits,
)
from afterchain.node.transport.frames import FrameError, Kind, decode_frame, encode_frame
from afterchain.node.transport.memory import MemoryNetwork, MemoryTransport

KEYS = [bytes([i]) * 32 for i in range(1, 5)]


async def start_all(nursery: trio.Nursery, net: MemoryNetwork, n: int = 4) -> list[MemoryTransport]:
    ts = [net.add(k) for k in KEYS[:n]]
    for t in ts:
        await nursery.start(t.run)
    return ts


async def test_broadcast_reaches_every_other_node_in_order() -> None:
    net = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        ts = await start_all(nursery, net)
        subs = [t.subscribe("events") for t in ts]
        for i in range(50):
            await ts[0].broadcast("events", i.to_bytes(2, "big"))
        for sub in subs[1:]:
            got = [await sub.receive() for _ in range(50)]
            assert got == [(KEYS[0], i.to_bytes(2, "big")) for i in range(50)]
        assert subs[0].statistics().current_buffer_used == 0  # not to myself
        assert ts[0].connected_peers() == set(KEYS[1:])
        nursery.cancel_scope.cancel()


async def test_send_and_request() -> None:
    net = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        a, b, *_ = await start_all(nursery, net, 2)

        async def echo(sender: bytes, data: bytes) -> bytes:
            return sender[:1] + data

        b.on_request(echo)
        await a.send(b.me, b"hello")
        assert await b.inbox().receive() == (a.me, b"hello")
        assert await a.request(b.me, b"x", timeout_s=5) == a.me[:1] + b"x"
        # b has no handler registered on a: a remote error, not a hang
        with pytest.raises(RemoteRequestError):
            await b.request(a.me, b"x", timeout_s=5)

        async def boom(sender: bytes, data: bytes) -> bytes:
            raise ValueError("bad request")

        b.on_request(boom)
        with pytest.raises(RemoteRequestError, match="bad request"):
            await a.request(b.me, b"x", timeout_s=5)
        nursery.cancel_scope.cancel()


async def test_many_concurrent_requests_are_matched_to_their_responses() -> None:
    net = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        a, b = await start_all(nursery, net, 2)

        async def double(sender: bytes, data: bytes) -> bytes:
            await trio.sleep(0.001 * (data[0] % 5))
            return data * 2

        b.on_request(double)
        results: dict[int, bytes] = {}

        async def one(i: int) -> None:
            results[i] = await a.request(b.me, bytes([i]), timeout_s=5)

        async with trio.open_nursery() as inner:
            for i in range(100):
                inner.start_soon(one, i)
        assert results == {i: bytes([i, i]) for i in range(100)}
        nursery.cancel_scope.cancel()


async def test_faults_cut_partition_heal_and_counted(autojump_clock: trio.testing.MockClock) -> None:
    net = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        a, b, c, d = await start_all(nursery, net)
        subs = {t.me: t.subscribe("t") for t in (b, c, d)}
        net.partition([a.me, b.me], [c.me, d.me])
        assert a.connected_peers() == {b.me}
        await a.broadcast("t", b"1")
        assert await subs[b.me].receive() == (a.me, b"1")
        assert a.stats.dropped_fault == 2
        b.on_request(lambda s, x: _const(b"ok"))
        c.on_request(lambda s, x: _const(b"ok"))
        with pytest.raises(RequestTimeout):
            await a.request(c.me, b"?", timeout_s=1)
        net.heal()
        await a.broadcast("t", b"2")
        for k in (c.me, d.me):
            assert await subs[k].receive() == (a.me, b"2")
        net.isolate(d.me)
        assert d.connected_peers() == set()
        net.heal()
        net.drop(a.me, b.me)  # one direction
        await b.send(a.me, b"b->a")
        assert await a.inbox().receive() == (b.me, b"b->a")
        await a.send(b.me, b"lost")
        assert a.stats.dropped_fault == 4  # 2 broadcasts + the request to c + this one
        nursery.cancel_scope.cancel()


async def _const(x: bytes) -> bytes:
    return x


async def test_delay_keeps_order(autojump_clock: trio.testing.MockClock) -> None:
    net = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        a, b = await start_all(nursery, net, 2)
        net.set_delay(0.5)
        t0 = trio.current_time()
        for i in range(10):
            await a.send(b.me, bytes([i]))
        got = [(await b.inbox().receive())[1] for _ in range(10)]
        assert got == [bytes([i]) for i in range(10)]
        assert 0.5 <= trio.current_time() - t0 < 0.6
        nursery.cancel_scope.cancel()


async def test_seeded_loss_and_hook() -> None:
    net = MemoryNetwork(seed=7)
    async with trio.open_nursery() as nursery:
        a, b = await start_all(nursery, net, 2)
        net.set_loss(0.5)
        for i in range(200):
            await a.send(b.me, bytes([i % 256]))
        assert 50 < a.stats.dropped_fault < 150
        net.set_loss(0.0)
        net.hook = lambda s, r, f: decode_frame(f).payload != b"veto"
        await a.send(b.me, b"veto")
        await a.send(b.me, b"pass")
        received = []
        while True:
            _, data = await b.inbox().receive()
            received.append(data)
            if data == b"pass":
                break
        assert b"veto" not in received
        assert len(received) == 200 - a.stats.dropped_fault + 1 + 1  # the veto was counted too
        nursery.cancel_scope.cancel()


async def test_backpressure_blocks_sender_instead_of_dropping() -> None:
    net = MemoryNetwork(limits=TransportLimits(subscriber_queue_len=2, send_queue_len=2))
    async with trio.open_nursery() as nursery:
        a, b = await start_all(nursery, net, 2)
        sub = b.subscribe("t")
        sent = 0

        async def producer() -> None:
            nonlocal sent
            for i in range(20):
                await a.broadcast("t", bytes([i]))
                sent += 1

        nursery.start_soon(producer)
        await trio.testing.wait_all_tasks_blocked()
        assert sent < 20  # blocked: 2 in the subscriber queue, 2 in the link, 1 in flight
        got = [(await sub.receive())[1] for _ in range(20)]
        assert got == [bytes([i]) for i in range(20)]
        assert a.stats.dropped_fault == a.stats.dropped_not_connected == 0
        nursery.cancel_scope.cancel()


async def test_oversize_frames_refused_both_ways() -> None:
    net = MemoryNetwork(limits=TransportLimits(max_frame_bytes=1000))
    async with trio.open_nursery() as nursery:
        a, b = await start_all(nursery, net, 2)
        with pytest.raises(FrameTooLarge):
            await a.send(b.me, b"x" * 1000)
        with pytest.raises(FrameTooLarge):
            await a.broadcast("t", b"x" * 1000)
        with pytest.raises(FrameTooLarge):
            await a.request(b.me, b"x" * 1000, timeout_s=1)
        assert a.stats.refused_oversize == 3
        # a faulty peer that bypasses its own check: the receiver refuses and closes the link
        await a._send_frame(b.me, encode_frame(Kind.DIRECT, b"y" * 2000))
        await trio.testing.wait_all_tasks_blocked()
        assert b.stats.refused_oversize == 1
        assert b.inbox().statistics().current_buffer_used == 0
        nursery.cancel_scope.cancel()


async def test_crash_fails_pending_requests_and_restart_works() -> None:
    net = MemoryNetwork()
    a, b = net.add(KEYS[0]), net.add(KEYS[1])
    never = trio.Event()

    async def hang(sender: bytes, data: bytes) -> bytes:
        await never.wait()
        return b"late"

    b.on_request(hang)
    outcome: list[BaseException] = []

    async def req() -> None:
        try:
            await a.request(b.me, b"?", timeout_s=100)
        except PeerUnavailable as e:
            outcome.append(e)

    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        async with trio.open_nursery() as b_nursery:
            await b_nursery.start(b.run)
            nursery.start_soon(req)
            await trio.testing.wait_all_tasks_blocked()
            assert a.connected_peers() == {b.me}
            b_nursery.cancel_scope.cancel()  # crash b
        await trio.testing.wait_all_tasks_blocked()
        assert len(outcome) == 1
        assert a.connected_peers() == set()
        await a.send(b.me, b"into the void")
        assert a.stats.dropped_not_connected == 1
        await nursery.start(b.run)  # restart
        b.on_request(lambda s, x: _const(b"back"))
        assert await a.request(b.me, b"?", timeout_s=5) == b"back"
        nursery.cancel_scope.cancel()


def test_frame_codec_round_trip_and_malformed() -> None:
    f = decode_frame(encode_frame(Kind.GOSSIP, b"data", topic="events"))
    assert (f.kind, f.topic, f.payload) == (Kind.GOSSIP, "events", b"data")
    f = decode_frame(encode_frame(Kind.REQUEST, b"", request_id=2**64 - 1))
    assert (f.kind, f.request_id, f.payload) == (Kind.REQUEST, 2**64 - 1, b"")
    for bad in (b"", b"\x09" + bytes(10), encode_frame(Kind.DIRECT, b"")[:-1] + b"\x05", b"\x01" + bytes(8) + b"\x00\x00"):
        with pytest.raises(FrameError):
            decode_frame(bad)


@given(st.binary(max_size=64))
def test_decode_frame_raises_only_frame_error(data: bytes) -> None:
    try:
        f = decode_frame(data)
    except FrameError:
        return
    assert encode_frame(f.kind, f.payload, topic=f.topic, request_id=f.request_id) == data


@given(st.sampled_from(list(Kind)), st.binary(max_size=64), st.integers(0, 2**64 - 1), st.text(min_size=1, max_size=20))
def test_encode_decode_round_trip(kind: Kind, payload: bytes, request_id: int, topic: str) -> None:
    topic = topic if kind is Kind.GOSSIP else ""
    f = decode_frame(encode_frame(kind, payload, topic=topic, request_id=request_id))
    assert (f.kind, f.payload, f.topic, f.request_id) == (kind, payload, topic, request_id)


async def test_every_subscriber_gets_every_message_and_closed_ones_are_dropped() -> None:
    net = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        a, b = await start_all(nursery, net, 2)
        s1, s2 = b.subscribe("t"), b.subscribe("t")
        await a.broadcast("t", b"1")
        assert await s1.receive() == (a.me, b"1")
        assert await s2.receive() == (a.me, b"1")
        await s1.aclose()
        await a.broadcast("t", b"2")
        assert await s2.receive() == (a.me, b"2")
        await a.broadcast("nobody", b"3")
        await trio.testing.wait_all_tasks_blocked()
        assert b.stats.dropped_no_subscriber == 1
        nursery.cancel_scope.cancel()


async def test_fault_switch_block_and_drop_rate() -> None:
    net = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        a, b, c = await start_all(nursery, net, 3)
        sub_a, sub_b, sub_c = a.subscribe("t"), b.subscribe("t"), c.subscribe("t")
        a.faults.set(drop_rate=1.0)
        for _ in range(10):
            await a.broadcast("t", b"x")
        assert a.stats.dropped_fault == 20
        a.faults.set(drop_rate=0.0, block=[b.me])
        assert b.me not in a.connected_peers()
        await a.broadcast("t", b"y")
        await b.broadcast("t", b"from b")  # a drops what b sends it (b does not block a)
        with pytest.raises(PeerUnavailable):
            await a.request(b.me, b"q", timeout_s=1)
        await trio.testing.wait_all_tasks_blocked()
        assert sub_c.receive_nowait() == (a.me, b"y")
        assert sub_c.receive_nowait() == (b.me, b"from b")
        assert sub_b.statistics().current_buffer_used == 0 and sub_a.statistics().current_buffer_used == 0
        assert a.stats.dropped_fault >= 23
        a.faults.set(block=[])
        await a.broadcast("t", b"z")
        await trio.testing.wait_all_tasks_blocked()
        assert sub_b.receive_nowait() == (a.me, b"z")
        nursery.cancel_scope.cancel()


async def test_remove_peers_refuses_a_peer_both_ways_until_added_again() -> None:
    net = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        a, b, c, _ = await start_all(nursery, net)
        sub_b, sub_a = b.subscribe("t"), a.subscribe("t")
        hang = trio.Event()

        async def slow(sender: bytes, data: bytes) -> bytes:
            await hang.wait()
            return data

        b.on_request(slow)
        failed: list[Exception] = []

        async def doomed() -> None:
            try:
                await a.request(b.me, b"x", timeout_s=30)
            except PeerUnavailable as e:
                failed.append(e)

        nursery.start_soon(doomed)
        await trio.testing.wait_all_tasks_blocked()
        a.remove_peers([b.me, a.me, bytes(32)])  # myself and unknown keys are ignored
        await trio.testing.wait_all_tasks_blocked()
        assert len(failed) == 1  # its outstanding request failed at once
        assert b.me not in a.connected_peers() and a.me not in b.connected_peers()
        assert c.me in a.connected_peers() and a.refuses(b.me) and not b.refuses(a.me)
        assert a.stats.refused_peers == 1
        before = (a.stats.dropped_not_connected, b.stats.dropped_not_connected)
        await a.broadcast("t", b"from-a")
        await b.broadcast("t", b"from-b")
        await a.send(b.me, b"direct")
        with pytest.raises(PeerUnavailable):
            await b.request(a.me, b"x", timeout_s=5)
        await trio.testing.wait_all_tasks_blocked()
        assert sub_b.statistics().current_buffer_used == 0 and sub_a.statistics().current_buffer_used == 0
        assert a.stats.dropped_not_connected == before[0] + 2 and b.stats.dropped_not_connected == before[1] + 1
        # allowed again: traffic flows both ways
        a.add_peers({b.me: None})
        assert b.me in a.connected_peers()
        await a.broadcast("t", b"again")
        assert await sub_b.receive() == (a.me, b"again")
        await b.send(a.me, b"back")
        assert await a.inbox().receive() == (b.me, b"back")
        hang.set()
        nursery.cancel_scope.cancel()


async def test_a_first_frame_to_a_stopping_peer_is_dropped_not_raised() -> None:
    """A peer whose transport is stopping (its nursery takes no new tasks yet it has not
    marked itself stopped) is unavailable: the first frame to it is dropped and counted,
    never a RuntimeError in the sender's task (seen tearing a memory cluster down)."""
    net = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        a, b = await start_all(nursery, net, 2)
        async with trio.open_nursery() as closed:
            pass  # a nursery that has exited: closed to new tasks
        running = b._nursery
        b._nursery = closed  # b in the middle of stopping
        await a.send(b.me, b"first frame")
        assert a.stats.dropped_not_connected == 1
        with pytest.raises(PeerUnavailable, match="stopping"):
            await a.request(b.me, b"?", timeout_s=5)
        assert a.me not in b._links  # no half-made link is left behind
        b._nursery = running
        await a.send(b.me, b"again")
        assert await b.inbox().receive() == (a.me, b"again")
        nursery.cancel_scope.cancel()
