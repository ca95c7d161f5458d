"""The check of equivocation evidence: does an encoded `Evidence` prove that one validator
signed two conflicting consensus messages?

The ledger records ``consensus.evidence`` events with this check (it receives it as a
port, `check_evidence`, so the application does not import consensus). Valid iff: the
bytes decode as an `Evidence`; both messages are votes or proposals of one kind (not
STATUS) with the same (phase, view, seq) and different digests (`messages.phase_key`);
they name the same signer, who is a validator at the slot (``validators_at(seq)``, or
``validators_at(report_height)`` for view changes and new views, whose seq is 0); and
both signatures verify under this chain's consensus domains. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass

from afterchain.protocol.bodies import MAX_EVIDENCE_BYTES
from afterchain.protocol.codec import decode_as
from afterchain.protocol.crypto import sign_bytes, verify_raw
from afterchain.protocol.errors import ProtocolError

from .messages import Evidence, SignedMessage, SignedStatus, phase_key

__all__ = ["Equivocation", "check_evidence"]


@dataclass(frozen=True, slots=True)
class Equivocation:
    """What valid evidence proves: `validator` signed two messages for (phase, view, seq)."""

    validator: bytes
    phase: str
    view: int
    seq: int


def check_evidence(evidence: bytes, chain_id: str, validators_at: Callable[[int], Container[bytes]],
                   report_height: int) -> Equivocation | str:
    """The equivocation `evidence` proves, or why it proves none (a message)."""
    try:
        ev = decode_as(Evidence, evidence, max_bytes=MAX_EVIDENCE_BYTES)
    except ProtocolError as exc:
        return f"not an encoded consensus Evidence: {exc}"
    first, second = ev.first, ev.second
    if not isinstance(first, SignedMessage) or isinstance(first, SignedStatus):
        return "evidence must be two signed votes or proposals (not STATUS)"
    phase, view, seq, digest1 = phase_key(first)
    if phase_key(second)[:3] != (phase, view, seq):
        return "the two messages are for different (phase, view, seq)"
    if phase_key(second)[3] == digest1:
        return "the two messages do not conflict (same digest)"
    signer = bytes(first.body.replica)  # type: ignore[attr-defined]
    if bytes(second.body.replica) != signer:  # type: ignore[attr-defined]
        return "the two messages name different signers"
    if signer not in validators_at(seq if seq >= 1 else report_height):
        return f"signer {signer.hex()[:16]} is not a validator at that height"
    for i, m in enumerate((first, second)):
        if not verify_raw(signer, m.signature, sign_bytes(m.DOMAIN, chain_id, m.body)):  # type: ignore[attr-defined]
            return f"signature of message {i + 1} does not verify for the signer"
    return Equivocation(validator=signer, phase=phase, view=view, seq=seq)
