"""`./scripts/bench snapshot --quick` runs end to end (a smoke run; it asserts no speed):
the chain it builds is certified, and its snapshot passes every check a joining node makes."""

from __future__ import annotations

import json
from pathlib import Path

from afterchain.node.bench import snapshot


def test_snapshot_bench_quick(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    assert snapshot.main(["--quick", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["events"] == 3000 and res["blocks"] == 7
    assert res["values"] > 3000 and res["verify_s"] > 0 and res["snapshot_bytes"] > 0
