"""`/v1/genesis` and CORS (issue 24): a company's web page may GET the read and proof routes
of a node from the browser; never writes, admin or metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from afterchain.node.http.app import build_app
from afterchain.node.http.service import NodeHttp
from afterchain.node.runtime.config import ConfigError, parse_config
from afterchain.protocol.genesis import Genesis

from ..node.util import memory_cluster

ORIGIN = "https://shop.example"
ACAO = "access-control-allow-origin"


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node")


async def test_genesis_route_serves_the_genesis_with_its_hash(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path, n=1) as (nodes, _):
        async with client(build_app(NodeHttp(nodes[0]))) as c:
            r = await c.get("/v1/genesis")
    assert r.status_code == 200
    doc = r.json()
    g = nodes[0].genesis
    assert doc["hash"] == g.hash().hex() and doc["chain_id"] == g.chain_id
    assert Genesis.decode(bytes.fromhex(doc["encoded"])) == g
    import hashlib
    assert hashlib.sha256(bytes.fromhex(doc["encoded"])).hexdigest() == doc["hash"]
    assert Genesis.from_json(__import__("json").dumps(doc["genesis"])).hash() == g.hash()


async def test_cors_on_reads_and_proofs_only(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path, n=1) as (nodes, _):
        async with client(build_app(NodeHttp(nodes[0]))) as c:
            hdr = {"origin": ORIGIN}
            for path in ("/v1/genesis", "/v1/status", "/v1/headers?from=1&to=1", "/v1/proofs/quality/acme",
                         "/v1/proofs/passports/00012345600012/S1"):
                r = await c.get(path, headers=hdr)
                assert r.headers.get(ACAO) == "*", path
                assert "x-request-id" in r.headers.get("access-control-expose-headers", "").lower()
            # a preflight for a GET is answered; for a POST (a write) it is not
            ok = await c.options("/v1/proofs/quality/acme", headers={**hdr, "access-control-request-method": "GET"})
            assert ok.status_code == 200 and ok.headers.get(ACAO) == "*"
            no = await c.options("/v1/events", headers={**hdr, "access-control-request-method": "POST",
                                                          "access-control-request-headers": "content-type"})
            assert ACAO not in no.headers
            # writes, admin and metrics never carry CORS headers
            w = await c.post("/v1/events", content=b"not an event", headers={**hdr, "content-type": "text/plain"})
            assert w.status_code == 400 and ACAO not in w.headers
            for path in ("/v1/admin/faults", "/metrics"):
                r = await c.get(path, headers=hdr)
                assert ACAO not in r.headers, path
            # no Origin: no CORS headers (a plain client)
            assert ACAO not in (await c.get("/v1/status")).headers


async def test_cors_origins_configurable(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path, n=1) as (nodes, _):
        async with client(build_app(NodeHttp(nodes[0]), cors_origins=(ORIGIN,))) as c:
            assert (await c.get("/v1/status", headers={"origin": ORIGIN})).headers.get(ACAO) == ORIGIN
            assert ACAO not in (await c.get("/v1/status", headers={"origin": "https://evil.example"})).headers
        async with client(build_app(NodeHttp(nodes[0]), cors_origins=())) as c:
            assert ACAO not in (await c.get("/v1/status", headers={"origin": ORIGIN})).headers


def _raw(**api: Any) -> dict[str, Any]:
    return {"node": {"name": "n", "data_dir": "d", "key_file": "k", "genesis_file": "g"}, "api": api}


def test_cors_config() -> None:
    assert parse_config(_raw(), base=Path("/tmp"), check_files=False).api.cors_origins == ("*",)
    cfg = parse_config(_raw(cors_origins=[ORIGIN]), base=Path("/tmp"), check_files=False)
    assert cfg.api.cors_origins == (ORIGIN,)
    assert parse_config(_raw(cors_origins=[]), base=Path("/tmp"), check_files=False).api.cors_origins == ()
    for bad in ("*", [ORIGIN + "/page"], ["shop.example"], [1]):
        with pytest.raises(ConfigError, match=r"api\.cors_origins"):
            parse_config(_raw(cors_origins=bad), base=Path("/tmp"), check_files=False)
