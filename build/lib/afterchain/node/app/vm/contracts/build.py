"""Build the C agreements to WebAssembly, reproducibly (ABI v1).

    .venv/bin/python -m afterchain.node.app.vm.contracts.build          # rebuild every *.wasm beside its .c
    .venv/bin/python -m afterchain.node.app.vm.contracts.build --check  # rebuild into a temp dir, compare bytes

Toolchain: Zig's clang via the `ziglang` PyPI package (pinned in the `dev` extras), so the
same compiler is used everywhere. Flags: wasm32-freestanding, no libc, MVP instruction set
plus mutable-globals, -O2, 16 KiB stack, 128 KiB memory, no entry, stack pointer and
table exported (lets the VM reuse instances), all custom sections stripped (no paths or
build ids in the output).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = ("warranty", "sla", "refund", "service")
FLAGS = (
    "--target=wasm32-freestanding",
    "-nostdlib",
    "-O2",
    "-mcpu=mvp+mutable_globals",
    "-ffreestanding",
    "-fno-builtin",
    "-Wall",
    "-Werror",
    "-Wl,--no-entry",
    "-Wl,--export=__stack_pointer",
    "-Wl,--export-table",
    "-Wl,-z,stack-size=16384",
    "-Wl,--initial-memory=131072",
    "-Wl,--max-memory=131072",
    "-Wl,--strip-all",
)


def compile_one(name: str, out_dir: Path) -> Path:
    out = out_dir / f"{name}.wasm"
    cmd = [sys.executable, "-m", "ziglang", "cc", *FLAGS, "-o", str(out), f"{name}.c"]
    done = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise SystemExit(f"building {name}.wasm failed:\n{done.stderr}")
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    check = "--check" in args
    if not check:
        for name in SOURCES:
            compile_one(name, HERE)
            print(f"built {name}.wasm")
        return 0
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in SOURCES:
            built = compile_one(name, Path(tmp)).read_bytes()
            committed = (HERE / f"{name}.wasm").read_bytes()
            same = built == committed
            bad += not same
            print(f"{name}.wasm: {'matches' if same else 'DIFFERS'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
