"""Events behind a nonce gap (found by the soak: a retailer's product registrations were
refused at intake, each refusal left a gap, its trace records waited behind the gaps until
the mempools held 3 x the intake limit of them, and then every node refused everyone's
events). Gapped events are bounded apart, never shut the API, give way to proposable
events, and the account route points a client at the gap."""

from __future__ import annotations

from pathlib import Path

import httpx

from afterchain.node.http.app import build_app
from afterchain.node.http.service import NodeHttp
from afterchain.node.runtime.mempool import Mempool
from afterchain.protocol.events import SignedEvent

from .util import ACME, k, memory_cluster, product_event


def _mempool(nonces: dict[bytes, int] | None = None, **kw: int) -> Mempool:
    nonces = {} if nonces is None else nonces
    opts = {"max_events": 100, "max_bytes": 1 << 20, "per_sender_quota": 50} | kw
    return Mempool(expected_nonce=lambda sender: nonces.get(sender, 0) + 1, **opts)  # type: ignore[arg-type]


def _admit(mp: Mempool, *events: SignedEvent) -> list[tuple[str, str | None]]:
    return [(o.status, o.code) for o in mp.admit([(e.encode(), e) for e in events])]


def test_gapped_events_are_bounded_per_sender_and_counted() -> None:
    mp = _mempool(max_gapped_per_sender=3)
    assert _admit(mp, product_event(1)) == [("accepted", "")]
    assert mp.first_free_nonce(ACME.public) == 2 and mp.gapped() == 0
    assert _admit(mp, *(product_event(n) for n in (4, 5, 6, 7))) == [("accepted", "")] * 3 + [("rejected", "nonce.gap")]
    assert mp.gapped() == 3 and mp.ready_count(100) == 1
    out = mp.admit([(product_event(9).encode(), product_event(9))])
    assert "next free nonce 2" in (out[0].message or "")
    # nonce 2 is proposable; 3 fills the gap: 4..6 join the run, and the sender may go on
    assert _admit(mp, product_event(2), product_event(3)) == [("accepted", "")] * 2
    assert mp.gapped() == 0 and mp.ready_count(100) == 6 and mp.first_free_nonce(ACME.public) == 7
    assert _admit(mp, product_event(7)) == [("accepted", "")]


def test_the_bound_on_all_gapped_events_spares_proposable_ones() -> None:
    mp = _mempool(max_gapped_events=2)
    a, b = k("a"), k("b")
    assert _admit(mp, product_event(3, key=a), product_event(3, key=b)) == [("accepted", "")] * 2
    assert _admit(mp, product_event(5, key=a)) == [("rejected", "nonce.gap")]
    assert _admit(mp, product_event(1, key=a), product_event(1, key=b)) == [("accepted", "")] * 2
    assert mp.gapped() == 2


def test_a_full_mempool_evicts_gapped_events_for_a_proposable_one() -> None:
    nonces: dict[bytes, int] = {}
    mp = _mempool(nonces, max_events=5)
    a, b = k("a"), k("b")
    gapped = [product_event(n, key=a) for n in (2, 3, 4, 5)]  # a's nonce 1 never came
    assert _admit(mp, *gapped, product_event(1, key=b)) == [("accepted", "")] * 5
    # full: another gapped event is refused; b's next (proposable) event takes a's highest nonce's place
    assert _admit(mp, product_event(6, key=a)) == [("rejected", "mempool.full")]
    assert _admit(mp, product_event(2, key=b)) == [("accepted", "")]
    evicted = mp.take_evicted()
    assert [(e[0], e[1]) for e in evicted] == [(gapped[-1].id, "mempool.evicted")]
    assert "next free nonce is 1" in evicted[0][2]
    assert gapped[-1].id not in mp and mp.take_evicted() == []
    # with nothing gapped left to give, a full mempool refuses
    assert _admit(mp, *(product_event(n, key=b) for n in (3, 4, 5, 6))) == [("accepted", "")] * 3 + [
        ("rejected", "mempool.full")]
    assert mp.gapped() == 0 and len(mp) == 5 and mp.take_evicted()[-1][0] == gapped[0].id


