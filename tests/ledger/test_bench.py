"""The ledger benchmark runs (quick mode) and its mix is all accepted."""

from __future__ import annotations

from afterchain.node.bench import ledger as bench


def test_bench_quick_runs(capsys) -> None:  # type: ignore[no-untyped-def]
    assert bench.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "events/s" in out and "rejected in the mix: none" in out


def test_mix_is_valid_in_memory() -> None:
    events = bench.Mix(seed=3).events(1200)
    res = bench.apply_run(events, None, decoded=True)
    assert res["rejected"] == {} and res["events"] == 1200


def test_bench_prune_compare_quick(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """--prune-compare: the pruned store ends with fewer SMT nodes than the unpruned one."""
    import json

    out = tmp_path / "prune.json"
    assert bench.main(["--quick", "--prune-compare", "--prune-keep", "4", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["pruned"]["smt_nodes"] < figures["unpruned"]["smt_nodes"]
    assert figures["pruned"]["last_block_pruned_nodes"] > 0 and figures["unpruned"]["last_block_pruned_nodes"] == 0
