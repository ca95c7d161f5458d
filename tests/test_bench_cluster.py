"""`./scripts/bench cluster --quick` runs end to end (a smoke run: it proves the bench works,
it asserts no speed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.bench import cluster

pytestmark = pytest.mark.cluster


def test_cluster_bench_quick(tmp_path: Path) -> None:
    assert cluster.main(["--quick", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "cluster.json").read_text())
    assert res["submitted"] > 0 and res["committed"] == res["submitted"]
    assert res["ceiling"]["events_per_s"] > 0 and res["bound_events_per_s"] > 0
    assert set(res["per_node"]) == {"node0", "node1", "node2", "node3"}
    assert (tmp_path / "cluster.png").stat().st_size > 1000
