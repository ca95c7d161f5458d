"""Service agreements as contracts: the VM side of `node.app.hooks`.

Owns: `VmContractHost` (the ledger's `ContractHost`: deploy validation and
`contract.call`), `VmAgreementHooks` (the ledger's `AgreementHooks`, run on the contract
a policy names), and the record format of hook args/outputs (ABI v1):

A *record* is a concatenation of fields, each ``u64`` (8 bytes little-endian) or ``str``
(u32 little-endian byte length, then the bytes). Every hook's args start with the
*policy block*: has_policy u64, coverage_period_ms u64, first_response_ms u64,
resolution_ms u64, penalty_amount u64, return_window_ms u64, owner_org str, service_org
str, n_faults u64, then n_faults fault codes (str). Then, per hook (entry name):

- ``claim_eligibility``: ticket_id str, kind str, fault_type str, gtin str, serial str,
  batch str, recalled u64, customer str, warranty_start_ms u64, sale_time_ms u64,
  now_ms u64 -> output: covered u64 (0/1), reason str.
- ``sla_penalty``: ticket_id str, deadline str, deadline_ms u64, now_ms u64,
  assigned_org str, customer str, breaches_before u64 -> output: amount u64, payer str,
  payee str.
- ``return_decision``: ticket_id str, condition str, escrow_amount u64, customer str,
  requested_ms u64, received_ms u64, sale_time_ms u64 -> output: refund u64 (0/1),
  reason str.

Invariants: hooks never raise for anything a contract does; a failed call (non-ok
status, malformed output, output with trailing bytes, bad reason code, bad account,
amount >= 2^63) is a `HookFailure` and carries no writes. Prepared code is cached by
code hash inside each VM.
"""

from __future__ import annotations

import re
import struct
from collections import OrderedDict

