"""Signing and verification seen by the replica, and the commit-certificate check.

`Ed25519Signer` / `Ed25519Verifier` use `protocol.crypto` (real keys; certificates they
produce pass `CommitCertificate.verify`). `FastSigner` / `FastVerifier` are a cheap,
deterministic stand-in for the simulator only: the "signature" is BLAKE2b(public key ||
sign bytes), which anyone can forge, so it is never to be used outside simulations.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Protocol

from afterchain.protocol.block import Commit, CommitCertificate, ValidatorSet
from afterchain.protocol.codec import Message
from afterchain.protocol.crypto import Domain, KeyPair, sign_bytes, verify_raw
from afterchain.protocol.errors import Code, SignatureError, ValidationError
from afterchain.protocol.types import Seq, Signature, ValidatorId

__all__ = [
    "CachingVerifier", "Ed25519Signer", "Ed25519Verifier", "FastSigner", "FastVerifier", "Signer", "Verifier", "quorum_size", "verify_certificate",
]


class Signer(Protocol):
    @property
    def public(self) -> ValidatorId: ...

    def sign(self, domain: Domain, chain_id: str, msg: Message) -> Signature: ...


class Verifier(Protocol):
    def verify(self, public: bytes, signature: bytes, domain: Domain, chain_id: str, msg: Message) -> bool: ...


class Ed25519Signer:
    __slots__ = ("_key",)

    def __init__(self, key: KeyPair) -> None:
        self._key = key

    @property
    def public(self) -> ValidatorId:
        return ValidatorId(self._key.public)

    def sign(self, domain: Domain, chain_id: str, msg: Message) -> Signature:
        return self._key.sign(domain, chain_id, msg)


class Ed25519Verifier:
    __slots__ = ()

    def verify(self, public: bytes, signature: bytes, domain: Domain, chain_id: str, msg: Message) -> bool:
        return verify_raw(public, signature, sign_bytes(domain, chain_id, msg))


class CachingVerifier:
    """A `Verifier` that remembers the last `capacity` checks that passed and answers the
    same check again without the signature arithmetic.

    Peers re-send votes (retransmission after loss, relayed checkpoints, duplicates), and
    without it each copy costs a full Ed25519 verification again. The key
    is the whole input of the check (public key, signature and the exact signed bytes,
    which include the domain and the chain id), so a hit is the same computation with the
    same result; failures are not remembered. Bounded (oldest first out); pure, no I/O.
    `hits` / `misses` count the checks answered from memory / by `inner`.
    """

    __slots__ = ("_ok", "_raw", "capacity", "hits", "inner", "misses")

    def __init__(self, inner: Verifier, capacity: int = 8192) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.inner = inner
        self.capacity = capacity
        self._ok: OrderedDict[bytes, None] = OrderedDict()
        # plain Ed25519 checks the signed bytes the key already holds (not encoded twice)
        self._raw = type(inner) is Ed25519Verifier
        self.hits = 0
        self.misses = 0

    def verify(self, public: bytes, signature: bytes, domain: Domain, chain_id: str, msg: Message) -> bool:
        signed = sign_bytes(domain, chain_id, msg)
        key = bytes(public) + bytes(signature) + signed
        ok = self._ok
        if key in ok:
            self.hits += 1
            return True
        self.misses += 1
        if not (verify_raw(public, signature, signed) if self._raw else self.inner.verify(public, signature, domain, chain_id, msg)):
            return False
        ok[key] = None
        if len(ok) > self.capacity:
            ok.popitem(last=False)
        return True


class FastSigner:
    """Simulation only: a forgeable, deterministic 64-byte tag."""

    __slots__ = ("_public",)

    def __init__(self, public: bytes) -> None:
        self._public = ValidatorId(public)

    @property
    def public(self) -> ValidatorId:
        return self._public

    def sign(self, domain: Domain, chain_id: str, msg: Message) -> Signature:
        return Signature(hashlib.blake2b(self._public + sign_bytes(domain, chain_id, msg)).digest())


class FastVerifier:
    __slots__ = ()

    def verify(self, public: bytes, signature: bytes, domain: Domain, chain_id: str, msg: Message) -> bool:
        return hashlib.blake2b(public + sign_bytes(domain, chain_id, msg)).digest() == signature


def quorum_size(validators: ValidatorSet) -> int:
    """n - f: any two quorums share at least f + 1 replicas, so one correct one (equal to
    2f + 1 when n = 3f + 1). The same as `ValidatorSet.quorum`."""
    return validators.quorum


def verify_certificate(
    cert: CommitCertificate, chain_id: str, validators: ValidatorSet, header_hash: bytes, verifier: Verifier
) -> None:
    """`CommitCertificate.verify` through a `Verifier` (the same rules, any signature scheme)."""
    if isinstance(verifier, CachingVerifier) and isinstance(verifier.inner, Ed25519Verifier):
        verifier = verifier.inner  # a fetched block's votes were mostly never seen here
    if isinstance(verifier, Ed25519Verifier):
        cert.verify(chain_id, validators, header_hash)
        if len(cert.signatures) < quorum_size(validators):
            raise SignatureError(Code.BAD_SIGNATURE, f"{len(cert.signatures)} signatures, a quorum is {quorum_size(validators)}", field="signatures")
        return
    if header_hash != cert.header_hash:
        raise ValidationError(Code.FIELD_INVALID, "certificate is for another header", field="header_hash")
    seen: set[bytes] = set()
    for i, sig in enumerate(cert.signatures):
        if sig.replica not in validators or sig.replica in seen:
            raise SignatureError(Code.BAD_SIGNATURE, "signer is not a distinct validator", field=f"signatures[{i}].replica")
        seen.add(sig.replica)
        vote = Commit(view=cert.view, seq=Seq(cert.height), digest=cert.header_hash, replica=sig.replica)
        if not verifier.verify(sig.replica, sig.signature, Domain.COMMIT, chain_id, vote):
            raise SignatureError(Code.BAD_SIGNATURE, "COMMIT signature does not verify", field=f"signatures[{i}].signature")
    if len(seen) < quorum_size(validators):
        raise SignatureError(Code.BAD_SIGNATURE, f"{len(seen)} signatures, a quorum is {quorum_size(validators)}", field="signatures")
