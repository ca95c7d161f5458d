"""The Lua 5.4 backend (VM id ``lua``, version 1) through lupa, with the hardened prelude.

Owns: one `LuaRuntime` per prepared contract (LRU-cached by code hash), the prelude
(`lua_prelude.lua`: whitelisted environment, sorted `pairs`, metered and un-swallowable
gas, the ABI v1 host functions), and the mapping of prelude outcomes to `ExecResult`.

Contract ABI v1 in Lua: the chunk defines global functions; an entry is called as
``entry(args)`` with the args as a Lua string (bytes) and returns a string (the output)
or nil. ``revert(reason)`` ends the call with REVERT. Host functions: ``state_get(key)``
(string or nil), ``state_put(key, value)``, ``state_del(key)``, ``emit(topic, data)``;
helpers ``u64.decode(s)`` / ``u64.encode(t)`` for little-endian u64 vectors.

Invariants:
- Contract code is compiled from text only (no bytecode), in an environment that holds
  only the whitelist; a fresh environment per call (nothing survives a call but state
  writes). No load/require/dofile/os/io/debug/coroutine/collectgarbage/next/print.
- Numbers: integers are 64-bit; floats exist (``/``, ``^``, ``math.sqrt``) and are
  IEEE-754 doubles. Only exactly-rounded float operations are offered (no libm
  transcendental functions); ``^`` uses the C library's pow, so agreements use integer
  arithmetic only (documented). Args, state values and outputs are byte strings, so a
  float can only leave a call through an explicit conversion the contract writes.
- Gas: `GasSchedule.lua_call_base` + 1 per VM instruction (charged in ticks of
  `lua_instructions_per_tick` by a count hook) + host-call costs. Out of gas reports
  gas_used = gas_limit. `pcall`/`xpcall` cannot catch out of gas, memory exhaustion,
  limit violations or revert.
- Known gap: comparing two long strings is one instruction doing O(length) work; it is
  bounded by the memory cap, not metered (documented in docs/CONTRACTS.md). Unallocating
  C functions with length-proportional work are wrapped and charged.
- Memory: the runtime is collected before each call, then capped at its current use plus
  `memory_limit_bytes`; the collector is stopped during the call. Near-cap outcomes may
  depend on the runtime's history by a few KiB (string-table size): agreements should
  stay far below the cap (documented).
- Single-threaded: one call at a time per `LuaVM`.
"""

from __future__ import annotations

import locale
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import lupa.lua54 as lupa

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

__all__ = ["VM_ID", "LuaVM"]

VM_ID = "lua"
VERSION = ABI_VERSION
"""Version 1 = host ABI v1 + gas schedule v1 + `DEFAULT_LIMITS`, on Lua 5.4 through lupa 2.x
(the instruction count is Lua 5.4's; another Lua minor version is a new VM version)."""
PREPARED_CACHE_SIZE = 64
ENTRY_NAME_MAX = 64
_RUNTIME_MEMORY_BYTES = 256 * 1024 * 1024  # the runtime's own cap outside calls

_PRELUDE = resources.files(__package__).joinpath("lua_prelude.lua").read_text(encoding="utf-8")


def _require_c_locale() -> None:
    """Lua compares strings with strcoll and reads numbers with strtod: both follow the C
    locale only if nobody changed LC_COLLATE / LC_NUMERIC (Python leaves them alone)."""
    for category, name in ((locale.LC_COLLATE, "LC_COLLATE"), (locale.LC_NUMERIC, "LC_NUMERIC")):
        current = locale.setlocale(category)
        if current not in ("C", "POSIX"):
            raise InvariantError(f"{name} is {current!r}; the Lua VM needs the C locale to be deterministic")


def _deny_attributes(obj: object, name: object, is_setting: bool) -> object:
    raise AttributeError("no attribute access from contracts")


@dataclass(slots=True)
class _Runtime:
    lua: Any
    chunk: Any
    run: Any
    reset: Any


class _Frame:
    __slots__ = ("host_error", "overlay")

    def __init__(self, overlay: WriteOverlay) -> None:
        self.overlay = overlay
        self.host_error: BaseException | None = None


