"""A simulated node: the toy application (`SimApp`), the run's validator-set schedule
(`Schedule`) and the node's disk and role (`SimNode`: WAL, block store, Byzantine kinds).

`SimApp` is deterministic: state root after h = SHA-256(root(h-1) || header hash), and
``vset:<i>:<members>`` payload items adopt validator-set command i once, in chain order;
its `validators_for` applies the rule of `consensus.epochs` to the adopted sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from afterchain.protocol.block import Block, ValidatorSet
from afterchain.protocol.codec import Message, sha256
from afterchain.protocol.types import ValidatorId

from ..app import VerifyResult
from ..epochs import set_source_height
from ..messages import CertifiedBlock, ConsensusMessage
from ..replica import Replica
from ..signer import Signer

__all__ = ["VSET_PREFIX", "Schedule", "SimApp", "SimNode"]

VSET_PREFIX = b"vset:"


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


class SimNode:
    """One simulated node: its key, role, replica (None while crashed), application and
    what survives a crash (the WAL as pruned by the shell, the block store)."""

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
        """(signer, phase, view, seq) -> digest of the first such message this node took (the evidence oracle)."""
