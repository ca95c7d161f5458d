"""Body schemas of every event type in the after-sales domain.

Each body is a message declared with `@event_type("name", tag=...)`; tags 0x100-0x1FF are
reserved for event bodies. `validate()` checks every *stateless* rule and raises
`ValidationError(code, message, field=...)` naming the field; everything that needs state
(does the ticket exist, may this sender do this, nonce, balance) is the ledger's business
(`node.ledger`).

Conventions shared by every body:
- Personal data never appears: descriptions, notes, photos, addresses, comments are
  32-byte content hashes (``*_hash``) or salted commitments; customers are public keys.
- Ids of things created by an event (ticket, policy, escrow, contract, proposal) are the
  id of the creating event: SHA-256 of its canonical encoding (`Event.id`), so they are
  unforgeable and unique. Bodies refer to them as ``Hash32``.
- Products are GS1 identities: a GTIN-14 (14 digits, the last one the GS1 mod-10 check
  digit) plus a serial (GS1 AI 21: 1-20 characters of the GS1 character set 82).
- Organisation ids are 1-64 characters of ``a-z 0-9 . _ -`` starting with a letter or digit.
- Enumerated fields are lower-case strings from the tuples below (``KINDS`` etc.); an
  unknown value is ``field.invalid``. Every string, tuple and bytes field is bounded.
- Money is an integer amount in minor units (u64); times are integer milliseconds.

Tag map: 0x100 orgs (0x102-0x103 member node keys), 0x110 products, 0x120 policies/warranty, 0x130 contracts,
0x140 tickets, 0x150 returns, 0x160 shipments, 0x170 escrow, 0x1A0 ratings,
0x1B0 governance, 0x1C0 consensus (evidence).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, dataclass_transform

from .codec import Message
from .errors import Code, ProtocolError, ValidationError
from .events import EventBody, event_type
from .fields import (
    _ENTRY,
    _SERIAL,
    _VM_ID,
    BIZ_STEPS,
    CHECKPOINTS,
    DISPOSITIONS,
    GOVERNANCE_KINDS,
    MAX_ARGS_BYTES,
    MAX_ATTACHMENTS,
    MAX_CODE_BYTES,
    MAX_CODE_CHARS,
    MAX_FAULT_TYPES,
    MAX_KEYS,
    MAX_NAME_CHARS,
    MAX_NODE_KEYS_PER_ORG,
    MAX_PAYLOAD_BYTES,
    MAX_VOTING_PERIOD_MS,
    RESOLUTIONS,
    RETURN_CONDITIONS,
    ROLES,
    TICKET_KINDS,
    TICKET_UPDATE_STATUSES,
    _bad,
    _code,
    _distinct,
    _max_len,
    _name,
    _one_of,
    _positive,
    _product,
    _sorted_distinct,
    gtin_check_digit,
    validate_gtin,
    validate_org_id,
    validate_serial,
)
from .types import Hash32, PublicKey

_B = TypeVar("_B", bound=EventBody)


@dataclass_transform(frozen_default=True, kw_only_default=True)
def _event(name: str, *, tag: int) -> Callable[[type[_B]], type[_B]]:
    """`protocol.events.event_type`, typed for mypy (a frozen keyword-only dataclass)."""
    wrap: Callable[[type[_B]], type[_B]] = event_type(name, tag=tag)
    return wrap

__all__ = [
    "BIZ_STEPS", "CHECKPOINTS", "DISPOSITIONS", "GOVERNANCE_KINDS", "MAX_ARGS_BYTES", "MAX_ATTACHMENTS",
    "MAX_CODE_BYTES", "MAX_CODE_CHARS", "MAX_EVIDENCE_BYTES", "MAX_FAULT_TYPES", "MAX_KEYS", "MAX_NAME_CHARS",
    "MAX_NODE_KEYS_PER_ORG", "MAX_PAYLOAD_BYTES", "MAX_VOTING_PERIOD_MS", "RESOLUTIONS", "RETURN_CONDITIONS",
    "ROLES", "TICKET_KINDS", "TICKET_UPDATE_STATUSES", "ConsensusEvidence", "ContractCall", "ContractDeploy",
    "EscrowDeposit", "EscrowRefund", "EscrowRelease", "GovernancePropose", "GovernanceVote", "NodeRegister",
    "NodeRemove", "OrgRegister", "OrgUpdate", "PolicyRegister", "ProductRecall", "ProductRegister",
    "ProductTransfer", "RatingSubmit", "ReturnApprove", "ReturnReceive", "ReturnReject", "ReturnRequest",
    "ShipmentCheckpoint", "TicketAck", "TicketAssign", "TicketClose", "TicketConfirm", "TicketEscalate",
    "TicketOpen", "TicketReject", "TicketReopen", "TicketResolve", "TicketUpdate", "TraceRecord",
    "WarrantyActivate", "gtin_check_digit", "validate_gtin", "validate_org_id", "validate_serial",
]

# --------------------------------------------------------------------------- organisations


@_event("org.register", tag=0x100)
class OrgRegister(EventBody):
    """Admit a member organisation (governance-driven; see `node.ledger` for the status)."""

    org_id: str
    name: str
    roles: tuple[str, ...]
    keys: tuple[PublicKey, ...]

    def validate(self) -> None:
        validate_org_id(self.org_id)
        _name(self.name, "name")
        _max_len(self.roles, len(ROLES), "roles", minimum=1)
        for i, r in enumerate(self.roles):
            _one_of(r, ROLES, f"roles[{i}]")
        _sorted_distinct(self.roles, "roles")
        _max_len(self.keys, MAX_KEYS, "keys", minimum=1)
        _distinct(self.keys, "keys")


@_event("org.update", tag=0x101)
class OrgUpdate(EventBody):
    """Change an organisation's roles and keys (governance-driven)."""

    org_id: str
    roles: tuple[str, ...]
    keys: tuple[PublicKey, ...]

    def validate(self) -> None:
        validate_org_id(self.org_id)
        _max_len(self.roles, len(ROLES), "roles", minimum=1)
        for i, r in enumerate(self.roles):
            _one_of(r, ROLES, f"roles[{i}]")
        _sorted_distinct(self.roles, "roles")
        _max_len(self.keys, MAX_KEYS, "keys", minimum=1)
        _distinct(self.keys, "keys")


