"""What Byzantine replicas do to the messages their (honest) replica code sends.

A Byzantine node runs the real `Replica`; `Byzantine.outgoing` rewrites each message it
sends to one peer according to the node's kinds: silent (drop most), equivocate (the
primary sends another block to odd-numbered peers), conflict (prepares/commits for a
made-up digest, or colluding with an equivocating primary's other block), replay (old
messages), badsig (corrupted signatures). `forge` is what a "forge" node serves to
catch-up requests. Random choices come from the run's one `random.Random`.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from afterchain.protocol.block import Block, CommitCertificate
from afterchain.protocol.codec import sha256
from afterchain.protocol.crypto import Domain
from afterchain.protocol.merkle import merkle_root
from afterchain.protocol.types import Hash32, Signature

from ..messages import (
    CertifiedBlock,
    ConsensusMessage,
    PrePrepareMsg,
    SignedCommit,
    SignedMessage,
    SignedPrepare,
    SignedPrePrepare,
)
from .config import CHAIN_ID
from .node import SimNode

__all__ = ["Byzantine", "forge"]


class Byzantine:
    """The Byzantine behaviours of a run (shared by its Byzantine nodes, which collude)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.alt_digests: dict[tuple[int, int], bytes] = {}
        """(view, seq) -> digest of the other block an equivocating primary sent."""

    def outgoing(self, node: SimNode, to: int, msg: ConsensusMessage) -> list[Any]:
        """What `node` really sends to peer `to` instead of `msg` (maybe nothing)."""
        rng = self.rng
        kinds = node.kinds
        if "silent" in kinds and rng.random() < 0.9:
            return []
        out: list[Any] = [msg]
        if "equivocate" in kinds and isinstance(msg, PrePrepareMsg) and to % 2 == 1:
            alt = self._alt_preprepare(node, msg)
            out = [alt, msg] if rng.random() < 0.3 else [alt]
        elif "conflict" in kinds and isinstance(msg, SignedPrepare | SignedCommit) and (
            (alt_digest := self.alt_digests.get((msg.body.view, msg.body.seq))) is not None or rng.random() < 0.5
        ):
            # collude with an equivocating primary (vote for its other block where it sent
            # that one), or vote for a made-up digest
            if alt_digest is not None and to % 2 == 0:
                return [msg]
            body = replace(msg.body, digest=Hash32(alt_digest or sha256(msg.body.digest + b"x")))
            alt2 = type(msg)(body=body, signature=node.signer.sign(msg.DOMAIN, CHAIN_ID, body))  # type: ignore[arg-type]
            out = [alt2, msg] if rng.random() < 0.5 else [alt2]
        if "replay" in kinds and node.history and rng.random() < 0.3:
            out.append(node.history[rng.randrange(len(node.history))][1])
        if "badsig" in kinds and rng.random() < 0.2:
            out = [corrupt(m) for m in out]
        return out

    def _alt_preprepare(self, node: SimNode, msg: PrePrepareMsg) -> PrePrepareMsg:
        block = msg.block
        events = (*block.events, b"equivocation")
        hdr = replace(block.header, events_root=Hash32(merkle_root([sha256(e) for e in events])), event_count=len(events))
        alt_block = Block(header=hdr, events=events)
        body = replace(msg.preprepare.body, digest=Hash32(hdr.hash()))
        self.alt_digests[(body.view, body.seq)] = body.digest
        spp = SignedPrePrepare(body=body, signature=node.signer.sign(Domain.PREPREPARE, CHAIN_ID, body))
        return PrePrepareMsg(preprepare=spp, block=alt_block)


def corrupt(msg: Any) -> Any:
    """`msg` with a signature that does not verify."""
    if isinstance(msg, PrePrepareMsg):
        bad = SignedPrePrepare(body=msg.preprepare.body, signature=Signature(bytes(64)))
        return PrePrepareMsg(preprepare=bad, block=msg.block)
    if isinstance(msg, SignedMessage):
        return replace(msg, signature=Signature(sha256(msg.signature) * 2))  # type: ignore[type-var, attr-defined]
    return msg


def forge(cb: CertifiedBlock) -> CertifiedBlock:
    """A committed block with a changed header under the original certificate."""
    hdr = replace(cb.block.header, time_ms=cb.block.header.time_ms + 1)
    forged = Block(header=hdr, events=cb.block.events)
    cert = CommitCertificate(view=cb.certificate.view, height=cb.certificate.height, header_hash=Hash32(hdr.hash()),
                             signatures=cb.certificate.signatures)
    return CertifiedBlock(block=forged, certificate=cert)
