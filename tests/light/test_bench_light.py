"""`./scripts/bench light --quick` runs and reports proof size and verify time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from afterchain.node.bench import light as bench


def test_bench_quick_runs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_file = tmp_path / "light.json"
    assert bench.main(["--quick", "--json", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert "proof size: median" in out and "verify_answer" in out
    r = json.loads(out_file.read_text())
    assert 0 < r["proof_bytes_median"] <= r["proof_bytes_max"] < 2000
    assert all(s["answer_bytes"] > s["proof_bytes"] and s["verify_answer_ms"] > 0 for s in r["per_validator_set"])
