"""The committed .wasm agreements are exactly what their C sources build to."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from afterchain.node.app.vm.contracts import AGREEMENTS
from afterchain.node.app.vm.contracts.build import SOURCES

ROOT = Path(__file__).resolve().parents[2]


def test_every_agreement_is_shipped_in_both_forms() -> None:
    d = ROOT / "node" / "app" / "vm" / "contracts"
    for name in AGREEMENTS:
        for suffix in ("c", "wasm", "lua"):
            assert (d / f"{name}.{suffix}").is_file(), f"{name}.{suffix}"
    assert (d / "service.c").is_file() and (d / "service.wasm").is_file()


@pytest.mark.skipif(importlib.util.find_spec("ziglang") is None, reason="ziglang (dev extra) not installed")
def test_wasm_matches_a_fresh_build_byte_for_byte() -> None:
    done = subprocess.run([sys.executable, "-m", "afterchain.node.app.vm.contracts.build", "--check"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("matches") == len(SOURCES) == len(AGREEMENTS) + 1
