"""Sparse Merkle tree over hashed keys: the state commitment, its proofs and their verifier.

Shape (a *compact* sparse Merkle tree, as in Diem's Jellyfish Merkle tree without
extension nodes). A key's path is ``SHA-256(key)``, read as 256 bits, most significant bit
of the first byte first; bit 0 chooses the child of the root (0 = left). The subtree at
depth d holds the keys whose paths share one d-bit prefix, and it is:

- **empty** when it holds no key: its hash is ``EMPTY_HASH`` = 32 zero bytes (not hashed);
- **a leaf** when it holds exactly one key, at whatever depth that happens:
  ``leaf_hash = SHA-256(0x00 || path || value_hash)`` with ``value_hash = SHA-256(value)``;
- **an inner node** when it holds two or more keys:
  ``inner_hash = SHA-256(0x01 || left_hash || right_hash)`` (a child may be empty).

So the same set of (key, value) pairs always gives the same root, whatever the order of
insertion and however updates were split into batches. ``EMPTY_ROOT`` (the root of the
tree with no keys) is ``EMPTY_HASH``, 32 zero bytes.

Nodes are kept in a `NodeStore` keyed by their hash; a node's stored encoding is exactly
its hash preimage (65 bytes: ``0x00 || path || value_hash`` or ``0x01 || left || right``).
The tree never deletes nodes, so every old root stays readable while its nodes are in the
store. `SparseMerkleTree.update` writes every new node of a batch with one
`NodeStore.put_many` call and, if asked, lists the nodes the new tree no longer holds
(`stale`): a store that keeps a window of roots deletes them once no root in the window
needs them (`node.app.state`).

A proof (`SmtProof`) lists, from the root down, the non-empty siblings along the key's
path to the *terminal* subtree where the search stops, with a bitmap marking which
depths have a non-empty sibling. The terminal is the key's own leaf (membership), an
empty subtree, or the leaf of another key whose path shares the first ``depth`` bits
(both non-membership). `verify_smt_proof` is pure, total and never raises.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from hashlib import sha256 as _sha256
from typing import Protocol

from .codec import Message, message
from .errors import Code, InvariantError, ValidationError, require
from .types import Hash32

__all__ = [
    "EMPTY_HASH",
    "EMPTY_ROOT",
    "MAX_KEY_BYTES",
    "MemoryNodeStore",
    "NodeStore",
    "SmtProof",
    "SparseMerkleTree",
    "TreeView",
    "key_path",
    "verify_smt_proof",
]

EMPTY_HASH = Hash32(b"\0" * 32)
"""Hash of an empty subtree: 32 zero bytes (a constant, not a digest)."""
EMPTY_ROOT = EMPTY_HASH
"""Root of the tree with no keys (= `EMPTY_HASH`, 32 zero bytes)."""
DEPTH_BITS = 256
"""Paths are SHA-256 digests: 256 bits, so a terminal sits at depth 0..256."""
MAX_KEY_BYTES = 1024
"""Longest key accepted (keys are chosen by the ledger, so a longer one is our bug)."""

_LEAF = 0
_INNER = 1
_EMPTY_KIND = 2
_LEAF_PREFIX = b"\x00"
_INNER_PREFIX = b"\x01"
_NODE_BYTES = 65
_TOP_BIT = DEPTH_BITS - 1


def key_path(key: bytes) -> Hash32:
    """The 256-bit path of `key` in the tree: SHA-256(key)."""
    return Hash32(_sha256(key).digest())


def leaf_hash(path: bytes, value_hash: bytes) -> bytes:
    return _sha256(_LEAF_PREFIX + path + value_hash).digest()


def inner_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(_INNER_PREFIX + left + right).digest()


class NodeStore(Protocol):
    """Where nodes live: hash -> encoded node (its 65-byte hash preimage)."""

    def get(self, node_hash: bytes) -> bytes | None: ...

    def put_many(self, nodes: Mapping[bytes, bytes]) -> None: ...


class MemoryNodeStore:
    """A dict-backed `NodeStore` (tests, benchmarks, light clients' scratch trees)."""

    __slots__ = ("nodes",)

    def __init__(self) -> None:
        self.nodes: dict[bytes, bytes] = {}

    def get(self, node_hash: bytes) -> bytes | None:
        return self.nodes.get(node_hash)

    def put_many(self, nodes: Mapping[bytes, bytes]) -> None:
        self.nodes.update(nodes)

    def __len__(self) -> int:
        return len(self.nodes)


@message(tag=0x30)
class SmtProof(Message):
    """A membership or non-membership proof for one key (see the module docstring).

    - `depth`: depth of the terminal subtree (0..256); there is one sibling per depth
      ``0..depth-1``.
    - `bitmap`: ``ceil(depth / 8)`` bytes; bit i (byte ``i // 8``, mask ``0x80 >> (i % 8)``)
      is set iff the sibling at depth i is non-empty; bits at or beyond `depth` are zero.
    - `siblings`: the non-empty siblings, root side first (one per set bit).
    - `leaf_path`, `leaf_value_hash`: the other key's leaf when the terminal is a leaf of
      another key (non-membership); both None otherwise.
    """

    depth: int
    bitmap: bytes
    siblings: tuple[Hash32, ...]
    leaf_path: Hash32 | None
    leaf_value_hash: Hash32 | None

    def validate(self) -> None:
        if self.depth > DEPTH_BITS:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, f"depth is 0..{DEPTH_BITS}, got {self.depth}", field="depth")
        if len(self.bitmap) != (self.depth + 7) // 8:
            raise ValidationError(
                Code.FIELD_WRONG_LENGTH, f"bitmap must be {(self.depth + 7) // 8} bytes for depth {self.depth}", field="bitmap"
            )
        bits = int.from_bytes(self.bitmap, "big")
        spare = len(self.bitmap) * 8 - self.depth
        if spare and bits & ((1 << spare) - 1):
            raise ValidationError(Code.FIELD_INVALID, "bitmap bits beyond depth must be zero", field="bitmap")
        if bits.bit_count() != len(self.siblings):
            raise ValidationError(
                Code.FIELD_INVALID, f"bitmap marks {bits.bit_count()} siblings, proof has {len(self.siblings)}", field="siblings"
            )
        if (self.leaf_path is None) != (self.leaf_value_hash is None):
            raise ValidationError(Code.FIELD_INVALID, "leaf_path and leaf_value_hash go together", field="leaf_path")

    @property
    def size_bytes(self) -> int:
        return len(self.encode())


