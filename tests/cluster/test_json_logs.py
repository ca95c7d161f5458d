"""Every line a real node process writes is one JSON object: four nodes over libp2p, the
HTTP access log on at one, library debug records on at another (a level changed at run
time through the admin API), junk requests, a node killed with SIGKILL mid-run and
restarted (a crash drill), then a clean stop. Each line of each node's log (its stdout and
stderr) must parse as JSON and carry the node's name, key, level, event and time."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from afterchain.node.tools.localnet import LocalNet

from .test_libp2p_cluster import product_events, submit, wait_committed

pytestmark = pytest.mark.cluster


def test_every_log_line_of_a_cluster_run_with_a_crash_drill_is_json(tmp_path: Path) -> None:
    net = LocalNet(tmp_path / "net")
    net.create(4, chain_id="json-logs", view_timeout_ms=1500)
    cfg = tmp_path / "net" / "node0" / "node.toml"
    cfg.write_text(cfg.read_text().replace('format = "json"', 'format = "json"\naccess_log = true'))
    names = ["node0", "node1", "node2", "node3"]
    try:
        net.start_all()
        net.wait_healthy(timeout_s=60)
        url0, url1 = net.node("node0").api_url, net.node("node1").api_url
        # node1: its own debug lines and py-libp2p's (many, multi-line ones among them) from now on
        r = httpx.post(f"{url1}/v1/admin/log", json={"level": "debug"}, timeout=5)
        assert r.status_code == 200 and r.json()["level"] == "debug"
        r = httpx.post(f"{url1}/v1/admin/log", json={"level": "debug", "logger": "libp2p"}, timeout=5)
        assert r.status_code == 200 and r.json()["loggers"]["libp2p"] == "debug"
        chain = net.manifest()["chain_id"]
        acme = net.member_key("acme")
        first = product_events(acme, chain, 1, 200)
        submit(url0, first)
        httpx.post(f"{url0}/v1/events", content=b"\xc1junk", headers={"content-type": "application/msgpack"}, timeout=5)
        httpx.get(f"{url0}/v1/no/such/route", timeout=5)
        wait_committed(net, names, first[-1].id)

        net.kill("node2")  # the crash drill: no chance to write a last line
        second = product_events(acme, chain, 201, 100)
        submit(url1, second)
        wait_committed(net, ["node0", "node1", "node3"], second[-1].id)
        net.start("node2")
        net.wait_healthy(["node2"], timeout_s=60)
        wait_committed(net, ["node2"], second[-1].id)
    finally:
        net.stop_all()

    root = tmp_path / "net"
    seen: dict[str, list[dict[str, object]]] = {}
    for name in names:
        path = root / name / "node.log"
        raw = path.read_bytes()
        assert raw.endswith(b"\n"), f"{path}: the last line is cut"
        entries = []
        for i, line in enumerate(raw.decode().splitlines(), 1):
            try:
                entry = json.loads(line)
            except ValueError:
                pytest.fail(f"{path}:{i} is not JSON: {line[:300]!r}")
            assert isinstance(entry, dict), f"{path}:{i} is not an object"
            assert {"event", "level", "timestamp"} <= set(entry), f"{path}:{i} lacks a field: {line[:300]}"
            assert entry.get("node") == name, f"{path}:{i} names node {entry.get('node')!r}"
            assert len(str(entry.get("node_key"))) == 16, f"{path}:{i} lacks the node's key: {line[:300]}"
            entries.append(entry)
        seen[name] = entries
    # what the run was meant to produce is there, so the check above covered it
    assert sum(e["event"] == "node_started" for e in seen["node2"]) == 2  # before and after the kill
    access = [e for e in seen["node0"] if e["event"] == "http_access"]
    assert {e["status"] for e in access} >= {202, 400, 404} and all("request_id" in e for e in access)
    assert not [e for e in seen["node1"] if e["event"] == "http_access"]  # off by default
    libp2p = [e for e in seen["node1"] if str(e.get("logger", "")).startswith("libp2p") and e["level"] == "debug"]
    assert libp2p, "node1 logged no py-libp2p record at debug level"
    assert any(e["event"] == "block_committed" and e["level"] == "debug" for e in seen["node1"])
    assert any(e["event"] == "admin_log_level_set" for e in seen["node1"])
    for name in ("node0", "node1", "node3"):
        assert any(e["event"] == "transport_peer_lost" and e.get("peer") == net.node("node2").key[:16]
                   for e in seen[name]), name
