"""The shipped service agreements, each in both backends (C -> WebAssembly, and Lua).

`source(name, vm_id)` returns the deployable code: ``<name>.wasm`` for ``wasm`` (built
from ``<name>.c`` by `node.vm.contracts.build`), ``<name>.lua`` for ``lua``.

``service`` is the three agreements in one contract (a policy names one contract, which
answers all three hooks): ``service.c`` includes the three C files; the Lua form is the
three Lua files concatenated (each keeps its helpers as chunk locals).
"""

from __future__ import annotations

from importlib import resources

__all__ = ["AGREEMENTS", "ENTRIES", "SERVICE", "source"]

AGREEMENTS = ("warranty", "sla", "refund")
SERVICE = "service"
ENTRIES = {"warranty": "claim_eligibility", "sla": "sla_penalty", "refund": "return_decision"}
_SUFFIX = {"wasm": "wasm", "lua": "lua"}


def source(name: str, vm_id: str) -> bytes:
    if name not in (*AGREEMENTS, SERVICE) or vm_id not in _SUFFIX:
        raise KeyError(f"no agreement {name!r} for vm {vm_id!r}")
    files = resources.files(__package__)
    if name == SERVICE and vm_id == "lua":
        return b"\n".join(files.joinpath(f"{part}.lua").read_bytes() for part in AGREEMENTS)
    return files.joinpath(f"{name}.{_SUFFIX[vm_id]}").read_bytes()
