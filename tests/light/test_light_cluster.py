"""`afterchain light ticket` against real nodes over real HTTP: four in-process nodes (default
suite) and four node processes on libp2p (`node.localnet.LocalNet`, mark ``cluster``)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from afterchain.node.cli import cli
from afterchain.node.client.sdk import Client
from afterchain.protocol.block import ValidatorSet
from afterchain.protocol.crypto import KeyPair
from afterchain.protocol.types import ValidatorId
from tests.client.cluster import Cluster

GTIN = "00012345600012"


def make_ticket(urls: list[str], key_file: dict[str, str | KeyPair], customer: KeyPair, serial: str) -> bytes:
    """Register `serial` (acme), move it to shopmart, sell it to `customer`, who opens a repair ticket."""
    with Client(urls, key=key_file["acme"]) as c:
        c.send(c.build.product_register(gtin=GTIN, serial=serial, model="K", batch="B1", production_time_ms=0))
        c.send(c.build.product_transfer(gtin=GTIN, serial=serial, kind="transfer", to_org="shopmart"))
    with Client(urls, key=key_file["shopmart"]) as c:
        c.send(c.build.product_sell(gtin=GTIN, serial=serial, to_customer=customer.public, order_ref_hash="11" * 32))
    with Client(urls, key=customer) as c:
        ev = c.build.ticket_open(kind="repair", gtin=GTIN, serial=serial, fault_type="no_power", description_hash="22" * 32)
        c.send(ev)
    return ev.id


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(Path(tmp_path_factory.mktemp("light-cluster")))
    c.start()
    try:
        yield c
    finally:
        c.stop()


def light(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, ["light", *args])
    return r.exit_code, r.stdout, r.stderr


def test_cli_verifies_a_ticket_and_an_absent_one(cluster: Cluster, tmp_path: Path) -> None:
    genesis = tmp_path / "genesis.json"
    genesis.write_text(cluster.nodes[0].genesis.to_json())
    keys: dict[str, str | KeyPair] = {o: cluster.key_file(o) for o in ("acme", "shopmart")}
    alice, _ = cluster.customer("alice-light")
    tid = make_ticket(cluster.urls, keys, alice, "L1")
    state = tmp_path / "trust.json"
    common = ["--node", cluster.urls[1], "--genesis", str(genesis), "--state", str(state)]

    code, out, err = light("ticket", tid.hex(), *common, "--witness", cluster.urls[2], "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["verified"] and doc["exists"] and doc["status"] == "opened"
    assert [e["status"] for e in doc["timeline"]] == ["opened"] and doc["proof"]["downloads"] == 2  # answer + witness
    trusted = json.loads(state.read_text())["height"]
    assert trusted >= 1

    code, out, err = light("ticket", "ab" * 32, *common)
    assert code == 0, err
    assert "does not exist (proven absent)" in out and "verified at block" in out
    assert json.loads(state.read_text())["height"] >= trusted

    code, out, _ = light("status", "--genesis", str(genesis), "--state", str(state), "--json")
    assert code == 0 and json.loads(out)["height"] >= trusted

    code, out, err = light("product", GTIN, "L1", *common, "--json")
    assert code == 0 and json.loads(out)["value"]["owner"] == "cust:" + alice.public.hex(), err
    code, out, err = light("quality", "shopmart", *common, "--json")
    assert code == 0 and json.loads(out)["value"]["handled"] >= 1, err


def test_cli_starts_from_a_trusted_header_hash(cluster: Cluster, tmp_path: Path) -> None:
    genesis = tmp_path / "genesis.json"
    genesis.write_text(cluster.nodes[0].genesis.to_json())
    deadline = time.monotonic() + 30
    while (r := httpx.get(f"{cluster.urls[3]}/v1/headers/1", timeout=10)).status_code == 404:  # node 3 may lag a little
        assert time.monotonic() < deadline, "node 3 has no block 1"
        time.sleep(0.02)
    h = r.json()
    args = ["ticket", "ab" * 32, "--node", cluster.urls[3], "--genesis", str(genesis), "--trust-height", "1"]
    code, out, err = light(*args, "--trust-hash", h["hash"], "--state", str(tmp_path / "a.json"))
    assert code == 0 and "proven absent" in out, err
    code, out, err = light(*args, "--trust-hash", "00" * 32, "--state", str(tmp_path / "b.json"))
    assert code == 1 and "light.fork" in err
    assert not (tmp_path / "b.json").exists()


def test_cli_refuses_a_chain_signed_by_other_validators(cluster: Cluster, tmp_path: Path) -> None:
    g = cluster.nodes[0].genesis
    others = ValidatorSet(validators=tuple(ValidatorId(KeyPair.from_seed(bytes([i]) * 32).public) for i in range(4)))
    fake = dataclasses.replace(g, validators=others)
    genesis = tmp_path / "fake-genesis.json"
    genesis.write_text(fake.to_json())
    code, out, err = light("ticket", "ab" * 32, "--node", cluster.urls[0], "--genesis", str(genesis),
                           "--state", str(tmp_path / "t.json"), "--json")
    assert code == 1
    assert json.loads(out)["reason"] == "light.validators_unproven" and "refused: light.validators_unproven" in err
    code, _, err = light("ticket", "ab" * 32, "--node", "http://127.0.0.1:9", "--genesis", str(genesis),
                         "--state", str(tmp_path / "t2.json"))
    assert code == 3 and "light.node_unavailable" in err


@pytest.mark.cluster
def test_cli_against_four_node_processes(tmp_path: Path) -> None:
    from afterchain.node.tools.localnet import LocalNet

    net = LocalNet(tmp_path / "net")
    net.create(4, view_timeout_ms=1500)
    try:
        net.start_all()
        net.wait_healthy(timeout_s=60)
        urls = [n.api_url for n in net.nodes()]
        keys: dict[str, str | KeyPair] = {o: str(net.root / "keys" / f"{o}.key") for o in ("acme", "shopmart")}
        tid = make_ticket(urls, keys, KeyPair.from_seed(b"light-cluster-customer".ljust(32, b"\0")), "P1")
        base = [sys.executable, "-m", "afterchain.node.cli", "light", "ticket"]
        common = ["--node", urls[3], "--genesis", str(net.root / "genesis.json"), "--state", str(tmp_path / "trust.json"),
                  "--witness", urls[0]]
        r = subprocess.run([*base, tid.hex(), *common, "--json"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["verified"] and doc["status"] == "opened" and doc["timeline"][0]["status"] == "opened"
        r = subprocess.run([*base, "cd" * 32, *common], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "does not exist (proven absent)" in r.stdout
    finally:
        net.stop_all()
