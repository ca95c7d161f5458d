"""The three shipped agreements: both backends agree with each other and with a Python
model of the rule, on generated inputs; hook failures fall back cleanly; the host API."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from afterchain.node.app.hooks import (
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
)
from afterchain.node.app.vm.agreements import (
    RecordError,
    VmAgreementHooks,
    VmContractHost,
    decode_claim_output,
    decode_penalty_output,
    encode_penalty_input,
)
from afterchain.node.app.vm.api import MapState, code_hash
from afterchain.node.app.vm.contracts import AGREEMENTS, source

BACKENDS = ("wasm", "lua")
GAS = 1_000_000
DAY = 86_400_000
U63 = 2**63 - 1

HOST = VmContractHost()
HOOKS = VmAgreementHooks(HOST)


def ref(name: str, vm_id: str) -> ContractRef:
    code = source(name, vm_id)
    vm = HOST.vm(vm_id, HOST._vms[vm_id].version)
    assert vm is not None
    return ContractRef(contract_id=code_hash(code), vm_id=vm_id, vm_version=vm.version, code_hash=code_hash(code),
                       code=code, owner_org="acme")


def u64_bytes(v: int) -> bytes:
    return struct.pack("<Q", v)


FAULTS = ("battery", "screen", "water.damage")
codes = st.sampled_from(FAULTS)
orgs = st.sampled_from(("acme", "fixit", "ship-co", "a.b_c"))
customers = st.binary(min_size=32, max_size=32).map(lambda b: "cust:" + b.hex())
times = st.one_of(st.integers(0, 10**6), st.integers(0, 10**13))
policies = st.builds(
    PolicyTerms,
    policy_id=st.just(b"p" * 32),
    owner_org=orgs,
    service_org=orgs,
    coverage_period_ms=st.one_of(st.integers(0, 10**6), st.integers(0, 2**64 - 1)),
    covered_faults=st.lists(codes, max_size=2, unique=True).map(lambda x: tuple(sorted(x))),
    first_response_ms=times,
    resolution_ms=times,
    penalty_amount=st.one_of(st.integers(0, 10**4), st.integers(0, 10**6), st.integers(10**15 - 2, 10**15 + 2)),
    return_window_ms=st.one_of(st.just(0), st.integers(0, 10**11)),
    contract_id=st.just(b"c" * 32),
)
counters = st.one_of(st.none(), st.integers(0, 6))


# ---------------------------------------------------------------- Python models of the rules


def model_claim(inp: ClaimInput, claims: int) -> tuple[bool, str, int | None]:
    p = inp.policy
    if inp.recalled:
        return True, "recall", None
    start = inp.warranty_start_ms or inp.sale_time_ms
    if start == 0:
        return False, "warranty_unknown", None
    if inp.now_ms > (start + p.coverage_period_ms) % 2**64:
        return False, "warranty_expired", None
    if p.covered_faults and inp.fault_type not in p.covered_faults:
        return False, "fault_not_covered", None
    if claims >= 3:
        return False, "claim_limit", None
    return True, "covered", claims + 1


def model_penalty(inp: PenaltyInput, paid: int) -> tuple[int, int | None] | None:
    base = inp.policy.penalty_amount
    if base > 10**15:
        return None  # revert
    mult = 4 if inp.breaches_before >= 3 else inp.breaches_before + 1
    amount = base * mult
    if inp.deadline == "first_response":
        amount //= 2
    late = min((inp.now_ms - inp.deadline_ms) // DAY, 30) if inp.now_ms > inp.deadline_ms else 0
    amount += base * late // 10
    cap = base * 10
    amount = 0 if paid >= cap else min(amount, cap - paid)
    return amount, (paid + amount if amount else None)


def model_return(inp: ReturnInput, refunds: int) -> tuple[bool, str, int | None]:
    window = inp.policy.return_window_ms if inp.policy is not None and inp.policy.return_window_ms else 30 * DAY
    if inp.sale_time_ms and inp.requested_ms > inp.sale_time_ms + window:
        return False, "outside_window", None
    if refunds >= 5:
        return False, "return_limit", None
    if inp.condition == "as_new" or (inp.condition == "used" and inp.escrow_amount <= 50_000):
        return True, "condition_ok", refunds + 1
    if inp.condition == "used":
        return False, "used_high_value", None
    return False, ("condition_" + inp.condition)[:32], None


def state_with(key: bytes, count: int | None) -> MapState:
    return MapState({} if count is None else {key: u64_bytes(count)})


# ---------------------------------------------------------------- parity


def _check_claim_eligibility(policy, fault, recalled, start, sale, now, claims, gtin, serial):  # type: ignore[no-untyped-def]
    inp = ClaimInput(policy=policy, ticket_id=b"t" * 32, kind="repair", fault_type=fault, gtin=gtin, serial=serial,
                     batch="b1", recalled=recalled, customer="cust:" + "ab" * 32, warranty_start_ms=start,
                     sale_time_ms=sale, now_ms=now)
    key = f"claims/{gtin}/{serial}".encode()
    covered, reason, new_count = model_claim(inp, claims or 0)
    for vm_id in BACKENDS:
        d = HOOKS.claim_eligibility(ref("warranty", vm_id), inp, state_with(key, claims), GAS)
        assert isinstance(d, ClaimDecision), (vm_id, d)
        assert (d.covered, d.reason) == (covered, reason), vm_id
        assert d.writes == (() if new_count is None else ((key, u64_bytes(new_count)),)), vm_id


@settings(max_examples=60)
@given(policy=policies, fault=codes, recalled=st.booleans(), start=times, sale=times, now=times, claims=counters,
       gtin=st.sampled_from(("04012345678901", "12345670")), serial=st.sampled_from(("s1", "SN-9")))
def test_claim_eligibility_matches_model_in_both_backends(policy, fault, recalled, start, sale, now, claims, gtin, serial):  # type: ignore[no-untyped-def]
    _check_claim_eligibility(policy=policy, fault=fault, recalled=recalled, start=start, sale=sale, now=now, claims=claims, gtin=gtin, serial=serial)


@pytest.mark.slow
@settings(max_examples=2000)
@given(policy=policies, fault=codes, recalled=st.booleans(), start=times, sale=times, now=times, claims=counters,
       gtin=st.sampled_from(("04012345678901", "12345670")), serial=st.sampled_from(("s1", "SN-9")))
def test_claim_eligibility_long_run(policy, fault, recalled, start, sale, now, claims, gtin, serial):  # type: ignore[no-untyped-def]
    _check_claim_eligibility(policy=policy, fault=fault, recalled=recalled, start=start, sale=sale, now=now, claims=claims, gtin=gtin, serial=serial)


def _check_sla_penalty(policy, deadline, deadline_ms, late_ms, breaches, paid, assigned, customer):  # type: ignore[no-untyped-def]
    inp = PenaltyInput(policy=policy, ticket_id=bytes(range(32)), deadline=deadline, deadline_ms=deadline_ms,
                       now_ms=deadline_ms + late_ms, assigned_org=assigned, customer=customer, breaches_before=breaches)
    key = b"paid/" + bytes(range(32))
    expected = model_penalty(inp, paid or 0)
    for vm_id in BACKENDS:
        d = HOOKS.sla_penalty(ref("sla", vm_id), inp, state_with(key, paid), GAS)
        if expected is None:
            assert d == HookFailure(reason="revert", gas_used=d.gas_used), vm_id
            continue
        assert isinstance(d, Penalty), (vm_id, d)
        assert (d.amount, d.payer, d.payee) == (expected[0], assigned, customer), vm_id
        assert d.writes == (() if expected[1] is None else ((key, u64_bytes(expected[1])),)), vm_id


@settings(max_examples=60)
@given(policy=policies, deadline=st.sampled_from(["first_response", "resolution"]), deadline_ms=times,
       late_ms=st.one_of(st.integers(0, 40 * DAY), st.integers(0, 2**64 - 1 - 10**13)), breaches=st.one_of(st.integers(0, 5), st.integers(0, 2**64 - 1)),
       paid=st.one_of(st.none(), st.integers(0, 20_000), st.integers(0, 10**7)), assigned=orgs, customer=customers)
def test_sla_penalty_matches_model_in_both_backends(policy, deadline, deadline_ms, late_ms, breaches, paid, assigned, customer):  # type: ignore[no-untyped-def]
    _check_sla_penalty(policy=policy, deadline=deadline, deadline_ms=deadline_ms, late_ms=late_ms, breaches=breaches, paid=paid, assigned=assigned, customer=customer)


@pytest.mark.slow
@settings(max_examples=2000)
@given(policy=policies, deadline=st.sampled_from(["first_response", "resolution"]), deadline_ms=times,
       late_ms=st.one_of(st.integers(0, 40 * DAY), st.integers(0, 2**64 - 1 - 10**13)), breaches=st.one_of(st.integers(0, 5), st.integers(0, 2**64 - 1)),
       paid=st.one_of(st.none(), st.integers(0, 20_000), st.integers(0, 10**7)), assigned=orgs, customer=customers)
def test_sla_penalty_long_run(policy, deadline, deadline_ms, late_ms, breaches, paid, assigned, customer):  # type: ignore[no-untyped-def]
    _check_sla_penalty(policy=policy, deadline=deadline, deadline_ms=deadline_ms, late_ms=late_ms, breaches=breaches, paid=paid, assigned=assigned, customer=customer)


def _check_return_decision(policy, condition, escrow, requested, sale, refunds, customer):  # type: ignore[no-untyped-def]
    inp = ReturnInput(policy=policy, ticket_id=b"t" * 32, condition=condition, escrow_amount=escrow, customer=customer,
                      requested_ms=requested, received_ms=requested + 5, sale_time_ms=sale)
    key = f"returns/{customer}".encode()
    refund, reason, new_count = model_return(inp, refunds or 0)
    for vm_id in BACKENDS:
        d = HOOKS.return_decision(ref("refund", vm_id), inp, state_with(key, refunds), GAS)
        assert isinstance(d, ReturnDecision), (vm_id, d)
        assert (d.refund, d.reason) == (refund, reason), vm_id
        assert d.writes == (() if new_count is None else ((key, u64_bytes(new_count)),)), vm_id


@settings(max_examples=60)
@given(policy=st.one_of(st.none(), policies), condition=st.sampled_from(["as_new", "used", "damaged", "incomplete"]),
       escrow=st.one_of(st.integers(49_990, 50_010), st.integers(0, 100_000), st.integers(0, 2**64 - 1)), requested=times, sale=times,
       refunds=counters, customer=customers)
def test_return_decision_matches_model_in_both_backends(policy, condition, escrow, requested, sale, refunds, customer):  # type: ignore[no-untyped-def]
    _check_return_decision(policy=policy, condition=condition, escrow=escrow, requested=requested, sale=sale, refunds=refunds, customer=customer)


@pytest.mark.slow
@settings(max_examples=2000)
@given(policy=st.one_of(st.none(), policies), condition=st.sampled_from(["as_new", "used", "damaged", "incomplete"]),
       escrow=st.one_of(st.integers(49_990, 50_010), st.integers(0, 100_000), st.integers(0, 2**64 - 1)), requested=times, sale=times,
       refunds=counters, customer=customers)
def test_return_decision_long_run(policy, condition, escrow, requested, sale, refunds, customer):  # type: ignore[no-untyped-def]
    _check_return_decision(policy=policy, condition=condition, escrow=escrow, requested=requested, sale=sale, refunds=refunds, customer=customer)


# ---------------------------------------------------------------- boundaries, exactly


def _claim(**kw: object) -> ClaimInput:
    base = dict(policy=POLICY_BASE, ticket_id=b"t" * 32, kind="repair", fault_type="screen", gtin="12345670", serial="s1",
                batch="b1", recalled=False, customer="cust:" + "ab" * 32, warranty_start_ms=100, sale_time_ms=50, now_ms=500)
    base.update(kw)
    return ClaimInput(**base)  # type: ignore[arg-type]


POLICY_BASE = PolicyTerms(policy_id=b"p" * 32, owner_org="acme", service_org="fixit", coverage_period_ms=1000,
                          covered_faults=("screen",), first_response_ms=10, resolution_ms=100, penalty_amount=500,
                          return_window_ms=0, contract_id=b"c" * 32)


@pytest.mark.parametrize(
    ("inp", "claims", "expected"),
    [
        (_claim(), 2, (True, "covered")),
        (_claim(), 3, (False, "claim_limit")),
        (_claim(now_ms=1100), 0, (True, "covered")),
        (_claim(now_ms=1101), 0, (False, "warranty_expired")),
        (_claim(warranty_start_ms=0, now_ms=1050), 0, (True, "covered")),
        (_claim(warranty_start_ms=0, sale_time_ms=0), 0, (False, "warranty_unknown")),
        (_claim(fault_type="water"), 0, (False, "fault_not_covered")),
        (_claim(fault_type="water", recalled=True, now_ms=10**12), 9, (True, "recall")),
        # start + coverage wraps around 2^64 in both backends (u64 arithmetic)
        (_claim(policy=PolicyTerms(**{**{f: getattr(POLICY_BASE, f) for f in POLICY_BASE.__slots__},  # type: ignore[arg-type]
                                     "coverage_period_ms": 2**64 - 50}), now_ms=60), 0, (False, "warranty_expired")),
    ],
)
def test_claim_boundaries(inp: ClaimInput, claims: int, expected: tuple[bool, str]) -> None:
    assert model_claim(inp, claims)[:2] == expected
    key = f"claims/{inp.gtin}/{inp.serial}".encode()
    for vm_id in BACKENDS:
        d = HOOKS.claim_eligibility(ref("warranty", vm_id), inp, state_with(key, claims), GAS)
        assert isinstance(d, ClaimDecision) and (d.covered, d.reason) == expected, vm_id


@pytest.mark.parametrize(
    ("breaches", "deadline", "late_days", "paid", "amount"),
    [
        (0, "resolution", 0, 0, 500), (1, "resolution", 0, 0, 1000), (2, "resolution", 0, 0, 1500),
        (3, "resolution", 0, 0, 2000), (2**64 - 1, "resolution", 0, 0, 2000), (0, "first_response", 0, 0, 250),
        (0, "resolution", 1, 0, 550), (0, "resolution", 45, 0, 2000), (3, "resolution", 30, 4000, 1000),
        (0, "resolution", 0, 5000, 0),
    ],
)
def test_penalty_boundaries(breaches: int, deadline: str, late_days: int, paid: int, amount: int) -> None:
    inp = PenaltyInput(policy=POLICY_BASE, ticket_id=b"t" * 32, deadline=deadline, deadline_ms=1000,
                       now_ms=1000 + late_days * DAY, assigned_org="fixit", customer="cust:" + "ab" * 32,
                       breaches_before=breaches)
    model = model_penalty(inp, paid)
    assert model is not None and model[0] == amount
    for vm_id in BACKENDS:
        d = HOOKS.sla_penalty(ref("sla", vm_id), inp, state_with(b"paid/" + b"t" * 32, paid), GAS)
        assert isinstance(d, Penalty) and d.amount == amount, vm_id


@pytest.mark.parametrize(
    ("condition", "escrow", "refunds", "requested", "expected"),
    [
        ("used", 50_000, 0, 10, (True, "condition_ok")), ("used", 50_001, 0, 10, (False, "used_high_value")),
        ("as_new", 10**9, 4, 10, (True, "condition_ok")), ("as_new", 1, 5, 10, (False, "return_limit")),
        ("as_new", 1, 0, 5 + 30 * DAY, (True, "condition_ok")), ("as_new", 1, 0, 6 + 30 * DAY, (False, "outside_window")),
        ("incomplete", 1, 0, 10, (False, "condition_incomplete")), ("used", 2**64 - 1, 0, 10, (False, "used_high_value")),
    ],
)
def test_return_boundaries(condition: str, escrow: int, refunds: int, requested: int, expected: tuple[bool, str]) -> None:
    customer = "cust:" + "cd" * 32
    inp = ReturnInput(policy=POLICY_BASE, ticket_id=b"t" * 32, condition=condition, escrow_amount=escrow, customer=customer,
                      requested_ms=requested, received_ms=requested + 1, sale_time_ms=5)
    assert model_return(inp, refunds)[:2] == expected
    for vm_id in BACKENDS:
        d = HOOKS.return_decision(ref("refund", vm_id), inp, state_with(f"returns/{customer}".encode(), refunds), GAS)
        assert isinstance(d, ReturnDecision) and (d.refund, d.reason) == expected, vm_id


# ---------------------------------------------------------------- failures become HookFailure


POLICY = PolicyTerms(policy_id=b"p" * 32, owner_org="acme", service_org="fixit", coverage_period_ms=1000,
                     covered_faults=(), first_response_ms=10, resolution_ms=100, penalty_amount=500,
                     return_window_ms=0, contract_id=b"c" * 32)
PENALTY = PenaltyInput(policy=POLICY, ticket_id=b"t" * 32, deadline="resolution", deadline_ms=0, now_ms=1,
                       assigned_org="fixit", customer="cust:" + "ab" * 32, breaches_before=0)


@pytest.mark.parametrize("vm_id", BACKENDS)
def test_out_of_gas_is_a_hook_failure(vm_id: str) -> None:
    d = HOOKS.sla_penalty(ref("sla", vm_id), PENALTY, MapState(), 1_500)
    assert d == HookFailure(reason="out_of_gas", gas_used=1_500)


@pytest.mark.parametrize("vm_id", BACKENDS)
def test_wrong_contract_for_the_hook_is_a_failure(vm_id: str) -> None:
    d = HOOKS.sla_penalty(ref("warranty", vm_id), PENALTY, MapState(), GAS)
    assert isinstance(d, HookFailure) and d.reason == "invalid"


def test_unknown_vm_or_version_is_a_failure() -> None:
    r = ref("sla", "lua")
    bad = ContractRef(contract_id=r.contract_id, vm_id="lua", vm_version=r.vm_version + 1, code_hash=r.code_hash,
                      code=r.code, owner_org="acme")
    assert HOOKS.sla_penalty(bad, PENALTY, MapState(), GAS) == HookFailure(reason="no_vm")
    broken = ContractRef(contract_id=b"x" * 32, vm_id="lua", vm_version=r.vm_version, code_hash=code_hash(b"fun("),
                         code=b"fun(", owner_org="acme")
    assert HOOKS.sla_penalty(broken, PENALTY, MapState(), GAS) == HookFailure(reason="invalid_code")
    lying = ContractRef(contract_id=b"y" * 32, vm_id="lua", vm_version=r.vm_version, code_hash=b"\0" * 32,
                        code=r.code, owner_org="acme")
    assert HOOKS.sla_penalty(lying, PENALTY, MapState(), GAS) == HookFailure(reason="invalid_code")


@pytest.mark.parametrize(
    ("src", "reason"),
    [
        (b"function sla_penalty(a) return 'short' end", "invalid_output"),
        (b"function sla_penalty(a) return string.pack('<i8s4s4', 5, 'fixit', 'not an account!') end", "invalid_output"),
        (b"function sla_penalty(a) return string.pack('<i8s4s4', -1, 'fixit', 'acme') end", "invalid_output"),
        (b"function sla_penalty(a) return string.pack('<i8s4s4', 5, 'fixit', 'acme') .. 'x' end", "invalid_output"),
        (b"function sla_penalty(a) error('no') end", "trap"),
    ],
)
def test_malformed_outputs_are_failures(src: bytes, reason: str) -> None:
    vm = HOST._vms["lua"]
    c = ContractRef(contract_id=code_hash(src), vm_id="lua", vm_version=vm.version, code_hash=code_hash(src), code=src,
                    owner_org="acme")
    d = HOOKS.sla_penalty(c, PENALTY, MapState(), GAS)
    assert isinstance(d, HookFailure) and d.reason == reason


def test_record_decoders_reject_garbage() -> None:
    with pytest.raises(RecordError):
        decode_claim_output(u64_bytes(2) + struct.pack("<I", 2) + b"ok")
    with pytest.raises(RecordError):
        decode_claim_output(u64_bytes(1) + struct.pack("<I", 3) + b"BAD")
    with pytest.raises(RecordError):
        decode_penalty_output(u64_bytes(1) + struct.pack("<I", 100) + b"x")


# ---------------------------------------------------------------- the contract host


def test_host_validate_and_call() -> None:
    assert HOST.allowed("wasm", HOST._vms["wasm"].version)
    assert not HOST.allowed("wasm", 2)
    assert not HOST.allowed("evm", 1)
    for name in AGREEMENTS:
        for vm_id in BACKENDS:
            assert HOST.validate_code(vm_id, HOST._vms[vm_id].version, source(name, vm_id)) is None
    reason = HOST.validate_code("wasm", HOST._vms["wasm"].version, b"\0asm\x01\0\0\0junk")
    assert reason is not None and reason.startswith("bad_module")
    assert HOST.validate_code("lua", HOST._vms["lua"].version, b"\x1bLua") is not None
    ctx = CallContext(contract_id=b"c" * 32, caller="acme", caller_org="acme", height=1, time_ms=5, event_id=b"e" * 32)
    for vm_id in BACKENDS:
        r = HOST.call(ref("sla", vm_id), "sla_penalty", encode_penalty_input(PENALTY), MapState(), ctx, GAS)
        assert r.status == "ok" and r.writes and decode_penalty_output(r.output)[0] == 500
        r = HOST.call(ref("sla", vm_id), "sla_penalty", b"garbage", MapState(), ctx, GAS)
        assert r.status == "revert" and r.output == b"bad_args" and r.writes == ()
        r = HOST.call(ref("sla", vm_id), "nope", b"", MapState(), ctx, GAS)
        assert r.status == "invalid"
