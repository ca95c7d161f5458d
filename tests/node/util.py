"""Helpers for node tests: a small consortium, signed events, and N nodes in one trio process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from afterchain.node.runtime.runner import Node, NodeOptions
from afterchain.node.tools.genesis import MemberSpec, build_genesis
from afterchain.node.transport.memory import MemoryNetwork
from afterchain.protocol import bodies as B
from afterchain.protocol.crypto import KeyPair
from afterchain.protocol.events import Event, SignedEvent, sign_event
from afterchain.protocol.genesis import Genesis

CHAIN = "mem-chain"
T0 = 1_700_000_000_000
GTIN = "00012345600012"


def k(name: str) -> KeyPair:
    return KeyPair.from_seed(name.encode().ljust(32, b"\0")[:32])


VALIDATORS = [k(f"val{i}") for i in range(4)]
ACME = k("acme")


def genesis() -> Genesis:
    return build_genesis(
        chain_id=CHAIN, genesis_time_ms=T0, validators=[v.public for v in VALIDATORS],
        members=[MemberSpec("acme", "Acme", ("manufacturer",), (ACME.public,), 1000)],
    )


def product_event(nonce: int, *, key: KeyPair = ACME, chain: str = CHAIN, serial: str | None = None) -> SignedEvent:
    body = B.ProductRegister(gtin=GTIN, serial=serial or f"SN{nonce:06d}", model="M1", batch="B1", production_time_ms=T0)
    return sign_event(key, Event(chain_id=chain, type=body.EVENT_TYPE, sender=key.public, nonce=nonce, time_ms=T0, body=body))


async def wait_for(cond: Any, timeout: float = 20.0) -> None:
    with trio.fail_after(timeout):
        while not cond():
            await trio.sleep(0.02)


@asynccontextmanager
async def memory_cluster(tmp_path: Path, n: int = 4, **options: Any) -> AsyncIterator[tuple[list[Node], MemoryNetwork]]:
    g = genesis()
    net = MemoryNetwork()
    nodes = [
        Node(key=v, genesis=g, data_dir=tmp_path / f"n{i}", transport=net.add(v.public),
             options=NodeOptions(name=f"n{i}", tick_ms=20, **options))
        for i, v in enumerate(VALIDATORS[:n])
    ]
    async with trio.open_nursery() as nursery:
        for node in nodes:
            await nursery.start(node.run)
        yield nodes, net
        nursery.cancel_scope.cancel()


async def asgi_head(app: Any, url: str) -> tuple[int, dict[str, str], bytes]:
    """GET `url` from an ASGI `app` and hang up once the answer has started: (status,
    headers, first body chunk). For streams, which httpx's ASGI transport would read forever."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": parts.path, "raw_path": parts.path.encode(), "root_path": "",
             "query_string": parts.query.encode(), "headers": [(b"host", b"node")], "client": ("127.0.0.1", 1),
             "server": ("node", 80)}
    got: dict[str, Any] = {"body": b""}
    started = trio.Event()
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await started.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            got["status"] = message["status"]
            got["headers"] = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            if not got["body"]:
                got["body"] = message.get("body", b"")
            if got["body"] or not message.get("more_body", False):
                started.set()

    with trio.fail_after(10):
        await app(scope, receive, send)
    return got["status"], got["headers"], got["body"]
