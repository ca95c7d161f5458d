"""The wasmtime backend: deploy validation, gas, memory cap, traps, reuse, ABI limits."""

from __future__ import annotations

import pytest
import wasmtime

from afterchain.node.app.vm.api import CallContext, ExecStatus, MapState, VmError, VmLimits
from afterchain.node.app.vm.wasm import WasmVM

CTX = CallContext()

HOST = """
  (import "env" "input" (func $input (param i32 i32) (result i32)))
  (import "env" "output" (func $output (param i32 i32)))
  (import "env" "state_get" (func $state_get (param i32 i32 i32 i32) (result i32)))
  (import "env" "state_put" (func $state_put (param i32 i32 i32 i32)))
  (import "env" "state_del" (func $state_del (param i32 i32)))
  (import "env" "emit" (func $emit (param i32 i32 i32 i32)))
"""


def wat(body: str, memory: str = "(memory (export \"memory\") 1)") -> bytes:
    return wasmtime.wat2wasm(f"(module {HOST} {memory} {body})")


ECHO = wat("""
  (data (i32.const 0) "key")
  (func (export "echo") (result i32)
    (local $n i32)
    (local.set $n (call $input (i32.const 100) (i32.const 1000)))
    (call $state_put (i32.const 0) (i32.const 3) (i32.const 100) (local.get $n))
    (call $emit (i32.const 0) (i32.const 3) (i32.const 100) (local.get $n))
    (call $output (i32.const 100) (local.get $n))
    (i32.const 0))
  (func (export "loop") (result i32) (loop $l (br $l)) (i32.const 0))
  (func (export "write_then_trap") (result i32)
    (call $state_put (i32.const 0) (i32.const 3) (i32.const 0) (i32.const 3))
    unreachable)
  (func (export "write_then_loop") (result i32)
    (call $state_put (i32.const 0) (i32.const 3) (i32.const 0) (i32.const 3))
    (loop $l (br $l)) (i32.const 0))
  (func (export "write_then_revert") (result i32)
    (call $state_put (i32.const 0) (i32.const 3) (i32.const 0) (i32.const 3))
    (call $output (i32.const 0) (i32.const 3))
    (i32.const 7))
  (func (export "div0") (result i32) (i32.div_u (i32.const 1) (i32.const 0)))
  (func (export "oob") (result i32) (i32.load (i32.const 70000)))
  (func (export "bad_ptr") (result i32)
    (call $state_put (i32.const 65530) (i32.const 100) (i32.const 0) (i32.const 1)) (i32.const 0))
  (func (export "get") (result i32)
    (local $n i32)
    (local.set $n (call $state_get (i32.const 0) (i32.const 3) (i32.const 200) (i32.const 100)))
    (if (i32.ge_s (local.get $n) (i32.const 0)) (then (call $output (i32.const 200) (local.get $n))))
    (i32.const 0))
  (func (export "memory_bomb") (result i32)
    (loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    unreachable)
  (func (export "many_writes") (result i32)
    (local $i i32)
    (loop $l
      (i32.store (i32.const 300) (local.get $i))
      (call $state_put (i32.const 300) (i32.const 4) (i32.const 0) (i32.const 1))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l))
    (i32.const 0))
  (func $recurse (export "recurse") (result i32) (call $recurse))
""")


@pytest.fixture(scope="module")
def vm() -> WasmVM:
    return WasmVM()


def test_echo_writes_events_output(vm: WasmVM) -> None:
    p = vm.prepare(ECHO)
    r = vm.execute(p, "echo", b"hello", MapState(), CTX, 1_000_000)
    assert r.status is ExecStatus.OK, r
    assert r.output == b"hello"
    assert r.writes == ((b"key", b"hello"),)
    assert r.events == ((b"key", b"hello"),)
    assert r.gas_used > vm.schedule.wasm_call_base


def test_reads_see_base_state(vm: WasmVM) -> None:
    p = vm.prepare(ECHO)
    assert vm.execute(p, "get", b"", MapState({b"key": b"v1"}), CTX, 100_000).output == b"v1"
    assert vm.execute(p, "get", b"", MapState(), CTX, 100_000).output == b""


def test_infinite_loop_stops_at_exact_gas_every_run(vm: WasmVM) -> None:
    p = vm.prepare(ECHO)
    results = {vm.execute(p, "loop", b"", MapState(), CTX, 2_000_000) for _ in range(3)}
    fresh = WasmVM()
    results.add(fresh.execute(fresh.prepare(ECHO), "loop", b"", MapState(), CTX, 2_000_000))
    assert len(results) == 1
    (r,) = results
    assert r.status is ExecStatus.OUT_OF_GAS and r.gas_used == 2_000_000 and not r.writes


