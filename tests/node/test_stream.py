"""GET /v1/stream over a real HTTP server (hypercorn on trio) in front of an in-memory
cluster: filters, resuming from a cursor with nothing missed and nothing repeated (also
across disconnects while events commit), the slow-consumer cut-off, the bounds and bad
parameters. The SDK's `AsyncClient.stream` is the client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from afterchain.node.client import AsyncClient, ClientError
from afterchain.node.http.app import build_app
from afterchain.node.http.service import NodeHttp
from afterchain.node.runtime.feed import EventFilter, SubscribeRefused
from afterchain.node.runtime.runner import Node
from afterchain.node.server import serve_api

from .util import ACME, GTIN, memory_cluster, product_event, wait_for

# Leaving a stream early (a resume test does it on purpose) abandons httpx's own response
# iterators mid-body; the connection is closed, but trio warns when the collector meets them.
pytestmark = pytest.mark.filterwarnings("ignore:Async generator 'http:ResourceWarning")


@asynccontextmanager
async def served(node: Node) -> AsyncIterator[str]:
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(serve_api, node, "127.0.0.1", 0)
        yield binds[0] if binds[0].startswith("http") else "http://" + binds[0]
        nursery.cancel_scope.cancel()


async def committed(node: Node, evs: list[Any]) -> None:
    """Until every event of `evs` is committed. Each poll starts at the first event not yet
    seen committed (a commit is final): re-reading all 30,000 events of the 60 s run at every
    poll took most of the process's CPU away from the nodes it waits for."""
    seen = 0

    def done() -> bool:
        nonlocal seen
        while seen < len(evs) and (node.event_status(evs[seen].id) or {}).get("status") == "committed":
            seen += 1
        return seen == len(evs)

    await wait_for(done, 60)


async def take(c: AsyncClient, n: int, **kw: Any) -> list[dict[str, Any]]:
    out = []
    with trio.fail_after(30):
        async with c.stream(**kw) as events:
            async for ev in events:
                out.append(ev)
                if len(out) == n:
                    break
    return out


async def test_filters_replay_and_resume_from_a_cursor(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path) as (nodes, _), served(nodes[0]) as url:
        node = nodes[0]
        evs = [product_event(n) for n in range(1, 7)]
        await node.submit([e.encode() for e in evs])
        await committed(node, evs)
        async with AsyncClient([url]) as c:
            got = await take(c, 6, from_height=1)
            assert [e["id"] for e in got] == [e.id.hex() for e in evs]  # chain order, all of them
            first = got[0]
            assert first["type"] == "product.register" and first["code"] == "ok" and first["orgs"] == ["acme"]
            assert first["gtin"] == GTIN and first["serial"] == "SN000001" and first["body"]["model"] == "M1"
            assert first["sender"] == ACME.public.hex() and first["cursor"] == f"{first['height']}-{first['index']}"
            # resume after the third: exactly the rest
            rest = await take(c, 3, cursor=got[2]["cursor"])
            assert [e["id"] for e in rest] == [e["id"] for e in got[3:]]
            # filters
            assert [e["serial"] for e in await take(c, 1, from_height=1, serial="SN000004")] == ["SN000004"]
            assert len(await take(c, 6, from_height=1, org="acme", types=["product.register", "ticket.open"])) == 6
            # nothing for another organisation or type: the next event after those is a new one of the filter
            later = product_event(7)

            async def submit_later() -> None:
                await trio.sleep(0.2)
                await node.submit([later.encode()])

            async with trio.open_nursery() as n:
                n.start_soon(submit_later)
                live = await take(c, 1, from_height=1, serial="SN000007")
            assert live[0]["id"] == later.id.hex()
            # the refused copy of an event is not delivered unless asked for (none here)
            assert all(e["code"] == "ok" for e in await take(c, 7, from_height=1, refused=True))


async def test_resume_during_a_run_receives_every_event_once(tmp_path: Path) -> None:
    await run_with_disconnects(tmp_path, seconds=4.0, rate=100, drop_every=37)


