"""SMT node pruning in the ledger's state store (`node.app.state`): after every block the
store holds exactly the nodes of the roots in the window, however values come back."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from afterchain.node.app.state import State
from afterchain.node.app.store import KV, MemoryKV, RocksKV
from afterchain.protocol import state_keys as K
from afterchain.protocol.smt import EMPTY_HASH, MemoryNodeStore, SparseMerkleTree, verify_smt_proof


def _reachable(get: Any, root: bytes) -> set[bytes]:
    seen: set[bytes] = set()
    stack = [root]
    while stack:
        h = stack.pop()
        if h == EMPTY_HASH or h in seen:
            continue
        enc = get(h)
        assert enc is not None, f"node {h.hex()} of a retained root is missing"
        seen.add(h)
        if enc[0] == 1:
            stack += [enc[1:33], enc[33:65]]
    return seen


def _stored_nodes(kv: KV) -> set[bytes]:
    return {bytes(k[1:]) for k, _ in kv.scan(K.SMT_NODE, bytes([K.SMT_NODE[0] + 1]))}


def _check_window(st: State) -> None:
    """Every node of every root in the window is stored, and no other node is."""
    lo, hi = st.history_window()
    needed: set[bytes] = set()
    for h in range(lo, hi + 1):
        root = st.root_at(h)
        assert root is not None
        needed |= _reachable(lambda x: st.kv.get(K.smt_node(x)), root)
    assert _stored_nodes(st.kv) == needed


def _random_writes(st: State, rng: random.Random, writes: int, keys: int, values: int,
                   p_delete: float = 0.25) -> list[tuple[bytes, int | None]]:
    """`writes` random puts and deletes over keys k0..k{keys-1} (values 0..values-1); returns
    them in order, (key, None) for a delete."""
    done: list[tuple[bytes, int | None]] = []
    for _ in range(writes):
        k = b"k%d" % rng.randrange(keys)
        if rng.random() < p_delete:
            st.delete(k)
            done.append((k, None))
        else:
            v = rng.randrange(values)
            st.put(k, v)
            done.append((k, v))
    return done


def _run(st: State, rng: random.Random, blocks: int, keys: int, values: int, check_every: int = 1) -> dict[bytes, Any]:
    """Random blocks over few keys and few values, so that keys often go back to a value (or
    an absence) they had a few blocks before: the case that brings nodes back."""
    model: dict[bytes, Any] = {}
    history: list[dict[bytes, Any]] = []
    for height in range(1, blocks + 1):
        for k, v in _random_writes(st, rng, rng.randint(0, keys), keys, values):
            if v is None:
                model.pop(k, None)
            else:
                model[k] = v
        st.commit(height, 1000 + height, sync=False)
        history.append(dict(model))
        if height % check_every == 0 or height == blocks:
            _check_window(st)
    # proofs of every key at every height of the window verify against that height's root
    lo, hi = st.history_window()
    for h in range(max(lo, 1), hi + 1):
        for i in range(keys):
            k = b"k%d" % i
            value, proof = st.prove_at(k, h)
            want = history[h - 1].get(k)
            assert (value is None) == (want is None)
            assert verify_smt_proof(st.root_at(h) or b"", k, value, proof)
    return model


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), keep=st.integers(1, 6), keys=st.integers(1, 12), values=st.integers(1, 3))
def test_store_holds_exactly_the_windows_nodes(seed: int, keep: int, keys: int, values: int) -> None:
    st_ = State(MemoryKV(), keep_roots=keep)
    st_.commit(0, 1000, sync=False)
    _run(st_, random.Random(seed), blocks=30, keys=keys, values=values)


def test_a_node_brought_back_survives_the_older_stale_list() -> None:
    """k set to 1, 2, then 1 again: the leaf (k, 1) and the tree above it come back while
    the stale list of the block that replaced them still names them."""
    st_ = State(MemoryKV(), keep_roots=2)
    st_.commit(0, 1000, sync=False)
    st_.put(b"other", 0)
    marked_at = []
    for height, v in enumerate((1, 2, 1, 1, 1, 1), start=1):
        st_.put(b"k", v)
        st_.commit(height, 1000 + height, sync=False)
        _check_window(st_)
        marks = list(st_.kv.scan(K.SMT_REVIVED, bytes([K.SMT_REVIVED[0] + 1])))
        assert len(marks) == len(st_._revived)
        if marks:
            marked_at.append(height)
    # height 3 brings back the nodes of height 1 while the stale list of height 2 (pruned
    # at height 3 with a window of 2) names them; the marks go with the next block
    assert marked_at == [3]
    tree = SparseMerkleTree(MemoryNodeStore())
    assert st_.root == tree.update({b"k": st_.value(b"k"), b"other": st_.value(b"other")})  # type: ignore[dict-item]


def test_pruning_bounds_the_store_and_keeps_the_marks_few() -> None:
    st_ = State(MemoryKV(), keep_roots=4)
    st_.commit(0, 1000, sync=False)
    rng = random.Random(3)
    for height in range(1, 201):
        for _ in range(20):
            st_.put(b"k%d" % rng.randrange(50), rng.randrange(1000))
        st_.commit(height, 1000 + height, sync=False)
    _check_window(st_)
    assert st_.last_block_pruned_nodes > 0
    stale_lists = list(st_.kv.scan(K.SMT_STALE, bytes([K.SMT_STALE[0] + 1])))
    assert len(stale_lists) <= 4


def test_rocksdb_store_prunes_and_reopens(tmp_path: Any) -> None:
    """On RocksDB, and across a restart (the marks are read back from the store)."""
    path = str(tmp_path / "state")
    kv = RocksKV(path, sync=False)
    st_ = State(kv, keep_roots=3)
    st_.commit(0, 1000, sync=False)
    rng = random.Random(5)
    _run(st_, rng, blocks=20, keys=6, values=2)
    marks = dict(st_._revived)
    kv.close()
    kv2 = RocksKV(path, sync=False)
    try:
        st2 = State(kv2, keep_roots=3)
        st2.restore(1000)
        assert st2._revived == marks
        for height in range(21, 41):
            _random_writes(st2, rng, rng.randint(0, 6), keys=6, values=2)
            st2.commit(height, 1000 + height, sync=False)
            _check_window(st2)
    finally:
        kv2.close()


def test_keep_roots_must_be_positive() -> None:
    with pytest.raises(Exception, match="keep_roots"):
        State(MemoryKV(), keep_roots=0)


def test_blocks_written_without_the_records_make_the_store_forget_its_stale_lists() -> None:
    """If older code (no stale lists, no marks) wrote blocks into the store, a node it
    brought back would be unmarked: on opening, the stale lists and marks are dropped (the
    nodes they named stay) and pruning starts over from there."""
    kv = MemoryKV()
    st_ = State(kv, keep_roots=4)
    st_.commit(0, 1000, sync=False)
    rng = random.Random(9)
    _run(st_, rng, blocks=10, keys=5, values=2)
    assert list(kv.scan(K.SMT_STALE, bytes([K.SMT_STALE[0] + 1])))
    kv.write({K.STORE_PRUNED: K.u64(9)})  # as if block 10 had come from older code
    nodes_before = _stored_nodes(kv)
    st2 = State(kv, keep_roots=4)
    st2.restore(1000)
    assert not list(kv.scan(K.SMT_STALE, bytes([K.SMT_STALE[0] + 1])))
    assert not list(kv.scan(K.SMT_REVIVED, bytes([K.SMT_REVIVED[0] + 1])))
    assert _stored_nodes(kv) == nodes_before
    for height in range(11, 25):
        st2.put(b"k%d" % rng.randrange(5), rng.randrange(2))
        st2.commit(height, 1000 + height, sync=False)
    lo, hi = st2.history_window()
    for h in range(lo, hi + 1):
        _reachable(lambda x: kv.get(K.smt_node(x)), st2.root_at(h) or b"")


def test_pruning_off_for_a_while_then_on_again_is_safe() -> None:
    """With prune_nodes=False the store keeps every node and writes no lists, marks or
    `mpruned`; turned on again, the older lists are dropped (a node brought back while it
    was off is unmarked) and every root of the window stays readable."""
    kv = MemoryKV()
    rng = random.Random(11)
    st_ = State(kv, keep_roots=3)
    st_.commit(0, 1000, sync=False)
    _run(st_, rng, blocks=8, keys=4, values=2)
    off = State(kv, keep_roots=3, prune_nodes=False)
    off.restore(1000)
    before = _stored_nodes(kv)
    for height in range(9, 15):
        off.put(b"k%d" % rng.randrange(4), rng.randrange(2))
        off.commit(height, 1000 + height, sync=False)
    assert _stored_nodes(kv) >= before and kv.get(K.STORE_PRUNED) == K.u64(8)
    on = State(kv, keep_roots=3)
    on.restore(1000)
    assert not list(kv.scan(K.SMT_STALE, bytes([K.SMT_STALE[0] + 1])))
    for height in range(15, 30):
        _random_writes(on, rng, 3, keys=4, values=2, p_delete=0.3)
        on.commit(height, 1000 + height, sync=False)
        lo, hi = on.history_window()
        for h in range(lo, hi + 1):
            _reachable(lambda x: kv.get(K.smt_node(x)), on.root_at(h) or b"")
