"""Four real node processes over libp2p on 127.0.0.1: 2,000 events in, identical blocks and
state roots everywhere; a node killed with SIGKILL restarts, catches up and agrees."""

from __future__ import annotations

from pathlib import Path

import httpx
import msgpack
import pytest

from afterchain.node.tools.localnet import LocalNet
from afterchain.protocol import bodies as B
from afterchain.protocol.crypto import KeyPair
from afterchain.protocol.events import Event, SignedEvent, sign_event

pytestmark = pytest.mark.cluster


def product_events(key: KeyPair, chain: str, start: int, n: int) -> list[SignedEvent]:
    out = []
    for nonce in range(start, start + n):
        body = B.ProductRegister(gtin="00012345600012", serial=f"SN{nonce:07d}", model="X1", batch="B1", production_time_ms=1)
        out.append(sign_event(key, Event(chain_id=chain, type=body.EVENT_TYPE, sender=key.public, nonce=nonce,
                                         time_ms=1, body=body)))
    return out


def submit(url: str, events: list[SignedEvent]) -> None:
    for i in range(0, len(events), 500):
        chunk = events[i : i + 500]
        r = httpx.post(f"{url}/v1/events", content=msgpack.packb([e.encode() for e in chunk]),
                       headers={"content-type": "application/msgpack"}, timeout=30)
        assert r.status_code == 202, r.text
        assert all(x["status"] == "accepted" for x in r.json()["results"])


def wait_committed(net: LocalNet, names: list[str], event_id: bytes, timeout_s: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    pending = set(names)
    while pending:
        for n in list(pending):
            try:
                r = httpx.get(f"{net.node(n).api_url}/v1/events/{event_id.hex()}", timeout=5)
                if r.status_code == 200 and r.json()["status"] == "committed":
                    pending.discard(n)
            except httpx.HTTPError:
                pass
        assert time.monotonic() < deadline, f"not committed on {pending}"
        time.sleep(0.1)


def chain_view(net: LocalNet, name: str, upto: int) -> list[str]:
    url = net.node(name).api_url
    return [httpx.get(f"{url}/v1/blocks/{h}", timeout=10).json()["hash"] for h in range(1, upto + 1)]


def agree(net: LocalNet, names: list[str]) -> None:
    import time

    # heights move on (heartbeat blocks): wait for a moment when every node has executed
    # the same height with the same state root, then compare the whole chain up to it.
    # (Each try reads only the block at that height: reading every block of every node
    # took seconds per try on a loaded machine, and a try needs all four nodes at one height.)
    deadline = time.monotonic() + 30
    while True:
        st = {n: net.status(n) for n in names}
        assert all(s is not None for s in st.values())
        heights = {s["executed_height"] for s in st.values()}  # type: ignore[index]
        h = min(heights)
        tips = {httpx.get(f"{net.node(n).api_url}/v1/blocks/{h}", timeout=10).json()["hash"] for n in names}
        assert len(tips) == 1, f"nodes disagree on the block at height {h}"
        roots = {s["state_root"] for s in st.values()}  # type: ignore[index]
        if len(heights) == 1:
            assert len(roots) == 1, f"nodes disagree on the state root at height {h}"
            views = {n: chain_view(net, n, h) for n in names}
            assert len({tuple(v) for v in views.values()}) == 1, "nodes disagree on block hashes"
            return
        assert time.monotonic() < deadline, f"could not observe all nodes at one height (last: {sorted(heights)})"
        time.sleep(0.05)


def test_four_processes_agree_and_a_killed_node_catches_up(tmp_path: Path) -> None:
    net = LocalNet(tmp_path / "net")
    net.create(4, view_timeout_ms=1500)
    try:
        net.start_all()
        net.wait_healthy(timeout_s=60)
        chain = net.manifest()["chain_id"]
        acme = net.member_key("acme")
        first = product_events(acme, chain, 1, 2000)
        submit(net.node("node0").api_url, first)
        wait_committed(net, ["node0", "node1", "node2", "node3"], first[-1].id)
        agree(net, ["node0", "node1", "node2", "node3"])

        net.kill("node2")
        second = product_events(acme, chain, 2001, 500)
        submit(net.node("node1").api_url, second)
        wait_committed(net, ["node0", "node1", "node3"], second[-1].id)
        net.start("node2")
        net.wait_healthy(["node2"], timeout_s=60)
        wait_committed(net, ["node2"], second[-1].id)
        agree(net, ["node0", "node1", "node2", "node3"])
        # every event committed exactly once, on every node
        r = httpx.get(f"{net.node('node2').api_url}/v1/events/{first[0].id.hex()}", timeout=5).json()
        assert r["status"] == "committed"
    finally:
        net.stop_all()
