"""The rooms of the house and what may import what (docs/ARCHITECTURE.md, "Import rules").

Every import of every module under node/, protocol/ and consensus/ is read from its syntax
tree, the lazy ones inside functions included, and checked against the table below. The
table is the rule; docs/ARCHITECTURE.md states it in words.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# room -> the rooms it may import (its own room is always allowed)
ALLOWED: dict[str, set[str]] = {
    "protocol": set(),
    "consensus": {"protocol"},
    "common": {"protocol"},
    "app": {"protocol", "common"},
    "transport": {"protocol", "common"},
    "runtime": {"protocol", "consensus", "common", "app", "transport"},
    "http": {"protocol", "common", "app", "runtime"},
    "client": {"protocol", "common"},
    "tools": {"protocol", "common", "client"},
    # the process entries assemble every production room
    "entry": {"protocol", "consensus", "common", "app", "transport", "runtime", "http", "client", "tools"},
    # benchmarks measure the internals; test-only behaviours are injected into the runtime
    "bench": {"protocol", "consensus", "common", "app", "transport", "runtime", "http", "client", "tools", "entry"},
    "testing": {"protocol", "consensus", "common", "app", "transport", "runtime", "http", "client", "tools", "entry"},
}
ENTRY_MODULES = {"afterchain.node", "afterchain.node.cli", "afterchain.node.server"}
# data any room may read: the sample service agreements shipped with the application (the
# demo and the CLI deploy them)
SHARED_DATA = {"afterchain.node.app.vm.contracts"}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = ["afterchain", *rel.parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def room_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "afterchain" or len(parts) < 2:
        return None
    if parts[1] in ("protocol", "consensus"):
        return parts[1]
    if module in ENTRY_MODULES:
        return "entry"
    if len(parts) >= 3 and parts[2] in ALLOWED:
        return parts[2]
    return "entry" if parts[1] == "node" and len(parts) == 3 else None


def imports_of(path: Path, module: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # `from afterchain.node import runtime` names a room as well
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names if room_of(target) is None]
    return found


def all_modules() -> list[tuple[Path, str]]:
    return [(p, module_name(p)) for d in ("node", "protocol", "consensus") for p in sorted((ROOT / d).rglob("*.py"))]


def test_every_module_is_in_a_room() -> None:
    homeless = [m for _, m in all_modules() if room_of(m) is None]
    assert homeless == [], f"modules outside every room of docs/ARCHITECTURE.md: {homeless}"


def test_no_module_imports_across_the_rules() -> None:
    bad = []
    for path, module in all_modules():
        room = room_of(module)
        for line, target in imports_of(path, module):
            if target.split(".")[0] in ("node", "protocol", "consensus"):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target} (use the installed name afterchain.*)")
                continue
            to = room_of(target)
            if to is None or to == room or room is None or target in SHARED_DATA:
                continue
            if to not in ALLOWED[room]:
                bad.append(f"{path.relative_to(ROOT)}:{line}: {room} imports {target} ({to})")
    assert bad == [], "imports that break the rules of docs/ARCHITECTURE.md:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    ("importer", "target", "allowed"),
    [
        ("afterchain.node.app.ledger", "afterchain.node.runtime.runner", False),
        ("afterchain.node.app.ledger", "afterchain.consensus.messages", False),
        ("afterchain.node.client.sdk", "afterchain.node.server", False),
        ("afterchain.node.tools.demo", "afterchain.node.runtime.config", False),
        ("afterchain.node.runtime.runner", "afterchain.node.testing.byzantine", False),
        ("afterchain.node.runtime.runner", "afterchain.node.app.ledger", True),
        ("afterchain.node.http.writes", "afterchain.node.runtime.mempool", True),
    ],
)
def test_the_rules_can_fail(importer: str, target: str, allowed: bool) -> None:
    """The checker itself: a forbidden edge is caught, an allowed one is not."""
    assert (room_of(target) in ALLOWED[room_of(importer) or ""]) is allowed


def test_testing_is_never_imported_by_production() -> None:
    users = [
        f"{path.relative_to(ROOT)}:{line}"
        for path, module in all_modules()
        if room_of(module) != "testing"
        for line, target in imports_of(path, module)
        if room_of(target) == "testing"
    ]
    assert users == []
