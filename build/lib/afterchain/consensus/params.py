"""Consensus parameters (carried by genesis; the node maps milliseconds to ticks).

Invariants (`validate`): 1 <= checkpoint_interval (K) <= watermark_window (L) <= MAX_WINDOW;
2 <= view_timeout_ticks <= view_timeout_max_ticks; 1 <= retransmit_ticks; block limits >= 1.
The state lag bound: a header at height h must have ``h - state_height <= 2 * L`` (see
`max_state_lag`), so a replica never waits on an unbounded execution backlog.
"""

from __future__ import annotations

from afterchain.protocol.codec import Message, message
from afterchain.protocol.errors import Code, ValidationError

from .messages import MAX_WINDOW

__all__ = ["ConsensusParams"]


@message(tag=0x40)
class ConsensusParams(Message):
    checkpoint_interval: int = 16
    """K: a CHECKPOINT is signed at every height divisible by K."""
    watermark_window: int = 32
    """L: sequence numbers in flight lie in (stable checkpoint, stable checkpoint + L]."""
    view_timeout_ticks: int = 20
    """Ticks without a commit (while active) before a view change; doubles per failed view."""
    view_timeout_max_ticks: int = 320
    """Cap of the exponential back-off; it resets to view_timeout_ticks after a commit."""
    max_block_events: int = 1000
    max_block_bytes: int = 1_000_000
    retransmit_ticks: int = 5
    """Every this many ticks a replica re-sends what peers may have lost (and a STATUS)."""

    def validate(self) -> None:
        if not 1 <= self.checkpoint_interval <= self.watermark_window <= MAX_WINDOW:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, f"need 1 <= K <= L <= {MAX_WINDOW}", field="watermark_window")
        if not 2 <= self.view_timeout_ticks <= self.view_timeout_max_ticks:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, "need 2 <= view_timeout_ticks <= view_timeout_max_ticks", field="view_timeout_ticks")
        if self.retransmit_ticks < 1:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, "retransmit_ticks >= 1", field="retransmit_ticks")
        if self.max_block_events < 1 or self.max_block_bytes < 1:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, "block limits must be positive", field="max_block_events")

    @property
    def max_state_lag(self) -> int:
        """Largest allowed ``height - state_height`` of a header."""
        return 2 * self.watermark_window
