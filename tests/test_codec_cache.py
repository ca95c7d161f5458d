"""The codec's cached encodings (set when decoding, or on first `encode`) are always right."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import afterchain.protocol.block
import afterchain.protocol.events
import afterchain.protocol.genesis
import afterchain.protocol.merkle
import afterchain.protocol.smt  # noqa: F401  (registers messages)
from afterchain.protocol.codec import Message, _to_wire, decode, encode, registered

from .strategies import message_strategy


def _messages(value: Any) -> list[Message]:
    out: list[Message] = []
    if isinstance(value, Message):
        out.append(value)
        for name in value.__dataclass_fields__:  # type: ignore[attr-defined]
            out += _messages(getattr(value, name))
    elif isinstance(value, tuple):
        for v in value:
            out += _messages(v)
    return out


def _fresh(msg: Message) -> bytes:
    return msgpack.packb(_to_wire(msg), use_bin_type=True)  # type: ignore[no-any-return]


CLASSES = [c for t, c in sorted(registered().items()) if t < 0xFF00 and c.__module__.startswith("afterchain.protocol.")]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@settings(max_examples=25)
@given(data=st.data())
def test_cached_encodings_after_decode_are_exact(cls: type[Message], data: st.DataObject) -> None:
    raw = encode(data.draw(message_strategy(cls)))
    value = decode(raw)
    cached = 0
    for m in _messages(value):
        wire = getattr(m, "_wire", None)
        if wire is not None:
            cached += 1
            assert wire == _fresh(m)
        assert encode(m) == _fresh(m)
    assert cached >= 1 and value._wire == raw


def test_signed_event_caches_its_event_encoding() -> None:
    from afterchain.protocol.bodies import RatingSubmit
    from afterchain.protocol.crypto import KeyPair
    from afterchain.protocol.events import Event, SignedEvent, sign_event

    kp = KeyPair.from_seed(b"\x05" * 32)
    body = RatingSubmit(ticket_id=b"t" * 32, score=3, comment_hash=None)  # type: ignore[arg-type]
    signed = sign_event(kp, Event(chain_id="c", type="rating.submit", sender=kp.public, nonce=300, time_ms=2**40, body=body))
    back = SignedEvent.decode(encode(signed))
    assert back.event._wire == _fresh(back.event)
    assert back.id == signed.id


def _events_of(value: Any) -> list[Any]:
    from afterchain.protocol.events import Event

    return [m for m in _messages(value) if isinstance(m, Event)]


@settings(max_examples=40)
@given(data=st.data())
def test_cached_event_ids_and_block_hashes_are_exact(data: st.DataObject) -> None:
    """`Event.id` and `Block.event_hashes()` are computed once and cached on the value; the
    cache always equals a fresh computation, whether the value was decoded or built, and a
    value made by `replace` never inherits its origin's cache."""
    import dataclasses

    from afterchain.protocol.block import Block
    from afterchain.protocol.codec import sha256
    from afterchain.protocol.errors import ValidationError
    from afterchain.protocol.events import SignedEvent
    from afterchain.protocol.merkle import merkle_root

    signed = data.draw(message_strategy(SignedEvent))
    for value in (signed, decode(encode(signed))):
        ev = value.event  # type: ignore[attr-defined]
        first = ev.id
        assert first == sha256(_fresh(ev)) and ev.id is first  # cached
        other = dataclasses.replace(ev, nonce=(ev.nonce + 1) % 2**64)
        assert other.id == sha256(_fresh(other)) != first
    block = data.draw(message_strategy(Block))
    for value in (block, decode(encode(block))):
        hashes = value.event_hashes()  # type: ignore[attr-defined]
        assert hashes == tuple(sha256(e) for e in value.events) and value.event_hashes() is hashes  # type: ignore[attr-defined]
        if isinstance(value, Block) and value is not block:
            assert merkle_root(hashes) == value.header.events_root  # decode checked the root with the cached hashes
        moved = dataclasses.replace(value, events=(*value.events, b"x"))  # type: ignore[type-var]
        assert moved.event_hashes() == (*hashes, sha256(b"x"))
        # the root check runs on the new value's own hashes: one more event, same root -> refused
        forged = dataclasses.replace(moved, header=dataclasses.replace(value.header, event_count=len(moved.events)))  # type: ignore[attr-defined]
        with pytest.raises(ValidationError, match="events_root"):
            forged.validate()

