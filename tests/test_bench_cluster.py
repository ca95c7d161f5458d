"""`./scripts/bench cluster --quick` runs end to end (a smoke run: it proves the bench works,
it asserts no speed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from afterchain.node.bench import cluster

pytestmark = pytest.mark.cluster


@pytest.mark.slow  # a bench's quick run (6-19 s on 2 cores): the default suite stays under 10 minutes
def test_cluster_bench_quick(tmp_path: Path) -> None:
    assert cluster.main(["--quick", "--profile", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "cluster.json").read_text())
    assert res["submitted"] > 0 and res["committed"] == res["submitted"]
    assert res["ceiling"]["events_per_s"] > 0 and res["bound_events_per_s"] > 0
    assert set(res["per_node"]) == {"node0", "node1", "node2", "node3"}
    assert (tmp_path / "cluster.png").stat().st_size > 1000
    # the upload's breakdown by receiver role and message adds up to the upload
    for name, sent in res["sent_by"].items():
        assert sum(b for _, b in sent.values()) == res["bytes_sent"][name], name
        assert sent["validator:SignedCommit"][0] > 0 and not [k for k in sent if k.startswith("member:")]
    # each event's signature is checked once per node (the API's, gossip's and pre-prepares'
    # checks of one event used to race: ~1.25 checks per event on backups)
    for name, counters in res["intake_counters"].items():
        checks = sum(v for k, v in counters.items() if k.startswith("verified_"))
        assert res["committed"] <= checks <= 1.15 * res["committed"], (name, counters)
    prof = res["cpu_profile"]
    assert set(prof["nodes"]) == {"node0", "node1", "node2", "node3"} and prof["committed_events"] > 0
    for v in prof["nodes"].values():
        assert v["cpu_s"] > 0 and v["components_us_per_event"]
        # the components split the node's whole CPU (rounding aside)
        assert abs(sum(v["components_us_per_event"].values()) - v["us_per_event"]) <= 0.02 * v["us_per_event"] + 1
