"""The node's wall clock, in one place: the time a primary stamps on the blocks it
proposes and the time a backup checks a proposed block's time against
(`node.runtime.app_adapter.ConsensusApp`, docs/PROTOCOL.md "Block time").

Every caller reads it as `clock.wall_ms()` (through the module), so a test-only node
process can run on a skewed clock by replacing this one function
(`node.testing.clock_skew`); production code never changes it.
"""

from __future__ import annotations

import time

__all__ = ["wall_ms"]


def wall_ms() -> int:
    """Milliseconds since the Unix epoch by this machine's clock."""
    return time.time_ns() // 1_000_000
