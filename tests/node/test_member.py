"""Member nodes (issue 23): a node whose key is in no validator set follows the chain by
certified blocks, signs and sends no consensus message, takes writes and relays them to
the validators, refuses bad blocks (counted, then disconnects the peer), stops on a state
root it did not compute, and loses nothing when stopped."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio

from afterchain.consensus.messages import CertifiedBlock
from afterchain.node.runtime import member as member_mod
from afterchain.node.runtime.catchup import FollowRequest, FollowResponse, follow_response_bytes
from afterchain.node.runtime.executor import StateDivergence
from afterchain.node.runtime.member import MAX_STRIKES, STRIKE_WINDOW_S, BlockReceiver
from afterchain.node.runtime.runner import Node, NodeOptions
from afterchain.node.transport.frames import Kind, decode_frame
from afterchain.node.transport.memory import MemoryNetwork
from afterchain.protocol.block import CommitSig
from afterchain.protocol.codec import decode
from afterchain.protocol.types import Signature
from tests.node.util import VALIDATORS, genesis, k, product_event, wait_for

MEMBER = k("member-1")


def _node(net: MemoryNetwork, key: Any, tmp_path: Path, name: str, **options: Any) -> Node:
    t = net.nodes.get(key.public) or net.add(key.public)
    return Node(key=key, genesis=genesis(), data_dir=tmp_path / name, transport=t,
                options=NodeOptions(name=name, tick_ms=20, member_poll_ms=20, **options))


@asynccontextmanager
async def validators(tmp_path: Path, net: MemoryNetwork, n: int = 4) -> AsyncIterator[list[Node]]:
    nodes = [_node(net, v, tmp_path, f"v{i}") for i, v in enumerate(VALIDATORS[:n])]
    async with trio.open_nursery() as nursery:
        for node in nodes:
            await nursery.start(node.run)
        yield nodes
        nursery.cancel_scope.cancel()


def _committed(nodes: list[Node], ids: set[bytes]) -> bool:
    return all(all(n.ledger.event_outcome(i) is not None for i in ids) for n in nodes)


async def test_member_follows_never_sends_consensus_and_relays_writes(tmp_path: Path) -> None:
    net = MemoryNetwork()
    sent: Counter[str] = Counter()

    def hook(sender: bytes, receiver: bytes, frame: bytes) -> bool:
        if sender == MEMBER.public:
            f = decode_frame(frame)
            kind = f.kind.name
            if f.kind in (Kind.DIRECT, Kind.REQUEST):
                kind += ":" + type(decode(f.payload)).__name__
            sent[kind] += 1
        return True

    net.hook = hook
    async with validators(tmp_path, net) as vals, trio.open_nursery() as nursery:
        member = _node(net, MEMBER, tmp_path, "m")
        await nursery.start(member.run)
        assert member.role() == "member" and vals[0].role() == "validator"
        # writes through the member: checked as a validator would, relayed, committed on all
        evs = [product_event(i + 1) for i in range(30)]
        out = await member.submit([e.encode() for e in evs])
        assert all(o.ok for o in out), out
        # refused as a validator refuses them: a sender no organisation registered (the
        # stateful pre-check) and a forged signature
        stranger = product_event(1, key=k("nobody"))
        forged = replace(product_event(31), signature=Signature(bytes(64)))
        for raw in (stranger.encode(), forged.encode()):
            (got,) = await member.submit([raw])
            (want,) = await vals[2].submit([raw])
            assert not got.ok and got.code and (got.status, got.code) == (want.status, want.code)
        ids = {e.id for e in evs}
        await wait_for(lambda: _committed([*vals, member], ids), timeout=60)
        assert member.event_status(evs[0].id)["status"] == "committed"  # type: ignore[index]
        h = member.ledger.height
        await wait_for(lambda: all(v.ledger.height >= h for v in vals))
        assert {v.ledger.root_at(h) for v in vals} == {member.ledger.root_at(h)}
        # its state was matched against certified roots, it knows how far it is behind
        await wait_for(lambda: member.executor.verified_height >= 1)
        st = member.status_json()
        assert st["role"] == "member" and st["lag"] >= 0 and st["certified_height_known"] >= h
        assert vals[1].status_json()["role"] == "validator"
        # it never signed or sent a consensus message: only its clients' events (through the
        # dissemination relay), relay messages and block requests left it (`MemberSendGate`
        # withholds whatever its replica would send), and no validator rejected anything from it
        assert not any(k.startswith("DIRECT") and not k.startswith("DIRECT:Relay") for k in sent), sent
        assert sent["REQUEST:FollowRequest"] > 0 and sent["DIRECT:RelayEvents"] > 0
        assert not any(v.replica.rejected.get("sender_not_validator") for v in vals)
        assert member.counters.get("verified_member", 0) == 0  # relies on the certificate (the default)
        nursery.cancel_scope.cancel()


async def test_member_stopped_and_restarted_loses_nothing(tmp_path: Path) -> None:
    net = MemoryNetwork()
    async with validators(tmp_path, net) as vals:
        member = _node(net, MEMBER, tmp_path, "m", verify_event_signatures=True)
        async with trio.open_nursery() as nursery:
            await nursery.start(member.run)
            first = [product_event(i + 1) for i in range(20)]
            await vals[0].submit([e.encode() for e in first])
            await wait_for(lambda: _committed([member], {e.id for e in first}), timeout=60)
            # it checked the signatures itself (it takes no gossip, so none were cached)
            assert member.counters["verified_member"] >= len(first)
            nursery.cancel_scope.cancel()
        more = [product_event(i + 21) for i in range(40)]
        await vals[1].submit([e.encode() for e in more])
        await wait_for(lambda: _committed(vals, {e.id for e in more}), timeout=60)
        again = _node(net, MEMBER, tmp_path, "m")  # the same data directory
        async with trio.open_nursery() as nursery:
            await nursery.start(again.run)
            await wait_for(lambda: _committed([again], {e.id for e in first + more}), timeout=60)
            h = again.ledger.height
            await wait_for(lambda: vals[0].ledger.height >= h)
            assert again.ledger.root_at(h) == vals[0].ledger.root_at(h)
            nursery.cancel_scope.cancel()


async def test_member_stops_on_a_state_root_it_did_not_compute(tmp_path: Path) -> None:
    net = MemoryNetwork()
    async with validators(tmp_path, net) as vals:
        member = _node(net, MEMBER, tmp_path, "m")
        real_apply = member.ledger.apply_block
        diverged: list[int] = []

        def diverging_apply(height: int, time_ms: int, events: Any, **kw: Any) -> Any:
            if events and not diverged:  # its application "differs": one extra write
                diverged.append(height)
                events = (*events, product_event(500, serial="DIVERGED").encode())
                if kw.get("decoded") is not None:
                    kw["decoded"] = [*kw["decoded"], None]
            return real_apply(height, time_ms, events, **kw)

        member.ledger.apply_block = diverging_apply  # type: ignore[method-assign]
        evs = [product_event(i + 1) for i in range(5)]
        with pytest.raises(BaseException) as info:
            async with trio.open_nursery() as nursery:
                await nursery.start(member.run)
                await vals[0].submit([e.encode() for e in evs])
                with trio.fail_after(60):
                    await trio.sleep_forever()
        errors = info.value.exceptions if isinstance(info.value, BaseExceptionGroup) else (info.value,)
        flat: list[BaseException] = []
        while errors:
            e, *rest = errors
            errors = tuple(rest) + (tuple(e.exceptions) if isinstance(e, BaseExceptionGroup) else ())
            if not isinstance(e, BaseExceptionGroup):
                flat.append(e)
        div = [e for e in flat if isinstance(e, StateDivergence)]
        assert div, flat
        assert "diverged" in str(div[0]) and diverged
        # it never executed past the block that revealed the divergence
        assert member.ledger.height < vals[0].ledger.height or member.ledger.height <= diverged[0] + 8


async def _certified(tmp_path: Path) -> tuple[list[CertifiedBlock], Any]:
    """A few certified blocks of a real chain (events in them), and the genesis."""
    net = MemoryNetwork()
    async with validators(tmp_path, net) as vals:
        evs = [product_event(i + 1) for i in range(10)]
        await vals[0].submit([e.encode() for e in evs])
        await wait_for(lambda: _committed(vals, {e.id for e in evs}), timeout=60)
        await wait_for(lambda: vals[0].store.head >= 3)  # (heartbeat blocks follow)
        store = vals[0].store
        resp = FollowResponse.decode(follow_response_bytes(store, FollowRequest(from_height=1, count=8)))
    return list(resp.blocks), net


async def test_member_refuses_bad_blocks_counts_and_disconnects(tmp_path: Path) -> None:
    blocks, _ = await _certified(tmp_path / "chain")
    assert len(blocks) >= 3
    net = MemoryNetwork()
    member = _node(net, MEMBER, tmp_path, "m")
    rx: BlockReceiver = member.receiver
    peer = VALIDATORS[3].public
    good0, good1 = blocks[0], blocks[1]
    cert = good1.certificate
    forged = replace(good1, certificate=replace(cert, signatures=(
        CommitSig(replica=cert.signatures[0].replica, signature=Signature(bytes(64))), *cert.signatures[1:])))
    short = replace(good1, certificate=replace(cert, signatures=cert.signatures[:2]))
    stranger = replace(good1, certificate=replace(cert, signatures=(
        CommitSig(replica=MEMBER.public, signature=cert.signatures[0].signature), *cert.signatures[1:])))

    def refused(reason: str) -> float:
        return float(member.metrics.member_blocks_refused.labels(reason)._value.get())

    assert await rx.receive(peer, [good0]) == 1
    assert await rx.receive(peer, [good0]) == 0 and refused("replay") == 1  # replayed
    assert await rx.receive(VALIDATORS[2].public, [blocks[2]]) == 0 and refused("not_chained") == 1  # a gap
    assert await rx.receive(VALIDATORS[2].public, [short]) == 0 and refused("no_quorum") == 1
    assert await rx.receive(VALIDATORS[1].public, [stranger]) == 0 and refused("signer_unknown") == 1
    assert peer not in member.transport.faults.blocked
    assert await rx.receive(peer, [forged]) == 0 and refused("signature_invalid") == 1
    # the third strike: that peer is disconnected (fault switch: connections closed, refused)
    assert await rx.receive(peer, [forged]) == 0
    assert len(rx.strikes[peer]) == MAX_STRIKES and peer in rx.banned and peer in member.transport.faults.blocked
    assert member.metrics.member_peers_banned._value.get() == 1
    assert await rx.receive(peer, [good1]) == 0  # nothing more taken from it while banned
    # an honest peer's good block is taken; only accepted blocks reached the consensus loop
    assert await rx.receive(VALIDATORS[0].public, [good1, blocks[2]]) == 2
    got = []
    while True:
        try:
            got.append(member.inputs.recv.receive_nowait())
        except trio.WouldBlock:
            break
    fed = [cb.block.header.height for item in got for cb in item.blocks]
    assert fed == [1, 2, 3]
    member.close()


def test_member_strikes_expire_after_the_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Strikes older than STRIKE_WINDOW_S no longer count: MAX_STRIKES refusals spread over
    more than the window never ban a peer; MAX_STRIKES within it do."""
    now = [1000.0]
    monkeypatch.setattr(member_mod, "time", type("Clock", (), {"monotonic": staticmethod(lambda: now[0])}))
    member = _node(MemoryNetwork(), MEMBER, tmp_path, "m")
    rx: BlockReceiver = member.receiver
    slow, fast = VALIDATORS[1].public, VALIDATORS[2].public
    for _ in range(3 * MAX_STRIKES):
        rx.refuse(slow, "replay")
        now[0] += STRIKE_WINDOW_S / (MAX_STRIKES - 1) + 1  # one strike fewer than a ban fits in any window
    assert slow not in rx.banned and len(rx.strikes[slow]) < MAX_STRIKES
    for _ in range(MAX_STRIKES):
        rx.refuse(fast, "replay")
        now[0] += 1
    assert fast in rx.banned and fast in member.transport.faults.blocked


