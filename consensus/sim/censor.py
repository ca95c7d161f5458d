"""Censoring and slow primaries, and the censorship bound (issue 28).

`CensorSim` is the fault simulator (`runner.Sim`: the real replicas, the seeded network
with its fault phase, crashes, the safety checkers) with clients: events are submitted
during the run to random subsets of the honest nodes, which gossip them once to the other
validators (over the faulty network: in the fault phase gossip is lost too) and keep them
in a pool (the
node's mempool: oldest first, kept across a crash like the node's journal) and tell their
replica they hold them (`Replica.hold`; the request timers, `consensus.requests`). A
replica's `Ready.forwards` relays the named events to the other validators.

The f Byzantine replicas run the real replica code but build their proposals in one of
these ways (`CENSOR_KINDS`):

- ``censor-sender`` / ``censor-type`` / ``censor-org``: leave out every event of sender 0 /
  of type 0 / of organisation 0's tickets (type 0 is the ticket type here);
- ``slow-min``: one event per block, one block per view timeout less 3 ticks (the least
  a primary can do without its view timing out);
- ``slow-delay``: propose an event only once it has waited T2 less 2 ticks in its pool
  (just under the request timeout), the blocks otherwise full.

The liveness checker: every event held by f+1 honest nodes is committed within
`bound_ticks` of the later of the tick its (f+1)-th honest holder got it and the heal (the
end of the fault phase). A run also ends with every submitted event committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from afterchain.protocol.codec import sha256

from ..replica import Ready
from ..requests import NO_TIMERS, RequestTimers
from .config import NETWORK_FAULTS, SimConfig
from .node import SimApp, SimNode
from .runner import Sim

__all__ = ["CENSOR_KINDS", "CENSOR_TIMERS", "CensorConfig", "CensorResult", "Forwarded", "bound_ticks", "run_censor"]

CENSOR_KINDS = ("censor-sender", "censor-type", "censor-org", "slow-min", "slow-delay")
CENSOR_TIMERS = RequestTimers(forward_ticks=10, timeout_ticks=40, slow_blocks=3)
"""T1 = 10 ticks, T2 = 40 ticks (the view timeout is 20), 3 underfilled blocks."""
SENDERS, TYPES, ORGS = 4, 3, 3


@dataclass(frozen=True)
class Forwarded:
    """Events gossiped by the node a client gave them to, or relayed at T1 (`Ready.forwards`)."""

    events: tuple[bytes, ...]


@dataclass(frozen=True)
class CensorConfig:
    seed: int
    kind: str = "censor-sender"
    nodes: int = 4
    timers: RequestTimers = CENSOR_TIMERS
    """`NO_TIMERS` switches them off: the mutation the checker must catch."""
    events: int = 40
    submit_ticks: int = 300
    """Events are submitted at random ticks in [1, submit_ticks]."""
    fault_ticks: int = 200
    faults: tuple[str, ...] = NETWORK_FAULTS
    byzantine_first: bool = False
    """The Byzantine replicas are validators 0 .. f-1 (the primaries of the first views)
    instead of drawn from the seed."""

    def sim_config(self) -> SimConfig:
        f = (self.nodes - 1) // 3
        return SimConfig(seed=self.seed, nodes=self.nodes, byzantine=f, faults=self.faults,
                         fault_ticks=self.fault_ticks, timers=self.timers)


def bound_ticks(cfg: CensorConfig) -> int:
    """The censorship bound checked, in ticks after the later of synchrony and the (f+1)-th
    honest holder: up to f Byzantine primaries in a row, each voted out after at most T2
    plus a view change (which may take the capped view timeout), then an honest primary's
    commit (another capped view timeout covers catch-up and the new view's first blocks).
    With the request timers off this is 2 x the same figure (the checker must still fail)."""
    p = SimConfig(seed=0).params
    f = (cfg.nodes - 1) // 3
    t2 = cfg.timers.timeout_ticks or CENSOR_TIMERS.timeout_ticks
    return (f + 1) * (t2 + p.view_timeout_max_ticks) + p.view_timeout_max_ticks


def _fields(raw: bytes) -> tuple[int, int, int]:
    _, _, s, t, o = raw.split(b":")
    return int(s[1:]), int(t[1:]), int(o[1:])


def censored(kind: str, raw: bytes) -> bool:
    s, t, o = _fields(raw)
    return (kind == "censor-sender" and s == 0) or (kind == "censor-type" and t == 0) or (
        kind == "censor-org" and o == 0 and t == 0)


class PoolApp(SimApp):
    """The toy application whose payload comes from the node's pool (oldest first), minus
    events already in a pre-prepared block; a Byzantine node's payload follows its kind."""

    def __init__(self, node: SimNode, sim: CensorSim) -> None:
        super().__init__(node.index, sim.schedule, sim.cfg.params.checkpoint_interval)
        self.sim = sim
        self.simnode = node

    def build_payload(self, max_events: int, max_bytes: int) -> tuple[bytes, ...]:
        sim, node = self.sim, self.simnode
        r = node.replica
        inflight: set[bytes] = set()
        if r is not None:
            for block in r.preprepared_blocks().values():
                inflight.update(block.events)
        pool = sim.pools[node.index]
        kind = sim.ccfg.kind if node.byzantine else ""
        out: list[bytes] = []
        for raw, got in pool.items():
            if raw in inflight:
                continue
            if kind.startswith("censor") and censored(kind, raw):
                continue
            if kind == "slow-delay" and sim.now - got < sim.ccfg.timers.timeout_ticks - 2:
                continue
            out.append(raw)
            if len(out) >= (1 if kind == "slow-min" else max_events):
                break
        return tuple(out)


@dataclass
class CensorResult:
    config: CensorConfig
    violations: list[str] = field(default_factory=list)
    ticks: int = 0
    submitted: int = 0
    committed: int = 0
    max_latency: int = 0
    """Largest (commit tick - later of heal and (f+1)-th honest holder) over the events."""
    view: int = 0
    expiries: int = 0
    forwards: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations


class CensorSim(Sim):
    def __init__(self, ccfg: CensorConfig) -> None:
        self.ccfg = ccfg
        self.pools: dict[int, dict[bytes, int]] = {}
        """Per node: held event -> tick it got it (survives a crash, like the journal)."""
        super().__init__(ccfg.sim_config())
        self.f = (self.cfg.nodes - 1) // 3
        if ccfg.byzantine_first:
            for nd in self.nodes:
                nd.byzantine = nd.index < self.f
            self.schedule.byzantine = frozenset(range(self.f))
        self.honest = [nd.index for nd in self.nodes if not nd.byzantine]
        self.got: dict[bytes, dict[int, int]] = {}
        """Event -> honest node -> tick it got the event."""
        self.committed_at: dict[bytes, int] = {}
        self.late: set[bytes] = set()
        self.bound = bound_ticks(ccfg)
        self.max_latency = 0
        self.expiries = 0
        self.forwards = 0
        self.plan_submits = sorted(
            (self.rng.randint(1, ccfg.submit_ticks), i) for i in range(ccfg.events))

    # ------------------------------------------------------------------ hooks
    def _make_app(self, node: SimNode) -> SimApp:
        return PoolApp(node, self)

    def _started(self, node: SimNode) -> None:
        pool = self.pools.setdefault(node.index, {})
        if node.replica is not None and pool:
            node.replica.hold(sha256(raw) for raw in pool)

    def _may_propose(self, node: SimNode) -> bool:
        if not node.byzantine or self.ccfg.kind != "slow-min":
            return True
        pace = self.cfg.params.view_timeout_ticks - 3
        return self.now % pace == 0

    def _handle(self, node: SimNode, ready: Ready) -> None:
        super()._handle(node, ready)
        pool = self.pools.setdefault(node.index, {})
        for cb in ready.commits:
            for raw in cb.block.events:
                pool.pop(raw, None)
                if not node.byzantine and raw in self.got and raw not in self.committed_at:
                    self._on_committed(raw)
        if ready.forwards and node.replica is not None:
            digests = set(ready.forwards)
            raws = tuple(raw for raw in pool if sha256(raw) in digests)
            self.forwards += len(raws)
            self._gossip(node.index, raws)
        if ready.expired and not node.byzantine:
            self.expiries += len(ready.expired)
            self.log.trace("expired", node.index, len(ready.expired))

    def _deliver(self, src: int, dst: int, msg: object) -> None:
        if isinstance(msg, Forwarded):
            if self.nodes[dst].replica is not None:
                self._give(dst, msg.events)
            return
        super()._deliver(src, dst, msg)

    def _gossip(self, i: int, raws: tuple[bytes, ...]) -> None:
        """Node i relays events to the other validators (over the faulty network)."""
        r = self.nodes[i].replica
        if not raws or r is None:
            return
        for v in r.validators.validators:
            t = self.by_key[v].index
            if t != i:
                self.net.send(i, t, Forwarded(raws))

    # ------------------------------------------------------------------ clients, checker
    def _give(self, i: int, raws: tuple[bytes, ...]) -> None:
        """Node i gets these events (a client, or a peer's relay): pool + hold."""
        node = self.nodes[i]
        pool = self.pools.setdefault(i, {})
        new = [raw for raw in raws if raw not in pool and raw not in self.committed_at]
        for raw in new:
            pool[raw] = self.now
            if not node.byzantine:
                self.got.setdefault(raw, {}).setdefault(i, self.now)
        if new and node.replica is not None:
            node.replica.hold(sha256(raw) for raw in new)

    def _held_from(self, raw: bytes) -> int | None:
        """The tick the bound starts for `raw`: the later of the heal and the tick its
        (f+1)-th honest holder got it (None: fewer than f+1 hold it)."""
        ticks = sorted(self.got.get(raw, {}).values())
        if len(ticks) < self.f + 1:
            return None
        return max(ticks[self.f], self.cfg.fault_ticks)

    def _on_committed(self, raw: bytes) -> None:
        self.committed_at[raw] = self.now
        start = self._held_from(raw)
        if start is not None:
            self.max_latency = max(self.max_latency, self.now - start)

    def step(self) -> None:
        while self.plan_submits and self.plan_submits[0][0] <= self.now + 1:
            _, i = self.plan_submits.pop(0)
            raw = b"req:%d:s%d:t%d:o%d" % (i, self.rng.randrange(SENDERS), self.rng.randrange(TYPES), self.rng.randrange(ORGS))
            k = self.rng.randint(1, len(self.honest))
            for j in sorted(self.rng.sample(self.honest, k)):
                self._give(j, (raw,))
                self._gossip(j, (raw,))
        super().step()
        for raw in self.got:
            if raw in self.committed_at or raw in self.late:
                continue
            start = self._held_from(raw)
            if start is not None and self.now - start > self.bound:
                self.late.add(raw)
                self.log.violation(f"censorship bound: {raw.decode()} held by {len(self.got[raw])} honest nodes "
                                   f"since tick {start} not committed within {self.bound} ticks")


def run_censor(cfg: CensorConfig) -> CensorResult:
    sim = CensorSim(cfg)
    limit = max(cfg.fault_ticks, cfg.submit_ticks) + sim.bound + 50
    while sim.now < limit:
        sim.step()
        if sim.now > cfg.submit_ticks and not sim.plan_submits and len(sim.committed_at) == cfg.events:
            break
        if len(sim.violations) >= 5:
            break
    missing = [raw for raw in sim.got if raw not in sim.committed_at]
    if missing and len(sim.violations) < 5:
        sim.log.violation(f"{len(missing)} submitted events never committed, e.g. {missing[0].decode()}")
    sim.checkers.missing_evidence()
    return CensorResult(
        config=cfg, violations=sim.violations, ticks=sim.now, submitted=len(sim.got), committed=len(sim.committed_at),
        max_latency=sim.max_latency, expiries=sim.expiries, forwards=sim.forwards,
        view=max((nd.replica.view for nd in sim.nodes if nd.replica is not None), default=0),
    )


def without_timers(cfg: CensorConfig) -> CensorConfig:
    """The mutation: the same run with the request timers switched off."""
    return replace(cfg, timers=NO_TIMERS)



def main(argv: list[str] | None = None) -> int:
    """``python -m afterchain.consensus.sim.censor --kinds all --seeds 0-49 [--nodes 4]
    [--no-timers]``: runs, violations and the largest latency past the bound's start."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m afterchain.consensus.sim.censor", description=__doc__.split("\n\n")[0])
    ap.add_argument("--kinds", default="all", help=f"comma list of {', '.join(CENSOR_KINDS)} or all")
    ap.add_argument("--seeds", default="0-49", help="inclusive range A-B")
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--no-timers", action="store_true", help="the mutation: request timers off")
    args = ap.parse_args(argv)
    kinds = CENSOR_KINDS if args.kinds == "all" else tuple(args.kinds.split(","))
    a, _, b = args.seeds.partition("-")
    failed = 0
    for kind in kinds:
        runs = bad = worst = expiries = 0
        for seed in range(int(a), int(b or a) + 1):
            cfg = CensorConfig(seed=seed, kind=kind, nodes=args.nodes)
            res = run_censor(without_timers(cfg) if args.no_timers else cfg)
            runs += 1
            worst = max(worst, res.max_latency)
            expiries += res.expiries
            if not res.ok:
                bad += 1
                print(f"  {kind} seed {seed}: {res.violations[:2]}")
        failed += bad
        print(f"{kind} n={args.nodes} seeds={args.seeds}: runs {runs}, failed {bad}, largest latency {worst} ticks "
              f"(bound {bound_ticks(CensorConfig(seed=0, nodes=args.nodes))}), request-timer view-change votes {expiries}")
    return 1 if failed else 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
