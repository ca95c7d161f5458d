"""`./scripts/bench protocol --quick` runs and reports every figure (the CI proof that it works)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from afterchain.node.bench import BENCHES, main

ROOT = Path(__file__).resolve().parents[1]


def test_protocol_bench_quick_runs_and_saves_json(tmp_path: Path) -> None:
    out = tmp_path / "protocol.json"
    proc = subprocess.run(
        [sys.executable, "-m", "afterchain.node.bench", "protocol", "--quick", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for label in ("raw PyNaCl Ed25519 verifies/s", "ratio to raw", "SMT update, 500-key block", "SMT proof size", "SMT proof verify"):
        assert label in proc.stdout
    figures = json.loads(out.read_text())
    assert figures["events"]["raw_verifies_per_s"] > 0
    assert 0 < figures["events"]["path_ratio"] <= 1.2
    assert [s["keys"] for s in figures["smt"]] == [2_000, 20_000]
    assert figures["proofs"]["all_proofs_verify"] is True
    assert 32 < figures["proofs"]["proof_median_bytes"] <= figures["proofs"]["proof_max_bytes"]


def test_unknown_bench_prints_usage(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["no-such-bench"]) == 2
    err = capsys.readouterr().err
    assert "unknown bench" in err and "protocol" in err
    assert "protocol" in BENCHES


def test_scripts_bench_dispatches_to_the_module() -> None:
    text = (ROOT / "scripts" / "bench").read_text()
    assert 'ensure_venv "dev,bench"' in text and "-m \"afterchain.node.bench.${name}\"" in text


def test_protocol_bench_compares_two_smt_files(tmp_path: Path) -> None:
    """--smt-compare loads another smt.py (here this one's own file) beside the current tree;
    the same blocks must give the same roots through both, and both medians are saved."""
    from afterchain.protocol import smt

    out = tmp_path / "cmp.json"
    assert main(["protocol", "--quick", "--smt-compare", smt.__file__, "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["keys"] == 20_000 and figures["blocks"] == 4
    assert figures["old_median_ms"] > 0 and figures["new_median_ms"] > 0


def test_protocol_bench_compares_smt_layouts(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """--smt-layout paged runs the binary and the paged tree over the same blocks (their
    roots are compared after every block inside the bench) and reports both."""
    out = tmp_path / "layouts.json"
    assert main(["protocol", "--quick", "--smt-layout", "paged", "--json", str(out)]) == 0
    assert "paged / binary" in capsys.readouterr().out
    figures = json.loads(out.read_text())
    assert [c["keys"] for c in figures] == [2_000, 20_000]
    for c in figures:
        assert c["binary"]["block_median_ms"] > 0 and c["paged"]["block_median_ms"] > 0
        assert c["paged"]["records"] < c["binary"]["records"]
