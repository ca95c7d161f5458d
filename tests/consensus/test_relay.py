"""The dissemination relay (consensus.relay): its wire messages, the state machine's rules,
and the seeded simulator (50 seeds here, 1,000+ in the slow suite, mutation checks)."""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from pathlib import Path

import pytest

from afterchain.consensus.messages import CertifiedBlock
from afterchain.consensus.relay import (
    MAX_HOPS,
    MUTATIONS,
    Relay,
    RelayBlocks,
    RelayBlocksDeflated,
    RelayEvents,
    RelayMessage,
    RelayParams,
    RelayRequest,
    RelayStatus,
    deflate_blocks,
)
from afterchain.consensus.relay.machine import NODE_PARAMS
from afterchain.consensus.relay.messages import MAX_INFLATED_BYTES
from afterchain.consensus.relay.sim import RelaySimConfig, _Sim, main, run
from afterchain.protocol.codec import registered, sha256
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.types import Height

SMALL = {"members": 8, "blocks": 6, "filler_events": 4, "submitted_events": 6, "warmup_ms": 1000}
"""The default suite's network: 4 validators, 8 members (about 0.1 s a seed)."""


def _chain(n: int) -> list[CertifiedBlock]:
    sim = _Sim(RelaySimConfig(seed=1, **SMALL))  # type: ignore[arg-type]
    for _ in range(n):
        sim.make_block()
    return sim.chain


CHAIN = _chain(4)
FORGED = _Sim(RelaySimConfig(seed=2, **SMALL)).forge(CHAIN[0])  # type: ignore[arg-type]
KEYS = [bytes([i]) * 32 for i in range(1, 12)]
VALIDATOR, ME, A, B, C = KEYS[0], KEYS[5], KEYS[6], KEYS[7], KEYS[8]


class Store:
    def __init__(self, chain: Sequence[CertifiedBlock] = ()) -> None:
        self.chain = list(chain)

    def blocks(self, from_height: int, count: int) -> Sequence[CertifiedBlock]:
        return self.chain[from_height - 1: from_height - 1 + count]


def _relay(me: bytes = ME, height: int = 0, store: Store | None = None, **params: int) -> Relay:
    return Relay(me, height=height, validators=KEYS[:4], admitted=KEYS, store=store or Store(CHAIN[:height]),
                 rng=random.Random(5), params=RelayParams(**params))


def _sends(relay: Relay) -> list[tuple[bytes, RelayMessage]]:
    return relay.ready().sends


# --------------------------------------------------------------------------- messages


def test_tags_are_the_documented_free_range() -> None:
    tags = {cls.__name__: tag for tag, cls in registered().items() if 0xA0 <= tag <= 0xAF}
    assert tags == {"RelayStatus": 0xA0, "RelayRequest": 0xA1, "RelayBlocks": 0xA2, "RelayEvents": 0xA3,
                    "RelayBlocksDeflated": 0xA4}


@pytest.mark.parametrize("msg", [
    RelayStatus(height=Height(7), hops=2),
    RelayRequest(from_height=Height(3), count=32),
    RelayBlocks(blocks=tuple(CHAIN[1:3])),
    RelayBlocks(blocks=()),
    RelayEvents(events=(b"x", b"y" * 300)),
])
def test_messages_round_trip(msg: RelayMessage) -> None:
    assert RelayMessage.decode(msg.encode()) == msg


def test_bytes_are_as_documented_in_protocol_md() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md").read_text()
    section = doc[doc.index("## 11. Dissemination"):]
    for msg, text in [
        (RelayStatus(height=Height(7), hops=2), "`RelayStatus{height 7, hops 2}` = `94 cca0 01 07 02`"),
        (RelayStatus(height=Height(300), hops=16), "300, hops 16}` = `94 cca0 01 cd012c 10`"),
        (RelayRequest(from_height=Height(5), count=3), "`RelayRequest{from_height 5, count 3}` =\n`94 cca1 01 05 03`"),
        (RelayBlocks(blocks=()), "`RelayBlocks{}` (none) = `93 cca2 01 90`"),
        (RelayEvents(events=(b"ab",)), "`RelayEvents{[\"ab\"]}` =\n`93 cca3 01 91 c4026162`"),
        (RelayBlocksDeflated(size=5, data=bytes.fromhex("78019b7c6611e30400088c0293")),
         "`RelayBlocksDeflated{size 5, data}` =\n`94 cca4 01 05 c40d 78019b7c6611e30400088c0293`"),
    ]:
        assert text in section
        documented = text.rsplit("`", 2)[-2].replace(" ", "")
        assert msg.encode().hex() == documented


