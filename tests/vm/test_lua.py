"""The Lua 5.4 backend: the hardened prelude. One test per sandbox escape, plus gas,
memory and failure semantics."""

from __future__ import annotations

import pytest

from afterchain.node.app.vm.api import CallContext, ExecStatus, MapState, VmError, VmLimits
from afterchain.node.app.vm.lua import LuaVM

CTX = CallContext()
GAS = 5_000_000


@pytest.fixture(scope="module")
def vm() -> LuaVM:
    return LuaVM()


def call(vm: LuaVM, src: str, entry: str = "f", args: bytes = b"", gas: int = GAS, state: MapState | None = None):  # type: ignore[no-untyped-def]
    return vm.execute(vm.prepare(src.encode()), entry, args, state or MapState(), CTX, gas)


def ok_output(vm: LuaVM, src: str, entry: str = "f") -> bytes:
    r = call(vm, src, entry)
    assert r.status is ExecStatus.OK, r
    return r.output


# ---------------------------------------------------------------- the environment


@pytest.mark.parametrize(
    "name",
    ["load", "loadstring", "require", "dofile", "loadfile", "os", "io", "debug", "collectgarbage", "coroutine",
     "next", "print", "python", "package", "utf8", "module", "setfenv", "getfenv", "newproxy", "jit"],
)
def test_dangerous_globals_are_absent(vm: LuaVM, name: str) -> None:
    assert ok_output(vm, f"function f() return tostring({name} == nil) end") == b"true"


@pytest.mark.parametrize("name", ["dump", "find", "match", "gmatch", "gsub"])
def test_string_library_is_trimmed_even_through_the_metatable(vm: LuaVM, name: str) -> None:
    src = f'function f() return tostring(string.{name} == nil) .. tostring(("x").{name} == nil) end'
    assert ok_output(vm, src) == b"truetrue"


def test_string_dump_cannot_be_called(vm: LuaVM) -> None:
    r = call(vm, 'function f() return ("").dump(f) end')
    assert r.status is ExecStatus.TRAP


def test_string_metatable_is_locked(vm: LuaVM) -> None:
    assert ok_output(vm, 'function f() return tostring(getmetatable("")) end') == b"false"


@pytest.mark.parametrize("name", ["sin", "cos", "exp", "log", "random", "randomseed", "atan"])
def test_non_deterministic_math_is_absent(vm: LuaVM, name: str) -> None:
    assert ok_output(vm, f"function f() return tostring(math.{name} == nil) end") == b"true"


def test_python_objects_are_unreachable(vm: LuaVM) -> None:
    # The host functions are Lua closures; their Python upvalues need `debug` to reach.
    assert ok_output(vm, "function f() return type(state_get) end") == b"function"
    r = call(vm, "function f() return state_get.__globals end")
    assert r.status is ExecStatus.TRAP


def test_bytecode_is_rejected_at_deploy(vm: LuaVM) -> None:
    with pytest.raises(VmError) as info:
        vm.validate(b"\x1bLuaT\x00\x19\x93\r\n\x1a\n")
    assert info.value.reason == "bytecode"


def test_syntax_error_is_rejected_at_deploy(vm: LuaVM) -> None:
    with pytest.raises(VmError) as info:
        vm.validate(b"function f( return end")
    assert info.value.reason == "bad_module"


def test_too_large_is_rejected_at_deploy() -> None:
    with pytest.raises(VmError) as info:
        LuaVM(VmLimits(max_code_bytes=10)).validate(b"function f() end")
    assert info.value.reason == "too_large"


def test_globals_and_libraries_do_not_survive_a_call(vm: LuaVM) -> None:
    src = """
    counter = (counter or 0) + 1
    function f()
      string.upper = function() return "hacked" end
      table.concat = nil
      return tostring(counter) .. ("a"):upper()
    end
    """
    outs = {ok_output(vm, src) for _ in range(3)}
    assert outs == {b"1A"}


# ---------------------------------------------------------------- determinism sources


def test_pairs_is_sorted(vm: LuaVM) -> None:
    src = """
    function f()
      local t = {zeta = 1, alpha = 2, [10] = 3, [2] = 4, [true] = 5, [false] = 6, mid = 7, [-1] = 8}
      local out = {}
      for k, v in pairs(t) do out[#out + 1] = tostring(k) .. "=" .. v end
      return table.concat(out, ",")
    end
    """
    assert ok_output(vm, src) == b"-1=8,2=4,10=3,alpha=2,mid=7,zeta=1,false=6,true=5"


def test_pairs_rejects_table_keys(vm: LuaVM) -> None:
    r = call(vm, "function f() for k in pairs({[{}] = 1}) do end end")
    assert r.status is ExecStatus.TRAP and "keys must be" in r.error


