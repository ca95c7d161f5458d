"""The seeded fault simulator: the default seed suite, determinism, the mutation check and
(slow) the 10,000-seed run."""

from __future__ import annotations

from dataclasses import fields

import pytest

from afterchain.consensus.safety import ALL_RULES, SafetyRules
from afterchain.consensus.sim import ALL_FAULTS, RECONFIG, SimConfig, run
from afterchain.consensus.sim.__main__ import main
from afterchain.consensus.sim.mutations import MUTATIONS, rules_without

RECONFIG_FAULTS = (*ALL_FAULTS, RECONFIG)
RECONFIG_MUTATIONS = {"epoch_check", "epoch_window"}

# n: (byzantine, seeds). 240 seeds, every run with f Byzantine replicas and all faults
# (fewer seeds for the larger, costlier runs; `-m slow` runs 1,200 / 500 / 300 seeds).
DEFAULT_SUITE = {4: (1, range(0, 150)), 7: (2, range(0, 60)), 10: (3, range(0, 30))}


def _failures(n: int, byzantine: int, seeds: range, **kw: object) -> list[str]:
    out = []
    for seed in seeds:
        res = run(SimConfig(seed=seed, nodes=n, byzantine=byzantine, **kw))  # type: ignore[arg-type]
        if not res.ok:
            out.append(f"seed {seed}: {res.violations[:3]}")
    return out


@pytest.mark.parametrize("n", sorted(DEFAULT_SUITE))
def test_default_seed_suite_has_no_violations(n: int) -> None:
    byzantine, seeds = DEFAULT_SUITE[n]
    assert _failures(n, byzantine, seeds) == []


@pytest.mark.parametrize("n", [5, 6, 8])
def test_validator_counts_that_are_not_3f_plus_1(n: int) -> None:
    """Quorums are n - f. (With 2f+1, i.e. 3 of 6, two quorums can be disjoint and
    agreement breaks.)"""
    assert _failures(n, (n - 1) // 3, range(15)) == []


def test_real_ed25519_configuration() -> None:
    """Same runs with real signatures: certificates pass `CommitCertificate.verify`."""
    assert _failures(4, 1, range(3), real_crypto=True) == []


def test_same_seed_same_trace_hash() -> None:
    a = run(SimConfig(seed=7, nodes=4, byzantine=1))
    b = run(SimConfig(seed=7, nodes=4, byzantine=1))
    c = run(SimConfig(seed=8, nodes=4, byzantine=1))
    assert a.trace_hash == b.trace_hash and a.committed == b.committed
    assert a.trace_hash != c.trace_hash


def test_fault_free_run_makes_steady_progress() -> None:
    res = run(SimConfig(seed=1, nodes=4, byzantine=0, faults=()))
    assert res.ok and res.view == 0
    assert res.committed >= res.ticks // 2  # about one block per tick without faults


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_mutation_is_caught_within_1000_seeds(mutation: str) -> None:
    """Disable one safety rule: the simulator must report a violation (the epoch rule is
    exercised only by runs with validator-set changes)."""
    faults = RECONFIG_FAULTS if mutation in RECONFIG_MUTATIONS else ALL_FAULTS
    for seed in range(1000):
        if not run(SimConfig(seed=seed, nodes=4, byzantine=1, faults=faults, mutations=(mutation,))).ok:
            return
    pytest.fail(f"mutation {mutation} not caught in 1000 seeds")


def test_every_safety_rule_has_a_named_mutation() -> None:
    assert set(MUTATIONS) == {f.name for f in fields(SafetyRules)}
    assert SafetyRules() == ALL_RULES and all(getattr(ALL_RULES, m) for m in MUTATIONS)
    for m in MUTATIONS:
        off = rules_without([m])
        assert [f.name for f in fields(SafetyRules) if getattr(off, f.name) is False] == [m]
    with pytest.raises(ValueError, match="unknown mutations"):
        rules_without(["no_such_rule"])


# validator-set changes (n -> n+1 -> n+3 -> n) under every other fault
RECONFIG_SUITE = {4: (1, range(0, 40)), 7: (2, range(0, 12))}


@pytest.mark.parametrize("n", sorted(RECONFIG_SUITE))
def test_reconfig_seed_suite_has_no_violations(n: int) -> None:
    byzantine, seeds = RECONFIG_SUITE[n]
    assert _failures(n, byzantine, seeds, faults=RECONFIG_FAULTS) == []


def test_reconfig_runs_change_the_set_three_times() -> None:
    """A reconfig run really goes 4 -> 5 -> 7 -> 4 and the final set commits: the spare
    nodes are members at the end, the proposer of the last change and a Byzantine node are
    not."""
    from afterchain.consensus.sim import Sim

    cfg = SimConfig(seed=3, nodes=4, byzantine=1, faults=RECONFIG_FAULTS)
    sim = Sim(cfg)
    while sim.now < cfg.fault_ticks + cfg.liveness_ticks:
        sim.step()
        final = sim.final_target(0)
        if final is not None and min(sim.final_heights()) >= final + 4:
            break
    assert not sim.violations
    assert [len(m) for _, m in sim.ref.adopted] == [4, 5, 7, 4]
    final_set = set(sim.ref.members)
    assert {4, 5, 6} <= final_set and not final_set & sim.schedule.byzantine
    for node in sim.nodes:
        r = node.replica
        if r is not None and not node.byzantine:
            assert r.is_member == (node.index in final_set)


def test_reconfig_is_not_part_of_all(capsys: pytest.CaptureFixture[str]) -> None:
    assert "reconfig" not in ALL_FAULTS and "reconfig" in RECONFIG_FAULTS
    assert SimConfig(seed=0).total_nodes == 4 and SimConfig(seed=0, faults=RECONFIG_FAULTS).total_nodes == 7
    assert main(["--seeds", "0-1", "--nodes", "4", "--faults", "all,reconfig"]) == 0
    assert "reconfig seeds=0-1: runs 2, failed 0" in capsys.readouterr().out


def test_cli_summary_and_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seeds", "0-1", "--nodes", "4", "--trace-hash"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "violations: 0"
    assert any(line.startswith("n=4 byzantine=1") and "seeds/min" in line for line in out)
    assert main(["--seeds", "0-0", "--nodes", "4", "--mutate", "commit_quorum"]) == 1
    out = capsys.readouterr().out
    assert "replay: python -m afterchain.consensus.sim --seeds 0-0" in out and not out.endswith("violations: 0\n")


@pytest.mark.slow
@pytest.mark.parametrize("n,byzantine,seeds", [(4, 1, 1200), (7, 2, 500), (10, 3, 300)])
def test_two_thousand_reconfig_seeds(n: int, byzantine: int, seeds: int) -> None:
    """2,000 seeds in all with validator-set changes under every fault."""
    assert _failures(n, byzantine, range(seeds), faults=RECONFIG_FAULTS) == []


@pytest.mark.slow
@pytest.mark.parametrize("n,byzantine,start", [(4, 1, 0), (7, 2, 0), (10, 3, 0), (4, 0, 10_000), (7, 1, 10_000)])
def test_ten_thousand_seeds(n: int, byzantine: int, start: int) -> None:
    counts = {4: 4000, 7: 2500, 10: 1500}
    seeds = range(start, start + (counts[n] if byzantine == (n - 1) // 3 else 1000))
    assert _failures(n, byzantine, seeds) == []
