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
"""

from __future__ import annotations

import hashlib
import heapq
import random
from dataclasses import dataclass, field, replace
from typing import Any

from afterchain.protocol.block import Block, CommitCertificate, ValidatorSet
from afterchain.protocol.codec import Message, sha256
from afterchain.protocol.crypto import Domain, KeyPair
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.merkle import merkle_root
from afterchain.protocol.types import Hash32, Height, Signature, ValidatorId

from ..app import VerifyResult
from ..epochs import set_source_height
from ..messages import (
    BlockRequest,
    BlockResponse,
    CertifiedBlock,
    ConsensusMessage,
    Evidence,
    PrePrepareMsg,
    SignedCheckpoint,
    SignedCommit,
    SignedMessage,
    SignedPrepare,
    SignedPrePrepare,
    SignedStatus,
    phase_key,
)
from ..params import ConsensusParams
from ..replica import PersistedState, Ready, Replica, prunable
from ..signer import Ed25519Signer, Ed25519Verifier, FastSigner, FastVerifier, Signer, Verifier, verify_certificate

__all__ = ["ALL_FAULTS", "BYZANTINE_FAULTS", "NETWORK_FAULTS", "RECONFIG", "SimConfig", "SimResult", "run"]

NETWORK_FAULTS = ("drop", "delay", "duplicate", "reorder", "partition", "oneway", "crash")
BYZANTINE_FAULTS = ("equivocate", "conflict", "replay", "badsig", "silent", "forge")
ALL_FAULTS = NETWORK_FAULTS + BYZANTINE_FAULTS
RECONFIG = "reconfig"
"""Validator-set changes: selected explicitly (``--faults all,reconfig``), never by `all`."""
SPARES = 3
VSET_PREFIX = b"vset:"
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
    fault_ticks: int = 200
    progress_blocks: int = 3
    params: ConsensusParams = SIM_PARAMS
    exec_blocks_max: int = 2
    """A replica executes 0..this many committed blocks per tick (uniform): execution lags."""

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
class Schedule:
    """The validator-set commands of a run, shared by every node's application: command i
    (1-based) may be proposed from tick `ticks[i - 1]` on; `kinds[i - 1]` is ("add", nodes)
    or ("remove",)."""

    keys: tuple[ValidatorId, ...]
    genesis: tuple[int, ...]
    byzantine: frozenset[int]
    ticks: tuple[int, ...] = ()
    kinds: tuple[tuple[Any, ...], ...] = ()
    now: int = 0
    sets: dict[tuple[int, ...], ValidatorSet] = field(default_factory=dict)

    def vset(self, members: tuple[int, ...]) -> ValidatorSet:
        vs = self.sets.get(members)
        if vs is None:
            vs = self.sets[members] = ValidatorSet(validators=tuple(self.keys[i] for i in members))
        return vs


class SimApp:
    """A tiny deterministic application: state root after h = SHA-256(root(h-1) || header hash).
    Payload items ``vset:<i>:<members>`` set the validator set (command i, adopted once, in
    chain order); `validators_for` applies the epoch rule to the adopted sets."""

    def __init__(self, node: int, schedule: Schedule, k: int) -> None:
        self.node = node
        self.schedule = schedule
        self.k = k
        self.roots: dict[int, bytes] = {0: sha256(b"sim-state-0")}
        self.executed = 0
        self.counter = 0
        self.adopted: list[tuple[int, tuple[int, ...]]] = [(0, schedule.genesis)]
        """(height whose execution adopted it, members) in order."""

    @property
    def members(self) -> tuple[int, ...]:
        return self.adopted[-1][1]

    def _command(self) -> bytes | None:
        i = len(self.adopted)  # the next command to adopt
        sch = self.schedule
        if i > len(sch.ticks) or sch.ticks[i - 1] > sch.now:
            return None
        if i >= 2:
            # the previous set must have voted on K blocks first (else it would be skipped)
            k = self.k
            first = -(-(self.adopted[-1][0] + k) // k) * k + 1
            if self.executed < first + k:
                return None
        kind = sch.kinds[i - 1]
        cur = set(self.members)
        if kind[0] == "add":
            new = cur | set(kind[1])
        else:
            target = len(sch.genesis)
            out = [self.node] if self.node in cur else []
            out += [b for b in sorted(sch.byzantine) if b in cur and b not in out][:1]
            out += [m for m in sorted(cur) if m in sch.genesis and m not in out and m not in sch.byzantine]
            new = cur - set(out[: len(cur) - target])
        return VSET_PREFIX + b"%d:" % i + b",".join(b"%d" % m for m in sorted(new))

    def build_payload(self, max_events: int, max_bytes: int) -> tuple[bytes, ...]:
        self.counter += 1
        k = self.counter % (max_events + 1)
        cmd = self._command()
        if cmd is not None:
            k = max(0, min(k, max_events - 1))
        events = tuple(b"ev-%d-%d-%d" % (self.node, self.counter, i) for i in range(k))
        return events if cmd is None else (cmd, *events)

    def validators_for(self, height: int) -> ValidatorSet | None:
        src = set_source_height(height, self.k)
        if src > self.executed:
            return None
        members = self.schedule.genesis
        for h, m in self.adopted:
            if h > src:
                break
            members = m
        return self.schedule.vset(members)

    def verify_payload(self, block: Block) -> VerifyResult:
        if any(e.startswith(b"bad") for e in block.events):
            return VerifyResult.reject("bad event")
        return VerifyResult.accept()

    def state_root_at(self, height: int) -> bytes | None:
        return self.roots.get(height)

    def executed_height(self) -> int:
        return self.executed

    def execute(self, block: Block) -> None:
        h = block.header.height
        self.roots[h] = sha256(self.roots[h - 1] + block.header.hash())
        self.executed = h
        for e in block.events:
            if e.startswith(VSET_PREFIX):
                idx, _, members = e[len(VSET_PREFIX):].partition(b":")
                if int(idx) == len(self.adopted) and members:
                    self.adopted.append((h, tuple(int(x) for x in members.split(b","))))


class _Node:
    def __init__(self, index: int, signer: Signer, byzantine: bool, app: SimApp) -> None:
        self.index = index
        self.signer = signer
        self.byzantine = byzantine
        self.kinds: tuple[str, ...] = ()
        self.replica: Replica | None = None
        self.app = app
        self.wal: list[Message] = []
        self.pruned_at = (0, 0)
        self.store: list[CertifiedBlock] = []
        self.exec_queue: list[Block] = []
        self.crashed_until: int | None = None
        self.history: list[tuple[ValidatorId, ConsensusMessage]] = []
        self.ev_seen: dict[tuple[bytes, str, int, int], bytes] = {}


class Sim:
    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
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
        self.nodes = [_Node(i, signers[i], i in byz, SimApp(i, self.schedule, k)) for i in range(cfg.total_nodes)]
        self.by_key: dict[bytes, _Node] = {node.signer.public: node for node in self.nodes}
        # the reference application executes the agreed chain: V(h) from the chain itself
        self.ref = SimApp(-1, self.schedule, k)
        self.chain_blocks: dict[int, Block] = {}
        byz_kinds = [k for k in BYZANTINE_FAULTS if k in cfg.faults]
        for node in self.nodes:
            if node.byzantine and byz_kinds:
                node.kinds = tuple(k for k in byz_kinds if rng.random() < 0.6) or (rng.choice(byz_kinds),)
        # the seed also picks which of the allowed faults this run uses (each with p = 0.7)
        faults = {f for f in cfg.faults if f != RECONFIG and rng.random() < 0.7} or set(cfg.faults[:1])
        self.faults = faults
        self.drop_p = rng.uniform(0.0, 0.25) if "drop" in faults else 0.0
        self.dup_p = rng.uniform(0.0, 0.15) if "duplicate" in faults else 0.0
        self.delay_max = rng.randint(3, 12) if "delay" in faults else 1
        self.jitter = "reorder" in faults
        if cfg.reconfig:
            t1 = rng.randrange(5, max(6, cfg.fault_ticks // 4))
            t2 = t1 + rng.randrange(10, max(11, cfg.fault_ticks // 4))
            t3 = t2 + rng.randrange(10, max(11, cfg.fault_ticks // 4))
            self.schedule.ticks = (t1, t2, t3)
            self.schedule.kinds = (("add", (n,)), ("add", (n + 1, n + 2)), ("remove",))
        n = cfg.total_nodes
        self.partitions: list[tuple[int, int, set[tuple[int, int]]]] = []
        for _ in range(rng.randint(0, 3) if "partition" in faults else 0):
            start = rng.randrange(cfg.fault_ticks)
            side = set(rng.sample(range(n), rng.randint(1, n - 1)))
            blocked = {(a, b) for a in range(n) for b in range(n) if (a in side) != (b in side)}
            self.partitions.append((start, start + rng.randint(10, 120), blocked))
        for _ in range(rng.randint(0, 2) if "oneway" in faults else 0):
            start = rng.randrange(cfg.fault_ticks)
            src = set(rng.sample(range(n), rng.randint(1, n - 1)))
            blocked = {(a, b) for a in src for b in range(n) if b not in src}
            self.partitions.append((start, start + rng.randint(10, 120), blocked))
        # isolate whoever is primary at that moment (forces view changes with work in flight)
        self.isolations = sorted(
            (rng.randrange(cfg.fault_ticks), rng.randint(10, 60)) for _ in range(rng.randint(0, 3) if "partition" in faults else 0)
        )
        self.crashes: list[tuple[int, int, bool]] = []  # (tick, duration, prefer_primary)
        for _ in range(rng.randint(0, 3) if "crash" in faults else 0):
            self.crashes.append((rng.randrange(1, cfg.fault_ticks), rng.randint(2, 60), rng.random() < 0.5))
        self.crashes.sort()
        self.now = 0
        self.healed = False
        self.queue: list[tuple[int, int, int, int, Any]] = []
        self.counter = 0
        self.trace = hashlib.sha256()
        self.chain: dict[int, bytes] = {}
        self.violations: list[str] = []
        self.honest_signed: dict[tuple[bytes, str, int, int], bytes] = {}
        self.expected_evidence: set[tuple[int, bytes, str, int, int]] = set()
        self.reported_evidence: set[tuple[int, bytes, str, int, int]] = set()
        self.messages = 0
        self.alt_digests: dict[tuple[int, int], bytes] = {}
        for node in self.nodes:
            self._start(node)

    # ------------------------------------------------------------------ nodes

    def _start(self, node: _Node) -> None:
        node.app = SimApp(node.index, self.schedule, self.cfg.params.checkpoint_interval)
        for cb in node.store:
            node.app.execute(cb.block)
        node.exec_queue = []
        persisted = PersistedState(records=tuple(node.wal), committed_header=node.store[-1].block.header if node.store else None)
        node.replica = Replica(
            node.signer, self.validators, self.cfg.params, node.app, persisted,
            chain_id=CHAIN_ID, genesis_hash=GENESIS_HASH, genesis_time_ms=0, verifier=self.verifier,
            mutations=self.cfg.mutations,
        )
        node.ev_seen = {}
        self._drain(node)

    def _crash(self, node: _Node, duration: int) -> None:
        node.replica = None
        node.crashed_until = self.now + duration
        self._trace("crash", node.index, duration)

    def _violation(self, text: str) -> None:
        if len(self.violations) < 20:
            self.violations.append(f"tick {self.now}: {text}")

    def _trace(self, *items: Any) -> None:
        self.trace.update(repr(items).encode())

    # ------------------------------------------------------------------ network

    def _blocked(self, a: int, b: int) -> bool:
        if self.healed:
            return False
        return any(start <= self.now < end and (a, b) in blocked for start, end, blocked in self.partitions)

    def _net_send(self, src: int, dst: int, msg: Any) -> None:
        rng = self.rng
        if self._blocked(src, dst):
            return
        if not self.healed and rng.random() < self.drop_p:
            return
        copies = 2 if (not self.healed and rng.random() < self.dup_p) else 1
        for _ in range(copies):
            delay = 1
            if self.jitter or self.delay_max > 1:
                delay += rng.randrange(self.delay_max if not self.healed else 3)
            self.counter += 1
            heapq.heappush(self.queue, (self.now + delay, self.counter, src, dst, msg))

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
            self._trace("blocks", src, dst, len(msg.blocks))
            for cb in msg.blocks:
                r.deliver_block(cb)
            self._drain(node)
            return
        self._trace(self.now, src, dst, type(msg).__name__)
        if not node.byzantine:
            self._oracle_evidence(node, r, sender, msg)
            node.history.append((sender, msg))
        elif "replay" in node.kinds:
            node.history.append((sender, msg))
            if len(node.history) > 400:
                del node.history[:200]
        r.step(msg, sender)
        self._drain(node)

    def _serve(self, node: _Node, requester: int, req: BlockRequest) -> None:
        lo = req.from_height
        n = min(req.count, SERVE_MAX_BLOCKS)
        blocks = tuple(node.store[lo - 1 : lo - 1 + n])
        if node.byzantine and "forge" in node.kinds and blocks:
            blocks = tuple(self._forge(node, cb) for cb in blocks)
        if blocks:
            self._net_send(node.index, requester, BlockResponse(blocks=blocks))
            if len(blocks) == n < req.count:
                # a truncated answer: the requester's shell asks for the rest of the range at
                # once, as the node's does (`Node._fetch`)
                self._net_send(requester, node.index, BlockRequest(from_height=Height(lo + n), count=req.count - n))

    def _forge(self, node: _Node, cb: CertifiedBlock) -> CertifiedBlock:
        hdr = replace(cb.block.header, time_ms=cb.block.header.time_ms + 1)
        forged = Block(header=hdr, events=cb.block.events)
        cert = CommitCertificate(view=cb.certificate.view, height=cb.certificate.height, header_hash=Hash32(hdr.hash()),
                                 signatures=cb.certificate.signatures)
        return CertifiedBlock(block=forged, certificate=cert)

    # ------------------------------------------------------------------ oracles

    def _oracle_evidence(self, node: _Node, r: Replica, sender: bytes, msg: Any) -> None:
        signed = msg.preprepare if isinstance(msg, PrePrepareMsg) else msg
        if not isinstance(signed, SignedMessage) or isinstance(signed, SignedStatus):
            return
        body = signed.body  # type: ignore[attr-defined]
        signer = body.replica
        if (signer != sender and not isinstance(signed, SignedCheckpoint)) or not r.accepts_from(signed, sender):
            return
        if not self.verifier.verify(signer, signed.signature, signed.DOMAIN, CHAIN_ID, body):  # type: ignore[attr-defined]
            return
        phase, view, seq, digest = phase_key(signed)
        if not r.in_evidence_window(phase, view, seq):
            return
        key = (signer, phase, view, seq)
        first = node.ev_seen.get(key)
        if first is None:
            node.ev_seen[key] = digest
        elif first != digest:
            self.expected_evidence.add((node.index, *key))

    def _check_send(self, node: _Node, msg: ConsensusMessage) -> None:
        signed = msg.preprepare if isinstance(msg, PrePrepareMsg) else msg
        if not isinstance(signed, SignedMessage) or isinstance(signed, SignedStatus):
            return
        phase, view, seq, digest = phase_key(signed)
        key = (node.signer.public, phase, view, seq)
        prev = self.honest_signed.setdefault(key, digest)
        if prev != digest:
            self._violation(f"honest replica {node.index} signed two different {phase} for view {view} seq {seq}")

    def _check_commit(self, node: _Node, cb: CertifiedBlock) -> None:
        h = cb.block.header.height
        digest = cb.block.header.hash()
        if h != len(node.store) + 1:
            self._violation(f"replica {node.index} committed height {h} after {len(node.store)} (rollback/gap)")
        if node.store and cb.block.header.prev_hash != node.store[-1].certificate.header_hash:
            self._violation(f"replica {node.index} committed a block not chained to its previous one at {h}")
        prev = self.chain.setdefault(h, digest)
        if prev != digest:
            self._violation(f"agreement: replica {node.index} committed {digest.hex()[:12]} at {h}, others {prev.hex()[:12]}")
        else:
            self.chain_blocks.setdefault(h, cb.block)
            while (nxt := self.chain_blocks.get(self.ref.executed + 1)) is not None:
                self.ref.execute(nxt)
        vs = self.ref.validators_for(h)
        nxt_vs = self.ref.validators_for(h + 1)
        if vs is None or nxt_vs is None:
            self._violation(f"replica {node.index} committed height {h} before the chain below it was agreed")
            return
        hdr = cb.block.header
        if hdr.validators_hash != vs.hash() or hdr.next_validators_hash != nxt_vs.hash():
            self._violation(f"replica {node.index} committed height {h} whose header names the wrong validator sets")
        try:
            verify_certificate(cb.certificate, CHAIN_ID, vs, digest, self.verifier)
        except ProtocolError as exc:
            outsiders = sorted(self.by_key[s.replica].index for s in cb.certificate.signatures if s.replica not in vs)
            what = f" (votes of non-members {outsiders} counted)" if outsiders else ""
            self._violation(f"replica {node.index} committed height {h} with an invalid certificate under V({h}){what}: {exc}")
        if self.cfg.real_crypto:
            try:
                cb.certificate.verify(CHAIN_ID, vs, digest)
            except ProtocolError as exc:
                self._violation(f"certificate fails CommitCertificate.verify at {h}: {exc}")
        self._trace("commit", node.index, h, digest)

    # ------------------------------------------------------------------ driving

    def _drain(self, node: _Node, *, crash_before_send: bool = False) -> None:
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

    def _handle(self, node: _Node, ready: Ready) -> None:
        members = [] if node.replica is None else [self.by_key[v].index for v in node.replica.validators.validators]
        for send in ready.sends:
            if node.byzantine and "replay" in node.kinds and self.rng.random() < 0.1:
                node.history.append((node.signer.public, send.message))
            targets = members if send.to is None else [self.by_key[send.to].index]
            for t in targets:
                if t == node.index:
                    continue
                if node.byzantine:
                    for m in self._byzantine(node, t, send.message):
                        self._net_send(node.index, t, m)
                else:
                    self._check_send(node, send.message)
                    self._net_send(node.index, t, send.message)
        for cb in ready.commits:
            if not node.byzantine:
                self._check_commit(node, cb)
            node.store.append(cb)
            node.exec_queue.append(cb.block)
        for ev in ready.evidence:
            self._check_evidence_record(node, ev)
        for fr in ready.fetches:
            self._net_send(node.index, self.by_key[fr.peer].index, BlockRequest(from_height=Height(fr.from_height), count=fr.count))

    def _check_evidence_record(self, node: _Node, ev: Evidence) -> None:
        a, b = phase_key(ev.first), phase_key(ev.second)
        who = ev.first.body.replica  # type: ignore[attr-defined]
        if a[:3] != b[:3] or a[3] == b[3] or who != ev.second.body.replica:  # type: ignore[attr-defined]
            self._violation(f"replica {node.index} produced malformed evidence")
            return
        if not self.by_key[who].byzantine and not node.byzantine:
            self._violation(f"replica {node.index} holds evidence against honest replica {self.by_key[who].index}")
        self.reported_evidence.add((node.index, who, a[0], a[1], a[2]))

    def _byzantine(self, node: _Node, to: int, msg: ConsensusMessage) -> list[Any]:
        rng = self.rng
        kinds = node.kinds
        if "silent" in kinds and rng.random() < 0.9:
            return []
        out: list[Any] = [msg]
        if "equivocate" in kinds and isinstance(msg, PrePrepareMsg) and to % 2 == 1:
            alt = self._alt_preprepare(node, msg)
            out = [alt, msg] if rng.random() < 0.3 else [alt]
        elif "conflict" in kinds and isinstance(msg, SignedPrepare | SignedCommit) and (
            (alt_digest := self.alt_digests.get((msg.body.view, msg.body.seq))) is not None or rng.random() < 0.5
        ):
            # collude with an equivocating primary (vote for its other block where it sent
            # that one), or vote for a made-up digest
            if alt_digest is not None and to % 2 == 0:
                return [msg]
            body = replace(msg.body, digest=Hash32(alt_digest or sha256(msg.body.digest + b"x")))
            alt2 = type(msg)(body=body, signature=node.signer.sign(msg.DOMAIN, CHAIN_ID, body))  # type: ignore[arg-type]
            out = [alt2, msg] if rng.random() < 0.5 else [alt2]
        if "replay" in kinds and node.history and rng.random() < 0.3:
            out.append(node.history[rng.randrange(len(node.history))][1])
        if "badsig" in kinds and rng.random() < 0.2:
            out = [self._corrupt(m) for m in out]
        return out

    def _alt_preprepare(self, node: _Node, msg: PrePrepareMsg) -> PrePrepareMsg:
        block = msg.block
        events = (*block.events, b"equivocation")
        hdr = replace(block.header, events_root=Hash32(merkle_root([sha256(e) for e in events])), event_count=len(events))
        alt_block = Block(header=hdr, events=events)
        body = replace(msg.preprepare.body, digest=Hash32(hdr.hash()))
        self.alt_digests[(body.view, body.seq)] = body.digest
        spp = SignedPrePrepare(body=body, signature=node.signer.sign(Domain.PREPREPARE, CHAIN_ID, body))
        return PrePrepareMsg(preprepare=spp, block=alt_block)

    def _corrupt(self, msg: Any) -> Any:
        if isinstance(msg, PrePrepareMsg):
            bad = SignedPrePrepare(body=msg.preprepare.body, signature=Signature(bytes(64)))
            return PrePrepareMsg(preprepare=bad, block=msg.block)
        if isinstance(msg, SignedMessage):
            return replace(msg, signature=Signature(sha256(msg.signature) * 2))  # type: ignore[type-var, attr-defined]
        return msg

    def _primary_now(self) -> _Node:
        """The primary as the honest replica in the highest view sees it."""
        live = [nd.replica for nd in self.nodes if nd.replica is not None and not nd.byzantine and nd.replica.is_member]
        if not live:
            return self.nodes[0]
        top = max(live, key=lambda r: (r.view, r.stable_seq))
        return self.by_key[top.primary]

    def step(self) -> None:
        self.now += 1
        now = self.now
        self.schedule.now = now
        if not self.healed and now >= self.cfg.fault_ticks:
            self.healed = True
            self._trace("heal", now)
        while self.isolations and self.isolations[0][0] <= now:
            _, length = self.isolations.pop(0)
            iso = self._primary_now().index
            n_nodes = len(self.nodes)
            blocked = {(iso, b) for b in range(n_nodes)} | {(a, iso) for a in range(n_nodes)}
            self.partitions.append((now, now + length, blocked))
            self._trace("isolate", iso, length)
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
            if node.replica is None and node.crashed_until is not None and (node.crashed_until <= now or self.healed):
                node.crashed_until = None
                self._start(node)
        # deliveries
        q = self.queue
        while q and q[0][0] <= now:
            _, _, src, dst, msg = heapq.heappop(q)
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
            if r.can_propose():
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
        sim._violation(f"liveness: honest heights {sim.final_heights()} (members {list(sim.ref.members)}) did not "
                       f"reach {final} within {cfg.liveness_ticks} ticks of healing (sets adopted "
                       f"{[(h, list(m)) for h, m in sim.ref.adopted]})")
    missing = sim.expected_evidence - sim.reported_evidence
    for node_i, who, phase, view, seq in sorted(missing)[:3]:
        sim._violation(f"evidence: replica {node_i} saw {phase} equivocation by {sim.by_key[who].index} "
                       f"(view {view}, seq {seq}) and reported nothing")
    res = SimResult(config=cfg, violations=sim.violations, ticks=sim.now, committed=max(sim.honest_heights()),
                    evidence=len(sim.reported_evidence), messages=sim.messages)
    sim._trace("end", sim.now, res.committed)
    res.trace_hash = sim.trace.hexdigest()[:16]
    res.view = max((nd.replica.view for nd in sim.nodes if nd.replica is not None), default=0)
    return res
