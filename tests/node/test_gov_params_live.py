"""Consensus parameters changed by governance reach running nodes: after the epoch in
which a lower `max_block_events` takes effect, every block respects it (the primary
builds smaller blocks, backups would refuse bigger ones), and nothing stalls."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from afterchain.protocol import bodies as B
from afterchain.protocol.events import Event, sign_event
from afterchain.protocol.genesis import ParamChange

from .util import ACME, CHAIN, T0, VALIDATORS, memory_cluster, product_event, wait_for


def _gov(key, nonce: int, body):  # type: ignore[no-untyped-def]
    ev = Event(chain_id=CHAIN, type=body.EVENT_TYPE, sender=key.public, nonce=nonce, time_ms=T0, body=body)
    return sign_event(key, ev).encode()


async def test_lower_block_limit_adopted_by_vote_applies_at_its_epoch(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path) as (nodes, _net):
        n0 = nodes[0]
        g = n0.genesis
        new = dataclasses.replace(g.consensus, max_block_events=7)
        prop = B.GovernancePropose(kind="param_change", payload=ParamChange(consensus=new, vm=None).encode(),
                                   voting_period_ms=3_600_000)
        raw = _gov(VALIDATORS[0], 1, prop)
        await n0.submit([raw])
        from afterchain.protocol.events import SignedEvent

        pid = SignedEvent.decode(raw).id
        await n0.submit([_gov(v, 1 + (i == 0), B.GovernanceVote(proposal_id=pid, approve=True))
                         for i, v in enumerate(VALIDATORS[:3])])
        await wait_for(lambda: all(n.ledger.proposal(pid) is not None and n.ledger.proposal(pid)["status"] == "adopted"
                                   for n in nodes), timeout=30)
        adopted_at = n0.ledger.height
        # the first height where the new limit is in force, by the schedule
        await wait_for(lambda: n0.ledger.consensus_params_for(n0.ledger.height + 1) == new, timeout=30)
        first = next(h for h, cp in n0.ledger.consensus_schedule() if cp == new)
        assert first > adopted_at
        await n0.submit([product_event(i).encode() for i in range(1, 61)])
        await wait_for(lambda: all(n.ledger.nonce(ACME.public) >= 60 for n in nodes), timeout=60)
        sizes = {h: len(n0.store.block(h).events) for h in range(first, n0.store.head + 1)}
        assert max(sizes.values()) <= 7, sizes
        assert sum(sizes.values()) >= 60
        assert len({n.ledger.state_root for n in nodes if n.ledger.height == n0.ledger.height}) == 1
