"""The canonical codec: round trip, canonical form, and hostile bytes."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import afterchain.protocol.block
import afterchain.protocol.events
import afterchain.protocol.merkle  # noqa: F401  (registers messages)
from afterchain.protocol.block import ValidatorSet
from afterchain.protocol.codec import Message, decode, decode_as, encode, message, registered
from afterchain.protocol.errors import Code, DecodeError, ProtocolError, ValidationError
from afterchain.protocol.types import Hash32

from .strategies import message_strategy


@message(tag=0xFFF0)
class Sample(Message):
    a: int
    b: bytes
    c: str
    d: bool
    e: tuple[int, ...]
    f: Hash32 | None


def sample(**kw: object) -> Sample:
    base = dict(a=1, b=b"x", c="hé", d=True, e=(1, 2), f=None)
    base.update(kw)
    return Sample(**base)  # type: ignore[arg-type]


def test_encoding_is_a_tagged_array_in_field_order() -> None:
    raw = encode(sample())
    assert msgpack.unpackb(raw) == [0xFFF0, 1, 1, b"x", "hé", True, [1, 2], None]
    assert decode(raw) == sample()


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda r: r + b"\x00", Code.DECODE_TRAILING_BYTES),
        (lambda r: r[:-1], Code.DECODE_MALFORMED),
        (lambda r: b"", Code.DECODE_MALFORMED),
        (lambda r: msgpack.packb([0xFFF0, 2, 1, b"x", "h", True, [], None]), Code.DECODE_UNSUPPORTED_VERSION),
        (lambda r: msgpack.packb([0xFFF0, 1, 1, b"x", "h", True, []]), Code.DECODE_WRONG_ARITY),
        (lambda r: msgpack.packb([0xFFF1, 1]), Code.DECODE_UNKNOWN_TAG),
        (lambda r: msgpack.packb([0xFFF0, 1, -1, b"x", "h", True, [], None]), Code.FIELD_OUT_OF_RANGE),
        (lambda r: msgpack.packb([0xFFF0, 1, 1.5, b"x", "h", True, [], None]), Code.DECODE_WRONG_TYPE),
        (lambda r: msgpack.packb([0xFFF0, 1, 1, "x", "h", True, [], None], use_bin_type=True), Code.DECODE_WRONG_TYPE),
        (lambda r: msgpack.packb([0xFFF0, 1, 1, b"x", "h", 1, [], None], use_bin_type=True), Code.DECODE_WRONG_TYPE),
        (lambda r: msgpack.packb([0xFFF0, 1, 1, b"x", "h", True, [], b"short"], use_bin_type=True), Code.FIELD_WRONG_LENGTH),
        (lambda r: msgpack.packb([0xFFF0, 1, 1, b"x", "h", True, [{"k": 1}], None], use_bin_type=True), Code.DECODE_MALFORMED),
        (lambda r: msgpack.packb([0xFFF0, 1, 1, b"x", "h", True, [], msgpack.ExtType(1, b"")], use_bin_type=True), Code.DECODE_MALFORMED),
        # 1 as a uint16 instead of a positive fixint: same value, not canonical
        (lambda r: b"\x98\xcd\xff\xf0\x01\xcd\x00\x01\xc4\x01x\xa1h\xc3\x90\xc0", Code.DECODE_NOT_CANONICAL),
        (lambda r: b"\x91" * 5000, Code.DECODE_TOO_DEEP),
    ],
)
def test_bad_bytes_get_a_distinct_code(mutate, code) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ProtocolError) as info:
        decode(mutate(encode(sample())))
    assert info.value.code is code


def test_oversize_input_is_refused_before_parsing() -> None:
    raw = encode(sample(b=b"x" * 1000))
    with pytest.raises(DecodeError) as info:
        decode(raw, max_bytes=100)
    assert info.value.code is Code.DECODE_TOO_LARGE


def test_errors_name_the_nested_field() -> None:
    raw = msgpack.packb([0x10, 1, [b"x" * 31]], use_bin_type=True)
    with pytest.raises(ValidationError) as info:
        decode_as(ValidatorSet, raw)
    assert info.value.field == "validators[0]"
    assert info.value.code is Code.FIELD_WRONG_LENGTH


def test_decoding_the_wrong_class_is_refused() -> None:
    with pytest.raises(DecodeError) as info:
        decode_as(ValidatorSet, encode(sample()))
    assert info.value.code is Code.DECODE_UNKNOWN_TAG


def all_message_classes() -> list[type[Message]]:
    return [c for t, c in sorted(registered().items()) if t < 0xFF00]


@pytest.mark.parametrize("cls", all_message_classes(), ids=lambda c: c.__name__)
@settings(max_examples=40, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip_and_canonical_form_for_every_message(cls: type[Message], data: st.DataObject) -> None:
    value = data.draw(message_strategy(cls))
    raw = encode(value)
    back = decode(raw)
    assert back == value
    assert encode(back) == raw


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_fuzzed_bytes_raise_only_protocol_errors(raw: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode(raw)


@settings(max_examples=300)
@given(data=st.data())
def test_mutated_encodings_raise_only_protocol_errors(data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from(all_message_classes()))
    raw = bytearray(encode(data.draw(message_strategy(cls))))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    try:
        value = decode(bytes(raw))
    except ProtocolError:
        return
    assert encode(value) == bytes(raw)
