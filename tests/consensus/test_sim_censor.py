"""The censorship bound in the fault simulator (issue 28): censoring and slow primaries
(f of them) over seeded network faults; 0 safety violations and 0 bound violations.
Default suite: 50 seeds (10 per kind); `-m slow`: 1,000 (200 per kind) plus n = 7."""

from __future__ import annotations

import pytest

from afterchain.consensus.sim.censor import CENSOR_KINDS, CensorConfig, run_censor, without_timers


def _failures(kind: str, seeds: range, nodes: int = 4) -> list[str]:
    out = []
    for seed in seeds:
        res = run_censor(CensorConfig(seed=seed, kind=kind, nodes=nodes))
        if not res.ok:
            out.append(f"{kind} seed {seed}: {res.violations[:2]}")
    return out


@pytest.mark.parametrize("kind", CENSOR_KINDS)
def test_default_censor_suite(kind: str) -> None:
    assert _failures(kind, range(10)) == []


@pytest.mark.slow
@pytest.mark.parametrize("kind", CENSOR_KINDS)
def test_censor_suite_1000_seeds(kind: str) -> None:
    assert _failures(kind, range(10, 210)) == []


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["censor-sender", "slow-min"])
def test_censor_suite_seven_nodes_two_byzantine(kind: str) -> None:
    assert _failures(kind, range(40), nodes=7) == []


def test_disabling_the_request_timer_is_caught() -> None:
    """The mutation check: the same seeds with the request timers off violate the bound
    (whenever a Byzantine replica is primary once the network is synchronous)."""
    caught = sum(not run_censor(without_timers(CensorConfig(seed=s, kind="censor-sender"))).ok for s in range(6))
    assert caught >= 1