async def test_member_catches_up_past_a_peer_serving_forged_blocks(tmp_path: Path) -> None:
    """A Byzantine peer (it holds validator 3's key and answers member requests with forged
    certificates) is refused and disconnected; the member follows the honest ones."""
    net = MemoryNetwork()
    async with validators(tmp_path, net, n=3) as vals:
        evs = [product_event(i + 1) for i in range(20)]
        await vals[0].submit([e.encode() for e in evs])
        await wait_for(lambda: _committed(vals, {e.id for e in evs}), timeout=60)
        liar = net.add(VALIDATORS[3].public)

        async def lie(sender: bytes, data: bytes) -> bytes:
            resp = FollowResponse.decode(follow_response_bytes(vals[0].store, decode(data)))
            bad = tuple(replace(cb, certificate=replace(cb.certificate, signatures=cb.certificate.signatures[:1]))
                        for cb in resp.blocks)
            out: bytes = FollowResponse(head=resp.head, blocks=bad).encode()
            return out

        liar.on_request(lie)
        async with trio.open_nursery() as nursery:
            await nursery.start(liar.run)
            member = _node(net, MEMBER, tmp_path, "m", relay=False)  # the follower's polls (the relay: test_relay_node)
            await nursery.start(member.run)
            await wait_for(lambda: _committed([member], {e.id for e in evs}), timeout=60)
            await wait_for(lambda: VALIDATORS[3].public in member.receiver.banned, timeout=30)
            assert member.metrics.member_blocks_refused.labels("no_quorum")._value.get() >= MAX_STRIKES
            nursery.cancel_scope.cancel()


async def test_sdk_unchanged_against_a_member_node(tmp_path: Path) -> None:
    """The Python SDK (async client) signs, submits and waits through a member's HTTP API;
    the member answers as a validator would and reports the event committed."""
    import httpx

    from afterchain.node.client.aio import AsyncClient
    from afterchain.node.http.app import build_app
    from afterchain.node.http.service import NodeHttp
    from afterchain.protocol import bodies as B
    from tests.node.util import ACME, GTIN

    net = MemoryNetwork()
    async with validators(tmp_path, net) as vals, trio.open_nursery() as nursery:
        member = _node(net, MEMBER, tmp_path, "m")
        await nursery.start(member.run)
        app = build_app(NodeHttp(member))
        async with AsyncClient("http://member", ACME, transport=httpx.ASGITransport(app=app)) as c:
            st = await c.status()
            assert st["role"] == "member"
            out = await c.send(B.ProductRegister(gtin=GTIN, serial="SDK-1", model="M1", batch="B1", production_time_ms=1),
                               timeout_s=30)
            assert out.status == "committed", out
        await wait_for(lambda: all(v.ledger.event_outcome(out.id) is not None for v in vals))
        nursery.cancel_scope.cancel()
