"""A hand-driven cluster of real replicas (Ed25519) for the protocol unit tests.

Messages never move unless a test moves them: `pump()` delivers everything queued (with an
optional filter), so each test decides exactly what each replica sees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from afterchain.consensus.app import VerifyResult
from afterchain.consensus.messages import CertifiedBlock, ConsensusMessage, Evidence
from afterchain.consensus.params import ConsensusParams
from afterchain.consensus.replica import FetchRequest, PersistedState, Replica
from afterchain.protocol.block import Block, ValidatorSet
from afterchain.protocol.codec import Message, sha256
from afterchain.protocol.crypto import KeyPair

CHAIN = "test-chain"
GENESIS = sha256(b"genesis")
PARAMS = ConsensusParams(checkpoint_interval=4, watermark_window=8, view_timeout_ticks=10, view_timeout_max_ticks=40,
                         max_block_events=10, max_block_bytes=10_000, retransmit_ticks=3)


class App:
    def __init__(self) -> None:
        self.roots: dict[int, bytes] = {0: sha256(b"s0")}
        self.executed = 0
        self.n = 0
        self.reject = False

    def build_payload(self, max_events: int, max_bytes: int) -> tuple[bytes, ...]:
        self.n += 1
        return (b"event-%d" % self.n,)

    def verify_payload(self, block: Block) -> VerifyResult:
        return VerifyResult.reject("no") if self.reject else VerifyResult.accept()

    def state_root_at(self, height: int) -> bytes | None:
        return self.roots.get(height)

    def executed_height(self) -> int:
        return self.executed

    def execute(self, block: Block) -> None:
        h = block.header.height
        self.roots[h] = sha256(self.roots[h - 1] + block.header.hash())
        self.executed = h


@dataclass
class Node:
    key: KeyPair
    app: App
    replica: Replica
    wal: list[Message] = field(default_factory=list)
    store: list[CertifiedBlock] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    fetches: list[FetchRequest] = field(default_factory=list)
    execute: bool = True


Filter = Callable[[int, int, ConsensusMessage], bool]


class Cluster:
    """`n` nodes; the first `genesis` of them (all by default) form the genesis validator set,
    the others start as observers. `app_factory(i)` makes node i's application."""

    def __init__(self, n: int = 4, params: ConsensusParams = PARAMS, *, genesis: int | None = None,
                 app_factory: Callable[[int], App] | None = None) -> None:
        self.keys = [KeyPair.from_seed(sha256(b"key-%d" % i)) for i in range(n)]
        members = self.keys[: n if genesis is None else genesis]
        self.validators = ValidatorSet(validators=tuple(k.public for k in members))  # type: ignore[misc]
        self.params = params
        self.app_factory: Callable[[int], App] = app_factory if app_factory is not None else (lambda i: App())
        self.nodes = [self._make(k, self.app_factory(i), None) for i, k in enumerate(self.keys)]
        self.queue: list[tuple[int, int, ConsensusMessage]] = []

    def _make(self, key: KeyPair, app: App, persisted: PersistedState | None) -> Node:
        r = Replica(key, self.validators, self.params, app, persisted, chain_id=CHAIN, genesis_hash=GENESIS)
        return Node(key=key, app=app, replica=r)

    def index(self, key: bytes) -> int:
        return [k.public for k in self.keys].index(key)

    def r(self, i: int) -> Replica:
        return self.nodes[i].replica

    def drain(self, i: int) -> None:
        node = self.nodes[i]
        while node.replica.has_ready():
            ready = node.replica.ready()
            node.wal.extend(ready.persist)
            members = [self.index(v) for v in node.replica.validators.validators]
            for s in ready.sends:
                # to=None: every other member of the sender's current set
                targets = members if s.to is None else [self.index(s.to)]
                self.queue.extend((i, t, s.message) for t in targets if t != i)
            for cb in ready.commits:
                node.store.append(cb)
                if node.execute:
                    node.app.execute(cb.block)
            node.evidence.extend(ready.evidence)
            node.fetches.extend(ready.fetches)
            node.replica.advance(ready)

    def drain_all(self) -> None:
        for i in range(len(self.nodes)):
            self.drain(i)

    def pump(self, keep: Filter | None = None, *, rounds: int = 100) -> None:
        """Deliver queued messages until none are left; `keep(src, dst, msg)` False drops one."""
        self.drain_all()
        for _ in range(rounds):
            if not self.queue:
                return
            batch, self.queue = self.queue, []
            for src, dst, msg in batch:
                if keep is None or keep(src, dst, msg):
                    self.nodes[dst].replica.step(msg, self.keys[src].public)
                    self.drain(dst)

    def tick(self, i: int, times: int = 1) -> None:
        for _ in range(times):
            self.r(i).tick()
        self.drain(i)

    def tick_all(self, times: int = 1, only: list[int] | None = None) -> None:
        for _ in range(times):
            for i in only if only is not None else range(len(self.nodes)):
                self.tick(i)

    def restart(self, i: int) -> None:
        node = self.nodes[i]
        app = self.app_factory(i)
        for cb in node.store:
            app.execute(cb.block)
        hdr = node.store[-1].block.header if node.store else None
        new = self._make(node.key, app, PersistedState(records=tuple(node.wal), committed_header=hdr))
        new.wal, new.store = node.wal, node.store
        self.nodes[i] = new
        self.drain(i)

    def heights(self) -> list[int]:
        return [len(n.store) for n in self.nodes]
