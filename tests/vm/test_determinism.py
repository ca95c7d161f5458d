"""Determinism across processes: every shipped contract, in both backends, run in three
processes with different PYTHONHASHSEED, gives identical status, gas, output, writes and
events; the infinite loops stop at the same gas and the memory bomb at the cap."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    done = subprocess.run(
        [sys.executable, "-m", "tests.vm.determinism_probe"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120, check=True,
    )
    return done.stdout


def test_three_processes_agree() -> None:
    outputs = [_run(seed) for seed in ("0", "1", "4242")]
    assert outputs[0] == outputs[1] == outputs[2]
    lines = outputs[0].splitlines()
    assert len(lines) == 2 * (4 + 3 + 4) + 4
    assert any('"ok"' in line for line in lines)
    tail = lines[-4:]
    assert tail[0].startswith('["lua", "loop", "out_of_gas", 3000000')
    assert tail[1].startswith('["lua", "mem", "trap"') and "memory limit exceeded" in tail[1]
    assert tail[2].startswith('["wasm", "loop", "out_of_gas", 3000000')
    assert tail[3].startswith('["wasm", "bomb", "trap"') and "unreachable" in tail[3]  # memory.grow refused at the cap
