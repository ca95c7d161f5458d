"""Pages of list answers: ``?cursor=C&limit=N`` in, ``"next_cursor"`` out.

Every list route takes `CURSOR_P` (absent: from the start) and `LIMIT_P` (1..`MAX_LIMIT`,
default `DEFAULT_LIMIT`) and answers its items with ``"next_cursor"``: the cursor of the
next page, or null when the list is complete. Nothing is cut silently: a client that
follows ``next_cursor`` until it is null has seen every item that existed throughout.

A cursor is opaque to clients: base64url (no padding) of the position after which the
next page starts (in the ledger's index order: the rest of the last item's index key).
Lists are read from committed state; an item added or removed between two pages shows up
or is left out as it sorts (a page never repeats an item of an earlier page). A cursor is
checked for form only (`CURSOR`: 1-`MAX_CURSOR_BYTES` bytes of base64url); one made for
another list is not an error, it starts that list at its position.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from starlette.requests import Request

from afterchain.node.http.params import Kind, Param

__all__ = [
    "CURSOR",
    "CURSOR_P",
    "DEFAULT_LIMIT",
    "LIMIT",
    "LIMIT_P",
    "MAX_CURSOR_BYTES",
    "MAX_LIMIT",
    "PAGE_PARAMS",
    "Page",
    "decode_cursor",
    "encode_cursor",
    "filtered_page",
    "read_page",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_CURSOR_BYTES = 160
"""Longest key position a cursor holds (index keys are at most ~140 bytes past their prefix)."""

T = TypeVar("T")


def encode_cursor(position: bytes) -> str:
    return base64.urlsafe_b64encode(position).rstrip(b"=").decode()


def decode_cursor(text: str) -> bytes | None:
    """The position in a cursor, None if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if 0 < len(raw) <= MAX_CURSOR_BYTES and encode_cursor(raw) == text else None


def _limit(text: str) -> int | None:
    n = int(text)
    return n if 1 <= n <= MAX_LIMIT else None


_CURSOR_CHARS = -(-MAX_CURSOR_BYTES * 4 // 3)
CURSOR = Kind(f"[A-Za-z0-9_-]{{2,{_CURSOR_CHARS}}}", _CURSOR_CHARS, "a cursor from an earlier page's next_cursor",
              decode_cursor, example="AAAAAAAAAAE")
LIMIT = Kind("[0-9]{1,4}", 4, f"an integer 1..{MAX_LIMIT}", _limit,
             extra_schema={"description": f"decimal, 1..{MAX_LIMIT}"}, example=str(DEFAULT_LIMIT))

CURSOR_P = Param("cursor", "query", CURSOR, "where the page starts: the next_cursor of the previous page "
                 "(absent: the first page)", "cursor")
LIMIT_P = Param("limit", "query", LIMIT, f"at most this many items (default {DEFAULT_LIMIT}, at most {MAX_LIMIT})",
                "limit")
PAGE_PARAMS = (CURSOR_P, LIMIT_P)


class Page:
    """The page a request asks for: start `after` (None: from the start), at most `limit` items."""

    __slots__ = ("after", "limit")

    def __init__(self, after: bytes | None, limit: int) -> None:
        self.after = after
        self.limit = limit

    def answer(self, rows: Sequence[tuple[bytes, T]]) -> tuple[list[T], str | None]:
        """`rows` read with ``limit + 1``: (the page's items, the next cursor or None)."""
        items = [v for _, v in rows[: self.limit]]
        more = len(rows) > self.limit
        return items, (encode_cursor(rows[self.limit - 1][0]) if more else None)


def read_page(request: Request) -> Page:
    """The cursor and limit of a request (`BadParam` when malformed)."""
    limit = LIMIT_P.read(request)
    return Page(CURSOR_P.read(request), DEFAULT_LIMIT if limit is None else limit)


def filtered_page(page: Page, fetch: Callable[[bytes | None, int], Sequence[tuple[bytes, Any]]],
                  keep: Callable[[Any], T | None], *, scan_budget: int = 10 * MAX_LIMIT) -> tuple[list[T], str | None]:
    """A page of the rows `fetch(after, n)` reads (in order) for which `keep` answers an item
    (None: left out). Reads at most `scan_budget` rows: a page may then hold fewer than
    `limit` items (even none), and its ``next_cursor`` (never null while rows remain) goes on
    from the last row read."""
    items: list[T] = []
    after = page.after
    scanned = 0
    chunk = min(page.limit + 1, MAX_LIMIT + 1)
    while True:
        rows = fetch(after, chunk)
        for pos, row in rows:
            scanned += 1
            item = keep(row)
            if item is not None:
                if len(items) == page.limit:  # one more kept item exists: the page ends before it
                    return items, encode_cursor(after) if after is not None else None
                items.append(item)
            after = pos
            if scanned >= scan_budget:  # (the next page may turn out empty, with a null cursor)
                return items, encode_cursor(pos)
        if len(rows) < chunk:
            return items, None