@pytest.mark.parametrize(
    ("entry", "status"),
    [("write_then_trap", ExecStatus.TRAP), ("write_then_loop", ExecStatus.OUT_OF_GAS), ("write_then_revert", ExecStatus.REVERT)],
)
def test_failed_call_writes_nothing(vm: WasmVM, entry: str, status: ExecStatus) -> None:
    p = vm.prepare(ECHO)
    r = vm.execute(p, entry, b"", MapState(), CTX, 1_000_000)
    assert r.status is status
    assert r.writes == () and r.events == ()
    if status is ExecStatus.REVERT:
        assert r.output == b"key"


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [("div0", "integer_division_by_zero"), ("oob", "memory_out_of_bounds"), ("bad_ptr", "out of bounds"),
     ("recurse", "stack_overflow")],
)
def test_traps_are_results_not_exceptions(vm: WasmVM, entry: str, fragment: str) -> None:
    r = vm.execute(vm.prepare(ECHO), entry, b"", MapState(), CTX, 50_000_000)
    assert r.status in (ExecStatus.TRAP, ExecStatus.OUT_OF_GAS)
    if r.status is ExecStatus.TRAP:
        assert fragment in r.error


def test_memory_bomb_is_stopped_by_the_cap() -> None:
    vm = WasmVM(VmLimits(memory_limit_bytes=1 << 20))
    r = vm.execute(vm.prepare(ECHO), "memory_bomb", b"", MapState(), CTX, 10_000_000)
    assert r.status is ExecStatus.TRAP and "unreachable" in r.error


def test_write_limit_is_a_trap(vm: WasmVM) -> None:
    r = vm.execute(vm.prepare(ECHO), "many_writes", b"", MapState(), CTX, 50_000_000)
    assert r.status is ExecStatus.TRAP and r.error.startswith("limit:") and not r.writes


def test_unknown_entry_and_big_args_are_invalid(vm: WasmVM) -> None:
    p = vm.prepare(ECHO)
    assert vm.execute(p, "nope", b"", MapState(), CTX, 100_000).status is ExecStatus.INVALID
    assert vm.execute(p, "memory", b"", MapState(), CTX, 100_000).status is ExecStatus.INVALID
    assert vm.execute(p, "echo", b"x" * (64 * 1024 + 1), MapState(), CTX, 100_000).status is ExecStatus.INVALID


def test_tiny_gas_limit(vm: WasmVM) -> None:
    r = vm.execute(vm.prepare(ECHO), "echo", b"", MapState(), CTX, 10)
    assert r.status is ExecStatus.OUT_OF_GAS and r.gas_used == 10


def test_host_call_gas_is_charged_from_the_same_tank(vm: WasmVM) -> None:
    p = vm.prepare(ECHO)
    small = vm.execute(p, "echo", b"a", MapState(), CTX, 1_000_000).gas_used
    big = vm.execute(p, "echo", b"a" * 801, MapState(), CTX, 1_000_000).gas_used
    # input, state_put (key+value), emit (topic+data), output: 4 per byte
    assert big - small == 800 * 4 * vm.schedule.per_byte


STATIC_COUNTER = wat("""
  (global $g (export "g") (mut i32) (i32.const 0))
  (func (export "bump") (result i32)
    (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
    (global.set $g (i32.add (global.get $g) (i32.const 1)))
    (i32.store (i32.const 4) (global.get $g))
    (call $output (i32.const 0) (i32.const 8))
    (i32.const 0))
""")

HIDDEN_GLOBAL = wat("""
  (global $g (mut i32) (i32.const 0))
  (func (export "bump") (result i32)
    (global.set $g (i32.add (global.get $g) (i32.const 1)))
    (i32.store (i32.const 0) (global.get $g))
    (call $output (i32.const 0) (i32.const 4))
    (i32.const 0))
""")


@pytest.mark.parametrize("code", [STATIC_COUNTER, HIDDEN_GLOBAL])
def test_instance_reuse_is_invisible(vm: WasmVM, code: bytes) -> None:
    p = vm.prepare(code)
    outs = {vm.execute(p, "bump", b"", MapState(), CTX, 100_000).output for _ in range(4)}
    assert len(outs) == 1


def test_reuse_happens_when_safe(vm: WasmVM) -> None:
    p = vm.prepare(STATIC_COUNTER)
    vm.execute(p, "bump", b"", MapState(), CTX, 100_000)
    assert p.handle.reusable and p.handle.instance is not None  # type: ignore[attr-defined]
    q = vm.prepare(HIDDEN_GLOBAL)
    vm.execute(q, "bump", b"", MapState(), CTX, 100_000)
    assert not q.handle.reusable  # type: ignore[attr-defined]


