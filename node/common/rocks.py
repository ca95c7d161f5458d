"""RocksDB options shared by the node's two stores: the runtime's chain store and the
application's state store (one set of limits, each store with its own block cache), and
what a store does when the disk fails it (`StorageFault`, `storage_guard`).

Storage faults: rocksdict raises a plain `Exception` whose text is RocksDB's status ("IO
error: ...", "Corruption: ..."). `storage_guard` turns those into `StorageFault` (kind
``disk_full``, ``io_error`` or ``corruption``), logs ``storage_fault`` at critical level,
and calls the process's fault handler (`set_storage_fault_handler`): `afterchain node run`
installs one that stops the process at once with exit code 6. A node never goes on after
a failed write or fsync: what reached the disk is unknown (the page cache may have dropped
the dirty pages; RocksDB itself turns read-only), so the only safe state is the durable one
a restart recovers (docs/OPERATIONS.md, "Storage faults").
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

from rocksdict import BlockBasedOptions, Cache, DBRecoveryMode, Options

__all__ = ["CHAIN_BLOCK_CACHE_BYTES", "LEDGER_BLOCK_CACHE_BYTES", "StorageFault", "classify_storage_error",
           "raise_storage_fault", "report_storage_fault", "rocksdb_options", "set_storage_fault_handler", "storage_guard"]

WRITE_BUFFER_BYTES = 16 << 20
WRITE_BUFFERS_MAX = 2
CHAIN_BLOCK_CACHE_BYTES = 8 << 20
"""The chain store's block cache: its reads are of recent blocks (API, a peer's catch-up),
mostly still in the memtable or the OS page cache, so RocksDB's default size only filled
with blocks nobody read again (docs/ARCHITECTURE.md, "Measurements behind the code")."""
LEDGER_BLOCK_CACHE_BYTES = 32 << 20
"""The ledger's block cache (SMT nodes, state values, indexes): RocksDB's default size,
made explicit; it is full after ~100k events."""


def rocksdb_options(block_cache_bytes: int = CHAIN_BLOCK_CACHE_BYTES, *, strict_wal: bool = False) -> Options:
    """The RocksDB options of the node's stores (chain store and ledger), raw mode.

    - Memtables are resident memory: 2 x 16 MiB bounds them (larger ones grew a node's RSS
      under load and bought no speed).
    - Most point reads miss (a new event's outcome key, read for every admitted event and
      again at execution, a new product's state key): bloom filters on tables and memtable
      answer a miss several times faster.
    - The block cache is bounded by `block_cache_bytes` (each store has its own).
    - `strict_wal` (the chain store): opening refuses a write-ahead log with a damaged or
      truncated record (RocksDB's absolute consistency) instead of silently recovering to
      the last whole record, which would drop synced writes (blocks, this validator's own
      votes). The state store keeps point-in-time recovery: its writes are not synced and
      the blocks it lost are executed again from the chain store at start.
    """
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.set_write_buffer_size(WRITE_BUFFER_BYTES)
    opts.set_max_write_buffer_number(WRITE_BUFFERS_MAX)
    table = BlockBasedOptions()
    table.set_bloom_filter(10, False)
    table.set_block_cache(Cache(block_cache_bytes))
    opts.set_block_based_table_factory(table)
    opts.set_memtable_prefix_bloom_ratio(0.1)
    opts.set_memtable_whole_key_filtering(True)
    if strict_wal:
        opts.set_wal_recovery_mode(DBRecoveryMode.absolute_consistency())
    return opts


# --------------------------------------------------------------------------- storage faults
_HINTS = {
    "disk_full": "free space on the data directory's file system, then start the node again: it recovers "
                 "from its synced state and catches up",
    "io_error": "the disk failed a write or fsync: check the device (dmesg, SMART); start the node again on a "
                "healthy disk (it recovers from its synced state), or wipe its data and let it resync",
    "corruption": "a data file is damaged: do not start the node on it; restore a snapshot or delete the data "
                  "directory and let the node resync from its peers (docs/OPERATIONS.md, 'Storage faults')",
}


class StorageFault(Exception):
    """A store's disk failed it: `kind` is ``disk_full``, ``io_error`` or ``corruption``,
    `store` the store (``chain``, ``state``), `op` what it was doing, `detail` RocksDB's
    text. The node stops (exit code 6) and never serves or signs on top of it."""

    def __init__(self, kind: str, store: str, op: str, detail: str) -> None:
        self.kind, self.store, self.op, self.detail = kind, store, op, detail
        super().__init__(f"storage fault ({kind}) in the {store} store during {op}: {detail}; {_HINTS[kind]}")

    @property
    def hint(self) -> str:
        return _HINTS[self.kind]


def classify_storage_error(exc: BaseException) -> str | None:
    """The `StorageFault` kind of an exception rocksdict raised, None if it is not one (a
    bug: a wrong argument type is a `TypeError`, never a storage fault)."""
    if type(exc) is not Exception and not isinstance(exc, OSError):
        return None
    text = str(exc)
    low = text.lower()
    if "no space left" in low or "file too large" in low or "quota exceeded" in low or "enospc" in low:
        return "disk_full"
    if text.startswith("Corruption") or "corruption" in low or "checksum mismatch" in low:
        return "corruption"
    if text.startswith("IO error") or isinstance(exc, OSError):
        return "io_error"
    return None


_handler: Callable[[StorageFault], None] | None = None
_reported = threading.Event()


def set_storage_fault_handler(handler: Callable[[StorageFault], None] | None) -> None:
    """What the process does on the first storage fault after it is logged (`afterchain node
    run`: stop at once, exit code 6). None (the default, tests): the fault is only raised."""
    global _handler
    _handler = handler
    _reported.clear()


@contextmanager
def storage_guard(store: str, op: str) -> Iterator[None]:
    """Turn a RocksDB failure inside the block into a `StorageFault` (logged once per
    process, then handed to the fault handler, then raised). Hot paths (point reads) call
    `raise_storage_fault` from their own ``except`` instead: a ``try`` costs nothing until
    it raises, a context manager costs a generator per call."""
    try:
        yield
    except Exception as exc:
        raise_storage_fault(exc, store, op)


def raise_storage_fault(exc: Exception, store: str, op: str) -> NoReturn:
    """Raise `exc` as a `StorageFault` (reported first) if it is one, else as it is."""
    if isinstance(exc, StorageFault):
        raise exc
    kind = classify_storage_error(exc)
    if kind is None:
        raise exc
    fault = StorageFault(kind, store, op, str(exc))
    report_storage_fault(fault)
    raise fault from exc


def report_storage_fault(fault: StorageFault) -> None:
    """Log `fault` and hand it to the process's handler (once per process); the caller
    raises it then."""
    if _reported.is_set():
        return
    _reported.set()
    from afterchain.node.common.log import get_logger

    get_logger().critical("storage_fault", kind=fault.kind, store=fault.store, op=fault.op, detail=fault.detail,
                          hint=fault.hint)
    if _handler is not None:
        _handler(fault)
