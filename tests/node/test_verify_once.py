"""Each event's signature is checked once per node, also when its gossip copy and the
pre-prepare that carries it arrive at the same moment (the two checks used to race:
backups checked ~1.25 signatures per committed event in `bench cluster`)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import trio

from afterchain.consensus.messages import ConsensusMessage
from afterchain.node.bench import intake
from afterchain.node.runtime import clock
from afterchain.protocol.codec import decode_as, sha256

N = 300


async def _race(tmp_path: Path, raws: list[bytes]) -> tuple[Any, Any, list[Any]]:
    """Gossip `raws` to a backup and, while their signatures are being checked on a worker
    thread, hand it a pre-prepare of the same events."""
    node = intake._node(tmp_path, 1)
    data, _ = intake._preprepare(node, raws, 1, clock.wall_ms())  # proposed now (backups check block time)
    block = decode_as(ConsensusMessage, data, max_bytes=64 << 20).block
    outcomes: list[Any] = []

    async def gossip() -> None:
        outcomes.extend(await node.submit(list(raws), from_peer=True))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(gossip)
        await trio.sleep(0)  # the gossip batch is on its worker thread now
        nursery.start_soon(node.known.preverify, block)
    return node, block, outcomes


async def test_gossip_and_preprepare_at_once_check_each_signature_once(tmp_path: Path) -> None:
    node, block, outcomes = await _race(tmp_path, intake._events(N))
    c = node.counters
    assert c["verified_gossip"] + c["verified_preprepare"] == N, c
    assert c["verified_gossip"] == N  # the pre-prepare waited for the gossip batch's checks
    assert [o.status for o in outcomes] == ["accepted"] * N
    # and the block's events are all known verified: verify_payload checks nothing again
    assert node.app.verify_payload(block).reason == ""
    assert c["verified_payload"] == 0
    node.close()


async def test_a_bad_signature_is_refused_on_both_paths(tmp_path: Path) -> None:
    raws = intake._events(20)
    bad = bytearray(raws[5])
    bad[-1] ^= 1  # flip a bit of the signature
    raws[5] = bytes(bad)
    node, block, outcomes = await _race(tmp_path, raws)
    assert outcomes[5].status == "rejected" and "signature" in outcomes[5].code
    assert sum(o.status == "accepted" for o in outcomes) == 19
    res = node.app.verify_payload(block)
    assert res.reason.startswith("event ") and "signature" in res.reason
    node.close()


async def test_a_waiter_checks_itself_when_the_check_it_waited_for_is_cancelled(
        tmp_path: Path, monkeypatch: Any) -> None:
    from afterchain.node.runtime import intake as intake_mod

    raws = intake._events(20)
    node = intake._node(tmp_path, 1)
    items = [(r, sha256(r)) for r in raws]
    real = intake_mod.verify_batch
    calls = 0

    async def first_hangs(batch: Any, chain_id: str) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            await trio.sleep_forever()
        return await real(batch, chain_id)

    monkeypatch.setattr(intake_mod, "verify_batch", first_hangs)
    scopes: list[trio.CancelScope] = []
    got: dict[bytes, Any] = {}

    async def hanging() -> None:
        with trio.CancelScope() as scope:
            scopes.append(scope)
            await node.known.verify_once(items, counter="verified_gossip")

    async def waiter() -> None:
        got.update(await node.known.verify_once(items, counter="verified_preprepare"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(hanging)
        await trio.sleep(0)  # its check is registered and hangs
        nursery.start_soon(waiter)
        await trio.sleep(0)  # the waiter waits for it
        scopes[0].cancel()
    assert len(got) == 20 and all(type(v).__name__ == "SignedEvent" for v in got.values())
    assert node.counters["verified_gossip"] == 20 and node.counters["verified_preprepare"] == 20
    assert node.known.verifying == {}
    node.close()


async def test_what_a_check_passed_is_cached_while_it_still_waits_for_another(
        tmp_path: Path, monkeypatch: Any) -> None:
    """A pre-prepare of events A + B, where A is being checked for gossip: the pre-prepare
    checks B, then waits for A's check. A gossip copy of B arriving in that wait finds B
    verified (it used to find B in neither `verified` nor `_verifying` and check it again)."""
    from afterchain.node.runtime import intake as intake_mod

    raws = intake._events(40)
    a, b = raws[:20], raws[20:]
    node = intake._node(tmp_path, 1)
    real = intake_mod.verify_batch
    release = trio.Event()

    async def a_waits(batch: Any, chain_id: str) -> Any:
        if batch[0] == a[0]:
            await release.wait()
        return await real(batch, chain_id)

    monkeypatch.setattr(intake_mod, "verify_batch", a_waits)
    both = [(r, sha256(r)) for r in raws]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(node.submit, list(a), None)  # A's gossip check: hangs until released
        await trio.sleep(0)
        nursery.start_soon(functools.partial(node.known.verify_once, both, counter="verified_preprepare"))  # B; waits for A
        for _ in range(200):  # until B's check is done (a worker thread)
            if all(sha256(r) in node.known.verified for r in b):
                break
            await trio.sleep(0.01)
        outcomes = await node.submit(list(b), from_peer=True)  # B's gossip copy, meanwhile
        release.set()
    c = node.counters
    assert [o.status for o in outcomes] == ["accepted"] * 20
    assert c["verified_gossip"] == 0, c  # B was not checked again
    assert c["verified_preprepare"] == 20 and c["verified_api"] == 20, c
    assert node.known.verifying == {}
    node.close()