# ---------------------------------------------------------------- deploy validation


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (b"not wasm at all", "bad_module"),
        (b"\0asm\x01\0\0\0\xff\xff", "bad_module"),
        (wasmtime.wat2wasm('(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))'
                           ' (memory (export "memory") 1) (func (export "f") (result i32) (i32.const 0)))'), "forbidden_import"),
        (wasmtime.wat2wasm('(module (import "env" "clock" (func (result i64))) (memory (export "memory") 1)'
                           ' (func (export "f") (result i32) (i32.const 0)))'), "forbidden_import"),
        (wasmtime.wat2wasm('(module (import "env" "input" (func (param i64) (result i32))) (memory (export "memory") 1)'
                           ' (func (export "f") (result i32) (i32.const 0)))'), "bad_import_type"),
        (wasmtime.wat2wasm('(module (import "env" "mem" (memory 1)) (func (export "f") (result i32) (i32.const 0)))'),
         "forbidden_import"),
        (wasmtime.wat2wasm('(module (func (export "f") (result i32) (i32.const 0)))'), "no_memory"),
        (wasmtime.wat2wasm('(module (memory (export "memory") 1) (func (export "f") (param i32)))'), "no_entry"),
        (wasmtime.wat2wasm('(module (memory (export "memory") 1000) (func (export "f") (result i32) (i32.const 0)))'),
         "memory_too_large"),
        (wasmtime.wat2wasm('(module (memory (export "memory") 1) (func $s) (start $s)'
                           ' (func (export "f") (result i32) (i32.const 0)))'), "start_function"),
        (wasmtime.wat2wasm('(module (memory (export "memory") 1) (func (export "f") (result i32) (i32.const 0))'
                           ' (func (result v128) (v128.const i64x2 0 0)))'), "bad_module"),
        (wasmtime.wat2wasm('(module (memory (export "memory") 1 1 shared) (func (export "f") (result i32) (i32.const 0)))'),
         "bad_module"),
        (wasmtime.wat2wasm('(module (memory (export "memory") 1) (func (export "f") (result i32)'
                           ' (memory.fill (i32.const 0) (i32.const 0) (i32.const 65536)) (i32.const 0)))'), "bad_module"),
    ],
    ids=["garbage", "truncated", "wasi", "unknown-host", "wrong-type", "imported-memory", "no-memory", "no-entry",
         "memory-too-large", "start", "simd", "threads", "bulk-memory"],
)
def test_validation_rejects_with_reason(vm: WasmVM, code: bytes, reason: str) -> None:
    with pytest.raises(VmError) as info:
        vm.validate(code)
    assert info.value.reason == reason


def test_too_large() -> None:
    vm = WasmVM(VmLimits(max_code_bytes=100))
    with pytest.raises(VmError) as info:
        vm.validate(ECHO)
    assert info.value.reason == "too_large"


def test_nan_canonicalisation(vm: WasmVM) -> None:
    code = wat("""
      (func (export "nan") (result i32)
        (f64.store (i32.const 0) (f64.div (f64.const 0) (f64.const 0)))
        (f32.store (i32.const 8) (f32.sqrt (f32.const -1)))
        (call $output (i32.const 0) (i32.const 12))
        (i32.const 0))
    """)
    r = vm.execute(vm.prepare(code), "nan", b"", MapState(), CTX, 100_000)
    assert r.output == bytes.fromhex("000000000000f87f") + bytes.fromhex("0000c07f")


class _BrokenState:
    def get(self, key: bytes) -> bytes | None:
        raise RuntimeError("disk on fire")


def test_host_failure_propagates_and_the_vm_stays_usable(vm: WasmVM) -> None:
    p = vm.prepare(ECHO)
    with pytest.raises(RuntimeError, match="disk on fire"):
        vm.execute(p, "get", b"", _BrokenState(), CTX, 100_000)  # type: ignore[arg-type]
    assert vm.execute(p, "get", b"", MapState({b"key": b"ok"}), CTX, 100_000).output == b"ok"


def test_reused_instance_after_trap_is_fresh(vm: WasmVM) -> None:
    p = vm.prepare(STATIC_COUNTER)
    first = vm.execute(p, "bump", b"", MapState(), CTX, 100_000)
    assert vm.execute(p, "bump", b"", MapState(), CTX, vm.schedule.wasm_call_base + 3).status is ExecStatus.OUT_OF_GAS
    assert p.handle.instance is None  # type: ignore[attr-defined]
    assert vm.execute(p, "bump", b"", MapState(), CTX, 100_000) == first


def test_tables_are_capped(vm: WasmVM) -> None:
    code = wat("""
      (table 1 funcref)
      (func (export "grow") (result i32)
        (if (i32.eq (table.grow (ref.null func) (i32.const 1000)) (i32.const -1)) (then unreachable))
        (i32.const 0))
    """)
    r = vm.execute(vm.prepare(code), "grow", b"", MapState(), CTX, 100_000)
    assert r.status is ExecStatus.TRAP and "unreachable" in r.error


def test_fresh_and_reused_instances_give_identical_results(vm: WasmVM) -> None:
    from afterchain.node.app.vm.contracts import source

    p = vm.prepare(source("service", "wasm"))
    args = b"\x00" * 200  # malformed for every hook: a revert, which keeps the instance
    fresh = vm.execute(p, "sla_penalty", args, MapState(), CTX, 1_000_000)
    assert p.handle.instance is not None  # type: ignore[attr-defined]
    reused = vm.execute(p, "sla_penalty", args, MapState(), CTX, 1_000_000)
    assert fresh == reused and fresh.status is ExecStatus.REVERT
