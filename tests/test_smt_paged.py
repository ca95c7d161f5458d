"""The paged tree (`protocol.smt_paged`) is the same tree as `protocol.smt`: same roots,
proofs and values over random batch sequences, and its `stale` list is exact."""

from __future__ import annotations

import random
from hashlib import sha256

import pytest

from afterchain.protocol.codec import encode
from afterchain.protocol.errors import InvariantError
from afterchain.protocol.smt import EMPTY_ROOT, MemoryNodeStore, SparseMerkleTree, verify_smt_proof
from afterchain.protocol.smt_paged import (
    LEVELS,
    PAGE_BYTES,
    PAGE_TAG,
    PagedSparseMerkleTree,
    check_record,
    page_records,
)
from tests.test_vectors import b, doc_vectors


def _prefix_int(key: bytes, bits: int) -> int:
    return int.from_bytes(sha256(key).digest(), "big") >> (256 - bits)


def _key_pool() -> list[bytes]:
    """Keys whose paths share long prefixes (so pages fill and leaves sit deep), and others.

    Deterministic: among 2**17 candidate keys, groups that share their first 20 bits
    (birthday collisions: paths that part at depth 20..~30, several pages down), keys
    sharing the first 8 bits of one of them, and plain keys."""
    cand = [b"p%d" % i for i in range(1 << 17)]
    by_prefix: dict[int, list[bytes]] = {}
    for k in cand:
        by_prefix.setdefault(_prefix_int(k, 20), []).append(k)
    deep = [ks for ks in by_prefix.values() if len(ks) >= 2]
    deep.sort()
    pool: list[bytes] = []
    for ks in deep[:12]:
        pool += ks
    anchor = _prefix_int(pool[0], 8)
    pool += [k for k in cand[:4096] if _prefix_int(k, 8) == anchor][:12]
    pool += [b"k%d" % i for i in range(12)]
    return list(dict.fromkeys(pool))


POOL = _key_pool()
VALUES = [b"", b"a", b"b", b"c", b"\x00" * 40]


def _check_same(binary: SparseMerkleTree, paged: PagedSparseMerkleTree, keys: list[bytes]) -> None:
    assert paged.root == binary.root
    for k in keys:
        assert paged.get(k) == binary.get(k)
        proof = paged.prove(k)
        assert encode(proof) == encode(binary.prove(k))


def _check_page(rec: bytes) -> None:
    """A page is canonical: each position's hash is its parent's slot, positions not in the
    tree are kind 2 with a zero body, its top is an inner node."""
    slots = 1 << LEVELS
    last = max(p for p in range(1, slots) if rec[p] != 2)
    assert len(rec) == slots + 64 * last and rec[1] == 1  # cut after the last position in the tree
    rec = rec + bytes(PAGE_BYTES - len(rec))

    def body(p: int) -> bytes:
        return rec[slots + (p - 1) * 64:slots + p * 64]

    seen = set()
    todo = [1]
    while todo:
        p = todo.pop()
        seen.add(p)
        if rec[p] != 1:
            continue
        for c in (2 * p, 2 * p + 1):
            if c >= slots:
                continue
            h = body(p)[(c & 1) * 32:(c & 1) * 32 + 32]
            if rec[c] == 2:
                assert h == bytes(32)
            else:
                assert rec[c] in (0, 1) and sha256(bytes([rec[c]]) + body(c)).digest() == h
            todo.append(c)
    for p in range(2, slots):
        if p not in seen or rec[p] == 2:
            assert rec[p] == 2 and body(p) == bytes(64)


def _check_records(store: MemoryNodeStore, root: bytes) -> set[bytes]:
    """Every record reachable from `root` is a canonical page or a leaf record keyed by its
    top hash."""
    live = page_records(store.nodes.get, root)
    for h in live:
        rec = store.nodes[h]
        assert check_record(h, rec)
        if rec[0] == PAGE_TAG:
            _check_page(rec)
            assert sha256(b"\x01" + rec[1 << LEVELS:(1 << LEVELS) + 64]).digest() == h
        else:
            assert len(rec) == 65 and rec[0] == 0 and sha256(rec).digest() == h
    return live


@pytest.mark.parametrize("seed", range(120))
def test_random_batch_sequences_match_the_binary_tree(seed: int) -> None:
    rng = random.Random(seed)
    universe = rng.sample(POOL, rng.randrange(3, min(len(POOL), 48)))
    absent = [b"absent%d" % i for i in range(4)] + [k for k in POOL if k not in universe][:4]
    binary = SparseMerkleTree(MemoryNodeStore())
    store = MemoryNodeStore()
    paged = PagedSparseMerkleTree(store)
    live: set[bytes] = set()
    history: list[tuple[bytes, dict[bytes, bytes]]] = []
    model: dict[bytes, bytes] = {}
    for _ in range(rng.randrange(5, 25)):
        batch: dict[bytes, bytes | None] = {}
        for k in rng.sample(universe, rng.randrange(1, len(universe) + 1)):
            batch[k] = None if rng.random() < 0.3 else rng.choice(VALUES)
        stale: list[bytes] = []
        binary.update(batch)
        paged.update(batch, stale=stale)
        for k, v in batch.items():
            if v is None:
                model.pop(k, None)
            else:
                model[k] = v
        _check_same(binary, paged, universe + absent)
        root = paged.root
        for k in universe:
            assert verify_smt_proof(root, k, model.get(k), paged.prove(k))
        new_live = _check_records(store, root)
        assert len(stale) == len(set(stale))
        assert set(stale) == live - new_live
        live = new_live
        history.append((root, dict(model)))
    for old_root, old_model in history:  # old roots stay readable (nothing is deleted)
        old = PagedSparseMerkleTree(store, old_root)
        for k in universe[:6]:
            expect = old_model.get(k)
            assert old.get(k) == (None if expect is None else sha256(expect).digest())