def test_an_event_the_stateful_check_refuses_evicts_nothing() -> None:
    """Eviction makes room only for an event that will be admitted: a ready event that the
    stateful check refuses leaves the gapped events in place."""
    a, b, c = k("a"), k("b"), k("c")
    refuse = {c.public}
    mp = Mempool(max_events=3, max_bytes=1 << 20, per_sender_quota=50, expected_nonce=lambda _s: 1,
                 stateful_check=lambda e: ("member.unknown", "no such member") if e.event.sender in refuse else None)
    gapped = [product_event(n, key=a) for n in (2, 3)]
    assert _admit(mp, *gapped, product_event(1, key=b)) == [("accepted", "")] * 3
    assert _admit(mp, product_event(1, key=c)) == [("rejected", "member.unknown")]
    assert mp.take_evicted() == [] and all(e.id in mp for e in gapped)
    refuse.clear()
    assert _admit(mp, product_event(1, key=c)) == [("accepted", "")]
    assert [e[0] for e in mp.take_evicted()] == [gapped[-1].id]


def test_the_first_free_nonce_follows_commits() -> None:
    nonces: dict[bytes, int] = {}
    mp = _mempool(nonces)
    a = k("a")
    assert _admit(mp, product_event(2, key=a), product_event(3, key=a)) == [("accepted", "")] * 2
    assert mp.first_free_nonce(a.public) == 1 and mp.ready_count(100) == 0 and mp.select(10, 1 << 20) == []
    nonces[a.public] = 1  # its nonce 1 committed through another node's proposal
    mp.on_commit(1, [], [a.public])
    assert mp.first_free_nonce(a.public) == 4 and mp.gapped() == 0
    assert mp.select(10, 1 << 20) == [product_event(n, key=a).encode() for n in (2, 3)]


async def test_gapped_events_do_not_shut_the_api_and_the_account_points_at_the_gap(tmp_path: Path) -> None:
    # one node of four: no quorum, nothing commits, the mempool only grows
    async with memory_cluster(tmp_path, n=1, intake_limit_events=2) as (nodes, _net):
        node = nodes[0]
        # 3 x the intake limit of events behind ACME's gap at nonce 1 (a refused event's nonce)
        out = await node.submit([product_event(n).encode() for n in range(2, 10)])
        assert [o.status for o in out] == ["accepted"] * 8
        assert len(node.mempool) == 8 and node.mempool.gapped() == 8
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(NodeHttp(node))),
                                     base_url="http://n") as c:
            r = await c.get(f"/v1/accounts/{ACME.public.hex()}")
            assert r.json()["next_nonce"] == 1  # the gap (it said 10: the client signed on past the gap)
            # the event that fills the gap is accepted (it was refused: 8 >= 3 x 2 pending)
            out = await node.submit([product_event(1).encode()])
            assert [o.status for o in out] == ["accepted"]
            r = await c.get(f"/v1/accounts/{ACME.public.hex()}")
            assert r.json()["next_nonce"] == 10 and node.mempool.ready_count(100) == 9


def test_regossip_forgets_arrivals_of_events_that_left_without_committing() -> None:
    """An event dropped with a reason (superseded, evicted) is never committed, so the
    executor never pops its arrival time: the re-gossip pass forgets it (it grew for ever)."""
    from afterchain.node.runtime.gossip import REGOSSIP_AFTER_S, Gossip, GossipQueue

    mp = _mempool()
    kept, gone = product_event(1), product_event(5, key=k("b"))
    _admit(mp, kept)
    arrival = {kept.id: 0.0, gone.id: 0.0}
    queue = GossipQueue()
    g = Gossip(transport=None, queue=queue, mempool=mp, arrival=arrival,  # type: ignore[arg-type]
               offer=lambda _s, _r: None, metrics=None, log=None)  # type: ignore[arg-type]
    g.regossip_stale(REGOSSIP_AFTER_S + 1)
    assert arrival == {kept.id: REGOSSIP_AFTER_S + 1}
    assert queue.take_batch() == [kept.encode()]
