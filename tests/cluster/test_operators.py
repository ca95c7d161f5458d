"""Operators' view: `./scripts/cluster` up --demo / status / stop / start / down against real
processes, and the web dashboard checked in headless Chromium (skipped, with the reason,
when Chromium is not installed; `.ci/run` installs it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from afterchain.node.tools.cluster import cluster
from afterchain.node.tools.localnet import LocalNet

from .clihelp import status_json

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_cluster_up_demo_status_drill_down_and_dashboard(tmp_path: Path) -> None:
    d = tmp_path / "net"
    cli = CliRunner()
    try:
        r = cli.invoke(cluster, ["up", "--dir", str(d), "--demo"], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        assert "demo finished" in r.output
        assert "SLA breached" in r.output and "released the escrow" in r.output
        assert "light client: ticket" in r.output and "is closed" in r.output
        for n in range(4):
            assert f"node{n}" in r.output
        ticket = re.search(r"\?ticket=([0-9a-f]{64})", r.output)
        assert ticket is not None
        net = LocalNet(d)
        assert (d / "prometheus.yml").read_text().count("127.0.0.1:") == 4

        # running `up` again: already up, nothing new started
        pids = net.running()
        r = cli.invoke(cluster, ["up", "--dir", str(d)])
        assert r.exit_code == 0 and "already up" in r.output
        assert net.running() == pids

        st = status_json(cli, d)
        assert [n["node"] for n in st["nodes"]] == ["node0", "node1", "node2", "node3"]
        assert all(n["running"] and n["height"] > 0 and n["peers"] == 3 for n in st["nodes"])

        # drill: crash one node, see it stopped, start it again
        r = cli.invoke(cluster, ["stop", "node2", "--kill", "--dir", str(d)])
        assert r.exit_code == 0 and "SIGKILL" in r.output
        st = status_json(cli, d)
        assert [n["running"] for n in st["nodes"]] == [True, True, False, True]
        r = cli.invoke(cluster, ["start", "node2", "--dir", str(d)])
        assert r.exit_code == 0 and "healthy" in r.output
        r = cli.invoke(cluster, ["logs", "node2", "--dir", str(d), "-n", "5"])
        assert r.exit_code == 0 and len(r.stdout.splitlines()) == 5, r.output
        assert all(json.loads(ln)["node"] == "node2" for ln in r.stdout.splitlines())
        # the restart is in its log (after node_started a node now logs its identity and peers)
        r = cli.invoke(cluster, ["logs", "node2", "--dir", str(d), "-n", "200"])
        assert r.exit_code == 0 and "node_started" in r.output

        # metrics
        m = httpx.get(f"{net.node('node0').api_url}/metrics", timeout=5).text
        for name in ("afterchain_height", "afterchain_view_changes_total", "afterchain_commit_latency_seconds_bucket",
                     "afterchain_events_committed_total", "afterchain_mempool_events", "afterchain_peers",
                     "afterchain_fsync_seconds_bucket"):
            assert name in m, name

        browser = chromium()
        if browser is None:
            pytest.skip("Chromium is not installed (apt-get install chromium); the dashboard check did not run")
        url = f"{net.node('node1').api_url}/?ticket={ticket.group(1)}"
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chrome'}", "--virtual-time-budget=8000"]
        dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=90).stdout
        assert 'data-ticket-status="closed"' in dom, dom[-2000:]
        assert "complaint" in dom and "escalated" in dom  # the timeline shows the breach
        assert "FixIt Repairs" in dom  # the quality table
        assert re.search(r"validator \d", dom)  # latest blocks with their signers
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        subprocess.run([browser, *flags, "--window-size=1400,1100", f"--screenshot={shot}", url],
                       capture_output=True, timeout=90)
        assert shot.exists() and shot.stat().st_size > 10_000
    finally:
        r = cli.invoke(cluster, ["down", "--dir", str(d)])
        assert LocalNet(d).running() == {f"node{i}": None for i in range(4)}
        r = cli.invoke(cluster, ["down", "--dir", str(d)])
        assert "nothing was running" in r.output
