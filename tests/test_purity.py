"""protocol/ and consensus/ stay pure: no I/O, clock or randomness imports.

Only the seeded simulator (consensus/sim) may import `random`, and only to create its own
`random.Random(seed)`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"trio", "time", "random", "socket", "asyncio", "os", "threading", "subprocess", "datetime",
             "select", "selectors", "io", "pathlib", "shutil", "tempfile", "secrets", "uuid", "node", "libp2p",
             "rocksdict", "httpx", "structlog", "logging"}
SIM_ALLOWED = {"random", "argparse", "sys", "time"}


def _modules() -> list[Path]:
    return sorted(p for d in ("protocol", "consensus") for p in (ROOT / d).rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_layers_import_no_io(path: Path) -> None:
    in_sim = "sim" in path.relative_to(ROOT).parts or path.stem.startswith("sim")
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module.split(".")[0]]
        for name in names:
            if name in FORBIDDEN and not (in_sim and name in SIM_ALLOWED):
                raise AssertionError(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
