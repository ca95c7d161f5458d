"""Key-value storage under the ledger: RocksDB (rocksdict) or an in-memory dict.

The ledger writes one block as ONE atomic batch (`KV.write`), fsync'd for RocksDB, so a
crash leaves either the whole block or none of it. Key prefixes (one byte, then the rest;
the functions are `protocol.state_keys`):

| prefix | key | value |
|---|---|---|
| ``n`` | SMT node hash | the node's 65-byte encoding (`protocol.smt`) |
| ``v`` | state key | msgpack value (the SMT holds SHA-256 of it) |
| ``i`` | index key (see `protocol.state_keys`) | empty |
| ``o`` | event id | msgpack outcome ``[height, index, code, message, detail]`` |
| ``b`` | height (8 bytes BE) | msgpack list of the block's raw events and its time |
| ``r`` | height (8 bytes BE) | state root after that height |
| ``u`` | height (8 bytes BE) | undo record of that height (`node.app.state`) |
| ``s`` | height (8 bytes BE) | hashes of the SMT nodes that height's update left behind (32 bytes each, concatenated) |
| ``w`` | SMT node hash | height (8 bytes BE) at which a block wrote that node again while a stale list named it |
| ``m`` | ``height`` / ``genesis`` | meta: last committed height (8 bytes BE) / genesis hash |
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator, Mapping
from typing import Protocol

from afterchain.protocol import state_keys as K

__all__ = ["KV", "MemoryKV", "NodeCache", "RocksKV", "open_kv"]


class KV(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        """`get` of each key (RocksDB: one multi-get)."""
        ...

    def scan(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Items with start <= key < end, in key order."""
        ...

    def write(self, items: Mapping[bytes, bytes | None], *, sync: bool = True) -> None:
        """Apply puts (and deletes for None) atomically, and durably unless `sync` is False
        (then a later synced write makes it durable too: writes reach the disk in order)."""
        ...

    def close(self) -> None: ...


