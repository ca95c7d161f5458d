"""The server packaging (docs/deploy/): the compose file, the init script, the image's
default config and the systemd unit checked against the CLI (every subcommand, flag,
AFTERCHAIN_* variable and path they use exists); the local-network tool's default
directory is the working directory. Where a container runtime answers, the image is built
and the compose network started; where none does, that test says so and skips."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from afterchain.node.cli import cli
from afterchain.node.common.keys import ENV_PASSPHRASE, ENV_PASSPHRASE_FILE
from afterchain.node.runtime.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "docs" / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
UNIT = (DEPLOY / "afterchain.service").read_text()
DOCKERFILE = (DEPLOY / "Dockerfile").read_text()
KEY_VARS = {ENV_PASSPHRASE, ENV_PASSPHRASE_FILE}


def parse_cli(args: list[str]) -> click.Context:
    """Parse `afterchain ARGS` as click would (subcommands, flags, choices), without running."""
    cmd: click.Command = cli
    ctx = click.Context(cli, info_name="afterchain")
    rest = list(args)
    while isinstance(cmd, click.Group):
        assert rest and not rest[0].startswith("-"), f"{args}: a subcommand of {ctx.command_path!r} is missing"
        name, rest = rest[0], rest[1:]
        sub = cmd.get_command(ctx, name)
        assert sub is not None, f"{args}: no command {name!r} in {ctx.command_path!r}"
        ctx = click.Context(sub, info_name=name, parent=ctx) if isinstance(sub, click.Group) else sub.make_context(name, rest, parent=ctx)
        cmd = sub
    return ctx


def test_parse_cli_catches_what_does_not_exist() -> None:
    assert parse_cli(["node", "run", "--config", "/x.toml"]).params == {"config_path": Path("/x.toml")}
    for bad in (["node", "walk"], ["node", "run", "--confg", "x"], ["keygen", "--out", "k", "--kdf", "huge"]):
        with pytest.raises((click.UsageError, AssertionError)):
            parse_cli(bad)


def check_env(name: str, value: str, sample: Path) -> None:
    assert name.startswith("AFTERCHAIN_"), name
    if name in KEY_VARS:
        return
    try:
        load_config(sample, check_files=False, env={name: value})
    except ConfigError as exc:
        raise AssertionError(f"{name}={value}: {exc}") from None


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    p = tmp_path / "node.toml"
    p.write_text((DEPLOY / "node.toml").read_text())
    return p


def test_compose_services_use_real_commands_variables_and_mounts(sample: Path) -> None:
    services: dict[str, Any] = COMPOSE["services"]
    assert {"v1", "v2", "v3", "v4", "m1", "init"} <= set(services)
    assert re.search(r'ENTRYPOINT \["afterchain"\]', DOCKERFILE)
    for name, svc in services.items():
        if name == "init":
            assert svc["entrypoint"][0] == "afterchain-init-network"
            assert "COPY docs/deploy/init-network.sh /usr/local/bin/afterchain-init-network" in DOCKERFILE
            continue
        ctx = parse_cli(svc["command"])
        config = str(ctx.params["config_path"])
        mounts = {v.split(":")[1]: v.split(":")[0] for v in svc["volumes"]}
        assert config.startswith("/network/") and "/network" in mounts, (name, config)
        assert mounts.get("/var/lib/afterchain") == f"{name}-data"
        assert set(mounts.values()) <= set(COMPOSE["volumes"])
        for var, value in (svc.get("environment") or {}).items():
            check_env(var, str(value), sample)
        assert svc["depends_on"]["init"]["condition"] == "service_completed_successfully"


def test_init_script_lays_out_what_the_services_read(tmp_path: Path) -> None:
    """Run the compose file's init script for real (NETWORK_DIR in place of the volume):
    its `afterchain` commands work, and every node config it writes parses, points into
    the service's mounts and names its peers by service name."""
    out = tmp_path / "network"
    env = {**os.environ, "NETWORK_DIR": str(out), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    r = subprocess.run(["sh", str(DEPLOY / "init-network.sh"), "compose-test"], env=env, capture_output=True, text=True,
                       timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    again = subprocess.run(["sh", str(DEPLOY / "init-network.sh")], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert "already laid out" in again.stdout  # idempotent: a restart of `init` keeps the network
    services = COMPOSE["services"]
    nodes = [n for n in services if n != "init"]
    keys = {n: subprocess.run([sys.executable, "-m", "afterchain.node.cli", "pubkey", str(out / n / "node.key")],
                              capture_output=True, text=True, check=True).stdout.strip() for n in nodes}
    for n in nodes:
        raw = tomllib.loads((out / n / "node.toml").read_text())
        for key in ("key_file", "genesis_file"):
            assert (out / Path(raw["node"][key]).relative_to("/network")).exists(), (n, key)
        assert raw["node"]["data_dir"] == "/var/lib/afterchain"
        cfg = load_config(out / n / "node.toml", check_files=False, env={})
        peers = {p.key.hex(): p.host for p in cfg.p2p.peers}
        assert all(keys[host] == key and host in services for key, host in peers.items())
        expected = set(nodes) - {n} if n.startswith("v") else {v for v in nodes if v.startswith("v")}
        assert set(peers.values()) == expected - ({"m1"} if n == "m1" else set())
        assert oct((out / n / "node.key").stat().st_mode & 0o777) == "0o600"
    genesis = (out / "genesis.json").read_text()
    assert "compose-test" in genesis and all(keys[v] in genesis for v in nodes if v.startswith("v"))


def test_init_script_flags_exist() -> None:
    text = (DEPLOY / "init-network.sh").read_text().replace("\\\n", " ")
    calls = re.findall(r"afterchain (keygen|pubkey|genesis)([^\n)]*)", text)
    assert {c[0] for c in calls} == {"keygen", "pubkey", "genesis"}
    for sub, rest in calls:
        flags = set(re.findall(r"(--[a-z][a-z-]*)", rest))
        known = {o for p in cli.commands[sub].params for o in getattr(p, "opts", [])}
        assert flags <= known, (sub, flags - known)


def test_image_default_config(sample: Path) -> None:
    cfg = load_config(sample, check_files=False, env={})
    assert str(cfg.data_dir) == "/var/lib/afterchain" and 'VOLUME ["/var/lib/afterchain"]' in DOCKERFILE
    assert str(cfg.key_file).startswith("/etc/afterchain/keys/") and "/etc/afterchain/keys" in DOCKERFILE
    cmd = re.search(r"^CMD (\[.*\])$", DOCKERFILE, re.M)
    assert cmd is not None
    assert str(parse_cli(yaml.safe_load(cmd.group(1))).params["config_path"]) == "/etc/afterchain/node.toml"
    assert "COPY docs/deploy/node.toml /etc/afterchain/node.toml" in DOCKERFILE
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE, re.M):
        for s in src.split():
            assert (ROOT / s).exists(), s
    assert re.search(r"^USER afterchain$", DOCKERFILE, re.M) and "--uid 10001" in DOCKERFILE
    assert DOCKERFILE.count("\nFROM ") >= 2  # multi-stage
    assert re.search(r"^HEALTHCHECK ", DOCKERFILE, re.M)


def test_the_health_check_path_is_served() -> None:
    path = re.search(r"http://127\.0\.0\.1:8001(/\w+)", DOCKERFILE)
    assert path is not None
    app_paths = _app_paths()
    if path.group(1) not in app_paths:
        pytest.skip(f"{path.group(1)} is served once issue 25 part A (branch wt-25a) is merged; routes here: "
                    f"{sorted(p for p in app_paths if not p.startswith('/v1'))}")
    assert path.group(1) in app_paths


def _app_paths() -> set[str]:
    import inspect

    from afterchain.node.http import app as app_module

    src = inspect.getsource(app_module)
    paths = set(re.findall(r'Route\("(/[^"]*)"', src))
    for mod in Path(app_module.__file__).parent.glob("*.py"):
        paths |= set(re.findall(r'Route\("(/[^"]*)"', mod.read_text()))
    return paths


def test_systemd_unit_uses_real_commands_variables_and_directives(sample: Path) -> None:
    directives = dict(re.findall(r"^#?(ExecStart|Environment|StateDirectory|ConfigurationDirectory|User)=(.*)$", UNIT, re.M))
    exec_start = shlex.split(directives["ExecStart"])
    assert exec_start[0] == "/opt/afterchain/bin/afterchain"
    config = parse_cli(exec_start[1:]).params["config_path"]
    assert str(config) == f"/etc/{directives['ConfigurationDirectory']}/node.toml"
    for line in re.findall(r"^#?Environment=(.*)$", UNIT, re.M):
        name, _, value = line.partition("=")
        check_env(name, value, sample)
        if name == "AFTERCHAIN_NODE_DATA_DIR":
            assert value == f"/var/lib/{directives['StateDirectory']}"
    assert "NoNewPrivileges=yes" in UNIT and "ProtectSystem=strict" in UNIT and "CapabilityBoundingSet=\n" in UNIT
    assert "RestartPreventExitStatus=2 5" in UNIT  # EXIT_USAGE, EXIT_DIVERGED
    from afterchain.node import cli as cli_module

    assert (cli_module.EXIT_USAGE, cli_module.EXIT_DIVERGED) == (2, 5)
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return
    # every directive known to this machine's systemd, and every value parses
    unit = Path(os.environ.get("TMPDIR", "/tmp")) / f"afterchain-test-{os.getpid()}.service"
    unit.write_text(UNIT.replace("/opt/afterchain/bin/afterchain", str(Path(sys.executable).parent / "afterchain")))
    try:
        r = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False)
    finally:
        unit.unlink()
    problems = [ln for ln in (r.stdout + r.stderr).splitlines() if str(unit) in ln or "ignoring" in ln]
    assert problems == [], problems


def test_the_local_network_tool_writes_into_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from afterchain.node.tools import cluster

    monkeypatch.delenv("AFTERCHAIN_CLUSTER_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert cluster._net(None).root == tmp_path / ".cluster"
    import afterchain

    assert not str(cluster._net(None).root).startswith(str(Path(afterchain.__path__[0]).parent))
    monkeypatch.setenv("AFTERCHAIN_CLUSTER_DIR", str(tmp_path / "elsewhere"))
    assert cluster._net(None).root == tmp_path / "elsewhere"


def _container_runtime() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return "no docker CLI on this machine"
    info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=30, check=False)
    if info.returncode != 0:
        return f"docker CLI present but no daemon answers: {(info.stderr or info.stdout).strip().splitlines()[-1:]}"
    compose = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=30, check=False)
    if compose.returncode != 0:
        return "docker daemon answers but there is no `docker compose` plugin"
    return None


@pytest.mark.slow
def test_image_builds_and_the_compose_network_commits() -> None:
    why = _container_runtime()
    if why is not None:
        pytest.skip(f"no container runtime: {why}")
    import time

    import httpx

    compose = ["docker", "compose", "-f", str(DEPLOY / "compose.yaml"), "-p", f"afterchain-test-{os.getpid()}"]
    try:
        subprocess.run([*compose, "up", "-d", "--build"], check=True, timeout=1800)
        deadline = time.monotonic() + 180
        heights: dict[int, int] = {}
        while time.monotonic() < deadline:
            for port in (8001, 8002, 8003, 8004, 8010):
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                    heights[port] = httpx.get(f"http://127.0.0.1:{port}/v1/status", timeout=3).json()["executed_height"]
            if len(heights) == 5 and min(heights.values()) >= 2:
                break
            time.sleep(1)
        assert len(heights) == 5 and min(heights.values()) >= 2, heights
    finally:
        subprocess.run([*compose, "down", "-v"], timeout=300, check=False)
