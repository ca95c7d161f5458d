"""Client library for participating companies: build, sign, submit and follow events.

Owns: talking to one or more nodes' HTTP API (`node.api`) on behalf of ONE signing key:
typed builders for every event type of `protocol.bodies`, the key's nonce, submission
(one event or a batch, msgpack), waiting for an event's outcome, and reads (tickets,
products and their history, quality reports, escrows, balances, accounts, blocks).

Invariants and limits
- Synchronous (`httpx.Client`): simplest for ERP glue, scripts and the CLI. Not
  thread-safe; use one `Client` per thread.
- Every request goes to the first node that answers (the last one that did is tried
  first): a connection error, a timeout or a 5xx moves on to the next URL of the list;
  429/503 first wait for ``Retry-After`` (capped at `MAX_RETRY_AFTER_S`). At most
  `max_attempts` rounds over the list, with exponential back-off between rounds
  (`BACKOFF_FIRST_S` doubling up to `BACKOFF_MAX_S`); then `Unreachable`. A 4xx other
  than 429 is an answer: the node's code and message become the error.
- Waiting polls ``/v1/events/{id}`` (every 20 ms doubling to `POLL_MAX_S`) until the
  outcome is final or the caller's timeout passes (`TimedOut`; the event may still commit).
- Submitting the same signed event twice is harmless (the node answers ``duplicate``),
  so a submission is retried on another node after a connection error.
- Nonces: the first event asks ``/v1/accounts/{key}`` for ``next_nonce`` (which counts
  this key's pending events), later ones count locally. Any rejection (at intake, where
  nothing is used, or at commit, where a refusal by the ledger's rules uses the nonce
  but a refused signature or nonce does not) or a ``nonce.*`` answer drops the local
  count, so the next event asks the node again.
- Personal data never leaves the caller: free text (descriptions, notes, order
  references) is reduced to `content_hash` (SHA-256) before it goes into a body.
- Ids are bytes inside the library and 64-character lowercase hex on the wire; every
  method that takes an id accepts either.

Usage::

    from afterchain.node.client.sdk import Client, content_hash

    with Client(["http://127.0.0.1:8001", "http://127.0.0.1:8002"], key="alice.key") as c:
        ev = c.build.ticket_open(kind="repair", gtin="00012345600012", serial="SN1",
                                 fault_type="no_power", description_hash=content_hash("it does not start"))
        outcome = c.submit_and_wait(ev, timeout_s=10)     # raises Rejected / TimedOut
        print(outcome.id, outcome.height)                 # the ticket id is the event id
        print(c.ticket(outcome.id)["status"])             # "opened"

    # or in one call: build + submit + wait
    with Client(["http://127.0.0.1:8001"], key=".cluster/keys/fixit.key") as fixit:
        fixit.send(fixit.build.ticket_ack(ticket_id=outcome.id))

Batches: ``c.submit([c.build.product_register(...), ...])`` signs consecutive nonces and
sends them in one msgpack request; ``c.wait_all(ids)`` follows them.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgpack

from afterchain.node.common.keys import load_key
from afterchain.protocol import bodies as B
from afterchain.protocol.block import ValidatorSet
from afterchain.protocol.codec import encode
from afterchain.protocol.crypto import KeyPair
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.events import Event, EventBody, SignedEvent, sign_event
from afterchain.protocol.genesis import ConsensusParams, LedgerParams, ParamChange, VmParams
from afterchain.protocol.types import Hash32, PublicKey, ValidatorId

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "MAX_BATCH_EVENTS",
    "Client",
    "ClientError",
    "EventBuilder",
    "InvalidInput",
    "NotFound",
    "Outcome",
    "Rejected",
    "TimedOut",
    "Unreachable",
    "as_id",
    "as_key",
    "content_hash",
    "customer_account",
]

DEFAULT_TIMEOUT_S = 30.0
"""How long `wait` / `send` wait for an outcome by default."""
REQUEST_TIMEOUT_S = 5.0
"""One HTTP request's timeout (connect, read)."""
MAX_ATTEMPTS = 3
"""Rounds over the node list before giving up on a request."""
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 2.0
MAX_RETRY_AFTER_S = 5.0
POLL_FIRST_S = 0.02
POLL_MAX_S = 0.1
MAX_REMEMBERED_TYPES = 10_000
"""Types of the most recent events this client signed, kept to label their outcomes."""
MAX_BATCH_EVENTS = 5000
"""Events in one submission (the node's default ``api.max_batch_events``)."""


# --------------------------------------------------------------------------- errors


