"""`./scripts/bench soak --quick` on real processes: a crash drill and member1 leaving under a
paced load, then the nemesis checker over every node (slow: about 2 minutes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from afterchain.node.bench import soak

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def test_soak_quick(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    assert soak.main(["--quick", "--dir", str(tmp_path / "w"), "--json", str(out), "--plot", str(tmp_path / "s.png")]) == 0
    report = json.loads(out.read_text())
    assert report["ok"] and report["lost"] == 0 and report["duplicated"] == 0
    assert report["acknowledged"] > 0
    kinds = [f["fault"] for f in report["faults"]]
    moves = [k for k in kinds if k.startswith("member1 ")]
    # member1 left at least once and is back at the end (drills may come after its last join)
    assert any(k.startswith("SIGKILL") for k in kinds) and "member1 leaves" in moves and moves[-1] == "member1 joins"
    assert (tmp_path / "s.png").stat().st_size > 0
    nodes = report["summary"]
    assert {"node0", "node1", "node2", "node3", "member0", "member1"} <= set(nodes)
