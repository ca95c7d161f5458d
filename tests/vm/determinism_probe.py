"""Run every shipped agreement (both backends) on fixed inputs plus the loop and memory
bombs, and print one digest per run (status, gas, output, writes, events) as JSON lines.
Used by test_determinism.py in processes with different PYTHONHASHSEED."""

from __future__ import annotations

import json
import sys

from afterchain.node.app.hooks import ClaimInput, PenaltyInput, PolicyTerms, ReturnInput
from afterchain.node.app.vm.agreements import encode_claim_input, encode_penalty_input, encode_return_input
from afterchain.node.app.vm.api import CallContext, MapState, VmLimits, get_vm
from afterchain.node.app.vm.contracts import source

POLICY = PolicyTerms(policy_id=b"p" * 32, owner_org="acme", service_org="fixit", coverage_period_ms=10**9,
                     covered_faults=("battery", "screen"), first_response_ms=10, resolution_ms=100, penalty_amount=700,
                     return_window_ms=0, contract_id=b"c" * 32)
CUSTOMER = "cust:" + "ab" * 32
ARGS = {
    "warranty": [encode_claim_input(ClaimInput(policy=POLICY, ticket_id=bytes([i]) * 32, kind="repair", fault_type=f,
                                               gtin="12345670", serial="s1", batch="b", recalled=False, customer=CUSTOMER,
                                               warranty_start_ms=100, sale_time_ms=50, now_ms=now))
                 for i, (f, now) in enumerate([("screen", 500), ("water", 500), ("battery", 10**10), ("screen", 600)])],
    "sla": [encode_penalty_input(PenaltyInput(policy=POLICY, ticket_id=b"t" * 32, deadline=d, deadline_ms=1000,
                                              now_ms=1000 + late, assigned_org="fixit", customer=CUSTOMER, breaches_before=b))
            for d, late, b in [("resolution", 0, 0), ("first_response", 3 * 86_400_000, 1), ("resolution", 10**9, 7)]],
    "refund": [encode_return_input(ReturnInput(policy=POLICY, ticket_id=b"t" * 32, condition=c, escrow_amount=e,
                                               customer=CUSTOMER, requested_ms=10, received_ms=20, sale_time_ms=5))
               for c, e in [("as_new", 100), ("used", 60_000), ("damaged", 1), ("used", 10)]],
}
BOMBS = {
    "lua": b"function loop() while true do pcall(function() while true do end end) end end\n"
             b"function mem() local t = {} for i = 1, 1e9 do t[i] = tostring(i) end end",
    "wasm": None,
}


def main() -> int:
    ctx = CallContext()
    for vm_id in ("wasm", "lua"):
        vm = get_vm(vm_id)
        for name, arg_list in ARGS.items():
            prepared = vm.prepare(source(name, vm_id))
            entry = {"warranty": "claim_eligibility", "sla": "sla_penalty", "refund": "return_decision"}[name]
            state = MapState()
            for args in arg_list:  # calls chain through state, as in a block
                r = vm.execute(prepared, entry, args, state, ctx, 1_000_000)
                state.apply(r.writes)
                print(json.dumps([vm_id, name, r.status.value, r.gas_used, r.output.hex(), r.digest().hex()]))
    lua = get_vm("lua")
    small = type(lua)(VmLimits(memory_limit_bytes=2 << 20))
    bombs = BOMBS["lua"]
    assert bombs is not None
    for vm, entry in ((lua, "loop"), (small, "mem")):
        r = vm.execute(vm.prepare(bombs), entry, b"", MapState(), ctx, 3_000_000)
        print(json.dumps(["lua", entry, r.status.value, r.gas_used, r.error]))
    import wasmtime

    wasm = get_vm("wasm")
    loop = wasmtime.wat2wasm('(module (memory (export "memory") 1) (func (export "loop") (result i32) (loop $l (br $l)) (i32.const 0)))')
    r = wasm.execute(wasm.prepare(loop), "loop", b"", MapState(), ctx, 3_000_000)
    print(json.dumps(["wasm", "loop", r.status.value, r.gas_used, r.error]))
    bomb = wasmtime.wat2wasm('(module (memory (export "memory") 1) (func (export "bomb") (result i32)'
                             ' (loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) unreachable))')
    r = wasm.execute(wasm.prepare(bomb), "bomb", b"", MapState(), ctx, 3_000_000)
    print(json.dumps(["wasm", "bomb", r.status.value, r.gas_used, r.error]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
