"""The JavaScript example of docs/INTEGRATION.md (docs/examples/js, Node 20): it reproduces the
test vectors of docs/PROTOCOL.md byte for byte, and an event it signs and submits is
accepted and committed by the test cluster. Skipped, with the reason, when `node` / `npm`
are missing or the pinned packages cannot be installed (e.g. no network, no npm cache)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from afterchain.node.client import Client

from .cluster import Cluster

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "js"
GTIN = "00012345600012"


@pytest.fixture(scope="module")
def js(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the example with its pinned packages installed (``npm ci``)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("the JavaScript example needs `node` (20 or later) and `npm` on PATH")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    if not version.startswith("v") or int(version[1:].split(".")[0]) < 20:
        pytest.skip(f"the JavaScript example needs Node 20 or later, found {version or 'an unknown version'}")
    d = tmp_path_factory.mktemp("js-example")
    for f in [*EXAMPLE.glob("*.mjs"), EXAMPLE / "package.json", EXAMPLE / "package-lock.json"]:
        shutil.copy(f, d / f.name)
    try:
        p = subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline"],
            cwd=d,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("`npm ci` of the JavaScript example did not finish in 300 s (no network?)")
    if p.returncode != 0:
        pytest.skip(f"`npm ci` of the JavaScript example failed (no network?): {p.stderr.strip()[-300:]}")
    yield d


def node_run(js: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["node", *args], cwd=js, capture_output=True, text=True, timeout=120, check=False)


def test_js_reproduces_the_protocol_test_vectors(js: Path) -> None:
    p = node_run(js, "check-vectors.mjs", str(ROOT / "docs" / "PROTOCOL.md"))
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.startswith("ok: ")


def test_an_event_signed_in_js_is_accepted_and_committed(js: Path, cluster: Cluster) -> None:
    p = node_run(js, "submit.mjs", "--node", cluster.urls[1], "--key", cluster.key_file("acme"), "--serial", "JS-1")
    assert p.returncode == 0, p.stdout + p.stderr
    outcome = json.loads(p.stdout)
    assert outcome["status"] == "committed" and outcome["height"] >= 1
    with Client(cluster.urls) as c:
        assert c.event(outcome["id"]).committed
        product = c.product(GTIN, "JS-1")
        assert product["batch"] == "JS1" and product["model"] == "Kettle 2000"
    # the same serial again: the ledger refuses it, and the script says so (exit 1, the code)
    again = node_run(js, "submit.mjs", "--node", cluster.urls[0], "--key", cluster.key_file("acme"), "--serial", "JS-1")
    refused = json.loads(again.stdout)
    assert again.returncode == 1 and refused["status"] == "rejected" and refused["code"] == "product.exists"
