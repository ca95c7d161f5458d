"""The mempool's side of censorship resistance (issue 28): oldest-first selection across
senders, and the held / released request digests it hands the replica's request timers."""

from __future__ import annotations

from afterchain.node.runtime.mempool import Mempool
from afterchain.protocol.codec import sha256
from afterchain.protocol.events import SignedEvent

from .util import k, product_event


def _mempool(nonces: dict[bytes, int]) -> Mempool:
    return Mempool(max_events=100, max_bytes=1 << 20, per_sender_quota=50,
                   expected_nonce=lambda sender: nonces.get(sender, 0) + 1)


def _admit(mp: Mempool, *events: SignedEvent) -> None:
    assert all(o.status == "accepted" for o in mp.admit([(e.encode(), e) for e in events]))


def test_select_takes_the_oldest_events_first_across_senders() -> None:
    """A busy sender admitted first cannot starve one that arrived later: each sender's next
    event competes by its admission order."""
    mp = _mempool({})
    busy, quiet = k("busy"), k("quiet")
    _admit(mp, *(product_event(n, key=busy) for n in (1, 2, 3)))
    _admit(mp, product_event(1, key=quiet))
    _admit(mp, *(product_event(n, key=busy) for n in (4, 5, 6)))
    first = mp.select(4, 1 << 20)
    assert product_event(1, key=quiet).encode() in first  # the old insertion order gave busy 1..4
    assert first == [product_event(n, key=busy).encode() for n in (1, 2, 3)] + [product_event(1, key=quiet).encode()]


def test_held_digests_follow_the_proposable_run_and_are_released() -> None:
    nonces: dict[bytes, int] = {}
    mp = _mempool(nonces)
    a = k("a")
    e1, e2, e4 = (product_event(n, key=a) for n in (1, 2, 4))
    _admit(mp, e1, e2, e4)
    hold, release = mp.take_timer_changes()
    # nonce 4 waits behind the gap at 3: no primary could propose it, so it is not held
    assert hold == [sha256(e1.encode()), sha256(e2.encode())] and release == []
    e3 = product_event(3, key=a)
    _admit(mp, e3)
    assert mp.take_timer_changes() == ([sha256(e3.encode()), sha256(e4.encode())], [])
    assert mp.raw_by_digest([sha256(e4.encode())]) == [e4.encode()]
    # commit 1 and 2: their digests are released; nothing is held twice
    nonces[a.public] = 2
    mp.on_commit(1, [e1.id, e2.id], [a.public])
    hold, release = mp.take_timer_changes()
    assert hold == [] and sorted(release) == sorted([sha256(e1.encode()), sha256(e2.encode())])
    # an event superseded by a commit elsewhere (nonce 3 and 4 used by other events) is released too
    nonces[a.public] = 4
    dropped = mp.on_commit(2, [], [a.public])
    assert {d[1] for d in dropped} == {"nonce.superseded"}
    assert sorted(mp.take_timer_changes()[1]) == sorted([sha256(e3.encode()), sha256(e4.encode())])


def test_an_event_made_proposable_by_a_commit_elsewhere_is_held() -> None:
    """Nonce 2 waits for nonce 1; nonce 1 commits through another node: 2 becomes held."""
    nonces: dict[bytes, int] = {}
    mp = _mempool(nonces)
    a = k("a")
    e2 = product_event(2, key=a)
    _admit(mp, e2)
    assert mp.take_timer_changes() == ([], [])
    nonces[a.public] = 1
    mp.on_commit(1, [], [a.public])
    assert mp.take_timer_changes() == ([sha256(e2.encode())], [])