def test_deflated_blocks_inflate_to_the_blocks_and_only_to_them() -> None:
    blocks = RelayBlocks(blocks=tuple(CHAIN[:3]))
    raw = blocks.encode()
    packed = deflate_blocks(blocks)
    assert isinstance(packed, RelayBlocksDeflated) and len(packed.encode()) < len(raw)
    got = RelayMessage.decode(packed.encode())
    assert isinstance(got, RelayBlocksDeflated) and got.inflate() == blocks
    assert deflate_blocks(RelayBlocks(blocks=())) == RelayBlocks(blocks=())  # too small to gain
    # the documented example
    doc = RelayMessage.decode(bytes.fromhex("94cca40105c40d78019b7c6611e30400088c0293"))
    assert isinstance(doc, RelayBlocksDeflated) and doc.inflate() == RelayBlocks(blocks=())
    z = zlib.compress(raw, 1)
    for bad in [
        RelayBlocksDeflated(size=len(raw) - 1, data=z),  # inflates to more than it says (never inflated past size)
        RelayBlocksDeflated(size=len(raw) + 1, data=z),  # to less
        RelayBlocksDeflated(size=len(raw), data=z[:-3]),  # truncated stream
        RelayBlocksDeflated(size=len(raw), data=z + b"\x00"),  # bytes after the stream
        RelayBlocksDeflated(size=len(raw), data=b"not zlib at all"),
        RelayBlocksDeflated(size=5, data=zlib.compress(RelayStatus(height=Height(1), hops=0).encode())),  # not blocks
    ]:
        with pytest.raises(ProtocolError):
            RelayMessage.decode(bad.encode()).inflate()  # type: ignore[attr-defined]
    bomb = RelayBlocksDeflated(size=MAX_INFLATED_BYTES, data=zlib.compress(bytes(64 << 20)))
    with pytest.raises(ProtocolError):
        bomb.inflate()  # stops at MAX_INFLATED_BYTES
    with pytest.raises(ProtocolError) as err:
        RelayMessage.decode(RelayBlocksDeflated(size=MAX_INFLATED_BYTES + 1, data=b"x").encode())
    assert err.value.field == "size"


@pytest.mark.parametrize(("msg", "field"), [
    (RelayStatus(height=Height(1), hops=MAX_HOPS + 1), "hops"),
    (RelayRequest(from_height=Height(0), count=1), "from_height"),
    (RelayRequest(from_height=Height(1), count=0), "count"),
    (RelayRequest(from_height=Height(1), count=33), "count"),
    (RelayBlocks(blocks=(CHAIN[0], CHAIN[2])), "blocks[1].block.header.height"),
    (RelayEvents(events=()), "events"),
])
def test_decode_refuses_out_of_bounds_with_the_field(msg: RelayMessage, field: str) -> None:
    with pytest.raises(ProtocolError) as err:
        RelayMessage.decode(msg.encode())
    assert err.value.field == field


# --------------------------------------------------------------------------- the machine


def test_a_block_is_delivered_and_relayed_only_after_it_verified() -> None:
    relay = _relay()
    for p in (A, B, C):
        relay.connected(p, outbound=True)
    relay.ready()
    relay.step(RelayBlocks(blocks=(CHAIN[0],)), A)
    out = relay.ready()
    assert out.verify == [CHAIN[0]] and out.deliver == [] and out.sends == []
    relay.verified(CHAIN[0], True)
    out = relay.ready()
    assert out.deliver == [CHAIN[0]]
    pushed = [p for p, m in out.sends if isinstance(m, RelayBlocks)]
    announced = [p for p, m in out.sends if isinstance(m, RelayStatus) and m.height == 1]
    assert len(pushed) == 2 and A not in pushed  # eager = 2, never back to the sender
    assert sorted(pushed + announced) == sorted([B, C])


def test_blocks_are_verified_in_height_order() -> None:
    relay = _relay()
    relay.connected(A, outbound=True)
    relay.step(RelayBlocks(blocks=(CHAIN[1], CHAIN[2])), A)
    assert relay.ready().verify == []  # height 1 is missing: nothing can be checked yet
    relay.step(RelayBlocks(blocks=(CHAIN[0],)), A)
    assert relay.ready().verify == [CHAIN[0]]
    relay.verified(CHAIN[0], True)
    assert relay.ready().verify == [CHAIN[1]]


