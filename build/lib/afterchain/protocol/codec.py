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
import operator
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

    # `_wire` caches the canonical encoding (values are immutable, so it never goes
    # stale); it is not a field: equality, hashing, repr and `replace` ignore it.
    __slots__ = ("_wire",)
    _wire: bytes
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
_MESSAGE_CONVS: dict[type[Message], _Conv] = {}
_BUILDING: set[type[Message]] = set()
"""Classes whose converter is being generated (a class nested in itself uses the indirect path)."""
_FIELD_ENCODERS: dict[type[Message], Callable[[Any], tuple[Any, ...]]] = {}


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


_PLAIN: frozenset[type] = frozenset({int, str, bytes, bool, type(None)})
"""Field value types that go to msgpack as they are (anything else goes through `_to_wire`)."""


def _field_getter(cls: type[Message]) -> Callable[[Any], tuple[Any, ...]]:
    names = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
    if len(names) >= 2:
        return operator.attrgetter(*names)
    if len(names) == 1:
        one = operator.attrgetter(names[0])
        return lambda v: (one(v),)
    return lambda v: ()


def _to_wire(value: Any) -> Any:
    if isinstance(value, Message):
        cls = type(value)
        spec = _FIELD_ENCODERS.get(cls)
        if spec is None:
            spec = _FIELD_ENCODERS[cls] = _field_getter(cls)
        vals = spec(value)
        # Fast path: every field is a plain scalar (one C-level pass over the types).
        if _PLAIN.issuperset(map(type, vals)):
            return [cls.TAG, cls.VERSION, *vals]
        plain = _PLAIN
        return [cls.TAG, cls.VERSION, *[v if type(v) in plain else _to_wire(v) for v in vals]]
    if isinstance(value, tuple | list):
        return [_to_wire(v) for v in value]
    if isinstance(value, float):
        raise InvariantError("floats are not encodable")
    return value


_SET = object.__setattr__


def encode(msg: Message) -> bytes:
    """The canonical bytes of a message (computed once per value, then cached on it)."""
    try:
        return msg._wire
    except AttributeError:
        pass
    raw: bytes = msgpack.packb(_to_wire(msg), use_bin_type=True)
    if isinstance(msg, Message):
        _SET(msg, "_wire", raw)
    return raw


def hash_message(msg: Message) -> bytes:
    return sha256(encode(msg))


# --------------------------------------------------------------------------- decoding


def _fail(code: Code, path: str, text: str) -> DecodeError:
    return DecodeError(code, text, field=path or None)


def _kind(value: Any) -> str:
    return {list: "an array", bytes: "bytes", str: "a string", int: "an integer", bool: "a boolean",
            float: "a float", type(None): "nil"}.get(type(value), type(value).__name__)


# Error builders, called only on the failure path of the generated converters (so the
# success path never formats a field path).


