"""TEST ONLY: a Byzantine *member* node, for the nemesis `member-byzantine` scenario.

Never reachable from production: no production module imports this one. It runs the
ordinary node (it follows the chain as a member, so it has real certified blocks to
tamper with) through its own entry point,

    AFTERCHAIN_TEST_BYZANTINE=member AFTERCHAIN_TEST_SWITCHES=1 \\
        python -m afterchain.node.testing.byzantine_member node run --config node.toml

which refuses to start unless both variables are set, and changes two things in its own
process only (class attributes patched before the node is built):

- the answers it serves to other members' `FollowRequest`s are lies, in turn
  (`LIES`): a certificate whose signatures are all flipped (``forged``), one with fewer
  signatures than a quorum (``short``), a header whose state root was changed under its
  real certificate (``tampered``), blocks that skip a height (``not_chained``) and blocks
  the asker already has (``replay``); when the asker is ahead of it, a block of its own
  head re-labelled with the height asked for (``not_chained`` at the asker). Catch-up (`BlockRequest`) and event requests are
  answered honestly;
- every `RelayBlocks` its dissemination relay sends (pushes and answers to other members'
  `RelayRequest`s) carries the same lies, in turn;
- while it runs, it floods every connected validator with small `FollowRequest`s
  (`FLOOD_PER_S` a second in total, at most `FLOOD_IN_FLIGHT` outstanding), counting
  what it sent in the log line ``byzantine_member_flood``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any

from afterchain.consensus.messages import CertifiedBlock
from afterchain.protocol.block import Block, CommitSig
from afterchain.protocol.types import Hash32, Height, Signature

__all__ = ["ENTRY_MODULE", "FLOOD_IN_FLIGHT", "FLOOD_PER_S", "LIES", "lie", "main"]

ENV_MODE = "AFTERCHAIN_TEST_BYZANTINE"
ENV_SWITCHES = "AFTERCHAIN_TEST_SWITCHES"
MODE = "member"
ENTRY_MODULE = "afterchain.node.testing.byzantine_member"
LIES = ("forged", "short", "tampered", "not_chained", "replay")
FLOOD_PER_S = 200
FLOOD_IN_FLIGHT = 16
EXIT_USAGE = 2


def _flip(sig: bytes) -> Signature:
    return Signature(bytes([sig[0] ^ 0xFF]) + sig[1:])


def lie(kind: str, store: Any, from_height: int, count: int) -> list[CertifiedBlock]:
    """Certified blocks for a `FollowRequest(from_height, count)`, falsified as `kind`
    (empty when the store has nothing to falsify)."""
    start = {"not_chained": from_height + 1, "replay": max(1, from_height - 1)}.get(kind, from_height)
    out: list[CertifiedBlock] = []
    for h in range(start, min(start + count, store.head + 1)):
        block, cert = store.block(h), store.certificate(h)
        if block is None or cert is None:
            break
        if kind == "forged":
            cert = dataclasses.replace(cert, signatures=tuple(CommitSig(replica=s.replica, signature=_flip(s.signature))
                                                              for s in cert.signatures))
        elif kind == "short":
            cert = dataclasses.replace(cert, signatures=cert.signatures[:1])
        elif kind == "tampered":
            header = dataclasses.replace(block.header, state_root=Hash32(bytes(32)))
            block = Block(header=header, events=block.events)
            cert = dataclasses.replace(cert, header_hash=Hash32(header.hash()))
        out.append(CertifiedBlock(block=block, certificate=cert))
    if not out and store.head >= 1 and kind != "replay":
        # the asker is ahead of this node (the validators cut its request flood off): a
        # block of its own head re-labelled with the height asked for (it chains to nothing)
        block, cert = store.block(store.head), store.certificate(store.head)
        if block is not None and cert is not None:
            header = dataclasses.replace(block.header, height=Height(from_height))
            out.append(CertifiedBlock(block=Block(header=header, events=block.events),
                                      certificate=dataclasses.replace(cert, height=Height(from_height))))
    return out


def _patch() -> None:
    """Patch the catch-up server and the follower in this process only."""
    import trio

    from afterchain.node.runtime import catchup, member
    from afterchain.node.runtime.inputs import PEER_MESSAGE_MAX_BYTES
    from afterchain.node.transport.base import TransportError
    from afterchain.protocol.codec import decode

    honest_on_request = catchup.CatchUp.on_request
    turn = {"n": 0}

    async def on_request(self: Any, sender: bytes, data: bytes) -> bytes:
        req = decode(data, max_bytes=PEER_MESSAGE_MAX_BYTES)
        if not isinstance(req, catchup.FollowRequest):
            return await honest_on_request(self, sender, data)
        kind = LIES[turn["n"] % len(LIES)]
        turn["n"] += 1
        blocks = lie(kind, self.store, req.from_height, min(req.count, 4))
        return catchup.FollowResponse(head=self.store.head, blocks=tuple(blocks)).encode()

    honest_run = member.Follower.run

    async def run(self: Any) -> None:
        sent = {"requests": 0, "failed": 0}
        limiter = trio.CapacityLimiter(FLOOD_IN_FLIGHT)

        async def one(peer: bytes) -> None:
            async with limiter:
                try:
                    await self.transport.request(peer, catchup.FollowRequest(from_height=Height(1), count=1).encode(), timeout_s=2)
                    sent["requests"] += 1
                except TransportError:
                    sent["failed"] += 1

        async def flood() -> None:
            async with trio.open_nursery() as nursery:
                tick = 0
                while True:
                    vs = self.validators()
                    for p in sorted(p for p in self.transport.connected_peers() if p in vs):
                        if limiter.borrowed_tokens < FLOOD_IN_FLIGHT:
                            nursery.start_soon(one, p)
                    tick += 1
                    if tick % (5 * FLOOD_PER_S // 4) == 0:
                        self.log.warning("byzantine_member_flood", **sent)
                    await trio.sleep(4 / FLOOD_PER_S)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(flood)
            await honest_run(self)

    from afterchain.consensus.relay import RelayBlocks
    from afterchain.node.runtime import relay as relay_mod

    honest_init = relay_mod.RelayService.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        honest_init(self, *args, **kwargs)
        put = self.outboxes.put
        store = self.store

        def lying_put(peer: bytes, data: bytes) -> bool:
            if relay_mod.is_relay_frame(data) and data[2] == RelayBlocks.TAG:
                msg = RelayBlocks.decode(data, max_bytes=PEER_MESSAGE_MAX_BYTES)
                if msg.blocks:
                    kind = LIES[turn["n"] % len(LIES)]
                    turn["n"] += 1
                    bad = lie(kind, store, int(msg.blocks[0].block.header.height), len(msg.blocks))
                    data = RelayBlocks(blocks=tuple(bad)).encode()
            return bool(put(peer, data))

        self.outboxes.put = lying_put

    relay_mod.RelayService.__init__ = init  # type: ignore[method-assign]
    catchup.CatchUp.on_request = on_request  # type: ignore[method-assign]
    member.Follower.run = run  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    """``node run --config PATH``, as `afterchain node run`, lying to other members."""

    from afterchain.node.common.log import get_logger
    from afterchain.node.runtime.config import ConfigError, load_config
    from afterchain.node.testing.entry import serve

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 4 or args[:3] != ["node", "run", "--config"]:
        print(f"usage: python -m {ENTRY_MODULE} node run --config PATH", file=sys.stderr)
        return EXIT_USAGE
    if os.environ.get(ENV_MODE) != MODE or os.environ.get(ENV_SWITCHES) != "1":
        print(f"cannot start the byzantine member: a test-only node, refused unless {ENV_MODE}={MODE} and "
              f"{ENV_SWITCHES}=1 are set", file=sys.stderr)
        return EXIT_USAGE
    try:
        config = load_config(args[3])
    except ConfigError as exc:
        print(f"cannot start the byzantine member: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _patch()
    get_logger(node=config.name).warning("byzantine_test_mode", mode=MODE, lies=list(LIES),
                                         note="this member node lies to other members on purpose (test only)")
    return serve(config)


if __name__ == "__main__":
    sys.exit(main())