def test_a_forged_block_is_refused_counted_and_fetched_from_another_peer() -> None:
    relay = _relay(max_strikes=1)
    relay.connected(A, outbound=True)
    relay.connected(B, outbound=True)
    relay.step(RelayStatus(height=Height(1), hops=1), B)
    relay.step(RelayBlocks(blocks=(FORGED,)), A)
    assert relay.ready().verify == [FORGED]
    relay.verified(FORGED, False)
    out = relay.ready()
    assert out.deliver == [] and A in out.closes and relay.stats.invalid_blocks == 1
    assert (B, RelayRequest(from_height=Height(1), count=1)) in out.sends
    assert A not in relay.peers


def test_mutation_verify_delivers_without_asking() -> None:
    relay = Relay(ME, height=0, validators=KEYS[:4], admitted=KEYS, store=Store(), rng=random.Random(1),
                  mutations=("verify",))
    relay.connected(A, outbound=True)
    relay.step(RelayBlocks(blocks=(FORGED,)), A)
    out = relay.ready()
    assert out.verify == [] and out.deliver == [FORGED]


def test_announcement_waits_for_a_push_then_fetches_from_a_member_not_a_validator() -> None:
    relay = _relay(fetch_delay_ticks=2, validator_fetch_delay_ticks=6)
    relay.connected(VALIDATOR, outbound=True)
    relay.step(RelayStatus(height=Height(3), hops=0), VALIDATOR)
    relay.ready()
    for _ in range(5):
        relay.tick()
        assert not [m for _, m in relay.ready().sends if isinstance(m, RelayRequest)]
    relay.connected(A, outbound=True)
    relay.step(RelayStatus(height=Height(3), hops=1), A)
    requests = [(p, m) for p, m in relay.ready().sends if isinstance(m, RelayRequest)]
    assert requests == [(A, RelayRequest(from_height=Height(1), count=3))]


def test_an_unanswered_request_goes_to_another_peer() -> None:
    relay = _relay(fetch_delay_ticks=0, fetch_timeout_ticks=3)
    relay.connected(A, outbound=True)
    relay.step(RelayStatus(height=Height(2), hops=1), A)
    first = [p for p, m in relay.ready().sends if isinstance(m, RelayRequest)]
    other = B if first == [A] else A
    relay.connected(other, outbound=True)
    relay.step(RelayStatus(height=Height(2), hops=1), other)
    for _ in range(3):
        relay.tick()
    again = [p for p, m in relay.ready().sends if isinstance(m, RelayRequest)]
    assert first and again == [other]


def test_requests_are_answered_from_the_store_up_to_the_verified_height() -> None:
    relay = _relay(height=3)
    relay.connected(A, outbound=False)
    relay.ready()
    relay.step(RelayRequest(from_height=Height(2), count=10), A)
    assert relay.ready().sends == [(A, RelayBlocks(blocks=tuple(CHAIN[1:3])))]
    relay.step(RelayRequest(from_height=Height(9), count=1), A)
    assert relay.ready().sends == [(A, RelayBlocks(blocks=()))]


def test_a_request_flood_is_cut_off() -> None:
    relay = _relay(height=1, requests_per_heartbeat=3, max_strikes=2)
    relay.connected(A, outbound=False)
    for _ in range(5):
        relay.step(RelayRequest(from_height=Height(1), count=1), A)
    out = relay.ready()
    assert len([m for _, m in out.sends if isinstance(m, RelayBlocks)]) == 3
    assert A in out.closes and relay.stats.rejected["request_flood"] == 2


def test_validators_get_no_blocks_pushed_and_are_never_dialed_by_validators() -> None:
    relay = _relay(me=VALIDATOR, height=0)
    relay.connected(KEYS[1], outbound=False)
    relay.connected(A, outbound=False)
    relay.ready()
    relay.local_block(CHAIN[0])
    out = relay.ready()
    assert [p for p, m in out.sends if isinstance(m, RelayBlocks)] == [A]
    assert out.deliver == []  # the validator has it already
    relay.tick()
    assert not set(relay.ready().dials) & set(KEYS[:4])


