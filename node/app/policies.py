"""Policies, warranties and contracts: registration, activation, deploy/call, and the
agreement hooks a policy's contract answers (`node.app.hooks`).

A hook call that fails (the hook's `HookFailure`, an exception, malformed output, no
contract, no VM) writes nothing and yields the fallback: the policy's own terms
(`PolicyTermsHooks`) plus the failure reason the caller records. A used decision's writes go
into the contract's namespace ``cs/<contract id>/<key>``; gas is counted per block
(``env.block_gas``) against ``vm.max_gas_per_block``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from afterchain.node.app.codes import Reason
from afterchain.node.app.context import Ctx, Env, Handler, Rejected
from afterchain.node.app.hooks import (
    AgreementHooks,
    CallContext,
    ClaimDecision,
    ClaimInput,
    ContractRef,
    HookFailure,
    Penalty,
    PenaltyInput,
    PolicyTerms,
    ReturnDecision,
    ReturnInput,
    StateReader,
)
from afterchain.node.app.orgs import account_ok, member, org_with_role
from afterchain.node.app.products import append_history, product
from afterchain.node.app.state import State, sha256
from afterchain.protocol import bodies as B
from afterchain.protocol import state_keys as K
from afterchain.protocol.errors import require
from afterchain.protocol.types import MAX_UINT64

__all__ = [
    "HANDLERS",
    "MAX_WRITES",
    "MAX_WRITE_KEY",
    "MAX_WRITE_VALUE",
    "ContractState",
    "claim_eligibility",
    "policy_terms",
    "return_decision",
    "sla_penalty",
]

MAX_WRITES = 256
MAX_WRITE_KEY = 256
MAX_WRITE_VALUE = 64 * 1024
_CODE_CACHE_ENTRIES = 32
_REASON = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
_T = TypeVar("_T", ClaimDecision, Penalty, ReturnDecision)


class ContractState:
    """`StateReader` over one contract's namespace at the current point of the block."""

    __slots__ = ("_cid", "_st")

    def __init__(self, st: State, cid: bytes) -> None:
        self._st = st
        self._cid = cid

    def get(self, key: bytes) -> bytes | None:
        v = self._st.get(K.contract_state(self._cid, key))
        return v if isinstance(v, bytes) else None


# --------------------------------------------------------------------------- policies, warranty


def policy_register(env: Env, ctx: Ctx, b: B.PolicyRegister) -> Any:
    st = env.state
    member(st, ctx, "manufacturer", "retailer", "service_provider")
    org_with_role(st, b.service_org, ("service_provider", "manufacturer", "retailer"), "service_org")
    if b.contract_id is not None and st.get(K.contract(b.contract_id)) is None:
        raise Rejected(Reason.CONTRACT_UNKNOWN, "the policy names an unknown contract")
    st.put(K.policy(ctx.event_id), {
        "owner": ctx.org, "name": b.name, "service_org": b.service_org, "coverage_ms": b.coverage_period_ms,
        "faults": list(b.covered_faults), "fr_ms": b.first_response_ms, "res_ms": b.resolution_ms,
        "penalty": b.penalty_amount, "return_ms": b.return_window_ms, "contract": b.contract_id, "since": ctx.time_ms,
    })
    return {"policy_id": ctx.event_id}


def policy_terms(st: State, pid: bytes | None) -> PolicyTerms | None:
    """The terms of policy `pid` (None: no policy, or an unknown one)."""
    p = st.get(K.policy(pid)) if pid is not None else None
    if p is None or pid is None:
        return None
    return PolicyTerms(policy_id=pid, owner_org=p["owner"], service_org=p["service_org"], coverage_period_ms=p["coverage_ms"],
                       covered_faults=tuple(p["faults"]), first_response_ms=p["fr_ms"], resolution_ms=p["res_ms"],
                       penalty_amount=p["penalty"], return_window_ms=p["return_ms"], contract_id=p["contract"])


