"""The simulated network and the fault plan of a run.

`FaultPlan.draw` takes every fault decision a seed makes up front, in a fixed order of
draws from the run's one `random.Random` (changing that order changes every trace hash):
which allowed faults this run uses (each with p = 0.7), the drop / duplicate / delay
rates, the validator-set command ticks (with `reconfig`), partitions (symmetric splits),
one-way splits, isolations of whoever is primary at that moment, and crashes.

`Network` delivers messages through a time-ordered queue: drops, duplicates, delays and
reordering while the fault phase lasts, and partitions until the heal; after the heal
nothing is lost and delays are short.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .config import RECONFIG, Clock, SimConfig

__all__ = ["Cut", "FaultPlan", "Network"]

Cut = tuple[int, int, frozenset[tuple[int, int]]]
"""(first tick, end tick, blocked (src, dst) pairs) of a partition."""


@dataclass(frozen=True)
class FaultPlan:
    faults: frozenset[str]
    """The faults this run uses (a subset of the allowed ones)."""
    drop_p: float
    dup_p: float
    delay_max: int
    jitter: bool
    """Reorder: every message gets a random delay."""
    reconfig_ticks: tuple[int, ...]
    """With `reconfig`: from which tick each validator-set command may be proposed."""
    cuts: tuple[Cut, ...]
    isolations: tuple[tuple[int, int], ...]
    """(tick, duration): cut whoever is primary then off from everyone."""
    crashes: tuple[tuple[int, int, bool], ...]
    """(tick, duration, prefer the primary), in tick order."""

    @classmethod
    def draw(cls, cfg: SimConfig, rng: random.Random) -> FaultPlan:
        faults = {f for f in cfg.faults if f != RECONFIG and rng.random() < 0.7} or set(cfg.faults[:1])
        drop_p = rng.uniform(0.0, 0.25) if "drop" in faults else 0.0
        dup_p = rng.uniform(0.0, 0.15) if "duplicate" in faults else 0.0
        delay_max = rng.randint(3, 12) if "delay" in faults else 1
        reconfig_ticks: tuple[int, ...] = ()
        if cfg.reconfig:
            t1 = rng.randrange(5, max(6, cfg.fault_ticks // 4))
            t2 = t1 + rng.randrange(10, max(11, cfg.fault_ticks // 4))
            t3 = t2 + rng.randrange(10, max(11, cfg.fault_ticks // 4))
            reconfig_ticks = (t1, t2, t3)
        n = cfg.total_nodes
        cuts: list[Cut] = []
        for _ in range(rng.randint(0, 3) if "partition" in faults else 0):
            start = rng.randrange(cfg.fault_ticks)
            side = set(rng.sample(range(n), rng.randint(1, n - 1)))
            blocked = frozenset((a, b) for a in range(n) for b in range(n) if (a in side) != (b in side))
            cuts.append((start, start + rng.randint(10, 120), blocked))
        for _ in range(rng.randint(0, 2) if "oneway" in faults else 0):
            start = rng.randrange(cfg.fault_ticks)
            src = set(rng.sample(range(n), rng.randint(1, n - 1)))
            blocked = frozenset((a, b) for a in src for b in range(n) if b not in src)
            cuts.append((start, start + rng.randint(10, 120), blocked))
        # isolate whoever is primary at that moment (forces view changes with work in flight)
        isolations = sorted(
            (rng.randrange(cfg.fault_ticks), rng.randint(10, 60)) for _ in range(rng.randint(0, 3) if "partition" in faults else 0)
        )
        crashes = [(rng.randrange(1, cfg.fault_ticks), rng.randint(2, 60), rng.random() < 0.5)
                   for _ in range(rng.randint(0, 3) if "crash" in faults else 0)]
        return cls(faults=frozenset(faults), drop_p=drop_p, dup_p=dup_p, delay_max=delay_max, jitter="reorder" in faults,
                   reconfig_ticks=reconfig_ticks, cuts=tuple(cuts), isolations=tuple(isolations),
                   crashes=tuple(sorted(crashes)))


class Network:
    """Messages between node indexes, delivered in (due tick, send order)."""

    def __init__(self, plan: FaultPlan, clock: Clock, rng: random.Random) -> None:
        self.plan = plan
        self.clock = clock
        self.rng = rng
        self.cuts: list[Cut] = list(plan.cuts)
        self.queue: list[tuple[int, int, int, int, Any]] = []
        self.counter = 0

    def isolate(self, node: int, nodes: int, length: int) -> None:
        """Cut `node` off from all `nodes` for `length` ticks from now."""
        now = self.clock.now
        blocked = frozenset({(node, b) for b in range(nodes)} | {(a, node) for a in range(nodes)})
        self.cuts.append((now, now + length, blocked))

    def blocked(self, a: int, b: int) -> bool:
        if self.clock.healed:
            return False
        now = self.clock.now
        return any(start <= now < end and (a, b) in blocked for start, end, blocked in self.cuts)

    def send(self, src: int, dst: int, msg: Any) -> None:
        rng = self.rng
        plan = self.plan
        healed = self.clock.healed
        if self.blocked(src, dst):
            return
        if not healed and rng.random() < plan.drop_p:
            return
        copies = 2 if (not healed and rng.random() < plan.dup_p) else 1
        for _ in range(copies):
            delay = 1
            if plan.jitter or plan.delay_max > 1:
                delay += rng.randrange(plan.delay_max if not healed else 3)
            self.counter += 1
            heapq.heappush(self.queue, (self.clock.now + delay, self.counter, src, dst, msg))

    def due(self) -> Iterator[tuple[int, int, Any]]:
        """(src, dst, message) of every message due by now, in order; messages sent while
        this runs are delivered in the same pass if they are due."""
        q = self.queue
        while q and q[0][0] <= self.clock.now:
            _, _, src, dst, msg = heapq.heappop(q)
            yield src, dst, msg
