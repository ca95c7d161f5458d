"""Mutations: the safety rules the simulator can switch off to show that its checkers notice.

A mutation is named by the `SafetyRules` field it turns off; `rules_without(names)` builds
the record the simulated replicas get. Production never builds these (it passes nothing:
`ALL_RULES`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from ..safety import ALL_RULES, SafetyRules

__all__ = ["MUTATIONS", "rules_without"]

MUTATIONS: dict[str, str] = {
    "signer_guard": "a restored replica forgets what it signed",
    "new_view_prepared_check": "the new primary ignores P sets; backups do not check O",
    "commit_quorum": "committed with f+1 commits instead of n - f",
    "evidence": "equivocations are not reported",
    "certificate_check": "fetched blocks are applied without checking their certificate",
    "epoch_check": "validator-set changes ignored: votes/certificates checked against genesis forever",
    "epoch_window": "the window is not capped at a set-change boundary",
}
"""Each mutation's name (a `SafetyRules` field) and what the replica does wrong with it."""


def rules_without(names: Iterable[str]) -> SafetyRules:
    """`ALL_RULES` with the named rules off; an unknown name is an error."""
    off = dict.fromkeys(names, False)
    unknown = sorted(set(off) - set(MUTATIONS))
    if unknown:
        raise ValueError(f"unknown mutations {unknown}")
    return replace(ALL_RULES, **off)
