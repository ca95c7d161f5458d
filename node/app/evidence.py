"""Consensus evidence on chain: ``consensus.evidence`` events and their records.

Sent by validator keys (not members: own nonce, like customers); the body is an encoded
consensus `Evidence`. The check of the evidence itself is consensus's
(`consensus.evidence.check_evidence`); the ledger receives it as a port (`EvidenceCheck`,
a parameter of `Ledger.open`) and never imports consensus. Without one, evidence is
refused (``evidence.unchecked``), never recorded unchecked. Recorded if the reporter is
in V(height of the block) and the check passes (signer in V(seq) of the slot, V(height)
for view changes); otherwise ``evidence.invalid``. Recorded once per (validator, phase,
view, seq) at ``evidence/<validator:32>/<phase>/<view:8><seq:8>``; a second report is
``evidence.duplicate``.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from typing import Any, Protocol

from afterchain.node.app.codes import Reason
from afterchain.node.app.context import Ctx, Env, Handler, Rejected
from afterchain.protocol import bodies as B
from afterchain.protocol import state_keys as K

__all__ = ["HANDLERS", "Equivocation", "EvidenceCheck", "evidence_record", "refuse_duplicate"]


class Equivocation(Protocol):
    """What valid evidence proves: `validator` signed two messages for (phase, view, seq)."""

    @property
    def validator(self) -> bytes: ...

    @property
    def phase(self) -> str: ...

    @property
    def view(self) -> int: ...

    @property
    def seq(self) -> int: ...


class EvidenceCheck(Protocol):
    """Checks encoded evidence against this chain (`chain_id`) and the validator sets
    (``validators_at(height)``: the keys of V(height)); `report_height` is the height of
    the block reporting it. Returns what it proves, or why it proves nothing."""

    def __call__(self, evidence: bytes, chain_id: str, validators_at: Callable[[int], Container[bytes]],
                  report_height: int, /) -> Equivocation | str: ...


def _validator_keys(env: Env, height: int) -> frozenset[bytes]:
    """Keys of V(height); for a height whose set is not known yet here, the newest set of
    the schedule."""
    vs = env.schedule.validators_for(height) if height >= 1 else None
    if vs is None:
        vs = env.schedule.last.validators
    return frozenset(bytes(v) for v in vs.validators)


def evidence_record(env: Env, sender: bytes, b: B.ConsensusEvidence, height: int) -> tuple[bytes, dict[str, Any]]:
    """The state key and record of valid, new-looking evidence reported by `sender` in
    block `height`; raises `Rejected`."""
    if sender not in _validator_keys(env, height):
        raise Rejected(Reason.NOT_VALIDATOR, "consensus.evidence needs a validator key")
    if env.evidence_check is None:
        raise Rejected(Reason.EVIDENCE_UNCHECKED, "this ledger was opened without an evidence check")
    found = env.evidence_check(b.evidence, env.chain_id, lambda h: _validator_keys(env, h), height)
    if isinstance(found, str):
        raise Rejected(Reason.EVIDENCE_INVALID, found)
    key = K.evidence(found.validator, found.phase, found.view, found.seq)
    return key, {"validator": found.validator, "phase": found.phase, "view": found.view, "seq": found.seq,
                 "reporter": sender}


def refuse_duplicate(rec: dict[str, Any]) -> Rejected:
    return Rejected(Reason.EVIDENCE_DUPLICATE, f"evidence against {rec['validator'].hex()[:16]} for {rec['phase']} "
                                               f"view {rec['view']} seq {rec['seq']} is already recorded")


def consensus_evidence(env: Env, ctx: Ctx, b: B.ConsensusEvidence) -> Any:
    key, rec = evidence_record(env, ctx.sender, b, ctx.height)
    if env.state.get(key) is not None:
        raise refuse_duplicate(rec)
    env.state.put(key, {**rec, "event": ctx.event_id, "height": ctx.height, "time": ctx.time_ms})
    return {"validator": rec["validator"]}


HANDLERS: dict[str, Handler] = {"consensus.evidence": consensus_evidence}
