"""TEST ONLY: a node that equivocates, for the nemesis `byzantine` scenario and tests.

Never reachable by accident: the mode is read from the environment variable
``AFTERCHAIN_TEST_BYZANTINE`` (only value: ``equivocate``) and is refused (the node does
not start) unless ``AFTERCHAIN_TEST_SWITCHES=1`` is set too. There is no config key.

What an equivocating node does (in the node shell; the replica and its signer guard stay
honest): for every `EQUIVOCATE_EVERY`-th sequence number, after each PREPARE / COMMIT it
sends, it signs a second PREPARE / COMMIT for the same (view, seq) with another digest;
as primary, after its PRE-PREPARE it signs a second one for a different block (the same
block with `time_ms + 1`). The second message goes to the same peers, after the first,
so honest replicas count the honest vote and keep the pair as evidence.
"""

from __future__ import annotations

import dataclasses
import os

from afterchain.consensus.messages import ConsensusMessage, PrePrepareMsg, SignedCommit, SignedPrepare
from afterchain.protocol.block import Block
from afterchain.protocol.codec import sha256
from afterchain.protocol.crypto import KeyPair
from afterchain.protocol.types import Hash32

__all__ = ["ENV_MODE", "ENV_SWITCHES", "EQUIVOCATE_EVERY", "MODES", "byzantine_mode", "conflicting"]

ENV_MODE = "AFTERCHAIN_TEST_BYZANTINE"
ENV_SWITCHES = "AFTERCHAIN_TEST_SWITCHES"
MODES = ("equivocate",)
EQUIVOCATE_EVERY = 5
"""Equivocate at sequence numbers divisible by this (bounds the evidence volume)."""


def byzantine_mode(environ: dict[str, str] | None = None) -> str | None:
    """The test-only mode from the environment, None when unset. Raises `ValueError` if it
    is set without ``AFTERCHAIN_TEST_SWITCHES=1`` or to an unknown mode."""
    env = os.environ if environ is None else environ
    mode = env.get(ENV_MODE)
    if not mode:
        return None
    if env.get(ENV_SWITCHES) != "1":
        raise ValueError(f"{ENV_MODE} is a test-only switch: refused unless {ENV_SWITCHES}=1 is also set")
    if mode not in MODES:
        raise ValueError(f"{ENV_MODE}={mode!r}: the only mode is {', '.join(MODES)}")
    return mode


def conflicting(msg: ConsensusMessage, key: KeyPair, chain_id: str) -> ConsensusMessage | None:
    """A second, different message signed by `key` for the same (phase, view, seq) as `msg`
    (its own), or None if `msg` is not one this mode equivocates on."""
    if isinstance(msg, SignedPrepare | SignedCommit):
        body = msg.body
        if bytes(body.replica) != key.public or body.seq % EQUIVOCATE_EVERY:
            return None
        other = dataclasses.replace(body, digest=Hash32(sha256(b"byzantine" + body.digest)))
        return type(msg)(body=other, signature=key.sign(type(msg).DOMAIN, chain_id, other))  # type: ignore[arg-type]
    if isinstance(msg, PrePrepareMsg):
        pp = msg.preprepare
        if bytes(pp.body.replica) != key.public or pp.body.seq % EQUIVOCATE_EVERY:
            return None
        header = dataclasses.replace(msg.block.header, time_ms=msg.block.header.time_ms + 1)
        block = Block(header=header, events=msg.block.events)
        pp_body = dataclasses.replace(pp.body, digest=Hash32(header.hash()))
        signed = type(pp)(body=pp_body, signature=key.sign(type(pp).DOMAIN, chain_id, pp_body))
        return PrePrepareMsg(preprepare=signed, block=block)
    return None
