"""The README's "A five-line session" works as written: in-process against the test
cluster (its lines run through the CLI, node URLs found in ./.cluster/network.json), and
(slow) through bash against a real 4-process `LocalNet`."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from afterchain.node.cli import cli

from .cluster import Cluster

README = Path(__file__).resolve().parents[2] / "README.md"


def session_lines() -> list[str]:
    text = README.read_text()
    section = text.split("## A five-line session", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) == 2, "the section has a set-up block and the five-line session"
    assert len(blocks[1].strip().splitlines()) == 5
    return [ln for b in blocks for ln in b.strip().splitlines()]


def test_readme_session_in_process(cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".cluster").mkdir()
    (tmp_path / ".cluster" / "keys").symlink_to(cluster.root / "keys")
    ports = [int(u.rsplit(":", 1)[1]) for u in cluster.urls]
    (tmp_path / ".cluster" / "network.json").write_text(json.dumps({"nodes": [{"api_port": p} for p in ports]}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AFTERCHAIN_NODE", raising=False)
    monkeypatch.delenv("AFTERCHAIN_CLUSTER_DIR", raising=False)
    env: dict[str, str] = {}
    outputs = []
    for line in session_lines():
        var = None
        m = re.fullmatch(r"(\w+)=\$\((.*)\)", line)
        if m:
            var, line = m.group(1), m.group(2)
        argv = [re.sub(r"\$(\w+)", lambda v: env[v.group(1)], a) for a in shlex.split(line)]
        assert argv[0] == "afterchain"
        r = CliRunner().invoke(cli, argv[1:], catch_exceptions=False)
        assert r.exit_code == 0, f"{line}\n{r.stdout}\n{r.stderr}"
        outputs.append(r.stdout)
        if var:
            env[var] = r.stdout.strip()
    assert "acknowledged" in outputs[-4]  # the ack line shows the ticket acknowledged
    assert "closed" in outputs[-2]
    r = CliRunner().invoke(cli, ["ticket", "show", env["T"], "--json"])
    t = json.loads(r.stdout)
    assert t["status"] == "closed" and t["org"] == "fixit" and t["rating"] is not None
    assert [h[0] for h in t["hist"]] == ["opened", "acknowledged", "resolved", "closed"]


@pytest.mark.slow
@pytest.mark.cluster
def test_readme_session_in_bash_against_localnet(tmp_path: Path) -> None:
    from afterchain.node.tools.localnet import LocalNet

    net = LocalNet(tmp_path / ".cluster")
    net.create(4)
    net.start_all()
    try:
        net.wait_healthy(timeout_s=90)
        script = "set -euo pipefail\n" + "\n".join(session_lines()) + '\nafterchain ticket show "$T" --json\n'
        bindir = str(Path(sys.executable).parent)
        env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
        env.pop("AFTERCHAIN_NODE", None)
        env.pop("AFTERCHAIN_CLUSTER_DIR", None)
        p = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
        assert p.returncode == 0, p.stdout + p.stderr
        t = json.loads(p.stdout[p.stdout.rindex("\n{") :])
        assert t["status"] == "closed" and t["rating"] is not None
    finally:
        net.stop_all()
