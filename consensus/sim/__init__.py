"""Deterministic fault simulator: the real `Replica` over a simulated network, clock and disk.

Single-threaded; every random choice comes from one `random.Random(seed)` created here, so
a seed replays exactly (same trace hash). A run has a fault phase (`fault_ticks`), then the
network heals (no loss, no partitions, crashed replicas restart) and the run continues
until every honest replica has committed `progress_blocks` beyond the highest height any
honest replica had at the heal, or `liveness_ticks` pass (a liveness violation).

Faults (`--faults` lists the allowed ones; each run enables each of them with probability
0.7, drawn from the seed, so seeds cover different mixes): drop, delay, duplicate,
reorder, partition (symmetric splits, and isolating whoever is primary at that moment),
oneway, crash (restart from the pruned WAL and the block store only; sometimes between
persist and send), and Byzantine behaviours of the `byzantine` replicas: equivocate (primary sends two
blocks), conflict (two different prepares/commits), replay (old messages), badsig,
silent, forge (serves forged blocks to catch-up requests).

`reconfig` (not part of `ALL_FAULTS`; ``--faults all,reconfig``): validator-set changes.
The sim gets 3 spare nodes (keys outside the genesis set, observers from the start), and
the toy application adopts "set the validator set to X" payload items that the sim
schedules during the fault phase: n -> n + 1 -> n + 3 -> n, the last one removing the
proposer of that block (a primary), a Byzantine node if there is one, and genesis nodes.
The application's `validators_for` applies the rule of `consensus.epochs`.

Mutations (`--mutate`, `consensus.sim.mutations`): switch one of the replica's
`SafetyRules` off in every replica; some checker must then report a violation.

Checkers: agreement, no rollback (commits strictly in order after the stored chain),
certificate (n - f distinct valid COMMIT signatures for the header hash, one view),
evidence (every equivocation an honest replica received inside its evidence window was
reported), honest non-equivocation (no honest replica signs two different messages for
one (phase, view, seq): the signer guard), liveness after healing. Sets: every committed
block's certificate verifies under V(h) computed by a reference application that executes
the agreed chain itself (so a removed validator's vote is never counted after its epoch),
and its header names hash(V(h)) and hash(V(h + 1)). Agreement covers observers too. With
`reconfig`, liveness means every honest member of the final set reaches a height
`progress_blocks` past the start of the final set's epoch (and past the heal target).

Modules: `config` (SimConfig, SimResult, the run's clock and log), `node` (the toy
application, the validator-set schedule, a simulated node), `network` (the fault plan and
the network), `byzantine` (Byzantine behaviours), `checkers` (safety checkers and the
evidence oracle), `mutations` (switched-off safety rules), `runner` (Sim, run).
"""

from __future__ import annotations

from .config import ALL_FAULTS, BYZANTINE_FAULTS, NETWORK_FAULTS, RECONFIG, SimConfig, SimResult
from .mutations import MUTATIONS, rules_without
from .runner import Sim, run

__all__ = [
    "ALL_FAULTS", "BYZANTINE_FAULTS", "MUTATIONS", "NETWORK_FAULTS", "RECONFIG", "Sim", "SimConfig", "SimResult",
    "rules_without", "run",
]
