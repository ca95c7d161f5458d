"""Contract VMs: the `ContractVM` boundary (`api`), the wasmtime and Lua 5.4 backends, and
service agreements run as contracts (`agreements`). See docs/CONTRACTS.md."""

from afterchain.node.app.vm.api import (
    ABI_VERSION,
    CallContext,
    ContractVM,
    ExecResult,
    ExecStatus,
    MapState,
    Prepared,
    StateView,
    VmError,
    VmLimits,
    code_hash,
    get_vm,
    registered_vms,
)

__all__ = [
    "ABI_VERSION",
    "CallContext",
    "ContractVM",
    "ExecResult",
    "ExecStatus",
    "MapState",
    "Prepared",
    "StateView",
    "VmError",
    "VmLimits",
    "code_hash",
    "get_vm",
    "registered_vms",
]
