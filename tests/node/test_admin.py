"""Admin routes: the fault switch over HTTP, loopback-or-token access, bad input refused."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from afterchain.node.http.admin import load_admin_token
from afterchain.node.http.app import build_app
from afterchain.node.http.service import NodeHttp

from .util import VALIDATORS, memory_cluster, product_event, wait_for

TOKEN = "s3cret-admin-token-0123456789"


def client(node, host: str = "127.0.0.1", token: str | None = None) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=build_app(NodeHttp(node, admin_token=token)), client=(host, 4242))
    return httpx.AsyncClient(transport=transport, base_url="http://node")


async def test_fault_switch_over_http_blocks_and_heals(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path) as (nodes, _):
        a = nodes[0]
        others = [v.public.hex() for v in VALIDATORS[1:]]
        async with client(a) as c:
            assert (await c.get("/v1/admin/faults")).json() == {"block": [], "drop_rate": 0.0}
            r = await c.post("/v1/admin/faults", json={"block": others})
            assert r.status_code == 200 and r.json()["block"] == sorted(others)
            assert a.transport.connected_peers() == set()
            for bad in ({"block": ["zz"]}, {"block": ["00" * 31]}, {"block": "x"}, {"drop_rate": 2}, {"nope": 1}, [], {},
                        {"drop_rate": True}):
                r = await c.post("/v1/admin/faults", json=bad)
                assert r.status_code == 400, (bad, r.text)
            r = await c.post("/v1/admin/faults", content=b"{", headers={"content-type": "application/json"})
            assert r.status_code == 400
            assert (await c.get("/v1/admin/faults")).json()["block"] == sorted(others)  # bad input changed nothing
            # the isolated node cannot commit; the others go on
            h = a.store.head
            ev = product_event(1)
            await nodes[1].submit([ev.encode()])
            await wait_for(lambda: all(n.event_status(ev.id) is not None and n.event_status(ev.id)["status"] == "committed"  # type: ignore[index]
                                       for n in nodes[1:]), timeout=30)
            assert a.store.head == h
            r = await c.post("/v1/admin/faults", json={"block": []})
            assert r.status_code == 200 and r.json()["block"] == []
            await wait_for(lambda: a.event_status(ev.id) is not None and a.event_status(ev.id)["status"] == "committed", timeout=30)  # type: ignore[index]


async def test_admin_needs_loopback_or_the_token(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path, n=4) as (nodes, _):
        async with client(nodes[0], host="10.9.8.7") as c:
            r = await c.get("/v1/admin/faults")
            assert r.status_code == 403 and r.json()["error"]["code"] == "admin.forbidden"
        for host in ("::1", "127.0.0.2", "::ffff:127.0.0.1"):
            async with client(nodes[0], host=host) as c:
                assert (await c.get("/v1/admin/faults")).status_code == 200, host
        for host in ("::ffff:10.0.0.1", "localhost.evil.example", "0.0.0.0"):
            async with client(nodes[0], host=host) as c:
                assert (await c.get("/v1/admin/faults")).status_code == 403, host
        async with client(nodes[0], host="10.9.8.7", token=TOKEN) as c:
            assert (await c.get("/v1/admin/faults")).status_code == 403
            assert (await c.get("/v1/admin/faults", headers={"authorization": "Bearer wrong"})).status_code == 403
            r = await c.post("/v1/admin/faults", json={"block": []}, headers={"authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 200
            assert (await c.get("/v1/status")).status_code == 200  # non-admin routes stay public


def test_admin_token_file_is_checked(tmp_path: Path) -> None:
    p = tmp_path / "admin.token"
    p.write_text(TOKEN + "\n")
    os.chmod(p, 0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        load_admin_token(p)
    os.chmod(p, 0o600)
    assert load_admin_token(p) == TOKEN
    assert load_admin_token(None) is None
    p.write_text("short")
    with pytest.raises(ValueError, match="16 characters"):
        load_admin_token(p)
    with pytest.raises(ValueError, match="cannot read"):
        load_admin_token(tmp_path / "missing")
