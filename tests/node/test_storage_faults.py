"""Storage faults on the node's two RocksDB stores (issue 28, point 5): a full disk, a
damaged table file and a truncated write-ahead log are each a `StorageFault` of the
right kind, raised (and handed to the process's handler) rather than answered around;
the chain store refuses a truncated log, the state store recovers from one and the
blocks it lost are executed again from the chain store."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from afterchain.node.app.store import RocksKV
from afterchain.node.common import rocks
from afterchain.node.common.rocks import StorageFault, classify_storage_error, set_storage_fault_handler
from afterchain.node.runtime.chain_store import ChainStore
from afterchain.node.runtime.executor import replay_stored


@pytest.fixture
def faults() -> Iterator[list[StorageFault]]:
    seen: list[StorageFault] = []
    set_storage_fault_handler(seen.append)
    try:
        yield seen
    finally:
        set_storage_fault_handler(None)


def test_rocksdb_messages_are_classified() -> None:
    assert classify_storage_error(Exception("IO error: While appending to file: x/000004.log: No space left on device")) == "disk_full"
    assert classify_storage_error(Exception("IO error: While appending to file: x/000004.log: File too large")) == "disk_full"
    assert classify_storage_error(Exception("IO error: While fsync: a file descriptor: Input/output error")) == "io_error"
    assert classify_storage_error(Exception("Corruption: block checksum mismatch: stored = 1, computed = 2")) == "corruption"
    assert classify_storage_error(Exception("Corruption: truncated record body")) == "corruption"
    assert classify_storage_error(TypeError("expected bytes")) is None  # a bug, not the disk
    assert classify_storage_error(Exception("something else")) is None


def test_a_write_past_the_file_size_limit_is_a_disk_full_fault(tmp_path: Path, faults: list[StorageFault]) -> None:
    """RLIMIT_FSIZE (no privileges needed) makes the kernel refuse the write-ahead log's
    append (EFBIG) as a full disk would (ENOSPC): a synced consensus-log write fails."""
    store = ChainStore(tmp_path / "chain")
    store.persist([(b"small", b"x" * 100)])
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, hard))
    try:
        with pytest.raises(StorageFault) as info:
            store.persist([(b"big", b"y" * (256 << 10))])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert info.value.kind == "disk_full" and info.value.store == "chain" and info.value.op == "consensus log"
    assert "free space" in str(info.value)
    assert faults == [info.value]  # the handler heard it once
    with pytest.raises(StorageFault):  # RocksDB stays read-only: nothing goes on after the failure
        store.persist([(b"after", b"z")])
    assert len(faults) == 1


def _flip_table_bytes(path: Path) -> Path:
    """Flip a byte in every 4 KiB of the largest table file (every data block is damaged)."""
    sst = max(path.glob("*.sst"), key=lambda p: p.stat().st_size)
    data = bytearray(sst.read_bytes())
    for i in range(100, len(data) - 200, 4096):
        data[i] ^= 0xFF
    sst.write_bytes(bytes(data))
    return sst


def test_a_damaged_table_file_is_a_corruption_fault_never_a_wrong_answer(tmp_path: Path,
                                                                         faults: list[StorageFault]) -> None:
    kv = RocksKV(str(tmp_path / "state"))
    kv.write({b"v%06d" % i: bytes([i % 251]) * 500 for i in range(4000)})
    kv.close()  # flushed to a table file
    _flip_table_bytes(tmp_path / "state")
    with pytest.raises(StorageFault) as info:
        kv = RocksKV(str(tmp_path / "state"))
        for i in range(4000):
            assert kv.get(b"v%06d" % i) == bytes([i % 251]) * 500
    assert info.value.kind == "corruption" and info.value.store == "state"
    assert "resync" in str(info.value)
    assert len(faults) == 1


def test_a_damaged_table_file_fails_a_scan_too(tmp_path: Path, faults: list[StorageFault]) -> None:
    store = ChainStore(tmp_path / "chain")
    store.persist([(b"k%06d" % i, b"v" * 500) for i in range(4000)])
    store.close()
    _flip_table_bytes(tmp_path / "chain")
    with pytest.raises(StorageFault) as info:
        store = ChainStore(tmp_path / "chain")
        assert len(list(store.consensus_records())) == 4000
    assert info.value.kind == "corruption"


_CRASH_AFTER_WRITES = textwrap.dedent("""
    import os, sys
    from afterchain.node.app.store import RocksKV
    from afterchain.node.runtime.chain_store import ChainStore
    store = ChainStore(sys.argv[1] + "/chain")
    kv = RocksKV(sys.argv[1] + "/state")
    for i in range(2000):
        store.persist([(b"k%06d" % i, b"v" * 500)])
        kv.write({b"s%06d" % i: b"w" * 500})
    os._exit(0)  # a crash: nothing flushed, everything is in the write-ahead logs
