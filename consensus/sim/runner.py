"""The run loop: `Sim` drives the real `Replica`s tick by tick over the simulated network,
plays the shell's part (WAL with pruning, block store, execution that lags, catch-up
answers) and crashes / restarts nodes; `run` runs one seed to its end.

Single-threaded; every random choice comes from one `random.Random(seed)` created in
`Sim`, and the order of draws is part of the trace hash: a seed replays exactly.
"""

from __future__ import annotations

import random
from typing import Any

from afterchain.protocol.block import ValidatorSet
from afterchain.protocol.codec import sha256
from afterchain.protocol.crypto import KeyPair
from afterchain.protocol.types import Height

from ..messages import BlockRequest, BlockResponse, CertifiedBlock
from ..replica import PersistedState, Ready, Replica, prunable
from ..signer import Ed25519Signer, Ed25519Verifier, FastSigner, FastVerifier, Signer, Verifier
from .byzantine import Byzantine, forge
from .checkers import Checkers
from .config import (
    BYZANTINE_FAULTS,
    CHAIN_ID,
    GENESIS_HASH,
    SERVE_MAX_BLOCKS,
    TICK_MS,
    Clock,
    RunLog,
    SimConfig,
    SimResult,
)
from .mutations import rules_without
from .network import FaultPlan, Network
from .node import Schedule, SimApp, SimNode

__all__ = ["Sim", "run"]


