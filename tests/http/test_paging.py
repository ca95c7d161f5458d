"""Pages of list answers (`node.http.paging`): following next_cursor visits every item once,
filtered pages too; cursors and limits are validated."""

from __future__ import annotations

from pathlib import Path

import httpx
from hypothesis import given
from hypothesis import strategies as st

from afterchain.node.http.app import build_app
from afterchain.node.http.paging import Page, decode_cursor, encode_cursor, filtered_page
from afterchain.node.http.service import NodeHttp

from ..node.util import memory_cluster


def rows_after(keys: list[bytes], after: bytes | None, n: int) -> list[tuple[bytes, bytes]]:
    return [(k, k) for k in keys if after is None or k > after][:n]


@given(st.lists(st.binary(min_size=1, max_size=8), unique=True, max_size=60).map(sorted),
       st.integers(1, 7), st.sampled_from([None, 2, 3]))
def test_following_next_cursor_visits_every_item_once(keys: list[bytes], limit: int, mod: int | None) -> None:
    def keep(k: bytes) -> bytes | None:
        return k if mod is None or k[0] % mod == 0 else None

    seen: list[bytes] = []
    cursor: str | None = None
    for _ in range(200):
        page = Page(None if cursor is None else decode_cursor(cursor), limit)
        if mod is None:
            items, cursor = page.answer(rows_after(keys, page.after, limit + 1))
        else:
            items, cursor = filtered_page(page, lambda a, n: rows_after(keys, a, n), keep, scan_budget=5)
        assert len(items) <= limit
        seen.extend(items)
        if cursor is None:
            break
    assert seen == [k for k in keys if keep(k) is not None]


def test_cursor_round_trip_and_junk() -> None:
    for raw in (b"\x00", b"acme", bytes(range(160))):
        assert decode_cursor(encode_cursor(raw)) == raw
    for junk in ("", "A", "!!", encode_cursor(b"x") + "=", encode_cursor(bytes(161))):
        assert decode_cursor(junk) is None


async def test_list_routes_answer_pages_and_refuse_bad_cursors(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path, n=1) as (nodes, _):
        app = build_app(NodeHttp(nodes[0]))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as c:
            r = (await c.get("/v1/orgs?limit=1")).json()
            assert [o["org_id"] for o in r["orgs"]] == ["acme"] and r["next_cursor"] is None
            r = (await c.get("/v1/orgs?cursor=" + encode_cursor(b"acme"))).json()
            assert r == {"orgs": [], "next_cursor": None}  # after the last member
            for url in ("/v1/orgs?limit=0", "/v1/orgs?limit=1001", "/v1/orgs?cursor=!!", "/v1/orgs?cursor=A",
                        "/v1/governance/proposals?limit=x", "/v1/orgs/acme/tickets?cursor=" + "A" * 300):
                r2 = await c.get(url)
                assert r2.status_code == 400 and r2.json()["error"]["code"] == "request.invalid", url
            for url in ("/v1/orgs/acme/tickets", "/v1/governance/proposals", "/v1/evidence"):
                assert (await c.get(url + "?limit=5")).json()["next_cursor"] is None
