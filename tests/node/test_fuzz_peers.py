"""Bad input from a peer: a validator that sends garbage, malformed and replayed consensus
messages and event batches. The honest nodes drop it (counted), keep committing, and agree.

Seeded (derandomized under CI=1); the number of inputs tried is printed with -s."""

from __future__ import annotations

from pathlib import Path

import msgpack
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from afterchain.node.runtime.gossip import EVENTS_TOPIC, EventBatch
from afterchain.protocol.events import SignedEvent

from .util import VALIDATORS, memory_cluster, product_event, wait_for

raw_bytes = st.binary(max_size=400)
msgpack_junk = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.binary(max_size=40) | st.text(max_size=20),
    lambda c: st.lists(c, max_size=6),
    max_leaves=30,
).map(lambda v: msgpack.packb(v, use_bin_type=True))
tagged_junk = st.tuples(st.integers(0x40, 0x5F), st.lists(st.integers(0, 2**64 - 1) | st.binary(max_size=40), max_size=8)).map(
    lambda tv: msgpack.packb([tv[0], 1, *tv[1]], use_bin_type=True))


async def test_garbage_from_a_peer_changes_nothing(tmp_path: Path) -> None:
    cases: list[tuple[str, bytes]] = []

    @settings(max_examples=300, suppress_health_check=list(HealthCheck), deadline=None)
    @given(st.tuples(st.sampled_from(["direct", "gossip"]), st.one_of(raw_bytes, msgpack_junk, tagged_junk)))
    def collect(case: tuple[str, bytes]) -> None:
        cases.append(case)

    collect()
    async with memory_cluster(tmp_path) as (nodes, _net):
        honest = nodes[:3]
        rogue = nodes[3].transport
        ok = product_event(1)
        await honest[0].submit([ok.encode()])
        await wait_for(lambda: all((n.event_status(ok.id) or {}).get("status") == "committed" for n in honest))
        # a replayed (already committed) event and a forged batch ride along with the junk
        forged = SignedEvent(event=product_event(3).event, signature=ok.signature).encode()
        cases.append(("gossip", EventBatch(events=(ok.encode(), forged)).encode()))
        for kind, data in cases:
            if kind == "direct":
                for n in honest:
                    await rogue.send(n.key.public, data)
            else:
                await rogue.broadcast(EVENTS_TOPIC, data)
        await trio.sleep(0.5)
        # still committing, still agreeing
        nxt = product_event(2)
        await honest[1].submit([nxt.encode()])
        await wait_for(lambda: all((n.event_status(nxt.id) or {}).get("status") == "committed" for n in honest))
        await wait_for(lambda: len({n.ledger.height for n in honest}) == 1)
        assert len({n.ledger.state_root for n in honest}) == 1
        assert all(n.event_status(SignedEvent.decode(forged).id) is None for n in honest)
        dropped = sum(n.metrics.peer_messages_rejected.labels("decode")._value.get()
                      + n.metrics.peer_messages_rejected.labels("gossip_decode")._value.get()
                      for n in honest)
        assert dropped > 0
        assert VALIDATORS[3].public not in {n.key.public for n in honest}
    print(f"fuzzed peer inputs tried: {len(cases)}")
    assert len(cases) >= 300
