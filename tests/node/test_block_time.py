"""Block time bound (issue 28, point 6): a backup refuses a proposed block whose time is
more than `BLOCK_TIME_FUTURE_MS` ahead of its clock, or, proposed in its current view,
more than `BLOCK_TIME_PAST_MS` behind it; a block a NEW-VIEW re-issues keeps its time.
The skewed clock of the test-only node entry jumps and drifts as its file says."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from afterchain.node.runtime import clock
from afterchain.node.runtime.app_adapter import BLOCK_TIME_FUTURE_MS, BLOCK_TIME_PAST_MS, ConsensusApp
from afterchain.node.runtime.runner import _COUNTERS
from afterchain.node.testing.clock_skew import SkewedClock, main, write_skew

NOW = 1_760_000_000_000


def _app(view: int = 3) -> ConsensusApp:
    app = ConsensusApp(ledger=None, mempool=None, known=None, params_for=None,  # type: ignore[arg-type]
                       counters=dict.fromkeys(_COUNTERS, 0))
    app.attach(SimpleNamespace(view=view, next_seq=1, preprepared_blocks=dict))  # type: ignore[arg-type]
    return app


def _block(time_ms: int, view: int = 3) -> Any:
    return SimpleNamespace(header=SimpleNamespace(height=7, view=view, time_ms=time_ms, proposer=b"\x01" * 32))


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "wall_ms", lambda: NOW)


@pytest.mark.usefixtures("frozen")
def test_a_block_ahead_of_the_bound_is_refused() -> None:
    app = _app()
    assert app.check_block_time(_block(NOW + BLOCK_TIME_FUTURE_MS)) is None
    why = app.check_block_time(_block(NOW + BLOCK_TIME_FUTURE_MS + 1))
    assert why is not None and "ahead of this node's clock" in why
    assert app.check_block_time(_block(NOW + 5 * 60_000)) is not None  # a primary 5 minutes ahead
    assert app.counters["block_time_future"] == 2
    assert app.verify_payload(_block(NOW + 5 * 60_000)).verdict.name == "REJECT"


@pytest.mark.usefixtures("frozen")
def test_a_fresh_block_behind_the_bound_is_refused_a_reissued_one_is_not() -> None:
    app = _app(view=3)
    assert app.check_block_time(_block(NOW - BLOCK_TIME_PAST_MS)) is None
    why = app.check_block_time(_block(NOW - BLOCK_TIME_PAST_MS - 1))
    assert why is not None and "behind this node's clock" in why
    assert app.check_block_time(_block(NOW - 5 * 60_000, view=4)) is not None  # a later view: fresh too
    # re-issued by a NEW-VIEW: proposed (and maybe prepared) in view 2, long ago
    assert app.check_block_time(_block(NOW - 5 * 60_000, view=2)) is None
    assert app.counters["block_time_past"] == 2


def test_a_primary_whose_clock_drifts_is_refused_once_past_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """A primary gaining 50 ms a second against a backup with the right time: its blocks
    pass for the first 40 s (2,000 ms ahead), then are refused."""
    app = _app()
    monkeypatch.setattr(clock, "wall_ms", lambda: NOW)
    accepted = [s for s in range(0, 120) if app.check_block_time(_block(NOW + 50 * s)) is None]
    assert accepted == list(range(0, 41))


def test_the_skewed_clock_jumps_and_drifts(tmp_path: Path) -> None:
    real = [NOW]
    f = tmp_path / "skew"
    c = SkewedClock(f, real_ms=lambda: real[0])
    assert c.wall_ms() == NOW  # no file: no skew
    write_skew(f, 300_000)
    c._next_read = 0.0
    assert c.wall_ms() == NOW + 300_000  # a jump of 5 minutes ahead
    write_skew(f, -300_000, 1000.0)  # 5 minutes behind, gaining 1 s per second
    c._next_read = 0.0
    first = c.wall_ms()
    time.sleep(0.05)
    assert NOW - 300_000 <= first < c.wall_ms() <= NOW - 300_000 + 1000


def test_the_test_entry_refuses_to_start_without_its_switches(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("AFTERCHAIN_TEST_SWITCHES", raising=False)
    monkeypatch.setenv("AFTERCHAIN_TEST_CLOCK_FILE", "/nonexistent")
    assert main(["node", "run", "--config", "x.toml"]) == 2
    assert "test-only switch" in capsys.readouterr().err


@pytest.mark.usefixtures("frozen")
def test_the_past_bound_is_judged_from_the_proposal_s_arrival() -> None:
    """The soak found an overloaded backup reaching a pre-prepare 10.5 s after it arrived
    and refusing it as too old, and views changing for minutes: the time the message waited
    for the node's own consensus task is not the proposer's doing."""
    app = _app(view=3)
    late = _block(NOW - BLOCK_TIME_PAST_MS - 2_000)
    assert app.check_block_time(late) is not None  # judged now: refused
    app.received_ms = NOW - 5_000  # it arrived 5 s ago, 7 s after its time
    assert app.check_block_time(late) is None
    app.received_ms = NOW - 1_000  # arrived 11 s after its time: the proposer's lateness
    why = app.check_block_time(late)
    assert why is not None and "11000 ms behind this node's clock when the proposal arrived" in why
    app.received_ms = NOW + 60_000  # never later than now
    assert app.check_block_time(_block(NOW - BLOCK_TIME_PAST_MS)) is None