def verify_smt_proof(root: bytes, key: bytes, value: bytes | None, proof: SmtProof) -> bool:
    """True iff `proof` shows that under `root`, `key` maps to `value` (None: `key` is absent).

    Pure and total: any malformed proof (wrong lengths, inconsistent bitmap, a
    non-canonical shape, wrong types) yields False, never an exception.
    """
    try:
        return _verify(root, key, value, proof)
    except (TypeError, ValueError, AttributeError, IndexError, OverflowError):
        return False


def _is_hash(value: object) -> bool:
    return type(value) is bytes and len(value) == 32


def _verify(root: bytes, key: bytes, value: bytes | None, proof: SmtProof) -> bool:
    if not isinstance(proof, SmtProof) or not _is_hash(root) or type(key) is not bytes:
        return False
    if value is not None and type(value) is not bytes:
        return False
    depth = proof.depth
    bitmap = proof.bitmap
    siblings = proof.siblings
    if type(depth) is not int or not 0 <= depth <= DEPTH_BITS or type(bitmap) is not bytes or type(siblings) is not tuple:
        return False
    if len(bitmap) != (depth + 7) // 8:
        return False
    bits = int.from_bytes(bitmap, "big") << (DEPTH_BITS - len(bitmap) * 8)  # bit of depth i now at 255 - i
    spare_mask = (1 << (DEPTH_BITS - depth)) - 1
    if bits & spare_mask or bits.bit_count() != len(siblings):
        return False
    if not all(_is_hash(s) for s in siblings):
        return False
    path = _sha256(key).digest()
    other_path = proof.leaf_path
    other_value_hash = proof.leaf_value_hash
    if value is not None:
        if other_path is not None or other_value_hash is not None:
            return False
        h = leaf_hash(path, _sha256(value).digest())
    elif other_path is None:
        if other_value_hash is not None:
            return False
        h = EMPTY_HASH
    else:
        if not _is_hash(other_path) or not _is_hash(other_value_hash) or other_path == path:
            return False
        # The other leaf must sit on the key's path: same first `depth` bits.
        shared = int.from_bytes(path, "big") ^ int.from_bytes(other_path, "big")
        if shared >> (DEPTH_BITS - depth):
            return False
        h = leaf_hash(other_path, other_value_hash)  # type: ignore[arg-type]
    # Canonical shape: below the root, a terminal always has a non-empty sibling (a
    # subtree with one key is a leaf placed as high as possible; an empty terminal's
    # parent holds >= 2 keys, all in the sibling).
    if depth > 0 and not (bits >> (_TOP_BIT - (depth - 1))) & 1:
        return False
    path_int = int.from_bytes(path, "big")
    idx = len(siblings)
    for d in range(depth - 1, -1, -1):
        shift = _TOP_BIT - d
        if (bits >> shift) & 1:
            idx -= 1
            sib = siblings[idx]
        else:
            sib = EMPTY_HASH
        if (path_int >> shift) & 1:
            h = _sha256(_INNER_PREFIX + sib + h).digest()
        else:
            h = _sha256(_INNER_PREFIX + h + sib).digest()
    return h == root


