"""The JSON form of every message, for the HTTP API and for people.

A message becomes a JSON object with its field names; ``bytes`` become lowercase hex
strings; integers stay integers (clients must keep 64-bit integers exact); ``None`` is
``null``; tuples are arrays; a nested message is an object. A field typed with an abstract
base (an event's ``body``) gets its concrete class from context: for `Event`, the
``type`` field names the body class. `from_json` is the exact inverse and validates like
the binary decoder, naming the field on error, so that
``encode(from_json(cls, to_json(m))) == encode(m)`` and a signature made over the binary
encoding verifies for an event submitted as JSON.
"""

from __future__ import annotations

import types
import typing
from dataclasses import fields
from typing import Any, TypeVar

from .codec import Message, _converter, registered
from .errors import Code, DecodeError, ProtocolError, ValidationError
from .types import FIXED_LENGTHS

__all__ = ["from_json", "to_json"]

M = TypeVar("M", bound=Message)


def to_json(value: Any) -> Any:
    """The JSON form of `value`. A nested message whose field is declared with an abstract
    base other than `EventBody` (e.g. `Evidence.first`) carries its tag as ``"_tag"``."""
    if isinstance(value, Message):
        hints = _hints(type(value))
        out: dict[str, Any] = {}
        for f in fields(value):  # type: ignore[arg-type]
            v = getattr(value, f.name)
            out[f.name] = to_json(v)
            if isinstance(v, Message) and _needs_tag(hints[f.name]):
                out[f.name]["_tag"] = type(v).TAG
        return out
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple | list):
        return [to_json(v) for v in value]
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    h = _HINTS.get(cls)
    if h is None:
        h = _HINTS[cls] = typing.get_type_hints(cls)
    return h


def _needs_tag(tp: Any) -> bool:
    from .events import EventBody

    for t in (tp, *typing.get_args(tp)):
        if isinstance(t, type) and issubclass(t, Message) and "TAG" not in t.__dict__ and not issubclass(t, EventBody):
            return True
    return False


def _err(path: str, text: str) -> DecodeError:
    return DecodeError(Code.DECODE_WRONG_TYPE, text, field=path or None)


def _to_wire(tp: Any, value: Any, path: str, ctx: dict[str, Any]) -> Any:
    """Turn a JSON value into the msgpack-level value the binary decoder expects."""
    sup = getattr(tp, "__supertype__", None)
    if sup is not None:
        if sup is bytes:
            return _hex(value, path, FIXED_LENGTHS.get(tp))
        return _to_wire(sup, value, path, ctx)
    if tp is bytes:
        return _hex(value, path, None)
    if tp in (int, str, bool):
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _to_wire(inner, value, path, ctx)
    if origin is tuple:
        if not isinstance(value, list):
            raise _err(path, "expected an array")
        inner = typing.get_args(tp)[0]
        return [_to_wire(inner, v, f"{path}[{i}]", ctx) for i, v in enumerate(value)]
    if isinstance(tp, type) and issubclass(tp, Message):
        cls = tp
        if "TAG" not in tp.__dict__:
            cls = _concrete(tp, value, path, ctx)
        return _message_wire(cls, value, path)
    raise _err(path, f"unsupported type {tp!r}")


def _concrete(base: type[Message], value: Any, path: str, ctx: dict[str, Any]) -> type[Message]:
    from .events import EVENT_TYPES, EventBody

    if issubclass(base, EventBody):
        name = ctx.get("type")
        cls = EVENT_TYPES.get(name) if isinstance(name, str) else None
        if cls is None:
            raise ValidationError(Code.UNKNOWN_EVENT_TYPE, f"unknown event type {name!r}", field="type")
        return cls
    if isinstance(value, dict) and isinstance(value.get("_tag"), int):
        found = registered().get(value["_tag"])
        if found is not None and issubclass(found, base):
            return found
    raise _err(path, f"cannot tell which {base.__name__} this is")


def _message_wire(cls: type[Message], value: Any, path: str) -> list[Any]:
    if not isinstance(value, dict):
        raise _err(path, f"expected an object ({cls.__name__})")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    extra = set(value) - set(names) - {"_tag"}
    if extra:
        raise ValidationError(Code.FIELD_INVALID, "unknown field", field=f"{path}.{sorted(extra)[0]}" if path else sorted(extra)[0])
    out: list[Any] = [cls.TAG, cls.VERSION]
    prefix = f"{path}." if path else ""
    for n in names:
        if n not in value:
            raise ValidationError(Code.FIELD_INVALID, "missing field", field=prefix + n)
        out.append(_to_wire(hints[n], value[n], prefix + n, value))
    return out


def _hex(value: Any, path: str, length: int | None) -> bytes:
    if not isinstance(value, str):
        raise _err(path, "expected a hex string")
    try:
        b = bytes.fromhex(value)
    except ValueError:
        raise _err(path, "not a hex string") from None
    if length is not None and len(b) != length:
        raise ValidationError(Code.FIELD_WRONG_LENGTH, f"expected {length} bytes, got {len(b)}", field=path or None)
    return b


def from_json(cls: type[M], value: Any) -> M:
    """The message of class `cls` whose JSON form is `value`; raises `ProtocolError`."""
    try:
        wire = _message_wire(cls, value, "")
        obj = _converter(cls)(wire, "", 0)
    except ProtocolError:
        raise
    except (TypeError, ValueError, RecursionError) as exc:
        raise DecodeError(Code.DECODE_MALFORMED, f"cannot read JSON: {exc}") from None
    return obj  # type: ignore[no-any-return]
