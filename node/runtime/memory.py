"""The node process's memory: glibc malloc settings, a periodic trim, and diagnostics.

A node's Python objects and RocksDB's caches level off under load, but glibc's heap kept
growing: memory freed inside it (RocksDB memtable arenas and blocks, Python objects over
512 B such as raw events and block encodings, freed by threads in up to 16 arenas) stayed
resident, most of the remaining growth (docs/ARCHITECTURE.md, "Measurements behind the code"). So a node (`tune_malloc`, called first thing in `run_node`):
- caps malloc arenas at `MALLOC_ARENAS_MAX` (glibc's default is 8 per core);
- runs `malloc_trim(0)` every `MALLOC_TRIM_INTERVAL_S` on a worker thread (`trimmer`),
  which hands free pages inside the heaps back to the kernel.
Neither changes what the node computes; on a non-glibc libc both are skipped.

Diagnostics are off unless switched on by the environment:

- ``AFTERCHAIN_MEMREPORT_S=N``: every N seconds (N >= 1) write one JSON report: RSS and
  `/proc/self/smaps_rollup`, glibc malloc totals (`mallinfo2`: heap obtained from the
  kernel, in use, free inside the heap, mmapped), Python's allocated block count, the
  sizes of the node's caches and indexes, and RocksDB's memory properties of both stores
  (memtables, table readers, block cache);
- ``AFTERCHAIN_TRACEMALLOC=F`` (with the above): trace Python allocations with F frames
  (1-25) from start-up and add the 25 lines whose allocations grew most since the first
  report (tracemalloc slows a node down ~2x: diagnostic runs only);
- ``AFTERCHAIN_MEMREPORT_DIR=D``: append reports to ``D/<node name>.jsonl`` (the bench
  deletes the network's directory, logs included) instead of logging ``memory_report``.

A report reads the process's own files and counters only; it changes nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import trio

from afterchain.node.runtime.threads import run_sync

__all__ = ["mallinfo", "memory_report", "reporter", "rocksdb_memory", "start_tracing", "trimmer", "tune_malloc", "write_report"]

ROCKSDB_PROPERTIES = (
    "rocksdb.cur-size-all-mem-tables",
    "rocksdb.size-all-mem-tables",
    "rocksdb.estimate-table-readers-mem",
    "rocksdb.block-cache-usage",
    "rocksdb.block-cache-pinned-usage",
    "rocksdb.num-live-versions",
    "rocksdb.total-sst-files-size",
    "rocksdb.estimate-num-keys",
)
TRACE_TOP_LINES = 25
MALLOC_ARENAS_MAX = 2
MALLOC_TRIM_INTERVAL_S = 10.0
_M_ARENA_MAX = -8  # glibc mallopt parameter number


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _libc() -> Any:
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


_LIBC = _libc()


def mallinfo() -> dict[str, int] | None:
    """glibc's malloc totals over all arenas (bytes), or None off glibc."""
    fn = getattr(_LIBC, "mallinfo2", None)
    if fn is None:
        return None
    fn.restype = _MallInfo2
    mi = fn()
    return {"heap": mi.arena, "in_use": mi.uordblks, "free": mi.fordblks, "mmapped": mi.hblkhd,
            "top_free": mi.keepcost}


_TRIMS: dict[str, float] = {"count": 0, "seconds": 0.0, "last_released": 0}
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def tune_malloc() -> bool:
    """Cap glibc's malloc arenas (before the node's threads start); False off glibc."""
    fn = getattr(_LIBC, "mallopt", None)
    if fn is None or getattr(_LIBC, "malloc_trim", None) is None:
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(fn(_M_ARENA_MAX, MALLOC_ARENAS_MAX))


def _rss_bytes() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return 0


def trim() -> int:
    """`malloc_trim(0)`: hand free heap pages back to the kernel; returns the RSS it dropped
    (bytes; other threads allocating meanwhile blur it)."""
    fn = getattr(_LIBC, "malloc_trim", None)
    if fn is None:
        return 0
    fn.argtypes = [ctypes.c_size_t]
    before = _rss_bytes()
    t0 = time.perf_counter()
    fn(0)
    _TRIMS["seconds"] += time.perf_counter() - t0
    _TRIMS["count"] += 1
    _TRIMS["last_released"] = before - _rss_bytes()
    return int(_TRIMS["last_released"])


async def trimmer(interval_s: float = MALLOC_TRIM_INTERVAL_S) -> None:
    """Trim the malloc heaps every `interval_s`, on a worker thread (a trim of a few hundred
    MB of heap takes milliseconds and holds each arena's lock meanwhile, not the GIL)."""
    if getattr(_LIBC, "malloc_trim", None) is None:
        return
    while True:
        await trio.sleep(interval_s)
        await run_sync(trim)


