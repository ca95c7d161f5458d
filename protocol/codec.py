"""The one canonical encoding of every wire and stored value.

A message is a frozen dataclass declared with `@message(tag=..., version=...)`. It is
encoded as a msgpack array ``[tag, version, *fields]`` in declared field order, with
``use_bin_type=True``. Field types are limited to: unsigned 64-bit integers (``int`` or an
int `NewType`), ``bool``, ``bytes`` (fixed length for the byte `NewType`s in
`protocol.types.FIXED_LENGTHS`), ``str`` (UTF-8), ``X | None``, ``tuple[X, ...]`` and
nested messages. There are no maps and no floats anywhere.

Invariants of `decode`:
- it returns a valid value (its stateless `validate()` passed) or raises `DecodeError`
  / `ValidationError`, never anything else, for *any* input bytes;
- input longer than ``max_bytes`` is refused before parsing; nesting is bounded;
- trailing bytes are refused; ``encode(decode(b)) == b`` (canonical form), so every
  value has exactly one encoding and hashes of encodings are identities.
"""

from __future__ import annotations

import hashlib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar, dataclass_transform

import msgpack

from .errors import Code, DecodeError, InvariantError, ProtocolError, ValidationError
from .types import FIXED_LENGTHS, MAX_UINT64

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MAX_DEPTH",
    "Message",
    "decode",
    "decode_as",
    "encode",
    "hash_message",
    "message",
    "registered",
    "sha256",
]

DEFAULT_MAX_BYTES = 4 * 1024 * 1024
"""Largest encoding `decode` accepts unless the caller passes a smaller limit."""
MAX_DEPTH = 16
"""Deepest nesting of messages inside messages."""

