"""The contract between the ledger and service agreements (contracts): hooks and the contract host.

This file is the interface the contract VM (`node.app.vm`) implements. The ledger
(`node.app.policies`) is the only caller. Everything here is plain frozen dataclasses
and `Protocol`s; no VM code is imported.

## Service-agreement hooks (`AgreementHooks`)
When a warranty policy (`policy.register`) names a deployed contract (`contract_id`), the
ledger asks that contract three questions, at three fixed moments:

1. `claim_eligibility` - when a ticket of kind ``repair`` or ``refund`` is opened about a
   product whose warranty is bound to the policy: is the claim covered?  Not covered ->
   the ticket goes straight to ``rejected`` with the returned reason.
2. `sla_penalty` - when block time passes one of a ticket's SLA deadlines (first response
   or resolution): how much is paid, by whom, to whom.  The ledger moves
   ``min(amount, payer balance)`` (balances never go negative; the shortfall is recorded).
3. `return_decision` - when a returned product is received (`return.receive`): does the
   escrow bound to the return go to the customer (``refund=True``) or back to the
   depositor (``refund=False``)?

Every call gets `gas_limit` (genesis ``vm.hook_gas_limit``), a read-only view of the
contract's own state namespace (`StateReader`), and returns either its decision or a
`HookFailure`.  Decisions may carry `writes` into the contract's namespace; they are
applied only if the decision is used.

**Failure and fallback.** A hook call that fails (returns `HookFailure`, raises, runs out
of gas, or returns something malformed: negative/oversized amount, unknown account)
writes nothing.  The ledger records ``hook_failed:<reason>`` in the ticket's history and
applies the *fallback*: the answer of `PolicyTermsHooks` (the policy's own terms, below).
The same fallback is used when no VM is plugged in (``hooks=None``) or the named contract
does not exist.  Policies without a `contract_id` always use `PolicyTermsHooks`.

Determinism: hooks must be pure functions of their inputs and the state view (no clock, no
randomness, no I/O); all times are block times in ms.

## Accounts
An `Account` is a string: an organisation id (``"acme"``) or ``"cust:" + 64 hex digits``
of a customer's public key (`customer_account`).  Org ids never contain ``:``.

## Contract host (`ContractHost`)
`contract.deploy` asks `validate_code` (reject -> the event is rejected with
``contract.invalid_code`` and the reason); the ledger stores the code by its SHA-256 and
records (vm id, version, code hash, owner org, name) under the contract id (= event id).
`contract.call` asks `call`; on ``status == "ok"`` the ledger applies `writes` into the
contract's namespace (state keys ``cs/<contract id>/<key>``), otherwise nothing is
written.  Status and gas used are recorded as the event's outcome detail either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "Account",
    "AgreementHooks",
    "CallContext",
    "CallResult",
    "ClaimDecision",
    "ClaimInput",
    "ContractHost",
    "ContractRef",
    "HookFailure",
    "Penalty",
    "PenaltyInput",
    "PolicyTerms",
    "PolicyTermsHooks",
    "ReturnDecision",
    "ReturnInput",
    "StateReader",
    "customer_account",
]

Account = str
"""An organisation id, or ``"cust:" + hex(public key)`` for a customer."""

Writes = tuple[tuple[bytes, bytes | None], ...]
"""Ordered writes into a contract's own namespace: (key, value) or (key, None) to delete.
Keys are 1..256 bytes, values at most 64 KiB; at most 256 writes per call."""


def customer_account(public_key: bytes) -> Account:
    return "cust:" + public_key.hex()


class StateReader(Protocol):
    """Read-only view of one contract's namespace, as of this point in the block."""

    def get(self, key: bytes) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class ContractRef:
    """A deployed contract.

    - `contract_id`: id of the ``contract.deploy`` event that created it.
    - `vm_id`, `vm_version`: the VM and ABI version it was deployed for.
    - `code_hash`: SHA-256 of `code` (cache prepared modules by it).
    - `code`: the code bytes as deployed.
    - `owner_org`: organisation of the deploying key.
    """

    contract_id: bytes
    vm_id: str
    vm_version: int
    code_hash: bytes
    code: bytes
    owner_org: str


