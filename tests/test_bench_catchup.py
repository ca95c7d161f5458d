"""`./scripts/bench catchup --quick` runs end to end (a smoke run; it asserts no speed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from afterchain.node.bench import catchup

pytestmark = pytest.mark.cluster


@pytest.mark.slow  # a bench's quick run (6-19 s on 2 cores): the default suite stays under 10 minutes
def test_catchup_bench_quick(tmp_path: Path) -> None:
    assert catchup.main(["--quick", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "catchup.json").read_text())
    assert res["events"] == 800 and res["blocks"] > 0 and res["ratio"] > 0
    assert res["catchup_cpu_s"] > 0 and res["catchup_events_per_cpu_s"] > 0


@pytest.mark.slow
def test_catchup_bench_quick_state_sync_from_peers(tmp_path: Path) -> None:
    """A validator and a member rejoin by replay, then on empty data directories by state
    sync from their peers' snapshots (a smoke run; it asserts no speed)."""
    assert catchup.main(["--quick", "--state-sync", "--member", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "catchup.json").read_text())
    for p in ("", "member_"):
        assert res[f"{p}state_sync_total_s"] > 0 and res[f"{p}state_sync_bytes"] > 0
        assert res[f"{p}state_sync_values"] > 0 and res[f"{p}state_sync_height"] > 0


@pytest.mark.slow
def test_catchup_bench_quick_prebuilt_chain(tmp_path: Path) -> None:
    """With a chain built before the network starts (`--prebuilt`), the joining validator
    and member replay all of it, then state-sync it (a smoke run; it asserts no speed)."""
    assert catchup.main(["--quick", "--prebuilt", "3000", "--state-sync", "--member", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "catchup.json").read_text())
    assert res["prebuilt"]["events"] == 3001 and res["events_to_join"] == 3001 + res["events"]
    for p in ("", "member_"):
        assert res[f"{p}state_sync_values"] > 3000 and res[f"{p}state_sync_height"] > res["prebuilt"]["blocks"]