@_event("node.register", tag=0x102)
class NodeRegister(EventBody):
    """The sender's organisation registers the Ed25519 keys of nodes it runs (member nodes:
    full nodes that follow the chain without voting). Each key's libp2p peer id is then on
    every node's peer allowlist. Signed by a key of the organisation (its member key); the
    ledger bounds an organisation to `MAX_NODE_KEYS_PER_ORG` registered keys."""

    keys: tuple[PublicKey, ...]

    def validate(self) -> None:
        _max_len(self.keys, MAX_NODE_KEYS_PER_ORG, "keys", minimum=1)
        _distinct(self.keys, "keys")


@_event("node.remove", tag=0x103)
class NodeRemove(EventBody):
    """The sender's organisation withdraws node keys it registered: they leave every node's
    peer allowlist and their connections are closed."""

    keys: tuple[PublicKey, ...]

    def validate(self) -> None:
        _max_len(self.keys, MAX_NODE_KEYS_PER_ORG, "keys", minimum=1)
        _distinct(self.keys, "keys")


# --------------------------------------------------------------------------- products


@_event("product.register", tag=0x110)
class ProductRegister(EventBody):
    """A manufacturer registers one serialised product it made (owner: the manufacturer)."""

    gtin: str
    serial: str
    model: str
    batch: str
    production_time_ms: int

    def validate(self) -> None:
        _product(self.gtin, self.serial)
        _name(self.model, "model")
        if not _SERIAL.match(self.batch):
            raise _bad("batch", "a batch/lot is 1-20 characters of the GS1 character set 82")


@_event("product.transfer", tag=0x111)
class ProductTransfer(EventBody):
    """Ownership passes from the sender (the current owner) to an organisation or a customer.

    Exactly one of `to_org` / `to_customer` is set. ``kind="sale"`` is a sale to a
    customer (needs `to_customer` and an `order_ref_hash`); ``"transfer"`` moves it along
    the supply chain or between customers.
    """

    gtin: str
    serial: str
    kind: str
    to_org: str | None
    to_customer: PublicKey | None
    order_ref_hash: Hash32 | None

    def validate(self) -> None:
        _product(self.gtin, self.serial)
        _one_of(self.kind, ("sale", "transfer"), "kind")
        if (self.to_org is None) == (self.to_customer is None):
            raise _bad("to_org", "exactly one of to_org and to_customer must be set")
        if self.to_org is not None:
            validate_org_id(self.to_org, "to_org")
        if self.kind == "sale":
            if self.to_customer is None:
                raise _bad("to_customer", "a sale is to a customer key")
            if self.order_ref_hash is None:
                raise _bad("order_ref_hash", "a sale carries the hash of its order reference")


