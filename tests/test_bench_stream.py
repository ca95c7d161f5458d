"""`./scripts/bench stream --quick` runs: every subscriber gets every event of each phase,
over real HTTP from another process, and the figures the docs quote are there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_stream_bench_quick_delivers_every_event_to_every_subscriber(tmp_path: Path) -> None:
    out = tmp_path / "stream.json"
    proc = subprocess.run(
        [sys.executable, "-m", "afterchain.node.bench", "stream", "--quick", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(out.read_text())
    phases = figures["phases"]
    assert [p["subscribers"] for p in phases] == [0, 1, 3]
    base, one, three = phases
    assert base["delivered"] == 0 and base["node_cpu_s"] > 0 and base["cpu_pct_per_subscriber"] is None
    for p in (one, three):
        assert p["all_delivered"] and p["delivered"] == p["subscribers"] * p["events"]
        assert p["per_subscriber_per_s_min"] > 0 and p["total_per_s"] >= p["per_subscriber_per_s_min"]
        assert p["cpu_us_per_delivered_event"] is not None and p["stats"]["cut_off"] == 0
    assert "subs" in proc.stdout and "µs/delivered event" in proc.stdout
