"""The wasmtime backend (VM id ``wasm``, version 1): fuel as gas, NaN canonicalisation, no WASI.

Owns the engine configuration, module validation, the six host functions of ABI v1 and
the instance cache. See docs/CONTRACTS.md for the ABI as a contract author sees it.

Host ABI v1 (all imports from module ``env``; pointers/lengths are i32):
- ``input(ptr, cap) -> i32``: copy min(len(args), cap) bytes of the call's args to ptr,
  return len(args) (call with cap 0 to learn the size).
- ``output(ptr, len)``: set the call's output (the last call wins).
- ``state_get(kptr, klen, vptr, vcap) -> i32``: value length, or -1 when absent; copies
  min(len, vcap) bytes.
- ``state_put(kptr, klen, vptr, vlen)``, ``state_del(kptr, klen)``.
- ``emit(tptr, tlen, dptr, dlen)``: an event (topic, data).
An entry point is an exported function ``() -> i32``: 0 = ok, anything else = revert
(the output, if any, is the reason). The module exports its ``memory``.

Invariants:
- Only those imports, each with its exact type, are accepted; no WASI, no imported
  memory, table or global, no start function. Proposals that are non-deterministic or
  beyond what contracts need are disabled (threads, SIMD, relaxed SIMD, GC, exceptions,
  multi-memory, memory64, tail calls, bulk memory: memory.fill/copy would do up to 16 MiB
  of work for 1 fuel); reference types stay on (wasmtime 50 requires them), so tables are
  capped at `MAX_TABLE_ELEMENTS` (table.fill/grow/copy are not metered per element).
- Fuel = gas: 1 fuel per instruction (wasmtime's schedule), host calls charged from the
  same fuel tank. Out of fuel is OUT_OF_GAS with gas_used = gas_limit.
- Linear memory is capped per store (`Store.set_limits`); `memory.grow` beyond the cap
  returns -1 to the contract.
- An instance is reused only when that is invisible: every mutable global is exported
  and so is every table (build with --export-table) and all its elements are null, there
  is no passive data, and after an ok/revert call whose memory did not grow, memory
  and globals are restored to their post-instantiation snapshot. After a trap, out of gas
  or growth, the instance is dropped and the next call instantiates afresh.
- Single-threaded: one call at a time per `WasmVM`.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, cast

import wasmtime
from wasmtime import _ffi as wffi

from afterchain.node.app.vm.api import (
    ABI_VERSION,
    DEFAULT_LIMITS,
    GAS_SCHEDULE_V1,
    CallContext,
    ExecResult,
    ExecStatus,
    GasSchedule,
    LimitExceeded,
    Prepared,
    StateView,
    VmError,
    VmLimits,
    WriteOverlay,
    clip_error,
    code_hash,
    register_vm,
)
from afterchain.protocol.errors import InvariantError
from afterchain.protocol.genesis import VmAllowed

__all__ = ["VM_ID", "WasmVM"]

VM_ID = "wasm"
VERSION = ABI_VERSION
"""Version 1 = host ABI v1 + gas schedule v1 + `DEFAULT_LIMITS`, on wasmtime 50.x (fuel costs
and stack depth are wasmtime's; a wasmtime upgrade that changes them is a new version)."""
WASM_PAGE_BYTES = 65536
MAX_WASM_STACK_BYTES = 256 * 1024
PREPARED_CACHE_SIZE = 128
MAX_REUSE_TABLE_ELEMENTS = 64
MAX_TABLE_ELEMENTS = 256
"""Table size cap: table.fill/grow/copy cost 1 fuel whatever their length, so tables stay small."""
ENTRY_NAME_MAX = 64

_I32 = wasmtime.ValType.i32()
_HOST_TYPES: dict[str, tuple[tuple[wasmtime.ValType, ...], tuple[wasmtime.ValType, ...]]] = {
    "input": ((_I32, _I32), (_I32,)),
    "output": ((_I32, _I32), ()),
    "state_get": ((_I32, _I32, _I32, _I32), (_I32,)),
    "state_put": ((_I32, _I32, _I32, _I32), ()),
    "state_del": ((_I32, _I32), ()),
    "emit": ((_I32, _I32, _I32, _I32), ()),
}


class _OutOfGas(Exception):
    pass


class _AbiError(Exception):
    pass


def _engine() -> wasmtime.Engine:
    cfg = wasmtime.Config()
    cfg.consume_fuel = True
    cfg.cranelift_nan_canonicalization = True
    cfg.max_wasm_stack = MAX_WASM_STACK_BYTES
    cfg.wasm_threads = False
    cfg.wasm_simd = False
    cfg.wasm_bulk_memory = False  # memory.fill/copy/init would move up to the whole memory for 1 fuel
    cfg.wasm_relaxed_simd = False
    cfg.wasm_multi_memory = False
    cfg.wasm_memory64 = False
    cfg.wasm_gc = False
    cfg.wasm_function_references = False
    cfg.wasm_exceptions = False
    cfg.wasm_tail_call = False
    cfg.wasm_stack_switching = False
    cfg.wasm_wide_arithmetic = False
    cfg.wasm_custom_page_sizes = False
    cfg.shared_memory = False
    cfg.parallel_compilation = False
    return wasmtime.Engine(cfg)


def _types_equal(a: list[wasmtime.ValType], b: tuple[wasmtime.ValType, ...]) -> bool:
    return len(a) == len(b) and all(str(x) == str(y) for x, y in zip(a, b, strict=True))


def _leb_u32(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    for _ in range(5):
        if pos >= len(data):
            raise VmError("bad_module", "truncated LEB128")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
    raise VmError("bad_module", "LEB128 too long")


def _sections(code: bytes) -> dict[int, tuple[int, int]]:
    """Section id -> (body start, end) of a module wasmtime already accepted."""
    found: dict[int, tuple[int, int]] = {}
    pos = 8
    while pos < len(code):
        section_id = code[pos]
        size, body = _leb_u32(code, pos + 1)
        found.setdefault(section_id, (body, body + size))
        pos = body + size
    return found


def _count_mutable_globals(code: bytes, sections: dict[int, tuple[int, int]]) -> int | None:
    """Number of mutable globals the module defines, or None if we cannot tell."""
    if 6 not in sections:
        return 0
    body, end = sections[6]
    count, p = _leb_u32(code, body)
    mutable = 0
    for _ in range(count):
        if p + 3 > end:
            return None
        mutable += code[p + 1] == 1
        p += 2
        op = code[p]  # a constant expression: one MVP const or global.get, then `end`
        if op in (0x41, 0x42, 0x23):
            p += 1
            while p < end and code[p] & 0x80:
                p += 1
            p += 1
        elif op == 0x43:
            p += 5
        elif op == 0x44:
            p += 9
        else:
            return None
        if p >= end or code[p] != 0x0B:
            return None
        p += 1
    return mutable


@dataclass(slots=True)
class _Module:
    module: wasmtime.Module
    pre: wasmtime.InstancePre
    entries: frozenset[str]
    reusable: bool
    owner: object
    instance: _Instance | None = None


@dataclass(slots=True)
class _Instance:
    store: wasmtime.Store
    instance: wasmtime.Instance
    memory: wasmtime.Memory
    snapshot: bytes
    globals: tuple[tuple[wasmtime.Global, Any], ...]  # (global, its raw wasmtime_val_t after instantiation)
    tables: tuple[tuple[wasmtime.Table, int], ...]  # (table, its size); every element null
    funcs: dict[str, wasmtime.Func]


class _Frame:
    """The state of the call in progress (host functions read it)."""

    __slots__ = ("args", "memory", "output", "overlay")

    def __init__(self, overlay: WriteOverlay, args: bytes, memory: wasmtime.Memory) -> None:
        self.overlay = overlay
        self.args = args
        self.memory = memory
        self.output = b""


class WasmVM:
    """`ContractVM` over wasmtime. See the module docstring for the ABI and invariants."""

    vm_id = VM_ID
    version = VERSION

    def __init__(self, limits: VmLimits = DEFAULT_LIMITS, schedule: GasSchedule = GAS_SCHEDULE_V1) -> None:
        self.limits = limits
        self.schedule = schedule
        self._engine = _engine()
        self._linker = wasmtime.Linker(self._engine)
        self._frame: _Frame | None = None
        self._cache: OrderedDict[bytes, Prepared] = OrderedDict()
        self._pending: BaseException | None = None  # raised by a host function, re-raised after the call
        self._callbacks: list[Any] = []  # keep the ctypes callbacks alive as long as the linker
        for name, (params, results) in _HOST_TYPES.items():
            self._define_raw(name, params, results)

    def _define_raw(self, name: str, params: tuple[wasmtime.ValType, ...], results: tuple[wasmtime.ValType, ...]) -> None:
        """Define host function `name` through wasmtime's unchecked C API: arguments arrive as
        raw i32 values, with no per-argument `wasmtime.Val` conversion (the cost that
        dominates `Linker.define_func` callbacks). An exception is kept in `_pending` and
        becomes a trap; `_call` re-raises it."""
        fn = getattr(self, f"_host_{name}")
        nparams = len(params)
        has_result = bool(results)

        def callback(env: object, caller: Any, vals: Any, n: int) -> int:
            try:
                ctx = wffi.wasmtime_caller_context(caller)
                r = fn(ctx, *[vals[i].i32 for i in range(nparams)])
                if has_result:
                    vals[0].i32 = r
                return 0
            except BaseException as exc:
                self._pending = exc
                trap = wasmtime.Trap(f"host function {name} failed")._consume()
                return ctypes.cast(trap, ctypes.c_void_p).value or 0

        cb = wffi.wasmtime_func_unchecked_callback_t(callback)
        fin = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda _: None)
        self._callbacks += [cb, fin]
        ty = wasmtime.FuncType(list(params), list(results))
        module_b, name_b = b"env", name.encode()
        err = wffi.wasmtime_linker_define_func_unchecked(
            self._linker.ptr(), ctypes.create_string_buffer(module_b), len(module_b),
            ctypes.create_string_buffer(name_b), len(name_b), ty.ptr(), cb, None, fin,
        )
        if err:
            raise InvariantError(f"cannot define host function {name}: {wasmtime.WasmtimeError._from_ptr(err)}")

    def allowed(self) -> VmAllowed:
        return VmAllowed(vm_id=self.vm_id, version=self.version)

    # ------------------------------------------------------------------ deploy

    def validate(self, code: bytes) -> None:
        self._compile(code)

    def _compile(self, code: bytes) -> _Module:
        if len(code) > self.limits.max_code_bytes:
            raise VmError("too_large", f"{len(code)} bytes exceed the limit of {self.limits.max_code_bytes}")
        if code[:8] != b"\0asm\x01\0\0\0":
            raise VmError("bad_module", "not a WebAssembly 1.0 binary module")
        try:
            module = wasmtime.Module(self._engine, code)
        except wasmtime.WasmtimeError as exc:
            raise VmError("bad_module", str(exc).splitlines()[0][:200]) from None
        for imp in module.imports:
            ty = imp.type
            expected = _HOST_TYPES.get(imp.name or "")
            if imp.module != "env" or expected is None or not isinstance(ty, wasmtime.FuncType):
                raise VmError("forbidden_import", f"import {imp.module}.{imp.name} is not part of ABI v{ABI_VERSION}")
            if not (_types_equal(ty.params, expected[0]) and _types_equal(ty.results, expected[1])):
                raise VmError("bad_import_type", f"import env.{imp.name} has the wrong type")
        memory_ok = False
        entries: set[str] = set()
        exported_mutable = exported_tables = 0
        for exp in module.exports:
            ty = exp.type
            if isinstance(ty, wasmtime.MemoryType):
                if exp.name == "memory":
                    memory_ok = True
                    if ty.limits.min * WASM_PAGE_BYTES > self.limits.memory_limit_bytes:
                        raise VmError("memory_too_large", "initial memory exceeds the memory limit")
            elif isinstance(ty, wasmtime.FuncType):
                if _types_equal(ty.params, ()) and _types_equal(ty.results, (_I32,)):
                    entries.add(exp.name)
            elif isinstance(ty, wasmtime.GlobalType) and ty.mutable:
                exported_mutable += 1
            elif isinstance(ty, wasmtime.TableType):
                exported_tables += 1
        if not memory_ok:
            raise VmError("no_memory", "the module must export its linear memory as `memory`")
        if not entries:
            raise VmError("no_entry", "the module exports no entry point of type () -> i32")
        sections = _sections(code)
        if 8 in sections:
            raise VmError("start_function", "a start function is not allowed (nothing may run outside a call)")
        mutable = _count_mutable_globals(code, sections)
        try:
            pre = self._linker.instantiate_pre(module)
        except wasmtime.WasmtimeError as exc:
            raise VmError("bad_module", str(exc).splitlines()[0][:200]) from None
        # Reuse is invisible only if all mutable instance state is restorable: memory (snapshot),
        # mutable globals (all exported), and no tables or passive data segments.
        tables = _leb_u32(code, sections[4][0])[0] if 4 in sections else 0
        reusable = mutable == exported_mutable and tables == exported_tables and 12 not in sections
        return _Module(module=module, pre=pre, entries=frozenset(entries), reusable=reusable, owner=self)

    def prepare(self, code: bytes) -> Prepared:
        h = code_hash(code)
        hit = self._cache.get(h)
        if hit is not None:
            self._cache.move_to_end(h)
            return hit
        prepared = Prepared(vm_id=self.vm_id, code_hash=h, handle=self._compile(code))
        self._cache[h] = prepared
        while len(self._cache) > PREPARED_CACHE_SIZE:
            self._cache.popitem(last=False)
        return prepared

    # ------------------------------------------------------------------ calls

    def _instantiate(self, mod: _Module, fuel: int) -> _Instance:
        store = wasmtime.Store(self._engine)
        store.set_limits(
            memory_size=self.limits.memory_limit_bytes, table_elements=MAX_TABLE_ELEMENTS, instances=1, tables=1, memories=1
        )
        store.set_fuel(fuel)
        instance = mod.pre.instantiate(store)
        exports = instance.exports(store)
        memory = exports["memory"]
        if not isinstance(memory, wasmtime.Memory):
            raise InvariantError("validated module lost its memory export")
        ctx = store._context()
        globals_: list[tuple[wasmtime.Global, Any]] = []
        tables: list[tuple[wasmtime.Table, int]] = []
        for name in _export_names(mod.module):
            x = exports[name]
            if isinstance(x, wasmtime.Global) and x.type(store).mutable:
                raw = wffi.wasmtime_val_t()
                wffi.wasmtime_global_get(ctx, ctypes.byref(x._global), ctypes.byref(raw))
                if cast(int, raw.kind) not in _NUMERIC_KINDS:
                    mod.reusable = False  # a reference-typed global: not snapshotted
                globals_.append((x, raw))
            elif isinstance(x, wasmtime.Table):
                size = wffi.wasmtime_table_size(ctx, ctypes.byref(x._table))
                if size > MAX_REUSE_TABLE_ELEMENTS or not _table_all_null(ctx, x, size):
                    mod.reusable = False
                tables.append((x, size))
        snapshot = bytes(memory.read(store, 0, memory.data_len(store))) if mod.reusable else b""
        funcs = {name: f for name in mod.entries if isinstance(f := exports[name], wasmtime.Func)}
        return _Instance(
            store=store, instance=instance, memory=memory, snapshot=snapshot, globals=tuple(globals_), tables=tuple(tables),
            funcs=funcs,
        )

    def execute(
        self, prepared: Prepared, entry: str, args: bytes, state: StateView, ctx: CallContext, gas_limit: int
    ) -> ExecResult:
        mod = prepared.handle
        if not isinstance(mod, _Module) or mod.owner is not self:
            raise InvariantError("prepared code belongs to another VM")
        gas_limit = min(gas_limit, self.limits.max_gas_per_call)
        base = self.schedule.wasm_call_base
        if entry not in mod.entries:
            return ExecResult(ExecStatus.INVALID, 0, error=clip_error(f"no entry point {entry!r}", self.limits))
        if len(args) > self.limits.max_args_bytes:
            return ExecResult(ExecStatus.INVALID, 0, error="args too large")
        if gas_limit <= base:
            return ExecResult(ExecStatus.OUT_OF_GAS, gas_limit, error="out of gas")
        fuel = gas_limit - base
        inst = mod.instance
        mod.instance = None
        try:
            if inst is None:
                inst = self._instantiate(mod, fuel)
            else:
                inst.store.set_fuel(fuel)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            # No start function is allowed, so this is a limit (memory, tables) refusing the module.
            return ExecResult(ExecStatus.TRAP, gas_limit, error=clip_error(f"instantiation failed: {_first_line(exc)}", self.limits))
        overlay = WriteOverlay(state, self.limits)
        frame = _Frame(overlay, args, inst.memory)
        self._frame = frame
        try:
            rc = self._call(inst, entry)
        except _OutOfGas:
            return ExecResult(ExecStatus.OUT_OF_GAS, gas_limit, error="out of gas")
        except LimitExceeded as exc:
            return ExecResult(ExecStatus.TRAP, self._used(inst, gas_limit), error=clip_error(f"limit: {exc}", self.limits))
        except _AbiError as exc:
            return ExecResult(ExecStatus.TRAP, self._used(inst, gas_limit), error=clip_error(f"abi: {exc}", self.limits))
        except wasmtime.Trap as exc:
            return self._fault(exc, gas_limit, self._used(inst, gas_limit))
        except wasmtime.WasmtimeError as exc:
            return ExecResult(ExecStatus.TRAP, self._used(inst, gas_limit), error=clip_error(_first_line(exc), self.limits))
        finally:
            self._frame = None
        used = self._used(inst, gas_limit)
        if mod.reusable and self._restore(inst):
            mod.instance = inst
        if rc != 0:
            return ExecResult(ExecStatus.REVERT, used, output=frame.output, error=clip_error(f"revert {rc}", self.limits))
        return overlay.result(used, frame.output)

    def _call(self, inst: _Instance, entry: str) -> int:
        """Call entry `() -> i32` through the unchecked C API; raise what the host raised,
        else the trap or error."""
        vals = (wffi.wasmtime_val_raw_t * 1)()
        trap = ctypes.POINTER(wffi.wasm_trap_t)()
        self._pending = None
        err = wffi.wasmtime_func_call_unchecked(
            inst.store._context(), ctypes.byref(inst.funcs[entry]._func), vals, 1, ctypes.byref(trap)
        )
        trap_obj = wasmtime.Trap._from_ptr(trap) if trap else None  # owns (and frees) the trap
        err_obj = wasmtime.WasmtimeError._from_ptr(err) if err else None
        pending, self._pending = self._pending, None
        if pending is not None:
            raise pending
        if err_obj is not None:
            raise err_obj
        if trap_obj is not None:
            raise trap_obj
        return int(vals[0].i32)

    def _restore(self, inst: _Instance) -> bool:
        """Put the instance back to its post-instantiation state; False if impossible."""
        store = inst.store
        ctx = store._context()
        if inst.memory.data_len(store) != len(inst.snapshot):
            return False
        # Tables are reusable only while every element is still null (as lld leaves them when
        # a contract takes no function pointers); anything else means a fresh instance.
        for t, size in inst.tables:
            if wffi.wasmtime_table_size(ctx, ctypes.byref(t._table)) != size or not _table_all_null(ctx, t, size):
                return False
        ctypes.memmove(inst.memory.data_ptr(store), inst.snapshot, len(inst.snapshot))
        for g, raw in inst.globals:
            if wffi.wasmtime_global_set(ctx, ctypes.byref(g._global), ctypes.byref(raw)):
                raise InvariantError("cannot restore a mutable global")
        return True

    def _used(self, inst: _Instance, gas_limit: int) -> int:
        return gas_limit - inst.store.get_fuel()

    def _fault(self, exc: wasmtime.Trap, gas_limit: int, used: int) -> ExecResult:
        code = exc.trap_code
        if code is wasmtime.TrapCode.OUT_OF_FUEL:
            return ExecResult(ExecStatus.OUT_OF_GAS, gas_limit, error="out of gas")
        name = code.name.lower() if code is not None else "trap"
        return ExecResult(ExecStatus.TRAP, used, error=clip_error(f"trap: {name}", self.limits))

    # ------------------------------------------------------------------ host functions

    def _charge(self, ctx: Any, gas: int) -> None:
        left = ctypes.c_uint64(0)
        if wffi.wasmtime_context_get_fuel(ctx, ctypes.byref(left)):
            raise InvariantError("fuel is not enabled")
        if left.value < gas:
            wffi.wasmtime_context_set_fuel(ctx, 0)
            raise _OutOfGas
        wffi.wasmtime_context_set_fuel(ctx, left.value - gas)

    def _span(self, ctx: Any, ptr: int, length: int) -> int:
        """Address of guest bytes [ptr, ptr+length), bounds-checked against the memory now."""
        mem = ctypes.byref(self._current().memory._memory)
        size = wffi.wasmtime_memory_data_size(ctx, mem)
        if ptr < 0 or length < 0 or ptr + length > size:
            raise _AbiError("memory access out of bounds")
        base = ctypes.cast(wffi.wasmtime_memory_data(ctx, mem), ctypes.c_void_p).value or 0
        return base + ptr

    def _read(self, ctx: Any, ptr: int, length: int) -> bytes:
        addr = self._span(ctx, ptr, length)
        return ctypes.string_at(addr, length) if length else b""

    def _write(self, ctx: Any, ptr: int, data: bytes) -> None:
        addr = self._span(ctx, ptr, len(data))
        if data:
            ctypes.memmove(addr, data, len(data))

    def _current(self) -> _Frame:
        frame = self._frame
        if frame is None:
            raise _AbiError("host function called outside a call")
        return frame

    def _host_input(self, ctx: Any, ptr: int, cap: int) -> int:
        frame = self._current()
        n = min(len(frame.args), max(cap, 0))
        self._charge(ctx, self.schedule.host_call + n * self.schedule.per_byte)
        self._write(ctx, ptr, frame.args[:n])
        return len(frame.args)

    def _host_output(self, ctx: Any, ptr: int, length: int) -> None:
        if length > self.limits.max_output_bytes:
            raise LimitExceeded(f"output of {length} bytes exceeds {self.limits.max_output_bytes}")
        self._charge(ctx, self.schedule.host_call + max(length, 0) * self.schedule.per_byte)
        self._current().output = self._read(ctx, ptr, length)

    def _host_state_get(self, ctx: Any, kptr: int, klen: int, vptr: int, vcap: int) -> int:
        s = self.schedule
        self._charge(ctx, s.host_call + s.state_get + max(klen, 0) * s.per_byte)
        key = self._read(ctx, kptr, klen)
        value = self._current().overlay.get(key)
        if value is None:
            return -1
        n = min(len(value), max(vcap, 0))
        self._charge(ctx, n * s.per_byte)
        self._write(ctx, vptr, value[:n])
        return len(value)

    def _host_state_put(self, ctx: Any, kptr: int, klen: int, vptr: int, vlen: int) -> None:
        s = self.schedule
        self._charge(ctx, s.host_call + s.state_put + (max(klen, 0) + max(vlen, 0)) * s.per_byte)
        self._current().overlay.put(self._read(ctx, kptr, klen), self._read(ctx, vptr, vlen))

    def _host_state_del(self, ctx: Any, kptr: int, klen: int) -> None:
        s = self.schedule
        self._charge(ctx, s.host_call + s.state_del + max(klen, 0) * s.per_byte)
        self._current().overlay.put(self._read(ctx, kptr, klen), None)

    def _host_emit(self, ctx: Any, tptr: int, tlen: int, dptr: int, dlen: int) -> None:
        s = self.schedule
        self._charge(ctx, s.host_call + s.emit + (max(tlen, 0) + max(dlen, 0)) * s.per_byte)
        self._current().overlay.emit(self._read(ctx, tptr, tlen), self._read(ctx, dptr, dlen))


_NUMERIC_KINDS = (wffi.WASMTIME_I32.value, wffi.WASMTIME_I64.value, wffi.WASMTIME_F32.value, wffi.WASMTIME_F64.value)


def _table_all_null(ctx: Any, table: wasmtime.Table, size: int) -> bool:
    val = wffi.wasmtime_val_t()
    for i in range(size):
        if not wffi.wasmtime_table_get(ctx, ctypes.byref(table._table), i, ctypes.byref(val)):
            return False
        if cast(int, val.kind) != wffi.WASMTIME_FUNCREF.value or val.of.funcref.store_id != 0:
            return False
    return True


def _export_names(module: wasmtime.Module) -> list[str]:
    return [e.name for e in module.exports]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


register_vm(VM_ID, WasmVM)
