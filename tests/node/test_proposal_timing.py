"""When a primary proposes (`Proposer.maybe_propose`): a lone event on a quiet network goes out
after the genesis `block_interval_ms`; once blocks carry `busy_block_events` or more, the
primary waits `busy_block_interval_ms` for a fuller block unless `full_block_events` are
ready sooner (issue 10: a block costs each node roughly 12 ms of CPU besides its events)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from afterchain.node.bench import intake

RAWS = intake._events(900)


def _primary(tmp_path: Path) -> Any:
    node = intake._node(tmp_path, 0)  # validator 0 is the primary of view 0
    assert node.replica.is_primary and node.replica.active
    assert node.consensus_params(1).block_interval_ms == 100
    assert (node.options.busy_block_events, node.options.busy_block_interval_ms, node.options.full_block_events) == (100, 300, 500)
    return node


def _proposes_after(node: Any, since_s: float) -> bool:
    """Would the primary propose now, `since_s` after its last proposal?"""
    before = node.replica.next_seq
    node.proposer.last_propose_s = time.monotonic() - since_s
    node.proposer.maybe_propose()
    return node.replica.next_seq > before


async def test_a_lone_event_on_a_quiet_network_goes_out_after_the_block_interval(tmp_path: Path) -> None:
    node = _primary(tmp_path)
    await node.submit(RAWS[:1], from_peer=True)
    assert not _proposes_after(node, 0.05)  # never before the genesis interval
    assert _proposes_after(node, 0.11)
    assert node.proposer.last_events == 1
    await node.submit(RAWS[1:2], from_peer=True)
    assert _proposes_after(node, 0.11)  # small blocks: the network is not busy
    node.close()


async def test_after_a_busy_block_the_primary_waits_for_a_fuller_one(tmp_path: Path) -> None:
    node = _primary(tmp_path)
    await node.submit(RAWS[:150], from_peer=True)
    assert _proposes_after(node, 0.11)
    assert node.proposer.last_events == 150  # >= busy_block_events: busy
    await node.submit(RAWS[150:250], from_peer=True)
    assert not _proposes_after(node, 0.11)
    assert not _proposes_after(node, 0.25)
    assert _proposes_after(node, 0.31)  # busy_block_interval_ms has passed
    assert node.proposer.last_events == 100
    node.close()


async def test_a_busy_primary_proposes_early_once_a_full_block_is_ready(tmp_path: Path) -> None:
    node = _primary(tmp_path)
    await node.submit(RAWS[:150], from_peer=True)
    assert _proposes_after(node, 0.11)
    await node.submit(RAWS[150:650], from_peer=True)  # 500 ready = full_block_events
    assert not _proposes_after(node, 0.05)  # still never before the genesis interval
    assert _proposes_after(node, 0.11)
    assert node.proposer.last_events == 500
    node.close()
