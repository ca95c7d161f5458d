"""What a node uploads, by the role of the peer and the kind of message (issue 23's
accounting of what validators send to member nodes).

`traffic_label(validators)` builds the labeller the node gives its transport
(`TransportStats.label`): for each frame written to a peer it names the peer's role
(`validator`: a key of a scheduled validator set; else `member`) and the message (the
class of the payload's tag, from the codec's registry; `ERROR` for an error frame, the
frame kind when the payload carries no known tag). `/v1/status` reports the sums under
`transport.sent_by` as `{"member:RelayStatus": [frames, bytes], ...}`.

It looks only at the frame's header and the first bytes of the payload (the msgpack array
header and the tag), so it costs a few operations per frame.
"""

from __future__ import annotations

from collections.abc import Callable, Container

from afterchain.node.transport.frames import HEADER, Kind
from afterchain.protocol.codec import registered

__all__ = ["payload_tag", "traffic_label"]

_KIND_NAMES = {int(k): k.name for k in Kind}


def payload_tag(payload: bytes, at: int = 0) -> int | None:
    """The tag of an encoded message (`[tag, version, ...]`) starting at `at`, or None."""
    n = len(payload)
    if n < at + 2:
        return None
    b0 = payload[at]
    if 0x90 <= b0 <= 0x9F:
        i = at + 1
    elif b0 == 0xDC:
        i = at + 3
    elif b0 == 0xDD:
        i = at + 5
    else:
        return None
    if i >= n:
        return None
    t = payload[i]
    if t < 0x80:
        return t
    if t == 0xCC and i + 1 < n:
        return payload[i + 1]
    if t == 0xCD and i + 2 < n:
        return (payload[i + 1] << 8) | payload[i + 2]
    return None


def traffic_label(validators: Callable[[], Container[bytes]]) -> Callable[[bytes, bytes], str]:
    """A labeller `(peer, frame) -> "role:Message"` (see the module docstring);
    `validators()` is read at each call (it changes with the chain)."""
    names: dict[int, str] = {}

    def name_of(tag: int) -> str | None:
        got = names.get(tag)
        if got is None:
            cls = registered().get(tag)
            if cls is None:
                return None
            got = names[tag] = cls.__name__
        return got

    def label(peer: bytes, frame: bytes) -> str:
        role = "validator" if peer in validators() else "member"
        if len(frame) < HEADER.size:
            return f"{role}:?"
        kind = frame[0]
        if kind == Kind.ERROR:
            return f"{role}:ERROR"
        topic_len = (frame[9] << 8) | frame[10]
        tag = payload_tag(frame, HEADER.size + topic_len)
        name = name_of(tag) if tag is not None else None
        return f"{role}:{name or _KIND_NAMES.get(kind, '?')}"

    return label
