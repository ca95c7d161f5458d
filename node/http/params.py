"""Path and query parameters of the API: one `Param` both parses a parameter and documents it.

A `Kind` is a JSON Schema for the parameter's text (a pattern, an enumeration) plus the
parse from text to value; the parser checks exactly what the schema says (the pattern with
`re.fullmatch`, the length bound before the pattern, the integer bounds after it), so the
OpenAPI document (`node.http.openapi`) cannot promise what the route does not check.
`Param.read(request)` answers the parsed value, None for an absent optional query
parameter, or raises `BadParam`, which the app turns into 400 ``request.invalid``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.requests import Request

from afterchain.protocol.types import MAX_UINT64

__all__ = [
    "ACCOUNT",
    "BOOL_FLAG",
    "GTIN",
    "HEIGHT",
    "HEX32",
    "ORG_ID",
    "SERIAL",
    "STATE_KEY",
    "TICKET_STATUS",
    "BadParam",
    "Kind",
    "Param",
    "enum_kind",
]


class BadParam(Exception):
    """A path or query parameter that is not what its `Kind` accepts (400 ``request.invalid``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Kind:
    """What a parameter's text may be (`pattern`: a regex without anchors, at most
    `max_length` characters) and what it becomes (`convert`, applied after the pattern
    matched; it returns None for a value out of range)."""

    pattern: str
    max_length: int
    what: str
    """Said in the 400 message: "a ticket id is <what>"."""
    convert: Callable[[str], Any] = str
    extra_schema: dict[str, Any] = field(default_factory=dict)
    """More of the schema (an enumeration, an integer's bounds) for the document only; the
    pattern or `convert` already enforces it."""
    example: str | None = None

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": f"^(?:{self.pattern})$", "maxLength": self.max_length,
                **self.extra_schema}

    def parse(self, text: str) -> Any:
        """The value of `text`, or None if `text` is not of this kind."""
        if len(text) > self.max_length or re.fullmatch(self.pattern, text) is None:
            return None
        return self.convert(text)


def _uint64(text: str) -> int | None:
    n = int(text)
    return n if n <= MAX_UINT64 else None


def enum_kind(values: tuple[str, ...], what: str) -> Kind:
    return Kind("|".join(re.escape(v) for v in values), max(len(v) for v in values), what,
                extra_schema={"enum": list(values)}, example=values[0])


HEX32 = Kind("[0-9a-fA-F]{64}", 64, "64 hex characters", bytes.fromhex, example="ab" * 32)
"""An event, ticket, escrow or proposal id, or a public key (32 bytes)."""
HEIGHT = Kind("[0-9]{1,20}", 20, f"a decimal integer 0..{MAX_UINT64}", _uint64,
              extra_schema={"description": f"decimal digits, at most {MAX_UINT64}"}, example="1")
ORG_ID = Kind("[a-z0-9][a-z0-9._-]{0,63}", 64, "1-64 characters of a-z 0-9 . _ - starting with a letter or digit",
              example="acme")
"""An organisation id (`protocol.bodies.validate_org_id`)."""
GTIN = Kind("[0-9]{14}", 14, "14 digits (a GTIN-14)", example="00012345600012")
SERIAL = Kind("[A-Za-z0-9!\"%&'()*+,\\-./:;<=>?_]{1,20}", 20,
              "1-20 characters of the GS1 character set 82", example="SN000001")
"""A product serial (`protocol.bodies.validate_serial`; a ``/`` cannot be part of a path segment)."""
ACCOUNT = Kind("[a-z0-9][a-z0-9._-]{0,63}|cust:[0-9a-f]{64}", 69,
               "an organisation id or cust:<64 lowercase hex characters>", example="acme")
"""A balance account: an organisation, or a customer (``cust:`` + public key hex)."""
STATE_KEY = Kind("(?:[0-9a-fA-F]{2}){1,1024}", 2048, "1-1024 bytes as hex", bytes.fromhex, example="742f" + "ab" * 32)
TICKET_STATUS = Kind("[a-z_]{1,32}", 32, "a ticket status (lowercase letters and _)", example="opened")
BOOL_FLAG = enum_kind(("1", "true", "0", "false"), "1, true, 0 or false")


@dataclass(frozen=True)
class Param:
    name: str
    where: Literal["path", "query"]
    kind: Kind
    description: str
    label: str = ""
    """How the 400 message names it ("a ticket id"); default: the name."""

    def read(self, request: Request) -> Any:
        """The parsed value; None for an absent query parameter; `BadParam` if malformed."""
        source = request.path_params if self.where == "path" else request.query_params
        text = source.get(self.name)
        if text is None:
            if self.where == "path":
                raise BadParam(f"missing path parameter {self.name}")
            return None
        value = self.kind.parse(text)
        if value is None:
            raise BadParam(f"{self.label or self.name} is {self.kind.what}")
        return value

    def flag(self, request: Request) -> bool:
        """A `BOOL_FLAG` query parameter as a bool (absent: False)."""
        return self.read(request) in ("1", "true")

    def openapi(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "in": self.where, "required": self.where == "path",
                               "description": self.description, "schema": self.kind.schema()}
        if self.kind.example is not None:
            out["example"] = self.kind.example
        return out
