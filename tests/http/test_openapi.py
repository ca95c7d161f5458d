"""/openapi.json: a valid OpenAPI 3.1 document that lists exactly the routes the app serves,
whose schemas accept what a live in-memory node answers and what the protocol encodes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from starlette.routing import Route

from afterchain.node.http.app import build_app
from afterchain.node.http.openapi import openapi_document
from afterchain.node.http.service import NodeHttp
from afterchain.node.http.writes import example_event
from afterchain.protocol.bodies import NodeRegister
from afterchain.protocol.events import Event, SignedEvent, sign_event
from afterchain.protocol.jsonform import to_json
from afterchain.protocol.types import PublicKey

from ..node.util import ACME, GTIN, asgi_head, memory_cluster, product_event, wait_for
from ..strategies import events

ROOT = Path(__file__).resolve().parents[2]


def served(app: Any) -> set[tuple[str, str]]:
    return {(r.path, m.lower()) for r in app.routes if isinstance(r, Route) for m in (r.methods or ()) if m != "HEAD"}


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(p, m) for p, ops in doc["paths"].items() for m in ops}


def validator(doc: dict[str, Any], schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    """A validator of `schema` whose ``#/components/...`` references resolve in `doc`."""
    return jsonschema.Draft202012Validator({**schema, "components": doc["components"]})


def check_answer(doc: dict[str, Any], path: str, method: str, r: httpx.Response) -> None:
    """`r` is one of the operation's documented answers and its body validates."""
    op = doc["paths"][path][method]
    assert str(r.status_code) in op["responses"], (path, method, r.status_code, r.text[:200])
    spec = op["responses"][str(r.status_code)]
    assert r.headers.get("x-request-id")
    content = spec.get("content", {})
    if "application/json" in content:
        assert r.headers["content-type"].startswith("application/json"), (path, r.headers["content-type"])
        validator(doc, content["application/json"]["schema"]).validate(r.json())


async def test_the_document_is_valid_openapi_and_lists_every_route(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path, n=1) as (nodes, _):
        app = build_app(NodeHttp(nodes[0]))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as c:
            r = await c.get("/openapi.json")
            assert r.status_code == 200
            doc = r.json()
            validate(doc)  # the OpenAPI 3.1 schema (openapi-spec-validator)
            assert doc["openapi"].startswith("3.1")
            assert documented(doc) == served(app)
            # every documented path and method is served: no 404/405 from the router
            for path, method in sorted(documented(doc)):
                op = doc["paths"][path][method]
                url = path
                for p in op["parameters"]:
                    if p["in"] == "path":
                        url = url.replace("{" + p["name"] + "}", p["example"])
                if "text/event-stream" in op["responses"].get("200", {}).get("content", {}):
                    assert (await asgi_head(app, url))[0] == 200, url  # a stream: its start, then hang up
                    continue
                sent = await c.request(method.upper(), url, json={} if method == "post" else None)
                if sent.status_code in (404, 405):
                    assert sent.json()["error"]["code"] not in ("route.not_found", "method.not_allowed"), (method, url)
            # every schema the document names exists, and each is a valid 2020-12 schema
            text = json.dumps(doc)
            for name in set(re.findall(r'"#/components/schemas/([A-Za-z0-9]+)"', text)):
                assert name in doc["components"]["schemas"], name
            for schema in doc["components"]["schemas"].values():
                jsonschema.Draft202012Validator.check_schema(schema)
            # the examples validate against their schemas
            for ops in doc["paths"].values():
                for op in ops.values():
                    for spec in op.get("requestBody", {}).get("content", {}).values():
                        if "example" in spec:
                            validator(doc, spec["schema"]).validate(spec["example"])
            assert to_json(example_event()) == doc["paths"]["/v1/events"]["post"]["requestBody"]["content"][
                "application/json"]["example"]


def test_an_undocumented_route_is_an_error() -> None:
    async def plain(request: Any) -> Any:
        raise AssertionError

    with pytest.raises(TypeError, match="no documentation"):
        openapi_document([Route("/v1/secret", plain)])


