"""A simulation run's settings (`SimConfig`), its outcome (`SimResult`) and its record.

`Clock` is the simulated time every part of a run reads; `RunLog` collects violations
(each stamped with its tick) and the trace hash. The trace hash covers the order of
deliveries, crashes, heals and commits, so a seed replays to the same hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from afterchain.protocol.codec import sha256

from ..params import ConsensusParams
from ..requests import NO_TIMERS, RequestTimers

__all__ = [
    "ALL_FAULTS", "BYZANTINE_FAULTS", "CHAIN_ID", "GENESIS_HASH", "NETWORK_FAULTS", "RECONFIG", "SERVE_MAX_BLOCKS",
    "SIM_PARAMS", "SPARES", "TICK_MS", "Clock", "RunLog", "SimConfig", "SimResult",
]

NETWORK_FAULTS = ("drop", "delay", "duplicate", "reorder", "partition", "oneway", "crash")
BYZANTINE_FAULTS = ("equivocate", "conflict", "replay", "badsig", "silent", "forge")
ALL_FAULTS = NETWORK_FAULTS + BYZANTINE_FAULTS
RECONFIG = "reconfig"
"""Validator-set changes: selected explicitly (``--faults all,reconfig``), never by `all`."""
SPARES = 3
TICK_MS = 10
SERVE_MAX_BLOCKS = 16
"""Blocks per catch-up answer (the node's answers are bounded by bytes)."""
CHAIN_ID = "sim-chain"
GENESIS_HASH = sha256(b"sim-genesis")

SIM_PARAMS = ConsensusParams(
    checkpoint_interval=4, watermark_window=8, view_timeout_ticks=20, view_timeout_max_ticks=160,
    max_block_events=4, max_block_bytes=4096, retransmit_ticks=4,
)


@dataclass(frozen=True)
class SimConfig:
    seed: int
    nodes: int = 4
    byzantine: int = 0
    faults: tuple[str, ...] = ALL_FAULTS
    real_crypto: bool = False
    mutations: tuple[str, ...] = ()
    """Safety rules switched off in every replica (names of `consensus.sim.mutations.MUTATIONS`)."""
    fault_ticks: int = 200
    progress_blocks: int = 3
    params: ConsensusParams = SIM_PARAMS
    exec_blocks_max: int = 2
    """A replica executes 0..this many committed blocks per tick (uniform): execution lags."""
    timers: RequestTimers = NO_TIMERS
    """Request timers of every replica (off by default; `sim.censor` switches them on)."""

    @property
    def reconfig(self) -> bool:
        return RECONFIG in self.faults

    @property
    def total_nodes(self) -> int:
        return self.nodes + (SPARES if self.reconfig else 0)

    @property
    def liveness_ticks(self) -> int:
        f = (self.total_nodes - 1) // 3
        extra = 4 * self.params.view_timeout_max_ticks if self.reconfig else 0
        return (f + 3) * self.params.view_timeout_max_ticks + 100 + extra


@dataclass
class SimResult:
    config: SimConfig
    violations: list[str] = field(default_factory=list)
    ticks: int = 0
    committed: int = 0
    evidence: int = 0
    trace_hash: str = ""
    messages: int = 0
    view: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations


@dataclass
class Clock:
    """Simulated time: the tick, and whether the network has healed (the fault phase is over)."""

    now: int = 0
    healed: bool = False


class RunLog:
    """Violations (at most 20, each prefixed with its tick) and the running trace hash."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.violations: list[str] = []
        self.trace_hash = hashlib.sha256()

    def violation(self, text: str) -> None:
        if len(self.violations) < 20:
            self.violations.append(f"tick {self.clock.now}: {text}")

    def trace(self, *items: Any) -> None:
        self.trace_hash.update(repr(items).encode())
