"""The ledger's evidence port: ``consensus.evidence`` is recorded only through the check it
was given (`consensus.evidence.check_evidence`); without one it is refused, never accepted
unchecked."""

from __future__ import annotations

from afterchain.consensus.evidence import check_evidence
from afterchain.consensus.messages import Evidence, Prepare, SignedPrepare
from afterchain.node.app.ledger import Ledger
from afterchain.protocol import bodies as B
from afterchain.protocol.crypto import Domain, KeyPair
from afterchain.protocol.types import Hash32, Seq, ValidatorId, View

from .world import CHAIN, World, key, make_genesis


def _prepare(signer: KeyPair, digest: bytes) -> SignedPrepare:
    body = Prepare(view=View(0), seq=Seq(5), digest=Hash32(digest), replica=ValidatorId(signer.public))
    return SignedPrepare(body=body, signature=signer.sign(Domain.PREPARE, CHAIN, body))


def _evidence() -> B.ConsensusEvidence:
    byz = key("val3")
    return B.ConsensusEvidence(evidence=Evidence(first=_prepare(byz, b"\1" * 32), second=_prepare(byz, b"\2" * 32)).encode())


def test_evidence_is_refused_without_a_check_and_recorded_with_one() -> None:
    unchecked = World(Ledger.open(None, make_genesis()))
    oc = unchecked.one("val0", _evidence())
    assert oc.code == "evidence.unchecked" and unchecked.led.evidence() == []
    assert unchecked.led.check(unchecked.ev("val0", _evidence())).code == "evidence.unchecked"  # type: ignore[union-attr]

    checked = World(Ledger.open(None, make_genesis(), evidence_check=check_evidence))
    checked.ok("val0", _evidence())
    (rec,) = checked.led.evidence()
    assert rec["validator"] == key("val3").public and rec["phase"] == "PREPARE" and rec["seq"] == 5
