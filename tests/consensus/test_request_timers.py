"""Request timers (consensus.requests; issue 28): relay at T1, view change at T2, the
slow-primary rule, and their effect on real replicas in a fault-free simulated run."""

from __future__ import annotations

import pytest

from afterchain.consensus.requests import NO_TIMERS, HeldRequests, RequestTimers
from afterchain.consensus.sim.censor import CensorConfig, run_censor, without_timers

T = RequestTimers(forward_ticks=3, timeout_ticks=8, slow_blocks=2)


def test_held_requests_forward_once_at_t1_and_expire_at_t2() -> None:
    h = HeldRequests(T)
    h.hold([b"a"], now=0)
    h.hold([b"b", b"a"], now=2)  # holding again keeps the first start
    assert h.due_forwards(2) == []
    assert h.due_forwards(3) == [b"a"]
    assert h.due_forwards(5) == [b"b"] and h.due_forwards(9) == []  # each once
    assert h.expired(7) is None and h.expired(8) == b"a"
    h.release([b"a"])
    assert h.expired(9) is None and h.expired(10) == b"b"


def test_a_new_view_restarts_every_timer() -> None:
    h = HeldRequests(T)
    h.hold([b"a", b"b"], now=0)
    assert h.due_forwards(4) == [b"a", b"b"]
    h.restart(10)
    assert h.expired(17) is None and h.expired(18) == b"a"
    assert h.due_forwards(13) == [b"a", b"b"]  # relayed again, to the new primary


def test_underfilled_blocks_in_a_row_mark_a_slow_primary() -> None:
    h = HeldRequests(T)
    h.hold([b"a"], now=0)
    assert not h.on_block(5, has_room=True)  # held 5 < 2 x T1: not yet a skip
    assert not h.on_block(6, has_room=True)  # 1st underfilled block
    assert not h.on_block(7, has_room=False)  # a full block resets the count
    assert not h.on_block(8, has_room=True)
    assert h.on_block(9, has_room=True)  # 2 in a row
    assert not HeldRequests(NO_TIMERS).on_block(9, has_room=True)


def test_timer_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        HeldRequests(RequestTimers(forward_ticks=8, timeout_ticks=8))
    HeldRequests(NO_TIMERS)  # off: nothing to check


@pytest.mark.parametrize("kind", ["censor-sender", "censor-org", "slow-min"])
def test_a_censoring_or_slow_first_primary_is_voted_out(kind: str) -> None:
    """Validator 0 (primary of view 0) censors or slows (40 events in 100 ticks: one per block
    every 17 ticks takes 680 ticks, beyond the bound); no network faults. With the request
    timers the backups vote it out and every event commits within the bound; without them
    (the mutation) the censored events never commit and the checker says so."""
    cfg = CensorConfig(seed=1, kind=kind, faults=(), fault_ticks=1, byzantine_first=True, events=40, submit_ticks=100)
    res = run_censor(cfg)
    assert res.violations == [] and res.committed == res.submitted == 40
    assert res.expiries >= 1 and res.view >= 1
    off = run_censor(without_timers(cfg))
    assert off.expiries == 0 and off.view == 0
    assert any("censorship bound" in v or "never committed" in v for v in off.violations)
