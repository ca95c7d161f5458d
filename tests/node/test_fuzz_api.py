"""Bad input, tried for real against a node's HTTP API: random bytes, malformed msgpack and
JSON, wrong types, huge and deeply nested values, mutated and replayed signed events. Each
gets a clear 4xx error with a code, the node keeps serving, and nothing changes. Every
route's path and query parameters, taken from the app's OpenAPI document, get junk too:
only 2xx/4xx answers, JSON where documented, never a 500.

Seeded (derandomized under CI=1); the number of inputs tried is printed with -s."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import msgpack
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from afterchain.node.http.app import build_app
from afterchain.node.http.openapi import openapi_document
from afterchain.node.http.service import NodeHttp
from afterchain.protocol.jsonform import to_json

from .util import asgi_head, memory_cluster, product_event, wait_for

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=25,
)
msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text(max_size=30)
    | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=25,
)
VALID = product_event(1)
VALID_JSON = to_json(VALID)


def mutate_json(doc: dict, path: list[str], value: object) -> dict:  # type: ignore[type-arg]
    out = json.loads(json.dumps(doc))
    cur = out
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return out


FIELDS = [["signature"], ["event", "chain_id"], ["event", "type"], ["event", "sender"], ["event", "nonce"],
          ["event", "time_ms"], ["event", "body"], ["event", "body", "gtin"], ["event", "body", "serial"],
          ["event", "body", "production_time_ms"]]

inputs = st.one_of(
    st.binary(max_size=300).map(lambda b: ("application/msgpack", b)),
    st.binary(max_size=300).map(lambda b: ("application/json", b)),
    json_values.map(lambda v: ("application/json", json.dumps(v).encode())),
    msgpack_values.map(lambda v: ("application/msgpack", msgpack.packb(v, use_bin_type=True))),
    st.tuples(st.sampled_from(FIELDS), json_values).map(
        lambda fv: ("application/json", json.dumps(mutate_json(VALID_JSON, fv[0], fv[1])).encode())),
    st.tuples(st.integers(0, len(VALID.encode()) - 1), st.integers(0, 255)).map(
        lambda iv: ("application/msgpack", VALID.encode()[: iv[0]] + bytes([iv[1]]) + VALID.encode()[iv[0] + 1:])),
    st.integers(1, 3000).map(lambda n: ("application/json", b"[" * n + b"]" * n)),
    st.integers(1, 3000).map(lambda n: ("application/msgpack", b"\x91" * n + b"\x00")),
)


async def test_fuzzed_requests_get_4xx_and_change_nothing(tmp_path: Path) -> None:
    tried = {"n": 0, "accepted": 0}
    async with memory_cluster(tmp_path) as (nodes, net):
        node = nodes[0]
        net.isolate(node.key.public)  # nothing commits: any accepted event would stay visible in the mempool
        app = build_app(NodeHttp(node))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as c:
            height = node.store.head
            cases: list[tuple[str, bytes]] = []

            @settings(max_examples=400, suppress_health_check=list(HealthCheck), deadline=None)
            @given(inputs)
            def collect(case: tuple[str, bytes]) -> None:
                cases.append(case)

            collect()
            for ctype, body in cases:
                r = await c.post("/v1/events", content=body, headers={"content-type": ctype})
                tried["n"] += 1
                if r.status_code == 202:
                    # only a byte-identical copy of a valid event may be accepted
                    assert body in (VALID.encode(),) or json.loads(body) == VALID_JSON
                    tried["accepted"] += 1
                    continue
                assert 400 <= r.status_code < 500, (r.status_code, body[:80])
                err = r.json()["error"]
                assert err["code"] and err["message"]
            # the node still serves, and the only thing in its mempool is the valid event
            assert (await c.get("/v1/status")).status_code == 200
            assert len(node.mempool) == (1 if tried["accepted"] else 0)
            assert node.store.head == height
            # a replay of the valid event is a harmless duplicate
            r = await c.post("/v1/events", content=VALID.encode(), headers={"content-type": "application/msgpack"})
            assert r.status_code == 202 and r.json()["results"][0]["status"] in ("accepted", "duplicate")
            await trio.sleep(0)
    print(f"fuzzed HTTP inputs tried: {tried['n']}")
    assert tried["n"] >= 300


param_values = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="0123456789abcdefABCDEF", min_size=0, max_size=140),
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["", "0", "-0", "+1", "1e3", "0x10", " 1", "1 ", "١٢", "..", "../..", "%00", "\x00", "\n", "null",
                     "true", "cust:", "cust:" + "ab" * 32, "acme", "ACME", "00012345600012", "SN000001", "9" * 5000,
                     "a" * 65, "00" * 1025, "\ud7ff", "😀" * 10]),
)


def route_requests(doc: dict[str, Any]) -> st.SearchStrategy[tuple[str, str, str]]:
    """(documented path, method, URL) with junk or example values for each parameter."""
    ops = [(path, method, op) for path, m in sorted(doc["paths"].items()) for method, op in sorted(m.items())
           if method == "get"]

    @st.composite
    def one(draw: st.DrawFn) -> tuple[str, str, str]:
        path, method, op = draw(st.sampled_from(ops))
        url = path
        query: dict[str, str] = {}
        for p in op["parameters"]:
            value = draw(st.just(p["example"]) | param_values) if "example" in p else draw(param_values)
            if p["in"] == "path":
                url = url.replace("{" + p["name"] + "}", quote(value, safe="") or "x")
            elif draw(st.booleans()):
                query[p["name"]] = value
        if draw(st.integers(0, 9)) == 0:
            query[draw(st.text(min_size=1, max_size=8))] = draw(param_values)
        return path, method, url + ("?" + urlencode(query) if query else "")

    return one()


async def test_fuzzed_route_parameters_get_2xx_or_4xx_json(tmp_path: Path) -> None:
    tried: dict[int, int] = {}
    async with memory_cluster(tmp_path) as (nodes, _):
        node = nodes[0]
        ev = product_event(1)
        await node.submit([ev.encode()])
        await wait_for(lambda: node.event_status(ev.id) is not None and node.event_status(ev.id)["status"] == "committed")  # type: ignore[index]
        app = build_app(NodeHttp(node))
        doc = openapi_document(app.routes)
        cases: list[tuple[str, str, str]] = []

        @settings(max_examples=300, suppress_health_check=list(HealthCheck), deadline=None, derandomize=True)
        @given(route_requests(doc))
        def collect(case: tuple[str, str, str]) -> None:
            cases.append(case)

        collect()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as c:
            for path, method, url in cases:
                if "text/event-stream" in doc["paths"][path][method]["responses"].get("200", {}).get("content", {}):
                    # a stream never ends by itself: look at how it starts, then hang up
                    status, headers, first = await asgi_head(app, url)
                    tried[status] = tried.get(status, 0) + 1
                    assert 200 <= status < 300 or 400 <= status < 500, (url, status, first[:200])
                    assert headers.get("x-request-id")
                    if status >= 400:
                        err = json.loads(first)["error"]
                        assert err["code"] and err["message"], url
                    else:
                        assert headers["content-type"].startswith("text/event-stream") and first, url
                    continue
                r = await c.request(method.upper(), url)
                tried[r.status_code] = tried.get(r.status_code, 0) + 1
                assert 200 <= r.status_code < 300 or 400 <= r.status_code < 500, (url, r.status_code, r.text[:200])
                assert r.headers.get("x-request-id")
                documented = doc["paths"][path][method]["responses"].get(str(r.status_code), {}).get("content", {})
                if r.status_code >= 400:
                    err = r.json()["error"]
                    assert err["code"] and err["message"], url
                elif "application/json" in documented:
                    r.json()
    print(f"fuzzed route requests by status: {dict(sorted(tried.items()))}")
    assert sum(tried.values()) >= 250 and tried.get(200, 0) > 0 and tried.get(400, 0) > 0
