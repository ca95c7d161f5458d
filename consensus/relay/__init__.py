"""Dissemination of certified blocks to every node (validators and member nodes), and of
events towards the validators: a pure relay state machine (`machine.Relay`), its wire
messages (`messages`, tags 0xA0-0xAF) and a seeded simulator
(``python -m afterchain.consensus.relay.sim --help``).
"""

from .machine import MUTATIONS, TICK_MS, BlockSource, Relay, RelayParams, RelayReady
from .messages import (
    MAX_HOPS,
    MAX_RELAY_BLOCKS,
    RelayBlocks,
    RelayBlocksDeflated,
    RelayEvents,
    RelayMessage,
    RelayRequest,
    RelayStatus,
    deflate_blocks,
)

__all__ = [
    "MAX_HOPS", "MAX_RELAY_BLOCKS", "MUTATIONS", "TICK_MS", "BlockSource", "Relay", "RelayBlocks",
    "RelayBlocksDeflated", "RelayEvents",
    "RelayMessage", "RelayParams", "RelayReady", "RelayRequest", "RelayStatus", "deflate_blocks",
]
