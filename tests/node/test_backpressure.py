"""Backpressure and the non-blocking paths of the node (issue 10): the API refuses new
events while enough *ready* events are pending, events behind a nonce gap do not count,
consensus sends are queued per peer (bounded, oldest dropped), and the mempool re-reads
only the nonces a block can have moved."""

from __future__ import annotations

from pathlib import Path

from afterchain.node.runtime.gossip import Outbox
from afterchain.node.runtime.mempool import Mempool
from afterchain.protocol.events import SignedEvent

from .util import ACME, k, memory_cluster, product_event


def _mempool(nonces: dict[bytes, int], reads: list[bytes]) -> Mempool:
    def expected(sender: bytes) -> int:
        reads.append(sender)
        return nonces.get(sender, 0) + 1

    return Mempool(max_events=100, max_bytes=1 << 20, per_sender_quota=50, expected_nonce=expected)


def _items(*events: SignedEvent) -> list[tuple[bytes, SignedEvent]]:
    return [(e.encode(), e) for e in events]


def test_ready_count_stops_at_a_nonce_gap() -> None:
    mp = _mempool({}, [])
    other = k("other")
    assert all(o.status == "accepted" for o in mp.admit(_items(*(product_event(n) for n in (1, 2, 3, 5, 6)))))
    assert all(o.status == "accepted" for o in mp.admit(_items(product_event(2, key=other))))
    assert len(mp) == 6
    assert mp.ready_count(100) == 3  # ACME 1..3; ACME 5, 6 wait for 4; other's 2 waits for 1
    assert mp.ready_count(2) >= 2
    mp.admit(_items(product_event(4)))
    assert mp.ready_count(100) == 6


def test_on_commit_rereads_only_the_blocks_senders() -> None:
    nonces: dict[bytes, int] = {}
    reads: list[bytes] = []
    mp = _mempool(nonces, reads)
    other = k("other")
    mp.admit(_items(product_event(1), product_event(2), product_event(1, key=other)))
    assert len(mp.select(10, 1 << 20)) == 3
    reads.clear()
    mp.select(10, 1 << 20)
    assert reads == []  # cached: no ledger read per select
    e1 = product_event(1)
    nonces[ACME.public] = 1  # the ledger executed ACME's nonce 1
    assert mp.on_commit(1, [e1.id], [ACME.public]) == []
    assert reads == [ACME.public]  # only the block's sender was re-read
    assert e1.id not in mp
    assert mp.ready_count(100) == 2
    # an event of a sender whose nonce the chain has passed is dropped, with a reason
    nonces[ACME.public] = 2
    dropped = mp.on_commit(2, [], [ACME.public])
    assert [d[1] for d in dropped] == ["nonce.superseded"]


def test_outbox_drops_the_oldest_when_full() -> None:
    box = Outbox(3)
    assert [box.put(bytes([i])) for i in range(5)] == [False, False, False, True, True]
    assert list(box.messages) == [b"\x02", b"\x03", b"\x04"]


async def test_api_refuses_while_ready_events_wait_but_not_for_gapped_ones(tmp_path: Path) -> None:
    # one node of four: no quorum, so nothing commits and the mempool only grows
    async with memory_cluster(tmp_path, n=1, intake_limit_events=3) as (nodes, _net):
        node = nodes[0]
        raw = {n: product_event(n).encode() for n in range(1, 8)}
        out = await node.submit([raw[5], raw[6], raw[7]])
        assert [o.status for o in out] == ["accepted"] * 3
        assert node.pending_intake() == 0  # behind the gap at nonce 1..4
        out = await node.submit([raw[1], raw[2], raw[3]])
        assert [o.status for o in out] == ["accepted"] * 3
        assert node.pending_intake() == 3
        out = await node.submit([raw[4]])  # refused before any signature check
        assert [(o.status, o.code) for o in out] == [("rejected", "mempool.full")]
        assert node.counters["intake_refused_events"] == 1
        # peers' gossip is not refused by the intake limit (only by the mempool's bounds)
        out = await node.submit([raw[4]], from_peer=True)
        assert [o.status for o in out] == ["accepted"]
