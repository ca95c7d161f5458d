"""Fuzzed code and args: validation only ever raises VmError, execution never raises, and
both backends of each agreement give the same status and output on arbitrary args."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from afterchain.node.app.vm.api import CallContext, ExecResult, ExecStatus, MapState, VmError
from afterchain.node.app.vm.contracts import AGREEMENTS, ENTRIES, source
from afterchain.node.app.vm.lua import LuaVM
from afterchain.node.app.vm.wasm import WasmVM

WASM = WasmVM()
LUA = LuaVM()
CTX = CallContext()
SERVICE_WASM = source("service", "wasm")


@settings(max_examples=60)
@given(st.binary(max_size=300))
def test_wasm_validate_garbage(code: bytes) -> None:
    with contextlib.suppress(VmError):
        WASM.validate(code)


@settings(max_examples=60)
@given(st.integers(8, len(SERVICE_WASM) - 1), st.integers(0, 255))
def test_wasm_mutated_modules_never_raise(pos: int, byte: int) -> None:
    code = SERVICE_WASM[:pos] + bytes([byte]) + SERVICE_WASM[pos + 1 :]
    try:
        prepared = WASM.prepare(code)
    except VmError:
        return
    for entry in ENTRIES.values():
        r = WASM.execute(prepared, entry, b"\x01" * 40, MapState(), CTX, 200_000)
        assert isinstance(r, ExecResult)
        if not r.ok:
            assert r.writes == () and r.events == ()


@settings(max_examples=60)
@given(st.text(max_size=200))
def test_lua_arbitrary_source_never_raises(src: str) -> None:
    try:
        prepared = LUA.prepare(("function f(a) " + src + " end").encode())
    except VmError:
        return
    r = LUA.execute(prepared, "f", b"x", MapState(), CTX, 100_000)
    assert isinstance(r, ExecResult)


@settings(max_examples=80)
@given(name=st.sampled_from(AGREEMENTS), args=st.binary(max_size=400))
def test_agreements_agree_on_arbitrary_args(name: str, args: bytes) -> None:
    entry = ENTRIES[name]
    results = []
    for vm in (WASM, LUA):
        r = vm.execute(vm.prepare(source(name, vm.vm_id)), entry, args, MapState(), CTX, 1_000_000)
        results.append((r.status, r.output, r.writes))
    assert results[0] == results[1]
    assert results[0][0] in (ExecStatus.OK, ExecStatus.REVERT)
