"""`CachingVerifier`: a repeated check of a vote that passed is answered from memory, and
nothing else is (another signature, other bytes, another domain or chain, a failure)."""

from __future__ import annotations

import pytest

from afterchain.consensus.messages import Commit, Prepare
from afterchain.consensus.signer import CachingVerifier, Ed25519Verifier
from afterchain.protocol.crypto import Domain, KeyPair
from afterchain.protocol.types import Hash32, Seq, Signature, ValidatorId, View


class _Counting(Ed25519Verifier):
    """Ed25519 that counts the checks it really does."""

    __slots__ = ("calls",)

    def __init__(self) -> None:
        self.calls = 0

    def verify(self, public: bytes, signature: bytes, domain: Domain, chain_id: str, msg: object) -> bool:  # type: ignore[override]
        self.calls += 1
        return super().verify(public, signature, domain, chain_id, msg)  # type: ignore[arg-type]


def _vote(key: KeyPair, seq: int = 1) -> tuple[Prepare, Signature]:
    body = Prepare(view=View(0), seq=Seq(seq), digest=Hash32(b"\x11" * 32), replica=ValidatorId(key.public))
    return body, Signature(key.sign(Domain.PREPARE, "c", body))


def test_repeat_is_answered_from_memory() -> None:
    key = KeyPair.from_seed(b"\x01" * 32)
    inner = _Counting()
    v = CachingVerifier(inner)
    body, sig = _vote(key)
    assert v.verify(key.public, sig, Domain.PREPARE, "c", body)
    assert v.verify(key.public, sig, Domain.PREPARE, "c", body)
    assert (inner.calls, v.misses, v.hits) == (1, 1, 1)


def test_anything_different_is_checked_and_fails() -> None:
    key, other = KeyPair.from_seed(b"\x01" * 32), KeyPair.from_seed(b"\x02" * 32)
    inner = _Counting()
    v = CachingVerifier(inner)
    body, sig = _vote(key)
    assert v.verify(key.public, sig, Domain.PREPARE, "c", body)
    body2, _ = _vote(key, seq=2)
    assert not v.verify(key.public, sig, Domain.PREPARE, "c", body2)  # other bytes
    assert not v.verify(key.public, sig, Domain.COMMIT, "c", Commit(view=body.view, seq=body.seq, digest=body.digest,
                                                                     replica=body.replica))  # other domain
    assert not v.verify(key.public, sig, Domain.PREPARE, "other-chain", body)  # other chain
    assert not v.verify(other.public, sig, Domain.PREPARE, "c", body)  # other key
    bad = Signature(bytes([sig[0] ^ 1]) + sig[1:])
    assert not v.verify(key.public, bad, Domain.PREPARE, "c", body)
    assert not v.verify(key.public, bad, Domain.PREPARE, "c", body)  # a failure is not remembered
    assert inner.calls == 7 and v.hits == 0


def test_bounded_oldest_first() -> None:
    key = KeyPair.from_seed(b"\x01" * 32)
    inner = _Counting()
    v = CachingVerifier(inner, capacity=2)
    votes = [_vote(key, seq=s) for s in (1, 2, 3)]
    for body, sig in votes:
        assert v.verify(key.public, sig, Domain.PREPARE, "c", body)
    assert inner.calls == 3
    body, sig = votes[0]  # pushed out by the third
    assert v.verify(key.public, sig, Domain.PREPARE, "c", body)
    assert inner.calls == 4
    body, sig = votes[2]
    assert v.verify(key.public, sig, Domain.PREPARE, "c", body)
    assert inner.calls == 4
    with pytest.raises(ValueError):
        CachingVerifier(inner, capacity=0)


def test_plain_ed25519_inner_checks_the_signed_bytes() -> None:
    """With plain `Ed25519Verifier` inside, the check uses the bytes of the key directly."""
    key = KeyPair.from_seed(b"\x03" * 32)
    v = CachingVerifier(Ed25519Verifier())
    body, sig = _vote(key)
    bad = Signature(bytes([sig[0] ^ 1]) + sig[1:])
    assert not v.verify(key.public, bad, Domain.PREPARE, "c", body)
    assert not v.verify(key.public, sig, Domain.PREPARE, "other-chain", body)
    assert v.verify(key.public, sig, Domain.PREPARE, "c", body)
    assert v.verify(key.public, sig, Domain.PREPARE, "c", body)
    assert (v.misses, v.hits) == (3, 1)
