"""Product passports (issue 24): the history hash chain, the passport route and its light
verification, against an honest node and a malicious one (`tests.light.chain`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack
import pytest

from afterchain.node.client.light.client import LightClient
from afterchain.node.client.light.passport import passport_lines, passport_view
from afterchain.protocol import bodies as B
from afterchain.protocol import state_keys as K
from afterchain.protocol.light import LightError, Reason
from afterchain.protocol.passport import (
    HISTORY_PAGE,
    HISTORY_ZERO,
    history_head,
    history_link,
    passport_keys,
    unpack_value,
    verify_history,
)
from tests.ledger.world import GTIN, h

from .chain import BASE, NOW_MS, FakeChain

Doc = dict[str, Any]
TRACES = HISTORY_PAGE + 5
"""Trace records on S1: with register, 2 transfers, warranty and a ticket, two pages + hist."""


@pytest.fixture(scope="module")
def chain() -> FakeChain:
    c = FakeChain()
    c.tid = c.with_ticket()  # type: ignore[attr-defined]
    for i in range(TRACES):
        c.world.ok("fixit", B.TraceRecord(gtin=GTIN, serial="S1", biz_step="inspecting", disposition="in_progress",
                                          location_hash=h(f"loc{i}"), ref_hash=None))
    c.world.product("S2")
    c.step()
    return c


def client(c: FakeChain, forge: Callable[[str, Doc], Doc] | None = None) -> LightClient:
    return LightClient(BASE, c.trust(), http=c.http(forge), now_ms=lambda: NOW_MS)


def product(c: FakeChain, serial: str = "S1") -> dict[str, Any]:
    return unpack_value(c.ledger.state_value(K.product(K.product_id(GTIN, serial))))  # type: ignore[no-any-return]


def test_history_head_commits_to_every_entry_in_order(chain: FakeChain) -> None:
    p = product(chain)
    full = chain.ledger.product_history(GTIN, "S1")
    assert p["pages"] == 1 and len(full) == HISTORY_PAGE + len(p["hist"]) and len(full) == 5 + TRACES
    assert p["hh"] == history_head(full) != HISTORY_ZERO
    # the chain is SHA-256(head || msgpack(entry)), oldest first
    import hashlib
    head = HISTORY_ZERO
    for e in full:
        head = hashlib.sha256(head + msgpack.packb(e, use_bin_type=True)).digest()
    assert head == p["hh"] == history_link(history_head(full[:-1]), full[-1])
    pages = [full[:HISTORY_PAGE]]
    assert verify_history(p, pages) == full
    swapped = [list(full[1]), list(full[0]), *full[2:HISTORY_PAGE]]
    with pytest.raises(LightError) as ei:
        verify_history(p, [swapped])
    assert ei.value.reason == Reason.HISTORY_MISMATCH
    with pytest.raises(LightError):
        verify_history(p, [])  # a page left out
    with pytest.raises(LightError):
        verify_history({**p, "hist": p["hist"][:-1]}, pages)  # the newest entry left out


def test_passport_verifies_and_reads_for_people(chain: FakeChain) -> None:
    with client(chain) as lc:
        values, v = lc.passport(GTIN, "S1")
    assert v.downloads == 1 and v.height == chain.store.head
    keys = list(values)
    assert keys == passport_keys(GTIN, "S1", values.get)
    view = passport_view(GTIN, "S1", values)
    assert view["maker"] == "acme" and view["model"] == "Kettle 2000" and view["batch"] == "B1"
    assert view["owner"] == "a customer" and view["seller"] == "shop" and view["sold"] is not None
    assert view["warranty"]["service_org"] == "fixit" and view["warranty"]["end_ms"] > view["warranty"]["start_ms"]
    assert view["recall"] is None and view["history_complete"] and view["history_entries"] == 5 + TRACES
    assert [t["status"] for t in view["tickets"]] == ["acknowledged"]
    assert view["tickets"][0]["ticket_id"] == chain.tid.hex()  # type: ignore[attr-defined]
    q = view["quality"]["fixit"]
    assert q["tickets"] == 1 and q["median_first_response_ms"] is not None
    text = "\n".join(passport_lines(view))
    assert "cust:" not in text and "a customer" in text and "hash chain verified" in text
    assert "RECALLED" not in text and "(exact)" in text


def test_unregistered_product_is_proven_absent(chain: FakeChain) -> None:
    with client(chain) as lc:
        values, v = lc.passport(GTIN, "NOPE")
    assert list(values.values()) == [None] and v.value is None
    assert not passport_view(GTIN, "NOPE", values)["exists"]


def test_recall_shows_in_passport() -> None:
    c = FakeChain()
    c.world.product("S9", batch="B9")
    c.world.ok("acme", B.ProductRecall(gtin=GTIN, batch="B9", reason_hash=h("fire")))
    c.step()
    with client(c) as lc:
        values, _ = lc.passport(GTIN, "S9")
    view = passport_view(GTIN, "S9", values)
    assert view["recall"] is not None and view["recall"]["by"] == "acme"
    assert "RECALLED by acme" in "\n".join(passport_lines(view))


def _entries(doc: Doc) -> list[Doc]:
    return list(doc["entries"])


def refused(c: FakeChain, forge: Callable[[str, Doc], Doc], reason: Reason) -> None:
    with client(c, forge) as lc, pytest.raises(LightError) as ei:
        lc.passport(GTIN, "S1")
    assert ei.value.reason == reason, ei.value


def test_left_out_page_is_refused(chain: FakeChain) -> None:
    page = K.product_page(K.product_id(GTIN, "S1"), 0).hex()
    refused(chain, lambda p, d: {**d, "entries": [e for e in _entries(d) if e["key"] != page]}, Reason.INCOMPLETE)


def test_left_out_ticket_or_quality_is_refused(chain: FakeChain) -> None:
    tkey = K.ticket(chain.tid).hex()  # type: ignore[attr-defined]
    refused(chain, lambda p, d: {**d, "entries": [e for e in _entries(d) if e["key"] != tkey]}, Reason.INCOMPLETE)
    qkey = K.quality("fixit").hex()
    refused(chain, lambda p, d: {**d, "entries": [e for e in _entries(d) if e["key"] != qkey]}, Reason.INCOMPLETE)


def test_added_or_repeated_key_is_refused(chain: FakeChain) -> None:
    refused(chain, lambda p, d: {**d, "entries": [*_entries(d), _entries(d)[-1]]}, Reason.INCOMPLETE)
    other = chain.http().get(BASE + f"/v1/proofs/passports/{GTIN}/S2").json()["entries"][0]
    refused(chain, lambda p, d: {**d, "entries": [*_entries(d), other]}, Reason.INCOMPLETE)


def test_changed_ticket_status_is_refused(chain: FakeChain) -> None:
    tkey = K.ticket(chain.tid).hex()  # type: ignore[attr-defined]

    def forge(path: str, doc: Doc) -> Doc:
        out = []
        for e in _entries(doc):
            if e["key"] == tkey:
                t = unpack_value(bytes.fromhex(e["value"]))
                t["status"] = "closed"
                e = {**e, "value": msgpack.packb(t, use_bin_type=True).hex()}
            out.append(e)
        return {**doc, "entries": out}

    refused(chain, forge, Reason.VALUE_TAMPERED)


def test_recall_hidden_by_an_absence_claim_is_refused() -> None:
    c = FakeChain()
    c.world.product("S1", batch="B9")
    c.world.ok("acme", B.ProductRecall(gtin=GTIN, batch="B9", reason_hash=h("fire")))
    c.step()
    rkey = K.recall(GTIN, "B9").hex()

    def forge(path: str, doc: Doc) -> Doc:
        return {**doc, "entries": [{**e, "value": None} if e["key"] == rkey else e for e in _entries(doc)]}

    refused(c, forge, Reason.ABSENCE_FORGED)


def test_passport_route_is_one_header_and_bounded(chain: FakeChain) -> None:
    doc = chain.http().get(BASE + f"/v1/proofs/passports/{GTIN}/S1").json()
    assert set(doc) == {"state_height", "state_root", "height", "header", "certificate", "next_validators", "entries"}
    keys = [bytes.fromhex(e["key"]) for e in doc["entries"]]
    pid = K.product_id(GTIN, "S1")
    assert keys[0] == K.product(pid) and keys[1] == K.product_page(pid, 0)
    assert K.recall(GTIN, "B1") in keys and K.quality("fixit") in keys and K.ticket(chain.tid) in keys  # type: ignore[attr-defined]
    bad = chain.http().get(BASE + "/v1/proofs/passports/123/S1")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "request.invalid"


def test_ticket_history_entry_names_the_ticket(chain: FakeChain) -> None:
    full = chain.ledger.product_history(GTIN, "S1")
    assert [e[2] for e in full if e[0] == "ticket"] == [chain.tid]  # type: ignore[attr-defined]
