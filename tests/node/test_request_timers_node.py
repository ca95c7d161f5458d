"""Request timers on in-process nodes (issue 28): the backups replace a primary that
censors one organisation's events, or proposes one event per block at the last moment
(the test-only switches of node/testing/censor.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from afterchain.node.runtime.config import ConfigError, load_config
from afterchain.node.testing.censor import apply, censor_mode
from tests.node.util import ACME, memory_cluster, product_event, wait_for

TIMERS = {"request_forward_ms": 200, "request_timeout_ms": 800}


def _expiries(node: object, reason: str) -> float:
    return node.metrics.request_timer_expiries.labels(reason)._value.get()  # type: ignore[attr-defined]


async def test_backups_replace_a_primary_that_censors_an_organisation(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path, **TIMERS) as (nodes, _):
        assert nodes[0].replica.is_primary
        apply(nodes[0], "censor", frozenset({ACME.public}))
        evs = [product_event(n) for n in (1, 2, 3)]
        assert all(o.ok for o in await nodes[1].submit([e.encode() for e in evs]))
        await wait_for(lambda: all(nd.ledger.event_outcome(e.id) is not None for nd in nodes[1:] for e in evs), timeout=30)
        assert nodes[0].counters.get("test_censored", 0) >= 1  # it did leave them out while primary
        assert all(nd.replica.view >= 1 for nd in nodes[1:])
        assert sum(_expiries(nd, "request_timeout") + _expiries(nd, "slow_primary") for nd in nodes[1:]) >= 1
        assert sum(nd.metrics.request_forwards._value.get() for nd in nodes[1:]) >= 1


async def test_backups_replace_a_slow_primary(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path, **TIMERS) as (nodes, _):
        apply(nodes[0], "slow")
        evs = [product_event(n) for n in range(1, 41)]
        assert all(o.ok for o in await nodes[2].submit([e.encode() for e in evs]))
        await wait_for(lambda: all(nodes[2].ledger.event_outcome(e.id) is not None for e in evs), timeout=30)
        assert nodes[2].replica.view >= 1


async def test_no_view_change_under_an_honest_primary(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path, **TIMERS) as (nodes, _):
        evs = [product_event(n) for n in range(1, 201)]
        for i in range(0, 200, 50):
            assert all(o.ok for o in await nodes[i // 50].submit([e.encode() for e in evs[i : i + 50]]))
        await wait_for(lambda: all(nd.ledger.event_outcome(e.id) is not None for nd in nodes for e in evs), timeout=30)
        assert [nd.replica.view for nd in nodes] == [0, 0, 0, 0]
        assert sum(_expiries(nd, "request_timeout") + _expiries(nd, "slow_primary") for nd in nodes) == 0


def test_the_switch_needs_the_test_variable() -> None:
    with pytest.raises(ValueError, match="test-only"):
        censor_mode({"AFTERCHAIN_TEST_CENSOR": "slow"})
    with pytest.raises(ValueError, match="SENDERS"):
        censor_mode({"AFTERCHAIN_TEST_CENSOR": "censor", "AFTERCHAIN_TEST_SWITCHES": "1"})
    assert censor_mode({"AFTERCHAIN_TEST_CENSOR": "censor", "AFTERCHAIN_TEST_SWITCHES": "1",
                        "AFTERCHAIN_TEST_CENSOR_SENDERS": ACME.public.hex()}) == ("censor", frozenset({ACME.public}))
    assert censor_mode({}) is None


def test_consensus_section_of_node_toml(tmp_path: Path) -> None:
    for f in ("node.key", "genesis.json"):
        (tmp_path / f).write_text("x")
    base = '[node]\nname = "n"\ndata_dir = "d"\nkey_file = "node.key"\ngenesis_file = "genesis.json"\n'
    (tmp_path / "a.toml").write_text(base)
    c = load_config(tmp_path / "a.toml", env={}).consensus
    assert (c.request_forward_ms, c.request_timeout_ms, c.slow_blocks) == (2000, 8000, 3)
    (tmp_path / "b.toml").write_text(base + "[consensus]\nrequest_forward_ms = 500\nrequest_timeout_ms = 400\n")
    with pytest.raises(ConfigError, match=r"consensus\.request_timeout_ms"):
        load_config(tmp_path / "b.toml", env={})
    (tmp_path / "c.toml").write_text(base + "[consensus]\nrequest_timeout_ms = 0\n")
    assert load_config(tmp_path / "c.toml", env={}).consensus.request_timeout_ms == 0
