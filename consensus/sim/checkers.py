"""The run's safety checkers and oracles (see the package docstring for the list).

`Checkers` watches what honest nodes send, commit and report: agreement and no rollback
(commits strictly in order after the stored chain), certificates (n - f distinct valid
COMMIT signatures for the header hash under V(h) of a reference application that executes
the agreed chain itself) and the sets a header names, honest non-equivocation, and
evidence (every equivocation an honest replica took inside its evidence window was
reported: `missing_evidence`). Violations go to the `RunLog`.
"""

from __future__ import annotations

from typing import Any

from afterchain.protocol.block import Block
from afterchain.protocol.errors import ProtocolError

from ..messages import (
    CertifiedBlock,
    ConsensusMessage,
    Evidence,
    PrePrepareMsg,
    SignedCheckpoint,
    SignedMessage,
    SignedStatus,
    phase_key,
)
from ..replica import Replica
from ..signer import Verifier, verify_certificate
from .config import CHAIN_ID, RunLog
from .node import Schedule, SimApp, SimNode

__all__ = ["Checkers"]


class Checkers:
    def __init__(self, log: RunLog, schedule: Schedule, k: int, verifier: Verifier, *, real_crypto: bool) -> None:
        self.log = log
        self.verifier = verifier
        self.real_crypto = real_crypto
        self.by_key: dict[bytes, SimNode] = {}
        """Every node by public key (filled in by the run)."""
        # the reference application executes the agreed chain: V(h) from the chain itself
        self.ref = SimApp(-1, schedule, k)
        self.chain: dict[int, bytes] = {}
        self.chain_blocks: dict[int, Block] = {}
        self.honest_signed: dict[tuple[bytes, str, int, int], bytes] = {}
        self.expected_evidence: set[tuple[int, bytes, str, int, int]] = set()
        self.reported_evidence: set[tuple[int, bytes, str, int, int]] = set()

    def on_receive(self, node: SimNode, r: Replica, sender: bytes, msg: Any) -> None:
        """Evidence oracle: an honest node took `msg` from `sender`; remember what each
        validator signed inside `r`'s evidence window, and expect evidence for a second,
        different message with the same (phase, view, seq)."""
        signed = msg.preprepare if isinstance(msg, PrePrepareMsg) else msg
        if not isinstance(signed, SignedMessage) or isinstance(signed, SignedStatus):
            return
        body = signed.body  # type: ignore[attr-defined]
        signer = body.replica
        if (signer != sender and not isinstance(signed, SignedCheckpoint)) or not r.accepts_from(signed, sender):
            return
        if not self.verifier.verify(signer, signed.signature, signed.DOMAIN, CHAIN_ID, body):  # type: ignore[attr-defined]
            return
        phase, view, seq, digest = phase_key(signed)
        if not r.in_evidence_window(phase, view, seq):
            return
        key = (signer, phase, view, seq)
        first = node.ev_seen.get(key)
        if first is None:
            node.ev_seen[key] = digest
        elif first != digest:
            self.expected_evidence.add((node.index, *key))

    def on_send(self, node: SimNode, msg: ConsensusMessage) -> None:
        """Honest non-equivocation: an honest node never signs two different messages for
        one (phase, view, seq) (the signer guard)."""
        signed = msg.preprepare if isinstance(msg, PrePrepareMsg) else msg
        if not isinstance(signed, SignedMessage) or isinstance(signed, SignedStatus):
            return
        phase, view, seq, digest = phase_key(signed)
        key = (node.signer.public, phase, view, seq)
        prev = self.honest_signed.setdefault(key, digest)
        if prev != digest:
            self.log.violation(f"honest replica {node.index} signed two different {phase} for view {view} seq {seq}")

    def on_commit(self, node: SimNode, cb: CertifiedBlock) -> None:
        """Agreement, no rollback, and the block's sets and certificate under V(h) of the
        reference application (called before the block joins the node's store)."""
        h = cb.block.header.height
        digest = cb.block.header.hash()
        if h != len(node.store) + 1:
            self.log.violation(f"replica {node.index} committed height {h} after {len(node.store)} (rollback/gap)")
        if node.store and cb.block.header.prev_hash != node.store[-1].certificate.header_hash:
            self.log.violation(f"replica {node.index} committed a block not chained to its previous one at {h}")
        prev = self.chain.setdefault(h, digest)
        if prev != digest:
            self.log.violation(f"agreement: replica {node.index} committed {digest.hex()[:12]} at {h}, others {prev.hex()[:12]}")
        else:
            self.chain_blocks.setdefault(h, cb.block)
            while (nxt := self.chain_blocks.get(self.ref.executed + 1)) is not None:
                self.ref.execute(nxt)
        vs = self.ref.validators_for(h)
        nxt_vs = self.ref.validators_for(h + 1)
        if vs is None or nxt_vs is None:
            self.log.violation(f"replica {node.index} committed height {h} before the chain below it was agreed")
            return
        hdr = cb.block.header
        if hdr.validators_hash != vs.hash() or hdr.next_validators_hash != nxt_vs.hash():
            self.log.violation(f"replica {node.index} committed height {h} whose header names the wrong validator sets")
        try:
            verify_certificate(cb.certificate, CHAIN_ID, vs, digest, self.verifier)
        except ProtocolError as exc:
            outsiders = sorted(self.by_key[s.replica].index for s in cb.certificate.signatures if s.replica not in vs)
            what = f" (votes of non-members {outsiders} counted)" if outsiders else ""
            self.log.violation(f"replica {node.index} committed height {h} with an invalid certificate under V({h}){what}: {exc}")
        if self.real_crypto:
            try:
                cb.certificate.verify(CHAIN_ID, vs, digest)
            except ProtocolError as exc:
                self.log.violation(f"certificate fails CommitCertificate.verify at {h}: {exc}")
        self.log.trace("commit", node.index, h, digest)

    def on_evidence(self, node: SimNode, ev: Evidence) -> None:
        """Evidence is well formed and never names an honest replica (by an honest node)."""
        a, b = phase_key(ev.first), phase_key(ev.second)
        who = ev.first.body.replica  # type: ignore[attr-defined]
        if a[:3] != b[:3] or a[3] == b[3] or who != ev.second.body.replica:  # type: ignore[attr-defined]
            self.log.violation(f"replica {node.index} produced malformed evidence")
            return
        if not self.by_key[who].byzantine and not node.byzantine:
            self.log.violation(f"replica {node.index} holds evidence against honest replica {self.by_key[who].index}")
        self.reported_evidence.add((node.index, who, a[0], a[1], a[2]))

    def missing_evidence(self) -> None:
        """At the end of a run: equivocations seen and not reported (the first three)."""
        missing = self.expected_evidence - self.reported_evidence
        for node_i, who, phase, view, seq in sorted(missing)[:3]:
            self.log.violation(f"evidence: replica {node_i} saw {phase} equivocation by {self.by_key[who].index} "
                               f"(view {view}, seq {seq}) and reported nothing")
