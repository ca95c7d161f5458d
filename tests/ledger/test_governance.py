"""Governance by validator vote: every kind, tallies against the current set, deadlines in
block time, and the validator schedule (boundaries, restart, replay, proofs)."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest

from afterchain.node.app.codes import Reason
from afterchain.node.app.ledger import Ledger, epoch_start, iter_blocks, set_source_height
from afterchain.protocol import bodies as B
from afterchain.protocol.block import ValidatorSet
from afterchain.protocol.codec import encode
from afterchain.protocol.crypto import KeyPair
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.genesis import ConsensusParams, LedgerParams, ParamChange, VmParams
from afterchain.protocol.smt import verify_smt_proof
from afterchain.protocol.types import Hash32, PublicKey

from .world import DAY, GTIN, HOUR, World, cust, h, key, make_genesis

K = 10  # the test genesis' checkpoint_interval


def val(i: int) -> KeyPair:
    return key(f"val{i}")


def vset(*idx: int) -> ValidatorSet:
    return ValidatorSet(validators=tuple(val(i).public for i in idx))  # type: ignore[misc]


GENESIS_SET = vset(0, 1, 2, 3)


@pytest.fixture
def w() -> World:
    return World(Ledger.open(None, make_genesis()))


def propose(w: World, who: str | KeyPair, kind: str, payload: bytes, period_ms: int = DAY) -> Hash32:
    oc = w.ok(who, B.GovernancePropose(kind=kind, payload=payload, voting_period_ms=period_ms))
    return Hash32(oc.detail["proposal_id"])


def vote(w: World, i: int, pid: bytes, approve: bool = True) -> str:
    oc = w.one(val(i), B.GovernanceVote(proposal_id=Hash32(pid), approve=approve))
    return oc.code if not oc.accepted else oc.detail["status"]


def adopt(w: World, pid: bytes, voters: tuple[int, ...] = (0, 1, 2)) -> None:
    for i in voters:
        status = vote(w, i, pid)
    assert status == "adopted", w.led.proposal(pid)


def test_epoch_rule() -> None:
    assert [epoch_start(s, K) for s in (1, 10, 11, 20, 21)] == [0, 0, 10, 10, 20]
    assert [set_source_height(s, K) for s in (1, 10, 11, 20, 21, 30, 31)] == [0, 0, 0, 0, 10, 10, 20]
    led = Ledger.open(None, make_genesis())
    assert led.validators_for(0) == GENESIS_SET and led.validators_for(2 * K) == GENESIS_SET
    assert led.validators_for(2 * K + 1) is None


def test_members_are_admitted_updated_and_removed_by_validator_votes(w: World) -> None:
    newco = key("newco")
    reg = B.OrgRegister(org_id="newco", name="New Co", roles=("service_provider",), keys=(PublicKey(newco.public),))
    assert w.one("acme", reg).code == Reason.GOVERNANCE_REQUIRED
    assert w.one(cust(), B.GovernancePropose(kind="admit_member", payload=encode(reg), voting_period_ms=DAY)).code == Reason.NOT_MEMBER
    pid = propose(w, "acme", "admit_member", encode(reg))
    # members do not vote; unknown proposals are refused
    assert w.one("acme", B.GovernanceVote(proposal_id=pid, approve=True)).code == Reason.NOT_VALIDATOR
    assert vote(w, 0, h("none")) == Reason.GOVERNANCE_UNKNOWN
    assert vote(w, 0, pid) == "open" and vote(w, 1, pid) == "open"  # 2 of 4: 6 > 8 is false
    assert vote(w, 1, pid, approve=False) == Reason.GOVERNANCE_VOTED
    assert w.led.org("newco") is None
    assert vote(w, 2, pid) == "adopted"
    assert vote(w, 3, pid) == Reason.GOVERNANCE_CLOSED
    p = w.led.proposal(pid)
    assert p is not None and p["yes"] == sorted([val(0).public, val(1).public, val(2).public]) and p["no"] == []
    assert p["tally"] == [3, 0, 4] and p["by"] == "acme" and p["decided_height"] == w.led.height - 1
    assert (w.led.org("newco") or {})["roles"] == ["service_provider"]
    # a validator key (not a member's) proposes too, with its own nonce
    upd = B.OrgUpdate(org_id="newco", roles=("retailer", "service_provider"), keys=(PublicKey(key("newco-2").public),))
    pid2 = propose(w, val(3), "update_member", encode(upd))
    assert (w.led.proposal(pid2) or {})["by"] is None and w.led.nonce(val(3).public) == 2
    adopt(w, pid2, (3, 2, 1))
    assert w.one(newco, B.ProductRegister(gtin=GTIN, serial="S1", model="m", batch="B", production_time_ms=0)).code == Reason.REVOKED
    assert w.one("acme", B.GovernancePropose(kind="remove_member", payload=b"nobody", voting_period_ms=DAY)).code == Reason.GOVERNANCE_INVALID
    pid3 = propose(w, "shop", "remove_member", b"newco")
    adopt(w, pid3)
    assert (w.led.org("newco") or {}).get("removed") is not None
    # two proposals for the same admission: the second to pass fails with the reason
    dup = B.OrgRegister(org_id="dup", name="Dup", roles=("retailer",), keys=(PublicKey(key("dup").public),))
    p1, p2 = propose(w, "acme", "admit_member", encode(dup)), propose(w, "shop", "admit_member", encode(dup))
    adopt(w, p1)
    for i in (0, 1):
        vote(w, i, p2)
    assert vote(w, 2, p2) == "failed" and (w.led.proposal(p2) or {})["result"] == "organisation dup exists"
    assert w.one("acme", B.GovernancePropose(kind="admit_member", payload=b"junk", voting_period_ms=DAY)).code.startswith("decode.")


def test_rejection_and_the_mempool_precheck(w: World) -> None:
    pid = propose(w, "acme", "validator_change", encode(vset(0, 1, 2)))
    assert vote(w, 0, pid, approve=False) == "open"
    assert vote(w, 1, pid, approve=False) == "rejected"  # 3 * 2 >= 4
    p = w.led.proposal(pid)
    assert p is not None and p["result"] == "votes" and p["tally"] == [0, 2, 4]
    assert w.led.validators() == GENESIS_SET
    later = w.ev(val(2), B.GovernanceVote(proposal_id=pid, approve=True))
    assert w.led.check(later) is None  # the pre-check only checks who may vote
    bad = w.led.check(w.ev("acme", B.GovernanceVote(proposal_id=pid, approve=True)))
    assert bad is not None and bad.code == Reason.NOT_VALIDATOR
    bad = w.led.check(w.ev(cust(), B.GovernancePropose(kind="remove_member", payload=b"acme", voting_period_ms=DAY)))
    assert bad is not None and bad.code == Reason.NOT_MEMBER
    assert w.led.check(w.ev(val(1), B.GovernancePropose(kind="remove_member", payload=b"acme", voting_period_ms=DAY))) is None


def test_a_proposal_expires_at_its_deadline_with_no_effect(w: World) -> None:
    new_set = vset(0, 1, 2, 3, 4)
    pid = propose(w, "acme", "validator_change", encode(new_set), period_ms=HOUR)
    deadline = (w.led.proposal(pid) or {})["deadline"]
    assert deadline == w.time_ms + HOUR
    assert vote(w, 0, pid, approve=True) == "open"
    assert vote(w, 1, pid, approve=True, ) == "open"
    assert [p.hex() for p in w.led.proposal_ids(open_only=True)] == [pid.hex()]
    # a block exactly at the deadline still takes votes (no-vote here: 1 no of 4 does not reject)
    res = w.block(w.ev(val(3), B.GovernanceVote(proposal_id=pid, approve=False)), advance_ms=deadline - w.time_ms)
    assert res.outcomes[0].accepted and res.proposals_expired == 0
    res = w.block(advance_ms=1)
    assert res.proposals_expired == 1
    p = w.led.proposal(pid)
    assert p is not None and p["status"] == "expired" and p["tally"] == [2, 1, 4] and p["decided"] == w.time_ms
    assert w.led.validators() == GENESIS_SET and w.led.proposal_ids(open_only=True) == []
    assert vote(w, 2, pid) == Reason.GOVERNANCE_CLOSED
    assert w.led.validators() == GENESIS_SET
    assert [p.hex() for p in w.led.proposal_ids()] == [pid.hex()]


def test_expiry_is_bounded_per_block_and_in_deadline_order(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import afterchain.node.app.governance as L

    monkeypatch.setattr(L, "MAX_GOV_EXPIRIES_PER_BLOCK", 2)
    pids = [propose(w, "acme", "remove_member", org.encode(), period_ms=HOUR) for org in ("audit", "fixit", "ship")]
    assert w.block(advance_ms=2 * HOUR).proposals_expired == 2
    assert [(w.led.proposal(p) or {})["status"] for p in pids] == ["expired", "expired", "open"]
    assert w.led.proposal_ids(open_only=True) == [pids[2]]  # past its deadline, listed until a block expires it
    res = w.block(w.ev(val(0), B.GovernanceVote(proposal_id=pids[2], approve=True)))
    assert res.proposals_expired == 1 and res.outcomes[0].code == Reason.GOVERNANCE_CLOSED


def test_validator_changes_count_votes_against_the_new_set(w: World) -> None:
    pending = propose(w, "acme", "remove_member", b"audit")
    assert vote(w, 1, pending) == "open"  # val1's yes, then val1 is removed
    shrink = propose(w, "acme", "validator_change", encode(vset(0, 2, 3)))
    adopt(w, shrink, (0, 2, 3))
    assert w.led.validators() == vset(0, 2, 3)
    assert vote(w, 1, pending) == Reason.NOT_VALIDATOR
    assert vote(w, 0, pending) == "open"  # counted: val0; val1's earlier yes no longer counts (3 * 1 > 6 false)
    assert vote(w, 2, pending) == "open"  # 3 * 2 > 6 false
    assert vote(w, 3, pending) == "adopted"
    p = w.led.proposal(pending)
    assert p is not None and p["tally"] == [3, 0, 3] and len(p["yes"]) == 4
    # growing: 4 of 5 needed; the new validator votes at once
    grow = propose(w, "acme", "validator_change", encode(vset(0, 2, 3, 4, 5)))
    adopt(w, grow, (0, 2, 3))
    assert w.led.validators().n == 5
    pid = propose(w, val(5), "remove_member", b"ship")
    assert [vote(w, i, pid) for i in (4, 5, 0)] == ["open", "open", "open"]  # 3 * 3 > 10 false
    assert vote(w, 2, pid) == "adopted"
    # the same set again is refused up front
    assert w.one("acme", B.GovernancePropose(kind="validator_change", payload=encode(vset(0, 2, 3, 4, 5)),
                                             voting_period_ms=DAY)).code == Reason.GOVERNANCE_INVALID


def _run_to(w: World, height: int) -> None:
    while w.led.height < height:
        w.block()


def test_schedule_boundaries(w: World) -> None:
    g = GENESIS_SET
    a, b = vset(0, 1, 2, 3, 4), vset(0, 1, 2, 3, 4, 5)
    pid = propose(w, "acme", "validator_change", encode(a))
    for i in (0, 1):
        vote(w, i, pid)
    _run_to(w, K - 1)
    assert vote(w, 2, pid) == "adopted" and w.led.height == K  # adopted IN block K: in the entry of boundary K
    assert (w.led.proposal(pid) or {})["effective_height"] == 2 * K + 1
    assert [w.led.validators_for(s) for s in (1, K, K + 1, 2 * K)] == [g] * 4
    assert w.led.validators_for(2 * K + 1) == a and w.led.validators_for(3 * K) == a
    assert w.led.validators_for(3 * K + 1) is None  # src = 2K is not executed yet
    pid2 = propose(w, "acme", "validator_change", encode(b))
    for i in (0, 1, 2):
        vote(w, i, pid2)  # a set of 5 now: 3 yes is not enough
    assert vote(w, 3, pid2) == "adopted" and K < w.led.height < 2 * K
    assert (w.led.proposal(pid2) or {})["effective_height"] == 3 * K + 1
    _run_to(w, 2 * K)
    assert w.led.validators_for(3 * K) == a and w.led.validators_for(3 * K + 1) == b
    assert w.led.validator_schedule() == [(1, g), (2 * K + 1, a), (3 * K + 1, b)]
    assert w.led.validator_sets_by_hash() == {s.hash(): s for s in (g, a, b)}
    assert w.led.validators_for(4 * K + 1) is None
    _run_to(w, 3 * K)
    assert w.led.validators_for(4 * K + 1) == b and len(w.led.validator_schedule()) == 3  # unchanged: not stored again
    # the schedule is in the state root
    key_ = b"sched/" + (3 * K + 1).to_bytes(8, "big")
    value, proof = w.led.prove(key_)
    assert value is not None and verify_smt_proof(w.led.state_root, key_, value, proof)
    entry = msgpack.unpackb(value, raw=False)
    assert entry["set"] == encode(b) and entry["src"] == 2 * K


def test_consensus_vm_and_policy_parameters() -> None:
    from .test_flows import FakeHost

    g = make_genesis()
    w = World(Ledger.open(None, g, contracts=FakeHost()))
    cid = Hash32(w.ok("acme", B.ContractDeploy(vm_id="lua", vm_version=1, name="c", code=b"-- ok")).detail["contract_id"])
    cp = ConsensusParams(**{**_fields(g.consensus), "view_timeout_ms": 2000, "block_interval_ms": 100})
    bad = ConsensusParams(**{**_fields(g.consensus), "checkpoint_interval": 20, "watermark_window": 80})
    assert w.one("acme", B.GovernancePropose(kind="param_change", payload=encode(ParamChange(consensus=bad, vm=None)),
                                             voting_period_ms=DAY)).code == Reason.GOVERNANCE_INVALID
    assert w.one("acme", B.GovernancePropose(kind="param_change", payload=encode(ParamChange(consensus=g.consensus, vm=g.vm)),
                                             voting_period_ms=DAY)).code == Reason.GOVERNANCE_INVALID
    with pytest.raises(ProtocolError, match="consensus, vm or both"):
        B.GovernancePropose(kind="param_change", payload=encode(ParamChange(consensus=None, vm=None)), voting_period_ms=DAY).validate()
    vm = VmParams(vms=g.vm.vms, max_gas_per_call=5, max_gas_per_block=100_000_000, hook_gas_limit=1_000_000)
    pid = propose(w, "acme", "param_change", encode(ParamChange(consensus=cp, vm=vm)))
    for i in (0, 1):
        vote(w, i, pid)
    res = w.block(w.ev(val(2), B.GovernanceVote(proposal_id=pid, approve=True)),
                  w.ev("acme", B.ContractCall(contract_id=cid, entry="run", args=b"", gas_limit=10)))
    adopted_at = res.height
    assert res.outcomes[0].detail == {"status": "adopted"}
    assert res.outcomes[1].accepted  # the old gas limit still holds in the adopting block
    assert w.one("acme", B.ContractCall(contract_id=cid, entry="run", args=b"", gas_limit=10)).code == Reason.GAS_LIMIT
    assert w.led.vm_params == vm and w.led.current_params()[1] == vm
    eff = (w.led.proposal(pid) or {})["effective_height"]
    assert eff == 2 * K + 1 and adopted_at <= K
    _run_to(w, K)
    assert w.led.consensus_params_for(eff - 1) == g.consensus and w.led.consensus_params_for(eff) == cp
    assert w.led.validator_schedule() == [(1, GENESIS_SET), (eff, GENESIS_SET)]  # only the params changed
    # policy standard: the default return window, from the next block
    alice = cust()
    w.product()
    w.sell(alice)
    tid = Hash32(w.ok(alice, B.ReturnRequest(gtin=GTIN, serial="S1", reason_code="x", reason_hash=h("r"))).detail["ticket_id"])
    std = LedgerParams(auto_close_delay_ms=g.ledger.auto_close_delay_ms, default_return_window_ms=HOUR,
                       max_deadlines_per_block=g.ledger.max_deadlines_per_block)
    assert w.one("acme", B.GovernancePropose(kind="policy_standard", payload=encode(g.ledger), voting_period_ms=DAY)).code \
        == Reason.GOVERNANCE_INVALID
    pid = propose(w, "shop", "policy_standard", encode(std))
    adopt(w, pid)
    w.block(advance_ms=2 * HOUR)
    assert w.led.params == std and w.led.current_params()[2] == std
    assert w.one("shop", B.ReturnApprove(ticket_id=tid)).code == Reason.RETURN_WINDOW


def _fields(m: object) -> dict[str, object]:
    return {f: getattr(m, f) for f in m.__dataclass_fields__}  # type: ignore[attr-defined]


def _changes(w: World) -> None:
    """Adopt set changes around the boundaries K and 2K (and parameters)."""
    g = make_genesis()
    pid = propose(w, "acme", "validator_change", encode(vset(0, 1, 2, 3, 4)))
    adopt(w, pid)
    _run_to(w, K + 3)
    pid = propose(w, "acme", "param_change", encode(ParamChange(
        consensus=ConsensusParams(**{**_fields(g.consensus), "view_timeout_ms": 3000}), vm=None)))
    for i in (0, 1, 2, 4):
        vote(w, i, pid)
    pid = propose(w, "acme", "validator_change", encode(vset(1, 2, 3, 4)))
    for i in (0, 1, 2, 4):
        vote(w, i, pid)
    _run_to(w, 3 * K + 2)


def test_schedule_survives_restart_and_replay(tmp_path: Path) -> None:
    path = str(tmp_path / "db")
    w = World(Ledger.open(path, make_genesis()))
    _changes(w)
    sched, sets = w.led.validator_schedule(), w.led.validator_sets_by_hash()
    params = [w.led.consensus_params_for(s) for s in range(1, 4 * K + 1)]
    assert [f for f, _ in sched] == [1, 2 * K + 1, 3 * K + 1, 4 * K + 1]  # adopted in blocks 1, 18, 23
    vs_for = [w.led.validators_for(s) for s in range(1, 4 * K + 2)]
    root = w.led.state_root
    w.led.close()
    led = Ledger.open(path, make_genesis())
    assert led.validator_schedule() == sched and led.validator_sets_by_hash() == sets
    assert [led.validators_for(s) for s in range(1, 4 * K + 2)] == vs_for
    assert [led.consensus_params_for(s) for s in range(1, 4 * K + 1)] == params
    assert led.state_root == root and led.validators() == vset(1, 2, 3, 4)
    # re-executing the stored blocks (what a node does after a crash) rebuilds the same schedule and roots
    fresh = Ledger.open(None, make_genesis())
    for height, time_ms, events in iter_blocks(led):
        fresh.apply_block(height, time_ms, events)
        assert fresh.state_root == led.root_at(height)
        assert fresh.validator_schedule() == [e for e in sched if e[0] <= height + K + 1]
    assert fresh.validator_schedule() == sched
    led.close()


def test_a_failed_block_leaves_the_schedule(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    pid = propose(w, "acme", "validator_change", encode(vset(0, 1, 2, 3, 4)))
    adopt(w, pid)
    _run_to(w, K - 1)

    def boom(items: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(w.led.kv, "write", boom)
    with pytest.raises(OSError):
        w.block()
    monkeypatch.undo()
    assert w.led.validator_schedule() == [(1, GENESIS_SET)] and w.led.height == K - 1


def test_payloads_are_checked_statelessly() -> None:
    raw = encode(vset(0, 1))
    twice = raw.replace(val(1).public, val(0).public)  # [0x10, 1, [k0, k0]]: a key listed twice
    with pytest.raises(ProtocolError, match="listed twice"):
        B.GovernancePropose(kind="validator_change", payload=twice, voting_period_ms=DAY).validate()
    with pytest.raises(ProtocolError, match=r"1\.\.256"):
        B.GovernancePropose(kind="validator_change", payload=bytes([0x93, 0x10, 0x01, 0x90]), voting_period_ms=DAY).validate()
    with pytest.raises(ProtocolError, match="payload"):
        B.GovernancePropose(kind="policy_standard", payload=raw, voting_period_ms=DAY).validate()  # another message
    B.GovernancePropose(kind="remove_member", payload=b"acme", voting_period_ms=DAY).validate()
