"""`./scripts/bench transport --quick` runs and reports every figure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from afterchain.node.bench import BENCHES


def test_transport_bench_quick_runs_and_saves_json(tmp_path: Path) -> None:
    out = tmp_path / "transport.json"
    proc = subprocess.run(
        [sys.executable, "-m", "afterchain.node.bench", "transport", "--quick", "--json", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "round trips/s" in proc.stdout and "MB/s" in proc.stdout
    results = json.loads(out.read_text())["results"]
    assert results["rtt_seq"]["round_trips"] > 0
    for name in ("send_small", "broadcast_batch", "send_1mib"):
        assert results[name]["lost"] == 0 and results[name]["mb_per_s"] > 0
    assert "transport" in BENCHES
