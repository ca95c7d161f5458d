"""The HTTP API against a real in-process node (4 validators over the memory transport)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from afterchain.node.http.app import build_app
from afterchain.node.http.service import NodeHttp
from afterchain.node.http.writes import _outcome_json, results_json
from afterchain.node.runtime.mempool import AddOutcome
from afterchain.protocol.events import SignedEvent
from afterchain.protocol.jsonform import to_json

from .util import ACME, VALIDATORS, k, memory_cluster, product_event, wait_for


def client(node) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(NodeHttp(node))), base_url="http://node")


async def test_submit_read_and_errors(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path) as (nodes, _):
        async with client(nodes[0]) as c:
            ev = product_event(1)
            # JSON form of one signed event
            r = await c.post("/v1/events", json=to_json(ev))
            assert r.status_code == 202, r.text
            assert r.json()["results"] == [{"id": ev.id.hex(), "status": "accepted"}]
            # the same again: a duplicate, still 202
            r = await c.post("/v1/events", content=ev.encode(), headers={"content-type": "application/msgpack"})
            assert r.status_code == 202 and r.json()["results"][0]["status"] == "duplicate"
            await wait_for(lambda: nodes[0].event_status(ev.id)["status"] == "committed")  # type: ignore[index]
            r = await c.get(f"/v1/events/{ev.id.hex()}")
            st = r.json()
            assert st["status"] == "committed" and st["height"] >= 1
            blk = (await c.get(f"/v1/blocks/{st['height']}")).json()
            assert ev.id.hex() in blk["event_ids"]
            assert len(blk["certificate"]["signatures"]) >= 3
            assert "outcomes" not in blk  # only on request: one store read per event
            blk2 = (await c.get(f"/v1/blocks/{st['height']}?outcomes=1")).json()
            assert blk2["outcomes"][blk2["event_ids"].index(ev.id.hex())] == "ok"
            # a batch over msgpack
            batch = [product_event(n) for n in (2, 3)]
            r = await c.post("/v1/events", content=msgpack.packb([e.encode() for e in batch]),
                             headers={"content-type": "application/msgpack"})
            assert r.status_code == 202 and [x["status"] for x in r.json()["results"]] == ["accepted", "accepted"]
            # a replayed nonce (1 is committed) with different content
            r = await c.post("/v1/events", json=to_json(product_event(1, serial="OTHER")))
            assert r.status_code == 409 and r.json()["error"]["code"] == "nonce.replayed"
            # bad signature
            forged = SignedEvent(event=product_event(9).event, signature=product_event(8).signature)
            r = await c.post("/v1/events", json=to_json(forged))
            assert r.status_code == 400 and r.json()["error"]["code"] == "signature.invalid"
            # wrong chain
            r = await c.post("/v1/events", json=to_json(product_event(9, chain="other-chain")))
            assert r.status_code == 400 and r.json()["error"]["code"] == "chain.wrong_id"
            # malformed bodies
            r = await c.post("/v1/events", content=b"\xc1", headers={"content-type": "application/msgpack"})
            assert r.status_code == 400 and r.json()["error"]["code"] == "decode.malformed"
            r = await c.post("/v1/events", content=b"{not json", headers={"content-type": "application/json"})
            assert r.status_code == 400 and r.json()["error"]["code"] == "decode.malformed"
            bad = to_json(product_event(9))
            bad["event"]["type"] = "ticket.nope"
            r = await c.post("/v1/events", content=json.dumps(bad), headers={"content-type": "application/json"})
            assert r.status_code == 400 and r.json()["error"]["code"] == "event.unknown_type"
            r = await c.post("/v1/events", content=b"x" * (9 * 1024 * 1024), headers={"content-type": "application/msgpack"})
            assert r.status_code == 413 and r.json()["error"]["code"] == "request.too_large"
            r = await c.post("/v1/events", content=b"hi", headers={"content-type": "text/plain"})
            assert r.status_code == 400 and r.json()["error"]["code"] == "request.content_type"
            # a member-only event from a stranger: the ledger's pre-check refuses it
            r = await c.post("/v1/events", json=to_json(product_event(1, key=k("stranger"))))
            assert r.status_code == 422, r.text
            # reads
            assert (await c.get("/v1/blocks/99999")).status_code == 404
            assert (await c.get("/v1/events/zz")).status_code == 400
            assert (await c.get("/v1/events/" + "00" * 32)).status_code == 404
            assert (await c.get("/v1/tickets/" + "00" * 32)).status_code == 404
            r = await c.get(f"/v1/accounts/{ACME.public.hex()}")
            assert r.json()["nonce"] >= 1 and r.json()["next_nonce"] >= 4
            st = (await c.get("/v1/status")).json()
            assert st["chain_id"] == "mem-chain" and st["validators"][0] == VALIDATORS[0].public.hex()
            assert (await c.get("/health")).status_code == 200
            metrics = (await c.get("/metrics")).text
            assert "afterchain_height" in metrics and "afterchain_events_committed_total" in metrics
            assert "<title>afterchain node</title>" in (await c.get("/")).text


async def test_quota_answers_429_with_retry_after(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path, per_sender_quota=2) as (nodes, net):
        net.isolate(VALIDATORS[0].public)  # no commits: the mempool keeps what it accepts
        async with client(nodes[0]) as c:
            r = await c.post("/v1/events", content=msgpack.packb([product_event(n).encode() for n in (1, 2, 3)]),
                             headers={"content-type": "application/msgpack"})
            assert r.status_code == 202
            assert [x["status"] for x in r.json()["results"]] == ["accepted", "accepted", "rejected"]
            assert r.json()["results"][2]["code"] == "mempool.quota"
            r = await c.post("/v1/events", json=to_json(product_event(4)))
            assert r.status_code == 429 and r.headers["retry-after"] == "1"
            assert r.json()["error"]["code"] == "mempool.quota"


async def test_full_mempool_answers_503_with_retry_after(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path, max_events=2) as (nodes, net):
        net.isolate(VALIDATORS[0].public)
        async with client(nodes[0]) as c:
            r = await c.post("/v1/events", content=msgpack.packb([product_event(n).encode() for n in (1, 2)]),
                             headers={"content-type": "application/msgpack"})
            assert r.status_code == 202
            r = await c.post("/v1/events", json=to_json(product_event(3)))
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            assert r.json()["error"]["code"] == "mempool.full"
            assert nodes[0].event_status(product_event(3).id) is None  # nothing changed


@settings(max_examples=200)
@given(outcomes=st.lists(st.builds(
    AddOutcome,
    event_id=st.none() | st.binary(min_size=32, max_size=32),
    status=st.sampled_from(["accepted", "duplicate", "rejected"]),
    code=st.sampled_from(["", "nonce.replayed", "mempool.full"]) | st.text(max_size=12),
    message=st.text(max_size=40),
), max_size=20))
def test_results_json_is_the_json_of_each_outcome(outcomes: list[AddOutcome]) -> None:
    """The submit answer's formatted-by-hand results array parses to what `json.dumps` of the
    outcome dicts gives (quotes, backslashes, control characters and non-ASCII in messages)."""
    assert json.loads(results_json(outcomes)) == [_outcome_json(o) for o in outcomes]