def _smaps_rollup() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for ln in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
            parts = ln.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                out[parts[0][:-1]] = int(parts[1]) * 1024
    except OSError:
        pass
    return {k: out[k] for k in ("Rss", "Anonymous", "Private_Dirty", "Shared_Clean", "Private_Clean", "Swap") if k in out}


def _threads() -> int:
    try:
        for ln in Path("/proc/self/status").read_text().splitlines():
            if ln.startswith("Threads:"):
                return int(ln.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def rocksdb_memory(db: Any) -> dict[str, int]:
    """RocksDB's memory properties of one open `rocksdict.Rdict` (bytes or counts)."""
    out: dict[str, int] = {}
    for p in ROCKSDB_PROPERTIES:
        try:
            v = db.property_int_value(p)
        except Exception:  # a property this build lacks is just left out
            v = None
        if v is not None:
            out[p.removeprefix("rocksdb.")] = int(v)
    return out


def _lens(node: Any) -> dict[str, int]:
    """Sizes of the node's caches and indexes (entries)."""
    led, mp, rep, known = node.ledger, node.mempool, node.replica, node.known
    sizes = {
        "verified": len(known.verified), "arrival": len(node.arrival), "committed_recent": len(known.committed_recent),
        "mempool": len(mp), "replica_slots": len(rep.preprepared_blocks()),
        "ledger_nodes": len(led._nodes.cache) + len(led._nodes.old), "ledger_state": len(led._cache) + len(led._cache_old),
        "ledger_undo": len(led._undo_cache), "ledger_code": len(led._code_cache),
    }
    for name in ("_nonce_cache", "_by_id", "_id_by_raw", "_by_sender", "_cursor", "_inflight", "_inflight_ids"):
        v = getattr(mp, name, None)
        if v is not None:
            sizes["mempool" + name] = len(v)
    for name in ("prepares", "commits", "checkpoints", "prepared_certs", "view_changes", "signed", "own_pp",
                 "voted", "seen", "reported", "fetched", "_hash_cache", "_vset_cache"):
        v = getattr(rep, name, None)
        if v is not None:
            sizes["replica_" + name.lstrip("_")] = len(v)
    return sizes


def memory_report(node: Any, baseline: tracemalloc.Snapshot | None = None) -> dict[str, Any]:
    report: dict[str, Any] = {
        "t_s": round(time.monotonic(), 1), "height": node.ledger.height, "threads": _threads(),
        "smaps": _smaps_rollup(), "malloc": mallinfo(), "trims": dict(_TRIMS), "py_blocks": sys.getallocatedblocks(), "lens": _lens(node),
        "rocksdb": {"chain": rocksdb_memory(node.store._db)},
    }
    kv_db = getattr(node.ledger.kv, "_db", None)
    if kv_db is not None:
        report["rocksdb"]["ledger"] = rocksdb_memory(kv_db)
    if tracemalloc.is_tracing():
        cur, peak = tracemalloc.get_traced_memory()
        report["traced"] = {"current": cur, "peak": peak}
        if baseline is not None:
            snap = tracemalloc.take_snapshot()
            stats = snap.compare_to(baseline, "lineno")[:TRACE_TOP_LINES]
            report["trace_top"] = [
                {"where": f"{'/'.join(s.traceback[0].filename.split('/')[-2:])}:{s.traceback[0].lineno}",
                 "size": s.size, "size_diff": s.size_diff, "count": s.count} for s in stats]
    return report


def start_tracing() -> None:
    """Start tracemalloc if ``AFTERCHAIN_TRACEMALLOC`` asks for it (before the node is built)."""
    frames = os.environ.get("AFTERCHAIN_TRACEMALLOC")
    if frames and os.environ.get("AFTERCHAIN_MEMREPORT_S"):
        tracemalloc.start(max(1, min(25, int(frames))))


async def reporter(node: Any, log: Any) -> None:
    """Write a memory report every ``AFTERCHAIN_MEMREPORT_S`` seconds; returns at once if unset."""
    every = os.environ.get("AFTERCHAIN_MEMREPORT_S")
    if not every:
        return
    period_s = max(1.0, float(every))
    out_dir = os.environ.get("AFTERCHAIN_MEMREPORT_DIR")
    path = Path(out_dir) / f"{node.options.name}.jsonl" if out_dir else None
    baseline = tracemalloc.take_snapshot() if tracemalloc.is_tracing() else None
    while True:
        await trio.sleep(period_s)
        write_report(node, path, log, baseline)


def write_report(node: Any, path: Path | None, log: Any, baseline: tracemalloc.Snapshot | None = None) -> None:
    """One `memory_report`, appended to `path` as a JSON line (or logged when None)."""
    report = memory_report(node, baseline)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.write(json.dumps(report) + "\n")
    else:
        log.info("memory_report", **report)
