"""`./scripts/bench codec --quick` runs, cross-checks msgspec against the project's decoder
and reports every figure (the CI proof that the issue-27 codec comparison works)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from afterchain.node.bench import BENCHES

ROOT = Path(__file__).resolve().parents[1]


def test_codec_bench_quick_runs_and_saves_json(tmp_path: Path) -> None:
    assert "codec" in BENCHES
    out = tmp_path / "codec.json"
    proc = subprocess.run(
        [sys.executable, "-m", "afterchain.node.bench", "codec", "--quick", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr  # (run() asserts msgspec's values and bytes equal the decoder's)
    assert "ticket.open" in proc.stdout and "mix" in proc.stdout
    figures = json.loads(out.read_text())
    assert set(figures["kinds"]) == {"ticket.open", "ticket.ack", "ticket.update", "shipment.checkpoint", "trace.record",
                                     "rating.submit", "mix"}
    for f in figures["kinds"].values():
        assert 0 < f["unpack"] < f["current"] and f["msgspec"] > 0 and f["msgspec_full"] > 0 and f["mean_bytes"] > 100