def test_batches_of_one_key_and_order_do_not_matter() -> None:
    rng = random.Random(99)
    keys = POOL[:40]
    one_batch = PagedSparseMerkleTree(MemoryNodeStore())
    one_batch.update({k: b"v" + k for k in keys})
    singles = PagedSparseMerkleTree(MemoryNodeStore())
    shuffled = keys[:]
    rng.shuffle(shuffled)
    for k in shuffled:
        singles.update({k: b"v" + k})
    assert singles.root == one_batch.root == SparseMerkleTree(MemoryNodeStore()).update({k: b"v" + k for k in keys})
    for k in shuffled:
        singles.update({k: None})
    assert singles.root == EMPTY_ROOT


def test_larger_tree_matches_with_mixed_blocks() -> None:
    rng = random.Random(5)
    binary = SparseMerkleTree(MemoryNodeStore())
    paged = PagedSparseMerkleTree(MemoryNodeStore())
    first = {b"key%d" % i: b"v%d" % i for i in range(3000)}
    assert paged.update(first) == binary.update(first)
    for _ in range(6):
        batch: dict[bytes, bytes | None] = {b"key%d" % rng.randrange(4000): rng.randbytes(4) for _ in range(200)}
        batch.update({b"key%d" % rng.randrange(4000): None for _ in range(30)})
        assert paged.update(batch) == binary.update(batch)
    _check_same(binary, paged, [b"key%d" % i for i in range(0, 4000, 37)])


def test_protocol_vectors() -> None:
    v = doc_vectors()["smt"]
    tree = PagedSparseMerkleTree(MemoryNodeStore())
    assert tree.root.hex() == v["empty_root"]
    tree.update({b"alice": b"1", b"bob": b"2", b"carol": b"3"})
    assert tree.root == b(v, "root")
    assert encode(tree.prove(b"bob")) == b(v, "proof(bob).encoding")
    assert encode(tree.prove(b"dave")) == b(v, "proof(dave).encoding")


def test_missing_record_is_an_invariant_error() -> None:
    store = MemoryNodeStore()
    tree = PagedSparseMerkleTree(store)
    tree.update({b"k%d" % i: b"v" for i in range(50)})
    del store.nodes[tree.root]
    with pytest.raises(InvariantError):
        tree.get(b"k1")
    with pytest.raises(InvariantError):
        tree.update({b"k1": b"w"})


def test_check_record_refuses_every_changed_byte() -> None:
    store = MemoryNodeStore()
    tree = PagedSparseMerkleTree(store)
    tree.update({k: b"v" + k for k in POOL})
    records = sorted(page_records(store.nodes.get, tree.root))
    pages = [h for h in records if store.nodes[h][0] == PAGE_TAG]
    sparse = min(pages, key=lambda h: len(store.nodes[h]))
    dense = max(pages, key=lambda h: len(store.nodes[h]))
    leaf = next(h for h in records if store.nodes[h][0] == 0)
    for h in (tree.root, sparse, dense, leaf):
        rec = store.nodes[h]
        assert check_record(h, rec)
        for i in range(len(rec)):
            changed = bytearray(rec)
            changed[i] ^= 0x04 if i else 0x01
            assert not check_record(h, bytes(changed)), i
        assert not check_record(h, rec + bytes(64))  # a longer cut
        assert not check_record(h, rec[:-64])
    assert not check_record(dense, store.nodes[sparse])
    for bad in (b"", b"\x02", None, 5):
        assert not check_record(tree.root, bad)  # type: ignore[arg-type]


def test_check_record_refuses_shapes_the_compact_rules_forbid() -> None:
    """Pages whose hashes all chain but whose shape a compact tree never has."""
    slots = 1 << LEVELS
    leaf_body = sha256(b"k").digest() + sha256(b"v").digest()
    leaf = sha256(b"\x00" + leaf_body).digest()

    def page(kinds: dict[int, int], bodies: dict[int, bytes]) -> tuple[bytes, bytes]:
        rec = bytearray([PAGE_TAG] + [2] * (slots - 1)) + bytearray(64 * (slots - 1))
        for p, k in kinds.items():
            rec[p] = k
            rec[slots + (p - 1) * 64:slots + p * 64] = bodies[p]
        last = max(kinds)
        out = bytes(rec[:slots + 64 * last])
        return sha256(b"\x01" + out[slots:slots + 64]).digest(), out

    # an inner node over one leaf and an empty sibling (the leaf should have moved up)
    key, rec = page({1: 1, 2: 0}, {1: leaf + bytes(32), 2: leaf_body})
    assert not check_record(key, rec)
    # an inner node over two empty children
    inner_empty = sha256(b"\x01" + bytes(64)).digest()
    key, rec = page({1: 1, 2: 1}, {1: inner_empty + bytes(32), 2: bytes(64)})
    assert not check_record(key, rec)
    # the same leaf beside another leaf is fine
    other_body = sha256(b"k2").digest() + sha256(b"v").digest()
    other = sha256(b"\x00" + other_body).digest()
    key, rec = page({1: 1, 2: 0, 3: 0}, {1: leaf + other, 2: leaf_body, 3: other_body})
    assert check_record(key, rec)
