"""The JSON form is the exact inverse of `to_json` and validates like the binary decoder."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from afterchain.protocol.codec import encode
from afterchain.protocol.errors import Code, ProtocolError
from afterchain.protocol.events import Event, SignedEvent
from afterchain.protocol.jsonform import from_json, to_json

from .strategies import message_strategy
from .test_codec import all_message_classes


@pytest.mark.parametrize("cls", [c for c in all_message_classes() if c.__name__ != "Sample"], ids=lambda c: c.__name__)
@settings(max_examples=10, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(data=st.data())
def test_json_round_trip_is_byte_exact(cls, data: st.DataObject) -> None:  # type: ignore[no-untyped-def]
    value = data.draw(message_strategy(cls))
    back = from_json(cls, to_json(value))
    assert encode(back) == encode(value)


def _event_json() -> dict:  # type: ignore[type-arg]
    from afterchain.protocol.events import sign_event

    from .test_crypto import event

    key, ev = event()
    return to_json(sign_event(key, ev))  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("mutate", "code", "field"),
    [
        (lambda j: j["event"].update(type="nope"), Code.UNKNOWN_EVENT_TYPE, "type"),
        (lambda j: j["event"].pop("nonce"), Code.FIELD_INVALID, "event.nonce"),
        (lambda j: j["event"].update(extra=1), Code.FIELD_INVALID, "event.extra"),
        (lambda j: j["event"].update(sender="zz"), Code.DECODE_WRONG_TYPE, "event.sender"),
        (lambda j: j["event"].update(sender="00"), Code.FIELD_WRONG_LENGTH, "event.sender"),
        (lambda j: j["event"].update(nonce=-1), Code.FIELD_OUT_OF_RANGE, "event.nonce"),
        (lambda j: j["event"].update(nonce="1"), Code.DECODE_WRONG_TYPE, "event.nonce"),
        (lambda j: j["event"]["body"].update(score=9), Code.FIELD_OUT_OF_RANGE, "event.body.score"),
    ],
)
def test_bad_json_names_the_field(mutate, code, field) -> None:  # type: ignore[no-untyped-def]
    j = _event_json()
    mutate(j)
    with pytest.raises(ProtocolError) as info:
        from_json(SignedEvent, j)
    assert info.value.code is code
    assert info.value.field == field


def test_not_an_object() -> None:
    with pytest.raises(ProtocolError):
        from_json(Event, [1, 2])