def test_a_validator_with_the_node_params_pushes_on_its_turn_and_announces_to_the_rest() -> None:
    """NODE_PARAMS: validator `sorted(set)[h mod n]` pushes block h to one member and
    announces it to its other member peers; the other validators announce it to all theirs."""
    order = sorted(KEYS[:4])
    for h in (1, 2):
        for v in KEYS[:4]:
            relay = Relay(v, height=h - 1, validators=KEYS[:4], admitted=KEYS, store=Store(CHAIN[:h - 1]),
                          rng=random.Random(5), params=NODE_PARAMS)
            for p in (A, B, C):
                relay.connected(p, outbound=False)
            relay.ready()
            relay.local_block(CHAIN[h - 1])
            out = relay.ready()
            pushed = [p for p, m in out.sends if isinstance(m, RelayBlocks)]
            assert len(pushed) == (1 if order[h % 4] == v else 0)
            announced = {p for p, m in out.sends if isinstance(m, RelayStatus) and m.height == h}
            assert announced == {A, B, C} - set(pushed)
            relay.tick()  # the heartbeat tells every peer the height
            assert {p for p, m in relay.ready().sends if isinstance(m, RelayStatus) and m.height == h} == {A, B, C}


def test_only_a_validator_is_zero_hops_away() -> None:
    relay = _relay()
    relay.connected(A, outbound=True)
    relay.step(RelayStatus(height=Height(0), hops=0), A)  # a member lying
    assert relay.hops() == 2
    relay.connected(VALIDATOR, outbound=True)
    relay.step(RelayStatus(height=Height(0), hops=0), VALIDATOR)
    assert relay.hops() == 1


def test_an_event_goes_towards_the_validators_and_is_retried_until_committed() -> None:
    relay = _relay(event_retry_ticks=4, event_fanout=1)
    relay.connected(A, outbound=True)
    relay.connected(B, outbound=True)
    relay.step(RelayStatus(height=Height(0), hops=1), A)
    relay.step(RelayStatus(height=Height(0), hops=MAX_HOPS), B)
    relay.ready()
    raw = CHAIN[0].block.events[0]
    assert relay.submit_event(raw)
    assert relay.ready().sends == [(A, RelayEvents(events=(raw,)))]
    for _ in range(4):
        relay.tick()
    assert (A, RelayEvents(events=(raw,))) in relay.ready().sends  # no block holds it yet: again
    relay.step(RelayBlocks(blocks=(CHAIN[0],)), A)
    relay.ready()
    relay.verified(CHAIN[0], True)
    relay.ready()
    assert sha256(raw) not in relay.pending
    for _ in range(8):
        relay.tick()
    assert not [m for _, m in relay.ready().sends if isinstance(m, RelayEvents)]


def test_relayed_events_are_handed_to_the_intake_once() -> None:
    relay = _relay()
    relay.connected(A, outbound=True)
    relay.step(RelayEvents(events=(b"e1", b"e2")), A)
    relay.step(RelayEvents(events=(b"e1",)), A)
    assert relay.ready().events == [(A, b"e1"), (A, b"e2")]
    assert relay.stats.duplicate_events == 1


def test_a_copy_after_the_origins_retry_period_is_taken_again() -> None:
    """The forward a node made may have been lost: the origin's next send (a retry period
    later) gets through it again; copies of the same send by other paths do not."""
    relay = _relay(event_retry_ticks=30)
    relay.connected(A, outbound=True)
    relay.connected(B, outbound=True)
    relay.step(RelayEvents(events=(b"e1",)), A)
    assert relay.ready().events == [(A, b"e1")]
    for _ in range(14):
        relay.tick()
    relay.step(RelayEvents(events=(b"e1",)), B)  # the same wave, another path
    assert relay.ready().events == [] and relay.stats.duplicate_events == 1
    relay.tick()
    relay.step(RelayEvents(events=(b"e1",)), B)  # half a retry period later: the next wave
    assert relay.ready().events == [(B, b"e1")] and relay.stats.events_retaken == 1


def test_an_origins_re_send_also_goes_sideways_when_few_peers_are_closer() -> None:
    """One closer peer that drops events would hold an event for ever: the origin's re-send
    also goes to a peer as far from the validators as itself."""
    relay = _relay(event_retry_ticks=30)
    for p, hops in ((A, 1), (B, 2), (C, 3)):
        relay.connected(p, outbound=True)
        relay.step(RelayStatus(height=Height(0), hops=hops), p)
    assert relay.hops() == 2
    relay.ready()
    relay.submit_event(b"e1")
    assert [p for p, m in relay.ready().sends if isinstance(m, RelayEvents)] == [A]  # closer peers only
    for _ in range(30):
        relay.tick()
        for p, hops in ((A, 1), (B, 2), (C, 3)):
            relay.step(RelayStatus(height=Height(0), hops=hops), p)
    assert sorted(p for p, m in relay.ready().sends if isinstance(m, RelayEvents)) == sorted([A, B])


