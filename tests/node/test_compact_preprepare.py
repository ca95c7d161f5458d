"""Compact pre-prepares: a primary names its block's events by hash (their bytes reached
the backups by gossip), and a backup rebuilds the block from the events it has, asking the
sender for the rest (`CompactPrePrepareMsg`, `EventsRequest`, node/runtime/peer_inbox.py `expand`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import trio

from afterchain.consensus.messages import (
    CompactPrePrepareMsg,
    ConsensusMessage,
    EventsRequest,
    EventsResponse,
    PrePrepareMsg,
)
from afterchain.node.bench import intake
from afterchain.node.runtime import peer_inbox
from afterchain.node.runtime.inputs import Nudge, PeerMessage
from afterchain.node.runtime.intake import Verifying
from afterchain.node.transport.base import RequestTimeout
from afterchain.protocol.codec import decode, decode_as, sha256
from afterchain.protocol.errors import ProtocolError

from .util import memory_cluster, product_event, wait_for

PRIMARY = intake._validators()[0].public


def _pp(tmp_path: Path, n: int = 12) -> tuple[Any, list[bytes], PrePrepareMsg]:
    node = intake._node(tmp_path, 1)
    raws = intake._events(n)
    data, _ = intake._preprepare(node, raws, 1, intake._T0)
    msg = decode_as(ConsensusMessage, data, max_bytes=64 << 20)
    assert isinstance(msg, PrePrepareMsg)
    return node, raws, msg


# --------------------------------------------------------------------------- the message


def test_compact_round_trip_rebuilds_the_same_preprepare(tmp_path: Path) -> None:
    node, raws, pp = _pp(tmp_path)
    c = CompactPrePrepareMsg.of(pp, prefilled=(raws[3],))
    data = c.encode()
    # 12 hashes (34 bytes encoded) and one event instead of the 12 events
    assert len(data) <= len(pp.encode()) - sum(len(r) for r in raws) + 12 * 34 + len(raws[3]) + 4
    back = decode(data)
    assert back == c
    full = back.expand(tuple(raws))  # type: ignore[attr-defined]
    assert full.encode() == pp.encode()
    assert full.block.event_hashes() == pp.block.event_hashes()
    node.close()


@pytest.mark.parametrize("change", ["header", "count", "hashes", "prefilled"])
def test_a_compact_preprepare_that_does_not_match_its_header_is_refused(tmp_path: Path, change: str) -> None:
    node, raws, pp = _pp(tmp_path)
    c = CompactPrePrepareMsg.of(pp)
    hashes = list(c.event_hashes)
    if change == "header":  # another block than the signed digest names
        c = dataclasses.replace(c, header=dataclasses.replace(c.header, time_ms=c.header.time_ms + 1))
    elif change == "count":
        c = dataclasses.replace(c, event_hashes=tuple(hashes[:-1]))
    elif change == "hashes":  # same count, other events: the Merkle root differs
        c = dataclasses.replace(c, event_hashes=(sha256(b"other"), *hashes[1:]))
    else:
        c = dataclasses.replace(c, prefilled=(*raws, raws[0]))
    with pytest.raises(ProtocolError) as exc:
        decode(c.encode())
    assert exc.value.field in ("header", "event_hashes", "prefilled")
    node.close()


# --------------------------------------------------------------------------- a backup rebuilding it


async def test_a_backup_rebuilds_the_block_from_gossip_without_asking(tmp_path: Path) -> None:
    node, raws, pp = _pp(tmp_path)
    # 4 events verified already, 4 waiting in the gossip backlog, 3 being verified, 1 prefilled
    await node.submit(raws[:4], from_peer=True)
    node.known.incoming.update((sha256(r), r) for r in raws[4:8])
    job = Verifying({sha256(r): r for r in raws[8:11]})
    for r in raws[8:11]:
        node.known.verifying[sha256(r)] = job
    full = node.inbox.expand(CompactPrePrepareMsg.of(pp, prefilled=(raws[11],)), PRIMARY)
    assert full is not None and full.encode() == pp.encode()
    assert node.counters["preprepare_compact"] == 1 and node.counters["preprepare_prefilled"] == 1
    assert node.counters["preprepare_events_fetched"] == 0
    node.close()


async def test_a_backup_asks_the_sender_for_missing_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    node, raws, pp = _pp(tmp_path)
    await node.submit(raws[:5], from_peer=True)
    asked: list[tuple[bytes, ...]] = []

    async def request(peer: bytes, data: bytes, *, timeout_s: float) -> bytes:
        req = decode(data)
        assert isinstance(req, EventsRequest) and peer == PRIMARY
        asked.append(req.hashes)
        by_hash = {sha256(r): r for r in raws}
        return EventsResponse(events=tuple(by_hash[h] for h in req.hashes)).encode()

    monkeypatch.setattr(node.transport, "request", request)
    async with trio.open_nursery() as nursery:
        node.inbox.nursery = nursery
        assert node.inbox.expand(CompactPrePrepareMsg.of(pp), PRIMARY) is None  # 7 missing: asked for
        with trio.fail_after(10):
            item = await node.inputs.recv.receive()
            while isinstance(item, Nudge):  # (the gossip intake's)
                item = await node.inputs.recv.receive()
    assert isinstance(item, PeerMessage)
    msg, sender = item.msg, item.sender
    assert sender == PRIMARY and msg.encode() == pp.encode()
    assert asked == [tuple(sha256(r) for r in raws[5:])]
    assert node.counters["preprepare_events_fetched"] == 7 and node.counters["preprepare_dropped"] == 0
    assert node.inbox.expanding == {}
    # the fetched events' signatures were checked (once) before the replica got the block
    assert node.counters["verified_preprepare"] == 7
    node.close()


@pytest.mark.parametrize("answer", ["partial", "timeout", "garbage"])
async def test_a_compact_preprepare_whose_events_do_not_come_is_dropped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: str) -> None:
    node, raws, pp = _pp(tmp_path)

    async def request(peer: bytes, data: bytes, *, timeout_s: float) -> bytes:
        if answer == "timeout":
            raise RequestTimeout("no answer")
        if answer == "garbage":
            return b"\x93not an answer"
        return EventsResponse(events=tuple(raws[:3])).encode()  # and an event not asked for: ignored

    monkeypatch.setattr(node.transport, "request", request)
    async with trio.open_nursery() as nursery:
        node.inbox.nursery = nursery
        assert node.inbox.expand(CompactPrePrepareMsg.of(pp, prefilled=(raws[5],)), PRIMARY) is None
        with trio.fail_after(10):
            while node.inbox.expanding:
                await trio.sleep(0.01)
    assert node.counters["preprepare_dropped"] == 1
    with pytest.raises(trio.WouldBlock):
        node.inputs.recv.receive_nowait()  # nothing reached the replica (nothing was submitted)
    node.close()


async def test_a_peer_gets_a_bounded_number_of_compact_preprepares_waiting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    node, _, pp = _pp(tmp_path)
    release = trio.Event()

    async def request(peer: bytes, data: bytes, *, timeout_s: float) -> bytes:
        await release.wait()
        return EventsResponse(events=()).encode()

    monkeypatch.setattr(node.transport, "request", request)
    c = CompactPrePrepareMsg.of(pp)
    async with trio.open_nursery() as nursery:
        node.inbox.nursery = nursery
        for _ in range(peer_inbox.COMPACT_WAITING_MAX + 3):
            assert node.inbox.expand(c, PRIMARY) is None
        assert node.inbox.expanding == {PRIMARY: peer_inbox.COMPACT_WAITING_MAX}
        assert node.counters["preprepare_dropped"] == 3
        release.set()
    assert node.inbox.expanding == {}
    node.close()


async def test_a_node_answers_an_events_request_from_its_preprepared_blocks_and_caches(tmp_path: Path) -> None:
    node, raws, _ = _pp(tmp_path)
    await node.submit(raws[:2], from_peer=True)
    hashes = tuple(sha256(r) for r in raws[:3])  # the third it does not have
    resp = decode(await node.catchup.on_request(PRIMARY, EventsRequest(hashes=hashes).encode()))
    assert isinstance(resp, EventsResponse) and sorted(resp.events) == sorted(raws[:2])
    with pytest.raises(ProtocolError):
        await node.catchup.on_request(PRIMARY, EventsResponse(events=()).encode())  # not a request
    node.close()


# --------------------------------------------------------------------------- a cluster


async def test_a_cluster_commits_with_compact_preprepares(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path) as (nodes, _):
        raws = [product_event(n).encode() for n in range(1, 301)]
        for i in range(0, 300, 50):
            out = await nodes[1].submit(raws[i : i + 50])
            assert all(o.status == "accepted" for o in out)
        ids = [product_event(n).id for n in (1, 150, 300)]
        await wait_for(lambda: all(n.ledger.has_outcome(e) for n in nodes for e in ids))
        primary = next(n for n in nodes if n.replica.is_primary)
        backups = [n for n in nodes if n is not primary]
        assert all(b.counters["preprepare_compact"] > 0 for b in backups)
        assert primary.counters["preprepare_compact"] == 0
        assert all(b.counters["preprepare_dropped"] == 0 for b in backups)
        # each backup got the events by gossip, and checked each signature once
        for b in backups:
            c = b.counters
            assert c["verified_gossip"] + c["verified_preprepare"] + c["verified_api"] <= 300, c
        # compared at one height: a node may already have executed the next (empty) block
        height = min(n.ledger.height for n in nodes)
        assert len({n.ledger.root_at(height) for n in nodes}) == 1
