"""What `pip install .` puts on a machine: one package, `afterchain`, and nothing else at the top
of site-packages (no `node`, `protocol` or `consensus` of our own to collide with other
distributions), with its data files and its console script."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_list_names_every_folder() -> None:
    """pyproject.toml lists the packages by hand (the folders are mapped under `afterchain`);
    a new folder with an __init__.py that is not listed would be left out of the wheel."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {
        "afterchain." + ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("node", "protocol", "consensus")
        for p in (ROOT / top).rglob("__init__.py")
    }
    assert listed == folders


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # built from a copy: setuptools keeps a build/ folder beside the sources, and a stale one
    # (a module since removed) would end up in the wheel
    src = tmp_path_factory.mktemp("src") / "afterchain"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "build", "dist", ".cluster", "*.egg-info",
                                                             "__pycache__", ".mypy_cache", ".ruff_cache", ".hypothesis"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check", "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (found,) = out.glob("afterchain-*.whl")
    return found


def test_the_wheel_holds_one_top_level_name(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"afterchain", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    for wanted in (
        "afterchain/node/cli.py",
        "afterchain/protocol/codec.py",
        "afterchain/consensus/replica.py",
        "afterchain/node/app/vm/lua_prelude.lua",
        "afterchain/node/app/vm/contracts/warranty.wasm",
        "afterchain/node/http/dashboard/index.html",
        "afterchain/node/http/swagger_ui/swagger-ui-bundle.js",
        "afterchain/protocol/py.typed",
    ):
        assert wanted in names, f"{wanted} missing from the wheel"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "afterchain = afterchain.node.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


@pytest.mark.slow
def test_a_fresh_virtualenv_runs_the_console_script_and_the_modules(wheel: Path, tmp_path: Path) -> None:
    """The whole install as a company's server would do it: a new virtualenv, the wheel with
    its dependencies from the index, then the entry points, run outside the repository."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)], check=True, timeout=900)
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    for name in ("node", "protocol", "consensus"):
        assert not (site / name).exists(), f"site-packages has a top-level {name}"
    assert (site / "afterchain" / "node" / "cli.py").exists()
    run = {"cwd": tmp_path, "capture_output": True, "text": True, "timeout": 120}
    help_text = subprocess.run([str(venv / "bin" / "afterchain"), "--help"], **run)  # type: ignore[call-overload]
    assert help_text.returncode == 0 and "node" in help_text.stdout
    sim = subprocess.run([str(py), "-m", "afterchain.consensus.sim", "--seeds", "0-0", "--nodes", "4"], **run)  # type: ignore[call-overload]
    assert sim.returncode == 0, sim.stdout + sim.stderr
    key = subprocess.run([str(py), "-m", "afterchain.node.cli", "keygen", "--out", str(tmp_path / "k.key")], **run)  # type: ignore[call-overload]
    assert key.returncode == 0 and (tmp_path / "k.key").exists(), key.stderr
