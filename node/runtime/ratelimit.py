"""Per-peer limits on what a node serves to its peers: `FollowRequest`s (a member
following the chain) and the dissemination relay's requests, announcements (statuses)
and event batches.

One token bucket per (peer, kind): `rate` tokens a second up to `burst`. A message over
the limit is refused (not served), logged (`peer_rate_limited`, at most once a second per
peer and kind), counted (`afterchain_peer_rate_limited{kind}` through the node's counters
`limited_<kind>`), and each second in which a peer went over counts one strike through
the node's existing strike mechanism (`member.BlockReceiver.refuse`: `MAX_STRIKES`
strikes block the peer at the transport for `BAN_S`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["LIMITS", "Bucket", "PeerLimiter"]


@dataclass(slots=True)
class Bucket:
    rate: float
    burst: float
    tokens: float
    at: float

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


LIMITS: dict[str, tuple[float, float]] = {
    # kind: (per second, burst). An honest member polls at most every 100 ms when idle and
    # back to back while catching up (each answer up to 128 blocks); the relay sends a
    # status per heartbeat and per block, and at most one request at a time.
    "FollowRequest": (20.0, 40.0),
    "RelayRequest": (20.0, 40.0),
    "RelayStatus": (50.0, 100.0),
    "RelayEvents": (50.0, 100.0),
}


class PeerLimiter:
    """See the module docstring. `strike(peer, reason)` is the node's strike mechanism."""

    def __init__(self, *, log: Any, counters: dict[str, int], transport: Any = None,
                 strike: Callable[[bytes, str], None] | None = None,
                 limits: dict[str, tuple[float, float]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self.counters = counters
        self.transport = transport
        self.strike_fn = strike
        self.limits = dict(LIMITS if limits is None else limits)
        self.clock = clock
        self.buckets: dict[tuple[bytes, str], Bucket] = {}
        self.over: dict[bytes, float] = {}  # peer -> the second (clock) its last strike was for
        self.logged: dict[tuple[bytes, str], float] = {}
        self.refused: dict[str, int] = {}

    def allow(self, peer: bytes, kind: str) -> bool:
        limit = self.limits.get(kind)
        if limit is None:
            return True
        now = self.clock()
        key = (peer, kind)
        b = self.buckets.get(key)
        if b is None:
            if len(self.buckets) > 65_536:
                self.buckets.clear()
            b = self.buckets[key] = Bucket(rate=limit[0], burst=limit[1], tokens=limit[1], at=now)
        if b.take(now):
            return True
        self.refused[kind] = self.refused.get(kind, 0) + 1
        name = f"limited_{kind}"
        self.counters[name] = self.counters.get(name, 0) + 1
        if now - self.logged.get(key, -1e9) >= 1.0:
            self.logged[key] = now
            self.log.warning("peer_rate_limited", peer=peer.hex()[:12], kind=kind, rate=limit[0], burst=limit[1])
        if now - self.over.get(peer, -1e9) >= 1.0:
            self.over[peer] = now
            self.strike(peer, f"flood_{kind}")
        return False

    def strike(self, peer: bytes, reason: str) -> None:
        if self.strike_fn is not None and len(peer) == 32:
            self.strike_fn(peer, reason)

    def refill(self, now: float) -> None:
        """Forget idle state now and then (buckets of peers long gone)."""
        if len(self.buckets) > 4096:
            for key in [k for k, b in self.buckets.items() if now - b.at > 60.0]:
                del self.buckets[key]
            for peer in [p for p, t in self.over.items() if now - t > 60.0]:
                del self.over[peer]
            for key in [k for k, t in self.logged.items() if now - t > 60.0]:
                del self.logged[key]

    def describe(self) -> dict[str, int]:
        return dict(self.refused)
