"""The nemesis on real processes: the short form (SIGKILL the primary under load) runs in
the default suite; every scenario runs under `-m slow` (`./scripts/nemesis --all`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.nemesis import SCENARIOS, run_scenario

pytestmark = pytest.mark.cluster


def _assert_clean(r: dict) -> None:  # type: ignore[type-arg]
    assert r["ok"], r.get("error")
    assert r["acknowledged"] > 100 and r["lost"] == 0 and r["duplicated"] == 0 and r["equivocations"] == 0
    assert r["faults"]


def test_kill_primary_under_load_loses_nothing(tmp_path: Path) -> None:
    _assert_clean(run_scenario("kill-primary", tmp_path, load_s=3.0))


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in SCENARIOS if n != "kill-primary"])
def test_every_nemesis_scenario(name: str, tmp_path: Path) -> None:
    _assert_clean(run_scenario(name, tmp_path))
