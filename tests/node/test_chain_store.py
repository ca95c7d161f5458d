"""ChainStore write path: the mempool journal and the keys a committed block writes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from afterchain.node.runtime.chain_store import ChainStore


def _block(height: int) -> Any:
    return SimpleNamespace(header=SimpleNamespace(height=height), encode=lambda: b"block%d" % height)


def _cert(height: int) -> Any:
    return SimpleNamespace(encode=lambda: b"cert%d" % height)


def _deletes(s: ChainStore) -> int:
    """Tombstones written since the store opened (its memtable is never flushed here)."""
    return s._db.property_int_value("rocksdb.num-deletes-active-mem-table") or 0


def test_a_block_deletes_only_journaled_keys_and_the_journal_survives_reopen(tmp_path: Path) -> None:
    ids = [bytes([i]) * 32 for i in range(6)]
    s = ChainStore(tmp_path / "chain")
    s.journal_add([(ids[0], b"raw0"), (ids[1], b"raw1"), (ids[2], b"raw2")])
    s.close()
    s = ChainStore(tmp_path / "chain")  # the journaled ids are known again after a restart
    assert sorted(eid for eid, _ in s.journal()) == ids[:3]
    s.commit_block(_block(1), _cert(1), [ids[0], ids[3], ids[4]])  # 3, 4 came by gossip: never journaled
    assert _deletes(s) == 1
    assert sorted(eid for eid, _ in s.journal()) == ids[1:3]
    s.journal_drop([(ids[1], "mempool.expired", "gone"), (ids[5], "mempool.expired", "peer copy")])
    assert _deletes(s) == 2
    assert s.dropped(ids[5]) == ("mempool.expired", "peer copy")
    assert [eid for eid, _ in s.journal()] == [ids[2]]
    s.commit_block(_block(2), _cert(2), [ids[2]])
    assert _deletes(s) == 3
    assert list(s.journal()) == []
    assert s.head == 2
    s.close()


def test_a_catch_up_batch_deletes_only_journaled_keys(tmp_path: Path) -> None:
    ids = [bytes([i]) * 32 for i in range(6)]
    s = ChainStore(tmp_path / "chain")
    s.journal_add([(ids[1], b"raw1"), (ids[4], b"raw4")])
    s.commit_blocks([(_block(1), _cert(1), ids[:3]), (_block(2), _cert(2), ids[3:])])
    assert _deletes(s) == 2  # ids 1 and 4; the other four were never journaled here
    assert list(s.journal()) == []
    assert s.head == 2
    s.close()