@pytest.mark.slow
async def test_resume_during_a_60s_run_at_500_events_per_s(tmp_path: Path) -> None:
    await run_with_disconnects(tmp_path, seconds=60.0, rate=500, drop_every=997)


async def run_with_disconnects(tmp_path: Path, *, seconds: float, rate: int, drop_every: int) -> None:
    """Events commit at `rate`/s for `seconds` while a subscriber (filter: serials of one
    batch) drops its connection every `drop_every` events and resumes from its last
    cursor; it gets each committed event of its filter exactly once, in order."""
    async with memory_cluster(tmp_path) as (nodes, _), served(nodes[0]) as url:
        node = nodes[0]
        total = int(seconds * rate)
        evs = [product_event(n, serial=f"R{n:07d}") for n in range(1, total + 1)]
        got: list[str] = []
        cursor: str | None = None
        done = trio.Event()

        async def produce() -> None:
            step = max(1, rate // 20)
            for i in range(0, total, step):
                await node.submit([e.encode() for e in evs[i:i + step]])
                await trio.sleep(step / rate)
            await committed(node, evs)
            done.set()

        async def consume() -> None:
            nonlocal cursor
            async with AsyncClient([url]) as c:
                while len(got) < total:
                    n = 0
                    async with c.stream(org="acme", types="product.register", cursor=cursor,
                                        from_height=1 if cursor is None else None) as events:
                        async for ev in events:
                            got.append(ev["id"])
                            cursor = ev["cursor"]
                            n += 1
                            if n == drop_every or len(got) == total:
                                break  # disconnect; the next round resumes after `cursor`

        with trio.fail_after(seconds * 3 + 60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(produce)
                nursery.start_soon(consume)
        assert done.is_set()
        assert len(got) == len(set(got)) == total
        assert got == [e.id.hex() for e in evs]  # the node's chain order is the order submitted here


async def test_a_slow_consumer_is_cut_off_with_a_reason_and_resumes(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path, stream_queue_events=5) as (nodes, _):
        node = nodes[0]
        sub = node.feed.subscribe(EventFilter(), None, "slow")
        frames = sub.frames(ping_s=60)
        assert await frames.__anext__() == b"retry: 1000\n\n"
        reader: list[bytes] = []

        async def first_live_frame() -> None:
            reader.append(await frames.__anext__())

        evs = [product_event(n) for n in range(1, 21)]
        async with trio.open_nursery() as n:
            n.start_soon(first_live_frame)  # registers for live blocks, then waits
            await wait_for(lambda: sub in node.feed._live)
            # an empty queue takes a whole block (10 events); the next block does not fit
            await node.submit([e.encode() for e in evs[:10]])
            await committed(node, evs[:10])
            await wait_for(lambda: reader)
            await node.submit([e.encode() for e in evs[10:]])
            await committed(node, evs)
        assert sub.cut is not None and sub.cut.code == "stream.too_slow"
        assert node.feed.stats()["cut_off"] == 1
        rest = [f async for f in frames]
        assert rest[-1].startswith(b"event: error\n")
        err = json.loads(rest[-1].split(b"data: ", 1)[1])
        assert err["code"] == "stream.too_slow" and err["cursor"]
        delivered = [f for f in reader + rest if f.startswith(b"id: ")]
        assert err["cursor"] == delivered[-1].split(b"\n", 1)[0][4:].decode()
        assert sub not in node.feed.subscribers
        # resuming from the cursor gives the rest, exactly once
        async with served(node) as url, AsyncClient([url]) as c:
            more = await take(c, 20 - len(delivered), cursor=err["cursor"])
        ids = [json.loads(f.split(b"data: ", 1)[1])["id"] for f in delivered] + [e["id"] for e in more]
        assert ids == [e.id.hex() for e in evs]


async def test_bad_parameters_and_bounds(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path, stream_max_subscribers=2, stream_max_per_client=1) as (nodes, _):
        node = nodes[0]
        app = build_app(NodeHttp(node))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as c:
            for q in ("type=nope", "type=ticket.open,", "cursor=abc", "cursor=1-2&from_height=3", "org=ACME",
                      "ticket=zz", "gtin=123", "from_height=-1", "refused=maybe"):
                r = await c.get("/v1/stream?" + q)
                assert r.status_code == 400 and r.json()["error"]["code"] == "request.invalid", q
            r = await c.get("/v1/stream", headers={"last-event-id": "x"})
            assert r.status_code == 400 and "Last-Event-ID" in r.json()["error"]["message"]
            a = node.feed.subscribe(EventFilter(), None, "127.0.0.1")  # the ASGI transport's client address
            r = await c.get("/v1/stream")
            assert r.status_code == 429 and r.json()["error"]["code"] == "stream.too_many" and r.headers["retry-after"]
            b = node.feed.subscribe(EventFilter(), None, "elsewhere")
            r = await c.get("/v1/stream")
            assert r.status_code == 503 and r.json()["error"]["code"] == "stream.busy"
            with pytest.raises(SubscribeRefused):
                node.feed.subscribe(EventFilter(), None, "third")
            a.close()
            b.close()
            assert not node.feed.subscribers and not node.feed._per_client
        async with served(node) as url, AsyncClient([url]) as c:
            with pytest.raises(ClientError) as bad:
                await take(c, 1, types="nope")
            assert bad.value.code == "request.invalid"


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_feed_figures_in_metrics(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path, n=1, stream_queue_events=1) as (nodes, _):
        node = nodes[0]
        text = node.metrics.render()[0].decode()
        assert metric(text, "afterchain_stream_subscribers") == 0 and metric(text, "afterchain_stream_cut_off_total") == 0
        a = node.feed.subscribe(EventFilter(), None, "a")
        b = node.feed.subscribe(EventFilter(), None, "b")
        node.feed._register(a)  # live, never read: the second block cuts it off
        text = node.metrics.render()[0].decode()
        assert metric(text, "afterchain_stream_subscribers") == 2 and metric(text, "afterchain_stream_live") == 1
        a._offer([((1, 0), b"x")])
        a._offer([((2, 0), b"y")])
        assert a.cut is not None
        text = node.metrics.render()[0].decode()
        assert metric(text, "afterchain_stream_subscribers") == 1 and metric(text, "afterchain_stream_live") == 0
        assert metric(text, "afterchain_stream_cut_off_total") == 1
        b.close()
        assert metric(node.metrics.render()[0].decode(), "afterchain_stream_subscribers") == 0


def test_stream_bounds_from_node_toml_and_the_environment(tmp_path: Path) -> None:
    from afterchain.node.common.keys import write_key
    from afterchain.node.runtime.config import ConfigError, load_config
    from afterchain.protocol.crypto import KeyPair

    write_key(tmp_path / "node.key", KeyPair.generate(), overwrite=True)
    (tmp_path / "genesis.json").write_text("{}")
    p = tmp_path / "node.toml"
    base = '[node]\nname = "n"\ndata_dir = "d"\nkey_file = "node.key"\ngenesis_file = "genesis.json"\n'
    p.write_text(base)
    api = load_config(p, env={}).api
    assert (api.stream_max_subscribers, api.stream_max_per_client, api.stream_queue_events) == (256, 16, 10_000)
    p.write_text(base + "[api]\nstream_max_subscribers = 1000\nstream_max_per_client = 50\nstream_queue_events = 500\n")
    api = load_config(p, env={"AFTERCHAIN_API_STREAM_QUEUE_EVENTS": "2000"}).api
    assert (api.stream_max_subscribers, api.stream_max_per_client, api.stream_queue_events) == (1000, 50, 2000)
    with pytest.raises(ConfigError, match=r"api.stream_queue_events: 0 is not in 1\.\.10000000"):
        load_config(p, env={"AFTERCHAIN_API_STREAM_QUEUE_EVENTS": "0"})
    with pytest.raises(ConfigError, match=r"api.stream_max_per_client: expected an integer.*AFTERCHAIN_API_STREAM_MAX"):
        load_config(p, env={"AFTERCHAIN_API_STREAM_MAX_PER_CLIENT": "many"})
