"""Catch-up: serving peers' requests for blocks and events, and fetching blocks.

- `block_response_bytes`: a `BlockResponse` spliced from the chain store's bytes (the
  blocks were checked when this node committed them: serving decodes nothing).
- `CatchUp.on_request`: the transport's request handler (`BlockRequest`,
  `EventsRequest`: the events of a compact pre-prepare a backup lacks, and
  `FollowRequest`: a member node following the chain, `node.runtime.member`).
- `CatchUp.fetch`: a range the replica asked for (`Ready.fetches`), fetched in answers of
  at most `FETCH_RESPONSE_MAX_BYTES`; each answer goes to the consensus loop as one
  `FetchedBlocks` input (the replica checks each block's certificate).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgpack

from afterchain.consensus.messages import (
    MAX_FETCH_BLOCKS,
    BlockRequest,
    BlockResponse,
    CertifiedBlock,
    EventsRequest,
    EventsResponse,
)
from afterchain.node.common.log import short_id
from afterchain.node.runtime.chain_store import ChainStore
from afterchain.node.runtime.inputs import PEER_MESSAGE_MAX_BYTES, FetchedBlocks, InputQueue
from afterchain.node.transport.base import Transport, TransportError
from afterchain.protocol.block import Block
from afterchain.protocol.codec import Message, decode, message
from afterchain.protocol.errors import Code, ProtocolError, ValidationError
from afterchain.protocol.types import Height

__all__ = ["FETCH_RESPONSE_MAX_BYTES", "FETCH_TIMEOUT_S", "CatchUp", "FollowRequest", "FollowResponse", "block_response_bytes",
           "certified_block_parts", "follow_response_bytes"]

FETCH_TIMEOUT_S = 10.0
FETCH_RESPONSE_MAX_BYTES = 4 * 1024 * 1024
"""A block response stops after the block that crosses this size (at least one block)."""

_PACKER = msgpack.Packer(use_bin_type=True)
_CERTIFIED_BLOCK_HEAD: bytes = _PACKER.pack_array_header(4) + _PACKER.pack(CertifiedBlock.TAG) + _PACKER.pack(CertifiedBlock.VERSION)
_BLOCK_RESPONSE_HEAD: bytes = _PACKER.pack_array_header(3) + _PACKER.pack(BlockResponse.TAG) + _PACKER.pack(BlockResponse.VERSION)


def certified_block_parts(store: ChainStore, from_height: int, count: int) -> list[bytes]:
    """The encodings of the stored `CertifiedBlock`s from_height .. (at most `count`,
    stopping after the one that crosses FETCH_RESPONSE_MAX_BYTES), spliced from the stored
    bytes (a message's encoding is the msgpack array [tag, version, *fields], nested
    messages inline)."""
    parts: list[bytes] = []
    size = 0
    for h in range(from_height, from_height + count):
        raw = store.block_bytes(h)
        cert = store.certificate_bytes(h)
        if raw is None or cert is None:
            break
        size += len(raw)
        parts.append(_CERTIFIED_BLOCK_HEAD + raw + cert)
        if size > FETCH_RESPONSE_MAX_BYTES:
            break
    return parts


def block_response_bytes(store: ChainStore, from_height: int, count: int) -> bytes:
    """`BlockResponse(blocks=...).encode()` with the stored blocks from_height .. (see
    `certified_block_parts`), spliced from the stored bytes."""
    parts = certified_block_parts(store, from_height, count)
    count_header: bytes = _PACKER.pack_array_header(len(parts))
    return _BLOCK_RESPONSE_HEAD + count_header + b"".join(parts)


@message(tag=0x78)
class FollowRequest(Message):
    """A member node asks a peer for the committed blocks from `from_height` (at most
    `count`); see `node.runtime.member`."""

    from_height: Height
    count: int

    def validate(self) -> None:
        if self.from_height < 1:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, "heights start at 1", field="from_height")
        if not 1 <= self.count <= MAX_FETCH_BLOCKS:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, f"count is 1..{MAX_FETCH_BLOCKS}", field="count")


@message(tag=0x79)
class FollowResponse(Message):
    """The answer: the server's committed height and its certified blocks from
    `from_height` on (consecutive, at most `count`, stopping after the one that crosses
    FETCH_RESPONSE_MAX_BYTES; none if it has none)."""

    head: Height
    blocks: tuple[CertifiedBlock, ...]


_FOLLOW_RESPONSE_HEAD: bytes = _PACKER.pack_array_header(4) + _PACKER.pack(FollowResponse.TAG) + _PACKER.pack(FollowResponse.VERSION)


def follow_response_bytes(store: ChainStore, req: FollowRequest) -> bytes:
    """`FollowResponse(head=store.head, blocks=...).encode()`, spliced from stored bytes."""
    parts = certified_block_parts(store, req.from_height, req.count)
    head: bytes = _PACKER.pack(store.head)
    count_header: bytes = _PACKER.pack_array_header(len(parts))
    return _FOLLOW_RESPONSE_HEAD + head + count_header + b"".join(parts)


class CatchUp:
    """See the module docstring."""

    def __init__(self, *, store: ChainStore, transport: Transport, inputs: InputQueue,
                 preprepared: Callable[[], Mapping[int, Block]], raw_by_hash: Callable[[bytes], bytes | None],
                 log: Any, more: Any = None) -> None:
        self.store = store
        self.more = more  # more requests (node.runtime.statesync.SnapshotServer): handles(req), on_request
        self.transport = transport
        self.inputs = inputs
        self.preprepared = preprepared
        self.raw_by_hash = raw_by_hash
        self.log = log
        self.fetching: set[tuple[bytes, int]] = set()
        self.limiter: Any = None
        """A `ratelimit.PeerLimiter` (set by the node): `FollowRequest`s served per peer."""

    async def on_request(self, sender: bytes, data: bytes) -> bytes:
        req = decode(data, max_bytes=PEER_MESSAGE_MAX_BYTES)
        if isinstance(req, BlockRequest):
            return block_response_bytes(self.store, req.from_height, req.count)
        if isinstance(req, EventsRequest):
            return self.events_response(req)
        if isinstance(req, FollowRequest):
            if self.limiter is not None and not self.limiter.allow(sender, "FollowRequest"):
                raise ProtocolError(Code.FIELD_OUT_OF_RANGE, "too many FollowRequests: rate limited")
            return follow_response_bytes(self.store, req)
        if self.more is not None and self.more.handles(req):
            return bytes(await self.more.on_request(sender, req))
        raise ProtocolError(Code.DECODE_UNKNOWN_TAG, f"{type(req).__name__} is not a request")

    def events_response(self, req: EventsRequest) -> bytes:
        """The events asked for that this node has: in its own pre-prepared blocks (a
        primary asked by its backups), verified, or being verified; at most
        FETCH_RESPONSE_MAX_BYTES of them."""
        in_slots: dict[bytes, bytes] = {}
        for block in self.preprepared().values():
            in_slots.update(zip(block.event_hashes(), block.events, strict=True))
        out: list[bytes] = []
        size = 0
        for h in req.hashes:
            raw = in_slots.get(h) or self.raw_by_hash(h)
            if raw is None:
                continue
            size += len(raw)
            if size > FETCH_RESPONSE_MAX_BYTES:
                break
            out.append(raw)
        return EventsResponse(events=tuple(out)).encode()

    async def fetch(self, peer: bytes, from_height: int, count: int) -> None:
        key = (peer, from_height)
        if key in self.fetching:
            return
        self.fetching.add(key)
        try:
            # The replica asks for up to `count` blocks it can accept now; a peer answers at
            # most FETCH_RESPONSE_MAX_BYTES at a time, so the rest of the range is asked for
            # at once (the replica would only ask again after its fetch interval).
            end = from_height + count
            nxt = from_height
            while nxt < end:
                data = await self.transport.request(peer, BlockRequest(from_height=Height(nxt), count=end - nxt).encode(),
                                                    timeout_s=FETCH_TIMEOUT_S)
                resp = BlockResponse.decode(data, max_bytes=PEER_MESSAGE_MAX_BYTES)
                if not resp.blocks:
                    break
                # one input per answer: the replica applies the blocks together and the chain
                # store writes them in one synced batch (see `BlockExecutor.store_commits`). No
                # event signature checks here: the replica checks each block's certificate, and
                # a certified block's events were verified by the quorum that committed it
                await self.inputs.put(FetchedBlocks(resp.blocks))
                top = resp.blocks[-1].block.header.height
                if top < nxt or top >= end - 1 or self.store.head >= end - 1:
                    break  # done, a peer answering out of range, or this node has the range already
                nxt = top + 1
        except (TransportError, ProtocolError) as exc:
            self.log.info("fetch_failed", peer=short_id(peer), from_height=from_height, error=str(exc))
        finally:
            self.fetching.discard(key)
