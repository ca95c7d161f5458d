"""TEST ONLY: a node that equivocates, for the nemesis `byzantine` scenario and tests.

Never reachable from production: no production module imports this one. A test builds
`Node(..., send_hook=equivocator(key, chain_id))`; a real process runs the ordinary node
with that hook through this module's own entry point,

    AFTERCHAIN_TEST_BYZANTINE=equivocate AFTERCHAIN_TEST_SWITCHES=1 \
        python -m afterchain.node.testing.byzantine node run --config node.toml

which refuses to start unless both variables are set (`byzantine_mode`).

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
import sys
from collections.abc import Callable

from afterchain.consensus.messages import ConsensusMessage, PrePrepareMsg, SignedCommit, SignedPrepare
from afterchain.protocol.block import Block
from afterchain.protocol.codec import sha256
from afterchain.protocol.crypto import KeyPair
from afterchain.protocol.types import Hash32

__all__ = ["ENTRY_MODULE", "ENV_MODE", "ENV_SWITCHES", "EQUIVOCATE_EVERY", "MODES", "byzantine_mode", "conflicting",
           "equivocator", "main"]

ENV_MODE = "AFTERCHAIN_TEST_BYZANTINE"
ENV_SWITCHES = "AFTERCHAIN_TEST_SWITCHES"
MODES = ("equivocate",)
EQUIVOCATE_EVERY = 5
"""Equivocate at sequence numbers divisible by this (bounds the evidence volume)."""
ENTRY_MODULE = "afterchain.node.testing.byzantine"
"""`python -m` this module to run an equivocating node process."""
EXIT_USAGE = 2


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


def equivocator(key: KeyPair, chain_id: str) -> Callable[[ConsensusMessage], ConsensusMessage | None]:
    """The `Node` send hook of an equivocating node: after each message it sends, the
    conflicting twin (if any)."""
    return lambda msg: conflicting(msg, key, chain_id)


def main(argv: list[str] | None = None) -> int:
    """``node run --config PATH``, as `afterchain node run`, with the equivocation hook."""

    from afterchain.node.common.files import load_genesis
    from afterchain.node.common.keys import load_key
    from afterchain.node.common.log import get_logger
    from afterchain.node.runtime.config import ConfigError, load_config
    from afterchain.node.testing.entry import serve
    from afterchain.protocol.errors import ProtocolError

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 4 or args[:3] != ["node", "run", "--config"]:
        print(f"usage: python -m {ENTRY_MODULE} node run --config PATH", file=sys.stderr)
        return EXIT_USAGE
    try:
        mode = byzantine_mode()
        if mode is None:
            raise ValueError(f"{ENV_MODE} is not set: run the ordinary node with `afterchain node run`")
        config = load_config(args[3])
        key = load_key(config.key_file)
        hook = equivocator(key, load_genesis(config.genesis_file).chain_id)
    except (ValueError, ConfigError, ProtocolError) as exc:
        print(f"cannot start the byzantine node: {exc}", file=sys.stderr)
        return EXIT_USAGE
    get_logger(node=config.name).warning("byzantine_test_mode", mode=mode, note="this node misbehaves on purpose (test only)")
    return serve(config, send_hook=hook)


if __name__ == "__main__":
    sys.exit(main())
