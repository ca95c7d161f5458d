"""The ledger's state-access layer: one block's pending writes over the committed store.

Owns: reading and writing state keys (`protocol.state_keys`) during a block (`get`, `put`,
`delete`, index writes), committing the block as ONE atomic store batch (`commit`: values,
SMT nodes, indexes, the undo record, height, time and root) or dropping it (`abort`), the
caches of decoded values and SMT nodes, and reads of committed state, current or historical
(`value`, `prove`, `value_at`, `prove_at`).

Invariants
- Nothing reaches the store before `commit`; a block's writes are one batch.
- A write that leaves a value unchanged (or deletes an absent key) is skipped: the root
  is the same, and no undo entry is written.
- The undo record of block h holds [state key, value before h or nil] for every key h
  changed; it is pruned with the root of the same height, so `value_at` / `prove_at` read
  any state of the last `keep_roots` heights (`KEEP_ROOTS` by default).
- SMT nodes are pruned with the same window: block h stores the hashes of the nodes its
  update left behind (``s`` + h, `SparseMerkleTree.update`'s `stale`); only roots below h
  need them, so the block that drops root h - 1 from the window (h - 1 + keep_roots)
  deletes them. A node can come back: a key set back
  to an earlier value (or a delete) rebuilds the same leaf (and perhaps the inner nodes
  above it) while an older stale list still names it. So a block that writes a leaf the
  store already holds, or that deletes a key, looks up its new nodes in the store, and
  each one found gets a mark (``w`` + hash -> height): a stale list older than the mark
  does not delete it. (Without a leaf written again and without deletes no new node can
  be in the store: every node above a leaf holds that leaf.) A mark is dropped once the
  stale lists older than it are gone. Stores written before pruning keep the nodes of
  their earlier blocks (they have no stale lists); a store that older code wrote blocks
  into after this code (``mpruned`` behind the height) drops its stale lists and marks
  when opened, keeping the nodes they named.
- Values read with `get` are shared objects: a caller that changes one must `put` it back
  in the same block (or the block is aborted, which drops the caches).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

import msgpack

from afterchain.node.app.store import KV, NodeCache
from afterchain.protocol import state_keys as K
from afterchain.protocol.errors import require
from afterchain.protocol.smt import EMPTY_ROOT, SmtProof, SparseMerkleTree

__all__ = ["KEEP_ROOTS", "State", "pack", "sha256", "unpack"]

KEEP_ROOTS = 1024
"""Roots (and undo records) of this many recent heights are kept for `root_at` / `value_at`."""
UNDO_CACHE_ENTRIES = 64

pack = msgpack.Packer(use_bin_type=True).pack


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class _Deleted:
    pass


_DELETED = _Deleted()


class State:
    """The state store of one ledger: committed height / time / root, and the current
    block's pending writes (state keys and index keys)."""

    def __init__(self, kv: KV, *, node_cache_nodes: int = 131_072, state_cache_entries: int = 32_768,
                 keep_roots: int | None = None, prune_nodes: bool = True) -> None:
        keep = KEEP_ROOTS if keep_roots is None else keep_roots
        require(keep >= 1, "keep_roots is at least 1")
        self.kv = kv
        self.keep_roots = keep
        """Roots, undo records and SMT nodes of this many recent heights are kept."""
        self.prune_nodes = prune_nodes
        """False: no stale lists, marks or deletions (SMT nodes are kept for ever, as before
        pruning); `mpruned` is not advanced, so pruning turned on again starts afresh."""
        self.nodes = NodeCache(kv, node_cache_nodes)
        self.height = 0
        self.time_ms = 0
        self.root: bytes = EMPTY_ROOT
        self.last_block_state_keys = 0
        """State keys written by the last block (a metric: the SMT batch size)."""
        # committed state key -> decoded value (shared objects), two generations (see NodeCache)
        self._cache: dict[bytes, Any] = {}
        self._cache_old: dict[bytes, Any] = {}
        self._cache_max = state_cache_entries
        self._dirty: dict[bytes, Any] = {}  # this block's writes: state key -> value or _DELETED
        self._idx: dict[bytes, bytes | None] = {}  # this block's index writes (store keys)
        # state keys the store was found not to hold since the last commit (the store only
        # changes at a commit): `commit` need not read them again for the undo record
        self._absent: set[bytes] = set()
        self._undo_cache: dict[int, dict[bytes, bytes | None]] = {}  # height -> decoded undo record
        self._revived: dict[bytes, int] = {}  # SMT node hash -> height of its mark (``w`` keys)
        self.last_block_pruned_nodes = 0
        """SMT nodes the last block deleted (a metric)."""

    # ------------------------------------------------------------------ opening

    def genesis_hash(self) -> bytes | None:
        """The genesis hash the store was created from (None: a new store)."""
        return self.kv.get(K.STORE_GENESIS)

    def restore(self, default_time_ms: int) -> None:
        """Height, root and time from the store's metadata."""
        h = self.kv.get(K.STORE_HEIGHT)
        require(h is not None, "store has a genesis but no height")
        self.height = int.from_bytes(h or b"", "big")
        root = self.kv.get(K.root(self.height))
        require(root is not None, "store has no root for its height")
        self.root = root or EMPTY_ROOT
        tm = self.kv.get(K.STORE_TIME)
        self.time_ms = int.from_bytes(tm, "big") if tm else default_time_ms
        if not self.prune_nodes:
            return
        pruned = self.kv.get(K.STORE_PRUNED)
        if pruned is not None and int.from_bytes(pruned, "big") != self.height:
            self._forget_stale_lists()
        end = bytes([K.SMT_REVIVED[0] + 1])
        self._revived = {bytes(k[1:]): int.from_bytes(v, "big") for k, v in self.kv.scan(K.SMT_REVIVED, end)}

    def _forget_stale_lists(self) -> None:
        """Drop every stale list and mark: blocks were committed without them (by older code),
        so a node they name may be back in the tree unmarked. The nodes they name stay in
        the store (as before pruning)."""
        drop: dict[bytes, bytes | None] = {}
        for prefix in (K.SMT_STALE, K.SMT_REVIVED):
            drop.update((bytes(k), None) for k, _ in self.kv.scan(prefix, bytes([prefix[0] + 1])))
        drop[K.STORE_PRUNED] = K.u64(self.height)
        self.kv.write(drop)

    # ------------------------------------------------------------------ the current block

    def get(self, key: bytes) -> Any:
        """The value of a state key at this point of the block (None: absent)."""
        v = self._dirty.get(key)
        if v is not None:
            return None if v is _DELETED else v
        v = self._cache.get(key)
        if v is not None:
            return v
        v = self._cache_old.pop(key, None)
        if v is None:
            raw = self.kv.get(K.stored_value(key))
            if raw is None:
                self._absent.add(key)
                return None
            v = unpack(raw)
        if len(self._cache) >= self._cache_max:
            self._cache_old = self._cache
            self._cache = {}
        self._cache[key] = v
        return v

    def put(self, key: bytes, value: Any) -> None:
        self._dirty[key] = value

    def delete(self, key: bytes) -> None:
        self._dirty[key] = _DELETED

    def index_add(self, key: bytes) -> None:
        """Add an index key (a store key, not in the state root) with this block."""
        self._idx[key] = b""

    def index_remove(self, key: bytes) -> None:
        self._idx[key] = None

    def scan(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Committed store items with start <= key < end, in key order (this block's index
        writes are not seen)."""
        return self.kv.scan(start, end)

    def committed(self, key: bytes) -> Any:
        """A committed state value (read only). Between blocks (no pending writes) it comes
        from the state cache (the mempool pre-check runs once per incoming event); during a
        block, from the store."""
        if not self._dirty:
            return self.get(key)
        return self.read(key)

    def commit(self, height: int, time_ms: int, extra: Mapping[bytes, bytes | None] | None = None, *,
               sync: bool = True) -> None:
        """Write the block's state, SMT nodes, indexes and `extra` store keys in one batch
        (synced unless `sync` is False, see `KV.write`); advance height, time and root."""
        updates: dict[bytes, bytes | None] = {}
        batch: dict[bytes, bytes | None] = {}
        kv_get = self.kv.get
        absent = self._absent
        undo: list[Any] = []  # [key, value before this block or None], for `value_at`
        for key, v in self._dirty.items():  # (the tree sorts; the batch is applied atomically)
            vkey = K.stored_value(key)
            prev = None if key in absent else kv_get(vkey)
            if v is _DELETED:
                if prev is None:
                    continue  # deleting an absent key: no change, nothing to undo
                updates[key] = None
                batch[vkey] = None
            else:
                enc = pack(v)
                if enc == prev:
                    continue  # rewritten unchanged: the tree would not change either
                updates[key] = enc
                batch[vkey] = enc
            undo.append([key, prev])
        tree = SparseMerkleTree(self.nodes, self.root)
        marks: list[bytes] = []
        expired: list[bytes] = []
        if self.prune_nodes:
            stale: list[bytes] = []
            root = tree.update(updates, stale=stale)
            marks = self._revivals(self.nodes.pending, None in updates.values())
            batch.update(self.nodes.take_pending())
            expired = self._prune(height, stale, marks, batch)
            batch[K.STORE_PRUNED] = K.u64(height)
        else:
            root = tree.update(updates)
            batch.update(self.nodes.take_pending())
        self.last_block_state_keys = len(updates)
        batch.update(self._idx)
        if extra:
            batch.update(extra)
        batch[K.root(height)] = root
        batch[K.undo(height)] = pack(undo)
        if height >= self.keep_roots:
            batch[K.root(height - self.keep_roots)] = None
            batch[K.undo(height - self.keep_roots)] = None
        batch[K.STORE_HEIGHT] = K.u64(height)
        batch[K.STORE_TIME] = K.u64(time_ms)
        self.kv.write(batch, sync=sync)
        for node_hash in expired:
            del self._revived[node_hash]
        self._revived.update(dict.fromkeys(marks, height))
        self._absent = set()
        if len(self._cache) + len(self._dirty) > self._cache_max:
            self._cache_old = self._cache
            self._cache = {}
        for key, v in self._dirty.items():
            if v is _DELETED:
                self._cache.pop(key, None)
                self._cache_old.pop(key, None)
            else:
                self._cache[key] = v
                self._cache_old.pop(key, None)
        self._dirty = {}
        self._idx = {}
        self.height = height
        self.time_ms = time_ms
        self.root = root

    def _revivals(self, new_nodes: Mapping[bytes, bytes], deletes: bool) -> list[bytes]:
        """The new SMT nodes of this block that the store already holds (see the module
        docstring): looked up only for the new leaves, and for every new node if a leaf
        is found or the block deletes a key."""
        get_many = self.kv.get_many
        add = K.SMT_NODE.__add__
        if not deletes:
            leaves = [h for h, enc in new_nodes.items() if enc[0] == 0]
            if all(v is None for v in get_many(list(map(add, leaves)))):
                return []
        hashes = list(new_nodes)
        return [h for h, v in zip(hashes, get_many(list(map(add, hashes))), strict=True) if v is not None]

    def _prune(self, height: int, stale: list[bytes], marks: list[bytes], batch: dict[bytes, bytes | None]) -> list[bytes]:
        """Add to `batch` this block's stale list and the deletion of the SMT nodes that only
        roots below the window needed: those of the stale list of height
        ``height - keep_roots + 1`` (the nodes that block replaced were last needed by the
        root before it, which leaves the window now). Returns the marks no longer needed
        (the caller forgets them once the batch is written)."""
        old = height - self.keep_roots + 1
        if stale and old < height:
            batch[K.smt_stale(height)] = b"".join(stale)
        for node_hash in marks:
            batch[K.smt_revived(node_hash)] = K.u64(height)
        self.last_block_pruned_nodes = 0
        if old < 1:
            return []
        if old == height:
            hashes = stale
        else:
            raw = self.kv.get(K.smt_stale(old))
            hashes = [raw[i:i + 32] for i in range(0, len(raw), 32)] if raw else []
            batch[K.smt_stale(old)] = None
        revived = self._revived
        new_marks = set(marks)
        if hashes and (revived or new_marks):
            hashes = [h for h in hashes if h not in new_marks and revived.get(h, -1) <= old]
        # (never a node this block writes: the marks see to that; checked all the same)
        doomed = [k for k in map(K.SMT_NODE.__add__, hashes) if k not in batch]
        batch.update(dict.fromkeys(doomed))
        self.last_block_pruned_nodes = len(doomed)
        # a mark made at height m guards the stale lists of heights below m: gone after this
        expired = [h for h, m in revived.items() if m <= old + 1 and h not in new_marks]
        for node_hash in expired:
            batch[K.smt_revived(node_hash)] = None
        return expired

    def abort(self) -> None:
        """Drop the block's writes (and the caches, which may hold changed shared values)."""
        self._dirty = {}
        self._idx = {}
        self._absent = set()
        self._cache.clear()
        self._cache_old.clear()
        self.nodes.drop_pending()

    # ------------------------------------------------------------------ committed reads

    def value(self, key: bytes) -> bytes | None:
        """The committed msgpack value of a state key (what the SMT commits to)."""
        return self.kv.get(K.stored_value(key))

    def read(self, key: bytes) -> Any:
        """The committed value of a state key, decoded (None: absent)."""
        raw = self.value(key)
        return None if raw is None else unpack(raw)

    def prove(self, key: bytes) -> tuple[bytes | None, SmtProof]:
        """(value, proof) of a state key against `root` (membership or absence)."""
        return self.value(key), SparseMerkleTree(self.nodes, self.root).prove(key)

    def root_at(self, height: int) -> bytes | None:
        return self.kv.get(K.root(height))

    def history_window(self) -> tuple[int, int]:
        """(lowest, highest) height whose state `value_at` / `prove_at` can read: the last
        `keep_roots` heights (the oldest one only if its undo records are all stored)."""
        return max(0, self.height - self.keep_roots + 1), self.height

    def value_at(self, key: bytes, height: int) -> bytes | None:
        """The committed msgpack value of a state key as of `height` (None: absent then).

        Reads the current value, then undoes the blocks ``height+1 .. self.height`` that
        changed the key (newest first; the undo record of block j holds each changed key's
        value before j). Raises `LookupError` if `height` is outside `history_window` or
        an undo record is missing.
        """
        lo, hi = self.history_window()
        if not lo <= height <= hi:
            raise LookupError(f"height {height} is outside the readable window {lo}..{hi}")
        value = self.value(key)
        for h in range(self.height, height, -1):
            prev = self._undo(h)
            if key in prev:
                value = prev[key]
        return value

    def prove_at(self, key: bytes, height: int) -> tuple[bytes | None, SmtProof]:
        """(value, proof) of a state key against `root_at(height)` (see `value_at`)."""
        root = self.root_at(height)
        if root is None:
            raise LookupError(f"no state root kept for height {height}")
        value = self.value_at(key, height)
        return value, SparseMerkleTree(self.nodes, root).prove(key)

    def _undo(self, height: int) -> dict[bytes, bytes | None]:
        cached = self._undo_cache.get(height)
        if cached is not None:
            return cached
        raw = self.kv.get(K.undo(height))
        if raw is None:
            raise LookupError(f"no undo record for height {height}")
        rec = {bytes(k): v for k, v in msgpack.unpackb(raw, raw=True)}
        if len(self._undo_cache) >= UNDO_CACHE_ENTRIES:
            self._undo_cache.pop(next(iter(self._undo_cache)))
        self._undo_cache[height] = rec
        return rec

    def cache_sizes(self) -> dict[str, int]:
        """Entries in the caches: SMT nodes, decoded values, undo records."""
        return {"nodes": len(self.nodes.cache) + len(self.nodes.old), "state": len(self._cache) + len(self._cache_old),
                "undo": len(self._undo_cache)}

