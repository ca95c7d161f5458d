"""The safety rules a `Replica` enforces, as one injected record.

Production always uses `ALL_RULES` (every rule on, the `Replica` default). Each field names one rule that the
fault simulator can switch off (`consensus.sim.mutations`) to show that its checkers notice
the loss; nothing outside tests and the simulator builds a record with a rule off.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ALL_RULES", "SafetyRules"]


@dataclass(frozen=True, slots=True)
class SafetyRules:
    signer_guard: bool = True
    """A replica restored from its WAL remembers what it signed and refuses to sign a
    different message for the same (phase, view, seq)."""
    new_view_prepared_check: bool = True
    """The new primary re-issues the P sets of its view changes (O); backups recompute O and
    reject a NEW-VIEW whose O differs."""
    commit_quorum: bool = True
    """A block commits with a quorum (n - f) of COMMITs (off: f + 1)."""
    evidence: bool = True
    """Equivocations seen inside the evidence window are reported as `Evidence`."""
    certificate_check: bool = True
    """A fetched block is applied only if its header names V(h) and V(h + 1) and its commit
    certificate verifies against V(h)."""
    epoch_check: bool = True
    """Votes and certificates are checked against the set of their height, V(h) (off: the
    genesis set forever)."""
    epoch_window: bool = True
    """The window of sequence numbers is capped at a boundary where the set changes."""


ALL_RULES = SafetyRules()
"""Every rule on: what production replicas enforce (the `Replica` default)."""
