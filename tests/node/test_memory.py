"""The node's memory bounds (issue 10): glibc malloc tuning and trim, the diagnostics
report, the chain store's bounded block cache, and per-sender mempool state that must not
outlive a sender's pending events."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from afterchain.node.common.rocks import CHAIN_BLOCK_CACHE_BYTES
from afterchain.node.runtime import memory
from afterchain.node.runtime.chain_store import ChainStore
from afterchain.node.runtime.mempool import Mempool
from afterchain.protocol.events import SignedEvent

from .util import k, memory_cluster, product_event, wait_for

glibc_only = pytest.mark.skipif(memory.mallinfo() is None, reason="glibc malloc only")


@glibc_only
def test_malloc_trim_hands_free_heap_pages_back() -> None:
    # 64 MB in 64 KB chunks (malloc'd, under its mmap threshold), every other one freed: the
    # freed half sits inside the heap, resident, until trimmed
    chunks = [bytearray(64 << 10) for _ in range(1024)]
    del chunks[::2]
    before = memory.mallinfo()
    assert before is not None and before["free"] >= 30 << 20
    released = memory.trim()
    assert released >= 16 << 20, released
    del chunks


@glibc_only
def test_tune_malloc_caps_arenas() -> None:
    assert memory.tune_malloc() is True


def test_chain_store_block_cache_is_bounded(tmp_path: Path) -> None:
    store = ChainStore(tmp_path / "chain")
    try:
        cap = store._db.property_int_value("rocksdb.block-cache-capacity")
        assert cap == CHAIN_BLOCK_CACHE_BYTES
    finally:
        store.close()


def test_mempool_forgets_the_cursor_of_a_sender_with_nothing_pending() -> None:
    # under steady load the primary always has a proposal in flight; the per-sender
    # proposal cursor must still go once the sender's events have committed
    nonces: dict[bytes, int] = {}
    mp = Mempool(max_events=100, max_bytes=1 << 20, per_sender_quota=50,
                 expected_nonce=lambda s: nonces.get(s, 0) + 1)
    keys = [k(f"sender{i}") for i in range(20)]
    for i, key in enumerate(keys):
        ev: SignedEvent = product_event(1, key=key)
        mp.admit([(ev.encode(), ev)])
        mp.mark_proposed(i + 1, [ev.id])
        if i:  # the previous proposal commits while this one is in flight
            prev = keys[i - 1]
            nonces[prev.public] = 1
            assert mp.on_commit(i, [product_event(1, key=prev).id], [prev.public]) == []
            assert set(mp._cursor) == {key.public}  # only the in-flight sender keeps one
    assert len(mp) == 1


async def test_memory_report_of_a_running_node(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path, n=4) as (nodes, _net):
        out = await nodes[0].submit([product_event(1).encode()])
        assert out[0].status == "accepted"
        await wait_for(lambda: all(n.ledger.has_outcome(product_event(1).id) for n in nodes))
        report = memory.memory_report(nodes[0])
        json.dumps(report)  # JSON-ready
        assert report["lens"]["verified"] == 0 and report["lens"]["mempool"] == 0
        assert report["rocksdb"]["chain"]["estimate-num-keys"] >= 1
        assert "ledger" in report["rocksdb"]
        if sys.platform == "linux":
            assert report["smaps"]["Rss"] > 0
        # the reporter's lines are JSON, appended where it is told to
        path = tmp_path / "mem" / "n0.jsonl"
        memory.write_report(nodes[0], path, None)
        memory.write_report(nodes[0], path, None)
        rows = path.read_text().splitlines()
        assert len(rows) == 2 and json.loads(rows[1])["height"] >= 1