def warranty_activate(env: Env, ctx: Ctx, b: B.WarrantyActivate) -> Any:
    st = env.state
    member(st, ctx)
    pk, p = product(st, b.gtin, b.serial)
    pol = st.get(K.policy(b.policy_id))
    if pol is None:
        raise Rejected(Reason.POLICY_UNKNOWN, "no such policy")
    if ctx.org not in (pol["owner"], p["seller"], p["mfr"]):
        raise Rejected(Reason.NOT_OWNER, "only the policy owner, the seller or the manufacturer activates a warranty")
    if not p["owner"].startswith("cust:"):
        raise Rejected(Reason.PRODUCT_NOT_SOLD, "the product is not owned by a customer")
    if p["policy"] is not None:
        raise Rejected(Reason.WARRANTY_ACTIVE, "the product already has a warranty")
    p["policy"] = b.policy_id
    p["w_start"] = ctx.time_ms
    append_history(st, pk, p, ["warranty", ctx.time_ms, ctx.event_id, ctx.org, b.policy_id])
    st.put(K.product(pk), p)
    return None


# --------------------------------------------------------------------------- agreement hooks


def claim_eligibility(env: Env, policy: PolicyTerms, inp: ClaimInput) -> tuple[ClaimDecision, str | None]:
    """Is the claim covered? (decision, failure reason or None)."""
    return _run_hook(env, policy, env.default_hooks.claim_eligibility(None, inp, None, 0), ClaimDecision,
                     lambda h, ref, state, gas: h.claim_eligibility(ref, inp, state, gas))


def sla_penalty(env: Env, policy: PolicyTerms, inp: PenaltyInput) -> tuple[Penalty, str | None]:
    """Who pays whom how much for a breached deadline? (decision, failure reason or None)."""
    return _run_hook(env, policy, env.default_hooks.sla_penalty(None, inp, None, 0), Penalty,
                     lambda h, ref, state, gas: h.sla_penalty(ref, inp, state, gas))


def return_decision(env: Env, policy: PolicyTerms | None, inp: ReturnInput) -> tuple[ReturnDecision, str | None]:
    """Does a return's escrow go to the customer? (decision, failure reason or None)."""
    return _run_hook(env, policy, env.default_hooks.return_decision(None, inp, None, 0), ReturnDecision,
                     lambda h, ref, state, gas: h.return_decision(ref, inp, state, gas))


def _run_hook(env: Env, policy: PolicyTerms | None, fallback: _T, expected: type[_T],
              call: Callable[[AgreementHooks, ContractRef, StateReader, int], object]) -> tuple[_T, str | None]:
    """Ask `policy`'s contract, if it has one; on any failure the built-in terms' `fallback`."""
    if policy is None or policy.contract_id is None:
        return fallback, None
    ref = contract_ref(env, policy.contract_id)
    if ref is None:
        return fallback, "no_contract"
    if env.hooks is None:
        return fallback, "no_vm"
    try:
        res = call(env.hooks, ref, ContractState(env.state, policy.contract_id), env.vm_params.hook_gas_limit)
    except Exception as exc:  # a VM bug must not split the chain: treated as a failed call
        return fallback, f"error:{type(exc).__name__}"
    if isinstance(res, HookFailure):
        env.block_gas += max(0, res.gas_used)
        return fallback, res.reason[:64] or "failed"
    if not isinstance(res, expected) or not valid_writes(res.writes) or not _valid_decision(env.state, res):
        return fallback, "invalid_output"
    env.block_gas += max(0, res.gas_used)
    apply_writes(env.state, policy.contract_id, res.writes)
    return res, None


def _valid_decision(st: State, res: ClaimDecision | Penalty | ReturnDecision) -> bool:
    if isinstance(res, Penalty):
        return (type(res.amount) is int and 0 <= res.amount <= MAX_UINT64
                and account_ok(st, res.payer) and account_ok(st, res.payee))
    verdict = res.covered if isinstance(res, ClaimDecision) else res.refund
    return type(verdict) is bool and isinstance(res.reason, str) and _REASON.match(res.reason) is not None


def valid_writes(writes: object) -> bool:
    """Contract writes within the limits: a tuple of (key, value or None) pairs."""
    if not isinstance(writes, tuple) or len(writes) > MAX_WRITES:
        return False
    for w in writes:
        if not (isinstance(w, tuple) and len(w) == 2 and isinstance(w[0], bytes) and 1 <= len(w[0]) <= MAX_WRITE_KEY
                and (w[1] is None or (isinstance(w[1], bytes) and len(w[1]) <= MAX_WRITE_VALUE))):
            return False
    return True


