"""Tables of docs/PROTOCOL.md generated from the code: message tags, event bodies, error codes.

``python -m afterchain.protocol.doc_tables`` prints every table between its markers
(``<!-- BEGIN GENERATED: name -->`` ... ``<!-- END GENERATED: name -->``);
`tests/test_vectors.py` checks that the document holds exactly these blocks (and
``python -m tests.test_vectors --update`` rewrites them). Pure: builds strings only.
"""

from __future__ import annotations

import types
import typing
from dataclasses import fields
from typing import Any

from . import block, events, genesis, merkle, smt
from .codec import Message, registered
from .crypto import PREFIX, Domain
from .errors import Code
from .types import FIXED_LENGTHS

__all__ = ["CODE_MEANINGS", "generated_blocks", "render_block", "type_name"]

_MODULES = (block, merkle, events, smt, genesis)
"""Modules whose messages the tag table lists (event bodies come through `events`)."""

CODE_MEANINGS: dict[Code, str] = {
    Code.DECODE_MALFORMED: "not msgpack, a map, an extension type, truncated, or not bytes at all",
    Code.DECODE_TOO_LARGE: "longer than the decoder's byte limit (checked before parsing)",
    Code.DECODE_TOO_DEEP: "nesting deeper than the limit",
    Code.DECODE_TRAILING_BYTES: "bytes left after the value",
    Code.DECODE_NOT_CANONICAL: "a valid value, but not its one canonical encoding",
    Code.DECODE_WRONG_TYPE: "a field of the wrong msgpack type, or not a message array",
    Code.DECODE_UNKNOWN_TAG: "a tag that is not (or not here) a known message",
    Code.DECODE_UNSUPPORTED_VERSION: "a message version this code does not support",
    Code.DECODE_WRONG_ARITY: "a message array with the wrong number of fields",
    Code.FIELD_OUT_OF_RANGE: "an integer outside its range (u64, or the field's own bounds)",
    Code.FIELD_WRONG_LENGTH: "a fixed-length byte string (hash, key, signature) of the wrong length",
    Code.FIELD_INVALID: "a field that breaks a stateless rule of its message (format, enumeration, consistency)",
    Code.UNKNOWN_EVENT_TYPE: "an event type (or body tag) that is not in the registry",
    Code.WRONG_CHAIN_ID: "a message for another chain",
    Code.BAD_SIGNATURE: "a signature that does not verify (or a signer that may not sign)",
    Code.WRONG_DOMAIN: "a valid signature made for another domain",
    Code.KEY_FILE: "an unreadable or unsafe key file",
}


def type_name(tp: Any) -> str:
    """How a field type is written in the document."""
    supertype = getattr(tp, "__supertype__", None)
    if supertype is not None:
        length = FIXED_LENGTHS.get(tp)
        if length is not None:
            return f"bytes[{length}]"
        return "u64" if supertype is int else type_name(supertype)
    if tp is int:
        return "u64"
    if tp is bool:
        return "bool"
    if tp is str:
        return "str"
    if tp is bytes:
        return "bytes"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return f"{type_name(inner)} \\| nil"
    if origin is tuple:
        return f"array of {type_name(typing.get_args(tp)[0])}"
    if isinstance(tp, type) and issubclass(tp, Message):
        return tp.__name__ if "TAG" in tp.__dict__ else f"any {tp.__name__}"
    return repr(tp)


def _fields(cls: type[Message]) -> str:
    hints = typing.get_type_hints(cls)
    return ", ".join(f"{f.name}: {type_name(hints[f.name])}" for f in fields(cls))  # type: ignore[arg-type]


def _module_of(cls: type[Message]) -> str:
    return cls.__module__.removeprefix("afterchain.")  # the folder of the reference implementation


def tag_table() -> str:
    wanted = {m.__name__.removeprefix("afterchain.") for m in _MODULES}
    rows = ["| tag | message | module | fields (in wire order, after tag and version) |", "|---|---|---|---|"]
    for tag, cls in sorted(registered().items()):
        if _module_of(cls) not in wanted or issubclass(cls, events.EventBody):
            continue
        rows.append(f"| `{tag:#06x}` | {cls.__name__} v{cls.VERSION} | `{_module_of(cls)}` | {_fields(cls)} |")
    return "\n".join(rows)


def event_table() -> str:
    rows = ["| event type | tag | body | fields (in wire order, after tag and version) |", "|---|---|---|---|"]
    for name, cls in sorted(events.EVENT_TYPES.items(), key=lambda kv: kv[1].TAG):
        rows.append(f"| `{name}` | `{cls.TAG:#06x}` | {cls.__name__} v{cls.VERSION} | {_fields(cls)} |")
    return "\n".join(rows)


def error_table() -> str:
    rows = ["| code | meaning |", "|---|---|"]
    for code in Code:
        rows.append(f"| `{code.value}` | {CODE_MEANINGS.get(code, '(undocumented)')} |")
    return "\n".join(rows)


def domain_table() -> str:
    rows = ["| domain | sign bytes start with (hex) |", "|---|---|"]
    for d in Domain:
        start = PREFIX + d.value.encode() + b"\x00"
        rows.append(f"| `{d.value}` | `{start.hex()}` |")
    return "\n".join(rows)


def generated_blocks() -> dict[str, str]:
    """Name -> table text, for every generated block of the document."""
    return {
        "message-tags": tag_table(),
        "event-bodies": event_table(),
        "domains": domain_table(),
        "error-codes": error_table(),
    }


def render_block(name: str, text: str) -> str:
    return f"<!-- BEGIN GENERATED: {name} -->\n{text}\n<!-- END GENERATED: {name} -->"


if __name__ == "__main__":
    for block_name, block_text in generated_blocks().items():
        print(render_block(block_name, block_text))
        print()
