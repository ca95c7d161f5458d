"""The node's reads for the API: `status_json`, `readiness`, `health`, `block_json`,
`event_status`; and the functions its live metrics read (`NodeMetrics.bind_live`).
Reads only: nothing here changes the node.

Readiness (``/readyz``; docs/OPERATIONS.md, "Liveness and readiness"): a node is ready when

- it has enough peers: a validator is connected to at least 2f of the other validators of
  the current set (with itself, a quorum of 2f + 1 can vote), an observer (a member node
  that follows the chain) to at least one peer, and has heard some peer's height; and
- it is caught up: no peer has reported a committed height more than `max_lag` blocks
  (two checkpoint intervals) above this node's, and the ledger has executed to within
  `max_lag` blocks of the stored chain.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from afterchain.consensus.replica import Replica
from afterchain.node.app.ledger import Ledger
from afterchain.node.common.version import PROTOCOL_VERSION, package_version
from afterchain.node.runtime.chain_store import ChainStore
from afterchain.node.runtime.mempool import Mempool
from afterchain.node.runtime.metrics import LiveReads, NodeMetrics
from afterchain.node.transport.base import Transport
from afterchain.protocol.events import event_id_of_signed
from afterchain.protocol.jsonform import to_json

__all__ = ["NodeStatus"]


class NodeStatus:
    def __init__(self, *, name: str, chain_id: str, me: bytes, store: ChainStore, ledger: Ledger, mempool: Mempool,
                 replica: Replica, transport: Transport, metrics: NodeMetrics, counters: dict[str, int],
                 pending_intake: Callable[[], int], gossip_backlog: Callable[[], int],
                 last_commit_wall_ms: Callable[[], int | None], data_dir: Path | None = None,
                 known_head: Callable[[], int] = lambda: 0, verified_height: Callable[[], int] = lambda: 0) -> None:
        self.name = name
        self.chain_id = chain_id
        self.me = me
        self.store = store
        self.ledger = ledger
        self.mempool = mempool
        self.replica = replica
        self.transport = transport
        self.metrics = metrics
        self.counters = counters
        self.pending_intake = pending_intake
        self.gossip_backlog = gossip_backlog
        self.last_commit_wall_ms = last_commit_wall_ms
        self.known_head = known_head
        self.verified_height = verified_height
        self.identity: dict[str, Any] = {}
        """Set by the process (server.py): {"peer_id": ..., "multiaddrs": [...]}."""
        if data_dir is not None:
            metrics.bind_live(LiveReads(
                height=lambda: store.head, executed_height=lambda: ledger.height, view=lambda: replica.view,
                peer_height=self.peer_height, peers_by_role=self.peers_by_role,
                mempool_events=lambda: len(mempool), mempool_bytes=lambda: mempool.bytes, data_dir=data_dir))

    def peer_height(self) -> int:
        """The highest committed height a peer has reported (0 before any report)."""
        return max(self.replica.peer_committed.values(), default=0)

    def peers_by_role(self) -> dict[str, int]:
        """Connected peers by role in the current validator set: validator, member."""
        vs = self.replica.validators
        out = {"validator": 0, "member": 0}
        for p in self.transport.connected_peers():
            out["validator" if p in vs else "member"] += 1
        return out

    def event_status(self, event_id: bytes) -> dict[str, Any] | None:
        oc = self.ledger.event_outcome(event_id)
        if oc is not None:
            base = {"id": event_id.hex(), "height": oc.height, "index": oc.index}
            if oc.code == "ok":
                return {**base, "status": "committed"}
            return {**base, "status": "rejected", "code": oc.code, "message": oc.message}
        if event_id in self.mempool:
            return {"id": event_id.hex(), "status": "pending"}
        dropped = self.store.dropped(event_id)
        if dropped is not None:
            return {"id": event_id.hex(), "status": "rejected", "code": dropped[0], "message": dropped[1]}
        return None

    def block_json(self, height: int, *, outcomes: bool = False) -> dict[str, Any] | None:
        block = self.store.block(height)
        cert = self.store.certificate(height)
        if block is None or cert is None:
            return None
        ids = [event_id_of_signed(e).hex() for e in block.events]
        # on request (`?outcomes=1`): the ledger's verdict on each event ("ok" or the reason
        # it was refused), once executed here (one store read per event)
        codes: list[str] | None = None
        if outcomes and height <= self.ledger.height:
            codes = []
            for e in ids:
                oc = self.ledger.event_outcome(bytes.fromhex(e))
                codes.append("?" if oc is None else oc.code)
        return {
            "height": height,
            "hash": block.header.hash().hex(),
            "header": to_json(block.header),
            "certificate": to_json(cert),
            "event_ids": ids,
            **({"outcomes": codes} if outcomes else {}),
        }

    def status_json(self) -> dict[str, Any]:
        r = self.replica
        head = self.store.block(self.store.head) if self.store.head else None
        return {
            "chain_id": self.chain_id,
            "node": self.name,
            "version": package_version(),
            "protocol_version": PROTOCOL_VERSION,
            "node_id": self.me.hex(),
            "height": self.store.head,
            "executed_height": self.ledger.height,
            "state_root": self.ledger.state_root.hex(),
            "view": r.view,
            "primary": r.primary.hex(),
            "is_primary": r.is_primary,
            "peers": sorted(p.hex() for p in self.transport.connected_peers()),
            "last_block_hash": head.header.hash().hex() if head else None,
            "last_commit_ms": self.last_commit_wall_ms(),
            "mempool": {"events": len(self.mempool), "bytes": self.mempool.bytes},
            "intake": {"pending": self.pending_intake(), "gossip_backlog": self.gossip_backlog(), **self.counters},
            "stable_checkpoint": r.stable_seq,
            "consensus_rejected": dict(r.rejected),
            # vote signatures: checked, and answered from memory (the same vote again)
            "consensus_signatures": {"checked": r.verifier.misses, "repeats_skipped": r.verifier.hits},
            "validators": [v.hex() for v in r.validators.validators],
            "role": "validator" if self.me in r.validators else "member",
            # the highest certified height this node knows (its own, or what a member's
            # peers among the validators report) and how far its executed state is behind
            "certified_height_known": (known := max(self.known_head(), self.store.head)),
            "lag": known - self.ledger.height,
            "state_verified_height": self.verified_height(),
            "p2p": self.identity or None,
            # what this node's transport has written to its peers since start (upload)
            "transport": {"frames_sent": self.transport.stats.frames_sent, "bytes_sent": self.transport.stats.bytes_sent,
                          # [frames, bytes] by "peer role:message" (node/runtime/traffic.py)
                          "sent_by": {k: list(v) for k, v in sorted(self.transport.stats.sent_by.items())}},
        }

    def readiness(self) -> dict[str, Any]:
        """``{"ready", "reasons", ...}``: see the module docstring."""
        r = self.replica
        validator = self.me in r.validators
        by_role = self.peers_by_role()
        peers = by_role["validator"] if validator else by_role["validator"] + by_role["member"]
        need = 2 * r.validators.f if validator else 1
        head, executed = self.store.head, self.ledger.height
        best = max(self.peer_height(), self.known_head())  # a member learns heads from its followers' answers
        max_lag = 2 * r.params.checkpoint_interval
        reasons = []
        if peers < need:
            what = "validator peers" if validator else "peers"
            reasons.append(f"connected to {peers} {what}, need {need}")
        if not validator and not r.peer_committed and not self.known_head():
            reasons.append("no peer has reported its height yet")
        if best > head + max_lag:
            reasons.append(f"catching up: at height {head}, peers at {best}")
        if head > executed + max_lag:
            reasons.append(f"executing: ledger at height {executed}, chain at {head}")
        return {
            "ready": not reasons, "reasons": reasons, "role": "validator" if validator else "member",
            "height": head, "executed_height": executed, "peer_height": best, "lag": max(0, best - head),
            "max_lag": max_lag, "peers": peers, "peers_needed": need,
        }

    def health(self) -> tuple[bool, str]:
        """The compatibility form of `readiness` (``/health``)."""
        ready = self.readiness()
        return ready["ready"], "; ".join(ready["reasons"]) or "ok"
