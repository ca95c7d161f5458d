"""No secret in the logs: a real node process (debug logging, an admin token, admin calls
with the token, a fault-switch change, junk requests, a restart) writes neither key
material (any seed of the network's key files) nor the admin token into its log."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import httpx
import pytest

from afterchain.node.tools.localnet import LocalNet
from afterchain.protocol.crypto import KeyPair

pytestmark = pytest.mark.cluster
TOKEN = "admin-token-for-the-log-test-7f3a9c"


def test_node_logs_hold_no_key_seed_and_no_admin_token(tmp_path: Path) -> None:
    net = LocalNet(tmp_path / "net")
    net.create(4, chain_id="secrets-test", view_timeout_ms=1500, log_level="debug")
    tok = tmp_path / "net" / "node0" / "admin.token"
    tok.write_text(TOKEN + "\n")
    os.chmod(tok, 0o600)
    cfg = tmp_path / "net" / "node0" / "node.toml"
    text = cfg.read_text().replace("[api]\n", '[api]\nadmin_token_file = "admin.token"\n')
    cfg.write_text(text)
    try:
        net.start_all()
        net.wait_healthy(timeout_s=60)
        url = net.node("node0").api_url
        other = net.node("node1").key
        auth = {"authorization": f"Bearer {TOKEN}"}
        assert httpx.post(f"{url}/v1/admin/faults", json={"block": [other]}, headers=auth, timeout=5).status_code == 200
        assert httpx.post(f"{url}/v1/admin/faults", json={"block": []}, headers=auth, timeout=5).status_code == 200
        assert httpx.get(f"{url}/v1/admin/faults", headers={"authorization": "Bearer wrong"}, timeout=5).status_code == 200
        httpx.post(f"{url}/v1/events", content=b"\xc1junk", headers={"content-type": "application/msgpack"}, timeout=5)
        net.stop("node0")
        net.start("node0")
        net.wait_healthy(["node0"], timeout_s=60)
        time.sleep(0.5)
    finally:
        net.stop_all()
    root = tmp_path / "net"
    seeds = []
    for key_file in [*root.glob("node*/node.key"), *(root / "keys").glob("*.key")]:
        kp = KeyPair.from_key_file_text(key_file.read_text())
        seeds += [kp.seed.hex(), kp.seed.hex().upper()]
    logs = {p: p.read_text(errors="replace") for p in root.glob("node*/node.log")}
    assert logs and all(len(t) > 1000 for t in logs.values())
    assert "admin_faults_set" in logs[root / "node0" / "node.log"]  # the calls were logged, the token not
    for path, text in logs.items():
        for secret in [*seeds, TOKEN]:
            assert secret not in text, f"{path} contains a secret"
        # no 64-hex-character run anywhere that is a seed (also catches seeds cut differently)
        assert not set(re.findall(r"[0-9a-f]{64}", text)) & set(seeds)
