"""Validator-set changes on real processes: 4 -> 5 -> 7 -> 4 validators under load.

Each change is a `governance.propose` (kind validator_change, signed by a validator's node
key) voted by more than 2/3 of the current validators. New nodes are laid out with
`LocalNet.add_node` and started before the vote: they catch up as observers and vote
once their epoch starts. At the end: every event the API acknowledged is committed
exactly once (or rejected with a reason) on the four remaining validators, which agree on
every block, and a light client that trusted only genesis verifies a ticket (following
the three change headers).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from afterchain.node.client.light.client import LightClient, trust_from_genesis
from afterchain.node.client.sdk import Client, content_hash
from afterchain.node.common.keys import load_key
from afterchain.node.tools.localnet import LocalNet
from afterchain.node.tools.nemesis import Load
from afterchain.protocol.block import ValidatorSet
from afterchain.protocol.crypto import KeyPair
from afterchain.protocol.genesis import Genesis

pytestmark = pytest.mark.cluster

CHANGE_TIMEOUT_S = 90.0


def _status(net: LocalNet, name: str) -> dict[str, Any] | None:
    return net.status(name, timeout_s=3)


def _change_set(net: LocalNet, voters: list[str], new: list[str]) -> bytes:
    """Propose the set `new` (node names, in order) and have `voters` approve it; returns
    the proposal id once it is adopted."""
    urls = [n.api_url for n in net.nodes() if n.name in voters]
    keys = tuple(bytes.fromhex(net.node(n).key) for n in new)
    payload = ValidatorSet(validators=keys).encode()  # type: ignore[arg-type]
    with Client(urls, key=load_key(net.root / voters[0] / "node.key")) as c:
        out = c.submit_and_wait(c.build.governance_propose(kind="validator_change", payload=payload,
                                                           voting_period_ms=120_000), timeout_s=30)
        pid = out.id
    for v in voters:
        with Client(urls, key=load_key(net.root / v / "node.key")) as c:
            ev = c.build.governance_vote(proposal_id=pid, approve=True)
            o = c.submit_and_wait(ev, timeout_s=30)
            assert o.committed, o
    with httpx.Client(timeout=5) as http:
        p = http.get(f"{urls[0]}/v1/governance/proposals/{pid.hex()}").json()
    assert p["status"] == "adopted", p
    return pid


def _wait_set(net: LocalNet, names: list[str], members: list[str]) -> None:
    """Until every node in `names` reports the set `members` as current and each member
    says it is a validator, and one more block committed after that on each."""
    want = [net.node(m).key for m in members]
    deadline = time.monotonic() + CHANGE_TIMEOUT_S
    while True:
        st = {n: _status(net, n) for n in names}
        if all(s is not None and s["validators"] == want for s in st.values()) and all(
            st[m] is not None and st[m]["role"] == "validator" for m in members if m in st
        ):
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"set {members} not active on {names} after {CHANGE_TIMEOUT_S} s: "
                                 f"{ {n: (s or {}).get('validators') for n, s in st.items()} }")
        time.sleep(0.25)


def _signers_of_recent_block(net: LocalNet, name: str) -> set[str]:
    st = _status(net, name)
    assert st is not None
    with httpx.Client(timeout=5) as http:
        b = http.get(f"{net.node(name).api_url}/v1/blocks/{st['height']}").json()
    return {s["replica"] for s in b["certificate"]["signatures"]}


def _wait_signs(net: LocalNet, observer: str, signer: str) -> None:
    """A new validator votes: its COMMIT signature appears in a commit certificate."""
    key = net.node(signer).key
    deadline = time.monotonic() + CHANGE_TIMEOUT_S
    while key not in _signers_of_recent_block(net, observer):
        if time.monotonic() > deadline:
            raise AssertionError(f"{signer} never signed a commit certificate")
        time.sleep(0.2)


def _check_nothing_lost(net: LocalNet, names: list[str], load: Load) -> dict[str, int]:
    """Every acknowledged event is in exactly one block (committed, or refused by the
    ledger with a reason) or was rejected with a reason; all nodes hold the same blocks."""
    urls = {n: net.node(n).api_url for n in names}
    with httpx.Client(timeout=10) as http:
        deadline = time.monotonic() + 60
        while True:  # until every node has executed what the first one has committed
            heights = {n: int(http.get(f"{u}/v1/status").json()["height"]) for n, u in urls.items()}
            if max(heights.values()) - min(heights.values()) <= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        top = min(heights.values())
        seen: set[str] = set()
        dup = 0
        for h in range(1, top + 1):
            blocks = [http.get(f"{u}/v1/blocks/{h}").json() for u in urls.values()]
            assert len({b["hash"] for b in blocks}) == 1, f"nodes disagree at height {h}"
            for e in blocks[0]["event_ids"]:
                dup += e in seen
                seen.add(e)
        pending = {i for i in load.acked if i.hex() not in seen}
        rejected = 0
        while pending and time.monotonic() < deadline:
            for i in list(pending):
                r = http.get(f"{urls[names[0]]}/v1/events/{i.hex()}")
                if r.status_code == 200 and r.json()["status"] in ("committed", "rejected"):
                    pending.discard(i)
                    rejected += r.json()["status"] == "rejected"
            if pending:
                time.sleep(0.3)
    return {"acknowledged": len(load.acked), "lost": len(pending), "duplicated": dup, "rejected": rejected,
            "blocks_compared": top}


def _expire_unvoted(net: LocalNet, names: list[str]) -> None:
    """A proposal short of its quorum at its deadline expires with no effect."""
    urls = [net.node(n).api_url for n in names]
    with httpx.Client(timeout=5) as http:
        before = http.get(f"{urls[0]}/v1/validators").json()
    keys = tuple(bytes.fromhex(net.node(n).key) for n in names[:-1])
    with Client(urls, key=load_key(net.root / names[0] / "node.key")) as c:
        pid = c.submit_and_wait(c.build.governance_propose(
            kind="validator_change", payload=ValidatorSet(validators=keys).encode(),  # type: ignore[arg-type]
            voting_period_ms=1500), timeout_s=30).raise_if_rejected().id
        c.submit_and_wait(c.build.governance_vote(proposal_id=pid, approve=True), timeout_s=30).raise_if_rejected()
    deadline = time.monotonic() + 30
    with httpx.Client(timeout=5) as http:
        while (p := http.get(f"{urls[0]}/v1/governance/proposals/{pid.hex()}").json())["status"] == "open":
            assert time.monotonic() < deadline, p
            time.sleep(0.3)
        assert p["status"] == "expired", p
        after = http.get(f"{urls[0]}/v1/validators").json()
    assert after["adopted"] == before["adopted"] and after["pending"] is None


def _grow_and_shrink(tmp_path: Path, sizes: list[int], *, consensus: Any = None) -> dict[str, int]:
    """Start 4 validators under load, then change the set to each size in `sizes` (growing
    adds new nodes, shrinking keeps the first ones), voted each time by just enough
    validators, the newest first (so new validators' votes are counted)."""
    net = LocalNet(tmp_path / "net")
    net.create(4, view_timeout_ms=1500, consensus=consensus)
    net.start_all()
    load = Load(net)
    try:
        net.wait_healthy(timeout_s=90)
        load.start()
        first = ["node0", "node1", "node2", "node3"]
        current = list(first)
        for size in sizes:
            added: list[str] = []
            if size > len(current):
                added = [net.add_node().name for _ in range(size - len(current))]
                for n in added:
                    net.start(n)  # each catches up as an observer, then votes
                new = current + added
            else:
                new = current[:size]
            need = 2 * len(current) // 3 + 1  # 3 * yes > 2 * n
            t0 = time.monotonic()
            _change_set(net, voters=current[-need:], new=new)
            print(f"set of {len(new)} adopted in {time.monotonic() - t0:.1f} s")
            _wait_set(net, current + added, new)
            for n in added:
                _wait_signs(net, "node0", n)
            for n in current:
                if n not in new:
                    net.stop(n)  # removed: no longer counted, nobody waits for it
            current = new
            print(f"set of {len(new)} active in {time.monotonic() - t0:.1f} s")
        _expire_unvoted(net, current)
        time.sleep(2)  # the final set goes on alone under load
        load.halt()
        first = current

        # an event after the shrink, verified by a light client that trusted only genesis
        urls = [net.node(n).api_url for n in first]
        customer = KeyPair.generate()
        gtin, serial = "09506000777771", "RECONFIG-1"
        with Client(urls, key=net.member_key("acme")) as acme:
            for ev in (acme.build.product_register(gtin=gtin, serial=serial, model="M", batch="R", production_time_ms=1),
                       acme.build.product_transfer(gtin=gtin, serial=serial, to_org="shopmart")):
                acme.submit_and_wait(ev, timeout_s=30).raise_if_rejected()
        with Client(urls, key=net.member_key("shopmart")) as shop:
            shop.submit_and_wait(shop.build.product_sell(gtin=gtin, serial=serial, to_customer=customer.public,
                                                         order_ref_hash=content_hash("order R1")),
                                 timeout_s=30).raise_if_rejected()
        with Client(urls, key=customer) as cust:
            tid = cust.submit_and_wait(cust.build.ticket_open(kind="complaint", gtin=gtin, serial=serial,
                                                              fault_type="noise",
                                                              description_hash=content_hash("it rattles")),
                                       timeout_s=30).raise_if_rejected().id
        genesis = Genesis.from_json((net.root / "genesis.json").read_text())
        with LightClient(urls[1], trust_from_genesis(genesis)) as lc:
            # headers name the state a block or two behind them: until a certified header
            # covers the ticket's block, the verified answer is "absent" (status None)
            deadline = time.monotonic() + 20
            while (view := lc.ticket(tid)[0]).status is None and time.monotonic() < deadline:
                time.sleep(0.3)
            view, verified = lc.ticket(tid)
        assert view.status == "opened"
        assert verified.height > 0

        figures = _check_nothing_lost(net, first, load)
        print("reconfig figures:", figures)
        assert figures["acknowledged"] > 0
        assert figures["lost"] == 0 and figures["duplicated"] == 0
        return figures
    finally:
        load.halt()
        net.stop_all()


@pytest.mark.slow
def test_a_fifth_validator_joins_and_leaves_under_load_with_short_epochs(tmp_path: Path) -> None:
    """4 -> 5 -> 4 with K = 4 (epochs of 4 blocks, so changes pile up at every boundary)."""
    from afterchain.node.tools.genesis import DEFAULT_CONSENSUS

    _grow_and_shrink(tmp_path, [5, 4], consensus=dataclasses.replace(DEFAULT_CONSENSUS, checkpoint_interval=4,
                                                                     watermark_window=16))


def test_validators_grow_4_5_7_and_shrink_to_4_under_load(tmp_path: Path) -> None:
    """Issue #12's cluster test (default suite, about a minute): 4 -> 5 -> 7 -> 4."""
    _grow_and_shrink(tmp_path, [5, 7, 4])
