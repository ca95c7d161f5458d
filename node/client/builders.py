"""Typed construction of every event type of `protocol.bodies`: keyword arguments -> a body
-> a signed event (through a `Signer`, normally the `Client`, which owns the key, the
nonce and the chain id).

`EventBuilder` is generic over what its signer returns: the sync `Client` signs at once
(`EventBuilder[SignedEvent]`), the `AsyncClient` returns an awaitable (it may first ask a
node for the nonce or the chain id), so there ``await c.build.ticket_ack(...)``.
`BUILDERS` maps each event type to its `EventBuilder` method (one per type of
`protocol.events.EVENT_TYPES`; a test checks it). Nothing here talks to a node.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

from afterchain.node.client.ids import as_id, as_key, opt_id
from afterchain.node.client.outcomes import InvalidInput
from afterchain.protocol import bodies as B
from afterchain.protocol.block import ValidatorSet
from afterchain.protocol.codec import encode
from afterchain.protocol.events import EventBody
from afterchain.protocol.genesis import ConsensusParams, LedgerParams, ParamChange, VmParams
from afterchain.protocol.types import ValidatorId

__all__ = ["BUILDERS", "EventBuilder", "Signer"]


Signed = TypeVar("Signed")
"""What a builder method returns: `SignedEvent`, or an awaitable of one (`AsyncClient`)."""
Signed_co = TypeVar("Signed_co", covariant=True)


class Signer(Protocol[Signed_co]):
    """What signs a body into an event (the key, the next nonce, the chain id): `Client.sign`
    (returns the `SignedEvent`) or `AsyncClient.sign` (returns an awaitable of it)."""

    def sign(self, body: EventBody) -> Signed_co: ...


class EventBuilder(Generic[Signed]):
    """One method per event type: keyword arguments -> a signed event with the next nonce.

    Every method validates the body (schema, `InvalidInput` on failure) and signs it for the
    client's chain id. Nothing is sent: pass the result to `Client.submit` / `Client.send`.
    Ids accept bytes or hex; hashes (``*_hash``) are 32 bytes or hex (see `content_hash`).
    """

    def __init__(self, signer: Signer[Signed]) -> None:
        self._c = signer

    def _sign(self, body: EventBody) -> Signed:
        return self._c.sign(body)

    # ---- organisations (governance-driven; recorded, not enabled yet)
    def org_register(self, *, org_id: str, name: str, roles: Sequence[str], keys: Sequence[bytes | str]) -> Signed:
        return self._sign(
            B.OrgRegister(org_id=org_id, name=name, roles=tuple(sorted(roles)), keys=tuple(as_key(k) for k in keys))
        )

    def org_update(self, *, org_id: str, roles: Sequence[str], keys: Sequence[bytes | str]) -> Signed:
        return self._sign(B.OrgUpdate(org_id=org_id, roles=tuple(sorted(roles)), keys=tuple(as_key(k) for k in keys)))

    # ---- member node keys (signed by a key of the organisation that runs the nodes)
    def node_register(self, *, keys: Sequence[bytes | str]) -> Signed:
        """Register node keys (32-byte Ed25519 public keys, bytes or hex) of nodes the
        sender's organisation runs: they join every node's peer allowlist."""
        return self._sign(B.NodeRegister(keys=tuple(as_key(k) for k in keys)))

    def node_remove(self, *, keys: Sequence[bytes | str]) -> Signed:
        """Withdraw registered node keys of the sender's organisation."""
        return self._sign(B.NodeRemove(keys=tuple(as_key(k) for k in keys)))

    # ---- products
    def product_register(
        self, *, gtin: str, serial: str, model: str, batch: str, production_time_ms: int
    ) -> Signed:
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
    ) -> Signed:
        return self._sign(
            B.ProductTransfer(
                gtin=gtin,
                serial=serial,
                kind=kind,
                to_org=to_org,
                to_customer=None if to_customer is None else as_key(to_customer),
                order_ref_hash=opt_id(order_ref_hash, "order_ref_hash"),
            )
        )

    def product_sell(
        self, *, gtin: str, serial: str, to_customer: bytes | str, order_ref_hash: bytes | str
    ) -> Signed:
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
    ) -> Signed:
        return self._sign(
            B.TraceRecord(
                gtin=gtin,
                serial=serial,
                biz_step=biz_step,
                disposition=disposition,
                location_hash=as_id(location_hash, "location_hash"),
                ref_hash=opt_id(ref_hash, "ref_hash"),
            )
        )

    def product_recall(self, *, gtin: str, batch: str, reason_hash: bytes | str) -> Signed:
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
    ) -> Signed:
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
                contract_id=opt_id(contract_id, "contract_id"),
            )
        )

    def warranty_activate(self, *, gtin: str, serial: str, policy_id: bytes | str) -> Signed:
        return self._sign(B.WarrantyActivate(gtin=gtin, serial=serial, policy_id=as_id(policy_id, "policy_id")))

    def contract_deploy(self, *, vm_id: str, vm_version: int = 1, name: str, code: bytes) -> Signed:
        return self._sign(B.ContractDeploy(vm_id=vm_id, vm_version=vm_version, name=name, code=code))

    def contract_call(self, *, contract_id: bytes | str, entry: str, args: bytes = b"", gas_limit: int) -> Signed:
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
    ) -> Signed:
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

    def ticket_ack(self, *, ticket_id: bytes | str, note_hash: bytes | str | None = None) -> Signed:
        return self._sign(
            B.TicketAck(ticket_id=as_id(ticket_id, "ticket_id"), note_hash=opt_id(note_hash, "note_hash"))
        )

    def ticket_update(
        self, *, ticket_id: bytes | str, status: str, note_hash: bytes | str | None = None
    ) -> Signed:
        return self._sign(
            B.TicketUpdate(
                ticket_id=as_id(ticket_id, "ticket_id"), status=status, note_hash=opt_id(note_hash, "note_hash")
            )
        )

    def ticket_assign(self, *, ticket_id: bytes | str, org_id: str) -> Signed:
        return self._sign(B.TicketAssign(ticket_id=as_id(ticket_id, "ticket_id"), org_id=org_id))

    def ticket_escalate(self, *, ticket_id: bytes | str, reason_hash: bytes | str) -> Signed:
        return self._sign(
            B.TicketEscalate(ticket_id=as_id(ticket_id, "ticket_id"), reason_hash=as_id(reason_hash, "reason_hash"))
        )

    def ticket_resolve(self, *, ticket_id: bytes | str, resolution: str, resolution_hash: bytes | str) -> Signed:
        return self._sign(
            B.TicketResolve(
                ticket_id=as_id(ticket_id, "ticket_id"),
                resolution=resolution,
                resolution_hash=as_id(resolution_hash, "resolution_hash"),
            )
        )

    def ticket_reject(
        self, *, ticket_id: bytes | str, reason_code: str, reason_hash: bytes | str | None = None
    ) -> Signed:
        return self._sign(
            B.TicketReject(
                ticket_id=as_id(ticket_id, "ticket_id"),
                reason_code=reason_code,
                reason_hash=opt_id(reason_hash, "reason_hash"),
            )
        )

    def ticket_confirm(self, *, ticket_id: bytes | str) -> Signed:
        return self._sign(B.TicketConfirm(ticket_id=as_id(ticket_id, "ticket_id")))

    def ticket_reopen(self, *, ticket_id: bytes | str, reason_hash: bytes | str) -> Signed:
        return self._sign(
            B.TicketReopen(ticket_id=as_id(ticket_id, "ticket_id"), reason_hash=as_id(reason_hash, "reason_hash"))
        )

    def ticket_close(self, *, ticket_id: bytes | str) -> Signed:
        return self._sign(B.TicketClose(ticket_id=as_id(ticket_id, "ticket_id")))

    # ---- returns and shipments
    def return_request(self, *, gtin: str, serial: str, reason_code: str, reason_hash: bytes | str) -> Signed:
        return self._sign(
            B.ReturnRequest(
                gtin=gtin, serial=serial, reason_code=reason_code, reason_hash=as_id(reason_hash, "reason_hash")
            )
        )

    def return_approve(self, *, ticket_id: bytes | str) -> Signed:
        return self._sign(B.ReturnApprove(ticket_id=as_id(ticket_id, "ticket_id")))

    def return_reject(
        self, *, ticket_id: bytes | str, reason_code: str, reason_hash: bytes | str | None = None
    ) -> Signed:
        return self._sign(
            B.ReturnReject(
                ticket_id=as_id(ticket_id, "ticket_id"),
                reason_code=reason_code,
                reason_hash=opt_id(reason_hash, "reason_hash"),
            )
        )

    def return_receive(
        self, *, ticket_id: bytes | str, condition: str, inspection_hash: bytes | str | None = None
    ) -> Signed:
        return self._sign(
            B.ReturnReceive(
                ticket_id=as_id(ticket_id, "ticket_id"),
                condition=condition,
                inspection_hash=opt_id(inspection_hash, "inspection_hash"),
            )
        )

    def shipment_checkpoint(
        self,
        *,
        ticket_id: bytes | str,
        checkpoint: str,
        location_hash: bytes | str,
        tracking_hash: bytes | str | None = None,
    ) -> Signed:
        return self._sign(
            B.ShipmentCheckpoint(
                ticket_id=as_id(ticket_id, "ticket_id"),
                checkpoint=checkpoint,
                location_hash=as_id(location_hash, "location_hash"),
                tracking_hash=opt_id(tracking_hash, "tracking_hash"),
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
    ) -> Signed:
        return self._sign(
            B.EscrowDeposit(
                amount=amount,
                payee_org=payee_org,
                payee_customer=None if payee_customer is None else as_key(payee_customer),
                ticket_id=opt_id(ticket_id, "ticket_id"),
                ref_hash=opt_id(ref_hash, "ref_hash"),
            )
        )

    def escrow_release(self, *, escrow_id: bytes | str) -> Signed:
        return self._sign(B.EscrowRelease(escrow_id=as_id(escrow_id, "escrow_id")))

    def escrow_refund(self, *, escrow_id: bytes | str) -> Signed:
        return self._sign(B.EscrowRefund(escrow_id=as_id(escrow_id, "escrow_id")))

    # ---- ratings
    def rating_submit(
        self, *, ticket_id: bytes | str, score: int, comment_hash: bytes | str | None = None
    ) -> Signed:
        return self._sign(
            B.RatingSubmit(
                ticket_id=as_id(ticket_id, "ticket_id"), score=score, comment_hash=opt_id(comment_hash, "comment_hash")
            )
        )

    # ---- governance (proposals by members or validators; votes by validators)
    def governance_propose(self, *, kind: str, payload: bytes, voting_period_ms: int) -> Signed:
        return self._sign(B.GovernancePropose(kind=kind, payload=payload, voting_period_ms=voting_period_ms))

    def governance_validator_change(self, *, validators: Sequence[bytes | str], voting_period_ms: int) -> Signed:
        """Propose the complete new validator set (in this order)."""
        vs = ValidatorSet(validators=tuple(ValidatorId(as_key(v)) for v in validators))
        return self.governance_propose(kind="validator_change", payload=encode(vs), voting_period_ms=voting_period_ms)

    def governance_param_change(self, *, consensus: ConsensusParams | None = None, vm: VmParams | None = None,
                                voting_period_ms: int) -> Signed:
        """Propose new consensus and/or VM parameters (each complete)."""
        payload = encode(ParamChange(consensus=consensus, vm=vm))
        return self.governance_propose(kind="param_change", payload=payload, voting_period_ms=voting_period_ms)

    def governance_policy_standard(self, *, params: LedgerParams, voting_period_ms: int) -> Signed:
        """Propose new chain-wide after-sales rules (`LedgerParams`, e.g. the default return window)."""
        return self.governance_propose(kind="policy_standard", payload=encode(params), voting_period_ms=voting_period_ms)

    def governance_vote(self, *, proposal_id: bytes | str, approve: bool) -> Signed:
        return self._sign(B.GovernanceVote(proposal_id=as_id(proposal_id, "proposal_id"), approve=approve))

    def consensus_evidence(self, *, evidence: bytes | str) -> Signed:
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
    "node.register": "node_register",
    "node.remove": "node_remove",
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

