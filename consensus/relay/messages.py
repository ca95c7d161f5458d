"""Wire messages of the dissemination relay (tags 0xA0-0xAF).

Four messages, exchanged between any two connected admitted nodes (validators and member
nodes) on the node-to-node streams; PROTOCOL.md section 11 specifies them byte for byte:

- `RelayStatus` (0xA0): "I have verified every block up to `height`, and I am `hops` links
  from the nearest validator". Sent on connect, every heartbeat, and as the *announcement*
  of a new block to the peers that did not get it pushed (IHAVE).
- `RelayRequest` (0xA1): "send me the blocks `from_height` .. `from_height + count - 1`"
  (IWANT; also the catch-up of blocks that gossip lost).
- `RelayBlocks` (0xA2): consecutive certified blocks: a push of a new block (one block) or
  the answer to a request (possibly fewer than asked, or none: "I do not have them").
- `RelayEvents` (0xA3): encoded signed events on their way to the validators.

Stateless checks only (`validate()`): bounds, and consecutive heights in `RelayBlocks`.
Whether a block is *certified* needs the validator set and is the shell's `verify`.
"""

from __future__ import annotations

from afterchain.protocol.codec import Message, message
from afterchain.protocol.errors import Code, ValidationError
from afterchain.protocol.types import Height

from ..messages import CertifiedBlock

__all__ = [
    "MAX_HOPS",
    "MAX_RELAY_BLOCKS",
    "MAX_RELAY_EVENTS",
    "RelayBlocks",
    "RelayEvents",
    "RelayMessage",
    "RelayRequest",
    "RelayStatus",
]

MAX_HOPS = 16
"""`hops` value meaning "no known path to a validator" (and the largest one sent)."""
MAX_RELAY_BLOCKS = 32
"""Most blocks asked for by one `RelayRequest` or carried by one `RelayBlocks`."""
MAX_RELAY_EVENTS = 1024
"""Most events in one `RelayEvents`."""


class RelayMessage(Message):
    """Base of the relay's wire messages (decode any of them with `RelayMessage.decode`)."""


@message(tag=0xA0)
class RelayStatus(RelayMessage):
    height: Height
    """Highest height up to which the sender has verified every block (0: none)."""
    hops: int
    """0 for a validator of the current set; else 1 + the least `hops` among its peers;
    `MAX_HOPS` when it knows no path to a validator."""

    def validate(self) -> None:
        if self.hops > MAX_HOPS:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, f"hops is 0..{MAX_HOPS}", field="hops")


@message(tag=0xA1)
class RelayRequest(RelayMessage):
    from_height: Height
    count: int

    def validate(self) -> None:
        if self.from_height < 1:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, "block heights start at 1", field="from_height")
        if not 1 <= self.count <= MAX_RELAY_BLOCKS:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, f"count is 1..{MAX_RELAY_BLOCKS}", field="count")


@message(tag=0xA2)
class RelayBlocks(RelayMessage):
    blocks: tuple[CertifiedBlock, ...]

    def validate(self) -> None:
        if len(self.blocks) > MAX_RELAY_BLOCKS:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, f"at most {MAX_RELAY_BLOCKS} blocks", field="blocks")
        if self.blocks:
            first = self.blocks[0].block.header.height
            for i, cb in enumerate(self.blocks):
                if cb.block.header.height != first + i:
                    raise ValidationError(Code.FIELD_INVALID, "heights are not consecutive", field=f"blocks[{i}].block.header.height")


@message(tag=0xA3)
class RelayEvents(RelayMessage):
    events: tuple[bytes, ...]

    def validate(self) -> None:
        if not 1 <= len(self.events) <= MAX_RELAY_EVENTS:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, f"1..{MAX_RELAY_EVENTS} events", field="events")
