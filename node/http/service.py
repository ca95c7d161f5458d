"""`NodeHttp`: a running `Node` seen through the API's ports (`node.http.ports.NodeService`).

The only module of the HTTP room that knows the runtime's `Node`: it forwards each port
method to the node (its ledger, block store, mempool, evidence reporter, metrics and
transport). Everything is read at call time, so answers follow the live node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from afterchain.node.http.ports import EventStream, FaultControl, HeaderStore, NodeLedger
from afterchain.node.runtime.mempool import AddOutcome
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.genesis import Genesis

if TYPE_CHECKING:
    from afterchain.node.runtime.runner import Node

__all__ = ["NodeHttp"]


class NodeHttp:
    """The API's view of a node (`admin_token`: see `node.http.admin`)."""

    def __init__(self, node: Node, *, admin_token: str | None = None) -> None:
        self.node = node
        self.admin_token = admin_token
        self.chain_id = node.chain_id
        self.max_request_bytes = node.options.max_request_bytes
        self.max_batch_events = node.options.max_batch_events

    @property
    def ledger(self) -> NodeLedger:
        return self.node.ledger

    @property
    def store(self) -> HeaderStore:
        return self.node.store

    @property
    def genesis(self) -> Genesis:
        return self.node.genesis

    @property
    def feed(self) -> EventStream:
        return self.node.feed

    @property
    def faults(self) -> FaultControl | None:
        return getattr(self.node.transport, "faults", None)

    async def take_snapshot(self, out: str | None) -> dict[str, Any]:
        """The admin snapshot route's checkpoints (`Node.snapshot`); None: a snapshot offered
        to peers (`Node.offer_snapshot`)."""
        if out is None:
            return await self.node.offer_snapshot()
        return await self.node.snapshot(out)

    async def submit(self, raws: list[bytes], pre_errors: dict[int, ProtocolError]) -> list[AddOutcome]:
        return await self.node.submit(raws, pre_errors)

    def event_status(self, event_id: bytes) -> dict[str, Any] | None:
        return self.node.event_status(event_id)

    def block_json(self, height: int, *, outcomes: bool = False) -> dict[str, Any] | None:
        return self.node.block_json(height, outcomes=outcomes)

    def status_json(self) -> dict[str, Any]:
        return self.node.status_json()

    def health(self) -> tuple[bool, str]:
        return self.node.health()

    def readiness(self) -> dict[str, Any]:
        return self.node.readiness()

    def metrics_text(self) -> tuple[bytes, str]:
        return self.node.metrics.render()

    def next_nonce(self, key: bytes) -> int:
        return self.node.mempool.first_free_nonce(key)

    def evidence_seen(self) -> tuple[dict[bytes, int], int]:
        rep = self.node.evidence_reporter
        return rep.observed, rep.submitted
