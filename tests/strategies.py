"""Hypothesis strategies for every registered message, derived from its field types.

`message_strategy(cls)` builds values field by field; values failing the class's own
`validate()` are filtered out. Classes whose validity couples fields (a block's
events_root, ...) register a hand-written strategy in `CUSTOM`.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from hypothesis import strategies as st

from protocol.codec import Message, registered
from protocol.errors import ProtocolError
from protocol.types import FIXED_LENGTHS, MAX_UINT64

CUSTOM: dict[type[Message], Callable[[], st.SearchStrategy[Any]]] = {}
"""Hand-written strategies for whole classes."""
FIELDS: dict[tuple[str, str], st.SearchStrategy[Any]] = {}
"""Hand-written strategies for single fields, keyed by (class name, field name)."""


def _valid(obj: Message) -> bool:
    try:
        obj.validate()
    except ProtocolError:
        return False
    return True


def field_strategy(tp: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    sup = getattr(tp, "__supertype__", None)
    if sup is not None:
        if sup is bytes and tp in FIXED_LENGTHS:
            n = FIXED_LENGTHS[tp]
            return st.binary(min_size=n, max_size=n)
        return field_strategy(sup, depth)
    if tp is int:
        return st.one_of(st.integers(0, 10), st.integers(0, 100_000), st.integers(0, MAX_UINT64))
    if tp is bool:
        return st.booleans()
    if tp is str:
        return st.text(max_size=20)
    if tp is bytes:
        return st.binary(max_size=40)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return st.none() | field_strategy(inner, depth)
    if origin is tuple:
        return st.lists(field_strategy(typing.get_args(tp)[0], depth + 1), max_size=3 if depth < 2 else 0).map(tuple)
    if isinstance(tp, type) and issubclass(tp, Message):
        if "TAG" in tp.__dict__:
            return message_strategy(tp, depth + 1)
        subs = [c for c in registered().values() if issubclass(c, tp)]
        return st.one_of(*[message_strategy(c, depth + 1) for c in subs])
    raise TypeError(tp)


def message_strategy(cls: type[Message], depth: int = 0) -> st.SearchStrategy[Any]:
    if cls in CUSTOM:
        return CUSTOM[cls]()
    hints = typing.get_type_hints(cls)
    kwargs = {
        f.name: FIELDS[(cls.__name__, f.name)] if (cls.__name__, f.name) in FIELDS else field_strategy(hints[f.name], depth)
        for f in fields(cls)  # type: ignore[arg-type]
    }  # type: ignore[arg-type]
    return st.builds(cls, **kwargs).filter(_valid)


# --------------------------------------------------------------------------- custom ones

from protocol.block import Block, BlockHeader  # noqa: E402
from protocol.codec import sha256  # noqa: E402
from protocol.events import EVENT_TYPES, Event  # noqa: E402
from protocol.merkle import merkle_root  # noqa: E402

chain_ids = st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,20}\Z")
hashes = st.binary(min_size=32, max_size=32)
u64 = st.one_of(st.integers(0, 10_000), st.integers(0, MAX_UINT64))


@st.composite
def headers(draw: st.DrawFn, events: tuple[bytes, ...] | None = None) -> BlockHeader:
    height = draw(st.integers(1, MAX_UINT64))
    evs = events if events is not None else ()
    return BlockHeader(
        chain_id=draw(chain_ids), height=height, view=draw(u64), time_ms=draw(u64),
        prev_hash=draw(hashes), events_root=merkle_root([sha256(e) for e in evs]) if events is not None else draw(hashes),
        event_count=len(evs) if events is not None else draw(st.integers(0, 100_000)),
        state_height=draw(st.integers(0, height - 1)), state_root=draw(hashes),
        validators_hash=draw(hashes), next_validators_hash=draw(hashes), proposer=draw(hashes),
    )


@st.composite
def blocks(draw: st.DrawFn) -> Block:
    evs = tuple(draw(st.lists(st.binary(max_size=50), max_size=5)))
    return Block(header=draw(headers(evs)), events=evs)


@st.composite
def events(draw: st.DrawFn) -> Event:
    if not EVENT_TYPES:
        raise AssertionError("no event types registered")
    name = draw(st.sampled_from(sorted(EVENT_TYPES)))
    body = draw(message_strategy(EVENT_TYPES[name]))
    return Event(chain_id=draw(chain_ids), type=name, sender=draw(hashes), nonce=draw(u64), time_ms=draw(u64), body=body)


CUSTOM[BlockHeader] = headers
CUSTOM[Block] = blocks
CUSTOM[Event] = events

FIELDS[("RatingSubmit", "score")] = st.integers(1, 5)
