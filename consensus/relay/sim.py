"""Seeded simulator of the dissemination relay: the real `Relay` machines of 4-10
validators and up to thousands of member nodes over a simulated network and clock.

``python -m afterchain.consensus.relay.sim --members 10,100,1000 --seeds 0-4``

Single-threaded; every random choice comes from `random.Random` objects seeded from the
run's seed, so a seed replays exactly (same trace hash). Time is simulated milliseconds.

The run: the nodes start and form their overlay (`warmup_ms`), then the validators commit a
certified block every `block_ms` (`blocks` of them; real `Block`s and commit certificates
signed with the simulator's `FastSigner`), each validator getting it at a slightly
different time (consensus is not simulated: a validator's commit is `local_block`). Events
are submitted at random members while blocks are made; a block holds the events that
reached a validator (plus filler events of `event_bytes`). The fault phase lasts as long as
the blocks are made; then the network heals (no loss, no partition, every node up) and the
run goes on (with a block every `block_ms` while events are still pending) until every
honest node has delivered every block and every accepted event is committed, or
`heal_deadline_ms` passes.

Network: each node has an access latency (`latency_ms` range); a message between two
nodes takes the sum of theirs plus up to 5 ms of jitter; a dial takes a round trip.
Faults (`faults`, each enabled per run with probability 0.7 when listed): `loss` (each
message dropped with a probability up to 10%), `churn` (members leave, closing their
connections, and come back later), `crash` (members stop without a word and restart from
their block store; their un-committed accepted events are re-submitted, as the node
persists what it accepted), `partition` (the nodes split in two sides for a while; traffic
across is dropped) and `byzantine` (`byzantine` members push forged blocks, claim heights
they lack and 0 hops, answer requests with forgeries and drop events).

Checkers: safety (every delivered block is the certified block of its height, delivered
in order, once: a node never delivers a block it could not verify); delivery (after
healing every honest node has every block: 0 undelivered); events (every accepted event is
committed in exactly one block).

Reported: delivery, time-to-all (per block: from its first commit at a validator until
the last node that was up the whole run delivered it) p50/p99, per-node delivery latency
p50/p99, the duplicate factor (whole blocks received per node per block: 1.0 is ideal),
and upload bytes per block (encoded relay messages sent / blocks) for validators and members.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from afterchain.protocol.block import Block, BlockHeader, Commit, CommitCertificate, CommitSig, ValidatorSet
from afterchain.protocol.codec import sha256
from afterchain.protocol.crypto import Domain
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.merkle import merkle_root
from afterchain.protocol.types import Hash32, Height, Seq, Signature, ValidatorId, View

from ..messages import CertifiedBlock
from ..signer import FastSigner, FastVerifier, verify_certificate
from .machine import MUTATIONS, NODE_PARAMS, TICK_MS, Relay, RelayParams, RelayReady
from .messages import RelayBlocks, RelayEvents, RelayMessage, RelayStatus

__all__ = ["ALL_FAULTS", "RelaySimConfig", "RelaySimResult", "main", "run"]

ALL_FAULTS = ("loss", "churn", "crash", "partition", "byzantine")
CHAIN_ID = "relay-sim"
ZERO = Hash32(bytes(32))


@dataclass(frozen=True)
class RelaySimConfig:
    seed: int
    validators: int = 4
    members: int = 10
    blocks: int = 12
    block_ms: int = 500
    warmup_ms: int = 2000
    event_bytes: int = 200
    filler_events: int = 20
    """Events of `event_bytes` in every block besides the submitted ones (block size)."""
    submitted_events: int = 10
    faults: tuple[str, ...] = ALL_FAULTS
    byzantine: int = 1
    latency_ms: tuple[int, int] = (5, 40)
    heal_deadline_ms: int = 60_000
    params: RelayParams = field(default_factory=RelayParams)
    mutations: tuple[str, ...] = ()


@dataclass
class RelaySimResult:
    config: RelaySimConfig
    violations: list[str]
    undelivered: int
    events_submitted: int
    events_committed: int
    time_to_all_ms: list[int]
    node_latency_ms: list[int]
    duplicate_factor: float
    validator_upload_per_block: float
    member_upload_per_block: float
    member_upload_per_block_max: float
    blocks: int
    end_ms: int
    enabled: tuple[str, ...]
    trace_hash: str

    @property
    def ok(self) -> bool:
        return not self.violations


def percentile(values: Sequence[int], q: float) -> int:
    if not values:
        return 0
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(q * len(s) + 0.999999) - 1))]


class _Store:
    __slots__ = ("chain",)

    def __init__(self) -> None:
        self.chain: list[CertifiedBlock] = []

    def blocks(self, from_height: int, count: int) -> Sequence[CertifiedBlock]:
        return self.chain[from_height - 1: from_height - 1 + count] if from_height >= 1 else []

    @property
    def height(self) -> int:
        return len(self.chain)


class _Sim:
    def __init__(self, cfg: RelaySimConfig) -> None:
        if cfg.validators < 1 or cfg.members < 1:
            raise ValueError("need at least one validator and one member")
        if set(cfg.mutations) - MUTATIONS:
            raise ValueError(f"unknown mutations {sorted(set(cfg.mutations) - MUTATIONS)}")
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        rng = self.rng
        self.enabled = tuple(f for f in cfg.faults if f in ALL_FAULTS and rng.random() < 0.7)
        n = cfg.validators + cfg.members
        self.keys = [hashlib.sha256(b"relay-sim-node-%d" % i).digest() for i in range(n)]
        self.vkeys = self.keys[: cfg.validators]
        self.vset = ValidatorSet(validators=tuple(ValidatorId(k) for k in self.vkeys))
        self.signers = [FastSigner(k) for k in self.vkeys]
        self.is_validator = [i < cfg.validators for i in range(n)]
        byz = cfg.byzantine if "byzantine" in self.enabled else 0
        member_ids = list(range(cfg.validators, n))
        self.byzantine = set(rng.sample(member_ids, min(byz, max(0, cfg.members - 1))))
        self.access = [rng.randint(*cfg.latency_ms) for _ in range(n)]
        self.loss = rng.uniform(0.01, 0.10) if "loss" in self.enabled else 0.0
        self.now = 0
        self.queue: list[tuple[int, int, str, Any]] = []
        self.seq = 0
        self.stores = [_Store() for _ in range(n)]
        self.relays: list[Relay | None] = [None] * n
        self.up = [True] * n
        self.ever_down = [False] * n
        self.links: set[tuple[int, int]] = set()
        self.side: list[int] | None = None
        self.healed = False
        self.chain: list[CertifiedBlock] = []
        self.block_time: list[int] = []
        self.delivered_at: list[dict[int, int]] = [{} for _ in range(n)]
        self.violations: list[str] = []
        self.upload = [0] * n
        self.blocks_in = [0] * n
        self.mempool: dict[bytes, bytes] = {}
        self.included: dict[bytes, int] = {}
        self.genuine: set[bytes] = set()
        self.accepted: dict[int, dict[bytes, bytes]] = {i: {} for i in range(n)}
        self.submitted = 0
        self.trace = hashlib.sha256()
        self.index = {k: i for i, k in enumerate(self.keys)}
        self.verifier = FastVerifier()
        self.fault_end = cfg.warmup_ms + cfg.blocks * cfg.block_ms

    # ------------------------------------------------------------------ plumbing

    def push(self, at: int, kind: str, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (at, self.seq, kind, payload))

    def latency(self, a: int, b: int) -> int:
        return self.access[a] + self.access[b] + self.rng.randint(0, 5)

    def cut(self, a: int, b: int) -> bool:
        return self.side is not None and self.side[a] != self.side[b]

    def start(self, i: int) -> None:
        cfg = self.cfg
        store = self.stores[i]
        relay = Relay(self.keys[i], height=store.height, validators=self.vkeys, admitted=self.keys, store=store,
                      rng=random.Random(cfg.seed * 1_000_003 + i * 7919 + self.now), params=cfg.params,
                      mutations=cfg.mutations)
        self.relays[i] = relay
        self.up[i] = True
        self.push(self.now + self.rng.randint(1, TICK_MS), "tick", (i, relay))
        for raw in list(self.accepted[i].values()):  # the node re-submits what it had accepted
            if sha256(raw) not in self.included:
                relay.submit_event(raw)
        self.drain(i)

    def stop(self, i: int, graceful: bool) -> None:
        self.up[i] = False
        self.ever_down[i] = True
        self.relays[i] = None
        for link in [lk for lk in self.links if i in lk]:
            self.links.discard(link)
            other = link[0] if link[1] == i else link[1]
            if graceful and self.relays[other] is not None:
                self.relays[other].disconnected(self.keys[i])  # type: ignore[union-attr]
                self.drain(other)

    def drain(self, i: int) -> None:
        relay = self.relays[i]
        if relay is None:
            return
        while True:
            out = relay.ready()
            if out.empty():
                return
            self.handle(i, relay, out)

    def handle(self, i: int, relay: Relay, out: RelayReady) -> None:
        me = self.keys[i]
        byzantine = i in self.byzantine
        for peer, sent in out.sends:
            j = self.index[peer]
            msg = self.corrupt(sent) if byzantine else sent
            if msg is None:
                continue
            self.upload[i] += len(msg.encode())
            self.push(self.now + self.latency(i, j), "msg", (i, j, msg))
        # delivered blocks first, as the node's shell does: one batch may deliver h - 1 and
        # ask to verify h, which must then chain to h - 1 in the store (checked the other
        # way round, h failed as "not chained" and its honest sender took a strike)
        for cb in out.deliver:
            self.deliver(i, cb)
        for cb in out.verify:
            relay.verified(cb, self.check(i, cb))
        for _sender, raw in out.events:
            if sha256(raw) not in self.genuine:
                continue  # the intake refuses it
            if self.is_validator[i]:
                self.mempool.setdefault(sha256(raw), raw)
            else:
                relay.submit_event(raw, local=False)
        for peer in out.dials:
            j = self.index[peer]
            self.push(self.now + 2 * self.latency(i, j), "dial", (i, j, relay))
        for peer in out.closes:
            j = self.index[peer]
            link = (min(i, j), max(i, j))
            if link in self.links:
                self.links.discard(link)
                other = self.relays[j]
                if other is not None:
                    other.disconnected(me)
                    self.drain(j)

    # ------------------------------------------------------------------ the shell's checks

    def check(self, i: int, cb: CertifiedBlock) -> bool:
        """What the node's shell does before delivering: chained to its last block, and a
        commit certificate by a quorum of the validator set."""
        store = self.stores[i]
        header = cb.block.header
        prev = store.chain[-1].block.header.hash() if store.chain else ZERO
        if header.height != store.height + 1 or header.prev_hash != prev or header.chain_id != CHAIN_ID:
            return False
        try:
            verify_certificate(cb.certificate, CHAIN_ID, self.vset, header.hash(), self.verifier)
        except ProtocolError:
            return False
        return True

    def deliver(self, i: int, cb: CertifiedBlock) -> None:
        store = self.stores[i]
        h = int(cb.block.header.height)
        if h != store.height + 1:
            self.violations.append(f"node {i} delivered height {h} after {store.height}")
            return
        canon = self.chain[h - 1] if h <= len(self.chain) else None
        if canon is None or not (cb is canon or (cb.block.header.hash() == canon.block.header.hash()
                                                 and cb.certificate == canon.certificate)):
            self.violations.append(f"safety: node {i} delivered a block at height {h} that is not the certified one")
        store.chain.append(cb)
        self.delivered_at[i][h] = self.now
        self.trace.update(b"%d:%d:%d;" % (self.now, i, h))

    # ------------------------------------------------------------------ Byzantine members

    def forge(self, cb: CertifiedBlock) -> CertifiedBlock:
        hdr = replace(cb.block.header, state_root=Hash32(self.rng.randbytes(32)))
        sigs = tuple(CommitSig(replica=ValidatorId(k), signature=Signature(self.rng.randbytes(64))) for k in self.vkeys)
        cert = CommitCertificate(view=cb.certificate.view, height=cb.certificate.height, header_hash=Hash32(hdr.hash()),
                                 signatures=sigs)
        return CertifiedBlock(block=Block(header=hdr, events=cb.block.events), certificate=cert)

    def corrupt(self, msg: RelayMessage) -> RelayMessage | None:
        if type(msg) is RelayStatus:
            return RelayStatus(height=Height(msg.height + self.rng.randint(0, 20)), hops=0)
        if type(msg) is RelayBlocks:
            return RelayBlocks(blocks=tuple(self.forge(cb) for cb in msg.blocks))
        if type(msg) is RelayEvents:
            return None
        return msg

    def byzantine_push(self, i: int, relay: Relay) -> None:
        store = self.stores[i]
        peers = sorted(relay.peers)
        if not peers or not self.chain:
            return
        h = min(len(self.chain), store.height + 1)
        target = self.index[self.rng.choice(peers)]
        msg: RelayMessage = RelayBlocks(blocks=(self.forge(self.chain[h - 1]),))
        if self.rng.random() < 0.3:
            msg = RelayEvents(events=(self.rng.randbytes(64),))
        self.upload[i] += len(msg.encode())
        self.push(self.now + self.latency(i, target), "msg", (i, target, msg))

    # ------------------------------------------------------------------ the chain

    def make_block(self) -> None:
        cfg = self.cfg
        h = len(self.chain) + 1
        fresh = [raw for eh, raw in self.mempool.items() if eh not in self.included]
        filler = [self.rng.randbytes(cfg.event_bytes) for _ in range(cfg.filler_events)]
        events = tuple(fresh + filler)
        for raw in fresh:
            self.included[sha256(raw)] = h
        prev = self.chain[-1].block.header.hash() if self.chain else ZERO
        header = BlockHeader(
            chain_id=CHAIN_ID, height=Height(h), view=View(0), time_ms=1_700_000_000_000 + self.now, prev_hash=Hash32(prev),
            events_root=Hash32(merkle_root([sha256(e) for e in events])), event_count=len(events),
            state_height=Height(h - 1), state_root=Hash32(sha256(b"state%d" % h)),
            validators_hash=Hash32(self.vset.hash()), next_validators_hash=Hash32(self.vset.hash()),
            proposer=ValidatorId(self.vkeys[h % len(self.vkeys)]),
        )
        hh = Hash32(header.hash())
        quorum = self.vset.quorum
        sigs = tuple(
            CommitSig(replica=ValidatorId(s.public),
                      signature=s.sign(Domain.COMMIT, CHAIN_ID, Commit(view=View(0), seq=Seq(h), digest=hh, replica=s.public)))
            for s in self.signers[:quorum])
        cb = CertifiedBlock(block=Block(header=header, events=events),
                            certificate=CommitCertificate(view=View(0), height=Height(h), header_hash=hh, signatures=sigs))
        self.chain.append(cb)
        self.block_time.append(self.now)
        for v in range(cfg.validators):
            self.push(self.now + self.rng.randint(0, 20), "commit", (v, cb))

    # ------------------------------------------------------------------ faults

    def schedule_faults(self) -> None:
        cfg, rng = self.cfg, self.rng
        start, end = cfg.warmup_ms, self.fault_end
        members = list(range(cfg.validators, cfg.validators + cfg.members))
        for kind in ("churn", "crash"):
            if kind in self.enabled:
                for i in rng.sample(members, max(1, len(members) // 5)):
                    at = rng.randint(start, end)
                    self.push(at, "down", (i, kind == "churn"))
                    back = at + rng.randint(200, 4000)
                    if back < end:
                        self.push(back, "up", i)
        if "partition" in self.enabled:
            at = rng.randint(start, end)
            self.push(at, "partition", None)
            self.push(min(end, at + rng.randint(500, 5000)), "unpartition", None)
        for k in range(cfg.submitted_events):
            self.push(rng.randint(start, end), "submit", k)

    # ------------------------------------------------------------------ main loop

    def done(self) -> bool:
        tip = len(self.chain)
        if tip < self.cfg.blocks:
            return False
        for i, store in enumerate(self.stores):
            if i not in self.byzantine and not self.is_validator[i] and store.height < tip:
                return False
        return all(h in self.included for h in self.genuine_accepted())

    def genuine_accepted(self) -> set[bytes]:
        return {h for acc in self.accepted.values() for h in acc}

    def run(self) -> RelaySimResult:
        cfg = self.cfg
        for i in range(len(self.keys)):
            self.start(i)
        self.schedule_faults()
        for b in range(cfg.blocks):
            self.push(cfg.warmup_ms + b * cfg.block_ms, "block", None)
        self.push(self.fault_end, "heal", None)
        limit = self.fault_end + cfg.heal_deadline_ms
        while self.queue:
            at, _, kind, payload = heapq.heappop(self.queue)
            if at > limit:
                break
            self.now = at
            getattr(self, "on_" + kind)(payload)
            if self.healed and kind == "tick" and self.done():
                break
        return self.result()

    def on_tick(self, payload: tuple[int, Relay]) -> None:
        i, relay = payload
        if self.relays[i] is not relay:
            return
        relay.tick()
        if i in self.byzantine and self.rng.random() < 0.3:
            self.byzantine_push(i, relay)
        self.drain(i)
        self.push(self.now + TICK_MS, "tick", payload)

    def on_msg(self, payload: tuple[int, int, RelayMessage]) -> None:
        i, j, msg = payload
        relay = self.relays[j]
        link = (min(i, j), max(i, j))
        if relay is None or link not in self.links or self.cut(i, j):
            return
        if not self.healed and self.loss and self.rng.random() < self.loss:
            return
        if type(msg) is RelayBlocks:
            self.blocks_in[j] += len(msg.blocks)
        relay.step(msg, self.keys[i])
        self.drain(j)

    def on_dial(self, payload: tuple[int, int, Relay]) -> None:
        i, j, relay = payload
        if self.relays[i] is not relay:
            return
        other = self.relays[j]
        if other is None or self.cut(i, j):
            relay.dial_failed(self.keys[j])
            self.drain(i)
            return
        self.links.add((min(i, j), max(i, j)))
        other.connected(self.keys[i], outbound=False)
        relay.connected(self.keys[j], outbound=True)
        self.drain(j)
        self.drain(i)

    def on_commit(self, payload: tuple[int, CertifiedBlock]) -> None:
        v, cb = payload
        store = self.stores[v]
        if int(cb.block.header.height) != store.height + 1:
            return
        store.chain.append(cb)
        self.delivered_at[v][store.height] = self.now
        relay = self.relays[v]
        if relay is not None:
            relay.local_block(cb)
            self.drain(v)

    def on_block(self, _: None) -> None:
        self.make_block()

    def on_heal(self, _: None) -> None:
        self.healed = True
        self.side = None
        for i in range(len(self.keys)):
            if not self.up[i]:
                self.start(i)
        self.push(self.now + self.cfg.block_ms, "extra_block", None)

    def on_extra_block(self, _: None) -> None:
        # blocks while accepted events wait, but none in the deadline's last 10 s (so that
        # a run that ends at the deadline is not blamed for a block made just before it)
        late = self.now > self.fault_end + self.cfg.heal_deadline_ms - 10_000
        if not late and any(h not in self.included for h in self.genuine_accepted()):
            self.make_block()
            self.push(self.now + self.cfg.block_ms, "extra_block", None)

    def on_down(self, payload: tuple[int, bool]) -> None:
        i, graceful = payload
        if self.up[i] and not self.healed:
            self.stop(i, graceful)

    def on_up(self, i: int) -> None:
        if not self.up[i]:
            self.start(i)

    def on_partition(self, _: None) -> None:
        if not self.healed:
            self.side = [self.rng.randint(0, 1) for _ in self.keys]

    def on_unpartition(self, _: None) -> None:
        self.side = None

    def on_submit(self, k: int) -> None:
        cfg = self.cfg
        candidates = [i for i in range(cfg.validators, len(self.keys)) if self.up[i] and i not in self.byzantine]
        if not candidates:
            return
        i = self.rng.choice(candidates)
        raw = b"event-%d-%d-" % (cfg.seed, k) + self.rng.randbytes(cfg.event_bytes)
        relay = self.relays[i]
        if relay is None:
            return
        h = sha256(raw)
        self.genuine.add(h)
        if relay.submit_event(raw):
            self.accepted[i][h] = raw
            self.submitted += 1
        self.drain(i)

    # ------------------------------------------------------------------ result

    def result(self) -> RelaySimResult:
        cfg = self.cfg
        tip = len(self.chain)
        honest = [i for i in range(len(self.keys)) if i not in self.byzantine]
        undelivered = sum(tip - self.stores[i].height for i in honest)
        if undelivered:
            lagging = [i for i in honest if self.stores[i].height < tip]
            self.violations.append(f"{undelivered} undelivered blocks after healing (nodes {lagging[:8]}, tip {tip})")
        counts: dict[bytes, int] = {}
        for cb in self.chain:
            for eh in cb.block.event_hashes():
                counts[eh] = counts.get(eh, 0) + 1
        accepted = self.genuine_accepted()
        lost = [h for h in accepted if counts.get(h, 0) != 1]
        if lost:
            self.violations.append(f"{len(lost)} of {len(accepted)} accepted events not committed exactly once")
        stable = [i for i in honest if not self.ever_down[i] and not self.is_validator[i]]
        tta: list[int] = []
        lat: list[int] = []
        for h in range(1, min(tip, cfg.blocks) + 1):
            t0 = self.block_time[h - 1]
            times = [self.delivered_at[i].get(h) for i in stable]
            if all(t is not None for t in times) and times:
                tta.append(max(times) - t0)  # type: ignore[type-var, operator]
            lat.extend(t - t0 for t in times if t is not None)
        members = [i for i in honest if not self.is_validator[i]]
        dup = sum(self.blocks_in[i] for i in members) / max(1, len(members) * tip)
        vup = sum(self.upload[v] for v in range(cfg.validators)) / cfg.validators / max(1, tip)
        mups = [self.upload[i] / max(1, tip) for i in members]
        return RelaySimResult(
            config=cfg, violations=self.violations, undelivered=undelivered, events_submitted=len(accepted),
            events_committed=sum(1 for h in accepted if counts.get(h)), time_to_all_ms=tta, node_latency_ms=lat,
            duplicate_factor=dup, validator_upload_per_block=vup, member_upload_per_block=sum(mups) / max(1, len(mups)),
            member_upload_per_block_max=max(mups, default=0.0), blocks=tip, end_ms=self.now, enabled=self.enabled,
            trace_hash=self.trace.hexdigest()[:16],
        )


def run(cfg: RelaySimConfig) -> RelaySimResult:
    return _Sim(cfg).run()


# ---------------------------------------------------------------------- command line


def _range(text: str) -> range:
    lo, _, hi = text.partition("-")
    return range(int(lo), int(hi or lo) + 1)


def replay_command(cfg: RelaySimConfig) -> str:
    cmd = (f"python -m afterchain.consensus.relay.sim --seeds {cfg.seed} --validators {cfg.validators} "
           f"--members {cfg.members} --blocks {cfg.blocks} --faults {','.join(cfg.faults) or 'none'} "
           f"--byzantine {cfg.byzantine} --eager {cfg.params.eager} --validator-eager {cfg.params.validator_eager}")
    if cfg.params.validator_push_rotate:
        cmd += " --node-params"
    for m in cfg.mutations:
        cmd += f" --mutate {m}"
    return cmd


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m afterchain.consensus.relay.sim", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0-9", help="inclusive range A-B")
    ap.add_argument("--validators", type=int, default=4)
    ap.add_argument("--members", default="10,100", help="comma list of member counts")
    ap.add_argument("--blocks", type=int, default=12)
    ap.add_argument("--block-ms", type=int, default=500)
    ap.add_argument("--filler-events", type=int, default=20, help="events of 200 bytes per block besides submitted ones")
    ap.add_argument("--faults", default="all", help=f"comma list of {', '.join(ALL_FAULTS)}, 'all' or 'none'")
    ap.add_argument("--byzantine", type=int, default=1, help="Byzantine members (with the byzantine fault)")
    ap.add_argument("--eager", default="2", help="comma list: peers a member pushes a block to (-1: all)")
    ap.add_argument("--validator-eager", type=int, default=1, help="members a validator pushes a block to (-1: all)")
    ap.add_argument("--node-params", action="store_true",
                    help="the node's parameters (NODE_PARAMS: validators take turns to push, members dial members first)")
    ap.add_argument("--mutate", action="append", default=[], choices=sorted(MUTATIONS))
    ap.add_argument("--trace-hash", action="store_true")
    args = ap.parse_args(argv)
    faults: tuple[str, ...]
    if args.faults == "all":
        faults = ALL_FAULTS
    elif args.faults == "none":
        faults = ()
    else:
        faults = tuple(f.strip() for f in args.faults.split(",") if f.strip())
        bad = [f for f in faults if f not in ALL_FAULTS]
        if bad:
            raise SystemExit(f"unknown faults {bad}; known: {', '.join(ALL_FAULTS)}")
    print(f"validators={args.validators} blocks={args.blocks} block_ms={args.block_ms} faults={','.join(faults) or 'none'} "
          f"seeds={args.seeds} (sizes: encoded relay messages; times: simulated ms)")
    base = NODE_PARAMS if args.node_params else RelayParams()
    print(f"validator_eager={args.validator_eager} validator_push_rotate={base.validator_push_rotate} "
          f"validator_announce={base.validator_announce}")
    print("| members | eager | runs | failed | undelivered | time-to-all p50 / p99 ms | node latency p50 / p99 ms "
          "| duplicate factor | validator upload / block | member upload / block (mean, max) | events committed | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    total = 0
    for eager in (int(x) for x in args.eager.split(",")):
        for members in (int(x) for x in args.members.split(",")):
            started = time.perf_counter()
            results: list[RelaySimResult] = []
            for seed in _range(args.seeds):
                cfg = RelaySimConfig(seed=seed, validators=args.validators, members=members, blocks=args.blocks,
                                     block_ms=args.block_ms, filler_events=args.filler_events, faults=faults,
                                     byzantine=args.byzantine, params=replace(base, eager=eager, validator_eager=args.validator_eager),
                                     mutations=tuple(args.mutate))
                res = run(cfg)
                results.append(res)
                if args.trace_hash:
                    print(f"seed {seed} members={members}: trace {res.trace_hash} end {res.end_ms} ms")
            wall = time.perf_counter() - started
            failed = [r for r in results if not r.ok]
            total += sum(len(r.violations) for r in failed)
            tta = [t for r in results for t in r.time_to_all_ms]
            lat = [t for r in results for t in r.node_latency_ms]
            k = len(results)
            print(f"| {members} | {eager} | {k} | {len(failed)} | {sum(r.undelivered for r in results)} "
                  f"| {percentile(tta, 0.5)} / {percentile(tta, 0.99)} | {percentile(lat, 0.5)} / {percentile(lat, 0.99)} "
                  f"| {sum(r.duplicate_factor for r in results) / k:.2f} "
                  f"| {sum(r.validator_upload_per_block for r in results) / k / 1024:.1f} KiB "
                  f"| {sum(r.member_upload_per_block for r in results) / k / 1024:.1f} / "
                  f"{max(r.member_upload_per_block_max for r in results) / 1024:.1f} KiB "
                  f"| {sum(r.events_committed for r in results)}/{sum(r.events_submitted for r in results)} | {wall:.1f} |")
            for r in failed[:5]:
                for v in r.violations[:3]:
                    print(f"  seed {r.config.seed}: {v}")
                print(f"  replay: {replay_command(r.config)}")
    print(f"violations: {total}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