@_event("trace.record", tag=0x112)
class TraceRecord(EventBody):
    """An EPCIS-style observation of a product: what happened, in what state, where."""

    gtin: str
    serial: str
    biz_step: str
    disposition: str
    location_hash: Hash32
    ref_hash: Hash32 | None

    def validate(self) -> None:
        _product(self.gtin, self.serial)
        _one_of(self.biz_step, BIZ_STEPS, "biz_step")
        _one_of(self.disposition, DISPOSITIONS, "disposition")


@_event("product.recall", tag=0x113)
class ProductRecall(EventBody):
    """The manufacturer recalls every product of (gtin, batch)."""

    gtin: str
    batch: str
    reason_hash: Hash32

    def validate(self) -> None:
        validate_gtin(self.gtin)
        if not _SERIAL.match(self.batch):
            raise _bad("batch", "a batch/lot is 1-20 characters of the GS1 character set 82")


# --------------------------------------------------------------------------- policies and warranty


@_event("policy.register", tag=0x120)
class PolicyRegister(EventBody):
    """A warranty policy / service agreement owned by the sender's organisation.

    Its id is the event id. Tickets under it are worked by `service_org`. Both deadlines
    run from the ticket's opening in block time, paused while it waits on the customer
    (`first_response_ms` until acknowledged, `resolution_ms` until resolved). A breach
    costs `penalty_amount` (payer: the assigned org, payee: the customer).
    `return_window_ms` runs from the sale; 0 means the chain default. `contract_id`, when
    set, names a deployed contract whose hooks decide eligibility, penalties and return
    outcomes instead of these built-in terms (see `node.ledger.hooks`).
    """

    name: str
    service_org: str
    coverage_period_ms: int
    covered_faults: tuple[str, ...]
    first_response_ms: int
    resolution_ms: int
    penalty_amount: int
    return_window_ms: int
    contract_id: Hash32 | None

    def validate(self) -> None:
        _name(self.name, "name")
        validate_org_id(self.service_org, "service_org")
        _positive(self.coverage_period_ms, "coverage_period_ms")
        _max_len(self.covered_faults, MAX_FAULT_TYPES, "covered_faults")
        for i, f in enumerate(self.covered_faults):
            _code(f, f"covered_faults[{i}]")
        _sorted_distinct(self.covered_faults, "covered_faults")
        _positive(self.first_response_ms, "first_response_ms")
        if self.resolution_ms < self.first_response_ms:
            raise _bad("resolution_ms", "the resolution deadline cannot be shorter than the first response", Code.FIELD_OUT_OF_RANGE)


@_event("warranty.activate", tag=0x121)
class WarrantyActivate(EventBody):
    """Bind a sold product to a policy; coverage starts at the block time."""

    gtin: str
    serial: str
    policy_id: Hash32

    def validate(self) -> None:
        _product(self.gtin, self.serial)


# --------------------------------------------------------------------------- contracts


@_event("contract.deploy", tag=0x130)
class ContractDeploy(EventBody):
    """Deploy contract code for a VM; the contract id is the event id, owned by the sender's org."""

    vm_id: str
    vm_version: int
    name: str
    code: bytes

    def validate(self) -> None:
        if not _VM_ID.match(self.vm_id):
            raise _bad("vm_id", "a VM id is 1-16 characters of a-z 0-9 _ . -")
        _name(self.name, "name")
        _max_len(self.code, MAX_CODE_BYTES, "code", minimum=1)


@_event("contract.call", tag=0x131)
class ContractCall(EventBody):
    """Call `entry` of a deployed contract with msgpack-encoded `args`, within `gas_limit`."""

    contract_id: Hash32
    entry: str
    args: bytes
    gas_limit: int

    def validate(self) -> None:
        if not _ENTRY.match(self.entry):
            raise _bad("entry", "an entry point is an identifier of 1-64 characters")
        _max_len(self.args, MAX_ARGS_BYTES, "args")
        _positive(self.gas_limit, "gas_limit")


# --------------------------------------------------------------------------- tickets