@dataclass(frozen=True, slots=True)
class PolicyTerms:
    """A registered warranty policy / service agreement (see `protocol.bodies.PolicyRegister`).

    - `policy_id`: id of its ``policy.register`` event; `owner_org`: who registered it.
    - `service_org`: organisation that works tickets under it (initial assignee).
    - `coverage_period_ms`: warranty length from activation.
    - `covered_faults`: fault type codes covered; empty = every fault.
    - `first_response_ms`, `resolution_ms`: SLA deadlines from opening (paused while
      waiting on the customer).
    - `penalty_amount`: built-in penalty per breach (minor units).
    - `return_window_ms`: from the sale; 0 = the chain default.
    - `contract_id`: the governing contract, if any.
    """

    policy_id: bytes
    owner_org: str
    service_org: str
    coverage_period_ms: int
    covered_faults: tuple[str, ...]
    first_response_ms: int
    resolution_ms: int
    penalty_amount: int
    return_window_ms: int
    contract_id: bytes | None


@dataclass(frozen=True, slots=True)
class HookFailure:
    """A hook call that produced no usable decision. `reason` is a short code
    (``out_of_gas``, ``trap``, ``revert``, ``invalid_output``, ``no_vm``, ...), `gas_used` as
    charged. The ledger writes nothing from the call and applies the fallback."""

    reason: str
    gas_used: int = 0


# --------------------------------------------------------------------------- 1. claim eligibility


@dataclass(frozen=True, slots=True)
class ClaimInput:
    """A claim being opened.

    - `ticket_id`: id of the ``ticket.open`` event; `kind`: ``repair`` or ``refund``.
    - `fault_type`: the customer's fault code.
    - `gtin`, `serial`, `batch`: the product; `recalled`: its (gtin, batch) is recalled.
    - `customer`: the customer's account.
    - `warranty_start_ms`: when the warranty was activated; `sale_time_ms`: when it was
      sold to a customer (block time), or 0 if unknown.
    - `now_ms`: the block time.
    """

    policy: PolicyTerms
    ticket_id: bytes
    kind: str
    fault_type: str
    gtin: str
    serial: str
    batch: str
    recalled: bool
    customer: Account
    warranty_start_ms: int
    sale_time_ms: int
    now_ms: int


@dataclass(frozen=True, slots=True)
class ClaimDecision:
    """`covered`: accept the claim; `reason`: a code recorded on the ticket (``covered``,
    ``warranty_expired``, ``fault_not_covered``, ``recall``, or the contract's own, 1-32
    chars of a-z 0-9 _ . -)."""

    covered: bool
    reason: str
    gas_used: int = 0
    writes: Writes = ()


# --------------------------------------------------------------------------- 2. SLA penalty


@dataclass(frozen=True, slots=True)
class PenaltyInput:
    """A deadline passed.

    - `deadline`: ``first_response`` or ``resolution``; `deadline_ms`: when it fell due;
      `now_ms`: the block time that passed it.
    - `assigned_org`: the organisation that missed it; `customer`: the ticket's customer.
    - `breaches_before`: breaches already recorded on this ticket.
    """

    policy: PolicyTerms
    ticket_id: bytes
    deadline: str
    deadline_ms: int
    now_ms: int
    assigned_org: str
    customer: Account
    breaches_before: int


@dataclass(frozen=True, slots=True)
class Penalty:
    """Move `amount` from `payer` to `payee` (both accounts; amount 0 = no penalty)."""

    amount: int
    payer: Account
    payee: Account
    gas_used: int = 0
    writes: Writes = ()


# --------------------------------------------------------------------------- 3. return decision


@dataclass(frozen=True, slots=True)
class ReturnInput:
    """A returned product arrived.

    - `condition`: ``as_new``, ``used``, ``damaged`` or ``incomplete`` (from `return.receive`).
    - `escrow_amount`: the held escrow bound to this return (0 if none).
    - `requested_ms`, `received_ms`: block times of the request and of the receipt;
      `sale_time_ms`: of the sale (0 if unknown).
    - `policy`: the product's policy, or None (then only the fallback applies).
    """

    policy: PolicyTerms | None
    ticket_id: bytes
    condition: str
    escrow_amount: int
    customer: Account
    requested_ms: int
    received_ms: int
    sale_time_ms: int


