"""The node's chain store (RocksDB via rocksdict): blocks, certificates, the consensus
log and the mempool journal. (Where an event was committed is the ledger's outcome record
``o``: `Ledger.event_outcome`.)

Layout (one RocksDB at ``<data_dir>/chain``, raw byte keys, big-endian heights):

| prefix | key | value |
|---|---|---|
| ``B`` | height (8) | encoded `Block` |
| ``C`` | height (8) | encoded `CommitCertificate` |
| ``L`` | consensus key | bytes the consensus core asked to persist |
| ``M`` | event id (32) | encoded `SignedEvent` accepted by the mempool, not yet committed |
| ``X`` | event id (32) | msgpack [code, message] of an accepted event the mempool dropped |
| ``E`` | height (8) | msgpack tags of the block's events for the event feed (`node.runtime.feed`; not synced) |
| ``m`` | ``head`` | the highest stored height (8) |

Invariants:
- `commit_block` writes block + certificate + head + mempool removals in one
  synced WriteBatch: after a crash, either all of a block is there or none of it;
- `persist` (the consensus log and signer guard) is synced before the caller sends the
  votes it covers (persist before send);
- the mempool journal is written (WAL, not fsynced) before the API answers 202, so a
  killed process never loses an accepted event; on restart the node reloads it. Only the
  node a client submitted an event to journals it (a peer's gossiped copy is not: the
  origin keeps it and re-gossips it); `commit_block` / `journal_drop` delete only ``M``
  keys this store wrote (tracked in memory), never a tombstone for a key never written.

Storage faults: every RocksDB call goes through `storage_guard` (``StorageFault``: disk
full, I/O error, corruption; the node stops, exit code 6). The store opens its write-ahead
log strictly (`rocksdb_options(strict_wal=True)`): a truncated or damaged log is refused
at start rather than silently cut back to its last whole record, which would drop synced
blocks and this validator's own votes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import cast

import msgpack
from rocksdict import Checkpoint, Rdict, WriteBatch, WriteOptions

from afterchain.node.common.rocks import raise_storage_fault, rocksdb_options, storage_guard
from afterchain.protocol.block import Block, CommitCertificate

__all__ = ["ChainStore"]

_H = struct.Struct(">Q")


def _h(height: int) -> bytes:
    return _H.pack(height)


class ChainStore:
    def __init__(self, path: str | Path) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        with storage_guard("chain", "open"):
            self._db = Rdict(str(path), rocksdb_options(strict_wal=True))
        self._sync = WriteOptions()
        self._sync.sync = True
        self._nosync = WriteOptions()
        raw = self._get(b"mhead")
        self.head = _H.unpack(raw)[0] if raw else 0
        # ids with an ``M`` key: a block deletes only those (most events of a block were
        # never journaled here: they came by gossip), so no tombstone is written for a key
        # that does not exist. Bounded like the journal itself (the mempool's accepted events).
        self._journaled: set[bytes] = {eid for eid, _ in self.journal()}

    def close(self) -> None:
        with storage_guard("chain", "close"):
            self._db.close()

    def _get(self, key: bytes) -> bytes | None:
        try:
            v = self._db.get(key)
        except Exception as exc:
            raise_storage_fault(exc, "chain", "read")
        return bytes(v) if v is not None else None

    def _write(self, wb: WriteBatch, opts: WriteOptions, op: str) -> None:
        with storage_guard("chain", op):
            self._db.write(wb, opts)

    # ------------------------------------------------------------------ snapshots
    def checkpoint(self, path: str | Path) -> None:
        """A RocksDB checkpoint of the store at `path` (a new directory; hard links where it
        is on the same file system): consistent at one instant, every write batch in or out
        whole (`node.runtime.snapshot`)."""
        with storage_guard("chain", "checkpoint"):
            Checkpoint(self._db).create_checkpoint(str(path))

    def truncate_for_restore(self, height: int) -> None:
        """Keep the chain up to `height` and nothing of this node's own: blocks, certificates
        and feed tags above `height` go, and so do the consensus log (another node's votes),
        the mempool journal and its drop records (`node.runtime.snapshot.restore_snapshot`,
        on the staged copy of a snapshot)."""
        wb = WriteBatch(raw_mode=True)
        for k, _ in self._items(b""):
            p = k[:1]
            if p in (b"L", b"M", b"X") or (p in (b"B", b"C", b"E") and len(k) == 9 and _H.unpack(k[1:])[0] > height):
                wb.delete(k)
        wb.put(b"mhead", _h(height))
        self._write(wb, self._sync, "truncate")
        self.head = height
        self._journaled.clear()

    # ------------------------------------------------------------------ blocks
    def commit_block(self, block: Block, cert: CommitCertificate, event_ids: Sequence[bytes]) -> None:
        """One committed block: `commit_blocks` of one."""
        self.commit_blocks(((block, cert, event_ids),))

    def commit_blocks(self, items: Sequence[tuple[Block, CommitCertificate, Sequence[bytes]]]) -> None:
        """Several consecutive committed blocks (catch-up) in ONE synced WriteBatch: all or none
        of them survive a crash, and all are durable before the caller executes any."""
        wb = WriteBatch(raw_mode=True)
        top = self.head
        done: set[bytes] = set()
        for block, cert, event_ids in items:
            height = block.header.height
            wb.put(b"B" + _h(height), block.encode())
            wb.put(b"C" + _h(height), cert.encode())
            done.update(self._journaled.intersection(event_ids))
            top = max(top, height)
        for eid in done:
            wb.delete(b"M" + eid)
        if top > self.head:
            wb.put(b"mhead", _h(top))
        self._write(wb, self._sync, "block commit")
        self._journaled.difference_update(done)
        self.head = top

    def block_bytes(self, height: int) -> bytes | None:
        return self._get(b"B" + _h(height))

    def block(self, height: int) -> Block | None:
        raw = self.block_bytes(height)
        return Block.decode(raw, max_bytes=1 << 30) if raw is not None else None

    def certificate(self, height: int) -> CommitCertificate | None:
        raw = self.certificate_bytes(height)
        return CommitCertificate.decode(raw) if raw is not None else None

    def certificate_bytes(self, height: int) -> bytes | None:
        return self._get(b"C" + _h(height))

    # ------------------------------------------------------------------ event feed tags
    def put_feed_tags(self, height: int, packed: bytes) -> None:
        """The feed's tags of an executed block (not synced: they are taken again when missing)."""
        with storage_guard("chain", "feed tags"):
            self._db.put(b"E" + _h(height), packed, self._nosync)

    def feed_tags(self, height: int) -> bytes | None:
        return self._get(b"E" + _h(height))

    # ------------------------------------------------------------------ consensus log
    def persist(self, items: Iterable[tuple[bytes, bytes | None]]) -> None:
        """Write consensus records (None deletes) in one synced batch."""
        wb = WriteBatch(raw_mode=True)
        n = 0
        for k, v in items:
            n += 1
            if v is None:
                wb.delete(b"L" + k)
            else:
                wb.put(b"L" + k, v)
        if n:
            self._write(wb, self._sync, "consensus log")

    def _items(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Keys (and values) from `prefix` on, in order (raw mode: bytes)."""
        with storage_guard("chain", "scan"):
            it = cast("Iterator[tuple[bytes, bytes]]", self._db.items(from_key=prefix))
        while True:
            try:
                item = next(it, None)
            except Exception as exc:
                raise_storage_fault(exc, "chain", "scan")
            if item is None:
                return
            yield item

    def consensus_records(self) -> Iterator[tuple[bytes, bytes]]:
        for k, v in self._items(b"L"):
            if not k.startswith(b"L"):
                break
            yield bytes(k[1:]), bytes(v)

    # ------------------------------------------------------------------ mempool journal
    def journal_add(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        wb = WriteBatch(raw_mode=True)
        ids = []
        for eid, raw in items:
            wb.put(b"M" + eid, raw)
            ids.append(eid)
        self._write(wb, self._nosync, "mempool journal")
        self._journaled.update(ids)

    def journal_drop(self, items: Iterable[tuple[bytes, str, str]]) -> None:
        """Remove journaled events the mempool gave up on, recording why."""
        wb = WriteBatch(raw_mode=True)
        done = []
        for eid, code, message in items:
            if eid in self._journaled:
                wb.delete(b"M" + eid)
                done.append(eid)
            wb.put(b"X" + eid, msgpack.packb([code, message]))
        self._write(wb, self._nosync, "mempool journal")
        self._journaled.difference_update(done)

    def journal(self) -> Iterator[tuple[bytes, bytes]]:
        for k, v in self._items(b"M"):
            if not k.startswith(b"M"):
                break
            yield bytes(k[1:]), bytes(v)

    def dropped(self, event_id: bytes) -> tuple[str, str] | None:
        raw = self._get(b"X" + event_id)
        if raw is None:
            return None
        code, message = msgpack.unpackb(raw)
        return code, message
