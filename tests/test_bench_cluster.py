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


def test_member_lag_from_node_logs(tmp_path: Path) -> None:
    """The lag is read from each node's `block_committed` lines: validators' first time per
    height, members' time minus it; heights before `since` (members joining) are left out."""
    def log(name: str, lines: list[tuple[int, str]]) -> Path:
        p = tmp_path / f"{name}.log"
        p.write_text("\n".join(
            [json.dumps({"event": "node_started", "timestamp": "2026-12-07T20:00:00.000000Z"}), "not json"]
            + [json.dumps({"height": h, "events": 3, "event": "block_committed", "level": "debug", "timestamp": ts})
               for h, ts in lines]) + "\n")
        return p

    at = {
        "node0": cluster._executed_at(log("node0", [(1, "2026-12-07T20:00:01.000000Z"), (2, "2026-12-07T20:00:02.000000Z")])),
        "node1": cluster._executed_at(log("node1", [(1, "2026-12-07T20:00:01.500000Z"), (2, "2026-12-07T20:00:01.900000Z")])),
        # a height logged twice (a replay after a restart) counts from its first line
        "member0": cluster._executed_at(log("member0", [(1, "2026-12-07T20:00:03.000000Z"), (2, "2026-12-07T20:00:02.100000Z"),
                                                        (2, "2026-12-07T20:00:09.000000Z")])),
    }
    assert set(at["node0"]) == {1, 2}
    roles = {"node0": "validator", "node1": "validator", "member0": "member"}
    lag = cluster._member_lag(at, roles, source="node logs")
    assert lag is not None
    assert (lag["samples"], lag["max"], lag["heights_not_reached"]) == (2, 2.0, 0)  # 3.0 - 1.0 and 2.1 - 1.9
    since = at["node0"][2] - 0.5  # height 1 executed before the load started
    lag = cluster._member_lag(at, roles, source="node logs", since=since)
    assert lag is not None and lag["samples"] == 1 and abs(lag["max"] - 0.2) < 1e-6
    assert cluster._member_lag(at, {"node0": "validator"}, source="x") is None
