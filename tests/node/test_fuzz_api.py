"""Bad input, tried for real against a node's HTTP API: random bytes, malformed msgpack and
JSON, wrong types, huge and deeply nested values, mutated and replayed signed events. Each
gets a clear 4xx error with a code, the node keeps serving, and nothing changes.

Seeded (derandomized under CI=1); the number of inputs tried is printed with -s."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import msgpack
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from afterchain.node.http.app import build_app
from afterchain.node.http.service import NodeHttp
from afterchain.protocol.jsonform import to_json

from .util import memory_cluster, product_event

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
