"""Stable reason codes of the ledger's per-event outcomes.

Every event in a block gets exactly one outcome, retrievable by event id
(`Ledger.event_outcome`): ``ok`` or one of the codes below (plus the stateless codes of
`protocol.errors.Code` for schema and signature failures: ``decode.*``, ``field.*``,
``event.unknown_type``, ``chain.wrong_id``, ``signature.*``). A rejected event changes
nothing but its own outcome record and, when it was refused by the ledger's rules (any
code below other than ``nonce.wrong``, ``event.too_large`` and ``permission.revoked``),
its sender's nonce: the event is public once it is in a block, so it must never be
replayable later.

| code | when |
|---|---|
| ``event.too_large`` | encoded signed event over 64 KiB (512 KiB for ``contract.deploy``) |
| ``nonce.wrong`` | nonce is not the sender's last accepted nonce + 1 (first nonce is 1) |
| ``permission.not_member`` | a member-only event from a key that is no member's |
| ``permission.role`` | the sender's organisation lacks the role the event needs |
| ``permission.not_owner`` | product transfer by someone other than its current owner |
| ``permission.not_manufacturer`` | recall / GTIN use by another manufacturer |
| ``permission.not_assigned`` | ticket work by an organisation not assigned to it |
| ``permission.not_customer`` | customer action by someone other than the ticket's customer |
| ``permission.not_party`` | escrow action by someone other than its payer / payee |
| ``org.unknown`` | a named organisation does not exist |
| ``org.wrong_role`` | a named organisation lacks the needed role |
| ``product.exists`` | registering (gtin, serial) twice |
| ``product.unknown`` | no such product |
| ``product.not_sold`` | warranty / ticket / return about a product no customer owns |
| ``product.recalled`` | selling a product whose batch is recalled |
| ``product.decommissioned`` | trace / transfer after decommissioning |
| ``recall.exists`` | the batch is already recalled |
| ``policy.unknown`` | no such policy |
| ``warranty.active`` | the product already has a warranty |
| ``contract.unknown`` | no such contract |
| ``contract.vm_not_allowed`` | VM id/version not allowed by genesis or not available on this node's host |
| ``contract.invalid_code`` | the host refused the code |
| ``contract.no_host`` | ``contract.call`` on a node built without a contract host |
| ``contract.gas_limit`` | gas limit over ``vm.max_gas_per_call`` or the block's remaining gas |
| ``contract.call_failed`` | the call returned revert / out_of_gas / trap / invalid (nothing written) |
| ``ticket.unknown`` | no such ticket |
| ``ticket.transition`` | the ticket's status does not allow this action (see `TRANSITIONS`) |
| ``ticket.kind`` | action for another kind of ticket (e.g. ``return.approve`` on a repair) |
| ``ticket.history_full`` | the ticket reached ``MAX_TICKET_CHANGES`` status changes |
| ``return.window_closed`` | approving a return after the return window |
| ``escrow.unknown`` | no such escrow |
| ``escrow.insufficient_funds`` | the payer's balance is below the amount |
| ``escrow.not_held`` | the escrow was already released or refunded |
| ``escrow.bound`` | the escrow is bound to a return: its outcome decides it |
| ``escrow.ticket`` | binding to a ticket that is not an open return of this payee, or already bound |
| ``rating.not_closed`` | rating a ticket that is not closed / finished |
| ``rating.exists`` | a second rating for a ticket |
| ``node.key_in_use`` | registering a node key that another organisation registered, or a key of the adopted validator set |
| ``node.registered`` | registering a node key this organisation already registered |
| ``node.limit`` | registering more than ``MAX_NODE_KEYS_PER_ORG`` node keys for one organisation |
| ``node.unknown`` | removing a key that is not a registered node key of the sender's organisation |
| ``governance.required`` | ``org.register`` / ``org.update`` sent directly: membership changes are proposals |
| ``governance.invalid`` | a proposal whose change cannot apply (org exists / unknown, key in use, last member, no change, a parameter fixed at genesis) |
| ``governance.unknown`` | a vote on no such proposal |
| ``governance.closed`` | a vote after the deadline or on a decided proposal |
| ``governance.voted`` | a second vote of the same validator key |
| ``permission.revoked`` | an event signed by a key that governance revoked (removed or rotated out) |
| ``permission.not_validator`` | ``consensus.evidence`` from a key that is not a validator's; ``governance.vote`` from a key outside the current adopted set |
| ``evidence.invalid`` | evidence that does not prove an equivocation (see `node.app.evidence`) |
| ``evidence.duplicate`` | evidence for a (validator, phase, view, seq) already recorded |
| ``evidence.unchecked`` | evidence on a ledger opened without an evidence check (never recorded unchecked) |
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["OK", "Reason"]

OK = "ok"


class Reason(StrEnum):
    EVENT_TOO_LARGE = "event.too_large"
    NONCE_WRONG = "nonce.wrong"
    NOT_MEMBER = "permission.not_member"
    ROLE = "permission.role"
    NOT_OWNER = "permission.not_owner"
    NOT_MANUFACTURER = "permission.not_manufacturer"
    NOT_ASSIGNED = "permission.not_assigned"
    NOT_CUSTOMER = "permission.not_customer"
    NOT_PARTY = "permission.not_party"
    ORG_UNKNOWN = "org.unknown"
    ORG_WRONG_ROLE = "org.wrong_role"
    PRODUCT_EXISTS = "product.exists"
    PRODUCT_UNKNOWN = "product.unknown"
    PRODUCT_NOT_SOLD = "product.not_sold"
    PRODUCT_RECALLED = "product.recalled"
    PRODUCT_DECOMMISSIONED = "product.decommissioned"
    RECALL_EXISTS = "recall.exists"
    POLICY_UNKNOWN = "policy.unknown"
    WARRANTY_ACTIVE = "warranty.active"
    CONTRACT_UNKNOWN = "contract.unknown"
    VM_NOT_ALLOWED = "contract.vm_not_allowed"
    INVALID_CODE = "contract.invalid_code"
    NO_HOST = "contract.no_host"
    GAS_LIMIT = "contract.gas_limit"
    CALL_FAILED = "contract.call_failed"
    TICKET_UNKNOWN = "ticket.unknown"
    TRANSITION = "ticket.transition"
    TICKET_KIND = "ticket.kind"
    HISTORY_FULL = "ticket.history_full"
    RETURN_WINDOW = "return.window_closed"
    ESCROW_UNKNOWN = "escrow.unknown"
    INSUFFICIENT_FUNDS = "escrow.insufficient_funds"
    ESCROW_NOT_HELD = "escrow.not_held"
    ESCROW_BOUND = "escrow.bound"
    ESCROW_TICKET = "escrow.ticket"
    RATING_NOT_CLOSED = "rating.not_closed"
    RATING_EXISTS = "rating.exists"
    NODE_KEY_IN_USE = "node.key_in_use"
    NODE_REGISTERED = "node.registered"
    NODE_LIMIT = "node.limit"
    NODE_UNKNOWN = "node.unknown"
    GOVERNANCE_REQUIRED = "governance.required"
    GOVERNANCE_INVALID = "governance.invalid"
    GOVERNANCE_UNKNOWN = "governance.unknown"
    GOVERNANCE_CLOSED = "governance.closed"
    GOVERNANCE_VOTED = "governance.voted"
    REVOKED = "permission.revoked"
    NOT_VALIDATOR = "permission.not_validator"
    EVIDENCE_INVALID = "evidence.invalid"
    EVIDENCE_DUPLICATE = "evidence.duplicate"
    EVIDENCE_UNCHECKED = "evidence.unchecked"