class MemoryKV:
    """A dict, plus a sorted list of the keys under ``SORTED_PREFIXES`` so that `scan` over
    the indexes is a bisection (other prefixes are scanned by sorting: tests only)."""

    SORTED_PREFIXES = (K.INDEX,)

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self._sorted: list[bytes] = []

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        get = self.data.get
        return [get(k) for k in keys]

    def scan(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        if start[:1] in self.SORTED_PREFIXES and end[:1] == start[:1]:
            i = bisect_left(self._sorted, start)
            j = bisect_left(self._sorted, end)
            keys = self._sorted[i:j]
        else:
            keys = sorted(k for k in self.data if start <= k < end)
        for k in keys:
            yield k, self.data[k]

    def write(self, items: Mapping[bytes, bytes | None], *, sync: bool = True) -> None:
        data, srt = self.data, self._sorted
        for k, v in items.items():
            tracked = k[:1] in self.SORTED_PREFIXES
            if v is None:
                if data.pop(k, None) is not None and tracked:
                    del srt[bisect_left(srt, k)]
            else:
                if tracked and k not in data:
                    insort(srt, k)
                data[k] = v

    def close(self) -> None:
        pass


class RocksKV:
    """RocksDB via rocksdict in raw mode; `write` is one WriteBatch with sync=True (unless
    `sync` is False here or in the call); tables uncompressed unless `compression`."""

    def __init__(self, path: str, *, sync: bool = True, compression: bool = False) -> None:
        from rocksdict import DBCompressionType, Rdict, WriteOptions

        from afterchain.node.common.rocks import (
            LEDGER_BLOCK_CACHE_BYTES,
            raise_storage_fault,
            rocksdb_options,
            storage_guard,
        )

        self._guard = storage_guard
        self._raise = raise_storage_fault

        opts = rocksdb_options(LEDGER_BLOCK_CACHE_BYTES)
        opts.increase_parallelism(2)
        # Off by default: most keys and values are SHA-256 digests (SMT nodes, ids), which do
        # not compress, while compression costs background CPU per applied event (flush and
        # compaction) and a decompression on every block read from a table.
        if not compression:
            opts.set_compression_type(DBCompressionType.none())
        with storage_guard("state", "open"):
            self._db = Rdict(path, opts)
        self._wo = WriteOptions()
        self._wo.sync = sync
        self._wo_nosync = WriteOptions()
        self._wo_nosync.sync = False

    def get(self, key: bytes) -> bytes | None:
        try:
            return self._db.get(key)
        except Exception as exc:
            self._raise(exc, "state", "read")

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        if not keys:
            return []
        try:
            found: list[bytes | None] = self._db.get(keys)  # type: ignore[arg-type, assignment]
            return found
        except Exception as exc:
            self._raise(exc, "state", "read")

    def scan(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        from rocksdict import ReadOptions

        ro = ReadOptions()
        ro.set_iterate_upper_bound(end)
        guard = self._guard
        with guard("state", "scan"):
            it = self._db.iter(ro)
            it.seek(start)
            valid = it.valid()
            if not valid:
                it.status()  # a read error ends the iteration: raise it, never a short answer
        while valid:
            yield it.key(), it.value()
            try:
                it.next()
                valid = it.valid()
                if not valid:
                    it.status()
            except Exception as exc:
                self._raise(exc, "state", "scan")

    def write(self, items: Mapping[bytes, bytes | None], *, sync: bool = True) -> None:
        from rocksdict import WriteBatch

        wb = WriteBatch(raw_mode=True)
        put, delete = wb.put, wb.delete  # (bound once: a block batch has thousands of entries)
        for k, v in items.items():
            if v is None:
                delete(k)
            else:
                put(k, v)
        with self._guard("state", "block commit"):
            self._db.write(wb, self._wo if sync else self._wo_nosync)

    def delete_range(self, start: bytes, end: bytes, *, sync: bool = True) -> None:
        """Delete every key with start <= key < end (one range tombstone: snapshots drop
        the SMT nodes this way, `node.runtime.snapshot`)."""
        from rocksdict import WriteBatch

        wb = WriteBatch(raw_mode=True)
        wb.delete_range(start, end)
        with self._guard("state", "delete range"):
            self._db.write(wb, self._wo if sync else self._wo_nosync)

    def compact(self, start: bytes | None = None, end: bytes | None = None) -> None:
        """Flush and compact [start, end) (everything when both are None): deleted keys
        leave the table files (a snapshot then holds only what it keeps)."""
        with self._guard("state", "compact"):
            self._db.flush()
            self._db.compact_range(start, end)

    def close(self) -> None:
        with self._guard("state", "close"):
            self._db.close()

    def checkpoint(self, path: str) -> None:
        """A RocksDB checkpoint at `path` (a new directory): the store at one instant, each
        block's batch in or out whole (snapshots: `node.runtime.snapshot`)."""
        from rocksdict import Checkpoint

        with self._guard("state", "checkpoint"):
            Checkpoint(self._db).create_checkpoint(path)


def open_kv(path: str | None, *, sync: bool = True, compression: bool = False) -> KV:
    return MemoryKV() if path is None else RocksKV(path, sync=sync, compression=compression)


class NodeCache:
    """`protocol.smt.NodeStore` over the KV (prefix ``n``), with a bounded read cache.

    `put_many` does not write: new nodes wait in `pending` until the ledger commits them
    with the block's batch (`take_pending`). The cache has two generations of at most
    `max_nodes` each: when the young one fills up it becomes the old one (the previous old
    one is dropped) and a hit in the old one is promoted, so hot nodes (the top of the
    tree) stay cached and memory stays bounded.
    """

    def __init__(self, kv: KV, max_nodes: int = 131_072) -> None:
        self.kv = kv
        self.cache: dict[bytes, bytes] = {}
        self.old: dict[bytes, bytes] = {}
        self.pending: dict[bytes, bytes] = {}
        self.max_nodes = max_nodes

    def _remember(self, node_hash: bytes, value: bytes) -> None:
        if len(self.cache) >= self.max_nodes:
            self.old = self.cache
            self.cache = {}
        self.cache[node_hash] = value

    def get(self, node_hash: bytes) -> bytes | None:
        v = self.cache.get(node_hash)
        if v is not None:
            return v
        v = self.pending.get(node_hash)
        if v is not None:
            return v
        v = self.old.get(node_hash)
        if v is None:
            v = self.kv.get(K.smt_node(node_hash))
            if v is None:
                return None
        self._remember(node_hash, v)
        return v

    def put_many(self, nodes: Mapping[bytes, bytes]) -> None:
        self.pending.update(nodes)

    def take_pending(self) -> dict[bytes, bytes]:
        out = {K.smt_node(k): v for k, v in self.pending.items()}
        if len(self.cache) + len(self.pending) >= self.max_nodes:
            self.old = self.cache
            self.cache = {}
        self.cache.update(self.pending)
        self.pending = {}
        return out

    def drop_pending(self) -> None:
        self.pending = {}