""")


def _truncate_wal(path: Path) -> None:
    (wal,) = [p for p in path.glob("*.log") if p.stat().st_size]
    with wal.open("r+b") as f:
        f.truncate(wal.stat().st_size // 2 + 17)


def test_a_truncated_chain_log_is_refused_and_a_truncated_state_log_recovers(tmp_path: Path,
                                                                            faults: list[StorageFault]) -> None:
    subprocess.run([sys.executable, "-c", _CRASH_AFTER_WRITES, str(tmp_path)], check=True, timeout=60)
    _truncate_wal(tmp_path / "chain")
    _truncate_wal(tmp_path / "state")
    # the chain store: synced blocks and votes may not silently disappear
    with pytest.raises(StorageFault) as info:
        ChainStore(tmp_path / "chain")
    assert info.value.kind == "corruption" and info.value.op == "open"
    assert "truncated" in info.value.detail
    # the state store: back to its last whole batch (its writes are replayed from the chain)
    kv = RocksKV(str(tmp_path / "state"))
    present = [kv.get(b"s%06d" % i) is not None for i in range(2000)]
    kv.close()
    n = sum(present)
    assert 0 < n < 2000 and present == [True] * n + [False] * (2000 - n)  # a prefix, whole batches


def test_a_ledger_ahead_of_the_chain_store_stops_the_node(faults: list[StorageFault]) -> None:
    """The chain store stores (synced) every block before the ledger applies it: a ledger
    ahead of it means the chain store lost synced blocks."""
    store: Any = SimpleNamespace(head=3)
    ledger: Any = SimpleNamespace(height=5)
    with pytest.raises(StorageFault) as info:
        replay_stored(store, ledger, known=None, log=None)  # type: ignore[arg-type]
    assert info.value.kind == "corruption" and "lost blocks it had synced" in str(info.value)
    assert faults == [info.value]


def test_the_fault_is_reported_once_per_handler(faults: list[StorageFault]) -> None:
    for _ in range(2):
        with pytest.raises(StorageFault), rocks.storage_guard("chain", "read"):
            raise Exception("IO error: While pread: Input/output error")
    assert len(faults) == 1
    with pytest.raises(ValueError), rocks.storage_guard("chain", "read"):
        raise ValueError("not a storage error")


_UNDER_SHIM = textwrap.dedent("""
    import sys, time
    from afterchain.node.common.rocks import StorageFault
    from afterchain.node.runtime.chain_store import ChainStore
    from afterchain.node.tools import faultfs
    store = ChainStore(sys.argv[1] + "/data/chain")
    store.persist([(b"before", b"x" * 100)])
    with open(sys.argv[1] + "/node.log", "a") as f:
        f.write("a log line outside the data directory\\n")
    faultfs.arm(sys.argv[2], sys.argv[3])
    time.sleep(0.05)  # the shim looks at the trigger every 20 ms
    try:
        store.persist([(b"after", b"y" * 100)])
    except StorageFault as exc:
        with open(sys.argv[1] + "/node.log", "a") as f:  # the rest of the machine still writes
            f.write("still writing\\n")
        print(exc.kind, exc.op)
        sys.exit(0)
    print("no fault")
    sys.exit(1)
""")


@pytest.mark.parametrize(("mode", "kind"), [("enospc", "disk_full"), ("eio-fsync", "io_error")])
def test_the_faultfs_shim_fails_only_the_data_directory(tmp_path: Path, mode: str, kind: str) -> None:
    from afterchain.node.tools import faultfs

    lib = faultfs.build(tmp_path / "shim")
    if lib is None:
        pytest.skip("no C compiler to build the LD_PRELOAD shim")
    (tmp_path / "data").mkdir()
    trigger = tmp_path / "trigger"
    env = {**os.environ, **faultfs.env(lib, tmp_path / "data", trigger)}
    r = subprocess.run([sys.executable, "-c", _UNDER_SHIM, str(tmp_path), str(trigger), mode], env=env,
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-1].split(maxsplit=1) == [kind, "consensus log"]
    assert "storage_fault" in r.stdout  # logged (critical) before it is raised
    assert (tmp_path / "node.log").read_text().splitlines() == ["a log line outside the data directory", "still writing"]


def test_node_run_refuses_a_truncated_chain_log_with_exit_code_6(tmp_path: Path) -> None:
    """The whole `afterchain node run` path: a node whose chain-store log was cut stops
    before it serves anything, with exit code 6, the `storage_fault` line and the reason on
    stderr."""
    from afterchain.node.tools.localnet import LocalNet

    net = LocalNet(tmp_path / "net")
    net.create(4, chain_id="storage-exit")
    data = net.root / "node1" / "data"
    data.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", _CRASH_AFTER_WRITES, str(data)], check=True, timeout=60)
    _truncate_wal(data / "chain")
    r = subprocess.run([sys.executable, "-m", "afterchain.node.cli", "node", "run", "--config",
                        str(net.root / "node1" / "node.toml")], capture_output=True, text=True, timeout=120,
                       check=False, cwd=str(net.root / "node1"))
    assert r.returncode == 6, r.stdout[-2000:] + r.stderr[-2000:]
    assert "node stopped: storage fault (corruption) in the chain store during open: Corruption" in r.stderr
    out = r.stdout + r.stderr  # (the log's stream)
    assert '"event": "storage_fault"' in out and '"kind": "corruption"' in out