def _fp(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _ep(path: str, index: int) -> str:
    return f"{path}[{index}]"


def _e_type(path: str, what: str, value: Any) -> DecodeError:
    return _fail(Code.DECODE_WRONG_TYPE, path, f"expected {what}, got {_kind(value)}")


def _e_range(path: str, value: int) -> ValidationError:
    return ValidationError(Code.FIELD_OUT_OF_RANGE, f"{value} is not in 0..2^64-1", field=path)


def _e_len(path: str, length: int, value: bytes) -> ValidationError:
    return ValidationError(Code.FIELD_WRONG_LENGTH, f"expected {length} bytes, got {len(value)}", field=path)


def _message_conv(base: type[Message]) -> _Conv:
    conv = _MESSAGE_CONVS.get(base)
    if conv is None:
        conv = _MESSAGE_CONVS[base] = _build_message_conv(base)
    return conv


def _build_message_conv(base: type[Message]) -> _Conv:
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
            if type(tag) is not int:
                # Equal but not an int (1.0, True): the value decodes, and `decode_as`
                # then refuses the bytes as not canonical (they re-encode differently).
                value[0] = base.TAG
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
    """The converter of `cls`: (wire array with its tag already checked, path, depth) -> value."""
    conv = _CONVERTERS.get(cls)
    if conv is None:
        conv = _build_converter(cls)
        _CONVERTERS[cls] = conv
    return conv


class _Gen:
    """Writes the source of one class's converter (see `_build_converter`)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.env: dict[str, Any] = {
            "_fp": _fp, "_ep": _ep, "_e_type": _e_type, "_e_range": _e_range, "_e_len": _e_len,
            "MAX_UINT64": MAX_UINT64, "MAX_DEPTH": MAX_DEPTH, "_fail": _fail, "_Code": Code,
        }
        self.counter = 0

    def name(self, prefix: str, obj: Any = None) -> str:
        self.counter += 1
        n = f"{prefix}{self.counter}"
        if obj is not None:
            self.env[n] = obj
        return n

    def emit(self, tp: Any, var: str, path: str, depth: int, ind: str) -> None:
        """Lines that check `var` (of declared type `tp`) and may rebind it to its value.

        `path` is an expression giving the field path, evaluated only to report an error
        (or to pass it on to a nested message's converter).
        """
        out = self.lines.append
        supertype = getattr(tp, "__supertype__", None)
        if supertype is not None:  # a NewType
            if supertype is bytes:
                self.emit_bytes(var, path, FIXED_LENGTHS.get(tp), ind)
                return
            self.emit(supertype, var, path, depth, ind)
            return
        if tp is int:
            out(f"{ind}if type({var}) is not int: raise _e_type({path}, 'an integer', {var})")
            out(f"{ind}if {var} < 0 or {var} > MAX_UINT64: raise _e_range({path}, {var})")
            return
        if tp is bool:
            out(f"{ind}if type({var}) is not bool: raise _e_type({path}, 'a boolean', {var})")
            return
        if tp is str:
            out(f"{ind}if type({var}) is not str: raise _e_type({path}, 'a string', {var})")
            return
        if tp is bytes:
            self.emit_bytes(var, path, None, ind)
            return
        origin = typing.get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1 or len(typing.get_args(tp)) != 2:
                raise InvariantError(f"only `X | None` unions are encodable, not {tp}")
            out(f"{ind}if {var} is not None:")
            self.emit(args[0], var, path, depth, ind + "    ")
            return
        if origin is tuple:
            targs = typing.get_args(tp)
            if len(targs) != 2 or targs[1] is not Ellipsis:
                raise InvariantError(f"only tuple[X, ...] is encodable, not {tp}")
            out(f"{ind}if type({var}) is not list: raise _e_type({path}, 'an array', {var})")
            i, x, acc = self.name("i"), self.name("x"), self.name("acc")
            start = len(self.lines)
            out(f"{ind}for {i}, {x} in enumerate({var}):")
            body_at = len(self.lines)
            self.emit(targs[0], x, f"_ep({path}, {i})", depth + 1, ind + "    ")
            rebinds = any(f"{x} = " in ln for ln in self.lines[body_at:])
            if rebinds:  # elements are converted: collect them into a new list
                self.lines.insert(start, f"{ind}{acc} = []")
                out(f"{ind}    {acc}.append({x})")
                out(f"{ind}{var} = tuple({acc})")
            else:
                out(f"{ind}{var} = tuple({var})")
            return
        if isinstance(tp, type) and issubclass(tp, Message):
            if "TAG" in tp.__dict__ and tp not in _BUILDING:
                # A concrete message: the checks of `_message_conv` inline, then its
                # converter directly (same order, codes and texts).
                conv = self.name("_conv", _converter(tp))
                tag = tp.TAG
                p = self.name("p")
                out(f"{ind}{p} = {path}")
                out(f"{ind}if depth + {depth} > MAX_DEPTH: raise _fail(_Code.DECODE_TOO_DEEP, {p}, {f'nesting deeper than {MAX_DEPTH}'!r})")
                out(f"{ind}if type({var}) is not list or len({var}) < 2: raise _fail(_Code.DECODE_WRONG_TYPE, {p}, "
                    "'expected a message array [tag, version, ...]')")
                out(f"{ind}if {var}[0] != {tag}: raise _fail(_Code.DECODE_UNKNOWN_TAG, {p}, "
                    f"f'expected tag {tag:#x} ({tp.__name__}), got {{{var}[0]!r}}')")
                out(f"{ind}if type({var}[0]) is not int: {var}[0] = {tag}")
                out(f"{ind}{var} = {conv}({var}, {p}, depth + {depth})")
                return
            conv = self.name("_msg", _message_conv(tp))
            out(f"{ind}{var} = {conv}({var}, {path}, depth + {depth})")
            return
        raise InvariantError(f"type {tp!r} is not encodable")

    def emit_bytes(self, var: str, path: str, length: int | None, ind: str) -> None:
        self.lines.append(f"{ind}if type({var}) is not bytes: raise _e_type({path}, 'bytes', {var})")
        if length is not None:
            self.lines.append(f"{ind}if len({var}) != {length}: raise _e_len({path}, {length}, {var})")


def _prefix_error(exc: ProtocolError, path: str) -> None:
    if path and exc.field is not None and not exc.field.startswith(path):
        exc.field = f"{path}.{exc.field}"


def _plain_dataclass_init(cls: type[Message], names: list[str]) -> bool:
    """True if `cls.__init__` is the one `dataclass` generated and only stores the fields."""
    init = cls.__dict__.get("__init__")
    code = getattr(init, "__code__", None)
    return (
        code is not None and code.co_filename == "<string>" and not hasattr(cls, "__post_init__")
        and all(type(cls.__dict__.get(n)).__name__ == "member_descriptor" for n in names)
    )


def _build_converter(cls: type[Message]) -> _Conv:
    """Compile the converter of one class (like `dataclasses` compiles `__init__`).

    The generated function checks the version and arity, then each field in declared
    order (type, range, length; nested values through their own converters), builds the
    value and runs its `validate()` (skipped when the class does not override it).
    Error paths, codes and texts are those of a field-by-field check.
    """
    _BUILDING.add(cls)
    try:
        return _generate_converter(cls)
    finally:
        _BUILDING.discard(cls)


def _generate_converter(cls: type[Message]) -> _Conv:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    arity = 2 + len(names)
    g = _Gen()
    g.env.update(_cls=cls, _new=cls.__new__, _fail=_fail, _Code=Code, _ProtocolError=ProtocolError, _prefix_error=_prefix_error)
    ln = g.lines.append
    ln("def conv(value, path, depth):")
    ln("    v1 = value[1]")
    ln(f"    if v1 != {cls.VERSION} or type(v1) is not int:")
    ln(f"        raise _fail(_Code.DECODE_UNSUPPORTED_VERSION, path, f'{cls.__name__} version {{v1!r}} is not supported (expected {cls.VERSION})')")
    ln(f"    if len(value) != {arity}:")
    ln(f"        raise _fail(_Code.DECODE_WRONG_ARITY, path, f'{cls.__name__} has {arity - 2} fields, got {{len(value) - 2}}')")
    if names:
        ln("    _t, _v, " + "".join(f"f{i}, " for i in range(len(names))) + "= value")
    for i, name in enumerate(names):
        g.emit(hints[name], f"f{i}", f"_fp(path, {name!r})", 1, "    ")
    if _plain_dataclass_init(cls, names):
        # Same effect as the generated frozen __init__ (which sets each slot with
        # object.__setattr__), without its per-field overhead.
        ln("    obj = _new(_cls)")
        for i, name in enumerate(names):
            g.env[f"_set{i}"] = getattr(cls, name).__set__
            ln(f"    _set{i}(obj, f{i})")
    else:
        ln("    obj = _cls(" + ", ".join(f"{name}=f{i}" for i, name in enumerate(names)) + ")")
    if cls.validate is not Message.validate:
        ln("    try:")
        ln("        obj.validate()")
        ln("    except _ProtocolError as exc:")
        ln("        _prefix_error(exc, path)")
        ln("        raise")
    ln("    return obj")
    source = "\n".join(g.lines)
    exec(compile(source, f"<converter of {cls.__module__}.{cls.__qualname__}>", "exec"), g.env)
    conv: _Conv = g.env["conv"]
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
        # The converters keep every scalar as decoded and turn arrays into tuples, so
        # re-packing the decoded structure is the same as encoding the value.
        canonical = msgpack.packb(value, use_bin_type=True)
    except ProtocolError:
        raise
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:  # pragma: no cover - defensive
        raise DecodeError(Code.DECODE_MALFORMED, f"cannot decode: {exc}") from None
    if canonical != data:
        raise DecodeError(Code.DECODE_NOT_CANONICAL, "not the canonical encoding of its value")
    _SET(obj, "_wire", canonical)
    first = _FIRST_NESTED.get(type(obj))
    if first is None:
        first = _FIRST_NESTED[type(obj)] = _first_nested(type(obj))
    if first:
        # The first field is a message (a signed event's event) and the others are
        # scalars: its canonical encoding is the slice of `data` between the array's
        # head and the re-packed scalars, cached for the hash or signature check to come.
        head = _HEAD_BYTES[len(value) > 15] + _uint_bytes(value[0]) + _uint_bytes(value[1])
        tail = sum(len(_packb(v, use_bin_type=True)) for v in value[3:])
        _SET(getattr(obj, first), "_wire", canonical[head : len(canonical) - tail])
    return obj  # type: ignore[no-any-return]


_HEAD_BYTES = (1, 3)
"""Length of an array header: fixarray (up to 15 items), else array16 (messages have < 2^16 fields)."""
_FIRST_NESTED: dict[type[Message], str] = {}
_packb = msgpack.packb


def _uint_bytes(n: int) -> int:
    """Length of the canonical msgpack encoding of a non-negative integer."""
    if n < 0x80:
        return 1
    if n < 0x100:
        return 2
    if n < 0x10000:
        return 3
    return 5 if n < 0x100000000 else 9


def _first_nested(cls: type[Message]) -> str:
    """The name of `cls`'s first field if it is a concrete message and all others are scalars."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    if not names:
        return ""
    tp = hints[names[0]]
    if not (isinstance(tp, type) and issubclass(tp, Message) and "TAG" in tp.__dict__):
        return ""
    scalar = {int, bool, str, bytes}
    for name in names[1:]:
        t = hints[name]
        t = getattr(t, "__supertype__", t)
        if t not in scalar:
            return ""
    return names[0]


def decode(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Message:
    """Decode any registered message."""
    return decode_as(Message, data, max_bytes=max_bytes)