from afterchain.node.app.hooks import (
    CallContext as LedgerCallContext,
)
from afterchain.node.app.hooks import (
    CallResult,
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
from afterchain.node.app.vm.api import CallContext, ContractVM, ExecStatus, Prepared, VmError, get_vm, registered_vms

__all__ = [
    "ENTRY_CLAIM",
    "ENTRY_PENALTY",
    "ENTRY_RETURN",
    "RecordError",
    "VmAgreementHooks",
    "VmContractHost",
    "decode_claim_output",
    "decode_penalty_output",
    "decode_return_output",
    "encode_claim_input",
    "encode_penalty_input",
    "encode_return_input",
]

ENTRY_CLAIM = "claim_eligibility"
ENTRY_PENALTY = "sla_penalty"
ENTRY_RETURN = "return_decision"
MAX_AMOUNT = 2**63 - 1
HOST_CACHE_SIZE = 256

_REASON = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
_ORG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_CUSTOMER = re.compile(r"^cust:[0-9a-f]{64}$")


class RecordError(ValueError):
    """An output record that does not parse."""


# --------------------------------------------------------------------------- records


class _Writer:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def u64(self, v: int) -> _Writer:
        self.parts.append(struct.pack("<Q", v))
        return self

    def str(self, v: str | bytes) -> _Writer:
        b = v.encode("utf-8") if isinstance(v, str) else v
        self.parts.append(struct.pack("<I", len(b)) + b)
        return self

    def bytes(self) -> bytes:
        return b"".join(self.parts)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u64(self) -> int:
        if len(self.data) - self.pos < 8:
            raise RecordError("record too short for a u64")
        (v,) = struct.unpack_from("<Q", self.data, self.pos)
        self.pos += 8
        return int(v)

    def str(self) -> str:
        if len(self.data) - self.pos < 4:
            raise RecordError("record too short for a str length")
        (n,) = struct.unpack_from("<I", self.data, self.pos)
        self.pos += 4
        if len(self.data) - self.pos < n:
            raise RecordError("record too short for a str")
        raw = self.data[self.pos : self.pos + n]
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise RecordError("str is not UTF-8") from None

    def end(self) -> None:
        if self.pos != len(self.data):
            raise RecordError("trailing bytes after the record")


def _policy_block(w: _Writer, p: PolicyTerms | None) -> None:
    if p is None:
        w.u64(0).u64(0).u64(0).u64(0).u64(0).u64(0).str("").str("").u64(0)
        return
    w.u64(1).u64(p.coverage_period_ms).u64(p.first_response_ms).u64(p.resolution_ms)
    w.u64(p.penalty_amount).u64(p.return_window_ms).str(p.owner_org).str(p.service_org)
    w.u64(len(p.covered_faults))
    for f in p.covered_faults:
        w.str(f)


def encode_claim_input(inp: ClaimInput) -> bytes:
    w = _Writer()
    _policy_block(w, inp.policy)
    w.str(inp.ticket_id).str(inp.kind).str(inp.fault_type).str(inp.gtin).str(inp.serial).str(inp.batch)
    w.u64(1 if inp.recalled else 0).str(inp.customer)
    w.u64(inp.warranty_start_ms).u64(inp.sale_time_ms).u64(inp.now_ms)
    return w.bytes()


def encode_penalty_input(inp: PenaltyInput) -> bytes:
    w = _Writer()
    _policy_block(w, inp.policy)
    w.str(inp.ticket_id).str(inp.deadline).u64(inp.deadline_ms).u64(inp.now_ms)
    w.str(inp.assigned_org).str(inp.customer).u64(inp.breaches_before)
    return w.bytes()


def encode_return_input(inp: ReturnInput) -> bytes:
    w = _Writer()
    _policy_block(w, inp.policy)
    w.str(inp.ticket_id).str(inp.condition).u64(inp.escrow_amount).str(inp.customer)
    w.u64(inp.requested_ms).u64(inp.received_ms).u64(inp.sale_time_ms)
    return w.bytes()


def _flag(v: int) -> bool:
    if v not in (0, 1):
        raise RecordError("a flag is 0 or 1")
    return v == 1


def _reason(v: str) -> str:
    if not _REASON.match(v):
        raise RecordError("a reason is 1-32 characters of a-z 0-9 _ . -")
    return v


def _account(v: str) -> str:
    if not (_ORG.match(v) or _CUSTOMER.match(v)):
        raise RecordError(f"{v[:80]!r} is not an account")
    return v


def decode_claim_output(out: bytes) -> tuple[bool, str]:
    r = _Reader(out)
    covered, reason = _flag(r.u64()), _reason(r.str())
    r.end()
    return covered, reason


def decode_penalty_output(out: bytes) -> tuple[int, str, str]:
    r = _Reader(out)
    amount, payer, payee = r.u64(), _account(r.str()), _account(r.str())
    r.end()
    if amount > MAX_AMOUNT:
        raise RecordError("amount out of range")
    return amount, payer, payee


def decode_return_output(out: bytes) -> tuple[bool, str]:
    r = _Reader(out)
    refund, reason = _flag(r.u64()), _reason(r.str())
    r.end()
    return refund, reason


# --------------------------------------------------------------------------- host


class VmContractHost:
    """The ledger's `ContractHost` over our VMs (one backend instance per VM id)."""

    def __init__(self, vms: dict[str, ContractVM] | None = None) -> None:
        if vms is None:
            vms = {vm_id: get_vm(vm_id) for vm_id in registered_vms()}
        self._vms = dict(vms)
        self._prepared: OrderedDict[tuple[str, int, bytes], tuple[ContractVM, Prepared]] = OrderedDict()

    def vm(self, vm_id: str, vm_version: int) -> ContractVM | None:
        vm = self._vms.get(vm_id)
        return vm if vm is not None and vm.version == vm_version else None

    def allowed(self, vm_id: str, vm_version: int) -> bool:
        return self.vm(vm_id, vm_version) is not None

    def validate_code(self, vm_id: str, vm_version: int, code: bytes) -> str | None:
        vm = self.vm(vm_id, vm_version)
        if vm is None:
            return f"unsupported vm {vm_id} version {vm_version}"
        try:
            vm.validate(code)
        except VmError as exc:
            return str(exc)
        return None

    def prepare(self, contract: ContractRef) -> tuple[ContractVM, Prepared] | str:
        """The VM and prepared code of a deployed contract, or a failure reason. Cached by
        (vm, version, code hash) so a hook call does not re-hash the code."""
        key = (contract.vm_id, contract.vm_version, contract.code_hash)
        hit = self._prepared.get(key)
        if hit is not None:
            self._prepared.move_to_end(key)
            return hit
        vm = self.vm(contract.vm_id, contract.vm_version)
        if vm is None:
            return "no_vm"
        try:
            prepared = vm.prepare(contract.code)
        except VmError:
            return "invalid_code"
        if prepared.code_hash != contract.code_hash:
            return "invalid_code"  # the ref's hash does not name its code: never trust the cache with it
        self._prepared[key] = (vm, prepared)
        while len(self._prepared) > HOST_CACHE_SIZE:
            self._prepared.popitem(last=False)
        return vm, prepared

    def call(
        self,
        contract: ContractRef,
        entry: str,
        args: bytes,
        state: StateReader,
        ctx: LedgerCallContext,
        gas_limit: int,
    ) -> CallResult:
        got = self.prepare(contract)
        if isinstance(got, str):
            return CallResult(status=ExecStatus.INVALID.value, gas_used=0, error=got)
        vm, prepared = got
        vctx = CallContext(contract_id=contract.contract_id, caller=ctx.caller.encode(), height=ctx.height, time_ms=ctx.time_ms)
        res = vm.execute(prepared, entry, args, state, vctx, gas_limit)
        return CallResult(
            status=res.status.value,
            gas_used=res.gas_used,
            output=res.output,
            writes=res.writes if res.ok else (),
            events=tuple((t.decode("utf-8", "replace"), d) for t, d in res.events) if res.ok else (),
            error=res.error,
        )


class VmAgreementHooks:
    """The ledger's `AgreementHooks`: each question is a call of the policy's contract."""

    def __init__(self, host: VmContractHost | None = None) -> None:
        self.host = host if host is not None else VmContractHost()

    def _run(
        self, contract: ContractRef, entry: str, args: bytes, state: StateReader, gas_limit: int, now_ms: int
    ) -> tuple[bytes, int, tuple[tuple[bytes, bytes | None], ...]] | HookFailure:
        got = self.host.prepare(contract)
        if isinstance(got, str):
            return HookFailure(reason=got)
        vm, prepared = got
        ctx = CallContext(contract_id=contract.contract_id, time_ms=now_ms)
        res = vm.execute(prepared, entry, args, state, ctx, gas_limit)
        if not res.ok:
            return HookFailure(reason=res.status.value, gas_used=res.gas_used)
        return res.output, res.gas_used, res.writes

    def claim_eligibility(
        self, contract: ContractRef, inp: ClaimInput, state: StateReader, gas_limit: int
    ) -> ClaimDecision | HookFailure:
        got = self._run(contract, ENTRY_CLAIM, encode_claim_input(inp), state, gas_limit, inp.now_ms)
        if isinstance(got, HookFailure):
            return got
        out, gas, writes = got
        try:
            covered, reason = decode_claim_output(out)
        except RecordError:
            return HookFailure(reason="invalid_output", gas_used=gas)
        return ClaimDecision(covered=covered, reason=reason, gas_used=gas, writes=writes)

    def sla_penalty(
        self, contract: ContractRef, inp: PenaltyInput, state: StateReader, gas_limit: int
    ) -> Penalty | HookFailure:
        got = self._run(contract, ENTRY_PENALTY, encode_penalty_input(inp), state, gas_limit, inp.now_ms)
        if isinstance(got, HookFailure):
            return got
        out, gas, writes = got
        try:
            amount, payer, payee = decode_penalty_output(out)
        except RecordError:
            return HookFailure(reason="invalid_output", gas_used=gas)
        return Penalty(amount=amount, payer=payer, payee=payee, gas_used=gas, writes=writes)

    def return_decision(
        self, contract: ContractRef, inp: ReturnInput, state: StateReader, gas_limit: int
    ) -> ReturnDecision | HookFailure:
        got = self._run(contract, ENTRY_RETURN, encode_return_input(inp), state, gas_limit, inp.received_ms)
        if isinstance(got, HookFailure):
            return got
        out, gas, writes = got
        try:
            refund, reason = decode_return_output(out)
        except RecordError:
            return HookFailure(reason="invalid_output", gas_used=gas)
        return ReturnDecision(refund=refund, reason=reason, gas_used=gas, writes=writes)
