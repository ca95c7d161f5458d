"""The shipped service agreements, each in both backends (C -> WebAssembly, and Lua).

`source(name, vm_id)` returns the deployable code: ``<name>.wasm`` for ``wasm`` (built
from ``<name>.c`` by `node.vm.contracts.build`), ``<name>.lua`` for ``lua``.
"""

from __future__ import annotations

from importlib import resources

__all__ = ["AGREEMENTS", "ENTRIES", "source"]

AGREEMENTS = ("warranty", "sla", "refund")
ENTRIES = {"warranty": "claim_eligibility", "sla": "sla_penalty", "refund": "return_decision"}
_SUFFIX = {"wasm": "wasm", "lua": "lua"}


def source(name: str, vm_id: str) -> bytes:
    if name not in AGREEMENTS or vm_id not in _SUFFIX:
        raise KeyError(f"no agreement {name!r} for vm {vm_id!r}")
    return resources.files(__package__).joinpath(f"{name}.{_SUFFIX[vm_id]}").read_bytes()
