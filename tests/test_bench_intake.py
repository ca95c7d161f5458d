"""`./scripts/bench intake --quick` runs, and a backup node hashes and decodes each event a
bounded number of times (a regression here is an extra pass over every event)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_intake_bench_quick_runs_and_counts_hashes(tmp_path: Path) -> None:
    out = tmp_path / "intake.json"
    proc = subprocess.run(
        [sys.executable, "-m", "afterchain.node.bench", "intake", "--quick", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(out.read_text())
    for stage in ("gossip", "api", "preprepare", "commit"):
        assert figures["us_per_event"][stage] > 0
    counts = figures["per_event_counts"]
    # gossip: the raw hash (cache key) and the event id; each event decoded once, then never again
    # (building the nodes is counted apart, as "setup": it hashes the genesis and key material)
    assert counts["gossip"]["sha256"] == 2.0 and counts["gossip"]["decode"] == 1.0
    # pre-prepare (compact, its events had by gossip): no event is hashed again (the block is
    # rebuilt by the hashes it names); the Merkle tree over those hashes is about 2 per event
    assert counts["preprepare"]["sha256"] <= 2.01 and counts["preprepare"]["decode"] == 0
    assert counts["commit"]["decode"] == 0