class Sim:
    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.rules = rules_without(cfg.mutations)
        self.rng = random.Random(cfg.seed)
        rng = self.rng
        n = cfg.nodes
        self.verifier: Verifier = Ed25519Verifier() if cfg.real_crypto else FastVerifier()
        signers: list[Signer] = []
        for i in range(cfg.total_nodes):
            seed = sha256(b"sim-node-%d" % i)
            signers.append(Ed25519Signer(KeyPair.from_seed(seed)) if cfg.real_crypto else FastSigner(seed))
        self.validators = ValidatorSet(validators=tuple(s.public for s in signers[:n]))
        byz = set(rng.sample(range(n), min(cfg.byzantine, n)))
        self.schedule = Schedule(keys=tuple(s.public for s in signers), genesis=tuple(range(n)), byzantine=frozenset(byz))
        k = cfg.params.checkpoint_interval
        self.nodes = [SimNode(i, signers[i], i in byz, SimApp(i, self.schedule, k)) for i in range(cfg.total_nodes)]
        self.by_key: dict[bytes, SimNode] = {node.signer.public: node for node in self.nodes}
        self.clock = Clock()
        self.log = RunLog(self.clock)
        self.checkers = Checkers(self.log, self.schedule, k, self.verifier, real_crypto=cfg.real_crypto)
        self.checkers.by_key = self.by_key
        byz_kinds = [k for k in BYZANTINE_FAULTS if k in cfg.faults]
        for node in self.nodes:
            if node.byzantine and byz_kinds:
                node.kinds = tuple(k for k in byz_kinds if rng.random() < 0.6) or (rng.choice(byz_kinds),)
        self.plan = FaultPlan.draw(cfg, rng)
        if cfg.reconfig:
            self.schedule.ticks = self.plan.reconfig_ticks
            self.schedule.kinds = (("add", (n,)), ("add", (n + 1, n + 2)), ("remove",))
        self.net = Network(self.plan, self.clock, rng)
        self.byzantine = Byzantine(rng)
        self.isolations = list(self.plan.isolations)
        self.crashes = list(self.plan.crashes)
        self.messages = 0
        for node in self.nodes:
            self._start(node)

    @property
    def now(self) -> int:
        return self.clock.now

    @property
    def violations(self) -> list[str]:
        return self.log.violations

    @property
    def ref(self) -> SimApp:
        """The reference application: it executes the agreed chain."""
        return self.checkers.ref

    # ------------------------------------------------------------------ nodes

    def _make_app(self, node: SimNode) -> SimApp:
        """A fresh application for `node` (a start or restart); `sim.censor` overrides it."""
        return SimApp(node.index, self.schedule, self.cfg.params.checkpoint_interval)

    def _may_propose(self, node: SimNode) -> bool:
        """Whether `node`, able to propose, proposes this tick (`sim.censor`: a slow primary)."""
        return True

    def _started(self, node: SimNode) -> None:
        """Called after `node`'s replica is (re)created (`sim.censor`: re-holds its pool)."""

    def _start(self, node: SimNode) -> None:
        node.app = self._make_app(node)
        for cb in node.store:
            node.app.execute(cb.block)
        node.exec_queue = []
        persisted = PersistedState(records=tuple(node.wal), committed_header=node.store[-1].block.header if node.store else None)
        node.replica = Replica(
            node.signer, self.validators, self.cfg.params, node.app, persisted,
            chain_id=CHAIN_ID, genesis_hash=GENESIS_HASH, genesis_time_ms=0, verifier=self.verifier,
            rules=self.rules, timers=self.cfg.timers,
        )
        node.ev_seen = {}
        self._started(node)
        self._drain(node)

    def _crash(self, node: SimNode, duration: int) -> None:
        node.replica = None
        node.crashed_until = self.now + duration
        self.log.trace("crash", node.index, duration)

    # ------------------------------------------------------------------ network

    def _deliver(self, src: int, dst: int, msg: Any) -> None:
        node = self.nodes[dst]
        r = node.replica
        if r is None:
            return
        self.messages += 1
        sender = self.nodes[src].signer.public
        if isinstance(msg, BlockRequest):
            self._serve(node, src, msg)
            return
        if isinstance(msg, BlockResponse):
            self.log.trace("blocks", src, dst, len(msg.blocks))
            for cb in msg.blocks:
                r.deliver_block(cb)
            self._drain(node)
            return
        self.log.trace(self.now, src, dst, type(msg).__name__)
        if not node.byzantine:
            self.checkers.on_receive(node, r, sender, msg)
            node.history.append((sender, msg))
        elif "replay" in node.kinds:
            node.history.append((sender, msg))
            if len(node.history) > 400:
                del node.history[:200]
        r.step(msg, sender)
        self._drain(node)

    def _serve(self, node: SimNode, requester: int, req: BlockRequest) -> None:
        lo = req.from_height
        n = min(req.count, SERVE_MAX_BLOCKS)
        blocks: tuple[CertifiedBlock, ...] = tuple(node.store[lo - 1 : lo - 1 + n])
        if node.byzantine and "forge" in node.kinds and blocks:
            blocks = tuple(forge(cb) for cb in blocks)
        if blocks:
            self.net.send(node.index, requester, BlockResponse(blocks=blocks))
            if len(blocks) == n < req.count:
                # a truncated answer: the requester's shell asks for the rest of the range at
                # once, as the node's does (`Node._fetch`)
                self.net.send(requester, node.index, BlockRequest(from_height=Height(lo + n), count=req.count - n))

    # ------------------------------------------------------------------ driving

    def _drain(self, node: SimNode, *, crash_before_send: bool = False) -> None:
        r = node.replica
        while r is not None and r.has_ready():
            ready = r.ready()
            node.wal.extend(ready.persist)
            if (ready.stable_seq, ready.view) > node.pruned_at:
                # what a real shell does: drop WAL records the replica no longer needs
                node.pruned_at = (ready.stable_seq, ready.view)
                node.wal = [rec for rec in node.wal if not prunable(rec, ready.stable_seq, ready.view)]
            if crash_before_send:
                r.advance(ready)
                return
            self._handle(node, ready)
            r.advance(ready)

    def _handle(self, node: SimNode, ready: Ready) -> None:
        members = [] if node.replica is None else [self.by_key[v].index for v in node.replica.validators.validators]
        for send in ready.sends:
            if node.byzantine and "replay" in node.kinds and self.rng.random() < 0.1:
                node.history.append((node.signer.public, send.message))
            targets = members if send.to is None else [self.by_key[send.to].index]
            for t in targets:
                if t == node.index:
                    continue
                if node.byzantine:
                    for m in self.byzantine.outgoing(node, t, send.message):
                        self.net.send(node.index, t, m)
                else:
                    self.checkers.on_send(node, send.message)
                    self.net.send(node.index, t, send.message)
        for cb in ready.commits:
            if not node.byzantine:
                self.checkers.on_commit(node, cb)
            node.store.append(cb)
            node.exec_queue.append(cb.block)
        for ev in ready.evidence:
            self.checkers.on_evidence(node, ev)
        for fr in ready.fetches:
            self.net.send(node.index, self.by_key[fr.peer].index, BlockRequest(from_height=Height(fr.from_height), count=fr.count))

    def _primary_now(self) -> SimNode:
        """The primary as the honest replica in the highest view sees it."""
        live = [nd.replica for nd in self.nodes if nd.replica is not None and not nd.byzantine and nd.replica.is_member]
        if not live:
            return self.nodes[0]
        top = max(live, key=lambda r: (r.view, r.stable_seq))
        return self.by_key[top.primary]

    def step(self) -> None:
        self.clock.now += 1
        now = self.now
        self.schedule.now = now
        if not self.clock.healed and now >= self.cfg.fault_ticks:
            self.clock.healed = True
            self.log.trace("heal", now)
        while self.isolations and self.isolations[0][0] <= now:
            _, length = self.isolations.pop(0)
            iso = self._primary_now().index
            self.net.isolate(iso, len(self.nodes), length)
            self.log.trace("isolate", iso, length)
        # crashes and restarts
        while self.crashes and self.crashes[0][0] <= now:
            _, duration, prefer_primary = self.crashes.pop(0)
            live = [nd for nd in self.nodes if nd.replica is not None and not nd.byzantine]
            if live:
                victim = live[self.rng.randrange(len(live))]
                if prefer_primary:
                    p = self._primary_now()
                    if p in live:
                        victim = p
                if self.rng.random() < 0.3 and victim.replica is not None and victim.replica.is_primary:
                    victim.replica.propose(now * TICK_MS)
                    self._drain(victim, crash_before_send=True)
                self._crash(victim, duration)
        for node in self.nodes:
            if node.replica is None and node.crashed_until is not None and (node.crashed_until <= now or self.clock.healed):
                node.crashed_until = None
                self._start(node)
        # deliveries
        for src, dst, msg in self.net.due():
            self._deliver(src, dst, msg)
        # timers, execution, proposals
        for node in self.nodes:
            r = node.replica
            if r is None:
                continue
            if node.exec_queue:
                k = self.rng.randint(0, self.cfg.exec_blocks_max)
                done = node.exec_queue[:k]
                del node.exec_queue[:k]
                for block in done:
                    node.app.execute(block)
                if done:
                    r.executed(node.app.executed)
            r.tick()
            if r.can_propose() and self._may_propose(node):
                r.propose(now * TICK_MS)
            self._drain(node)

    def honest_heights(self) -> list[int]:
        return [len(nd.store) for nd in self.nodes if not nd.byzantine]

    def final_heights(self) -> list[int]:
        """Heights of the honest members of the last adopted set (all honest nodes without
        reconfig)."""
        if not self.cfg.reconfig:
            return self.honest_heights()
        members = set(self.ref.members)
        return [len(nd.store) for nd in self.nodes if not nd.byzantine and nd.index in members]

    def final_target(self, target: int) -> int | None:
        """With reconfig: the height past the start of the final set's epoch that its members
        must reach (None while the last command is not adopted on the agreed chain)."""
        if not self.cfg.reconfig:
            return target
        if len(self.ref.adopted) <= len(self.schedule.ticks):
            return None
        k = self.cfg.params.checkpoint_interval
        adopted_at = self.ref.adopted[-1][0]
        first = -(-(adopted_at + k) // k) * k + 1  # E + 1 for the first boundary E >= h + K
        return max(target, first + self.cfg.progress_blocks)


def run(cfg: SimConfig) -> SimResult:
    sim = Sim(cfg)
    limit = cfg.fault_ticks + cfg.liveness_ticks
    target: int | None = None
    while sim.now < limit:
        sim.step()
        if sim.now == cfg.fault_ticks:
            target = max(sim.honest_heights()) + cfg.progress_blocks
        final = None if target is None else sim.final_target(target)
        if final is not None and min(sim.final_heights()) >= final:
            break
        if len(sim.violations) >= 5:
            break
    else:
        final = None if target is None else sim.final_target(target)
        sim.log.violation(f"liveness: honest heights {sim.final_heights()} (members {list(sim.ref.members)}) did not "
                          f"reach {final} within {cfg.liveness_ticks} ticks of healing (sets adopted "
                          f"{[(h, list(m)) for h, m in sim.ref.adopted]})")
    sim.checkers.missing_evidence()
    res = SimResult(config=cfg, violations=sim.violations, ticks=sim.now, committed=max(sim.honest_heights()),
                    evidence=len(sim.checkers.reported_evidence), messages=sim.messages)
    sim.log.trace("end", sim.now, res.committed)
    res.trace_hash = sim.log.trace_hash.hexdigest()[:16]
    res.view = max((nd.replica.view for nd in sim.nodes if nd.replica is not None), default=0)
    return res
