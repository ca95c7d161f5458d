"""A Byzantine (equivocating) validator among 4 in-process nodes: the honest ones keep
committing and agree, record the evidence on chain once per slot, and it names only it.
Plus the ledger's checks of `consensus.evidence` and the test-only guard of the flag."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import pytest
import trio

from afterchain.consensus.evidence import check_evidence
from afterchain.consensus.messages import Commit, Evidence, Prepare, SignedCommit, SignedPrepare, SignedStatus, Status
from afterchain.node.app.ledger import Ledger
from afterchain.node.http.app import build_app
from afterchain.node.http.service import NodeHttp
from afterchain.node.runtime.runner import Node, NodeOptions
from afterchain.node.testing.byzantine import byzantine_mode, conflicting, equivocator
from afterchain.node.transport.memory import MemoryNetwork
from afterchain.protocol import bodies as B
from afterchain.protocol.codec import sha256
from afterchain.protocol.crypto import Domain, KeyPair
from afterchain.protocol.events import Event, sign_event
from afterchain.protocol.types import Hash32, Seq, ValidatorId, View

from .util import ACME, CHAIN, T0, VALIDATORS, genesis, k, product_event, wait_for


def _prepare(key: KeyPair, seq: int, digest: bytes, view: int = 0) -> SignedPrepare:
    body = Prepare(view=View(view), seq=Seq(seq), digest=Hash32(digest), replica=ValidatorId(key.public))
    return SignedPrepare(body=body, signature=key.sign(Domain.PREPARE, CHAIN, body))


def _evidence_event(reporter: KeyPair, nonce: int, evidence: bytes) -> bytes:
    body = B.ConsensusEvidence(evidence=evidence)
    return sign_event(reporter, Event(chain_id=CHAIN, type=body.EVENT_TYPE, sender=reporter.public, nonce=nonce,
                                      time_ms=T0, body=body)).encode()


def test_ledger_records_valid_evidence_once_and_refuses_bad_evidence() -> None:
    led = Ledger.open(None, genesis(), evidence_check=check_evidence)
    byz, rep = VALIDATORS[3], VALIDATORS[0]
    good = Evidence(first=_prepare(byz, 5, b"\1" * 32), second=_prepare(byz, 5, b"\2" * 32)).encode()
    other_seq = Evidence(first=_prepare(byz, 5, b"\1" * 32), second=_prepare(byz, 6, b"\2" * 32)).encode()
    outsider = k("outsider")
    by_outsider = Evidence(first=_prepare(outsider, 5, b"\1" * 32), second=_prepare(outsider, 5, b"\2" * 32)).encode()
    forged_sig = _prepare(byz, 5, b"\3" * 32)
    forged = Evidence(first=_prepare(byz, 5, b"\1" * 32),
                      second=dataclasses.replace(forged_sig, signature=_prepare(byz, 5, b"\4" * 32).signature)).encode()
    wrong_chain_body = Prepare(view=View(0), seq=Seq(5), digest=Hash32(b"\5" * 32), replica=ValidatorId(byz.public))
    wrong_chain = Evidence(first=_prepare(byz, 5, b"\1" * 32), second=SignedPrepare(
        body=wrong_chain_body, signature=byz.sign(Domain.PREPARE, "other-chain", wrong_chain_body))).encode()
    st = [Status(view=View(0), active=True, committed_seq=Seq(s), stable_seq=Seq(0), replica=ValidatorId(byz.public)) for s in (1, 2)]
    status_pair = Evidence(first=SignedStatus(body=st[0], signature=byz.sign(Domain.PEER, CHAIN, st[0])),
                           second=SignedStatus(body=st[1], signature=byz.sign(Domain.PEER, CHAIN, st[1]))).encode()
    events = [
        _evidence_event(rep, 1, good),
        _evidence_event(VALIDATORS[1], 1, good),  # the same slot again: duplicate
        _evidence_event(rep, 2, other_seq),
        _evidence_event(rep, 3, by_outsider),
        _evidence_event(rep, 4, forged),
        _evidence_event(rep, 5, wrong_chain),
        _evidence_event(rep, 6, status_pair),
        _evidence_event(rep, 7, b"\x93garbage"),
        _evidence_event(ACME, 1, good),  # a member, not a validator
    ]
    res = led.apply_block(1, T0 + 1, events)
    codes = [o.code for o in res.outcomes]
    assert codes == ["ok", "evidence.duplicate", "evidence.invalid", "evidence.invalid", "evidence.invalid",
                     "evidence.invalid", "evidence.invalid", "evidence.invalid", "permission.not_validator"], codes
    (rec,) = led.evidence()
    assert rec["validator"] == byz.public and rec["phase"] == "PREPARE" and rec["seq"] == 5 and rec["reporter"] == rep.public
    assert led.evidence(validator=rep.public) == []
    # the mempool pre-check refuses a non-validator sender early
    from afterchain.protocol.events import SignedEvent
    oc = led.check(SignedEvent.decode(_evidence_event(ACME, 2, good)))
    assert oc is not None and oc.code == "permission.not_validator"


def test_the_byzantine_flag_is_refused_without_the_test_switch() -> None:
    assert byzantine_mode({}) is None
    with pytest.raises(ValueError, match="test-only"):
        byzantine_mode({"AFTERCHAIN_TEST_BYZANTINE": "equivocate"})
    with pytest.raises(ValueError, match="only mode"):
        byzantine_mode({"AFTERCHAIN_TEST_BYZANTINE": "crash", "AFTERCHAIN_TEST_SWITCHES": "1"})
    assert byzantine_mode({"AFTERCHAIN_TEST_BYZANTINE": "equivocate", "AFTERCHAIN_TEST_SWITCHES": "1"}) == "equivocate"


def test_conflicting_message_is_a_valid_equivocation() -> None:
    byz = VALIDATORS[3]
    p = _prepare(byz, 10, b"\1" * 32)
    twin = conflicting(p, byz, CHAIN)
    assert isinstance(twin, SignedPrepare) and twin.body.digest != p.body.digest and twin.body.seq == p.body.seq
    assert conflicting(_prepare(byz, 11, b"\1" * 32), byz, CHAIN) is None  # only every 5th seq
    body = Commit(view=View(0), seq=Seq(10), digest=Hash32(sha256(b"x")), replica=ValidatorId(VALIDATORS[0].public))
    foreign = SignedCommit(body=body, signature=VALIDATORS[0].sign(Domain.COMMIT, CHAIN, body))
    assert conflicting(foreign, byz, CHAIN) is None  # never someone else's message


async def test_equivocating_node_is_caught_and_the_honest_ones_agree(tmp_path: Path) -> None:
    g = genesis()
    net = MemoryNetwork()
    nodes = [
        Node(key=v, genesis=g, data_dir=tmp_path / f"n{i}", transport=net.add(v.public),
             options=NodeOptions(name=f"n{i}", tick_ms=20), send_hook=equivocator(v, CHAIN) if i == 3 else None)
        for i, v in enumerate(VALIDATORS)
    ]
    byz = VALIDATORS[3].public
    async with trio.open_nursery() as nursery:
        for node in nodes:
            await nursery.start(node.run)
        honest = nodes[:3]
        evs = [product_event(n) for n in range(1, 41)]
        for i, ev in enumerate(evs):
            await nodes[i % 4].submit([ev.encode()])
            await trio.sleep(0.01)
        await wait_for(lambda: all(n.event_status(e.id) is not None and n.event_status(e.id)["status"] == "committed"  # type: ignore[index]
                                   for n in honest for e in evs), timeout=60)
        await wait_for(lambda: all(n.ledger.evidence() for n in honest), timeout=60)
        recs = honest[0].ledger.evidence()
        assert {r["validator"] for r in recs} == {byz}
        slots = [(r["phase"], r["view"], r["seq"]) for r in recs]
        assert len(slots) == len(set(slots))  # once per slot
        assert all(set(n.evidence_reporter.observed) == {byz} for n in honest)
        # the same chain everywhere
        h = min(n.store.head for n in nodes)
        assert len({n.store.block(h).header.hash() for n in nodes}) == 1  # type: ignore[union-attr]
        # GET /v1/evidence
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(NodeHttp(honest[0]))), base_url="http://n") as c:
            body = (await c.get("/v1/evidence")).json()
            assert body["evidence"] and {e["validator"] for e in body["evidence"]} == {byz.hex()}
            assert list(body["observed"]) == [byz.hex()]
            assert (await c.get("/v1/evidence?validator=zz")).status_code == 400
        nursery.cancel_scope.cancel()
