"""The peer allowlist follows the chain: validators plus registered member node keys
(`Node._sync_peers`); a removed member node key is dropped and its connections closed."""

from __future__ import annotations

from pathlib import Path

import trio

from afterchain.protocol import bodies as B
from afterchain.protocol.events import Event, SignedEvent, sign_event
from afterchain.protocol.types import PublicKey

from .util import ACME, CHAIN, T0, VALIDATORS, k, memory_cluster, wait_for

MEMBER = k("acme-node-1")


def acme(body: B.NodeRegister | B.NodeRemove, nonce: int) -> SignedEvent:
    return sign_event(ACME, Event(chain_id=CHAIN, type=body.EVENT_TYPE, sender=ACME.public, nonce=nonce, time_ms=T0,
                                  body=body))


async def test_registered_member_node_joins_and_a_removed_one_is_cut_off(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path) as (nodes, net):
        member = net.add(MEMBER.public)  # the member node's endpoint (its runtime is not needed here)
        async with trio.open_nursery() as nursery:
            await nursery.start(member.run)
            validators = {v.public for v in VALIDATORS}
            assert all(n._chain_peers == validators for n in nodes)

            reg = acme(B.NodeRegister(keys=(PublicKey(MEMBER.public),)), 1)
            assert [o.status for o in await nodes[0].submit([reg.encode()])] == ["accepted"]
            await wait_for(lambda: all(n.ledger.has_outcome(reg.id) for n in nodes))
            # recomputed as the block committed, not at the next checkpoint
            assert all(n._chain_peers == validators | {MEMBER.public} for n in nodes)
            assert all(n.ledger.node_keys()[0][0] == MEMBER.public for n in nodes)
            assert member.connected_peers() == validators
            sub = nodes[1].transport.subscribe("member-test")
            await member.broadcast("member-test", b"hello")
            assert await sub.receive() == (MEMBER.public, b"hello")

            rm = acme(B.NodeRemove(keys=(PublicKey(MEMBER.public),)), 2)
            assert [o.status for o in await nodes[2].submit([rm.encode()])] == ["accepted"]
            await wait_for(lambda: all(n.ledger.has_outcome(rm.id) for n in nodes))
            assert all(n._chain_peers == validators for n in nodes)
            assert all(n.transport.refuses(MEMBER.public) for n in nodes)  # type: ignore[attr-defined]
            assert member.connected_peers() == set()
            assert all(MEMBER.public not in n.transport.connected_peers() for n in nodes)
            dropped = member.stats.dropped_not_connected
            await member.broadcast("member-test", b"still here?")
            assert member.stats.dropped_not_connected == dropped + len(nodes)  # every validator refuses it
            assert sub.statistics().current_buffer_used == 0
            # the validators still reach each other
            assert nodes[0].transport.connected_peers() == validators - {nodes[0].key.public}
            nursery.cancel_scope.cancel()
