"""The contract VM boundary: what every backend takes and returns, limits, gas schedule.

Owns: `ContractVM` (the protocol a backend implements), `ExecResult` and its statuses,
`CallContext`, `StateView`, the versioned host ABI / gas schedule (`GasSchedule`,
`VmLimits`), the
`VmError` raised by `validate`/`prepare`, and the registry of backends by VM id.

Invariants:
- `execute` never raises for anything the contract does: every contract fault (trap,
  revert, out of gas, memory cap, bad ABI use) is an `ExecResult` whose `writes` and
  `events` are empty. Only our own bugs raise (`InvariantError`).
- The result is a pure function of (code, entry, args, state reads, gas limit, VM id,
  VM version): no clock, no randomness, no hash-seed or address dependence.
- `writes` are ordered by the first write of each key during the call; a later write to
  the same key replaces its value in place; `None` is a deletion.
- Reads see the call's own earlier writes (a write overlay over the `StateView`).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from afterchain.protocol.genesis import VmAllowed

__all__ = [
    "ABI_VERSION",
    "DEFAULT_LIMITS",
    "GAS_SCHEDULE_V1",
    "CallContext",
    "ContractVM",
    "ExecResult",
    "ExecStatus",
    "GasSchedule",
    "MapState",
    "Prepared",
    "StateView",
    "VmError",
    "VmLimits",
    "WriteOverlay",
    "code_hash",
    "get_vm",
    "register_vm",
    "registered_vms",
]

ABI_VERSION = 1
"""Version of the host ABI and gas schedule together; part of every VM's `version`."""


class VmError(Exception):
    """Code rejected by `validate`/`prepare` (at deploy). `reason` is stable, `message` human."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(f"{reason}: {message}")


class ExecStatus(enum.StrEnum):
    OK = "ok"
    REVERT = "revert"  # the contract refused (its output is the reason); nothing written
    OUT_OF_GAS = "out_of_gas"
    TRAP = "trap"  # the contract faulted: wasm trap, Lua error, memory cap, limit exceeded
    INVALID = "invalid"  # the call itself is unusable: unknown entry, args too large, bad code


@dataclass(frozen=True, slots=True)
class ExecResult:
    status: ExecStatus
    gas_used: int
    output: bytes = b""
    writes: tuple[tuple[bytes, bytes | None], ...] = ()
    events: tuple[tuple[bytes, bytes], ...] = ()
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is ExecStatus.OK

    def digest(self) -> bytes:
        """A hash of everything consensus-relevant in the result (for determinism checks)."""
        h = hashlib.sha256()
        for part in (self.status.value.encode(), str(self.gas_used).encode(), self.output, self.error.encode()):
            h.update(len(part).to_bytes(8, "little") + part)
        for k, v in self.writes:
            h.update(b"w" + len(k).to_bytes(8, "little") + k + (b"-" if v is None else len(v).to_bytes(8, "little") + v))
        for t, d in self.events:
            h.update(b"e" + len(t).to_bytes(8, "little") + t + len(d).to_bytes(8, "little") + d)
        return h.digest()


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who calls what, when (block time). Not visible to ABI v1 contracts: hooks pass what
    a contract needs in its args. Kept for the host (logs, receipts)."""

    contract_id: bytes = b""
    caller: bytes = b""
    height: int = 0
    time_ms: int = 0


@runtime_checkable
class StateView(Protocol):
    """Read access to one contract's state (keys already scoped to the contract)."""

    def get(self, key: bytes) -> bytes | None: ...


class MapState:
    """A `StateView` over a dict (tests, local runs, the bench)."""

    def __init__(self, data: dict[bytes, bytes] | None = None) -> None:
        self.data: dict[bytes, bytes] = dict(data or {})

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def apply(self, writes: tuple[tuple[bytes, bytes | None], ...]) -> None:
        for k, v in writes:
            if v is None:
                self.data.pop(k, None)
            else:
                self.data[k] = v


@dataclass(frozen=True, slots=True)
class GasSchedule:
    """Gas costs of ABI v1. WASM instructions cost wasmtime's fuel (1 per instruction,
    0 for nop/drop/block/loop/end-like ones); Lua instructions cost 1 each, charged in
    blocks of `lua_instructions_per_tick` by the count hook."""

    version: int = 1
    host_call: int = 100  # any host function call
    state_get: int = 200
    state_put: int = 1_000
    state_del: int = 500
    emit: int = 500
    per_byte: int = 1  # per byte of key, value, topic, data, args read, output written
    lua_instructions_per_tick: int = 100
    lua_call_base: int = 1_000  # per Lua call (environment set up)
    wasm_call_base: int = 1_000  # per WASM call


GAS_SCHEDULE_V1 = GasSchedule()