def test_table_sort_is_deterministic_and_counts_comparisons(vm: LuaVM) -> None:
    src = """
    function f()
      local t = {}
      for i = 1, 500 do t[i] = (i * 7919) % 503 end
      local calls = 0
      table.sort(t, function(a, b) calls = calls + 1 return a < b end)
      return tostring(calls) .. ":" .. t[1] .. ":" .. t[500]
    end
    """
    outs = {call(vm, src) for _ in range(3)}
    assert len(outs) == 1
    (r,) = outs
    assert r.status is ExecStatus.OK


def test_tostring_and_format_never_print_addresses(vm: LuaVM) -> None:
    assert ok_output(vm, "function f() return tostring({}) .. tostring(f) end") == b"tablefunction"
    assert ok_output(vm, 'function f() return string.format("%s|%s", {}, f) end') == b"table|function"
    for fmt in ("%p", "%10p", "%-p"):
        r = call(vm, f'function f() return string.format("{fmt}", {{}}) end')
        assert r.status is ExecStatus.TRAP
    r = call(vm, 'function f() return ("%p"):format({}) end')
    assert r.status is ExecStatus.TRAP


def test_gc_metamethods_are_refused(vm: LuaVM) -> None:
    for mm in ("__gc", "__mode"):
        r = call(vm, f'function f() setmetatable({{}}, {{{mm} = "k"}}) end')
        assert r.status is ExecStatus.TRAP and "not available" in r.error


# ---------------------------------------------------------------- gas


LOOPS = """
function plain() while true do end end
function in_pcall() while true do pcall(function() while true do end end) end end
function in_xpcall() xpcall(function() while true do end end, function(e) while true do end end) return "escaped" end
function handler_swallows() local ok = xpcall(function() while true do end end, function(e) return "nothing" end) return "escaped" end
function in_close()
  local ok = pcall(function()
    local x <close> = setmetatable({}, {__close = function() while true do end end})
    while true do end
  end)
  return "escaped"
end
function error_with_table()
  local ok = pcall(function() while true do end end)
  error({})
end
"""


@pytest.mark.parametrize("entry", ["plain", "in_pcall", "in_xpcall", "handler_swallows", "in_close", "error_with_table"])
def test_out_of_gas_cannot_be_swallowed_and_is_exact(vm: LuaVM, entry: str) -> None:
    results = {call(vm, LOOPS, entry, gas=1_000_000) for _ in range(2)}
    fresh = LuaVM()
    results.add(fresh.execute(fresh.prepare(LOOPS.encode()), entry, b"", MapState(), CTX, 1_000_000))
    assert len(results) == 1
    (r,) = results
    assert r.status is ExecStatus.OUT_OF_GAS and r.gas_used == 1_000_000 and r.output == b""


def test_gas_is_one_per_instruction_in_ticks(vm: LuaVM) -> None:
    src = "function f(n) local x = 0 for i = 1, %d do x = x + i end return tostring(x) end"
    g1, g2, g3 = (call(vm, src % n).gas_used for n in (10_000, 20_000, 30_000))
    assert 20_000 <= g2 - g1 <= 30_000  # 2-3 VM instructions per iteration
    assert abs((g3 - g2) - (g2 - g1)) <= vm.schedule.lua_instructions_per_tick


def test_string_rep_is_metered(vm: LuaVM) -> None:
    r = call(vm, 'function f() local s = string.rep("x", 1000000) return "" end')
    assert r.gas_used >= 1_000_000 // 16


def test_tiny_gas_limit(vm: LuaVM) -> None:
    r = call(vm, "function f() return 'x' end", gas=10)
    assert r.status is ExecStatus.OUT_OF_GAS and r.gas_used == 10


# ---------------------------------------------------------------- memory


MEMORY = """
function table_bomb() local t = {} for i = 1, 1e9 do t[i] = i end end
function string_bomb() local s = "x" while true do s = s .. s end end
function rep_bomb() return string.rep("x", 1 << 40) end
function caught() local ok = pcall(function() local s = "x" while true do s = s .. s end end) return "escaped" end
function churn() for i = 1, 1e9 do local s = string.rep("y", 4 << 20) .. i end end
"""


@pytest.mark.parametrize("entry", ["table_bomb", "string_bomb", "rep_bomb", "caught", "churn"])
def test_memory_bomb_is_stopped_by_the_cap(entry: str) -> None:
    vm = LuaVM(VmLimits(memory_limit_bytes=4 << 20))
    r = vm.execute(vm.prepare(MEMORY.encode()), entry, b"", MapState(), CTX, 50_000_000)
    if entry == "rep_bomb":  # string.rep is charged before it allocates: 2^40 bytes cost more than any limit
        assert r.status is ExecStatus.OUT_OF_GAS, r
    else:
        assert r.status is ExecStatus.TRAP and r.error == "memory limit exceeded", r
        assert r.gas_used < 50_000_000
    # the runtime is still usable afterwards
    r2 = vm.execute(vm.prepare(b"function f() return 'fine' end"), "f", b"", MapState(), CTX, 100_000)
    assert r2.output == b"fine"