class ClientError(Exception):
    """Base of the client's errors. `code` is a stable string, `message` says what happened."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class InvalidInput(ClientError):
    """The caller's input cannot become a valid event (schema, key file, id format)."""


class Unreachable(ClientError):
    """No node of the list answered usefully after every retry."""

    def __init__(self, message: str) -> None:
        super().__init__("client.unreachable", message)


class TimedOut(ClientError):
    """The event was accepted but no outcome arrived in time (it may still commit)."""

    def __init__(self, event_id: bytes, timeout_s: float) -> None:
        super().__init__("client.timeout", f"no outcome for event {event_id.hex()} after {timeout_s:g} s")
        self.event_id = event_id


class Rejected(ClientError):
    """The node refused the event (at intake or at commit) with a reason code and message."""

    def __init__(self, code: str, message: str, event_id: bytes | None = None, height: int | None = None) -> None:
        super().__init__(code, message)
        self.event_id = event_id
        self.height = height


class NotFound(ClientError):
    """A read found nothing (404): no such ticket, product, escrow, event, block."""


# --------------------------------------------------------------------------- helpers


def content_hash(data: bytes | str) -> Hash32:
    """SHA-256 of `data` (text is UTF-8 encoded): what goes on the ledger instead of the data."""
    return Hash32(hashlib.sha256(data.encode() if isinstance(data, str) else data).digest())


def as_id(value: bytes | str, what: str = "id") -> Hash32:
    """A 32-byte id from bytes or 64 hex characters."""
    if isinstance(value, str):
        try:
            value = bytes.fromhex(value)
        except ValueError:
            raise InvalidInput("client.invalid_id", f"{what} must be 64 hex characters") from None
    if len(value) != 32:
        raise InvalidInput("client.invalid_id", f"{what} must be 32 bytes (64 hex characters), got {len(value)} bytes")
    return Hash32(bytes(value))


def as_key(value: bytes | str | KeyPair) -> PublicKey:
    """A public key from bytes, 64 hex characters or a key pair."""
    if isinstance(value, KeyPair):
        return PublicKey(value.public)
    return PublicKey(as_id(value, "public key"))


def _opt_id(value: bytes | str | None, what: str) -> Hash32 | None:
    return None if value is None else as_id(value, what)


def customer_account(public_key: bytes | str) -> str:
    """The ledger account name of a customer key (``cust:<hex>``), for balances."""
    return "cust:" + as_key(public_key).hex()


def _load(key: KeyPair | str | os.PathLike[str] | None) -> KeyPair | None:
    if key is None or isinstance(key, KeyPair):
        return key
    try:
        return load_key(key)
    except ProtocolError as exc:
        raise InvalidInput(str(exc.code), exc.message) from None


