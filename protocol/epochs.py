"""Epochs: which validator set votes on which height (issue #12, the agreed rule).

K = checkpoint_interval. Epochs are the height ranges (E, E + K] for E = 0, K, 2K, ...
The set that votes on height s is V(s) = the ledger's adopted validator set in the state
after executing block ``set_source_height(s) = max(0, E - K)`` with ``E = epoch_start(s)``.
So a change adopted while executing block h first votes on height E + 1 for the first
boundary E with E - K >= h (between K + 1 and 2K blocks later), and V(s) is the genesis
set for every s <= 2K. Every honest node computes the same V(s) from the chain alone.

Pure integer arithmetic; nothing here knows about sets or state. A rule of the chain's
data (the ledger's validator schedule is in the state root), so it lives in protocol;
`consensus.epochs` re-exports it.
"""

from __future__ import annotations

from .errors import require

__all__ = ["boundaries_after", "effective_height", "epoch_start", "is_boundary", "set_source_height"]


def epoch_start(height: int, k: int) -> int:
    """E for height >= 1: the boundary below it, ``((height - 1) // k) * k``."""
    require(height >= 1 and k >= 1, "epoch_start needs height >= 1 and k >= 1")
    return ((height - 1) // k) * k


def set_source_height(height: int, k: int) -> int:
    """The block after whose execution the set voting on `height` is read: max(0, E - K)."""
    return max(0, epoch_start(height, k) - k)


def is_boundary(height: int, k: int) -> bool:
    """A checkpoint height (E = height): the next height may be voted on by another set."""
    return height > 0 and height % k == 0


def boundaries_after(height: int, k: int, limit: int) -> range:
    """The boundaries b with height < b <= limit, in order."""
    first = (height // k + 1) * k
    return range(first, limit + 1, k)


def effective_height(adopted_height: int, k: int) -> int:
    """The first height voted by a set (or run under consensus parameters) adopted while
    executing block `adopted_height`: the ledger records it at the first boundary
    m >= adopted_height, and it is V(s) from m + K + 1 on."""
    m = -(-adopted_height // k) * k
    return m + k + 1
