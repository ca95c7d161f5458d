"""Snapshots and restore (issue 25, point 4): an online snapshot of a running node, laid
into an empty data directory only after its header, blocks and state check out; a
tampered snapshot is refused with a clear error and nothing is written."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from afterchain.node.app.store import RocksKV
from afterchain.node.runtime.runner import Node, NodeOptions
from afterchain.node.runtime.snapshot import MANIFEST, SnapshotError, finish_snapshot, restore_snapshot, verify_snapshot
from afterchain.node.tools.genesis import MemberSpec, build_genesis
from afterchain.protocol import state_keys as K
from afterchain.protocol.block import BlockHeader, CommitCertificate
from afterchain.protocol.types import Signature
from tests.node.util import ACME, T0, VALIDATORS, genesis, memory_cluster, product_event, wait_for

NOW = lambda: int(time.time() * 1000)  # noqa: E731


async def _build(tmp: Path) -> dict[str, Any]:
    async with memory_cluster(tmp, n=3) as (nodes, net):
        evs = [product_event(i + 1) for i in range(120)]
        for i in range(0, len(evs), 30):
            await nodes[0].submit([e.encode() for e in evs[i: i + 30]])
            await trio.sleep(0.05)
        await wait_for(lambda: all(nodes[0].ledger.event_outcome(e.id) is not None for e in evs), timeout=60)
        taken = await nodes[0].snapshot(tmp / "snap")
        manifest = finish_snapshot(tmp / "snap", genesis())
        # a node restored from the snapshot joins the running network and follows it
        restore_snapshot(tmp / "snap", tmp / "n3", genesis(), now_ms=NOW())
        late = Node(key=VALIDATORS[3], genesis=genesis(), data_dir=tmp / "n3", transport=net.add(VALIDATORS[3].public),
                    options=NodeOptions(name="n3", tick_ms=20))
        restored_height = late.ledger.height  # after replaying the restored chain's tail
        more = [product_event(120 + i) for i in range(1, 31)]
        async with trio.open_nursery() as nursery:
            await nursery.start(late.run)
            await nodes[0].submit([e.encode() for e in more])
            await wait_for(lambda: all(late.ledger.event_outcome(e.id) is not None for e in more), timeout=60)
            h = min(late.ledger.height, nodes[0].ledger.height)
            roots = (late.ledger.root_at(h), nodes[0].ledger.root_at(h))
            nursery.cancel_scope.cancel()
    return {"taken": taken, "manifest": manifest, "restored_height": restored_height, "roots": roots}


@pytest.fixture(scope="module")
def snap(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("snapshot")
    out = trio.run(_build, tmp)
    return tmp / "snap", out


def test_online_snapshot_restores_and_the_node_follows(snap: tuple[Path, dict[str, Any]]) -> None:
    src, out = snap
    m = out["manifest"]
    assert out["taken"]["state_height"] >= 1
    assert m["state_height"] >= out["taken"]["state_height"]  # executed up to the certified state
    hdr = BlockHeader.decode(bytes.fromhex(m["header"]))
    assert (hdr.height, hdr.state_height, hdr.state_root.hex()) == (m["chain_height"], m["state_height"], m["state_root"])
    assert out["restored_height"] == m["chain_height"]  # restored at S, the tail S+1..H replayed at open
    a, b = out["roots"]
    assert a is not None and a == b  # then it followed the chain to the same state
    info = verify_snapshot(_copy(src, src.parent / "check"), genesis(), now_ms=NOW())
    assert info.values > 120 and info.state_root.hex() == m["state_root"]


def _copy(src: Path, dst: Path) -> Path:
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    return dst


def _refused(src: Path, tmp: Path, match: str, g: Any = None) -> None:
    data = tmp / "data"
    with pytest.raises(SnapshotError, match=match):
        restore_snapshot(src, data, g or genesis(), now_ms=NOW())
    assert not data.exists()  # nothing written
    assert not any(p.name.startswith(".data.restoring") for p in tmp.iterdir())  # the staging copy is gone


def _edit_state(src: Path, fn: Any) -> None:
    kv = RocksKV(str(src / "state"))
    try:
        fn(kv)
    finally:
        kv.close()


def _edit_manifest(src: Path, fn: Any) -> None:
    p = src / MANIFEST
    doc = json.loads(p.read_text())
    fn(doc)
    p.write_text(json.dumps(doc))


def test_a_changed_value_is_refused(snap: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    src = _copy(snap[0], tmp_path / "s")
    key = K.stored_value(K.org("acme"))
    _edit_state(src, lambda kv: kv.write({key: kv.get(key)[:-1] + b"\x01"}))  # type: ignore[index]
    _refused(src, tmp_path, "do not hash to the certified root")


def test_an_added_value_is_refused(snap: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    src = _copy(snap[0], tmp_path / "s")
    _edit_state(src, lambda kv: kv.write({K.stored_value(K.org("mallory")): b"\x80"}))
    _refused(src, tmp_path, "do not hash to the certified root")


def test_a_changed_state_root_is_refused(snap: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    src = _copy(snap[0], tmp_path / "s")
    s = snap[1]["manifest"]["state_height"]
    _edit_state(src, lambda kv: kv.write({K.root(s): b"\x07" * 32}))
    _refused(src, tmp_path, "the certified root is")


def test_a_header_with_another_root_is_refused(snap: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    src = _copy(snap[0], tmp_path / "s")

    def change(doc: dict[str, Any]) -> None:
        hdr = BlockHeader.decode(bytes.fromhex(doc["header"]))
        doc["header"] = dataclasses.replace(hdr, state_root=b"\x07" * 32).encode().hex()
        doc["state_root"] = (b"\x07" * 32).hex()
    _edit_manifest(src, change)
    _refused(src, tmp_path, "not certified by the chain's validators: light.certificate_mismatch")


def test_a_forged_certificate_is_refused(snap: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    src = _copy(snap[0], tmp_path / "s")

    def forge(doc: dict[str, Any]) -> None:
        cert = CommitCertificate.decode(bytes.fromhex(doc["certificate"]))
        sig = cert.signatures[0]
        bad = dataclasses.replace(sig, signature=Signature(bytes([sig.signature[0] ^ 1]) + sig.signature[1:]))
        doc["certificate"] = dataclasses.replace(cert, signatures=(bad, *cert.signatures[1:])).encode().hex()
    _edit_manifest(src, forge)
    _refused(src, tmp_path, "light.signature_invalid")


def test_a_certificate_by_other_keys_is_refused(snap: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    from afterchain.protocol.block import Commit, CommitSig
    from afterchain.protocol.crypto import Domain, KeyPair
    from afterchain.protocol.types import Seq

    src = _copy(snap[0], tmp_path / "s")

    def forge(doc: dict[str, Any]) -> None:
        cert = CommitCertificate.decode(bytes.fromhex(doc["certificate"]))
        sigs = []
        for i in range(3):
            kp = KeyPair.from_seed(bytes([i + 1]) * 32)
            vote = Commit(view=cert.view, seq=Seq(cert.height), digest=cert.header_hash, replica=kp.public)
            sigs.append(CommitSig(replica=kp.public, signature=kp.sign(Domain.COMMIT, doc["chain_id"], vote)))
        doc["certificate"] = dataclasses.replace(cert, signatures=tuple(sigs)).encode().hex()
    _edit_manifest(src, forge)
    _refused(src, tmp_path, "light.signer_unknown")


def test_another_chains_snapshot_is_refused(snap: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    other = build_genesis(chain_id="other-chain", genesis_time_ms=T0, validators=[v.public for v in VALIDATORS],
                          members=[MemberSpec("acme", "Acme", ("manufacturer",), (ACME.public,), 1000)])
    _refused(_copy(snap[0], tmp_path / "s"), tmp_path, "this node's genesis is 'other-chain'", g=other)


def test_restore_refuses_a_data_dir_in_use(snap: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "chain").mkdir(parents=True)
    with pytest.raises(SnapshotError, match="is not empty"):
        restore_snapshot(snap[0], data, genesis(), now_ms=NOW())
    assert [p.name for p in data.iterdir()] == ["chain"]


def _cli_config(tmp: Path) -> Path:
    from afterchain.node.common.keys import write_key

    write_key(tmp / "node.key", VALIDATORS[3])
    (tmp / "genesis.json").write_text(genesis().to_json() + "\n")
    p = tmp / "node.toml"
    p.write_text(f"""
