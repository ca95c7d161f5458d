"""`./scripts/bench vm --quick` runs and reports both backends."""

from __future__ import annotations

import pytest

from afterchain.node.bench import vm as bench_vm


def test_bench_quick(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_vm.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "wasm" in out and "lua" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("wasm", "lua"))]
    assert len(rows) == 2 and all(float(r[1].replace(",", "")) > 0 for r in rows)
