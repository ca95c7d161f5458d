"""Benchmark of the contract VMs: calls/s of the SLA penalty agreement, per backend.

    ./scripts/bench vm            # ~2 s per backend
    ./scripts/bench vm --quick    # a smoke run (used by the test suite)
    ./scripts/bench vm --json out.json
    python -m afterchain.node.bench.vm --seconds 5

Each call is a full hook call as the ledger makes it (`VmAgreementHooks.sla_penalty`:
encode the record, execute, decode and check the output) against an in-memory state, so
the figure includes the Python-side ABI work. A second line gives raw `execute` calls/s.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from afterchain.node.app.hooks import ContractRef, PenaltyInput, PolicyTerms
from afterchain.node.app.vm.agreements import VmAgreementHooks, VmContractHost, encode_penalty_input
from afterchain.node.app.vm.api import CallContext, ContractVM, MapState, Prepared, code_hash
from afterchain.node.app.vm.contracts import source

__all__ = ["main", "run"]

GAS_LIMIT = 1_000_000


def _inputs() -> PenaltyInput:
    policy = PolicyTerms(
        policy_id=b"p" * 32, owner_org="acme", service_org="fixit", coverage_period_ms=31_536_000_000,
        covered_faults=(), first_response_ms=3_600_000, resolution_ms=86_400_000, penalty_amount=500,
        return_window_ms=0, contract_id=b"c" * 32,
    )
    return PenaltyInput(
        policy=policy, ticket_id=b"t" * 32, deadline="resolution", deadline_ms=1_000_000, now_ms=1_000_000 + 3 * 86_400_000,
        assigned_org="fixit", customer="cust:" + "ab" * 32, breaches_before=1,
    )


def _rate(fn: Callable[[], object], seconds: float) -> tuple[float, float]:
    """(calls per wall-clock second, calls per CPU second of this process). The second is
    steadier on a shared machine."""
    n = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    deadline = start + seconds
    while True:
        for _ in range(50):
            fn()
        n += 50
        now = time.perf_counter()
        if now >= deadline:
            cpu = max(time.process_time() - cpu_start, 1e-9)
            return n / (now - start), n / cpu


def run(seconds: float) -> dict[str, dict[str, float]]:
    host = VmContractHost()
    hooks = VmAgreementHooks(host)
    inp = _inputs()
    args = encode_penalty_input(inp)
    results: dict[str, dict[str, float]] = {}
    for vm_id in ("wasm", "lua"):
        vm = host._vms[vm_id]
        code = source("sla", vm_id)
        ref = ContractRef(contract_id=code_hash(code), vm_id=vm_id, vm_version=vm.version, code_hash=code_hash(code),
                          code=code, owner_org="acme")
        state = MapState()
        first = hooks.sla_penalty(ref, inp, state, GAS_LIMIT)
        def hook_call(ref: ContractRef = ref, state: MapState = state) -> object:
            return hooks.sla_penalty(ref, inp, state, GAS_LIMIT)

        prepared = vm.prepare(code)

        def raw_call(vm: ContractVM = vm, prepared: Prepared = prepared, state: MapState = state) -> object:
            return vm.execute(prepared, "sla_penalty", args, state, CallContext(), GAS_LIMIT)

        hook_rate, hook_cpu = _rate(hook_call, seconds)
        raw_rate, raw_cpu = _rate(raw_call, seconds)
        results[vm_id] = {"hook_calls_per_s": hook_rate, "hook_calls_per_cpu_s": hook_cpu,
                          "execute_calls_per_s": raw_rate, "execute_calls_per_cpu_s": raw_cpu,
                          "gas_per_call": float(getattr(first, "gas_used", 0))}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench vm", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (0.05 s per measurement)")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    parser.add_argument("--json", metavar="FILE", help="also save the figures as JSON")
    opts = parser.parse_args(argv)
    seconds = 0.05 if opts.quick else opts.seconds
    results = run(seconds)
    print("SLA penalty agreement, one call = one ledger hook call (encode, execute, decode); raw = VM execute only")
    print(f"{'backend':<8} {'hook/s':>9} {'hook/cpu-s':>11} {'raw/s':>9} {'raw/cpu-s':>10} {'gas/call':>9}")
    for vm_id, r in results.items():
        print(f"{vm_id:<8} {r['hook_calls_per_s']:>9,.0f} {r['hook_calls_per_cpu_s']:>11,.0f} "
              f"{r['execute_calls_per_s']:>9,.0f} {r['execute_calls_per_cpu_s']:>10,.0f} {r['gas_per_call']:>9,.0f}")
    if opts.json:
        with open(opts.json, "w", encoding="utf-8") as f:
            json.dump({"bench": "vm", "seconds_per_measurement": seconds, "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
