"""`./scripts/bench member --quick` runs and reports both settings (issue 23)."""

from __future__ import annotations

import json
from pathlib import Path

from afterchain.node.bench.member import main


def test_member_bench_quick(tmp_path: Path) -> None:
    out = tmp_path / "member.json"
    assert main(["--quick", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["rely_on_certificate"]["events_verified"] == 0
    assert res["verify_event_signatures"]["events_verified"] == res["events"]
    assert res["rely_on_certificate"]["cpu_us_per_event"] > 0 and res["verify_cost_ratio"] > 0