# --------------------------------------------------------------------------- outcomes


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of an event: ``committed`` / ``rejected`` (final) or ``pending`` / ``accepted``."""

    id: bytes
    status: str
    height: int | None = None
    index: int | None = None
    code: str | None = None
    message: str | None = None
    type: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.status in ("committed", "rejected")

    @property
    def committed(self) -> bool:
        return self.status == "committed"

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id.hex(), "status": self.status}
        for k in ("type", "height", "index", "code", "message"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        d.update(self.extra)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any], type_: str | None = None) -> Outcome:
        return cls(
            id=bytes.fromhex(d["id"]),
            status=d["status"],
            height=d.get("height"),
            index=d.get("index"),
            code=d.get("code"),
            message=d.get("message"),
            type=type_,
        )

    def raise_if_rejected(self) -> Outcome:
        if self.status == "rejected":
            raise Rejected(self.code or "rejected", self.message or "", self.id, self.height)
        return self


# --------------------------------------------------------------------------- builders


class EventBuilder:
    """One method per event type: keyword arguments -> a signed event with the next nonce.

    Every method validates the body (schema, `InvalidInput` on failure) and signs it for the
    client's chain id. Nothing is sent: pass the result to `Client.submit` / `Client.send`.
    Ids accept bytes or hex; hashes (``*_hash``) are 32 bytes or hex (see `content_hash`).
    """

    def __init__(self, client: Client) -> None:
        self._c = client

    def _sign(self, body: EventBody) -> SignedEvent:
        return self._c.sign(body)

    # ---- organisations (governance-driven; recorded, not enabled yet)
    def org_register(self, *, org_id: str, name: str, roles: Sequence[str], keys: Sequence[bytes | str]) -> SignedEvent:
        return self._sign(
            B.OrgRegister(org_id=org_id, name=name, roles=tuple(sorted(roles)), keys=tuple(as_key(k) for k in keys))
        )

    def org_update(self, *, org_id: str, roles: Sequence[str], keys: Sequence[bytes | str]) -> SignedEvent:
        return self._sign(B.OrgUpdate(org_id=org_id, roles=tuple(sorted(roles)), keys=tuple(as_key(k) for k in keys)))

    # ---- products
    def product_register(
        self, *, gtin: str, serial: str, model: str, batch: str, production_time_ms: int
    ) -> SignedEvent:
        return self._sign(
            B.ProductRegister(gtin=gtin, serial=serial, model=model, batch=batch, production_time_ms=production_time_ms)
        )

    def product_transfer(
        self,
        *,
        gtin: str,
        serial: str,
        kind: str = "transfer",
        to_org: str | None = None,
        to_customer: bytes | str | None = None,
        order_ref_hash: bytes | str | None = None,
    ) -> SignedEvent:
        return self._sign(
            B.ProductTransfer(
                gtin=gtin,
                serial=serial,
                kind=kind,
                to_org=to_org,
                to_customer=None if to_customer is None else as_key(to_customer),
                order_ref_hash=_opt_id(order_ref_hash, "order_ref_hash"),
            )
        )

    def product_sell(
        self, *, gtin: str, serial: str, to_customer: bytes | str, order_ref_hash: bytes | str
    ) -> SignedEvent:
        """A sale to a customer: `product_transfer` with ``kind="sale"``."""
        return self.product_transfer(
            gtin=gtin, serial=serial, kind="sale", to_customer=to_customer, order_ref_hash=order_ref_hash
        )

    def trace_record(
        self,
        *,
        gtin: str,
        serial: str,
        biz_step: str,
        disposition: str,
        location_hash: bytes | str,
        ref_hash: bytes | str | None = None,
    ) -> SignedEvent:
        return self._sign(
            B.TraceRecord(
                gtin=gtin,
                serial=serial,
                biz_step=biz_step,
                disposition=disposition,
                location_hash=as_id(location_hash, "location_hash"),
                ref_hash=_opt_id(ref_hash, "ref_hash"),
            )
        )

    def product_recall(self, *, gtin: str, batch: str, reason_hash: bytes | str) -> SignedEvent:
        return self._sign(B.ProductRecall(gtin=gtin, batch=batch, reason_hash=as_id(reason_hash, "reason_hash")))

    # ---- policies, warranty, contracts
    def policy_register(
        self,
        *,
        name: str,
        service_org: str,
        coverage_period_ms: int,
        covered_faults: Sequence[str] = (),
        first_response_ms: int,
        resolution_ms: int,
        penalty_amount: int = 0,
        return_window_ms: int = 0,
        contract_id: bytes | str | None = None,
    ) -> SignedEvent:
        return self._sign(
            B.PolicyRegister(
                name=name,
                service_org=service_org,
                coverage_period_ms=coverage_period_ms,
                covered_faults=tuple(sorted(set(covered_faults))),
                first_response_ms=first_response_ms,
                resolution_ms=resolution_ms,
                penalty_amount=penalty_amount,
                return_window_ms=return_window_ms,
                contract_id=_opt_id(contract_id, "contract_id"),
            )
        )

    def warranty_activate(self, *, gtin: str, serial: str, policy_id: bytes | str) -> SignedEvent:
        return self._sign(B.WarrantyActivate(gtin=gtin, serial=serial, policy_id=as_id(policy_id, "policy_id")))

    def contract_deploy(self, *, vm_id: str, vm_version: int = 1, name: str, code: bytes) -> SignedEvent:
        return self._sign(B.ContractDeploy(vm_id=vm_id, vm_version=vm_version, name=name, code=code))

    def contract_call(self, *, contract_id: bytes | str, entry: str, args: bytes = b"", gas_limit: int) -> SignedEvent:
        return self._sign(
            B.ContractCall(contract_id=as_id(contract_id, "contract_id"), entry=entry, args=args, gas_limit=gas_limit)
        )

    # ---- tickets
    def ticket_open(
        self,
        *,
        kind: str,
        gtin: str,
        serial: str,
        fault_type: str,
        description_hash: bytes | str,
        attachments: Sequence[bytes | str] = (),
    ) -> SignedEvent:
        return self._sign(
            B.TicketOpen(
                kind=kind,
                gtin=gtin,
                serial=serial,
                fault_type=fault_type,
                description_hash=as_id(description_hash, "description_hash"),
                attachments=tuple(as_id(a, "attachment") for a in attachments),
            )
        )

    def ticket_ack(self, *, ticket_id: bytes | str, note_hash: bytes | str | None = None) -> SignedEvent:
        return self._sign(
            B.TicketAck(ticket_id=as_id(ticket_id, "ticket_id"), note_hash=_opt_id(note_hash, "note_hash"))
        )

    def ticket_update(
        self, *, ticket_id: bytes | str, status: str, note_hash: bytes | str | None = None
    ) -> SignedEvent:
        return self._sign(
            B.TicketUpdate(
                ticket_id=as_id(ticket_id, "ticket_id"), status=status, note_hash=_opt_id(note_hash, "note_hash")
            )
        )

    def ticket_assign(self, *, ticket_id: bytes | str, org_id: str) -> SignedEvent:
        return self._sign(B.TicketAssign(ticket_id=as_id(ticket_id, "ticket_id"), org_id=org_id))

    def ticket_escalate(self, *, ticket_id: bytes | str, reason_hash: bytes | str) -> SignedEvent:
        return self._sign(
            B.TicketEscalate(ticket_id=as_id(ticket_id, "ticket_id"), reason_hash=as_id(reason_hash, "reason_hash"))
        )

    def ticket_resolve(self, *, ticket_id: bytes | str, resolution: str, resolution_hash: bytes | str) -> SignedEvent:
        return self._sign(
            B.TicketResolve(
                ticket_id=as_id(ticket_id, "ticket_id"),
                resolution=resolution,
                resolution_hash=as_id(resolution_hash, "resolution_hash"),
            )
        )

    def ticket_reject(
        self, *, ticket_id: bytes | str, reason_code: str, reason_hash: bytes | str | None = None
    ) -> SignedEvent:
        return self._sign(
            B.TicketReject(
                ticket_id=as_id(ticket_id, "ticket_id"),
                reason_code=reason_code,
                reason_hash=_opt_id(reason_hash, "reason_hash"),
            )
        )

    def ticket_confirm(self, *, ticket_id: bytes | str) -> SignedEvent:
        return self._sign(B.TicketConfirm(ticket_id=as_id(ticket_id, "ticket_id")))

    def ticket_reopen(self, *, ticket_id: bytes | str, reason_hash: bytes | str) -> SignedEvent:
        return self._sign(
            B.TicketReopen(ticket_id=as_id(ticket_id, "ticket_id"), reason_hash=as_id(reason_hash, "reason_hash"))
        )

    def ticket_close(self, *, ticket_id: bytes | str) -> SignedEvent:
        return self._sign(B.TicketClose(ticket_id=as_id(ticket_id, "ticket_id")))

    # ---- returns and shipments
    def return_request(self, *, gtin: str, serial: str, reason_code: str, reason_hash: bytes | str) -> SignedEvent:
        return self._sign(
            B.ReturnRequest(
                gtin=gtin, serial=serial, reason_code=reason_code, reason_hash=as_id(reason_hash, "reason_hash")
            )
        )

    def return_approve(self, *, ticket_id: bytes | str) -> SignedEvent:
        return self._sign(B.ReturnApprove(ticket_id=as_id(ticket_id, "ticket_id")))

    def return_reject(
        self, *, ticket_id: bytes | str, reason_code: str, reason_hash: bytes | str | None = None
    ) -> SignedEvent:
        return self._sign(
            B.ReturnReject(
                ticket_id=as_id(ticket_id, "ticket_id"),
                reason_code=reason_code,
                reason_hash=_opt_id(reason_hash, "reason_hash"),
            )
        )

    def return_receive(
        self, *, ticket_id: bytes | str, condition: str, inspection_hash: bytes | str | None = None
    ) -> SignedEvent:
        return self._sign(
            B.ReturnReceive(
                ticket_id=as_id(ticket_id, "ticket_id"),
                condition=condition,
                inspection_hash=_opt_id(inspection_hash, "inspection_hash"),
            )
        )

    def shipment_checkpoint(
        self,
        *,
        ticket_id: bytes | str,
        checkpoint: str,
        location_hash: bytes | str,
        tracking_hash: bytes | str | None = None,
    ) -> SignedEvent:
        return self._sign(
            B.ShipmentCheckpoint(
                ticket_id=as_id(ticket_id, "ticket_id"),
                checkpoint=checkpoint,
                location_hash=as_id(location_hash, "location_hash"),
                tracking_hash=_opt_id(tracking_hash, "tracking_hash"),
            )
        )

    # ---- escrow
    def escrow_deposit(
        self,
        *,
        amount: int,
        payee_org: str | None = None,
        payee_customer: bytes | str | None = None,
        ticket_id: bytes | str | None = None,
        ref_hash: bytes | str | None = None,
    ) -> SignedEvent:
        return self._sign(
            B.EscrowDeposit(
                amount=amount,
                payee_org=payee_org,
                payee_customer=None if payee_customer is None else as_key(payee_customer),
                ticket_id=_opt_id(ticket_id, "ticket_id"),
                ref_hash=_opt_id(ref_hash, "ref_hash"),
            )
        )

    def escrow_release(self, *, escrow_id: bytes | str) -> SignedEvent:
        return self._sign(B.EscrowRelease(escrow_id=as_id(escrow_id, "escrow_id")))

    def escrow_refund(self, *, escrow_id: bytes | str) -> SignedEvent:
        return self._sign(B.EscrowRefund(escrow_id=as_id(escrow_id, "escrow_id")))

    # ---- ratings
    def rating_submit(
        self, *, ticket_id: bytes | str, score: int, comment_hash: bytes | str | None = None
    ) -> SignedEvent:
        return self._sign(
            B.RatingSubmit(
                ticket_id=as_id(ticket_id, "ticket_id"), score=score, comment_hash=_opt_id(comment_hash, "comment_hash")
            )
        )

    # ---- governance (proposals by members or validators; votes by validators)
    def governance_propose(self, *, kind: str, payload: bytes, voting_period_ms: int) -> SignedEvent:
        return self._sign(B.GovernancePropose(kind=kind, payload=payload, voting_period_ms=voting_period_ms))

    def governance_validator_change(self, *, validators: Sequence[bytes | str], voting_period_ms: int) -> SignedEvent:
        """Propose the complete new validator set (in this order)."""
        vs = ValidatorSet(validators=tuple(ValidatorId(as_key(v)) for v in validators))
        return self.governance_propose(kind="validator_change", payload=encode(vs), voting_period_ms=voting_period_ms)

    def governance_param_change(self, *, consensus: ConsensusParams | None = None, vm: VmParams | None = None,
                                voting_period_ms: int) -> SignedEvent:
        """Propose new consensus and/or VM parameters (each complete)."""
        payload = encode(ParamChange(consensus=consensus, vm=vm))
        return self.governance_propose(kind="param_change", payload=payload, voting_period_ms=voting_period_ms)

    def governance_policy_standard(self, *, params: LedgerParams, voting_period_ms: int) -> SignedEvent:
        """Propose new chain-wide after-sales rules (`LedgerParams`, e.g. the default return window)."""
        return self.governance_propose(kind="policy_standard", payload=encode(params), voting_period_ms=voting_period_ms)

    def governance_vote(self, *, proposal_id: bytes | str, approve: bool) -> SignedEvent:
        return self._sign(B.GovernanceVote(proposal_id=as_id(proposal_id, "proposal_id"), approve=approve))

    def consensus_evidence(self, *, evidence: bytes | str) -> SignedEvent:
        """Report an equivocation (nodes do this themselves; needs a validator key):
        `evidence` is an encoded `consensus.messages.Evidence` (bytes or hex)."""
        if isinstance(evidence, str):
            try:
                evidence = bytes.fromhex(evidence)
            except ValueError:
                raise InvalidInput("field.invalid", "evidence: not hex") from None
        return self._sign(B.ConsensusEvidence(evidence=evidence))


BUILDERS: dict[str, str] = {
    "org.register": "org_register",
    "org.update": "org_update",
    "product.register": "product_register",
    "product.transfer": "product_transfer",
    "trace.record": "trace_record",
    "product.recall": "product_recall",
    "policy.register": "policy_register",
    "warranty.activate": "warranty_activate",
    "contract.deploy": "contract_deploy",
    "contract.call": "contract_call",
    "ticket.open": "ticket_open",
    "ticket.ack": "ticket_ack",
    "ticket.update": "ticket_update",
    "ticket.assign": "ticket_assign",
    "ticket.escalate": "ticket_escalate",
    "ticket.resolve": "ticket_resolve",
    "ticket.reject": "ticket_reject",
    "ticket.confirm": "ticket_confirm",
    "ticket.reopen": "ticket_reopen",
    "ticket.close": "ticket_close",
    "return.request": "return_request",
    "return.approve": "return_approve",
    "return.reject": "return_reject",
    "return.receive": "return_receive",
    "shipment.checkpoint": "shipment_checkpoint",
    "escrow.deposit": "escrow_deposit",
    "escrow.release": "escrow_release",
    "escrow.refund": "escrow_refund",
    "rating.submit": "rating_submit",
    "governance.propose": "governance_propose",
    "governance.vote": "governance_vote",
    "consensus.evidence": "consensus_evidence",
}
"""Event type -> `EventBuilder` method (one per type of `protocol.events.EVENT_TYPES`; a test checks it)."""


# --------------------------------------------------------------------------- the client


class Client:
    """A synchronous client of a list of nodes, signing with one key (optional for reads).

    `nodes`: base URLs (``http://host:port``), tried in order with failover; the one
    that answered last is tried first next time. `key`: a `KeyPair` or a key file path.
    `chain_id`: learned from ``/v1/status`` when not given.
    """

    def __init__(
        self,
        nodes: str | Sequence[str],
        key: KeyPair | str | os.PathLike[str] | None = None,
        *,
        chain_id: str | None = None,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        max_attempts: int = MAX_ATTEMPTS,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        urls = [nodes] if isinstance(nodes, str) else list(nodes)
        urls = [u.strip().rstrip("/") for u in urls if u.strip()]
        if not urls:
            raise InvalidInput("client.no_nodes", "give at least one node URL")
        for u in urls:
            if not u.startswith(("http://", "https://")):
                raise InvalidInput("client.bad_url", f"a node URL starts with http:// or https:// (got {u!r})")
        self.nodes = urls
        self.key = _load(key)
        self._chain_id = chain_id
        self.max_attempts = max(1, max_attempts)
        self._sleep = sleep
        self._http = httpx.Client(
            timeout=request_timeout_s, transport=transport, headers={"user-agent": "afterchain-client/0.1"}
        )
        self._next_nonce: int | None = None
        self.build = EventBuilder(self)
        self.types: dict[bytes, str] = {}
        """Event id -> type of the events this client signed (for printing outcomes)."""

    # ---- lifecycle
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- HTTP with failover
    def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        content_type: str | None = None,
        ok: Iterable[int] = (200,),
    ) -> httpx.Response:
        """One request with failover and retries. Returns a response whose status is in `ok`,
        or a 4xx answer (the caller decides); raises `Unreachable` when no node answered."""
        ok = set(ok)
        headers = {"content-type": content_type} if content_type else None
        last_error = "no attempt made"
        backoff = BACKOFF_FIRST_S
        for attempt in range(self.max_attempts):
            for i, base in enumerate(list(self.nodes)):
                try:
                    r = self._http.request(method, base + path, content=content, headers=headers)
                except httpx.HTTPError as exc:
                    last_error = f"{base}: {type(exc).__name__}: {exc}"
                    continue
                if r.status_code in ok or (400 <= r.status_code < 500 and r.status_code != 429):
                    if i:  # prefer the node that answered
                        self.nodes.insert(0, self.nodes.pop(i))
                    return r
                last_error = f"{base}: HTTP {r.status_code} {_error_text(r)}"
                if r.status_code in (429, 503):
                    self._sleep(min(_retry_after(r), MAX_RETRY_AFTER_S))
            if attempt + 1 < self.max_attempts:
                self._sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
        raise Unreachable(
            f"no node answered {method} {path} after {self.max_attempts} rounds over "
            f"{len(self.nodes)} node(s); last: {last_error}"
        )

    def get_json(self, path: str) -> Any:
        """GET `path` as JSON; 404 -> `NotFound`; another 4xx -> `ClientError`."""
        r = self.request("GET", path)
        if r.status_code == 200:
            return r.json()
        code, message = _error_of(r)
        if r.status_code == 404:
            raise NotFound(code, message)
        raise ClientError(code, message)

    # ---- chain and nonce
    def status(self) -> dict[str, Any]:
        return self.get_json("/v1/status")  # type: ignore[no-any-return]

    @property
    def chain_id(self) -> str:
        if self._chain_id is None:
            self._chain_id = str(self.status()["chain_id"])
        return self._chain_id

    def _require_key(self) -> KeyPair:
        if self.key is None:
            raise InvalidInput("client.no_key", "this action signs an event: give a key (--key FILE)")
        return self.key

    def account(self, public_key: bytes | str | None = None) -> dict[str, Any]:
        """``{"key", "nonce", "next_nonce"}`` of a key (default: the client's)."""
        k = self._require_key().public if public_key is None else as_key(public_key)
        return self.get_json(f"/v1/accounts/{k.hex()}")  # type: ignore[no-any-return]

    def next_nonce(self) -> int:
        """The nonce the next signed event gets (asks the node once, then counts)."""
        if self._next_nonce is None:
            self._next_nonce = int(self.account()["next_nonce"])
        return self._next_nonce

    def set_next_nonce(self, nonce: int) -> None:
        """Sign the next event with `nonce` (and count on from there)."""
        self._next_nonce = nonce

    def resync_nonce(self) -> None:
        """Forget the local count: the next event asks the node again."""
        self._next_nonce = None

    def sign(self, body: EventBody, *, nonce: int | None = None, time_ms: int | None = None) -> SignedEvent:
        """Validate `body`, wrap it in an event with the next nonce (or `nonce`) and sign it."""
        key = self._require_key()
        try:
            body.validate()
        except ProtocolError as exc:
            raise InvalidInput(str(exc.code), str(exc)) from None
        n = self.next_nonce() if nonce is None else nonce
        ev = Event(
            chain_id=self.chain_id,
            type=body.EVENT_TYPE,
            sender=PublicKey(key.public),
            nonce=n,
            time_ms=int(time.time() * 1000) if time_ms is None else time_ms,
            body=body,
        )
        try:
            ev.validate()
            signed = sign_event(key, ev)
        except ProtocolError as exc:
            raise InvalidInput(str(exc.code), str(exc)) from None
        if nonce is None:
            self._next_nonce = n + 1
        self.types[signed.id] = body.EVENT_TYPE
        if len(self.types) > MAX_REMEMBERED_TYPES:
            del self.types[next(iter(self.types))]  # oldest first (dicts keep insertion order)
        return signed

    # ---- submitting
    def submit(self, events: SignedEvent | Sequence[SignedEvent]) -> list[Outcome]:
        """Send one event or a batch (msgpack, one request per `MAX_BATCH_EVENTS`).

        Returns one `Outcome` per event: ``accepted`` / ``duplicate`` (in the mempool) or
        ``rejected`` with the node's code and message (the local nonce count is dropped).
        Raises `Unreachable`, or `ClientError` for a refused request (e.g. too large).
        """
        evs = [events] if isinstance(events, SignedEvent) else list(events)
        out: list[Outcome] = []
        for start in range(0, len(evs), MAX_BATCH_EVENTS):
            chunk = evs[start : start + MAX_BATCH_EVENTS]
            body = (
                chunk[0].encode() if len(chunk) == 1 else msgpack.packb([e.encode() for e in chunk], use_bin_type=True)
            )
            r = self.request("POST", "/v1/events", content=body, content_type="application/msgpack", ok=(202,))
            try:
                doc = r.json()
            except ValueError:
                raise ClientError("client.bad_answer", f"HTTP {r.status_code}: the node's answer is not JSON") from None
            results = doc.get("results") if isinstance(doc, dict) else None
            if not isinstance(results, list) or len(results) != len(chunk):
                code, message = _error_of(r)
                raise ClientError(code, message)
            for e, res in zip(chunk, results, strict=True):
                o = Outcome(
                    id=e.id,
                    status=str(res.get("status")),
                    code=res.get("code"),
                    message=res.get("message"),
                    type=e.event.type,
                )
                if o.status == "rejected":
                    self.resync_nonce()
                out.append(o)
        return out

    def event(self, event_id: bytes | str) -> Outcome:
        """The outcome of an event as a node knows it (``pending``, ``committed``, ``rejected``)."""
        eid = as_id(event_id, "event id")
        d = self.get_json(f"/v1/events/{eid.hex()}")
        return Outcome.from_json(d, self.types.get(eid))

    def wait(self, event_id: bytes | str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Outcome:
        """Poll until the event is committed or rejected; a rejection is returned, not raised.

        A node that has not heard of the event yet (404) is asked again: gossip may lag.
        Raises `TimedOut` after `timeout_s`, `Unreachable` if no node answers.
        """
        eid = as_id(event_id, "event id")
        deadline = time.monotonic() + timeout_s
        delay = POLL_FIRST_S
        while True:
            try:
                o = self.event(eid)
            except NotFound:
                o = None
            if o is not None and o.final:
                if o.status == "rejected":
                    self.resync_nonce()
                return o
            if time.monotonic() + delay > deadline:
                raise TimedOut(eid, timeout_s)
            self._sleep(delay)
            delay = min(delay * 2, POLL_MAX_S)

    def wait_all(self, event_ids: Iterable[bytes | str], *, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Outcome]:
        """`wait` for each event, within one overall `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        return [self.wait(e, timeout_s=max(0.0, deadline - time.monotonic())) for e in event_ids]

    def submit_and_wait(self, event: SignedEvent, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Outcome:
        """Submit one event and wait for its outcome; raise `Rejected` if it is refused
        (at intake or at commit), `TimedOut`, `Unreachable`. Returns the committed outcome."""
        sub = self.submit(event)[0]
        if sub.status == "rejected":
            raise Rejected(sub.code or "rejected", sub.message or "", event.id)
        if sub.code and sub.code.startswith("nonce."):
            self.resync_nonce()
        return self.wait(event.id, timeout_s=timeout_s).raise_if_rejected()

    def send(self, event: SignedEvent | EventBody, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Outcome:
        """`submit_and_wait` for a signed event, or for a body (signed here first)."""
        signed = event if isinstance(event, SignedEvent) else self.sign(event)
        return self.submit_and_wait(signed, timeout_s=timeout_s)

    # ---- reads
    def ticket(self, ticket_id: bytes | str) -> dict[str, Any]:
        return self.get_json(f"/v1/tickets/{as_id(ticket_id, 'ticket id').hex()}")  # type: ignore[no-any-return]

    def product(self, gtin: str, serial: str) -> dict[str, Any]:
        return self.get_json(f"/v1/products/{_seg(gtin)}/{_seg(serial)}")  # type: ignore[no-any-return]

    def product_history(self, gtin: str, serial: str) -> list[Any]:
        return self.get_json(f"/v1/products/{_seg(gtin)}/{_seg(serial)}/history")["history"]  # type: ignore[no-any-return]

    def quality(self, org: str) -> dict[str, Any]:
        return self.get_json(f"/v1/orgs/{_seg(org)}/quality")  # type: ignore[no-any-return]

    def org_tickets(self, org: str, status: str | None = None) -> list[str]:
        q = f"?status={_seg(status)}" if status else ""
        return self.get_json(f"/v1/orgs/{_seg(org)}/tickets{q}")["tickets"]  # type: ignore[no-any-return]

    def customer_tickets(self, customer: bytes | str | None = None) -> list[str]:
        """Ids (hex) of the tickets a customer key opened (default: the client's key)."""
        k = self._require_key().public if customer is None else as_key(customer)
        return self.get_json(f"/v1/customers/{k.hex()}/tickets")["tickets"]  # type: ignore[no-any-return]

    def escrow(self, escrow_id: bytes | str) -> dict[str, Any]:
        return self.get_json(f"/v1/escrows/{as_id(escrow_id, 'escrow id').hex()}")  # type: ignore[no-any-return]

    def balance(self, account: str) -> int:
        """Balance of an account: an organisation id or ``cust:<hex>`` (see `customer_account`)."""
        return int(self.get_json(f"/v1/balances/{_seg(account)}")["balance"])

    def block(self, height: int) -> dict[str, Any]:
        return self.get_json(f"/v1/blocks/{int(height)}")  # type: ignore[no-any-return]

    def proposals(self, status: str | None = None) -> list[dict[str, Any]]:
        """Governance proposals (oldest first), optionally only those in `status` (e.g. open)."""
        q = f"?status={_seg(status)}" if status else ""
        return self.get_json(f"/v1/governance/proposals{q}")["proposals"]  # type: ignore[no-any-return]

    def proposal(self, proposal_id: bytes | str) -> dict[str, Any]:
        """One proposal: kind, payload (JSON form), by, deadline, yes/no voters, status, result."""
        return self.get_json(f"/v1/governance/proposals/{as_id(proposal_id, 'proposal id').hex()}")  # type: ignore[no-any-return]

    def validators(self) -> dict[str, Any]:
        """The adopted validator set, the schedule (first heights) and the pending change."""
        return self.get_json("/v1/validators")  # type: ignore[no-any-return]

    def params(self) -> dict[str, Any]:
        """The adopted parameters: ``consensus``, ``vm``, ``ledger`` (JSON forms)."""
        return self.get_json("/v1/params")  # type: ignore[no-any-return]

    def org(self, org_id: str) -> dict[str, Any]:
        """A member organisation as the ledger has it now: name, roles, keys, since, removed."""
        return self.get_json(f"/v1/orgs/{_seg(org_id)}")  # type: ignore[no-any-return]


def _seg(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def _retry_after(r: httpx.Response) -> float:
    try:
        return max(0.0, float(r.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


def _error_of(r: httpx.Response) -> tuple[str, str]:
    try:
        doc = r.json()
        err = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(err, dict):
            return str(err.get("code", f"http.{r.status_code}")), str(err.get("message", ""))
    except ValueError:
        pass
    return f"http.{r.status_code}", r.text[:200]


def _error_text(r: httpx.Response) -> str:
    code, message = _error_of(r)
    return f"{code}: {message}" if message else code


def load_client_key(path: str | Path) -> KeyPair:
    """Load a key file, as `InvalidInput` on failure (for callers outside `Client`)."""
    kp = _load(path)
    if kp is None:
        raise InvalidInput("key.file", "no key file given")
    return kp