@_event("ticket.open", tag=0x140)
class TicketOpen(EventBody):
    """A customer (the product's owner) opens a ticket about a product; id = event id."""

    kind: str
    gtin: str
    serial: str
    fault_type: str
    description_hash: Hash32
    attachments: tuple[Hash32, ...]

    def validate(self) -> None:
        _one_of(self.kind, TICKET_KINDS[:-1], "kind")
        _product(self.gtin, self.serial)
        _code(self.fault_type, "fault_type")
        _max_len(self.attachments, MAX_ATTACHMENTS, "attachments")
        _distinct(self.attachments, "attachments")


@_event("ticket.ack", tag=0x141)
class TicketAck(EventBody):
    """The assigned organisation acknowledges (first response)."""

    ticket_id: Hash32
    note_hash: Hash32 | None


@_event("ticket.update", tag=0x142)
class TicketUpdate(EventBody):
    """Move to in_progress / waiting_customer (org) or answer while waiting (customer)."""

    ticket_id: Hash32
    status: str
    note_hash: Hash32 | None

    def validate(self) -> None:
        _one_of(self.status, TICKET_UPDATE_STATUSES, "status")


@_event("ticket.assign", tag=0x143)
class TicketAssign(EventBody):
    """Hand the ticket to another organisation (by the assignee or the policy owner)."""

    ticket_id: Hash32
    org_id: str

    def validate(self) -> None:
        validate_org_id(self.org_id)


@_event("ticket.escalate", tag=0x144)
class TicketEscalate(EventBody):
    """The customer disputes the handling."""

    ticket_id: Hash32
    reason_hash: Hash32


@_event("ticket.resolve", tag=0x145)
class TicketResolve(EventBody):
    ticket_id: Hash32
    resolution: str
    resolution_hash: Hash32

    def validate(self) -> None:
        _one_of(self.resolution, RESOLUTIONS, "resolution")


@_event("ticket.reject", tag=0x146)
class TicketReject(EventBody):
    """The assigned organisation refuses the claim (e.g. warranty void), with a reason."""

    ticket_id: Hash32
    reason_code: str
    reason_hash: Hash32 | None

    def validate(self) -> None:
        _code(self.reason_code, "reason_code")


@_event("ticket.confirm", tag=0x147)
class TicketConfirm(EventBody):
    """The customer confirms the resolution; the ticket closes."""

    ticket_id: Hash32


@_event("ticket.reopen", tag=0x148)
class TicketReopen(EventBody):
    ticket_id: Hash32
    reason_hash: Hash32


@_event("ticket.close", tag=0x149)
class TicketClose(EventBody):
    """The customer withdraws an open ticket (closes it without resolution)."""

    ticket_id: Hash32


# --------------------------------------------------------------------------- returns and shipments


@_event("return.request", tag=0x150)
class ReturnRequest(EventBody):
    """A customer asks to return a product they own; creates a ``return`` ticket (id = event id)."""

    gtin: str
    serial: str
    reason_code: str
    reason_hash: Hash32

    def validate(self) -> None:
        _product(self.gtin, self.serial)
        _code(self.reason_code, "reason_code")


@_event("return.approve", tag=0x151)
class ReturnApprove(EventBody):
    ticket_id: Hash32


@_event("return.reject", tag=0x152)
class ReturnReject(EventBody):
    ticket_id: Hash32
    reason_code: str
    reason_hash: Hash32 | None

    def validate(self) -> None:
        _code(self.reason_code, "reason_code")


@_event("return.receive", tag=0x153)
class ReturnReceive(EventBody):
    """The assigned organisation received the returned product; the agreement decides the escrow."""

    ticket_id: Hash32
    condition: str
    inspection_hash: Hash32 | None

    def validate(self) -> None:
        _one_of(self.condition, RETURN_CONDITIONS, "condition")


@_event("shipment.checkpoint", tag=0x160)
class ShipmentCheckpoint(EventBody):
    """A carrier (logistics member) reports where the shipment of a ticket is."""

    ticket_id: Hash32
    checkpoint: str
    location_hash: Hash32
    tracking_hash: Hash32 | None

    def validate(self) -> None:
        _one_of(self.checkpoint, CHECKPOINTS, "checkpoint")


# --------------------------------------------------------------------------- escrow