_Item = tuple[int, bytes, bytes | None]
"""(path as an int, path, value hash or None for a delete), sorted by path."""


class TreeView:
    """What every layout of the tree holds: its store, its root, and the list of stale
    records while an update runs (`SparseMerkleTree`; `protocol.smt_paged`)."""

    __slots__ = ("_get", "_root", "_stale", "_store")

    def __init__(self, store: NodeStore, root: bytes = EMPTY_ROOT) -> None:
        require(len(root) == 32, "an SMT root is 32 bytes")
        self._store = store
        # The dict's own `get` for the in-memory store saves a call per node on hot paths.
        self._get = store.nodes.get if type(store) is MemoryNodeStore else store.get
        self._root = bytes(root)
        self._stale: list[bytes] | None = None

    @property
    def root(self) -> bytes:
        return self._root

    @property
    def store(self) -> NodeStore:
        return self._store


class SparseMerkleTree(TreeView):
    """A view of the tree at `root` over `store`; `update` moves it to a new root.

    `get` and `prove` read nodes through the store; `update` computes every touched node
    once per batch and writes the new nodes with one `put_many`.
    """

    __slots__ = ()

    def _load(self, node_hash: bytes) -> bytes:
        enc = self._get(node_hash)
        if enc is None or len(enc) != _NODE_BYTES:
            raise InvariantError(f"SMT node {node_hash.hex()} missing from the store")
        return enc

    # ------------------------------------------------------------------ reads

    def get(self, key: bytes) -> bytes | None:
        """The value hash (SHA-256 of the value) stored for `key`, or None."""
        path = _sha256(_check_key(key)).digest()
        path_int = int.from_bytes(path, "big")
        h = self._root
        depth = 0
        while h != EMPTY_HASH:
            enc = self._load(h)
            if enc[0] == _LEAF:
                return enc[33:65] if enc[1:33] == path else None
            h = enc[33:65] if (path_int >> (_TOP_BIT - depth)) & 1 else enc[1:33]
            depth += 1
        return None

    def prove(self, key: bytes) -> SmtProof:
        """A proof of `key`'s value hash (membership) or of its absence."""
        path = _sha256(_check_key(key)).digest()
        path_int = int.from_bytes(path, "big")
        h = self._root
        depth = 0
        bits = 0
        siblings: list[Hash32] = []
        leaf_path: Hash32 | None = None
        leaf_value: Hash32 | None = None
        while h != EMPTY_HASH:
            enc = self._load(h)
            if enc[0] == _LEAF:
                if enc[1:33] != path:
                    leaf_path, leaf_value = Hash32(enc[1:33]), Hash32(enc[33:65])
                break
            require(depth < DEPTH_BITS, "SMT deeper than 256 levels")
            if (path_int >> (_TOP_BIT - depth)) & 1:
                h, sib = enc[33:65], enc[1:33]
            else:
                h, sib = enc[1:33], enc[33:65]
            if sib != EMPTY_HASH:
                bits |= 1 << (_TOP_BIT - depth)
                siblings.append(Hash32(sib))
            depth += 1
        nbytes = (depth + 7) // 8
        bitmap = (bits >> (DEPTH_BITS - nbytes * 8)).to_bytes(nbytes, "big") if nbytes else b""
        return SmtProof(depth=depth, bitmap=bitmap, siblings=tuple(siblings), leaf_path=leaf_path, leaf_value_hash=leaf_value)

    # ------------------------------------------------------------------ writes

    def update(self, items: Mapping[bytes, bytes | None], *, stale: list[bytes] | None = None) -> bytes:
        """Apply a batch (key -> value, or None to delete) and return the new root.

        The tree stores SHA-256(value) under path SHA-256(key). Deleting an absent key is
        a no-op. All new nodes go to the store in one `put_many`.

        `stale`: if given, the hashes of the nodes of the old tree that the new tree no
        longer holds are appended to it (each once): the nodes a store may delete once no
        retained root needs them (`node.app.state` prunes with them).
        """
        if not items:
            return self._root
        batch: list[_Item] = []
        append = batch.append
        sha = _sha256
        from_bytes = int.from_bytes
        for key, value in items.items():
            if type(key) is not bytes or len(key) > MAX_KEY_BYTES:
                _check_key(key)  # raises with the reason
            path = sha(key).digest()
            append((from_bytes(path, "big"), path, None if value is None else sha(value).digest()))
        batch.sort()
        out: dict[bytes, bytes] = {}
        if stale is not None:
            self._stale = []
            try:
                root, _ = self._update(self._root, 0, batch, 0, len(batch), out)
                # a node rebuilt with the same content is in `out`: it stays
                stale.extend(h for h in dict.fromkeys(self._stale) if h not in out)
            finally:
                self._stale = None
        else:
            root, _ = self._update(self._root, 0, batch, 0, len(batch), out)
        if out:
            self._store.put_many(out)
        self._root = root
        return root

    def _update(self, node: bytes, depth: int, items: list[_Item], lo: int, hi: int, out: dict[bytes, bytes]) -> tuple[bytes, int]:
        if hi - lo == 1:
            return self._update_one(node, depth, items[lo], out)
        if node == EMPTY_HASH:
            live = [it for it in items[lo:hi] if it[2] is not None]
            return self._build(depth, live, 0, len(live), out)
        enc = self._load(node)
        if enc[0] == _LEAF:
            leaf_int = int.from_bytes(enc[1:33], "big")
            merged: list[_Item] = []
            replaced = False
            for it in items[lo:hi]:
                if it[0] == leaf_int:
                    replaced = True
                if it[2] is not None:
                    merged.append(it)
            if not replaced:
                merged.append((leaf_int, enc[1:33], enc[33:65]))
                merged.sort()
            result = self._build(depth, merged, 0, len(merged), out)
            if node in out:
                del out[node]  # the leaf is in the new subtree as it was: it is stored already
            elif self._stale is not None:
                self._stale.append(node)
            return result
        require(depth < DEPTH_BITS, "SMT deeper than 256 levels")
        shift = _TOP_BIT - depth
        boundary = ((items[lo][0] >> (shift + 1)) << (shift + 1)) | (1 << shift)
        mid = bisect_left(items, (boundary,), lo, hi)
        left = enc[1:33]
        right = enc[33:65]
        lk: int | None = None
        rk: int | None = None
        new_left, new_right = left, right
        if mid > lo:
            new_left, lk = self._update(left, depth + 1, items, lo, mid, out)
        if hi > mid:
            new_right, rk = self._update(right, depth + 1, items, mid, hi, out)
        if new_left == left and new_right == right:
            return node, _INNER
        if self._stale is not None:
            self._stale.append(node)
        return self._join(new_left, lk, new_right, rk, out)

    def _update_one(self, node: bytes, depth: int, item: _Item, out: dict[bytes, bytes]) -> tuple[bytes, int]:
        """`_update` for a single item: walk down iteratively, then rehash the path upward.

        Most of a block's work is here: below the first ~log2(batch) levels every touched
        subtree receives one key, so these loops are kept free of calls and allocations
        they do not need. The walk down checks each node's kind only (a missing node makes
        `get` return None: the TypeError is turned into an `InvariantError`; the terminal
        leaf's length is checked). Upward, once the new subtree is an inner node (it holds
        two or more keys), every parent on the path is an inner node whatever its other
        child is, so the loop just re-encodes and hashes (`_join`'s cases apply only while
        the subtree is empty or one leaf).
        """
        path_int, path, value_hash = item
        bits = format(path_int, "0256b")  # bits[d] == "1": go right at depth d (cheaper than big-int shifts)
        start = depth
        get = self._get
        empty: bytes = EMPTY_HASH
        parents: list[bytes] = []  # encodings of the inner nodes passed, top first
        append = parents.append
        h = node
        enc: bytes | None = None
        try:
            while h != empty:
                enc = get(h)
                if enc[0] != _INNER:  # type: ignore[index]
                    break  # a leaf (its encoding is checked below)
                append(enc)  # type: ignore[arg-type]
                h = enc[33:65] if bits[depth] == "1" else enc[1:33]  # type: ignore[index]
                depth += 1
            else:
                enc = None
        except (TypeError, IndexError):
            raise InvariantError(f"SMT node {h.hex()} missing from the store") from None
        if depth > DEPTH_BITS:
            raise InvariantError("SMT deeper than 256 levels")
        if enc is not None and (len(enc) != _NODE_BYTES or enc[0] != _LEAF):
            raise InvariantError(f"SMT node {h.hex()} is not a node encoding")
        # h is the terminal: empty (enc None) or a leaf (enc its encoding).
        unchanged = node, (_INNER if parents else _EMPTY_KIND if enc is None else _LEAF)
        new: bytes
        kind: int
        if enc is None or enc[1:33] == path:
            if value_hash is None:
                if enc is None:
                    return unchanged  # deleting an absent key
                new, kind = empty, _EMPTY_KIND
            else:
                leaf = _LEAF_PREFIX + path + value_hash
                new = _sha256(leaf).digest()
                if new == h:
                    return unchanged
                out[new] = leaf
                kind = _LEAF
        else:
            if value_hash is None:
                return unchanged  # deleting an absent key
            new, kind = self._pair(depth, bits, path_int, path, value_hash, enc[1:33], h, out), _INNER
        stale = self._stale
        if stale is not None:  # the inner nodes passed, and the key's own leaf if it had one
            if parents:
                stale.append(node)
                for d in range(start, depth - 1):
                    parent = parents[d - start]
                    stale.append(parent[33:65] if bits[d] == "1" else parent[1:33])
            if enc is not None and enc[1:33] == path:
                stale.append(h)
        sha = _sha256
        prefix = _INNER_PREFIX
        i = len(parents)
        while kind != _INNER and i:  # the new subtree is empty or one leaf: it may move up
            i -= 1
            depth -= 1
            parent = parents[i]
            right = bits[depth] == "1"
            sib = parent[1:33] if right else parent[33:65]
            if sib == empty:
                continue  # a leaf (or nothing) with an empty sibling moves up
            if new == empty and self._kind(sib) == _LEAF:
                new, kind = sib, _LEAF  # the sibling leaf moves up
                continue
            enc = prefix + sib + new if right else prefix + new + sib
            new = sha(enc).digest()
            out[new] = enc
            kind = _INNER
        if i:
            top = depth - i
            del parents[i:]
            for parent, bit in zip(reversed(parents), bits[top:depth][::-1], strict=True):
                enc = parent[:33] + new if bit == "1" else prefix + new + parent[33:65]
                new = sha(enc).digest()
                out[new] = enc
        return new, kind

    def _pair(self, depth: int, bits: str, path_int: int, path: bytes, value_hash: bytes, other_path: bytes,
              other_hash: bytes, out: dict[bytes, bytes]) -> bytes:
        """The subtree at `depth` holding the new leaf (path, value_hash) and the stored leaf
        of another key (`other_path`, whose first `depth` bits are the same, and its hash
        `other_hash`; it is in the store already): an inner node where the two paths part
        and, above it, one inner node with an empty child per further shared bit."""
        split = DEPTH_BITS - (path_int ^ int.from_bytes(other_path, "big")).bit_length()
        require(split < DEPTH_BITS, "two keys with the same path")
        leaf = _LEAF_PREFIX + path + value_hash
        h = _sha256(leaf).digest()
        out[h] = leaf
        enc = _INNER_PREFIX + other_hash + h if bits[split] == "1" else _INNER_PREFIX + h + other_hash
        h = _sha256(enc).digest()
        out[h] = enc
        empty = EMPTY_HASH
        for d in range(split - 1, depth - 1, -1):
            enc = _INNER_PREFIX + empty + h if bits[d] == "1" else _INNER_PREFIX + h + empty
            h = _sha256(enc).digest()
            out[h] = enc
        return h

    def _kind(self, node: bytes) -> int:
        if node == EMPTY_HASH:
            return _EMPTY_KIND
        return self._load(node)[0]

    def _join(self, left: bytes, lk: int | None, right: bytes, rk: int | None, out: dict[bytes, bytes]) -> tuple[bytes, int]:
        """The subtree whose children are `left` and `right` (kinds None = not yet known)."""
        if left == EMPTY_HASH:
            if right == EMPTY_HASH:
                return EMPTY_HASH, _EMPTY_KIND
            if (rk if rk is not None else self._kind(right)) == _LEAF:
                return right, _LEAF
        elif right == EMPTY_HASH and (lk if lk is not None else self._kind(left)) == _LEAF:
            return left, _LEAF
        enc = _INNER_PREFIX + left + right
        h = _sha256(enc).digest()
        out[h] = enc
        return h, _INNER

    def _build(self, depth: int, items: list[_Item], lo: int, hi: int, out: dict[bytes, bytes]) -> tuple[bytes, int]:
        """A fresh subtree at `depth` holding items[lo:hi] (all with values)."""
        n = hi - lo
        if n == 0:
            return EMPTY_HASH, _EMPTY_KIND
        if n == 1:
            _, path, value_hash = items[lo]
            enc = _LEAF_PREFIX + path + value_hash  # type: ignore[operator]
            h = _sha256(enc).digest()
            out[h] = enc
            return h, _LEAF
        require(depth < DEPTH_BITS, "two keys with the same path")
        shift = _TOP_BIT - depth
        boundary = ((items[lo][0] >> (shift + 1)) << (shift + 1)) | (1 << shift)
        mid = bisect_left(items, (boundary,), lo, hi)
        left, lk = self._build(depth + 1, items, lo, mid, out)
        right, rk = self._build(depth + 1, items, mid, hi, out)
        return self._join(left, lk, right, rk, out)


def _check_key(key: bytes) -> bytes:
    require(type(key) is bytes and len(key) <= MAX_KEY_BYTES, f"SMT keys are bytes of at most {MAX_KEY_BYTES}")
    return key
