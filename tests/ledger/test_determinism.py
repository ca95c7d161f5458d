"""Determinism across processes, replay from stored blocks, and crash safety of the block batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from afterchain.node.app.ledger import Ledger, iter_blocks
from afterchain.node.app.store import RocksKV

from .randomrun import run
from .world import make_genesis

ROOT = Path(__file__).resolve().parents[2]


def _spawn(seed: int, blocks: int, hashseed: str, path: str | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    args = [sys.executable, "-m", "tests.ledger.randomrun", str(seed), str(blocks)] + ([path] if path else [])
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)


def _roots(proc: subprocess.Popen[str]) -> list[str]:
    out, _ = proc.communicate(timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"random run failed with {proc.returncode}")
    return [json.loads(line).get("root") or json.loads(line)["final"] for line in out.splitlines()]


@pytest.mark.parametrize("seed", [11, 12])
def test_two_processes_with_different_hash_seeds_agree_and_replay_reproduces(seed: int, tmp_path: Path) -> None:
    blocks = 40
    store = str(tmp_path / "db")
    a = _spawn(seed, blocks, "1", store)
    b = _spawn(seed, blocks, "4242")
    ra, rb = _roots(a), _roots(b)
    assert len(ra) == blocks + 1 and ra == rb
    # replay the stored blocks from genesis into a fresh instance: same root at every height
    src = Ledger.open(store, make_genesis(balance=300_000))
    fresh = Ledger.open(None, make_genesis(balance=300_000))
    for height, time_ms, events in iter_blocks(src):
        fresh.apply_block(height, time_ms, events)
        assert fresh.state_root == src.root_at(height)
    assert fresh.height == src.height and fresh.state_root.hex() == ra[-1]
    src.close()


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 2**32))
def test_any_seed_replays_to_the_same_roots(seed: int) -> None:
    from .randomrun import Driver

    led = Ledger.open(None, make_genesis(balance=300_000))
    d = Driver(seed, led)
    d.setup()
    roots = [d.step() for _ in range(12)]
    fresh = Ledger.open(None, make_genesis(balance=300_000))
    replayed = [fresh.apply_block(h, t, evs).state_root for h, t, evs in iter_blocks(led)]
    assert replayed[2:] == roots


def test_in_process_runs_repeat() -> None:
    assert run(5, 15) == run(5, 15)
    assert run(5, 15) != run(6, 15)


def test_cache_sizes_do_not_change_results(tmp_path: Path) -> None:
    assert run(8, 30, str(tmp_path / "db"), tiny_caches=True) == run(8, 30)


def test_failure_before_the_batch_write_leaves_the_last_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = str(tmp_path / "db")
    src = Ledger.open(None, make_genesis(balance=300_000))
    from .randomrun import Driver

    d = Driver(3, src)
    d.setup()
    for _ in range(8):
        d.step()
    led = Ledger.open(store, make_genesis(balance=300_000))
    blocks = list(iter_blocks(src))
    for height, t, evs in blocks[:-1]:
        led.apply_block(height, t, evs)
    height, t, evs = blocks[-1]
    before = (led.height, led.state_root)

    def crash(items: object, **kwargs: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(led.kv, "write", crash)
    with pytest.raises(OSError):
        led.apply_block(height, t, evs)
    monkeypatch.undo()
    led.close()
    again = Ledger.open(store, make_genesis(balance=300_000))
    assert (again.height, again.state_root) == before
    assert again.stored_block(height) is None and again.root_at(height) is None
    again.apply_block(height, t, evs)
    assert again.state_root == src.state_root
    again.close()


def test_kill_mid_run_reopens_at_a_committed_block(tmp_path: Path) -> None:
    store = str(tmp_path / "db")
    proc = _spawn(21, 100_000, "7", store)
    assert proc.stdout is not None
    for line in proc.stdout:
        if json.loads(line).get("height", 0) >= 15:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    led = Ledger.open(store, make_genesis(balance=300_000))
    height = led.height
    assert height >= 15
    reference = run(21, height - 2)  # the random run applies 2 set-up blocks first
    assert led.state_root == reference[-1]
    assert led.root_at(height) == led.state_root
    # the store is usable: every stored block replays to the same root
    fresh = Ledger.open(None, make_genesis(balance=300_000))
    for h, t, evs in iter_blocks(led):
        fresh.apply_block(h, t, evs)
    assert fresh.state_root == led.state_root
    led.close()


def test_unsynced_block_writes_then_a_synced_one_reopen_at_the_same_state(tmp_path: Path) -> None:
    """Catch-up writes the ledger's batches of a stored run of blocks unsynced but the last
    (`BlockExecutor.store_commits`): same roots, and all of it there after a reopen."""
    from .randomrun import Driver

    src = Ledger.open(None, make_genesis(balance=300_000))
    d = Driver(4, src)
    d.setup()
    for _ in range(10):
        d.step()
    store = str(tmp_path / "db")
    led = Ledger.open(store, make_genesis(balance=300_000))
    blocks = list(iter_blocks(src))
    for i, (height, t, evs) in enumerate(blocks):
        led.apply_block(height, t, evs, sync=i == len(blocks) - 1)
        assert led.state_root == src.root_at(height)
    led.close()
    again = Ledger.open(store, make_genesis(balance=300_000))
    assert (again.height, again.state_root) == (src.height, src.state_root)
    again.close()


def test_store_refuses_another_genesis(tmp_path: Path) -> None:
    from afterchain.protocol.errors import InvariantError

    store = str(tmp_path / "db")
    Ledger.open(store, make_genesis()).close()
    with pytest.raises(InvariantError):
        Ledger.open(store, make_genesis(balance=1))
    kv = RocksKV(store)
    assert kv.get(b"mheight") == (0).to_bytes(8, "big")
    kv.close()


def test_indexes_agree_with_the_records() -> None:
    from .randomrun import Driver

    led = Ledger.open(None, make_genesis(balance=300_000))
    d = Driver(31, led)
    d.setup()
    for _ in range(80):
        d.step()
    tickets = d.ids["ticket"] + d.ids["return"]
    assert len(tickets) > 20
    by_org: dict[tuple[str, str], list[bytes]] = {}
    for tid in tickets:
        t = led.ticket(tid)
        assert t is not None
        by_org.setdefault((t["org"], t["status"]), []).append(tid)
        assert tid in led.tickets_by_customer(t["cust"])
        assert tid in led.tickets_by_product(t["gtin"], t["serial"])
        # a pending deadline in the index is exactly one the record holds
        for due, kind, dtid in led.upcoming_deadlines(2**62):
            if dtid == tid:
                assert t[{"first_response": "fr_due", "resolution": "res_due", "auto_close": "ac_due"}[kind]] == due
    for (org, status), ids in by_org.items():
        assert sorted(led.tickets_by_org(org, status)) == sorted(ids)
    # money is conserved: genesis total = balances + held escrows
    total = 5 * 300_000
    accounts = ["acme", "audit", "fixit", "ship", "shop"] + ["cust:" + c.public.hex() for c in d.custs]
    held = sum(e["amount"] for e in (led.escrow(x) for x in d.ids["escrow"]) if e is not None and e["state"] == "held")
    assert sum(led.balance(a) for a in accounts) + held == total
