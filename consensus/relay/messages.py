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
- `RelayBlocksDeflated` (0xA4): a `RelayBlocks` compressed (zlib, RFC 1950), which a node
  may send in its place; the receiver inflates it (at most `MAX_INFLATED_BYTES`, exactly
  `size`) and takes the `RelayBlocks` inside. Blocks are mostly events, whose senders,
  chain id, types and bodies repeat: about half the bytes go (`deflate_blocks`).

Stateless checks only (`validate()`): bounds, and consecutive heights in `RelayBlocks`.
Whether a block is *certified* needs the validator set and is the shell's `verify`.
"""

from __future__ import annotations

import zlib

from afterchain.protocol.codec import Message, decode_as, message
from afterchain.protocol.errors import Code, DecodeError, ValidationError
from afterchain.protocol.types import Height

from ..messages import CertifiedBlock

__all__ = [
    "MAX_HOPS",
    "MAX_INFLATED_BYTES",
    "MAX_RELAY_BLOCKS",
    "MAX_RELAY_EVENTS",
    "RelayBlocks",
    "RelayBlocksDeflated",
    "RelayEvents",
    "RelayMessage",
    "RelayRequest",
    "RelayStatus",
    "deflate_blocks",
]

MAX_HOPS = 16
"""`hops` value meaning "no known path to a validator" (and the largest one sent)."""
MAX_RELAY_BLOCKS = 32
"""Most blocks asked for by one `RelayRequest` or carried by one `RelayBlocks`."""
MAX_RELAY_EVENTS = 1024
"""Most events in one `RelayEvents`."""
MAX_INFLATED_BYTES = 16 * 1024 * 1024
"""Largest `RelayBlocks` encoding sent deflated (a larger one goes as it is)."""
DEFLATE_MIN_BYTES = 512
"""`RelayBlocks` encodings shorter than this go as they are (nothing to gain)."""
DEFLATE_LEVEL = 1
"""zlib's fastest level: within a few percent of the best size on blocks of events."""


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


@message(tag=0xA4)
class RelayBlocksDeflated(RelayMessage):
    size: int
    """Length of the encoded `RelayBlocks` inside (1..`MAX_INFLATED_BYTES`)."""
    data: bytes
    """That encoding, compressed as one zlib stream (RFC 1950: deflate, with its header
    and Adler-32 check)."""

    def validate(self) -> None:
        if not 1 <= self.size <= MAX_INFLATED_BYTES:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, f"size is 1..{MAX_INFLATED_BYTES}", field="size")

    def inflate(self) -> RelayBlocks:
        """The `RelayBlocks` inside: `data` must be one complete zlib stream that inflates
        to exactly `size` bytes (never more is inflated), which decode (canonically) as a
        `RelayBlocks`. Raises `ProtocolError` otherwise."""
        d = zlib.decompressobj()
        try:
            raw = d.decompress(self.data, self.size)
            if not d.eof:
                raw += d.decompress(d.unconsumed_tail, 1)  # (reaches the end if the stream ends here)
        except zlib.error as exc:
            raise DecodeError(Code.DECODE_MALFORMED, f"data is not a zlib stream: {exc}") from None
        if not d.eof or d.unused_data or d.unconsumed_tail or len(raw) != self.size:
            raise DecodeError(Code.DECODE_MALFORMED, f"data does not inflate to exactly {self.size} bytes")
        return decode_as(RelayBlocks, raw, max_bytes=self.size)


def deflate_blocks(msg: RelayBlocks, encoded: bytes | None = None) -> RelayMessage:
    """What a node sends for `msg`: `RelayBlocksDeflated` when that is smaller, else `msg`.
    `encoded`: `msg.encode()`, if the caller has it."""
    raw = msg.encode() if encoded is None else encoded
    if len(raw) < DEFLATE_MIN_BYTES or len(raw) > MAX_INFLATED_BYTES:
        return msg
    packed = RelayBlocksDeflated(size=len(raw), data=zlib.compress(raw, DEFLATE_LEVEL))
    return packed if len(packed.data) + 16 < len(raw) else msg