@_event("escrow.deposit", tag=0x170)
class EscrowDeposit(EventBody):
    """Move `amount` from the sender's account into a new escrow (id = event id).

    `payee` is an account: an organisation id, or ``None`` with `payee_customer` set.
    `ticket_id`, when set, binds the escrow to a return ticket: its outcome decides it.
    """

    amount: int
    payee_org: str | None
    payee_customer: PublicKey | None
    ticket_id: Hash32 | None
    ref_hash: Hash32 | None

    def validate(self) -> None:
        _positive(self.amount, "amount")
        if (self.payee_org is None) == (self.payee_customer is None):
            raise _bad("payee_org", "exactly one of payee_org and payee_customer must be set")
        if self.payee_org is not None:
            validate_org_id(self.payee_org, "payee_org")


@_event("escrow.release", tag=0x171)
class EscrowRelease(EventBody):
    """The payer releases a held escrow to the payee."""

    escrow_id: Hash32


@_event("escrow.refund", tag=0x172)
class EscrowRefund(EventBody):
    """The payee gives a held escrow back to the payer."""

    escrow_id: Hash32


# --------------------------------------------------------------------------- ratings


@_event("rating.submit", tag=0x1A0)
class RatingSubmit(EventBody):
    """The ticket's customer rates its handling, once, after it is closed."""

    ticket_id: Hash32
    score: int
    comment_hash: Hash32 | None

    def validate(self) -> None:
        if not 1 <= self.score <= 5:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, f"a score is 1..5, got {self.score}", field="score")


# --------------------------------------------------------------------------- governance


@_event("governance.propose", tag=0x1B0)
class GovernancePropose(EventBody):
    """A member or a validator proposes a change; `payload` is the encoded change (schema
    per kind, `GOVERNANCE_KINDS`); current validators vote until block time passes
    ``proposal block time + voting_period_ms``."""

    kind: str
    payload: bytes
    voting_period_ms: int

    def validate(self) -> None:
        _one_of(self.kind, GOVERNANCE_KINDS, "kind")
        _max_len(self.payload, MAX_PAYLOAD_BYTES, "payload")
        _positive(self.voting_period_ms, "voting_period_ms")
        if self.voting_period_ms > MAX_VOTING_PERIOD_MS:
            raise _bad("voting_period_ms", f"at most {MAX_VOTING_PERIOD_MS} ms", Code.FIELD_OUT_OF_RANGE)
        self.change()  # the payload must parse for its kind

    def change(self) -> OrgRegister | OrgUpdate | str | Message:
        """The parsed payload (see `GOVERNANCE_KINDS`); raises `ValidationError` on field ``payload``."""
        from .block import ValidatorSet
        from .codec import decode_as
        from .genesis import LedgerParams, ParamChange

        schema: dict[str, type[Message]] = {
            "admit_member": OrgRegister, "update_member": OrgUpdate, "validator_change": ValidatorSet,
            "policy_standard": LedgerParams, "param_change": ParamChange,
        }
        try:
            cls = schema.get(self.kind)
            if cls is not None:
                return decode_as(cls, self.payload)
            org_id = self.payload.decode("utf-8")
            validate_org_id(org_id, "payload")
            return org_id
        except UnicodeDecodeError:
            raise _bad("payload", "an org id is UTF-8") from None
        except ProtocolError as exc:
            raise _bad("payload", f"not a valid {self.kind} payload: {exc}", exc.code) from None


@_event("governance.vote", tag=0x1B1)
class GovernanceVote(EventBody):
    """A validator of the ledger's current set votes yes (`approve`) or no on a proposal."""

    proposal_id: Hash32
    approve: bool


# --------------------------------------------------------------------------- consensus evidence

MAX_EVIDENCE_BYTES = 48 * 1024
"""Largest encoded `consensus.messages.Evidence` in a `consensus.evidence` body."""


@_event("consensus.evidence", tag=0x1C0)
class ConsensusEvidence(EventBody):
    """A validator reports another validator's equivocation: `evidence` is an encoded
    `consensus.messages.Evidence` (two different signed consensus messages by one validator
    for one (phase, view, seq)). Sent by validator (node) keys; the ledger checks the two
    signatures and records it once per (validator, phase, view, seq)."""

    evidence: bytes

    def validate(self) -> None:
        if not self.evidence:
            raise _bad("evidence", "empty evidence")
        _max_len(self.evidence, MAX_EVIDENCE_BYTES, "evidence")
