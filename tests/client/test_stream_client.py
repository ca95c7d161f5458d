"""`Client.stream` (and `AsyncClient.stream`, through the `make` flavours) against the real
cluster over HTTP: the filter, replay from a height, resuming from a cursor after the
caller disconnects, the live switch, and the client's own resume when a node ends the
stream: every event of the filter once, in chain order."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from typing import Any

import trio

from afterchain.node.client import Client
from afterchain.node.tools.demo import gtin14
from afterchain.protocol.events import SignedEvent

from .cluster import Cluster
from .flavours import Flavour

NOISE_GTIN = "00012345600012"


def take(events: Iterator[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    out = []
    for ev in events:
        out.append(ev)
        if len(out) == n:
            break
    return out


def registrations(c: Client, gtin: str, prefix: str, n: int, start: int = 0) -> list[SignedEvent]:
    return [c.build.product_register(gtin=gtin, serial=f"{prefix}{i:03d}", model="M", batch="STREAM",
                                     production_time_ms=0) for i in range(start, start + n)]


def commit(c: Client, evs: list[SignedEvent]) -> list[Any]:
    assert all(s.status == "accepted" for s in c.submit(evs))
    outs = c.wait_all([e.id for e in evs], timeout_s=30)
    assert all(o.committed for o in outs), outs
    return outs


def end_streams_on_every_node(cluster: Cluster) -> int:
    """Ends every open subscription (as a node that closes the stream does); how many."""
    assert cluster._token is not None

    def end() -> int:
        subs = [s for n in cluster.nodes for s in list(n.feed.subscribers)]
        for s in subs:
            s.close()
        return len(subs)

    return trio.from_thread.run_sync(end, trio_token=cluster._token)  # type: ignore[no-any-return]


def test_stream_filters_resumes_from_a_cursor_and_after_the_node_ends_it(cluster: Cluster, make: Flavour) -> None:
    t = make.tag
    gtin = gtin14("09506000" + {"": "77001", "T": "77002", "A": "77003"}[t])  # this flavour's own products
    with make(cluster.urls, key=cluster.key_file("acme")) as c:
        mine = registrations(c, gtin, f"{t}ST", 6)
        noise = registrations(c, NOISE_GTIN, f"{t}NOISE", 3)  # another product: not in the filter
        batch = [mine[0], noise[0], mine[1], mine[2], noise[1], mine[3], noise[2], mine[4], mine[5]]
        outs = commit(c, batch)
        trace = c.build.trace_record(gtin=gtin, serial=f"{t}ST000", biz_step="shipping", disposition="in_transit",
                                     location_hash=b"\1" * 32)  # another type: not in the filter
        commit(c, [trace])
        first = min(o.height for o in outs)
        flt: dict[str, Any] = {"gtin": gtin, "types": "product.register", "org": "acme"}

        # replay from a height, then the caller disconnects after 3 events
        with closing(c.stream(from_height=first, **flt)) as events:
            got = take(events, 3)
        assert [e["id"] for e in got] == [e.id.hex() for e in mine[:3]]
        assert all(e["gtin"] == gtin and e["type"] == "product.register" and e["code"] == "ok" for e in got)
        assert [e["serial"] for e in got] == [f"{t}ST000", f"{t}ST001", f"{t}ST002"]
        cursor = got[-1]["cursor"]
        assert cursor == f"{got[-1]['height']}-{got[-1]['index']}"

        # resume after the cursor: the stored rest, then live events, then past a node ending the stream
        more = registrations(c, gtin, f"{t}ST", 2, start=6)  # (built in the order they are submitted: nonces)
        noise2 = registrations(c, NOISE_GTIN, f"{t}NOISE", 2, start=3)
        more += registrations(c, gtin, f"{t}ST", 2, start=8)
        with closing(c.stream(cursor=cursor, **flt)) as events:
            rest = take(events, 3)  # stored: replayed
            assert [e["id"] for e in rest] == [e.id.hex() for e in mine[3:]]
            commit(c, more[:2] + noise2)  # committed while the stream is open: live
            live = take(events, 2)
            assert [e["id"] for e in live] == [e.id.hex() for e in more[:2]]
            assert end_streams_on_every_node(cluster) == 1  # the client reconnects by itself after the last cursor
            commit(c, more[2:])
            after = take(events, 2)
            assert [e["id"] for e in after] == [e.id.hex() for e in more[2:]]
        # nothing missed, nothing repeated, in chain order
        ids = [e["id"] for e in got + rest + live + after]
        assert ids == [e.id.hex() for e in mine + more] and len(set(ids)) == len(ids)
        positions = [(e["height"], e["index"]) for e in got + rest + live + after]
        assert positions == sorted(positions)