def _doc() -> dict[str, Any]:
    from starlette.applications import Starlette

    from afterchain.node.http.reference import reference_routes
    app = Starlette()
    app.router.routes.extend(reference_routes(lambda: app.routes))
    return openapi_document(app.routes)


DOC = _doc()


@settings(max_examples=150, suppress_health_check=list(HealthCheck), deadline=None, derandomize=True)
@given(events())
def test_event_schemas_accept_every_event_the_protocol_encodes(event: Event) -> None:
    """The schemas generated from the protocol's classes accept the JSON form of any valid
    event (each body type), signed or not."""
    signed = SignedEvent(event=event, signature=b"\x01" * 64)  # type: ignore[arg-type]
    validator(DOC, {"$ref": "#/components/schemas/SignedEvent"}).validate(to_json(signed))


def test_event_schemas_refuse_what_from_json_refuses() -> None:
    good = to_json(example_event())
    v = validator(DOC, {"$ref": "#/components/schemas/SignedEvent"})
    v.validate(good)
    for path, value in ((("signature",), "zz"), (("event", "nonce"), -1), (("event", "type"), "ticket.nope"),
                        (("event", "body", "gtin"), 12), (("event", "sender"), "ab")):
        bad = json.loads(json.dumps(good))
        cur = bad
        for p in path[:-1]:
            cur = cur[p]
        cur[path[-1]] = value
        assert not v.is_valid(bad), path
    bad = json.loads(json.dumps(good))
    bad["event"]["body"]["extra"] = 1
    assert not v.is_valid(bad)
    del bad["event"]["body"]["extra"]
    del bad["event"]["body"]["model"]
    assert not v.is_valid(bad)