@dataclass(frozen=True, slots=True)
class ReturnDecision:
    """`refund=True`: the escrow goes to the customer (ticket -> ``refunded``); False: back
    to its depositor (ticket -> ``return_rejected``). `reason` is recorded."""

    refund: bool
    reason: str
    gas_used: int = 0
    writes: Writes = ()


class AgreementHooks(Protocol):
    """The three questions the ledger asks a governing contract. Implementations never raise
    for contract faults: they return `HookFailure`."""

    def claim_eligibility(
        self, contract: ContractRef, inp: ClaimInput, state: StateReader, gas_limit: int
    ) -> ClaimDecision | HookFailure: ...

    def sla_penalty(
        self, contract: ContractRef, inp: PenaltyInput, state: StateReader, gas_limit: int
    ) -> Penalty | HookFailure: ...

    def return_decision(
        self, contract: ContractRef, inp: ReturnInput, state: StateReader, gas_limit: int
    ) -> ReturnDecision | HookFailure: ...


class PolicyTermsHooks:
    """Built-in agreement: the policy's own terms, in pure Python (also the fallback).

    - eligibility: a recalled product is always covered (``recall``); otherwise covered iff
      ``now_ms <= warranty_start_ms + coverage_period_ms`` (else ``warranty_expired``) and
      the fault is in `covered_faults` or that list is empty (else ``fault_not_covered``);
    - penalty: `penalty_amount` from the assigned org to the customer;
    - return: refund iff the condition is ``as_new`` or ``used`` (reason
      ``condition_ok``), else back to the depositor (``condition_<condition>``).
    The `contract` and `state` arguments are ignored; gas used is 0.
    """

    def claim_eligibility(
        self, contract: ContractRef | None, inp: ClaimInput, state: StateReader | None, gas_limit: int
    ) -> ClaimDecision:
        p = inp.policy
        if inp.recalled:
            return ClaimDecision(covered=True, reason="recall")
        if inp.now_ms > inp.warranty_start_ms + p.coverage_period_ms:
            return ClaimDecision(covered=False, reason="warranty_expired")
        if p.covered_faults and inp.fault_type not in p.covered_faults:
            return ClaimDecision(covered=False, reason="fault_not_covered")
        return ClaimDecision(covered=True, reason="covered")

    def sla_penalty(
        self, contract: ContractRef | None, inp: PenaltyInput, state: StateReader | None, gas_limit: int
    ) -> Penalty:
        return Penalty(amount=inp.policy.penalty_amount, payer=inp.assigned_org, payee=inp.customer)

    def return_decision(
        self, contract: ContractRef | None, inp: ReturnInput, state: StateReader | None, gas_limit: int
    ) -> ReturnDecision:
        if inp.condition in ("as_new", "used"):
            return ReturnDecision(refund=True, reason="condition_ok")
        return ReturnDecision(refund=False, reason=f"condition_{inp.condition}")


# --------------------------------------------------------------------------- contract host


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who calls and when: `caller` is the sender's account, `caller_org` its org (or None for
    a customer), `height` / `time_ms` the block, `event_id` the calling event."""

    contract_id: bytes
    caller: Account
    caller_org: str | None
    height: int
    time_ms: int
    event_id: bytes


@dataclass(frozen=True, slots=True)
class CallResult:
    """Outcome of `contract.call`. `status` is ``ok``, ``revert``, ``out_of_gas``, ``trap`` or
    ``invalid``; `writes` are applied only when ``ok``; `output` (<= 64 KiB) and `events`
    (emitted (topic, data) pairs) are recorded; `error` explains a failure."""

    status: str
    gas_used: int
    output: bytes = b""
    writes: Writes = ()
    events: tuple[tuple[str, bytes], ...] = ()
    error: str = ""


class ContractHost(Protocol):
    """Deploys and runs general contracts (`contract.deploy`, `contract.call`)."""

    def allowed(self, vm_id: str, vm_version: int) -> bool:
        """True if this host can run (vm_id, vm_version) (genesis also has to allow it)."""
        ...

    def validate_code(self, vm_id: str, vm_version: int, code: bytes) -> str | None:
        """None if `code` is deployable, else a short human-readable reason."""
        ...

    def call(
        self, contract: ContractRef, entry: str, args: bytes, state: StateReader, ctx: CallContext, gas_limit: int
    ) -> CallResult:
        """Execute `entry(args)`. Never raises for contract faults (returns a non-ok status)."""
        ...

