"""The one-pass tree rebuild of a fetched snapshot (`snapshot.rebuild_tree`) gives the
root and exactly the nodes of the ledger's sparse Merkle tree (`protocol.smt`) over the
same values, whatever their number and however close their paths."""

from __future__ import annotations

import hashlib
import random

import pytest

from afterchain.node.runtime.snapshot import SnapshotError, rebuild_tree
from afterchain.protocol import state_keys as K
from afterchain.protocol.smt import EMPTY_ROOT, MemoryNodeStore, SparseMerkleTree


def _records(items: dict[bytes, bytes]) -> list[bytes]:
    sha = hashlib.sha256
    return sorted(sha(k).digest() + sha(v).digest() for k, v in items.items())


def _both(items: dict[bytes, bytes], batch: int = 7) -> tuple[bytes, dict[bytes, bytes], bytes, dict[bytes, bytes]]:
    store = MemoryNodeStore()
    want = SparseMerkleTree(store).update(items)
    got_nodes: dict[bytes, bytes] = {}
    calls: list[int] = []

    def emit(nodes: dict[bytes, bytes]) -> None:
        calls.append(len(nodes))
        got_nodes.update(nodes)

    got = rebuild_tree(_records(items), emit, batch=batch)
    assert all(c <= batch + 600 for c in calls) and (len(calls) > 1 or len(items) < batch)
    return want, {K.smt_node(h): enc for h, enc in store.nodes.items()}, got, got_nodes


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 17, 100, 1000, 5000])
def test_same_root_and_nodes_as_the_ledgers_tree(n: int) -> None:
    rng = random.Random(n)
    items = {rng.randbytes(rng.randrange(1, 40)): rng.randbytes(rng.randrange(0, 60)) for _ in range(n)}
    want, want_nodes, got, got_nodes = _both(items)
    assert got == want
    assert got_nodes == want_nodes  # every node (leaves, branch points, one-child chains) and no other
    if n == 0:
        assert got == EMPTY_ROOT


def test_paths_sharing_long_prefixes() -> None:
    """Keys picked so that their paths share 10-16 leading bits: chains of one-child inner
    nodes above the branch points."""
    rng = random.Random(7)
    by_prefix: dict[int, list[bytes]] = {}
    while sum(len(v) >= 3 for v in by_prefix.values()) < 4:
        k = rng.randbytes(8)
        by_prefix.setdefault(int.from_bytes(hashlib.sha256(k).digest()[:2], "big") >> 2, []).append(k)
    keys = [k for v in by_prefix.values() if len(v) >= 3 for k in v]
    items = {k: b"v" + k for k in keys}
    want, want_nodes, got, got_nodes = _both(items, batch=1000)
    assert got == want and got_nodes == want_nodes


def test_a_changed_value_changes_the_root() -> None:
    items = {bytes([i]): bytes([i]) * 3 for i in range(50)}
    root = rebuild_tree(_records(items))
    items[b"\x07"] = b"other"
    assert rebuild_tree(_records(items)) != root


def test_unsorted_or_repeated_paths_are_refused() -> None:
    recs = _records({b"a": b"1", b"b": b"2", b"c": b"3"})
    with pytest.raises(SnapshotError, match="not sorted"):
        rebuild_tree([recs[1], recs[0], recs[2]])
    with pytest.raises(SnapshotError, match="not sorted"):
        rebuild_tree([recs[0], recs[0]])
