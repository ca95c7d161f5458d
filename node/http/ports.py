"""What the HTTP layer needs from a node: narrow read and write ports (`typing.Protocol`s).

The routes take these, never the runtime `Node`; `node.http.service.NodeHttp` adapts a
running node to `NodeService` (which is every port at once), and tests may pass fakes
(a light-client test serves `proof_routes` over a duck-typed chain). Reads return
committed state; JSON-ready reads say so in their names (``*_json``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from afterchain.node.runtime.feed import EventFilter, Position, Subscription
from afterchain.node.runtime.mempool import AddOutcome
from afterchain.protocol.block import CommitCertificate, ValidatorSet
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.genesis import ConsensusParams, LedgerParams, VmParams
from afterchain.protocol.smt import SmtProof

__all__ = [
    "EventStream",
    "FaultControl",
    "GovernanceReads",
    "HeaderStore",
    "LedgerReads",
    "NodeLedger",
    "NodeReads",
    "NodeService",
    "ProofLedger",
    "ProofSource",
    "Submitter",
]


class Submitter(Protocol):
    """Event intake and event status (`node.http.writes`)."""

    @property
    def chain_id(self) -> str: ...
    @property
    def max_request_bytes(self) -> int: ...
    @property
    def max_batch_events(self) -> int: ...

    async def submit(self, raws: list[bytes], pre_errors: dict[int, ProtocolError]) -> list[AddOutcome]: ...
    def event_status(self, event_id: bytes) -> dict[str, Any] | None: ...


class EventStream(Protocol):
    """The feed of committed events (`node.runtime.feed.EventFeed`; `node.http.stream`)."""

    def subscribe(self, flt: EventFilter, after: Position | None, client: str) -> Subscription:
        """A subscription after `after` (None: from the next block); raises `SubscribeRefused`."""
        ...


class NodeReads(Protocol):
    """The node's own state: blocks, status, health, metrics, mempool nonces, evidence it saw
    (`node.http.reads`, `node.http.status`)."""

    def block_json(self, height: int, *, outcomes: bool = False) -> dict[str, Any] | None: ...
    def status_json(self) -> dict[str, Any]: ...
    def health(self) -> tuple[bool, str]: ...
    def metrics_text(self) -> tuple[bytes, str]:
        """(body, content type) of the Prometheus exposition."""
        ...
    def pending_nonces(self, key: bytes) -> list[int]:
        """Nonces of `key`'s events waiting in the mempool."""
        ...
    def evidence_seen(self) -> tuple[dict[bytes, int], int]:
        """(equivocations observed here by validator key, evidence events this node submitted)."""
        ...


class LedgerReads(Protocol):
    """The after-sales ledger's reads (`node.http.reads`)."""

    def ticket(self, ticket_id: bytes) -> dict[str, Any] | None: ...
    def product(self, gtin: str, serial: str) -> dict[str, Any] | None: ...
    def product_history(self, gtin: str, serial: str) -> list[Any]: ...
    def quality(self, org: str) -> dict[str, Any] | None: ...
    def ticket_page(self, *, org: str | None = None, status: str | None = None, customer: bytes | None = None,
                    limit: int, after: bytes | None = None) -> list[tuple[bytes, bytes]]: ...
    def nonce(self, key: bytes) -> int: ...
    def escrow(self, escrow_id: bytes) -> dict[str, Any] | None: ...
    def balance(self, account: str) -> int: ...
    def orgs(self, *, limit: int = 4096, after: bytes | None = None) -> list[tuple[str, dict[str, Any]]]: ...
    def evidence_page(self, *, validator: bytes | None = None, limit: int,
                      after: bytes | None = None) -> list[tuple[bytes, dict[str, Any]]]: ...


class GovernanceReads(Protocol):
    """Proposals, members, parameters and the validator schedule (`node.http.governance`)."""

    @property
    def height(self) -> int: ...

    def proposal_page(self, *, open_only: bool = False, limit: int,
                      after: bytes | None = None) -> list[tuple[bytes, bytes]]: ...
    def proposal(self, proposal_id: bytes) -> dict[str, Any] | None: ...
    def org(self, org_id: str) -> dict[str, Any] | None: ...
    def validators(self) -> ValidatorSet: ...
    def validators_for(self, height: int) -> ValidatorSet | None: ...
    def validator_schedule(self) -> list[tuple[int, ValidatorSet]]: ...
    def consensus_schedule(self) -> list[tuple[int, ConsensusParams]]: ...
    def pending_schedule_entry(self) -> tuple[int, ValidatorSet, ConsensusParams] | None: ...
    def current_params(self) -> tuple[ConsensusParams, VmParams, LedgerParams]: ...


class ProofLedger(Protocol):
    """State proofs at past heights and the validator sets headers may name (`node.http.proofs`)."""

    def history_window(self) -> tuple[int, int]: ...
    def prove_at(self, key: bytes, height: int) -> tuple[bytes | None, SmtProof]: ...
    def root_at(self, height: int) -> bytes | None: ...
    def validator_sets_by_hash(self) -> dict[bytes, ValidatorSet]: ...


class HeaderStore(Protocol):
    """Committed blocks and their certificates by height (`node.http.proofs`)."""

    @property
    def head(self) -> int: ...

    def block_bytes(self, height: int) -> bytes | None: ...
    def certificate(self, height: int) -> CommitCertificate | None: ...


class ProofSource(Protocol):
    """What `proof_routes` serves from."""

    @property
    def ledger(self) -> ProofLedger: ...
    @property
    def store(self) -> HeaderStore: ...


class FaultControl(Protocol):
    """The transport's operator fault switch (`node.transport.base.FaultSwitch`; `node.http.admin`)."""

    def describe(self) -> dict[str, Any]: ...
    def set(self, *, block: Iterable[bytes] | None = None, drop_rate: float | None = None) -> None: ...


class NodeLedger(LedgerReads, GovernanceReads, ProofLedger, Protocol):
    """Every ledger read the API makes."""


class NodeService(Submitter, NodeReads, Protocol):
    """The whole API's view of a node (`node.http.app.build_app`)."""

    @property
    def ledger(self) -> NodeLedger: ...
    @property
    def store(self) -> HeaderStore: ...
    @property
    def feed(self) -> EventStream: ...
    @property
    def faults(self) -> FaultControl | None:
        """The transport's fault switch, None if it has none (admin routes answer 501)."""
        ...
    @property
    def admin_token(self) -> str | None: ...
