"""The dissemination relay wired into nodes (issue 23, PROTOCOL.md section 11): members
get certified blocks member to member and send their clients' events towards the
validators through it; the follower only fills gaps; `[member] relay = false` falls back
to polling; per-peer limits refuse, count and eventually disconnect floods."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trio

from afterchain.consensus.relay import RelayBlocks, RelayRequest, RelayStatus
from afterchain.node.runtime.catchup import FollowRequest
from afterchain.node.runtime.member import MAX_STRIKES
from afterchain.node.runtime.ratelimit import PeerLimiter
from afterchain.node.runtime.relay import DEFLATED_KEPT_BYTES, RelayService, is_relay_frame
from afterchain.node.runtime.runner import Node, NodeOptions
from afterchain.node.transport.frames import Kind, decode_frame
from afterchain.node.transport.memory import MemoryNetwork
from afterchain.protocol.codec import decode
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.types import Height, Signature
from tests.node.util import VALIDATORS, genesis, k, product_event, wait_for

MEMBERS = [k(f"member-{i}") for i in range(3)]


def _node(net: MemoryNetwork, key: Any, tmp_path: Path, name: str, **options: Any) -> Node:
    t = net.nodes.get(key.public) or net.add(key.public)
    return Node(key=key, genesis=genesis(), data_dir=tmp_path / name, transport=t,
                options=NodeOptions(name=name, tick_ms=20, member_poll_ms=20, **options))


@asynccontextmanager
async def network(tmp_path: Path, net: MemoryNetwork, members: int, **options: Any) -> AsyncIterator[tuple[list[Node], list[Node]]]:
    vals = [_node(net, v, tmp_path, f"v{i}", **options) for i, v in enumerate(VALIDATORS)]
    mems = [_node(net, m, tmp_path, f"m{i}", **options) for i, m in enumerate(MEMBERS[:members])]
    async with trio.open_nursery() as nursery:
        for node in [*vals, *mems]:
            await nursery.start(node.run)
        yield vals, mems
        nursery.cancel_scope.cancel()


def _committed(nodes: list[Node], ids: set[bytes]) -> bool:
    return all(all(n.ledger.event_outcome(i) is not None for i in ids) for n in nodes)


async def test_members_follow_and_write_through_the_relay(tmp_path: Path) -> None:
    net = MemoryNetwork()
    sent: Counter[str] = Counter()

    def hook(sender: bytes, receiver: bytes, frame: bytes) -> bool:
        if sender in {m.public for m in MEMBERS}:
            f = decode_frame(frame)
            kind = f.kind.name
            if f.kind in (Kind.DIRECT, Kind.REQUEST):
                kind += ":" + type(decode(f.payload)).__name__
            sent[kind] += 1
        return True

    net.hook = hook
    async with network(tmp_path, net, 3) as (vals, mems):
        evs = [product_event(i + 1) for i in range(30)]
        out = await mems[0].submit([e.encode() for e in evs])
        assert all(o.ok for o in out), out
        ids = {e.id for e in evs}
        await wait_for(lambda: _committed([*vals, *mems], ids), timeout=60)
        h = min(n.ledger.height for n in mems)
        await wait_for(lambda: all(v.ledger.height >= h for v in vals))
        assert len({n.ledger.root_at(h) for n in [*vals, *mems]}) == 1
        # blocks came through the relay (verified by each member's BlockReceiver), and the
        # member's events went towards the validators through it, not by event gossip
        assert sum(m.counters["relay_blocks"] for m in mems) > 0
        # blocks travel deflated (PROTOCOL.md section 11, RelayBlocksDeflated)
        assert sum(v.counters["relay_deflated"] for v in vals) > 0
        assert sum(m.counters["relay_inflated"] for m in mems) > 0 and sent["DIRECT:RelayBlocksDeflated"] > 0
        # a member passes a block on in the deflated frame it came in, not compressed again
        assert sum(m.counters["relay_deflate_reused"] for m in mems) > 0
        assert all(m.relay.machine.height >= h for m in mems)
        assert sent["DIRECT:RelayStatus"] > 0 and sent["DIRECT:RelayEvents"] > 0
        assert sent["GOSSIP"] == 0, sent
        # members sent no consensus message and nothing was refused anywhere
        assert not any(k.startswith("DIRECT:") and "Relay" not in k for k in sent), sent
        assert not any(n.relay.machine.stats.invalid_blocks for n in [*vals, *mems])
        st = mems[1].status_json()
        assert st["relay"]["enabled"] and st["relay"]["peers"] and st["lag"] >= 0
        # while the relay delivers, the follower only fills gaps (a poll every 2 s, not every 20 ms)
        await wait_for(lambda: all(m.relay.active() for m in mems))
        before = [m.follower.polls for m in mems]
        await trio.sleep(3.0)
        assert all(m.follower.polls - p <= 3 for m, p in zip(mems, before, strict=True)), before


async def test_relay_off_falls_back_to_polling(tmp_path: Path) -> None:
    net = MemoryNetwork()
    relayed: list[bytes] = []

    def hook(sender: bytes, receiver: bytes, frame: bytes) -> bool:
        f = decode_frame(frame)
        if f.kind is Kind.DIRECT and is_relay_frame(f.payload):
            relayed.append(f.payload)
        return True

    net.hook = hook
    async with network(tmp_path, net, 1, relay=False) as (vals, mems):
        evs = [product_event(i + 1) for i in range(10)]
        out = await mems[0].submit([e.encode() for e in evs])
        assert all(o.ok for o in out), out
        await wait_for(lambda: _committed([*vals, *mems], {e.id for e in evs}), timeout=60)
        assert mems[0].follower.polls > 0 and not relayed
        assert mems[0].status_json()["relay"]["enabled"] is False


def test_peer_limiter_refuses_counts_and_strikes() -> None:
    now = [100.0]
    strikes: list[tuple[bytes, str]] = []
    counters: dict[str, int] = {}

    class Log:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def warning(self, event: str, **_: Any) -> None:
            self.lines.append(event)

    log = Log()
    lim = PeerLimiter(log=log, counters=counters, strike=lambda p, r: strikes.append((p, r)),
                      limits={"FollowRequest": (10.0, 20.0)}, clock=lambda: now[0])
    peer = bytes(32)
    assert all(lim.allow(peer, "FollowRequest") for _ in range(20))  # the burst
    assert not lim.allow(peer, "FollowRequest")
    assert not lim.allow(peer, "FollowRequest")
    assert counters["limited_FollowRequest"] == 2 and strikes == [(peer, "flood_FollowRequest")]
    assert log.lines == ["peer_rate_limited"]  # once a second
    assert lim.allow(bytes([1]) * 32, "FollowRequest")  # per peer
    now[0] += 0.5  # 5 tokens back
    assert sum(lim.allow(peer, "FollowRequest") for _ in range(10)) == 5
    assert len(strikes) == 1  # still the same second
    now[0] += 1.0
    assert sum(lim.allow(peer, "FollowRequest") for _ in range(20)) == 10
    assert len(strikes) == 2
    assert lim.allow(peer, "unlimited kind") and lim.describe() == {"FollowRequest": 17}


async def test_follow_request_and_relay_floods_are_refused_then_disconnected(tmp_path: Path) -> None:
    net = MemoryNetwork()
    async with network(tmp_path, net, 1) as (vals, _mems):
        v = vals[0]
        await wait_for(lambda: v.store.head >= 1)
        flooder = k("flooder").public  # (any admitted key: the limits are per peer)
        req = FollowRequest(from_height=Height(1), count=1).encode()
        served = refused = 0
        for _ in range(200):
            try:
                await v.catchup.on_request(flooder, req)
                served += 1
            except ProtocolError:
                refused += 1
        assert served == 40 and refused == 160  # the burst, then refused
        assert v.counters["limited_FollowRequest"] == 160
        # relay requests and statuses beyond their buckets are refused and counted too
        for msg in (RelayRequest(from_height=Height(1), count=1), RelayStatus(height=Height(0), hops=16)):
            for _ in range(300):
                v.relay.offer_frame(flooder, msg.encode())
        await wait_for(lambda: v.counters.get("limited_RelayRequest", 0) > 0
                       and v.counters.get("limited_RelayStatus", 0) > 0)
        # a flood that goes on for MAX_STRIKES seconds gets the peer blocked at the transport
        for _ in range(MAX_STRIKES + 1):
            for _ in range(60):
                with suppress(ProtocolError):
                    await v.catchup.on_request(flooder, req)
            if flooder in v.transport.faults.blocked:
                break
            await trio.sleep(1.05)
        assert flooder in v.transport.faults.blocked
        assert v.metrics.member_peers_banned._value.get() >= 1
        # the other validators and the chain go on
        ev = product_event(1)
        await vals[1].submit([ev.encode()])
        await wait_for(lambda: _committed(vals, {ev.id}), timeout=60)





async def test_forged_relayed_blocks_are_refused_counted_and_the_sender_cut_off(tmp_path: Path) -> None:
    """A peer that pushes blocks with forged or short certificates over the relay is
    refused (BlockReceiver's reasons), counted, and blocked at the 3rd strike; the member
    keeps following the honest peers."""
    net = MemoryNetwork()
    async with network(tmp_path, net, 1) as (vals, mems):
        m = mems[0]
        liar_key = k("liar")
        liar = net.add(liar_key.public)
        async with trio.open_nursery() as nursery:
            await nursery.start(liar.run)
            await wait_for(lambda: vals[0].store.head >= 2)
            evs = [product_event(i + 1) for i in range(5)]
            await vals[0].submit([e.encode() for e in evs])
            await wait_for(lambda: _committed([*vals, m], {e.id for e in evs}), timeout=60)

            def refused() -> float:
                return float(sum(m.metrics.member_blocks_refused.labels(r)._value.get()
                                 for r in ("signature_invalid", "no_quorum")))

            # the liar is the member's only peer for a while (the honest ones cannot push h first)
            net.partition([m.key.public, liar_key.public], [v.public for v in VALIDATORS])
            h = m.relay.machine.height + 1
            await wait_for(lambda: vals[0].store.head >= h)
            cb = vals[0].relay.source.blocks(h, 1)[0]
            cert = cb.certificate
            for turn in range(MAX_STRIKES):
                sigs = cert.signatures[:1] if turn % 2 else tuple(
                    replace(s, signature=Signature(bytes(64))) for s in cert.signatures)
                bad = replace(cb, certificate=replace(cert, signatures=sigs))
                before = refused()
                await liar.send(m.key.public, RelayStatus(height=Height(h), hops=1).encode())
                await liar.send(m.key.public, RelayBlocks(blocks=(bad,)).encode())
                await wait_for(lambda before=before: refused() > before)
            assert refused() == MAX_STRIKES and m.relay.machine.stats.invalid_blocks == MAX_STRIKES
            assert liar_key.public in m.transport.faults.blocked and m.ledger.height < h
            net.heal()
            # the member still follows the chain from honest peers
            more = [product_event(i + 6) for i in range(5)]
            await vals[1].submit([e.encode() for e in more])
            await wait_for(lambda: _committed([m], {e.id for e in more}), timeout=60)
            nursery.cancel_scope.cancel()


def test_member_relay_setting(tmp_path: Path) -> None:
    from afterchain.node.runtime.config import ConfigError, load_config
    from tests.node.test_config_addresses_env import BASE, cfg_file

    assert load_config(cfg_file(tmp_path), env={}).member.relay is True  # on by default
    assert load_config(cfg_file(tmp_path, BASE + "[member]\nrelay = false\n"), env={}).member.relay is False
    with pytest.raises(ConfigError, match=r"member\.relay"):
        load_config(cfg_file(tmp_path, BASE + '[member]\nrelay = "no"\n'), env={})


def test_deflated_frames_kept_are_bounded_oldest_first() -> None:
    kept = SimpleNamespace(_deflated={}, _deflated_bytes=0)
    remember = RelayService._remember_deflated
    half = DEFLATED_KEPT_BYTES // 2
    a, b, c = (bytes([i]) * (half - 10) for i in range(3))
    remember(kept, a, b"A" * 10)  # type: ignore[arg-type]
    remember(kept, b, b"B" * 10)  # type: ignore[arg-type]
    assert list(kept._deflated) == [a, b] and kept._deflated_bytes == 2 * half
    remember(kept, c, b"C" * 10)  # type: ignore[arg-type]
    assert list(kept._deflated) == [b, c] and kept._deflated_bytes == 2 * half
    remember(kept, b"x" * DEFLATED_KEPT_BYTES, b"X")  # type: ignore[arg-type]  # larger than all: not kept
    assert list(kept._deflated) == [b, c]
