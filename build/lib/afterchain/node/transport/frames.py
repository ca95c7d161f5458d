"""The transport's frame format: what travels on a node-to-node stream.

A stream carries frames, each prefixed by its length as a big-endian u32. A frame is a
fixed header ``kind: u8, request_id: u64, topic_len: u16`` (big-endian), then the topic
(UTF-8, at most `MAX_TOPIC_BYTES`), then the payload, which is opaque to the transport.

Kinds: GOSSIP (topic + payload, request id 0), DIRECT (payload), REQUEST (request id +
payload), RESPONSE (request id + response payload), ERROR (request id + UTF-8 reason).

Invariants: `decode_frame(encode_frame(...))` returns the same fields; `decode_frame`
raises `FrameError` for any malformed input and nothing else. No I/O here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from afterchain.node.transport.base import TransportError

__all__ = [
    "HEADER",
    "LENGTH_PREFIX",
    "MAX_TOPIC_BYTES",
    "Frame",
    "FrameError",
    "Kind",
    "decode_frame",
    "encode_frame",
]

HEADER = struct.Struct(">BQH")
LENGTH_PREFIX = struct.Struct(">I")
MAX_TOPIC_BYTES = 256


class FrameError(TransportError):
    """Bytes that are not a well-formed frame (the peer is faulty)."""


class Kind(IntEnum):
    GOSSIP = 1
    DIRECT = 2
    REQUEST = 3
    RESPONSE = 4
    ERROR = 5


@dataclass(frozen=True, slots=True)
class Frame:
    kind: Kind
    request_id: int
    topic: str
    payload: bytes


def encode_frame(kind: Kind, payload: bytes, *, topic: str = "", request_id: int = 0) -> bytes:
    """The frame bytes (without the length prefix)."""
    t = topic.encode()
    if len(t) > MAX_TOPIC_BYTES:
        raise FrameError(f"topic is {len(t)} bytes, at most {MAX_TOPIC_BYTES}")
    return HEADER.pack(int(kind), request_id, len(t)) + t + payload


def decode_frame(data: bytes) -> Frame:
    if len(data) < HEADER.size:
        raise FrameError(f"frame of {len(data)} bytes is shorter than its header")
    kind_raw, request_id, topic_len = HEADER.unpack_from(data)
    try:
        kind = Kind(kind_raw)
    except ValueError:
        raise FrameError(f"unknown frame kind {kind_raw}") from None
    if topic_len > MAX_TOPIC_BYTES or HEADER.size + topic_len > len(data):
        raise FrameError(f"topic length {topic_len} is out of range")
    try:
        topic = data[HEADER.size : HEADER.size + topic_len].decode()
    except UnicodeDecodeError:
        raise FrameError("topic is not UTF-8") from None
    if (kind is Kind.GOSSIP) != (topic_len > 0):
        raise FrameError("only GOSSIP frames carry a (non-empty) topic")
    return Frame(kind, request_id, topic, data[HEADER.size + topic_len :])