def apply_writes(st: State, cid: bytes, writes: Iterable[tuple[bytes, bytes | None]]) -> None:
    for k, v in writes:
        key = K.contract_state(cid, k)
        if v is None:
            st.delete(key)
        else:
            st.put(key, v)


def contract_ref(env: Env, cid: bytes) -> ContractRef | None:
    c = env.state.get(K.contract(cid))
    if c is None:
        return None
    code = env.code_cache.get(c["code_hash"])
    if code is None:
        code = env.state.get(K.code(c["code_hash"]))
        require(code is not None, "contract code missing from state")
        if len(env.code_cache) > _CODE_CACHE_ENTRIES:
            env.code_cache.clear()
        env.code_cache[c["code_hash"]] = code
    return ContractRef(contract_id=cid, vm_id=c["vm"], vm_version=c["version"], code_hash=c["code_hash"], code=code,
                       owner_org=c["owner"])


# --------------------------------------------------------------------------- contracts


def contract_deploy(env: Env, ctx: Ctx, b: B.ContractDeploy) -> Any:
    st = env.state
    member(st, ctx, "manufacturer", "retailer", "service_provider", "logistics")
    if env.contracts is None:
        raise Rejected(Reason.NO_HOST, "this chain's nodes run no contract host")
    vm_allowed = any(v.vm_id == b.vm_id and v.version == b.vm_version for v in env.vm_params.vms)
    if not vm_allowed or not env.contracts.allowed(b.vm_id, b.vm_version):
        raise Rejected(Reason.VM_NOT_ALLOWED, f"VM {b.vm_id} v{b.vm_version} is not allowed on this chain")
    try:
        reason = env.contracts.validate_code(b.vm_id, b.vm_version, b.code)
    except Exception as exc:
        reason = f"host error {type(exc).__name__}"
    if reason is not None:
        raise Rejected(Reason.INVALID_CODE, reason[:200])
    code_hash = sha256(b.code)
    if st.get(K.code(code_hash)) is None:
        st.put(K.code(code_hash), b.code)
    st.put(K.contract(ctx.event_id), {"vm": b.vm_id, "version": b.vm_version, "code_hash": code_hash, "owner": ctx.org,
                                      "name": b.name, "since": ctx.time_ms})
    return {"contract_id": ctx.event_id}


def contract_call(env: Env, ctx: Ctx, b: B.ContractCall) -> Any:
    if env.contracts is None:
        raise Rejected(Reason.NO_HOST, "this chain's nodes run no contract host")
    ref = contract_ref(env, b.contract_id)
    if ref is None:
        raise Rejected(Reason.CONTRACT_UNKNOWN, "no such contract")
    vm = env.vm_params
    if b.gas_limit > vm.max_gas_per_call or env.block_gas + b.gas_limit > vm.max_gas_per_block:
        raise Rejected(Reason.GAS_LIMIT, f"gas limit {b.gas_limit} over the per-call or remaining block limit")
    cctx = CallContext(contract_id=b.contract_id, caller=ctx.account, caller_org=ctx.org, height=ctx.height,
                       time_ms=ctx.time_ms, event_id=ctx.event_id)
    try:
        res = env.contracts.call(ref, b.entry, b.args, ContractState(env.state, b.contract_id), cctx, b.gas_limit)
    except Exception as exc:
        raise Rejected(Reason.CALL_FAILED, f"host error {type(exc).__name__}") from None
    env.block_gas += min(max(0, res.gas_used), b.gas_limit)
    if res.status != "ok":
        raise Rejected(Reason.CALL_FAILED, f"{res.status}: {res.error[:200]} (gas {res.gas_used})")
    if not valid_writes(res.writes):
        raise Rejected(Reason.CALL_FAILED, "invalid_output: writes break the limits")
    apply_writes(env.state, b.contract_id, res.writes)
    return {"status": res.status, "gas_used": res.gas_used, "output": res.output[:MAX_WRITE_VALUE]}


HANDLERS: dict[str, Handler] = {
    "policy.register": policy_register, "warranty.activate": warranty_activate,
    "contract.deploy": contract_deploy, "contract.call": contract_call,
}
