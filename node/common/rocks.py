"""RocksDB options shared by the node's two stores: the runtime's chain store and the
application's state store (one set of limits, each store with its own block cache)."""

from __future__ import annotations

from rocksdict import BlockBasedOptions, Cache, Options

__all__ = ["CHAIN_BLOCK_CACHE_BYTES", "LEDGER_BLOCK_CACHE_BYTES", "rocksdb_options"]

WRITE_BUFFER_BYTES = 16 << 20
WRITE_BUFFERS_MAX = 2
CHAIN_BLOCK_CACHE_BYTES = 8 << 20
"""The chain store's block cache: its reads are of recent blocks (API, a peer's catch-up),
mostly still in the memtable or the OS page cache, so RocksDB's default size only filled
with blocks nobody read again (docs/ARCHITECTURE.md, "Measurements behind the code")."""
LEDGER_BLOCK_CACHE_BYTES = 32 << 20
"""The ledger's block cache (SMT nodes, state values, indexes): RocksDB's default size,
made explicit; it is full after ~100k events."""


def rocksdb_options(block_cache_bytes: int = CHAIN_BLOCK_CACHE_BYTES) -> Options:
    """The RocksDB options of the node's stores (chain store and ledger), raw mode.

    - Memtables are resident memory: 2 x 16 MiB bounds them (larger ones grew a node's RSS
      under load and bought no speed).
    - Most point reads miss (a new event's outcome key, read for every admitted event and
      again at execution, a new product's state key): bloom filters on tables and memtable
      answer a miss several times faster.
    - The block cache is bounded by `block_cache_bytes` (each store has its own).
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
    return opts