async def test_live_answers_validate_against_their_schemas(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path) as (nodes, _):
        app = build_app(NodeHttp(nodes[0]))
        doc = openapi_document(app.routes)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as c:
            ev = product_event(1)
            r = await c.post("/v1/events", json=to_json(ev))
            check_answer(doc, "/v1/events", "post", r)
            check_answer(doc, "/v1/events", "post", await c.post("/v1/events", content=b"{", headers={"content-type": "application/json"}))
            await wait_for(lambda: nodes[0].event_status(ev.id) is not None and nodes[0].event_status(ev.id)["status"] == "committed")  # type: ignore[index]
            height = nodes[0].event_status(ev.id)["height"]  # type: ignore[index]
            key = ACME.public.hex()
            node_key = PublicKey(bytes(range(32)))
            reg = sign_event(ACME, Event(chain_id=ev.event.chain_id, type="node.register", sender=ACME.public, nonce=2,
                                         time_ms=ev.event.time_ms, body=NodeRegister(keys=(node_key,))))
            check_answer(doc, "/v1/events", "post", await c.post("/v1/events", json=to_json(reg)))
            await wait_for(lambda: (nodes[0].event_status(reg.id) or {}).get("status") == "committed")
            listed = (await c.get("/v1/nodes")).json()
            assert listed["truncated"] is False and [(n["key"], n["org"]) for n in listed["nodes"]] == [(node_key.hex(), "acme")]
            assert (await c.get("/v1/orgs/acme/nodes")).json()["nodes"] == listed["nodes"]
            assert (await c.get("/v1/orgs/nobody/nodes")).json() == {"org": "nobody", "nodes": []}
            gets = [
                ("/v1/events/{event_id}", f"/v1/events/{ev.id.hex()}"),
                ("/v1/events/{event_id}", "/v1/events/" + "00" * 32),
                ("/v1/events/{event_id}", "/v1/events/zz"),
                ("/v1/blocks/{height}", f"/v1/blocks/{height}"),
                ("/v1/blocks/{height}", f"/v1/blocks/{height}?outcomes=1"),
                ("/v1/blocks/{height}", "/v1/blocks/99999"),
                ("/v1/tickets/{ticket_id}", "/v1/tickets/" + "00" * 32),
                ("/v1/products/{gtin}/{serial}", f"/v1/products/{GTIN}/SN000001"),
                ("/v1/products/{gtin}/{serial}", f"/v1/products/{GTIN}/NOPE"),
                ("/v1/products/{gtin}/{serial}/history", f"/v1/products/{GTIN}/SN000001/history"),
                ("/v1/orgs/{org}/quality", "/v1/orgs/acme/quality"),
                ("/v1/orgs/{org}/tickets", "/v1/orgs/acme/tickets?status=opened"),
                ("/v1/customers/{key}/tickets", f"/v1/customers/{key}/tickets"),
                ("/v1/accounts/{key}", f"/v1/accounts/{key}"),
                ("/v1/escrows/{escrow_id}", "/v1/escrows/" + "00" * 32),
                ("/v1/balances/{account}", "/v1/balances/acme"),
                ("/v1/balances/{account}", "/v1/balances/cust:" + "ab" * 32),
                ("/v1/orgs", "/v1/orgs"),
                ("/v1/nodes", "/v1/nodes"),
                ("/v1/orgs/{org}/nodes", "/v1/orgs/acme/nodes"),
                ("/v1/orgs/{org}/nodes", "/v1/orgs/nobody/nodes"),
                ("/v1/orgs/{org}/nodes", "/v1/orgs/No%20Body/nodes"),
                ("/v1/orgs/{org}", "/v1/orgs/acme"),
                ("/v1/orgs/{org}", "/v1/orgs/nobody"),
                ("/v1/evidence", "/v1/evidence"),
                ("/v1/evidence", f"/v1/evidence?validator={key}"),
                ("/v1/status", "/v1/status"),
                ("/health", "/health"),
                ("/livez", "/livez"),
                ("/readyz", "/readyz"),
                ("/metrics", "/metrics"),
                ("/v1/governance/proposals", "/v1/governance/proposals"),
                ("/v1/governance/proposals", "/v1/governance/proposals?status=open"),
                ("/v1/governance/proposals/{proposal_id}", "/v1/governance/proposals/" + "00" * 32),
                ("/v1/validators", "/v1/validators"),
                ("/v1/params", "/v1/params"),
                ("/v1/proofs/tickets/{id}", "/v1/proofs/tickets/" + "00" * 32),
                ("/v1/proofs/products/{gtin}/{serial}", f"/v1/proofs/products/{GTIN}/SN000001"),
                ("/v1/proofs/quality/{org}", "/v1/proofs/quality/acme"),
                ("/v1/proofs/state/{key}", "/v1/proofs/state/" + (b"acct/" + ACME.public).hex()),
                ("/v1/headers/{height}", f"/v1/headers/{height}"),
                ("/v1/headers/{height}", "/v1/headers/0"),
                ("/v1/headers", "/v1/headers?from=1&to=3"),
                ("/v1/headers", "/v1/headers?changes=1"),
                ("/v1/admin/faults", "/v1/admin/faults"),
                ("/v1/admin/log", "/v1/admin/log"),
                ("/openapi.json", "/openapi.json"),
                ("/docs", "/docs"),
                ("/", "/"),
            ]
            for path, url in gets:
                check_answer(doc, path, "get", await c.get(url))
            r = await c.get(f"/v1/products/{GTIN}/SN000001")
            assert r.status_code == 200 and r.json()["gtin"] == GTIN
            check_answer(doc, "/v1/admin/faults", "post", await c.post("/v1/admin/faults", json={"block": []}))
            check_answer(doc, "/v1/admin/faults", "post", await c.post("/v1/admin/faults", json={"nope": 1}))
            check_answer(doc, "/v1/admin/log", "post", await c.post("/v1/admin/log", json={"level": "info",
                                                                                           "logger": "openapi.test"}))
            check_answer(doc, "/v1/admin/log", "post", await c.post("/v1/admin/log", json={"level": "loud"}))
            # a refused submission: the error shape with the results
            stranger = sign_event(ACME, Event(chain_id="other", type=ev.event.type, sender=ACME.public, nonce=5,
                                              time_ms=ev.event.time_ms, body=ev.event.body))
            check_answer(doc, "/v1/events", "post", await c.post("/v1/events", json=to_json(stranger)))
