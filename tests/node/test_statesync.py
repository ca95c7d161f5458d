"""State sync from peers (issue 25, point 4): a validator that starts on an empty data
directory fetches a snapshot its peers offer over the node-to-node transport, verifies it
against a certified header, installs it and then commits new blocks with the others; a peer
that serves a tampered chunk, or offers a snapshot whose root is not certified, is refused
and the node uses another peer's snapshot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import structlog
import trio

from afterchain.node.runtime.runner import Node, NodeOptions
from afterchain.node.runtime.statesync import (
    ChunkRequest,
    ChunkResponse,
    SnapshotOffer,
    SnapshotsRequest,
    SnapshotsResponse,
    StateSyncError,
    package_snapshot,
    read_chunk,
    state_sync,
)
from afterchain.protocol.codec import decode
from tests.node.util import VALIDATORS, genesis, memory_cluster, product_event, wait_for


def _tamper_chunks(node: Node, only: int | None = None) -> None:
    """`node` answers every chunk (or only chunk `only`) with one byte changed (its offers
    stay honest)."""
    server = node.snapshots
    real = server.on_request

    async def bad(sender: bytes, req: Any) -> bytes:
        raw = await real(sender, req)
        if isinstance(req, ChunkRequest) and (only is None or req.index == only):
            r = ChunkResponse.decode(raw, max_bytes=64 << 20)
            data = bytes([r.data[0] ^ 1]) + r.data[1:]
            return ChunkResponse(snapshot=r.snapshot, index=r.index, data=data).encode()
        return raw

    server.on_request = bad  # type: ignore[method-assign]


def _forge_root(node: Node) -> None:
    """`node` offers its snapshot with another state root in the manifest (not certified)."""
    s = node.snapshots.served[-1]
    doc = json.loads(s.offer.manifest)
    doc["state_root"] = "07" * 32
    fields = {f: getattr(s.offer, f) for f in ("height", "state_height", "format", "chunk_size", "files", "chunk_hashes")}
    s.offer = SnapshotOffer(**fields, manifest=json.dumps(doc).encode())
    s.hash = s.offer.snapshot_hash()


async def _scenario(tmp: Path, bad: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with memory_cluster(tmp, n=3) as (nodes, net):
        for n in nodes:
            n.snapshots.chunk_size = 16 * 1024  # many chunks from small stores
        evs = [product_event(i + 1) for i in range(90)]
        await nodes[0].submit([e.encode() for e in evs[:60]])
        await wait_for(lambda: all(n.ledger.event_outcome(e.id) is not None for n in nodes for e in evs[:60]), timeout=60)
        honest = await nodes[0].snapshots.take()
        await nodes[0].submit([e.encode() for e in evs[60:]])
        await wait_for(lambda: all(n.ledger.event_outcome(e.id) is not None for n in nodes for e in evs), timeout=60)
        newer = await nodes[1].snapshots.take()  # the newest offer, so it is tried first
        assert newer.height > honest.height and len(newer.chunk_hashes) > 3
        if bad == "mid":  # honest chunks, then one bad chunk in the middle of the stream
            _tamper_chunks(nodes[1], only=len(newer.chunk_hashes) // 2)
        else:
            (_tamper_chunks if bad == "chunk" else _forge_root)(nodes[1])
        # node 3 (a genesis validator that never ran) joins by state sync
        t = net.add(VALIDATORS[3].public)
        with structlog.testing.capture_logs() as logs:
            async with trio.open_nursery() as nursery:
                await nursery.start(t.run)
                info, figures = await state_sync(t, genesis(), tmp / "n3", structlog.get_logger(), discovery_s=5)
                nursery.cancel_scope.cancel()
        out.update(info=info, figures=figures, logs=logs, honest=honest)
        late = Node(key=VALIDATORS[3], genesis=genesis(), data_dir=tmp / "n3", transport=t,
                    options=NodeOptions(name="n3", tick_ms=20))
        out["started_at"] = late.ledger.height
        out["metrics"] = late.metrics.render()[0].decode()
        more = [product_event(90 + i) for i in range(1, 31)]
        async with trio.open_nursery() as nursery:
            await nursery.start(late.run)
            await wait_for(lambda: late.store.head >= nodes[0].store.head, timeout=60)
            # one validator stops: the other three, the state-synced one among them, must commit
            net.isolate(VALIDATORS[0].public)
            await nodes[1].submit([e.encode() for e in more])
            await wait_for(lambda: all(late.ledger.event_outcome(e.id) is not None for e in more), timeout=60)
            h = min(late.ledger.height, nodes[1].ledger.height)
            out["roots"] = (late.ledger.root_at(h), nodes[1].ledger.root_at(h))
            out["late_signed"] = any(late.key.public in [s.replica for s in c.signatures]
                                     for c in (late.store.certificate(x) for x in range(info.chain_height + 1, late.store.head + 1))
                                     if c is not None)
            nursery.cancel_scope.cancel()
    return out


@pytest.mark.parametrize("bad", ["chunk", "mid", "root"])
def test_a_validator_joins_by_state_sync_and_commits(tmp_path: Path, bad: str) -> None:
    out = trio.run(_scenario, tmp_path, bad)
    info, figures, logs = out["info"], out["figures"], out["logs"]
    # it used node0's snapshot, the honest one, after refusing node1's
    assert info.chain_height == out["honest"].height
    assert figures["snapshots_refused"] == 1
    refused = [e for e in logs if e["event"] == "statesync_snapshot_refused"]
    assert len(refused) == 1
    if bad in ("chunk", "mid"):
        assert figures["chunks_refused"] >= 1
        assert any(e["event"] == "statesync_chunk_refused" for e in logs)
        assert "did not match its hash" in refused[0]["reason"]
    else:
        assert figures["chunks_refused"] == 0
        assert "differ from its certified header" in refused[0]["reason"]  # refused before any chunk was fetched
    assert out["started_at"] >= info.state_height
    a, b = out["roots"]
    assert a is not None and a == b
    assert out["late_signed"]  # it signed commit certificates of new blocks: it votes
    text = out["metrics"]  # its /metrics say how it joined
    assert "afterchain_statesync_joined 1.0" in text
    assert f"afterchain_statesync_chunks_fetched {float(figures['chunks'])}" in text
    assert f"afterchain_statesync_snapshots_refused {float(figures['snapshots_refused'])}" in text
    assert "afterchain_statesync_duration_seconds " in text and "afterchain_statesync_chunks_served_total 0.0" in text


def test_no_snapshot_offered_is_a_clear_error(tmp_path: Path) -> None:
    async def main() -> None:
        async with memory_cluster(tmp_path, n=3) as (_nodes, net):
            t = net.add(VALIDATORS[3].public)
            async with trio.open_nursery() as nursery:
                await nursery.start(t.run)
                with pytest.raises(StateSyncError, match="no connected peer offered a snapshot"):
                    await state_sync(t, genesis(), tmp_path / "n3", structlog.get_logger(), discovery_s=2, attempts=1)
                nursery.cancel_scope.cancel()
        assert not (tmp_path / "n3").exists()

    trio.run(main)


def test_offer_chunks_cut_the_files_and_refuse_bad_requests(tmp_path: Path) -> None:
    async def main() -> None:
        async with memory_cluster(tmp_path, n=3) as (nodes, _net):
            await nodes[0].submit([product_event(i + 1).encode() for i in range(20)])
            await wait_for(lambda: nodes[0].ledger.height >= 2, timeout=30)
            nodes[0].snapshots.chunk_size = 8 * 1024
            offer = await nodes[0].snapshots.take()
            path = nodes[0].snapshots.served[-1].path
            assert package_snapshot(path, chunk_size=8 * 1024) == offer  # packaging is deterministic
            whole = b"".join((path / f.name).read_bytes() for f in offer.files)
            assert b"".join(read_chunk(path, offer, i) for i in range(len(offer.chunk_hashes))) == whole
            resp = decode(await nodes[0].catchup.on_request(b"p" * 32, SnapshotsRequest(limit=4).encode()))
            assert isinstance(resp, SnapshotsResponse) and resp.snapshots == (offer,)
            h = offer.snapshot_hash()
            with pytest.raises(Exception, match="has no chunk"):
                await nodes[0].catchup.on_request(b"p" * 32, ChunkRequest(snapshot=h, index=10**6).encode())
            with pytest.raises(Exception, match="no snapshot"):
                await nodes[0].catchup.on_request(b"p" * 32, ChunkRequest(snapshot=b"\1" * 32, index=0).encode())

    trio.run(main)


def test_a_member_joins_by_state_sync_and_follows(tmp_path: Path) -> None:
    from tests.node.util import k

    member_key = k("member-ss")

    async def main() -> dict[str, Any]:
        async with memory_cluster(tmp_path, n=4, snapshot_interval=3) as (nodes, net):
            evs = [product_event(i + 1) for i in range(40)]
            await nodes[0].submit([e.encode() for e in evs])
            await wait_for(lambda: all(n.snapshots.served for n in nodes), timeout=60)  # periodic snapshots
            t = net.add(member_key.public)
            async with trio.open_nursery() as nursery:
                await nursery.start(t.run)
                info, _ = await state_sync(t, genesis(), tmp_path / "m", structlog.get_logger(), discovery_s=5)
                nursery.cancel_scope.cancel()
            member = Node(key=member_key, genesis=genesis(), data_dir=tmp_path / "m", transport=t,
                          options=NodeOptions(name="m", tick_ms=20, member_poll_ms=20))
            more = [product_event(40 + i) for i in range(1, 21)]
            async with trio.open_nursery() as nursery:
                await nursery.start(member.run)
                assert member.role() == "member"
                await nodes[0].submit([e.encode() for e in more])
                await wait_for(lambda: all(member.ledger.event_outcome(e.id) is not None for e in evs + more), timeout=60)
                h = min(member.ledger.height, nodes[0].ledger.height)
                roots = (member.ledger.root_at(h), nodes[0].ledger.root_at(h))
                nursery.cancel_scope.cancel()
            return {"info": info, "roots": roots}

    out = trio.run(main)
    assert out["info"].state_height >= 1
    a, b = out["roots"]
    assert a is not None and a == b


async def test_admin_route_offers_a_snapshot(tmp_path: Path) -> None:
    import httpx

    from afterchain.node.http.app import build_app
    from afterchain.node.http.service import NodeHttp

    async with memory_cluster(tmp_path, n=4) as (nodes, _):
        await nodes[0].submit([product_event(1).encode()])
        await wait_for(lambda: nodes[0].ledger.height >= 1)
        app = build_app(NodeHttp(nodes[0], admin_token=None))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 4242)),
                                     base_url="http://node") as c:
            for body in ({"offer": False}, {"offer": True, "dir": "/x"}):
                r = await c.post("/v1/admin/snapshot", json=body)
                assert r.status_code == 400 and r.json()["error"]["code"] == "request.invalid", body
            r = await c.post("/v1/admin/snapshot", json={"offer": True})
            assert r.status_code == 200, r.text
            doc = r.json()
        served = nodes[0].snapshots.served
        assert len(served) == 1 and doc["chain_height"] == served[0].offer.height and doc["dir"] == str(served[0].path)
        assert doc["chunks"] == len(served[0].offer.chunk_hashes) >= 1


def test_statesync_settings(tmp_path: Path) -> None:
    from afterchain.node.runtime.config import ConfigError, load_config
    from tests.node.test_config_addresses_env import BASE, cfg_file

    c = load_config(cfg_file(tmp_path), env={})
    assert (c.statesync.enable, c.statesync.snapshot_interval, c.statesync.snapshot_keep) == (False, 0, 2)
    c = load_config(cfg_file(tmp_path, BASE + "[statesync]\nsnapshot_interval = 500\nsnapshot_keep = 3\n"),
                    env={"AFTERCHAIN_STATESYNC_ENABLE": "true"})
    assert (c.statesync.enable, c.statesync.snapshot_interval, c.statesync.snapshot_keep) == (True, 500, 3)
    with pytest.raises(ConfigError, match=r"statesync\.enable: expected true or false"):
        load_config(cfg_file(tmp_path, BASE + '[statesync]\nenable = "yes"\n'), env={})
    with pytest.raises(ConfigError, match=r"statesync\.snapshot_keep: 0 is not in 1\.\.100"):
        load_config(cfg_file(tmp_path, BASE + "[statesync]\nsnapshot_keep = 0\n"), env={})
