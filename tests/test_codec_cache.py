"""The codec's cached encodings (set when decoding, or on first `encode`) are always right."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import protocol.block
import protocol.events
import protocol.genesis
import protocol.merkle
import protocol.smt  # noqa: F401  (registers messages)
from protocol.codec import Message, _to_wire, decode, encode, registered

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


CLASSES = [c for t, c in sorted(registered().items()) if t < 0xFF00 and c.__module__.startswith("protocol.")]


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
    from protocol.bodies import RatingSubmit
    from protocol.crypto import KeyPair
    from protocol.events import Event, SignedEvent, sign_event

    kp = KeyPair.from_seed(b"\x05" * 32)
    body = RatingSubmit(ticket_id=b"t" * 32, score=3, comment_hash=None)  # type: ignore[arg-type]
    signed = sign_event(kp, Event(chain_id="c", type="rating.submit", sender=kp.public, nonce=300, time_ms=2**40, body=body))
    back = SignedEvent.decode(encode(signed))
    assert back.event._wire == _fresh(back.event)
    assert back.id == signed.id