M = TypeVar("M", bound="Message")
_Conv = Callable[[Any, str, int], Any]


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class Message:
    """Base of every encodable value. Subclasses are declared with `@message`."""

    __slots__ = ()
    TAG: ClassVar[int]
    VERSION: ClassVar[int]
    # When a field is annotated with an abstract base (a Message subclass never given a
    # tag), a tag unknown among its subclasses raises this code.
    UNKNOWN_CODE: ClassVar[Code] = Code.DECODE_UNKNOWN_TAG

    def validate(self) -> None:
        """Stateless checks beyond field types; raise `ValidationError` naming the field."""

    def encode(self) -> bytes:
        return encode(self)

    def hash(self) -> bytes:
        return sha256(encode(self))

    @classmethod
    def decode(cls: type[M], data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> M:
        return decode_as(cls, data, max_bytes=max_bytes)


_BY_TAG: dict[int, type[Message]] = {}
_CONVERTERS: dict[type[Message], _Conv] = {}
_FIELD_ENCODERS: dict[type[Message], tuple[str, ...]] = {}


@dataclass_transform(frozen_default=True, kw_only_default=True)
def message(*, tag: int, version: int = 1) -> Callable[[type[M]], type[M]]:
    """Declare a message: a frozen, slotted, keyword-only dataclass with a unique tag."""

    def wrap(cls: type[M]) -> type[M]:
        if not (0 < tag <= 0xFFFF):
            raise InvariantError(f"tag {tag:#x} out of range")
        if tag in _BY_TAG:
            raise InvariantError(f"tag {tag:#x} of {cls.__name__} already used by {_BY_TAG[tag].__name__}")
        dc = dataclass(frozen=True, slots=True, kw_only=True)(cls)
        dc.TAG = tag
        dc.VERSION = version
        _BY_TAG[tag] = dc
        return dc

    return wrap


def registered() -> dict[int, type[Message]]:
    """All declared message classes by tag (for tests and docs)."""
    return dict(_BY_TAG)


# --------------------------------------------------------------------------- encoding


def _to_wire(value: Any) -> Any:
    if isinstance(value, Message):
        cls = type(value)
        names = _FIELD_ENCODERS.get(cls)
        if names is None:
            names = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
            _FIELD_ENCODERS[cls] = names
        return [cls.TAG, cls.VERSION, *(_to_wire(getattr(value, n)) for n in names)]
    if isinstance(value, tuple | list):
        return [_to_wire(v) for v in value]
    if isinstance(value, float):
        raise InvariantError("floats are not encodable")
    return value


def encode(msg: Message) -> bytes:
    """The canonical bytes of a message."""
    return msgpack.packb(_to_wire(msg), use_bin_type=True)  # type: ignore[no-any-return]


def hash_message(msg: Message) -> bytes:
    return sha256(encode(msg))


# --------------------------------------------------------------------------- decoding


def _fail(code: Code, path: str, text: str) -> DecodeError:
    return DecodeError(code, text, field=path or None)


def _int_conv(value: Any, path: str, depth: int) -> int:
    if type(value) is not int:
        raise _fail(Code.DECODE_WRONG_TYPE, path, f"expected an integer, got {_kind(value)}")
    if not 0 <= value <= MAX_UINT64:
        raise ValidationError(Code.FIELD_OUT_OF_RANGE, f"{value} is not in 0..2^64-1", field=path)
    return value


def _bool_conv(value: Any, path: str, depth: int) -> bool:
    if type(value) is not bool:
        raise _fail(Code.DECODE_WRONG_TYPE, path, f"expected a boolean, got {_kind(value)}")
    return value


def _str_conv(value: Any, path: str, depth: int) -> str:
    if type(value) is not str:
        raise _fail(Code.DECODE_WRONG_TYPE, path, f"expected a string, got {_kind(value)}")
    return value


def _bytes_conv(length: int | None) -> _Conv:
    def conv(value: Any, path: str, depth: int) -> bytes:
        if type(value) is not bytes:
            raise _fail(Code.DECODE_WRONG_TYPE, path, f"expected bytes, got {_kind(value)}")
        if length is not None and len(value) != length:
            raise ValidationError(
                Code.FIELD_WRONG_LENGTH, f"expected {length} bytes, got {len(value)}", field=path
            )
        return value

    return conv


def _kind(value: Any) -> str:
    return {list: "an array", bytes: "bytes", str: "a string", int: "an integer", bool: "a boolean",
            float: "a float", type(None): "nil"}.get(type(value), type(value).__name__)


def _optional_conv(inner: _Conv) -> _Conv:
    def conv(value: Any, path: str, depth: int) -> Any:
        return None if value is None else inner(value, path, depth)

    return conv


def _tuple_conv(inner: _Conv) -> _Conv:
    def conv(value: Any, path: str, depth: int) -> tuple[Any, ...]:
        if type(value) is not list:
            raise _fail(Code.DECODE_WRONG_TYPE, path, f"expected an array, got {_kind(value)}")
        return tuple(inner(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value))

    return conv


def _message_conv(base: type[Message]) -> _Conv:
    concrete = "TAG" in base.__dict__

    def conv(value: Any, path: str, depth: int) -> Message:
        if depth > MAX_DEPTH:
            raise _fail(Code.DECODE_TOO_DEEP, path, f"nesting deeper than {MAX_DEPTH}")
        if type(value) is not list or len(value) < 2:
            raise _fail(Code.DECODE_WRONG_TYPE, path, "expected a message array [tag, version, ...]")
        tag = value[0]
        if concrete:
            cls: type[Message] = base
            if tag != base.TAG:
                raise _fail(Code.DECODE_UNKNOWN_TAG, path, f"expected tag {base.TAG:#x} ({base.__name__}), got {tag!r}")
        else:
            found = _BY_TAG.get(tag) if type(tag) is int else None
            if found is None or not issubclass(found, base):
                code = base.UNKNOWN_CODE
                exc = ValidationError if code is not Code.DECODE_UNKNOWN_TAG else DecodeError
                raise exc(code, f"unknown {base.__name__} tag {tag!r}", field=path or None)
            cls = found
        result: Message = _converter(cls)(value, path, depth)
        return result

    return conv


def _converter(cls: type[Message]) -> _Conv:
    conv = _CONVERTERS.get(cls)
    if conv is None:
        conv = _build_converter(cls)
        _CONVERTERS[cls] = conv
    return conv


def _field_conv(tp: Any) -> _Conv:
    supertype = getattr(tp, "__supertype__", None)
    if supertype is not None:  # a NewType
        if supertype is bytes:
            return _bytes_conv(FIXED_LENGTHS.get(tp))
        return _field_conv(supertype)
    if tp is int:
        return _int_conv
    if tp is bool:
        return _bool_conv
    if tp is str:
        return _str_conv
    if tp is bytes:
        return _bytes_conv(None)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1 or len(typing.get_args(tp)) != 2:
            raise InvariantError(f"only `X | None` unions are encodable, not {tp}")
        return _optional_conv(_field_conv(args[0]))
    if origin is tuple:
        targs = typing.get_args(tp)
        if len(targs) != 2 or targs[1] is not Ellipsis:
            raise InvariantError(f"only tuple[X, ...] is encodable, not {tp}")
        return _tuple_conv(_field_conv(targs[0]))
    if isinstance(tp, type) and issubclass(tp, Message):
        return _message_conv(tp)
    raise InvariantError(f"type {tp!r} is not encodable")


def _build_converter(cls: type[Message]) -> _Conv:
    hints = typing.get_type_hints(cls)
    spec = [(f.name, _field_conv(hints[f.name])) for f in fields(cls)]  # type: ignore[arg-type]
    arity = 2 + len(spec)
    name = cls.__name__
    version = cls.VERSION

    def conv(value: Any, path: str, depth: int) -> Message:
        if value[1] != version or type(value[1]) is not int:
            raise _fail(Code.DECODE_UNSUPPORTED_VERSION, path, f"{name} version {value[1]!r} is not supported (expected {version})")
        if len(value) != arity:
            raise _fail(Code.DECODE_WRONG_ARITY, path, f"{name} has {arity - 2} fields, got {len(value) - 2}")
        prefix = f"{path}." if path else ""
        kwargs = {fname: fconv(value[i], prefix + fname, depth + 1) for i, (fname, fconv) in enumerate(spec, 2)}
        obj = cls(**kwargs)
        try:
            obj.validate()
        except ProtocolError as exc:
            if path and exc.field is not None and not exc.field.startswith(path):
                exc.field = f"{path}.{exc.field}"
            raise
        return obj

    return conv


def _reject_map(pairs: Any) -> Any:
    raise ValueError("maps are not part of the encoding")


def _reject_ext(code: int, data: bytes) -> Any:
    raise ValueError("extension types are not part of the encoding")


def _unpack(data: bytes, max_bytes: int) -> Any:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(Code.DECODE_MALFORMED, f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise DecodeError(Code.DECODE_TOO_LARGE, f"{len(data)} bytes exceed the limit of {max_bytes}")
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            object_pairs_hook=_reject_map,
            ext_hook=_reject_ext,
        )
    except msgpack.ExtraData:
        raise DecodeError(Code.DECODE_TRAILING_BYTES, "trailing bytes after the value") from None
    except msgpack.StackError:
        raise DecodeError(Code.DECODE_TOO_DEEP, "nesting too deep") from None
    except Exception as exc:  # msgpack raises several types for malformed input
        raise DecodeError(Code.DECODE_MALFORMED, f"not valid msgpack: {exc}") from None


def decode_as(cls: type[M], data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> M:
    """Decode `data` as `cls` (or, for an abstract base, any of its subclasses)."""
    value = _unpack(data, max_bytes)
    try:
        obj = _message_conv(cls)(value, "", 0)
        canonical = encode(obj)
    except ProtocolError:
        raise
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:  # pragma: no cover - defensive
        raise DecodeError(Code.DECODE_MALFORMED, f"cannot decode: {exc}") from None
    if canonical != bytes(data):
        raise DecodeError(Code.DECODE_NOT_CANONICAL, "not the canonical encoding of its value")
    return obj  # type: ignore[no-any-return]


def decode(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Message:
    """Decode any registered message."""
    return decode_as(Message, data, max_bytes=max_bytes)
