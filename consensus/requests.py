"""Request timers (PBFT, Castro & Liskov TOCS'02 4.5.2 "Liveness"; issue 28): the replica's
side of censorship resistance and of the slow-primary rule.

The shell tells the replica which events (by digest: sha256 of the encoded event) this
node *holds*: valid, not committed, and proposable now (for the node, each sender's run of
consecutive nonces from the next one the chain expects; `node.runtime.mempool`). Time is
counted in ticks; nothing here reads a clock.

- T1 (`forward_ticks`): a backup that has held an event for T1 ticks relays it once to the
  other validators, the primary included (``Ready.forwards``): the primary may never have
  received it, and the other backups start their own timers on it.
- T2 (`timeout_ticks`, > T1): a backup that has held an event for T2 ticks without it being
  committed votes for a view change (``Ready.expired`` names the event and the primary).
- Every timer restarts when a new view is installed (or the validator set changes): the
  new primary gets the full T1 / T2.
- Slow primary (`slow_blocks` > 0): a committed block of the current view that had room
  (fewer than ``max_block_events`` events, at most half of ``max_block_bytes``) while this
  backup held an event for at least 2 x T1 (so it was forwarded T1 ago) that the block left
  out is *underfilled*; `slow_blocks` underfilled blocks in a row make the backup vote for
  a view change. A block with no such left-out event resets the count.

A primary runs the timers too (they matter once it is a backup) but never acts on them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["NO_TIMERS", "HeldRequests", "RequestTimers"]


@dataclass(frozen=True, slots=True)
class RequestTimers:
    """The request timers' settings in ticks; `timeout_ticks` 0 switches them off."""

    forward_ticks: int = 0
    timeout_ticks: int = 0
    slow_blocks: int = 0

    @property
    def enabled(self) -> bool:
        return self.timeout_ticks > 0

    def validate(self) -> None:
        if self.enabled and not 1 <= self.forward_ticks < self.timeout_ticks:
            raise ValueError("request timers need 1 <= forward_ticks < timeout_ticks")
        if self.slow_blocks < 0:
            raise ValueError("slow_blocks >= 0")


NO_TIMERS = RequestTimers()
"""Request timers off (the default of `Replica`)."""


class HeldRequests:
    """The held digests with the tick each timer started (insertion order = start order,
    so the oldest timers are at the front and a tick looks only at those that are due)."""

    def __init__(self, timers: RequestTimers) -> None:
        timers.validate()
        self.timers = timers
        self.since: dict[bytes, int] = {}
        self.unforwarded: dict[bytes, int] = {}
        self.underfilled = 0
        self.expiries = 0
        self.forwarded = 0

    def __len__(self) -> int:
        return len(self.since)

    def hold(self, digests: Iterable[bytes], now: int) -> None:
        for d in digests:
            if d not in self.since:
                self.since[d] = now
                self.unforwarded[d] = now

    def release(self, digests: Iterable[bytes]) -> None:
        for d in digests:
            if self.since.pop(d, None) is not None:
                self.unforwarded.pop(d, None)

    def restart(self, now: int) -> None:
        """A new view (or validator set): every timer starts again at `now`."""
        self.since = dict.fromkeys(self.since, now)
        self.unforwarded = dict(self.since)
        self.underfilled = 0

    def due_forwards(self, now: int) -> list[bytes]:
        """Digests held for T1 ticks and not yet relayed (each is relayed once per view)."""
        out: list[bytes] = []
        limit = now - self.timers.forward_ticks
        for d, t in self.unforwarded.items():
            if t > limit:
                break
            out.append(d)
        for d in out:
            del self.unforwarded[d]
        self.forwarded += len(out)
        return out

    def oldest(self) -> tuple[bytes, int] | None:
        for d, t in self.since.items():
            return d, t
        return None

    def expired(self, now: int) -> bytes | None:
        """The oldest digest held for T2 ticks, if any."""
        first = self.oldest()
        if first is not None and now - first[1] >= self.timers.timeout_ticks:
            return first[0]
        return None

    def on_block(self, now: int, *, has_room: bool) -> bool:
        """A block of the current view committed (its events already released). True when
        this makes `slow_blocks` underfilled blocks in a row."""
        if self.timers.slow_blocks <= 0:
            return False
        first = self.oldest()
        skipped = first is not None and now - first[1] >= 2 * self.timers.forward_ticks
        if has_room and skipped:
            self.underfilled += 1
        else:
            self.underfilled = 0
        return self.underfilled >= self.timers.slow_blocks
