"""Four nodes in one trio process over the in-memory transport: events in, the same
blocks and state roots everywhere; a crashed primary is replaced by a view change."""

from __future__ import annotations

from pathlib import Path

import trio

from afterchain.node.runtime.runner import Node, NodeOptions
from afterchain.node.tools.genesis import MemberSpec, build_genesis
from afterchain.node.transport.memory import MemoryNetwork
from afterchain.protocol import bodies as B
from afterchain.protocol.crypto import KeyPair
from afterchain.protocol.events import Event, SignedEvent, sign_event

CHAIN = "mem-chain"
T0 = 1_700_000_000_000


def k(name: str) -> KeyPair:
    return KeyPair.from_seed(name.encode().ljust(32, b"\0")[:32])


VALIDATORS = [k(f"val{i}") for i in range(4)]
ACME = k("acme")


def genesis():  # type: ignore[no-untyped-def]
    return build_genesis(
        chain_id=CHAIN, genesis_time_ms=T0, validators=[v.public for v in VALIDATORS],
        members=[MemberSpec("acme", "Acme", ("manufacturer",), (ACME.public,), 1000)],
    )


def product_events(n: int, start_nonce: int = 1) -> list[SignedEvent]:
    out = []
    for i in range(n):
        body = B.ProductRegister(gtin="00012345600012", serial=f"SN{start_nonce + i:06d}", model="M1", batch="B1",
                                 production_time_ms=T0)
        ev = Event(chain_id=CHAIN, type=body.EVENT_TYPE, sender=ACME.public, nonce=start_nonce + i, time_ms=T0, body=body)
        out.append(sign_event(ACME, ev))
    return out


async def wait_for(cond, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    with trio.fail_after(timeout):
        while not cond():
            await trio.sleep(0.02)


async def test_four_nodes_agree_and_survive_a_primary_crash(tmp_path: Path) -> None:
    g = genesis()
    net = MemoryNetwork()
    nodes = [
        Node(key=v, genesis=g, data_dir=tmp_path / f"n{i}", transport=net.add(v.public),
             options=NodeOptions(name=f"n{i}", tick_ms=20))
        for i, v in enumerate(VALIDATORS)
    ]
    async with trio.open_nursery() as nursery:
        scopes = []
        for n in nodes:
            scope = trio.CancelScope()
            scopes.append(scope)

            async def run(n: Node = n, scope: trio.CancelScope = scope, *, task_status=trio.TASK_STATUS_IGNORED) -> None:  # type: ignore[no-untyped-def]
                with scope:
                    await n.run(task_status=task_status)

            await nursery.start(run)
        evs = product_events(300)
        outcomes = await nodes[1].submit([e.encode() for e in evs])
        assert all(o.status == "accepted" for o in outcomes), outcomes[:3]
        ids = {e.id for e in evs}
        await wait_for(lambda: all(all(n.ledger.event_outcome(i) is not None for i in ids) for n in nodes))
        assert all(n.ledger.event_outcome(next(iter(ids))).accepted for n in nodes)  # type: ignore[union-attr]
        await wait_for(lambda: len({n.ledger.height for n in nodes}) == 1)
        h = min(n.store.head for n in nodes)
        assert len({n.store.block(h).header.hash() for n in nodes}) == 1  # type: ignore[union-attr]
        assert len({n.ledger.root_at(h) for n in nodes}) == 1

        # crash the primary of view 0 (validator 0): the others change view and go on
        primary = nodes[0]
        assert primary.replica.is_primary
        net.isolate(primary.key.public)
        scopes[0].cancel()
        more = product_events(50, start_nonce=301)
        await nodes[2].submit([e.encode() for e in more])
        more_ids = {e.id for e in more}
        live = nodes[1:]
        await wait_for(lambda: all(all(n.ledger.event_outcome(i) is not None for i in more_ids) for n in live), timeout=40)
        assert all(n.replica.view >= 1 for n in live)
        await wait_for(lambda: len({n.ledger.height for n in live}) == 1)
        h = min(n.store.head for n in live)
        assert len({n.store.block(h).header.hash() for n in live}) == 1  # type: ignore[union-attr]
        assert len({n.ledger.state_root for n in live}) == 1
        # no event is in two blocks (a new primary must not re-propose what a NEW-VIEW re-issued)
        seen: set[bytes] = set()
        for height in range(1, h + 1):
            for raw in live[0].store.block(height).events:  # type: ignore[union-attr]
                assert raw not in seen, f"an event is in two blocks (again at height {height})"
                seen.add(raw)
        nursery.cancel_scope.cancel()