class LuaVM:
    """`ContractVM` over Lua 5.4. See the module docstring for the ABI and invariants."""

    vm_id = VM_ID
    version = VERSION

    def __init__(self, limits: VmLimits = DEFAULT_LIMITS, schedule: GasSchedule = GAS_SCHEDULE_V1) -> None:
        self.limits = limits
        self.schedule = schedule
        self._frame: _Frame | None = None
        self._cache: OrderedDict[bytes, Prepared] = OrderedDict()
        _require_c_locale()

    def allowed(self) -> VmAllowed:
        return VmAllowed(vm_id=self.vm_id, version=self.version)

    # ------------------------------------------------------------------ runtime

    def _new_runtime(self, code: bytes) -> _Runtime:
        lua = lupa.LuaRuntime(
            encoding=None,
            register_eval=False,
            register_builtins=False,
            unpack_returned_tuples=True,
            attribute_filter=_deny_attributes,
            max_memory=_RUNTIME_MEMORY_BYTES,
        )
        s = self.schedule
        prelude = lua.compile(_PRELUDE)
        compile_, run, reset = prelude(
            self._py_get, self._py_put, self._py_del, self._py_emit,
            s.lua_instructions_per_tick, s.lua_call_base,
            s.host_call, s.state_get, s.state_put, s.state_del, s.emit, s.per_byte,
        )
        chunk, err = compile_(code)
        if chunk is None:
            text = err.decode("utf-8", "replace") if isinstance(err, bytes) else str(err)
            raise VmError("bad_module", clip_error(text, self.limits))
        lua.globals().python = None
        return _Runtime(lua=lua, chunk=chunk, run=run, reset=reset)

    # ------------------------------------------------------------------ deploy

    def validate(self, code: bytes) -> None:
        self._check(code)
        self._new_runtime(code)

    def _check(self, code: bytes) -> None:
        if len(code) > self.limits.max_code_bytes:
            raise VmError("too_large", f"{len(code)} bytes exceed the limit of {self.limits.max_code_bytes}")
        if code[:1] == b"\x1b":
            raise VmError("bytecode", "precompiled Lua bytecode is not accepted; deploy source text")
        try:
            code.decode("utf-8")
        except UnicodeDecodeError:
            raise VmError("bad_module", "source is not UTF-8") from None

    def prepare(self, code: bytes) -> Prepared:
        h = code_hash(code)
        hit = self._cache.get(h)
        if hit is not None:
            self._cache.move_to_end(h)
            return hit
        self._check(code)
        prepared = Prepared(vm_id=self.vm_id, code_hash=h, handle=self._new_runtime(code))
        self._cache[h] = prepared
        while len(self._cache) > PREPARED_CACHE_SIZE:
            self._cache.popitem(last=False)
        return prepared

    # ------------------------------------------------------------------ calls

    def execute(
        self, prepared: Prepared, entry: str, args: bytes, state: StateView, ctx: CallContext, gas_limit: int
    ) -> ExecResult:
        rt = prepared.handle
        if not isinstance(rt, _Runtime) or prepared.vm_id != self.vm_id:
            raise InvariantError("prepared code belongs to another VM")
        gas_limit = min(gas_limit, self.limits.max_gas_per_call)
        if not entry.isidentifier() or not entry.isascii() or len(entry) > ENTRY_NAME_MAX:
            return ExecResult(ExecStatus.INVALID, 0, error="bad entry name")
        if len(args) > self.limits.max_args_bytes:
            return ExecResult(ExecStatus.INVALID, 0, error="args too large")
        overlay = WriteOverlay(state, self.limits)
        frame = self._frame = _Frame(overlay)
        lua = rt.lua
        try:
            lua.gccollect()
            lua.set_max_memory(self.limits.memory_limit_bytes)
            status, message, output, used = rt.run(rt.chunk, entry.encode(), args, gas_limit)
        except lupa.LuaMemoryError:
            rt.reset()
            return ExecResult(ExecStatus.TRAP, gas_limit, error="memory limit exceeded")
        except lupa.LuaError as exc:  # the prelude itself failed: our bug, not the contract's
            rt.reset()
            raise InvariantError(f"lua prelude failed: {exc}") from exc
        finally:
            self._frame = None
            lua.set_max_memory(_RUNTIME_MEMORY_BYTES)
        if frame.host_error is not None:  # the state view failed: the host's fault, never the contract's
            raise frame.host_error
        st = ExecStatus(status.decode())
        msg = clip_error(message.decode("utf-8", "replace"), self.limits)
        if st is ExecStatus.OK:
            if len(output) > self.limits.max_output_bytes:
                return ExecResult(ExecStatus.TRAP, int(used), error="limit: output too large")
            return overlay.result(int(used), bytes(output))
        if st is ExecStatus.REVERT:
            return ExecResult(st, int(used), output=bytes(output)[: self.limits.max_output_bytes], error="revert")
        return ExecResult(st, int(used), error=msg)

    # ------------------------------------------------------------------ host functions (called from Lua)

    def _host(self, op: Callable[[WriteOverlay], object]) -> tuple[object, bytes | None]:
        """Run a host operation; a limit becomes an abort message for the prelude, and any
        other exception (the host's bug) is kept and re-raised after the call, so that no
        contract `pcall` can swallow it."""
        frame = self._frame
        if frame is None:
            raise InvariantError("host function called outside a call")
        try:
            return op(frame.overlay), None
        except LimitExceeded as exc:
            return None, str(exc).encode()
        except Exception as exc:
            frame.host_error = exc
            return None, b"host error"

    def _py_get(self, key: bytes) -> tuple[object, bytes | None]:
        return self._host(lambda o: o.get(bytes(key)))

    def _py_put(self, key: bytes, value: bytes) -> bytes | None:
        return self._host(lambda o: o.put(bytes(key), bytes(value)))[1]

    def _py_del(self, key: bytes) -> bytes | None:
        return self._host(lambda o: o.put(bytes(key), None))[1]

    def _py_emit(self, topic: bytes, data: bytes) -> bytes | None:
        return self._host(lambda o: o.emit(bytes(topic), bytes(data)))[1]


register_vm(VM_ID, LuaVM)
