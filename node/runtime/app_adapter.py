"""The consensus `Application` (consensus/app.py) over the ledger, the mempool and the
verified-event cache. The replica calls it synchronously; it mutates nothing the replica
sees. `attach` gives it the replica's read-only view of the pre-prepared blocks (the
replica is built with this adapter, so that view comes after construction).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from afterchain.consensus.app import VerifyResult
from afterchain.node.app.ledger import Ledger
from afterchain.node.runtime import clock
from afterchain.node.runtime.intake import KnownEvents
from afterchain.node.runtime.mempool import Mempool, decode_and_verify
from afterchain.protocol.block import Block, ValidatorSet
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.genesis import ConsensusParams as GenesisConsensusParams

__all__ = ["BLOCK_TIME_FUTURE_MS", "BLOCK_TIME_PAST_MS", "ConsensusApp", "ProposalView"]

BLOCK_TIME_FUTURE_MS = 2_000
"""A backup refuses a proposed block whose time is more than this ahead of its own clock."""
BLOCK_TIME_PAST_MS = 10_000
"""A backup refuses a block proposed in its current view whose time is more than this
behind its own clock (a block a NEW-VIEW re-issues from an earlier view keeps its time
and is not held to it). docs/PROTOCOL.md, "Block time"."""


class ProposalView(Protocol):
    """What the adapter reads of the replica (`consensus.replica.Replica` is one)."""

    next_seq: int
    view: int

    def preprepared_blocks(self) -> Mapping[int, Block]: ...


class ConsensusApp:
    def __init__(self, *, ledger: Ledger, mempool: Mempool, known: KnownEvents,
                 params_for: Callable[[int], GenesisConsensusParams], counters: dict[str, int],
                 block_time_future_ms: int = BLOCK_TIME_FUTURE_MS, block_time_past_ms: int = BLOCK_TIME_PAST_MS,
                 log: Any = None) -> None:
        self.ledger = ledger
        self.log = log
        self.block_time_future_ms = block_time_future_ms
        self.block_time_past_ms = block_time_past_ms
        self.mempool = mempool
        self.known = known
        self.params_for = params_for
        self.counters = counters
        self.view: ProposalView | None = None
        self.received_ms = 0
        """When the message being handled came off the transport (set by the consensus loop
        around each peer message; 0 otherwise): the past bound is judged against it."""

    def attach(self, view: ProposalView) -> None:
        self.view = view

    def build_payload(self, max_events: int, max_bytes: int) -> tuple[bytes, ...]:
        assert self.view is not None, "attach the replica first"
        # Events already in a pre-prepared, not yet committed block (this node's earlier
        # proposals, or blocks a NEW-VIEW re-issued from the previous primary) must not be
        # proposed again: they would be in two blocks.
        pending: set[bytes] = set()
        pending_bytes = 0
        for block in self.view.preprepared_blocks().values():
            for raw in block.events:
                pending.add(raw)
                pending_bytes += len(raw)
        # the limits of the height being proposed (governance may have changed them there)
        cp = self.params_for(self.view.next_seq)
        max_events, max_bytes = min(max_events, cp.max_block_events), min(max_bytes, cp.max_block_bytes)
        candidates = self.mempool.select(max_events + len(pending), max_bytes + pending_bytes)
        raws: list[bytes] = []
        size = 0
        for raw in candidates:
            if raw in pending:
                continue
            if len(raws) >= max_events or size + len(raw) > max_bytes:
                break
            raws.append(raw)
            size += len(raw)
        return tuple(raws)

    def check_block_time(self, block: Block) -> str | None:
        """Why this node refuses the proposed block's time, None when it does not: more than
        `block_time_future_ms` ahead of its clock, or (proposed in the current view or a
        later one) more than `block_time_past_ms` behind it. The replica has checked that
        it is after its parent's."""
        hdr = block.header
        now = clock.wall_ms()
        if hdr.time_ms > now + self.block_time_future_ms:
            self.counters["block_time_future"] += 1
            if self.log is not None:
                self.log.warning("block_time_refused", height=hdr.height, view=hdr.view, ahead_ms=hdr.time_ms - now,
                                 bound_ms=self.block_time_future_ms, proposer=hdr.proposer.hex()[:16])
            return (f"block {hdr.height} time {hdr.time_ms} is {hdr.time_ms - now} ms ahead of this node's clock "
                    f"(at most {self.block_time_future_ms})")
        view = self.view.view if self.view is not None else 0
        # judged from the message's arrival: the time it then waited for this node's own
        # consensus task (an overloaded node, seconds behind its inbox) is not the proposer's
        arrived = min(now, self.received_ms) if self.received_ms else now
        if hdr.view >= view and hdr.time_ms < arrived - self.block_time_past_ms:
            self.counters["block_time_past"] += 1
            if self.log is not None:
                self.log.warning("block_time_refused", height=hdr.height, view=hdr.view, behind_ms=arrived - hdr.time_ms,
                                 bound_ms=self.block_time_past_ms, proposer=hdr.proposer.hex()[:16])
            return (f"block {hdr.height} time {hdr.time_ms} is {arrived - hdr.time_ms} ms behind this node's clock "
                    f"when the proposal arrived (at most {self.block_time_past_ms})")
        return None

    def verify_payload(self, block: Block) -> VerifyResult:
        late = self.check_block_time(block)
        if late is not None:
            return VerifyResult.reject(late)
        p = self.params_for(block.header.height)
        if len(block.events) > p.max_block_events:
            return VerifyResult.reject(f"{len(block.events)} events exceed max_block_events {p.max_block_events}")
        if sum(len(e) for e in block.events) > p.max_block_bytes:
            return VerifyResult.reject("block exceeds max_block_bytes")
        known = self.known
        cache = known.verified
        for raw, h in zip(block.events, block.event_hashes(), strict=True):
            if h in cache:
                continue
            self.counters["verified_payload"] += 1
            res = decode_and_verify(raw, known.chain_id)
            if isinstance(res, ProtocolError):
                return VerifyResult.reject(f"event {h.hex()[:16]}: {res}")
            known.remember_verified(h, res, raw)
        return VerifyResult.accept()

    def state_root_at(self, height: int) -> bytes | None:
        return self.ledger.root_at(height)

    def executed_height(self) -> int:
        return self.ledger.height

    def validators_for(self, height: int) -> ValidatorSet | None:
        return self.ledger.validators_for(height)