@dataclass(frozen=True, slots=True)
class VmLimits:
    max_code_bytes: int = 256 * 1024
    memory_limit_bytes: int = 16 * 1024 * 1024  # per call: wasm linear memory / Lua allocation
    max_gas_per_call: int = 50_000_000
    max_args_bytes: int = 64 * 1024
    max_output_bytes: int = 64 * 1024
    max_key_bytes: int = 256
    max_value_bytes: int = 64 * 1024
    max_writes_per_call: int = 256  # = node.app.policies.MAX_WRITES
    max_events_per_call: int = 64
    max_topic_bytes: int = 64
    max_event_data_bytes: int = 4 * 1024
    max_error_bytes: int = 256


DEFAULT_LIMITS = VmLimits()


def code_hash(code: bytes) -> bytes:
    """Contract code is stored and addressed by SHA-256 of its bytes."""
    return hashlib.sha256(code).digest()


@dataclass(slots=True)
class Prepared:
    """Code validated and compiled by one backend, cached by code hash."""

    vm_id: str
    code_hash: bytes
    handle: object = field(repr=False)


class ContractVM(Protocol):
    vm_id: str
    version: int
    limits: VmLimits
    schedule: GasSchedule

    def allowed(self) -> VmAllowed:
        """This VM as genesis lists it (`protocol.genesis.VmAllowed`: vm id + version)."""

    def validate(self, code: bytes) -> None:
        """Raise `VmError` with a reason unless `code` is deployable."""

    def prepare(self, code: bytes) -> Prepared:
        """Validate and compile (cached by code hash). Raises `VmError`."""

    def execute(
        self, prepared: Prepared, entry: str, args: bytes, state: StateView, ctx: CallContext, gas_limit: int
    ) -> ExecResult:
        """Run `entry(args)`; never raises for contract faults."""


class WriteOverlay:
    """The writes and events of one call, with the limits of ABI v1. Raises `_Limit` on
    excess; backends turn that into a TRAP."""

    __slots__ = ("_base", "events", "limits", "writes")

    def __init__(self, base: StateView, limits: VmLimits) -> None:
        self._base = base
        self.limits = limits
        self.writes: dict[bytes, bytes | None] = {}
        self.events: list[tuple[bytes, bytes]] = []

    def get(self, key: bytes) -> bytes | None:
        self._check_key(key)
        if key in self.writes:
            return self.writes[key]
        return self._base.get(key)

    def put(self, key: bytes, value: bytes | None) -> None:
        self._check_key(key)
        if value is not None and len(value) > self.limits.max_value_bytes:
            raise LimitExceeded(f"value of {len(value)} bytes exceeds {self.limits.max_value_bytes}")
        if key not in self.writes and len(self.writes) >= self.limits.max_writes_per_call:
            raise LimitExceeded(f"more than {self.limits.max_writes_per_call} keys written")
        self.writes[key] = value

    def emit(self, topic: bytes, data: bytes) -> None:
        if len(topic) > self.limits.max_topic_bytes or len(data) > self.limits.max_event_data_bytes:
            raise LimitExceeded("event topic or data too large")
        if len(self.events) >= self.limits.max_events_per_call:
            raise LimitExceeded(f"more than {self.limits.max_events_per_call} events")
        self.events.append((topic, data))

    def _check_key(self, key: bytes) -> None:
        if not key or len(key) > self.limits.max_key_bytes:
            raise LimitExceeded(f"key length {len(key)} not in 1..{self.limits.max_key_bytes}")

    def result(self, gas_used: int, output: bytes) -> ExecResult:
        return ExecResult(
            status=ExecStatus.OK,
            gas_used=gas_used,
            output=output,
            writes=tuple(self.writes.items()),
            events=tuple(self.events),
        )


class LimitExceeded(Exception):
    """A contract broke a per-call limit (key/value/event size or count): a TRAP."""


def clip_error(text: str, limits: VmLimits) -> str:
    data = text.encode("utf-8", "replace")[: limits.max_error_bytes]
    return data.decode("utf-8", "ignore")


# --------------------------------------------------------------------------- registry

_REGISTRY: dict[str, Callable[[], ContractVM]] = {}


def register_vm(vm_id: str, factory: Callable[[], ContractVM]) -> None:
    if vm_id in _REGISTRY:
        raise ValueError(f"vm {vm_id} registered twice")
    _REGISTRY[vm_id] = factory


def registered_vms() -> tuple[str, ...]:
    _load_builtin()
    return tuple(sorted(_REGISTRY))


def get_vm(vm_id: str, version: int | None = None) -> ContractVM:
    """A new backend instance for `vm_id`; `version` (from genesis) must match ours."""
    _load_builtin()
    factory = _REGISTRY.get(vm_id)
    if factory is None:
        raise VmError("unknown_vm", f"no contract VM with id {vm_id!r} (have {sorted(_REGISTRY)})")
    vm = factory()
    if version is not None and version != vm.version:
        raise VmError("version_mismatch", f"genesis wants {vm_id} version {version}, this node runs {vm.version}")
    return vm


def _load_builtin() -> None:
    from afterchain.node.app.vm import lua as _lua  # noqa: F401  (registers "lua")
    from afterchain.node.app.vm import wasm as _wasm  # noqa: F401  (registers "wasm")
