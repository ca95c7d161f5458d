"""Codec benchmark: the project's decoder against msgspec (issue 27, point 2), one thread.

    ./scripts/bench codec              # 3,000 events per kind, best of 7 rounds (~1 min)
    ./scripts/bench codec --quick      # a few seconds
    ./scripts/bench codec --json out.json

For signed events of the `protocol` bench (one kind at a time, then its six-kind mix), in
µs of CPU per event (best round):

- ``current``: `SignedEvent.decode` (msgpack unpack, the generated converters with every
  type, range and length check, `validate()`, the canonical re-encoding check);
- ``unpack``: `msgpack.unpackb` alone, ``validate``: the `validate()` calls alone (on
  decoded values);
- ``msgspec``: msgspec decoding into `Struct(array_like=True)` types generated from the
  message classes (types, byte lengths and ``>= 0`` checked by msgspec), plus the canonical
  check (re-encode, compare); no `validate()`. msgspec cannot take the uint64 upper bound
  (``le=2**64-1``: "bounds that don't fit in an int64 are not supported"); msgpack holds
  no larger integer, so ``ge=0`` is the whole range check here;
- ``msgspec_full``: ``msgspec`` + building the project's frozen classes from the structs
  (as the generated converters do: ``__new__`` and slot setters) + `validate()`: what
  adopting msgspec under the current types would cost.

Every decoding is checked against `SignedEvent.decode` (same value, same bytes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import typing
from collections.abc import Callable
from dataclasses import fields
from typing import Annotated, Any

import msgpack

from afterchain.node.bench.protocol import MIX, _events
from afterchain.protocol import codec
from afterchain.protocol.codec import Message
from afterchain.protocol.events import SignedEvent
from afterchain.protocol.types import FIXED_LENGTHS

__all__ = ["main", "run"]

_clock = time.process_time


def _structs() -> tuple[Any, Callable[[Any], Message]]:
    """msgspec Struct types mirroring every concrete message class reachable from
    `SignedEvent`, and a function turning a decoded struct into the project's value."""
    import msgspec

    made: dict[type[Message], Any] = {}
    back: dict[Any, tuple[type[Message], list[tuple[str, Callable[[Any], Any]]]]] = {}

    def field_type(tp: Any) -> tuple[Any, Callable[[Any], Any]]:
        """(msgspec type, converter of the decoded field to the project's value)."""
        same: Callable[[Any], Any] = lambda v: v  # noqa: E731
        sup = getattr(tp, "__supertype__", None)
        if sup is bytes:
            n = FIXED_LENGTHS.get(tp)
            return (Annotated[bytes, msgspec.Meta(min_length=n, max_length=n)] if n else bytes), same
        if sup is not None:
            return field_type(sup)
        if tp is int:
            return Annotated[int, msgspec.Meta(ge=0)], same
        if tp in (str, bool, bytes):
            return tp, same
        origin = typing.get_origin(tp)
        if origin in (typing.Union, __import__("types").UnionType):
            (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
            t, conv = field_type(inner)
            return t | None, (lambda v: None if v is None else conv(v)) if conv is not same else same
        if origin is tuple:
            t, conv = field_type(typing.get_args(tp)[0])
            return tuple[t, ...], (lambda v: tuple(map(conv, v))) if conv is not same else same  # type: ignore[valid-type]
        if isinstance(tp, type) and issubclass(tp, Message):
            concrete = [c for c in codec.registered().values() if issubclass(c, tp)]
            structs = [struct_of(c) for c in concrete]
            union = structs[0] if len(structs) == 1 else typing.Union[tuple(structs)]  # noqa: UP007
            return union, to_value
        raise TypeError(f"no msgspec type for {tp!r}")

    def struct_of(cls: type[Message]) -> Any:
        if cls in made:
            return made[cls]
        hints = typing.get_type_hints(cls)
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        made[cls] = None  # (a class nested in itself would recurse: none is)
        specs = [(n, *field_type(hints[n])) for n in names]
        st = msgspec.defstruct(f"S_{cls.__name__}", [("version", int), *[(f"f_{n}", t) for n, t, _ in specs]],
                               array_like=True, tag=cls.TAG, tag_field="_tag", frozen=True)
        made[cls] = st
        back[st] = (cls, [(n, c) for n, _, c in specs])
        return st

    def to_value(s: Any) -> Message:
        cls, specs = back[type(s)]
        if s.version != cls.VERSION:
            raise ValueError("unsupported version")
        obj = cls.__new__(cls)
        for name, conv in specs:
            object.__setattr__(obj, name, conv(getattr(s, "f_" + name)))
        obj.validate()
        return obj

    return struct_of(SignedEvent), to_value


def _best(fn: Callable[[list[bytes]], None], raws: list[bytes], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = _clock()
        fn(raws)
        best = min(best, _clock() - start)
    return best / len(raws) * 1e6


def run(quick: bool) -> dict[str, Any]:
    import msgspec

    n, rounds = (200, 2) if quick else (3000, 7)
    struct, to_value = _structs()
    dec = msgspec.msgpack.Decoder(struct)
    enc = msgspec.msgpack.Encoder()

    def msgspec_checked(raw: bytes) -> Any:
        s = dec.decode(raw)
        if enc.encode(s) != raw:
            raise ValueError("not canonical")
        return s

    def current(raws: list[bytes]) -> None:
        for raw in raws:
            SignedEvent.decode(raw)

    def unpack(raws: list[bytes]) -> None:
        for raw in raws:
            msgpack.unpackb(raw, raw=False, use_list=True, strict_map_key=True, object_pairs_hook=codec._reject_map,
                            ext_hook=codec._reject_ext)

    def with_msgspec(raws: list[bytes]) -> None:
        for raw in raws:
            msgspec_checked(raw)

    def with_msgspec_full(raws: list[bytes]) -> None:
        for raw in raws:
            to_value(msgspec_checked(raw))

    out: dict[str, Any] = {"quick": quick, "events_per_kind": n, "rounds": rounds, "kinds": {}}
    for kinds in [(k,) for k in MIX] + [MIX]:
        raws = _events(n, kinds)
        for raw in raws:  # the same values and bytes as the project's decoder
            mine = SignedEvent.decode(raw)
            assert to_value(msgspec_checked(raw)) == mine and codec.encode(mine) == raw
        values = [SignedEvent.decode(raw) for raw in raws]

        def validate(_: list[bytes], values: list[SignedEvent] = values) -> None:
            for v in values:
                v.event.body.validate()
                v.event.validate()

        figures = {name: _best(fn, raws, rounds) for name, fn in (
            ("current", current), ("unpack", unpack), ("validate", validate), ("msgspec", with_msgspec),
            ("msgspec_full", with_msgspec_full))}
        figures["mean_bytes"] = sum(map(len, raws)) / len(raws)
        out["kinds"]["mix" if len(kinds) > 1 else kinds[0]] = figures
    return out


def report(result: dict[str, Any]) -> str:
    lines = [f"codec benchmark{' (quick)' if result['quick'] else ''}: µs of CPU per signed event, best of "
             f"{result['rounds']} rounds of {result['events_per_kind']:,}", "",
             f"{'kind':<22}{'bytes':>6}{'current':>9}{'unpack':>8}{'validate':>9}{'msgspec':>9}{'+classes':>9}"]
    for kind, f in result["kinds"].items():
        lines.append(f"{kind:<22}{f['mean_bytes']:>6.0f}{f['current']:>9.2f}{f['unpack']:>8.2f}{f['validate']:>9.2f}"
                     f"{f['msgspec']:>9.2f}{f['msgspec_full']:>9.2f}")
    lines += ["", "current: SignedEvent.decode; unpack: msgpack.unpackb alone; validate: the validate() calls alone;",
              "msgspec: msgspec Structs (array_like) + canonical check, no validate(); +classes: msgspec, then the",
              "project's classes built from the structs and validate() (adoption under the current types)"]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="./scripts/bench codec", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds")
    parser.add_argument("--json", metavar="FILE", help="also save the figures as JSON")
    args = parser.parse_args(argv)
    result = run(args.quick)
    print(report(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
