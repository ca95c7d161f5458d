"""The intake path's batching: an event twice in one call is checked once, the gossip worker
admits everything queued meanwhile in one call, and `verify_batch` keeps its answers in order
whatever the chunking."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given, settings

import afterchain.node.runtime.intake as intake_mod
from afterchain.node.runtime import mempool as mempool_mod
from afterchain.node.runtime.mempool import verify_batch
from afterchain.node.runtime.runner import Node, NodeOptions
from afterchain.node.transport.memory import MemoryNetwork
from afterchain.protocol.codec import sha256
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.events import SignedEvent, event_id_of_signed

from ..strategies import message_strategy
from .util import CHAIN, VALIDATORS, genesis, product_event


def _node(tmp_path: Path) -> Node:
    return Node(key=VALIDATORS[1], genesis=genesis(), data_dir=tmp_path / "n1",
                transport=MemoryNetwork().add(VALIDATORS[1].public), options=NodeOptions(name="n1"))


def _count_verified(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sizes: list[int] = []
    real = intake_mod.verify_batch

    async def counting(raws: Any, chain_id: str, **kw: Any) -> Any:
        sizes.append(len(raws))
        return await real(raws, chain_id, **kw)

    monkeypatch.setattr(intake_mod, "verify_batch", counting)
    return sizes


async def test_an_event_twice_in_one_call_is_checked_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = _count_verified(monkeypatch)
    node = _node(tmp_path)
    a, b = product_event(1).encode(), product_event(2).encode()
    out = await node.submit([a, b, a, b, a], from_peer=True)
    assert [o.status for o in out] == ["accepted", "accepted", "duplicate", "duplicate", "duplicate"]
    assert out[0].event_id == out[2].event_id == out[4].event_id
    assert sizes == [2]
    assert len(node.mempool) == 2


async def test_gossip_worker_admits_queued_batches_in_one_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    node = _node(tmp_path)
    calls: list[int] = []
    real = node.intake.submit

    async def submit(raws: list[bytes], *a: Any, **kw: Any) -> Any:
        calls.append(len(raws))
        return await real(raws, *a, **kw)

    monkeypatch.setattr(node.intake, "submit", submit)
    monkeypatch.setattr(intake_mod, "GOSSIP_MERGE_MAX_EVENTS", 25)
    evs = [product_event(n).encode() for n in range(1, 41)]
    for lo in range(0, 40, 10):  # four batches of 10 queued while the worker was busy
        batch = evs[lo : lo + 10]
        node.intake.backlog.append((batch, [sha256(r) for r in batch]))
        node.intake.backlog_events += 10
    async with trio.open_nursery() as nursery:
        nursery.start_soon(node.intake.backlog_worker)
        with trio.fail_after(20):
            while node.intake.backlog_events:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert calls == [20, 20]  # merged up to GOSSIP_MERGE_MAX_EVENTS, batches never split
    assert len(node.mempool) == 40


@pytest.mark.parametrize("n", [1, 7, 8, 9, 300, 2 * mempool_mod.VERIFY_CHUNK_MIN_EVENTS + 5])
async def test_verify_batch_answers_in_order(n: int) -> None:
    raws = [product_event(i + 1).encode() for i in range(min(n, 40))]
    raws = (raws * (n // len(raws) + 1))[:n]
    bad = {0, n // 2, n - 1}
    raws = [b"\x00" + r if i in bad else r for i, r in enumerate(raws)]
    out = await verify_batch(raws, CHAIN)
    assert len(out) == n
    for i, (raw, res) in enumerate(zip(raws, out, strict=True)):
        if i in bad:
            assert isinstance(res, ProtocolError)
        else:
            assert isinstance(res, SignedEvent) and res.encode() == raw


@settings(max_examples=100)
@given(signed=message_strategy(SignedEvent))
def test_block_reads_name_each_event_by_its_id_without_decoding(signed: SignedEvent) -> None:
    raw = signed.encode()
    assert event_id_of_signed(raw).hex() == signed.id.hex() == SignedEvent.decode(raw).id.hex()