[node]
name = "n3"
data_dir = "data"
key_file = "node.key"
genesis_file = "genesis.json"
[p2p]
listen = "127.0.0.1:7001"
peers = [{{ key = "{VALIDATORS[0].public.hex()}", addr = "127.0.0.1:7002" }}]
""")
    return p


def test_cli_restore_and_its_refusal(snap: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from afterchain.node.cli import cli

    cfg = _cli_config(tmp_path)
    bad = _copy(snap[0], tmp_path / "bad")
    s = snap[1]["manifest"]["state_height"]
    _edit_state(bad, lambda kv: kv.write({K.root(s): b"\x07" * 32}))
    r = CliRunner().invoke(cli, ["node", "restore", "--config", str(cfg), "--from", str(bad)])
    assert r.exit_code == 1 and "snapshot refused, nothing written" in r.output and "certified root" in r.output
    assert not (tmp_path / "data").exists()
    r = CliRunner().invoke(cli, ["node", "restore", "--config", str(cfg), "--from", str(snap[0])])
    assert r.exit_code == 0, r.output
    assert f"state at height {s}" in r.output
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["chain", "restored-from.json", "state"]
    r = CliRunner().invoke(cli, ["node", "restore", "--config", str(cfg), "--from", str(snap[0])])
    assert r.exit_code == 1 and "not empty" in r.output  # never over a node's data


def test_cli_snapshot_names_an_unreachable_node(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from afterchain.node.cli import cli

    cfg = _cli_config(tmp_path)
    cfg.write_text(cfg.read_text() + '[api]\nlisten = "127.0.0.1:9"\n')
    r = CliRunner().invoke(cli, ["node", "snapshot", "--config", str(cfg), "--out", str(tmp_path / "s")])
    assert r.exit_code == 3 and "does not answer" in r.output
    assert not (tmp_path / "s").exists()


async def test_admin_snapshot_route(tmp_path: Path) -> None:
    import httpx

    from afterchain.node.http.app import build_app
    from afterchain.node.http.service import NodeHttp

    def client(node: Node, host: str = "127.0.0.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=build_app(NodeHttp(node, admin_token=None)), client=(host, 4242))
        return httpx.AsyncClient(transport=transport, base_url="http://node")

    async with memory_cluster(tmp_path, n=4) as (nodes, _):
        await nodes[0].submit([product_event(1).encode()])
        await wait_for(lambda: nodes[0].ledger.height >= 1)
        async with client(nodes[0], host="10.1.2.3") as c:
            r = await c.post("/v1/admin/snapshot", json={"dir": str(tmp_path / "x")})
            assert r.status_code == 403 and not (tmp_path / "x").exists()
        async with client(nodes[0]) as c:
            for body in ({"dir": "relative/path"}, {"dir": 1}, {}, {"dir": "/a", "more": 1}, []):
                r = await c.post("/v1/admin/snapshot", json=body)
                assert r.status_code == 400 and r.json()["error"]["code"] == "request.invalid", body
            busy = tmp_path / "busy"
            busy.mkdir()
            (busy / "keep").write_text("x")
            r = await c.post("/v1/admin/snapshot", json={"dir": str(busy)})
            assert r.status_code == 409 and r.json()["error"]["code"] == "snapshot.failed"
            assert [p.name for p in busy.iterdir()] == ["keep"]
            r = await c.post("/v1/admin/snapshot", json={"dir": str(tmp_path / "ok")})
            assert r.status_code == 200, r.text
            doc = r.json()
            assert doc["chain_height"] > doc["state_height"] >= 1
            assert (tmp_path / "ok" / "chain" / "CURRENT").is_file() and (tmp_path / "ok" / "state" / "CURRENT").is_file()
    m = finish_snapshot(tmp_path / "ok", genesis())
    info = verify_snapshot(tmp_path / "ok", genesis(), now_ms=NOW())
    assert (info.state_height, info.chain_height) == (m["state_height"], m["chain_height"])


@pytest.mark.parametrize("parallel", [False, True])
def test_a_missing_block_is_refused_whoever_checks_the_chain(snap: tuple[Path, dict[str, Any]], tmp_path: Path,
                                                             parallel: bool) -> None:
    """The chain is checked in this process or, for long chains, in a process of its own
    while this one checks the state (`parallel`): the same result and the same refusal."""
    from rocksdict import Options, Rdict

    info = verify_snapshot(_copy(snap[0], tmp_path / "ok"), genesis(), now_ms=NOW(), parallel=parallel)
    assert info.values > 120
    src = _copy(snap[0], tmp_path / "s")
    db = Rdict(str(src / "chain"), Options(raw_mode=True))
    db.delete(b"B" + (1).to_bytes(8, "big"))
    db.close()
    with pytest.raises(SnapshotError, match="the snapshot's chain lacks block 1"):
        verify_snapshot(src, genesis(), now_ms=NOW(), parallel=parallel)


def test_a_chain_whose_block_1_is_not_on_this_genesis_is_refused(snap: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    """Every block links to the certified header, and block 1 to the genesis: a chain of
    another genesis (or a built one linked to nothing) is refused."""
    from afterchain.node.runtime.snapshot import _verify_chain
    from afterchain.protocol.block import BlockHeader

    src = _copy(snap[0], tmp_path / "s")
    m = snap[1]["manifest"]
    hdr = BlockHeader.decode(bytes.fromhex(m["header"]))
    args = (str(src / "chain"), hdr.height, bytes.fromhex(m["certificate"]), hdr.hash())
    _verify_chain(*args, genesis().hash())  # the right genesis: accepted
    with pytest.raises(SnapshotError, match="block 1 does not link to this chain's genesis"):
        _verify_chain(*args, b"\0" * 32)
