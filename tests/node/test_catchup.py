"""Catch-up of a node that was down (issue 10): served from stored bytes, fetched in
pipelined ranges, stored in one synced batch per answer, executed to the same state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from afterchain.consensus.messages import BlockResponse, CertifiedBlock
from afterchain.node.runtime.catchup import block_response_bytes
from afterchain.node.runtime.runner import Node, NodeOptions
from tests.node.util import VALIDATORS, genesis, memory_cluster, product_event, wait_for


async def test_stopped_node_catches_up_and_serving_is_canonical(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path, n=3) as (nodes, net):
        evs = [product_event(i + 1) for i in range(400)]
        for i in range(0, len(evs), 50):
            before = nodes[0].store.head
            await nodes[0].submit([e.encode() for e in evs[i : i + 50]])
            # several blocks, whatever the machine's speed: each batch waits for a new block
            # (a fixed pause gave 3 blocks in a loaded full-suite run)
            await wait_for(lambda before=before: nodes[0].store.head > before, timeout=30)
        ids = {e.id for e in evs}
        await wait_for(lambda: all(nodes[0].ledger.event_outcome(i) is not None for i in ids), timeout=60)
        head = nodes[0].store.head
        assert head >= 4

        # serving splices stored bytes: the same bytes as encoding the decoded blocks
        store = nodes[0].store
        want = BlockResponse(blocks=tuple(CertifiedBlock(block=store.block(h), certificate=store.certificate(h))  # type: ignore[arg-type]
                                          for h in range(2, head + 1)))
        got = block_response_bytes(store, 2, head + 10)
        assert got == want.encode()
        assert BlockResponse.decode(got, max_bytes=64 << 20) == want
        assert BlockResponse.decode(block_response_bytes(store, head + 1, 5)).blocks == ()

        # the fourth validator starts now, with nothing, and catches up by fetching
        late = Node(key=VALIDATORS[3], genesis=genesis(), data_dir=tmp_path / "n3", transport=net.add(VALIDATORS[3].public),
                    options=NodeOptions(name="n3", tick_ms=20))
        # the ledger syncs its write once per fetched answer: at the last block of each run
        syncs: list[bool] = []
        apply_block = late.ledger.apply_block

        def recording(*args: Any, sync: bool = True, **kwargs: Any) -> Any:
            syncs.append(sync)
            return apply_block(*args, sync=sync, **kwargs)

        late.ledger.apply_block = recording  # type: ignore[method-assign]
        async with trio.open_nursery() as nursery:
            await nursery.start(late.run)
            await wait_for(lambda: late.ledger.height >= head, timeout=60)
            await wait_for(lambda: syncs[-1], timeout=10)  # (the run that reached `head` ends synced)
            assert False in syncs, "a fetched answer of several blocks is synced once"
            assert late.ledger.root_at(head) == nodes[0].ledger.root_at(head)
            assert [late.store.block(h).header.hash() for h in range(1, head + 1)] == \
                [nodes[0].store.block(h).header.hash() for h in range(1, head + 1)]  # type: ignore[union-attr]
            assert late.replica.fetch_count >= 1  # it fetched (it had no window to vote in)
            nursery.cancel_scope.cancel()


async def test_a_peer_greets_a_node_that_connects_with_its_status(tmp_path: Path) -> None:
    """A node that comes up gets its peers' STATUS as soon as their links open
    (`Replica.greet`), not at their next retransmission: each peer greets it once, and with
    the peers' retransmissions switched off it still catches up."""
    async with memory_cluster(tmp_path, n=3) as (nodes, net):
        evs = [product_event(i + 1) for i in range(60)]
        await nodes[0].submit([e.encode() for e in evs])
        await wait_for(lambda: all(n.ledger.height >= 1 and n.store.head == nodes[0].store.head for n in nodes), timeout=30)
        await wait_for(lambda: all(nodes[0].ledger.event_outcome(e.id) is not None for e in evs), timeout=30)
        head = nodes[0].store.head
        greeted: list[bytes] = []
        for node in nodes:
            node.replica._retransmit = lambda: None  # type: ignore[method-assign]  # no periodic STATUS, commit or checkpoint
            greet = node.replica.greet

            def recording(peer: bytes, greet: Any = greet) -> None:
                greeted.append(peer)
                greet(peer)

            node.replica.greet = recording  # type: ignore[method-assign]
        late = Node(key=VALIDATORS[3], genesis=genesis(), data_dir=tmp_path / "n3", transport=net.add(VALIDATORS[3].public),
                    options=NodeOptions(name="n3", tick_ms=20))
        async with trio.open_nursery() as nursery:
            await nursery.start(late.run)
            await wait_for(lambda: late.ledger.height >= head, timeout=30)
            assert late.ledger.root_at(head) == nodes[0].ledger.root_at(head)
            # each of the three greeted the newcomer once (its link opened once)
            assert greeted.count(VALIDATORS[3].public) == 3
            nursery.cancel_scope.cancel()
