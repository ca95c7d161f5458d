"""The nemesis on real processes: the short form (partition the primary under load, heal)
runs in the default suite; every other scenario runs under `-m slow`
(`./scripts/nemesis --all`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from afterchain.node.tools.nemesis import SCENARIOS, run_scenario

pytestmark = pytest.mark.cluster


def _assert_clean(r: dict) -> None:  # type: ignore[type-arg]
    assert r["ok"], r.get("error")
    assert r["acknowledged"] > 100 and r["lost"] == 0 and r["duplicated"] == 0 and r["equivocations"] == 0
    assert r["faults"]
    byzantine = r["scenario"] == "byzantine"
    assert r["equivocators_committed"] == (["node3"] if byzantine else []) and bool(r["evidence_records"]) == byzantine
    if r["scenario"] == "split":
        assert r["commits_during_split"] == 0
    if r["scenario"].startswith("member-"):
        assert r["member_catch_up_s"]  # the member caught up after each fault
    if r["scenario"] in ("censor", "slow"):
        assert r["fault_to_commit_s"] > 0 and r["view_after"] >= 1, r  # the backups replaced node0
    if r["scenario"] == "member-byzantine":
        assert r["member_banned"] >= 1 and sum(r["member_refused"].values()) >= 3, r
    if r["scenario"] in ("disk-full", "fsync-fail", "corrupt"):  # the node stopped (exit 6) and rejoined after repair
        runs = 2 if r["scenario"] == "corrupt" else 1
        assert r["exit_codes"] == [6] * runs and len(r["fault_to_stop_s"]) == runs, r
        assert len(r["repair_to_caught_up_s"]) == runs and len(r["stop_messages"]) == runs, r
    if r["scenario"] == "clock-jump":  # three wrong primaries replaced; block time within the bound (+ polling slack)
        assert len(r["fault_to_commit_s"]) == 3 and r["blocks_timed"] > 0, r
        assert r["block_time_ahead_ms"] <= 2_500 and r["block_time_behind_ms"] <= 13_000, r


def test_partitioned_primary_under_load_loses_nothing(tmp_path: Path) -> None:
    r = run_scenario("partition-primary", tmp_path, load_s=2.0)
    _assert_clean(r)
    assert len(r["resume_s"]) == 2 and "catch_up_s" in r


@pytest.mark.slow  # about 4 min on the shared 2-core machine (six processes, the checker reads every block of each)
def test_lying_member_is_refused_and_disconnected_and_nothing_is_lost(tmp_path: Path) -> None:
    r = run_scenario("member-byzantine", tmp_path, load_s=2.0)
    _assert_clean(r)
    assert set(r["member_refused"]) <= {"signature_invalid", "no_quorum", "not_chained", "replay"}, r["member_refused"]


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in SCENARIOS if n not in ("partition-primary", "member-byzantine")])
def test_every_nemesis_scenario(name: str, tmp_path: Path) -> None:
    _assert_clean(run_scenario(name, tmp_path))
