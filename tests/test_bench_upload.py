"""`./scripts/bench upload --quick` runs both sides and splits the validators' upload by
peer role and message (issue 23's accounting)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from afterchain.node.bench.upload import main


@pytest.mark.slow  # a bench's quick run (6-19 s on 2 cores): the default suite stays under 10 minutes
def test_upload_bench_quick(tmp_path: Path) -> None:
    out = tmp_path / "upload.json"
    assert main(["--quick", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    a, b = res["members_0"], res["members_2"]
    assert a["committed"] == a["events"] and b["committed"] == b["events"] and b["members_caught_up"]
    assert a["validator_upload_bytes_per_event"]["to_members"] == 0
    assert not [k for k in a["by_message_per_validator_per_block"] if k.startswith("member:")]
    # with members, validators send them blocks (pushes or answers) and nothing of consensus
    sent = b["by_message_per_validator_per_block"]
    assert sum(sent.get(k, {"bytes": 0})["bytes"] for k in ("member:RelayBlocks", "member:RelayBlocksDeflated")) > 0
    assert not [k for k in sent if k.startswith("member:Signed")], sent
    assert res["validator_upload_per_event_ratio"] > 1