def test_inbound_connections_above_d_hi_are_refused_and_non_members_closed() -> None:
    relay = _relay(d=2, d_lo=1, d_hi=2)
    relay.connected(A, outbound=False)
    relay.connected(B, outbound=False)
    relay.connected(C, outbound=False)
    relay.connected(b"\x99" * 32, outbound=True)
    assert relay.ready().closes == [C, b"\x99" * 32]
    assert set(relay.peers) == {A, B}


def test_a_removed_member_is_disconnected() -> None:
    relay = _relay()
    relay.connected(A, outbound=True)
    relay.set_members(KEYS[:4], [k for k in KEYS if k != A])
    assert relay.ready().closes == [A] and A not in relay.peers


def test_too_few_peers_dials_up_to_d() -> None:
    relay = _relay()
    relay.tick()
    dials = relay.ready().dials
    assert len(dials) == RelayParams().d and ME not in dials


# --------------------------------------------------------------------------- simulator

DEFAULT_SEEDS = range(50)


def test_default_seed_suite_delivers_everything_and_safely() -> None:
    failures = []
    for seed in DEFAULT_SEEDS:
        res = run(RelaySimConfig(seed=seed, **SMALL))  # type: ignore[arg-type]
        if not res.ok:
            failures.append((seed, res.violations[:3]))
        assert res.blocks >= SMALL["blocks"]
    assert failures == []


def test_node_params_deliver_everything_and_safely() -> None:
    """The node's parameters (validators take turns to push and announce) over the
    default suite's seeds: 0 undelivered, every event committed once."""
    failures = []
    for seed in DEFAULT_SEEDS:
        res = run(RelaySimConfig(seed=seed, params=NODE_PARAMS, **SMALL))  # type: ignore[arg-type]
        if not res.ok:
            failures.append((seed, res.violations[:3]))
    assert failures == []


def test_same_seed_same_trace() -> None:
    a = run(RelaySimConfig(seed=11, **SMALL))  # type: ignore[arg-type]
    b = run(RelaySimConfig(seed=11, **SMALL))  # type: ignore[arg-type]
    c = run(RelaySimConfig(seed=12, **SMALL))  # type: ignore[arg-type]
    assert a.trace_hash == b.trace_hash and a.end_ms == b.end_ms
    assert a.trace_hash != c.trace_hash


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_mutation_is_caught(mutation: str) -> None:
    for seed in range(200):
        if not run(RelaySimConfig(seed=seed, mutations=(mutation,), **SMALL)).ok:  # type: ignore[arg-type]
            return
    pytest.fail(f"mutation {mutation} not caught in 200 seeds")


def test_validator_upload_per_block_does_not_grow_with_members() -> None:
    """Fault-free, 8 then 48 members: a validator's upload per block stays within 10%
    (members' pushes carry the blocks; a validator pushes each block to one member)."""
    ups = []
    for members in (8, 48):
        cfg = RelaySimConfig(seed=3, members=members, blocks=6, filler_events=20, faults=(), warmup_ms=1500)
        res = run(cfg)
        assert res.ok and res.undelivered == 0
        ups.append(res.validator_upload_per_block)
    assert ups[1] <= 1.1 * ups[0]
    sim = _Sim(cfg)
    sim.make_block()
    assert ups[1] < 2 * len(sim.chain[0].encode())


def test_command_line_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seeds", "0-1", "--members", "8", "--blocks", "4"]) == 0
    out = capsys.readouterr().out
    assert "| 8 | 2 | 2 | 0 | 0 |" in out and out.rstrip().endswith("violations: 0")


@pytest.mark.slow
def test_slow_seed_suite() -> None:
    """1,000 seeds of the small network with every fault, and 50 of 100 members."""
    failures = []
    for seed in range(1000, 2000):
        res = run(RelaySimConfig(seed=seed, **SMALL))  # type: ignore[arg-type]
        if not res.ok:
            failures.append((seed, res.violations[:3]))
    for seed in range(50):
        res = run(RelaySimConfig(seed=seed, members=100, blocks=8))
        if not res.ok:
            failures.append((seed, res.violations[:3]))
    for seed in range(2000, 3000):  # the node's parameters
        res = run(RelaySimConfig(seed=seed, params=NODE_PARAMS, **SMALL))  # type: ignore[arg-type]
        if not res.ok:
            failures.append((seed, res.violations[:3]))
    assert failures == []