# ---------------------------------------------------------------- ABI and failure semantics


ABI = """
function echo(args)
  state_put("k", args)
  state_del("gone")
  emit("topic", args)
  return state_get("k") .. (state_get("base") or "-")
end
function write_then_error() state_put("k", "v") error("boom") end
function write_then_revert() state_put("k", "v") revert("no thanks") end
function revert_in_pcall() local ok = pcall(revert, "r") return "escaped" end
function bad_return() return 42 end
function too_many_writes() for i = 1, 1000 do state_put("k" .. i, "v") end end
function limit_in_pcall() pcall(function() for i = 1, 1000 do state_put("k" .. i, "v") end end) return "escaped" end
function big_key() state_put(string.rep("k", 300), "v") end
function u64s(args) local v = u64.decode(args) v[#v + 1] = v[1] * 2 return u64.encode(v) end
function float_u64() return u64.encode({1.5}) end
"""


def test_abi_roundtrip(vm: LuaVM) -> None:
    r = call(vm, ABI, "echo", b"hi", state=MapState({b"base": b"B", b"gone": b"x"}))
    assert r.status is ExecStatus.OK, r
    assert r.output == b"hiB"
    assert r.writes == ((b"k", b"hi"), (b"gone", None))
    assert r.events == ((b"topic", b"hi"),)


@pytest.mark.parametrize(
    ("entry", "status"),
    [("write_then_error", ExecStatus.TRAP), ("write_then_revert", ExecStatus.REVERT), ("revert_in_pcall", ExecStatus.REVERT),
     ("bad_return", ExecStatus.TRAP), ("too_many_writes", ExecStatus.TRAP), ("limit_in_pcall", ExecStatus.TRAP),
     ("big_key", ExecStatus.TRAP), ("float_u64", ExecStatus.TRAP), ("missing", ExecStatus.INVALID)],
)
def test_failures_write_nothing(vm: LuaVM, entry: str, status: ExecStatus) -> None:
    r = call(vm, ABI, entry)
    assert r.status is status, r
    assert r.writes == () and r.events == ()
    if entry == "write_then_revert":
        assert r.output == b"no thanks"


def test_u64_helpers(vm: LuaVM) -> None:
    args = (5).to_bytes(8, "little") + (7).to_bytes(8, "little")
    r = call(vm, ABI, "u64s", args)
    assert r.output == args + (10).to_bytes(8, "little")


def test_args_too_large_is_invalid(vm: LuaVM) -> None:
    assert call(vm, ABI, "echo", b"x" * (64 * 1024 + 1)).status is ExecStatus.INVALID


def test_string_order_is_bytewise(vm: LuaVM) -> None:
    src = 'function f() local t = {"b", "B", "a", "\\xff", "A"} table.sort(t) return table.concat(t, ",") end'
    assert ok_output(vm, src) == b"A,B,a,b,\xff"


class _BrokenState:
    def get(self, key: bytes) -> bytes | None:
        raise RuntimeError("disk on fire")


def test_host_failure_is_not_swallowed_by_pcall(vm: LuaVM) -> None:
    src = 'function f() local ok = pcall(state_get, "k") return "escaped" end'
    with pytest.raises(RuntimeError, match="disk on fire"):
        vm.execute(vm.prepare(src.encode()), "f", b"", _BrokenState(), CTX, GAS)


def test_float_costs_are_integers(vm: LuaVM) -> None:
    r = call(vm, 'function f() local s = string.rep("ab", 1e3) return s:sub(1, 2) end')
    assert r.status is ExecStatus.OK and isinstance(r.gas_used, int) and r.output == b"ab"
    r = call(vm, 'function f() return string.rep("ab", 1/0) end')
    assert r.status is ExecStatus.OUT_OF_GAS and r.gas_used == GAS


@pytest.mark.parametrize(
    "expr",
    ['string.byte(big, 1, -1)', '("x"):rep(10):byte(1, -1) and string.byte(big, 1, -1)', 'tonumber(big)',
     'string.unpack(string.rep("b", 200000), big)', 'string.format(string.rep("%%", 100000))'],
)
def test_unallocating_c_work_is_metered(vm: LuaVM, expr: str) -> None:
    src = f'big = string.rep("7", 200000)\nfunction f() local x = {expr} return "" end\nfunction g() return "" end'
    p = vm.prepare(src.encode())
    base = vm.execute(p, "g", b"", MapState(), CTX, GAS).gas_used
    r = vm.execute(p, "f", b"", MapState(), CTX, GAS)
    assert r.gas_used - base >= 100_000, r
