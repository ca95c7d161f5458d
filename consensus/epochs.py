"""Epochs: which validator set votes on which height. The rule is the chain's, in
`protocol.epochs` (the ledger's validator schedule follows it too); re-exported here."""

from __future__ import annotations

from afterchain.protocol.epochs import boundaries_after, epoch_start, is_boundary, set_source_height

__all__ = ["boundaries_after", "epoch_start", "is_boundary", "set_source_height"]
