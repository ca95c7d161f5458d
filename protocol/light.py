"""Light-client verification: is this answer from one untrusted node what the chain says?

Pure functions (no I/O, no clock: the caller passes ``now_ms``). A light client keeps a
`TrustedState` (chain id, genesis hash, the last header it verified, and the validator set
that signs the NEXT height). An answer (`StateAnswer`) is a state key, its value (or None:
absent), an SMT proof, the root it is against and a `CertifiedHeader` (header + commit
certificate [+ the next validator set when the header announces a change]).

`verify_answer` accepts an answer only if all of these hold, in this order (the first
failure is the refusal, each with its own stable `Reason`):

1. the header is for our chain, not from the future (beyond ``max_clock_drift_ms``) and not
   older than the trusting period;
2. the trusted state is within the trusting period (``trust.time_ms + period >= now``);
3. it is not older than the trusted header (rollback), and at the trusted height it IS the
   trusted header (fork);
4. its validator set is known: it is the trusted next set, or reached from it through
   validator-set *change headers* (``next_validators_hash != validators_hash``), each
   certified by the set before it and carrying the new set (whose hash must match);
5. its certificate is for this header and height and holds a quorum of distinct members
   of that set with valid COMMIT signatures;
6. the proof is for the asked key, against the header's ``state_root``, and verifies for the
   value (membership) or for absence.

Skipping: when the set did not change, the newest header is checked directly against the
trusted set (one download: the answer's own header). Safety rests on the usual trusting
assumption: within the trusting period, fewer than a third of a trusted set is faulty, so
a quorum of it signs only canonical headers.

Invariants: every refusal is a `LightError` whose `reason` is one `Reason`; nothing else
escapes `verify_answer` / `verify_header` for any input (bad encodings are
``light.malformed``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from enum import StrEnum

from .block import ZERO_HASH, BlockHeader, Commit, CommitCertificate, ValidatorSet
from .codec import Message, message
from .crypto import Domain, sign_bytes, verify_raw
from .errors import Code, ProtocolError, ValidationError
from .smt import MAX_KEY_BYTES, SmtProof, verify_smt_proof
from .types import Hash32, Height, Seq

__all__ = [
    "DEFAULT_MAX_CLOCK_DRIFT_MS",
    "DEFAULT_TRUSTING_PERIOD_MS",
    "MAX_CHANGE_HEADERS",
    "CertifiedHeader",
    "LightError",
    "Reason",
    "StateAnswer",
    "TrustedState",
    "decode_answer",
    "decode_certified",
    "genesis_trust",
    "verify_answer",
    "verify_certificate",
    "verify_header",
]

DEFAULT_TRUSTING_PERIOD_MS = 14 * 24 * 3600 * 1000
"""How long a verified validator set stays trusted (two weeks)."""
DEFAULT_MAX_CLOCK_DRIFT_MS = 10_000
"""How far in the future (by the client's clock) a header's time may be."""
MAX_CHANGE_HEADERS = 256
"""At most this many validator-set change headers are followed in one verification."""
MAX_ANSWER_BYTES = 256 * 1024
"""An encoded answer is at most a header, a certificate, a set, a proof and one value."""


class Reason(StrEnum):
    """Why an answer was refused (stable; clients and scripts match on these)."""

    MALFORMED = "light.malformed"
    WRONG_CHAIN = "light.wrong_chain"
    TRUST_EXPIRED = "light.trust_expired"
    HEADER_EXPIRED = "light.header_expired"
    HEADER_FUTURE = "light.header_future"
    ROLLBACK = "light.rollback"
    FORK = "light.fork"
    CERTIFICATE_MISMATCH = "light.certificate_mismatch"
    SIGNER_UNKNOWN = "light.signer_unknown"
    SIGNER_DUPLICATE = "light.signer_duplicate"
    SIGNATURE_INVALID = "light.signature_invalid"
    NO_QUORUM = "light.no_quorum"
    VALIDATORS_UNPROVEN = "light.validators_unproven"
    VALIDATOR_CHANGE_UNCERTIFIED = "light.validator_change_uncertified"
    WRONG_KEY = "light.wrong_key"
    WRONG_ROOT = "light.wrong_root"
    VALUE_TAMPERED = "light.value_tampered"
    ABSENCE_FORGED = "light.absence_forged"
    WITNESS_MISMATCH = "light.witness_mismatch"
    NODE_UNAVAILABLE = "light.node_unavailable"
    INCOMPLETE = "light.incomplete"
    HISTORY_MISMATCH = "light.history_mismatch"


REASON_MEANINGS: dict[Reason, str] = {
    Reason.MALFORMED: "an answer part is not the canonical encoding of its message, or is invalid",
    Reason.WRONG_CHAIN: "the header's chain_id is not the trusted chain's",
    Reason.TRUST_EXPIRED: "the trusted header is older than the trusting period: re-bootstrap from a trusted hash",
    Reason.HEADER_EXPIRED: "the header is older than the trusting period",
    Reason.HEADER_FUTURE: "the header's time is ahead of the client's clock by more than the allowed drift",
    Reason.ROLLBACK: "the header (or its state) is older than what the client already trusts",
    Reason.FORK: "a certified header at the trusted height differs from the trusted header",
    Reason.CERTIFICATE_MISMATCH: "the certificate is for another header hash or height",
    Reason.SIGNER_UNKNOWN: "a certificate signer is not in the validator set",
    Reason.SIGNER_DUPLICATE: "a validator signs the certificate twice",
    Reason.SIGNATURE_INVALID: "a COMMIT signature does not verify",
    Reason.NO_QUORUM: "fewer than a quorum (n - f) of signatures of the validator set",
    Reason.VALIDATORS_UNPROVEN: "the header's validator set is not reached from the trusted set by change headers",
    Reason.VALIDATOR_CHANGE_UNCERTIFIED: "a validator-set change header lacks a valid certificate or the new set",
    Reason.WRONG_KEY: "the answer is for another state key",
    Reason.WRONG_ROOT: "the proof is against another root than the header's state_root",
    Reason.VALUE_TAMPERED: "the value does not verify against the header's state root",
    Reason.ABSENCE_FORGED: "the key is said to be absent but the proof does not show it",
    Reason.WITNESS_MISMATCH: "the witness node has another header at that height",
    Reason.NODE_UNAVAILABLE: "the node did not answer (or answered an error): nothing to verify",
    Reason.INCOMPLETE: "a multi-key answer (a passport) leaves out a key it must prove, or adds or repeats one",
    Reason.HISTORY_MISMATCH: "a product's history entries do not hash to the head (hh) its proven record commits to",
}


class LightError(Exception):
    """A refused answer: `reason` is stable, `message` says what exactly."""

    def __init__(self, reason: Reason, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(f"{reason}: {message}")

    def to_dict(self) -> dict[str, str]:
        return {"reason": str(self.reason), "message": self.message}


@message(tag=0x90)
class TrustedState(Message):
    """What a light client trusts: the last verified header and the set signing the next height.

    At genesis, `height` is 0, `header_hash` is 32 zero bytes, `time_ms` the genesis time,
    `state_height` 0 and `validators` the genesis set.
    """

    chain_id: str
    genesis_hash: Hash32
    height: Height
    header_hash: Hash32
    time_ms: int
    state_height: Height
    validators: ValidatorSet

    def validate(self) -> None:
        if self.height == 0 and self.header_hash != ZERO_HASH:
            raise ValidationError(Code.FIELD_INVALID, "the genesis trusted state has a zero header hash", field="header_hash")


@message(tag=0x91)
class CertifiedHeader(Message):
    """A header, its commit certificate and, when the header changes the set
    (``next_validators_hash != validators_hash``), the next set."""

    header: BlockHeader
    certificate: CommitCertificate
    next_validators: ValidatorSet | None


@message(tag=0x92)
class StateAnswer(Message):
    """A node's answer for one state key: value (None: absent), proof against `state_root`,
    and the certified header whose `state_root` that is."""

    key: bytes
    value: bytes | None
    state_root: Hash32
    proof: SmtProof
    header: CertifiedHeader

    def validate(self) -> None:
        if len(self.key) > MAX_KEY_BYTES:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, f"a state key is at most {MAX_KEY_BYTES} bytes", field="key")


def genesis_trust(chain_id: str, genesis_hash: bytes, genesis_time_ms: int, validators: ValidatorSet) -> TrustedState:
    """The trusted state of a client that starts from a genesis document it trusts."""
    return TrustedState(chain_id=chain_id, genesis_hash=Hash32(bytes(genesis_hash)), height=Height(0), header_hash=ZERO_HASH,
                        time_ms=genesis_time_ms, state_height=Height(0), validators=validators)


def _decode_error(what: str, exc: ProtocolError) -> LightError:
    if exc.code == Code.FIELD_INVALID and exc.field is not None and exc.field.endswith("signatures"):
        return LightError(Reason.SIGNER_DUPLICATE, f"{what}: {exc}")
    return LightError(Reason.MALFORMED, f"{what}: {exc}")


def decode_certified(header: bytes, certificate: bytes, next_validators: bytes | None = None) -> CertifiedHeader:
    """Decode a header, its certificate and optional next set into a `CertifiedHeader`."""
    try:
        h = BlockHeader.decode(header)
    except ProtocolError as exc:
        raise _decode_error("header", exc) from None
    try:
        c = CommitCertificate.decode(certificate)
    except ProtocolError as exc:
        raise _decode_error("certificate", exc) from None
    nv = None
    if next_validators is not None:
        try:
            nv = ValidatorSet.decode(next_validators)
        except ProtocolError as exc:
            raise _decode_error("next_validators", exc) from None
    return CertifiedHeader(header=h, certificate=c, next_validators=nv)


def decode_answer(key: bytes, value: bytes | None, state_root: bytes, proof: bytes, header: CertifiedHeader) -> StateAnswer:
    """Assemble a `StateAnswer` from its decoded parts (the proof from its encoding)."""
    try:
        p = SmtProof.decode(proof)
    except ProtocolError as exc:
        raise LightError(Reason.MALFORMED, f"proof: {exc}") from None
    if len(state_root) != 32:
        raise LightError(Reason.MALFORMED, "state_root is 32 bytes")
    try:
        return StateAnswer(key=key, value=value, state_root=Hash32(state_root), proof=p, header=header)
    except ProtocolError as exc:  # pragma: no cover - construction does not validate
        raise LightError(Reason.MALFORMED, str(exc)) from None


def verify_certificate(chain_id: str, validators: ValidatorSet, header: BlockHeader, cert: CommitCertificate) -> None:
    """Raise `LightError` unless `cert` certifies `header` with a quorum of `validators`."""
    header_hash = header.hash()
    if cert.header_hash != header_hash or cert.height != header.height:
        raise LightError(Reason.CERTIFICATE_MISMATCH, f"certificate is for height {cert.height} hash {cert.header_hash.hex()[:16]}..., "
                                                      f"header is {header.height} {header_hash.hex()[:16]}...")
    seen: set[bytes] = set()
    for i, sig in enumerate(cert.signatures):
        if sig.replica not in validators:
            raise LightError(Reason.SIGNER_UNKNOWN, f"signature {i} is by {sig.replica.hex()[:16]}..., not a validator")
        if sig.replica in seen:
            raise LightError(Reason.SIGNER_DUPLICATE, f"{sig.replica.hex()[:16]}... signs twice")
        seen.add(sig.replica)
    for i, sig in enumerate(cert.signatures):
        vote = Commit(view=cert.view, seq=Seq(cert.height), digest=cert.header_hash, replica=sig.replica)
        if not verify_raw(sig.replica, sig.signature, sign_bytes(Domain.COMMIT, chain_id, vote)):
            raise LightError(Reason.SIGNATURE_INVALID, f"signature {i} by {sig.replica.hex()[:16]}... does not verify")
    if len(seen) < validators.quorum:
        raise LightError(Reason.NO_QUORUM, f"{len(seen)} signatures, a quorum is {validators.quorum} of {validators.n}")


def _check_time(trust: TrustedState, header: BlockHeader, now_ms: int, trusting_period_ms: int, max_clock_drift_ms: int) -> None:
    if header.chain_id != trust.chain_id:
        raise LightError(Reason.WRONG_CHAIN, f"header is for chain {header.chain_id!r}, we follow {trust.chain_id!r}")
    if header.time_ms > now_ms + max_clock_drift_ms:
        raise LightError(Reason.HEADER_FUTURE, f"header time {header.time_ms} is ahead of now {now_ms} by more than {max_clock_drift_ms} ms")
    if header.time_ms + trusting_period_ms < now_ms:
        raise LightError(Reason.HEADER_EXPIRED, f"header {header.height} is {now_ms - header.time_ms} ms old, "
                                                f"the trusting period is {trusting_period_ms} ms")


def verify_header(trust: TrustedState, target: CertifiedHeader, changes: Sequence[CertifiedHeader] = (), *, now_ms: int,
                  trusting_period_ms: int = DEFAULT_TRUSTING_PERIOD_MS,
                  max_clock_drift_ms: int = DEFAULT_MAX_CLOCK_DRIFT_MS) -> TrustedState:
    """Verify `target` from `trust` (through the validator-set `changes` between them, in
    height order) and return the new trusted state (`trust` itself if target is not newer).

    Raises `LightError` (steps 1-5 of the module docstring).
    """
    header = target.header
    _check_time(trust, header, now_ms, trusting_period_ms, max_clock_drift_ms)
    if trust.time_ms + trusting_period_ms < now_ms:
        raise LightError(Reason.TRUST_EXPIRED, f"the trusted header {trust.height} is {now_ms - trust.time_ms} ms old, "
                                               f"the trusting period is {trusting_period_ms} ms")
    if header.height < trust.height or header.state_height < trust.state_height:
        raise LightError(Reason.ROLLBACK, f"header {header.height} (state {header.state_height}) is older than the trusted "
                                          f"header {trust.height} (state {trust.state_height})")
    if header.height == trust.height:
        if header.hash() != trust.header_hash:
            raise LightError(Reason.FORK, f"header {header.height} is not the trusted header {trust.header_hash.hex()[:16]}...")
        return trust  # verified before (its certificate was checked then)
    if len(changes) > MAX_CHANGE_HEADERS:
        raise LightError(Reason.MALFORMED, f"at most {MAX_CHANGE_HEADERS} change headers, got {len(changes)}")
    current = trust.validators
    current_hash = current.hash()
    last = trust.height
    if header.validators_hash != current_hash:
        for ch in changes:
            c = ch.header
            if c.height <= last or c.height >= header.height:
                raise LightError(Reason.VALIDATOR_CHANGE_UNCERTIFIED, f"change header {c.height} is out of order "
                                                                      f"(after {last}, before {header.height})")
            if c.validators_hash != current_hash:
                raise LightError(Reason.VALIDATORS_UNPROVEN, f"change header {c.height} is signed by an unknown set "
                                                             f"{c.validators_hash.hex()[:16]}...")
            try:
                _check_time(trust, c, now_ms, trusting_period_ms, max_clock_drift_ms)
                verify_certificate(trust.chain_id, current, c, ch.certificate)
            except LightError as exc:
                raise LightError(Reason.VALIDATOR_CHANGE_UNCERTIFIED, f"change header {c.height}: {exc}") from None
            nv = ch.next_validators
            if nv is None or nv.hash() != c.next_validators_hash:
                raise LightError(Reason.VALIDATOR_CHANGE_UNCERTIFIED, f"change header {c.height} does not carry the set "
                                                                      f"{c.next_validators_hash.hex()[:16]}... it announces")
            current, current_hash, last = nv, nv.hash(), c.height
            if current_hash == header.validators_hash:
                break
        if header.validators_hash != current_hash:
            raise LightError(Reason.VALIDATORS_UNPROVEN, f"header {header.height} is signed by set {header.validators_hash.hex()[:16]}..., "
                                                         "not reached from the trusted set by certified changes")
    verify_certificate(trust.chain_id, current, header, target.certificate)
    nxt = current
    if header.next_validators_hash != header.validators_hash:
        nv = target.next_validators
        if nv is None or nv.hash() != header.next_validators_hash:
            raise LightError(Reason.VALIDATOR_CHANGE_UNCERTIFIED, f"header {header.height} announces set "
                                                                  f"{header.next_validators_hash.hex()[:16]}... without carrying it")
        nxt = nv
    return replace(trust, height=header.height, header_hash=Hash32(header.hash()), time_ms=header.time_ms,
                   state_height=header.state_height, validators=nxt)


def verify_proof(answer: StateAnswer, key: bytes) -> bytes | None:
    """Step 6: the value (None: proven absent) of `key` under the answer header's state root."""
    if answer.key != key:
        raise LightError(Reason.WRONG_KEY, f"asked for key {key.hex()}, the answer is for {answer.key.hex()}")
    root = answer.header.header.state_root
    if answer.state_root != root:
        raise LightError(Reason.WRONG_ROOT, f"the proof is against root {answer.state_root.hex()[:16]}..., the header's "
                                            f"state_root is {root.hex()[:16]}...")
    if not verify_smt_proof(root, key, answer.value, answer.proof):
        if answer.value is None:
            raise LightError(Reason.ABSENCE_FORGED, "the proof does not show the key absent under the header's state root")
        raise LightError(Reason.VALUE_TAMPERED, "the value does not verify under the header's state root")
    return answer.value


def verify_answer(trust: TrustedState, answer: StateAnswer, key: bytes, changes: Sequence[CertifiedHeader] = (), *,
                  now_ms: int, trusting_period_ms: int = DEFAULT_TRUSTING_PERIOD_MS,
                  max_clock_drift_ms: int = DEFAULT_MAX_CLOCK_DRIFT_MS) -> tuple[bytes | None, TrustedState]:
    """Verify a node's answer for `key`: (verified value or None if proven absent, new trusted state).

    Raises `LightError` with the first failed check (module docstring).
    """
    new_trust = verify_header(trust, answer.header, changes, now_ms=now_ms, trusting_period_ms=trusting_period_ms,
                              max_clock_drift_ms=max_clock_drift_ms)
    return verify_proof(answer, key), new_trust
