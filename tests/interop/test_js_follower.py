"""A js-libp2p client follows committed blocks (issue 23 point 5).

`tests/interop/js/follow.mjs` was written from docs/PROTOCOL.md alone: js-libp2p (TCP,
Noise, yamux) with a registered member node key, the `FollowRequest` / `FollowResponse`
messages on the node-to-node stream (section 7), the blocks and commit certificates of
sections 4 and 5 checked with @noble/ed25519. Here a 4-validator network runs in-process on
real libp2p transports (127.0.0.1), an organisation registers the follower's key
(`node.register`), a few events commit, and the follower must print exactly the node's
block hashes, heights 1 to the head. Skipped, with the reason, when node or npm is missing
or the pinned packages cannot be installed (`npm ci` of a copy, as tests/client/test_js_example.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import trio

from afterchain.node.client import AsyncClient
from afterchain.node.common.log import configure
from afterchain.node.runtime.runner import Node, NodeOptions
from afterchain.node.server import serve_api
from afterchain.node.tools.genesis import DAY_MS, MemberSpec, build_genesis
from afterchain.node.tools.localnet import free_ports
from afterchain.node.transport.p2p import P2PTransport, peer_id_for
from afterchain.protocol.crypto import KeyPair

JS_DIR = Path(__file__).parent / "js"


def _key(name: str) -> KeyPair:
    return KeyPair.from_seed(name.encode().ljust(32, b"\0")[:32])


def _install(d: Path) -> str | None:
    """Copy the follower to `d` and install its pinned packages (``npm ci``): None when it can
    run, else why not."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return "the js-libp2p follower needs `node` (20 or later) and `npm` on PATH"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    if not version.startswith("v") or int(version[1:].split(".")[0]) < 20:
        return f"the js-libp2p follower needs Node 20 or later, found {version or 'an unknown version'}"
    for f in ("follow.mjs", "package.json", "package-lock.json"):
        shutil.copy(JS_DIR / f, d / f)
    try:
        p = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline"], cwd=d,
                           capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        return "`npm ci` of the js-libp2p follower did not finish in 300 s (no network?)"
    if p.returncode != 0:
        return f"`npm ci` of the js-libp2p follower failed (no network?): {p.stderr.strip()[-300:]}"
    return None


def test_a_js_libp2p_client_follows_blocks_and_checks_certificates(tmp_path: Path) -> None:
    js = tmp_path / "js"
    js.mkdir()
    why = _install(js)
    if why is not None:
        pytest.skip(why)
    validators = [_key(f"val{i}") for i in range(4)]
    acme, follower = _key("acme"), _key("js-follower")
    g = build_genesis(chain_id="interop-js", genesis_time_ms=int(time.time() * 1000) - DAY_MS,
                      validators=[v.public for v in validators],
                      members=[MemberSpec("acme", "Acme Appliances", ("manufacturer",), (acme.public,), 1000)])
    ports = free_ports(4)
    addrs = {v.public: f"/ip4/127.0.0.1/tcp/{p}" for v, p in zip(validators, ports, strict=True)}
    (tmp_path / "seed").write_text(follower.seed.hex())
    result: dict[str, object] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            urls = []
            for i, v in enumerate(validators):
                t = P2PTransport(seed=v.seed, listen_addr=addrs[v.public], peers=addrs)
                node = Node(key=v, genesis=g, data_dir=tmp_path / f"n{i}", transport=t, options=NodeOptions(name=f"n{i}", tick_ms=20))
                await nursery.start(node.run)
                urls.append((await nursery.start(serve_api, node, "127.0.0.1", 0))[0])
            peer = f"{addrs[validators[0].public]}/p2p/{peer_id_for(validators[0].public)}"
            genesis = await trio.to_thread.run_sync(lambda: httpx.get(f"{urls[0]}/v1/genesis", timeout=10).text)
            (tmp_path / "genesis.json").write_text(genesis)

            def follow(until: int, timeout_s: int) -> subprocess.CompletedProcess[str]:
                return subprocess.run(["node", "follow.mjs", "--peer", peer, "--key", str(tmp_path / "seed"), "--genesis",
                                       str(tmp_path / "genesis.json"), "--trust", g.hash().hex(), "--until", str(until),
                                       "--timeout-s", str(timeout_s)], cwd=js, capture_output=True, text=True, timeout=120,
                                      check=False)

            # not registered yet: the Noise gate refuses the key, the follower gets nothing
            result["unregistered"] = await trio.to_thread.run_sync(follow, 1, 10)
            async with AsyncClient(urls, key=acme) as a:
                await a.submit_and_wait(await a.build.node_register(keys=[follower.public]), timeout_s=60)
                for i in range(3):
                    await a.submit_and_wait(await a.build.product_register(
                        gtin="00012345600012", serial=f"JS-{i}", model="Kettle", batch="B1",
                        production_time_ms=int(time.time() * 1000) - DAY_MS), timeout_s=60)

            def run_follower() -> None:
                with httpx.Client(base_url=urls[0], timeout=10) as http:
                    head = http.get("/v1/status").json()["height"]
                    result["proc"] = follow(head, 60)
                    result["head"] = head
                    result["headers"] = http.get("/v1/headers", params={"from": 1, "to": head}).json()

            await trio.to_thread.run_sync(run_follower)
            nursery.cancel_scope.cancel()

    with open(os.devnull, "w") as sink:
        configure(json=True, level="error", stream=sink)  # the nodes log for the whole test
        trio.run(main)
    u = result["unregistered"]
    assert isinstance(u, subprocess.CompletedProcess)
    # js-libp2p reports the closed handshake as an unexpected end of input
    assert u.returncode == 1 and "block " not in u.stdout and "error:" in u.stderr, (u.stdout, u.stderr)
    p = result["proc"]
    assert isinstance(p, subprocess.CompletedProcess)
    assert p.returncode == 0, f"follower failed ({p.returncode}):\n{p.stderr}\n{p.stdout}"
    head = result["head"]
    assert isinstance(head, int) and head >= 4  # the registration and three products at least
    printed = [(int(x[1]), x[2], int(x[3])) for x in (ln.split() for ln in p.stdout.splitlines()) if x[0] == "block"]
    headers = result["headers"]
    assert isinstance(headers, dict)
    expected = {h["height"]: h["hash"] for h in headers["headers"]}
    assert [(h, x) for h, x, _ in printed] == [(h, expected[h]) for h in range(1, head + 1)]
    assert sum(n for _, _, n in printed) >= 4  # the follower saw the events of those blocks
    assert f"followed {head} blocks" in p.stderr
