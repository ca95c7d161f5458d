"""Every error is the JSON error shape with a stable code and the request id; every answer
carries X-Request-Id; a 500 is logged with the exception and the request id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from structlog.testing import capture_logs

from afterchain.node.http.app import build_app
from afterchain.node.http.middleware import request_id_of
from afterchain.node.http.service import NodeHttp

from ..node.util import memory_cluster


class Failing(NodeHttp):
    """A node whose status read fails (a bug the API must not leak)."""

    def status_json(self) -> dict[str, Any]:
        raise RuntimeError("secret internals")


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node")


def shape(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["code"] == code and err["message"]
    assert err["request_id"] == r.headers["x-request-id"]
    return err  # type: ignore[no-any-return]


async def test_unknown_routes_methods_and_bad_parameters_answer_json(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path, n=1) as (nodes, _):
        async with client(build_app(NodeHttp(nodes[0]))) as c:
            shape(await c.get("/v1/nope"), 404, "route.not_found")
            # a trailing slash (an encoded one too) is an unknown path, not a redirect
            shape(await c.get("/v1/status/"), 404, "route.not_found")
            shape(await c.get("/v1/escrows/%F1%BC%BF%96%7DMk%20%2F"), 404, "route.not_found")
            shape(await c.get("/v1/events"), 405, "method.not_allowed")
            r = await c.delete("/v1/status")
            shape(r, 405, "method.not_allowed")
            assert "GET" in r.headers["allow"]
            for url in ("/v1/blocks/abc", "/v1/blocks/-1", "/v1/blocks/1e3", "/v1/blocks/" + "9" * 25,
                        "/v1/blocks/18446744073709551616", "/v1/blocks/%D9%A1", "/v1/blocks/1?outcomes=yes",
                        "/v1/headers/abc", "/v1/headers?from=-1", "/v1/headers?to=x", "/v1/headers?changes=2",
                        "/v1/events/zz", "/v1/tickets/" + "0" * 63, "/v1/escrows/00", "/v1/accounts/xyz",
                        "/v1/balances/ACME", "/v1/balances/cust:zz", "/v1/orgs/Acme/quality", "/v1/orgs/acme%0A",
                        "/v1/orgs/acme/tickets?status=BAD", "/v1/products/123/SN1", "/v1/products/00012345600012/a%20b",
                        "/v1/evidence?validator=12", "/v1/proofs/state/abc", "/v1/proofs/state/" + "00" * 1025,
                        "/v1/proofs/quality/" + "a" * 65, "/v1/governance/proposals?status=maybe",
                        "/docs/assets/secrets.txt", "/docs/assets/..%2F..%2Fapp.py"):
                r = await c.get(url)
                if r.status_code == 404:  # an encoded slash is a path separator: no route matches
                    shape(r, 404, "route.not_found")
                else:
                    shape(r, 400, "request.invalid")
            # the largest height is a valid height (and there is no such block)
            shape(await c.get("/v1/blocks/18446744073709551615"), 404, "block.not_found")
            assert (await c.get("/v1/headers?from=1&to=18446744073709551615")).status_code == 200


async def test_request_ids_are_echoed_when_sane_and_made_otherwise(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path, n=1) as (nodes, _):
        async with client(build_app(NodeHttp(nodes[0]))) as c:
            r = await c.get("/v1/status", headers={"x-request-id": "erp-42.a:b_c"})
            assert r.status_code == 200 and r.headers["x-request-id"] == "erp-42.a:b_c"
            for bad in ("", "has space", "x" * 129, "naïve", "a\tb"):
                r = await c.get("/v1/nope", headers={"x-request-id": bad.encode()})
                rid = r.headers["x-request-id"]
                assert rid != bad and len(rid) == 32 and r.json()["error"]["request_id"] == rid
            ids = {(await c.get("/health")).headers["x-request-id"] for _ in range(5)}
            assert len(ids) == 5
    assert request_id_of("x" * 128) == "x" * 128 and request_id_of(None) != request_id_of(None)


async def test_a_failure_is_a_logged_json_500_that_leaks_nothing(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path, n=1) as (nodes, _):
        async with client(build_app(Failing(nodes[0]))) as c:
            with capture_logs() as logs:
                r = await c.get("/v1/status", headers={"x-request-id": "trace-500"})
            err = shape(r, 500, "internal")
            assert err["request_id"] == "trace-500" and "secret" not in r.text
            (entry,) = [e for e in logs if e["event"] == "http_internal_error"]
            assert entry["request_id"] == "trace-500" and entry["path"] == "/v1/status"
            assert isinstance(entry["exc_info"], RuntimeError) and entry["log_level"] == "error"
            # the node goes on answering
            assert (await c.get("/health")).headers["x-request-id"]
