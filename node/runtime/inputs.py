"""The consensus task's inputs: one frozen dataclass per kind, through one bounded channel.

Producers (the peer inbox, catch-up fetches, the ticker, the intake's nudge) hold an
`InputQueue`; only the consensus loop receives from it, so the replica is never touched
concurrently.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import trio

from afterchain.consensus.messages import CertifiedBlock, ConsensusMessage

__all__ = ["INPUTS_MAX", "PEER_MESSAGE_MAX_BYTES", "ConsensusInput", "FetchedBlocks", "InputQueue", "Nudge", "PeerMessage", "Tick"]

INPUTS_MAX = 1024
PEER_MESSAGE_MAX_BYTES = 64 * 1024 * 1024
"""The largest consensus message, request or answer decoded from a peer."""


@dataclass(frozen=True, slots=True)
class PeerMessage:
    """A decoded (and, for a pre-prepare, expanded and pre-verified) consensus message."""

    msg: ConsensusMessage
    sender: bytes
    received_ms: int = 0
    """Wall-clock ms when the frame came off the transport (0: unknown). A backup judges a
    proposed block's time against it, not against the moment its consensus task gets to the
    message: on an overloaded node that can be seconds later (`ConsensusApp.check_block_time`)."""


@dataclass(frozen=True, slots=True)
class Tick:
    """One `tick_ms` passed."""


@dataclass(frozen=True, slots=True)
class FetchedBlocks:
    """One catch-up answer: certified blocks, applied together (one synced store batch)."""

    blocks: Sequence[CertifiedBlock]


@dataclass(frozen=True, slots=True)
class Nudge:
    """The mempool changed: the primary may propose."""


ConsensusInput = PeerMessage | Tick | FetchedBlocks | Nudge


class InputQueue:
    """The bounded channel into the consensus loop."""

    def __init__(self, maxlen: int = INPUTS_MAX) -> None:
        self.send, self.recv = trio.open_memory_channel[ConsensusInput](maxlen)

    async def put(self, item: ConsensusInput) -> None:
        await self.send.send(item)

    def nudge(self) -> None:
        # if the channel is full the loop is busy; it re-checks proposals after every input anyway
        with contextlib.suppress(trio.WouldBlock):
            self.send.send_nowait(Nudge())
