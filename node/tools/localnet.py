"""A local network of node processes on 127.0.0.1: layout, start, stop, health.

Used by `scripts/cluster` (operators) and the multi-process tests. A network lives in
one directory::

    DIR/
      network.json          what was created: chain id, nodes (name, key, ports, role), members
      genesis.json
      keys/<org>.key        member keys (the demo's companies), mode 0600
      nodeN/node.toml  nodeN/node.key  nodeN/data/  nodeN/node.log  nodeN/node.pid
      memberN/...           member nodes (`create(..., members=M)`): full nodes that never vote,
                            each run by one demo organisation, which registers its key on
                            the ledger (`node.register`) before it starts (`start_all`)

Ports are chosen free at creation (bound then released) and kept in network.json so a
restarted node comes back on the same addresses.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from afterchain.node.common.keys import load_key, write_key
from afterchain.node.tools.genesis import MemberSpec, build_genesis
from afterchain.protocol.bodies import MAX_NODE_KEYS_PER_ORG
from afterchain.protocol.crypto import KeyPair

__all__ = ["DEMO_MEMBERS", "MAX_MEMBER_NODES", "LocalNet", "NodeInfo", "free_ports"]

_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
"""Processes this Python process started (kept so they are reaped, not garbage-collected)."""

DEMO_MEMBERS: tuple[tuple[str, str, tuple[str, ...], int], ...] = (
    ("acme", "Acme Appliances", ("manufacturer",), 10_000_000),
    ("fixit", "FixIt Repairs", ("service_provider",), 1_000_000),
    ("quickship", "QuickShip Logistics", ("logistics",), 100_000),
    ("shopmart", "ShopMart Retail", ("retailer",), 50_000_000),
    ("watchdog", "Consumer Watchdog", ("auditor",), 0),
)
"""The demo consortium: org id, name, roles, opening balance (minor units)."""
MAX_MEMBER_NODES = len(DEMO_MEMBERS) * MAX_NODE_KEYS_PER_ORG
"""Member nodes a local network can have: each demo organisation registers at most
`MAX_NODE_KEYS_PER_ORG` node keys (the ledger's bound)."""
MEMBER_PEERS = 3
"""Members each member node lists in its configuration besides the validators (a ring)."""


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    key: str
    p2p_port: int
    api_port: int
    role: str = "validator"
    """"validator" (in the genesis set) or "member" (a full node that never votes)."""
    org: str | None = None
    """A member node's organisation (the demo company that registers its key)."""

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


class LocalNet:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self._log_level: str | None = None  # `create`'s, or the manifest's once read

    # ------------------------------------------------------------------ layout
    @property
    def manifest_path(self) -> Path:
        return self.root / "network.json"

    def exists(self) -> bool:
        return self.manifest_path.exists()

    def manifest(self) -> dict[str, Any]:
        return json.loads(self.manifest_path.read_text())  # type: ignore[no-any-return]

    def nodes(self) -> list[NodeInfo]:
        return [NodeInfo(**n) for n in self.manifest()["nodes"]]

    def node(self, name: str) -> NodeInfo:
        for n in self.nodes():
            if n.name == name:
                return n
        raise KeyError(f"no node {name!r} (nodes: {', '.join(n.name for n in self.nodes())})")

    def member_key(self, org: str) -> KeyPair:
        return load_key(self.root / "keys" / f"{org}.key")

    def create(self, n_nodes: int = 4, *, chain_id: str = "afterchain-local", view_timeout_ms: int = 2000,
               block_interval_ms: int | None = None, consensus: Any = None, members: int = 0,
               log_level: str = "info") -> None:
        """`n_nodes` validators (the genesis set) and `members` member nodes. Member node i
        belongs to demo organisation i mod 5 (`NodeInfo.org`), which registers its key on
        the ledger when the network starts (`start_all`, `register_members`): the
        validators admit it through the allowlist they derive from the chain, not through
        their configuration. A member's own config lists the validators (how it finds them);
        a validator's lists the other validators only. `log_level` goes to every node's
        `[log] level` (the benches use "debug" for its per-block `block_committed` lines)."""
        if self.exists():
            raise FileExistsError(f"a network already exists in {self.root}")
        if n_nodes < 4:
            raise ValueError("a BFT network needs at least 4 nodes (f = 1)")
        self.root.mkdir(parents=True, exist_ok=True)
        if not 0 <= members <= MAX_MEMBER_NODES:
            raise ValueError(f"members is 0..{MAX_MEMBER_NODES} ({len(DEMO_MEMBERS)} demo organisations, at most "
                             f"{MAX_NODE_KEYS_PER_ORG} node keys each)")
        ports = free_ports(2 * (n_nodes + members))
        nodes: list[NodeInfo] = []
        for i in range(n_nodes + members):
            role = "validator" if i < n_nodes else "member"
            name = f"node{i}" if role == "validator" else f"member{i - n_nodes}"
            d = self.root / name
            d.mkdir(exist_ok=True)
            kp = KeyPair.generate()
            write_key(d / "node.key", kp, overwrite=True)
            org = None if role == "validator" else DEMO_MEMBERS[(i - n_nodes) % len(DEMO_MEMBERS)][0]
            nodes.append(NodeInfo(name=name, key=kp.public.hex(), p2p_port=ports[2 * i], api_port=ports[2 * i + 1], role=role,
                                  org=org))
        validators = [n for n in nodes if n.role == "validator"]
        member_specs = []
        for org, name, roles, balance in DEMO_MEMBERS:
            kp = KeyPair.generate()
            write_key(self.root / "keys" / f"{org}.key", kp, overwrite=True)
            member_specs.append(MemberSpec(org, name, roles, (kp.public,), balance))
        import dataclasses

        from afterchain.node.tools.genesis import DEFAULT_CONSENSUS

        params = consensus or DEFAULT_CONSENSUS
        params = dataclasses.replace(params, view_timeout_ms=view_timeout_ms,
                                     view_timeout_max_ms=max(params.view_timeout_max_ms, view_timeout_ms))
        if block_interval_ms is not None:
            params = dataclasses.replace(params, block_interval_ms=block_interval_ms)
        g = build_genesis(chain_id=chain_id, genesis_time_ms=int(time.time() * 1000),
                          validators=[bytes.fromhex(n.key) for n in validators], members=member_specs, consensus=params)
        (self.root / "genesis.json").write_text(g.to_json() + "\n")
        mems = [n for n in nodes if n.role == "member"]
        self._log_level = log_level
        for n in nodes:
            # every node lists the validators; a member also lists the next MEMBER_PEERS
            # members (a ring): the dissemination relay's peers are among these connections
            peers = [p for p in validators if p.name != n.name]
            if n.role == "member" and len(mems) > 1:
                i = mems.index(n)
                peers += [mems[(i + j) % len(mems)] for j in range(1, min(MEMBER_PEERS, len(mems) - 1) + 1)]
            self._write_config(n, peers)
        targets = ", ".join(f'"127.0.0.1:{n.api_port}"' for n in nodes)
        (self.root / "prometheus.yml").write_text(
            "# Prometheus scrape configuration for this local network (prometheus --config.file=prometheus.yml)\n"
            "global:\n  scrape_interval: 5s\n"
            f"scrape_configs:\n  - job_name: afterchain\n    metrics_path: /metrics\n    static_configs:\n"
            f"      - targets: [{targets}]\n        labels:\n          chain_id: {chain_id}\n"
        )
        self.manifest_path.write_text(json.dumps({
            "chain_id": chain_id,
            "log_level": log_level,
            "genesis_hash": g.hash().hex(),
            "nodes": [dataclasses.asdict(n) for n in nodes],
            "members": [{"org": m[0], "name": m[1], "roles": list(m[2])} for m in DEMO_MEMBERS],
        }, indent=2) + "\n")

    def _write_config(self, n: NodeInfo, peers: list[NodeInfo]) -> None:
        lines = ",\n  ".join(f'{{ key = "{p.key}", addr = "127.0.0.1:{p.p2p_port}" }}' for p in peers)
        (self.root / n.name / "node.toml").write_text(
            f'[node]\nname = "{n.name}"\ndata_dir = "data"\nkey_file = "node.key"\ngenesis_file = "../genesis.json"\n\n'
            f'[p2p]\nlisten = "127.0.0.1:{n.p2p_port}"\npeers = [\n  {lines}\n]\n\n'
            f'[api]\nlisten = "127.0.0.1:{n.api_port}"\n\n[log]\nformat = "json"\nlevel = "{self._level()}"\n'
        )

    def _level(self) -> str:
        if self._log_level is None:
            self._log_level = str(self.manifest().get("log_level", "info")) if self.exists() else "info"
        return self._log_level

    def add_node(self) -> NodeInfo:
        """Lay out one more node (not in the genesis validator set): a fresh key, free
        ports, and a config listing every existing node as a peer. Started, it catches up
        as an observer; it votes once governance adds its key (`afterchain gov propose
        add-validator KEY`) and that epoch starts. The existing nodes need no change: they
        allow the key when the set is adopted and wait for the new node to dial them."""
        m = self.manifest()
        nodes = self.nodes()
        used = {int(n.name.removeprefix("node")) for n in nodes if n.name.removeprefix("node").isdigit()}
        i = max(used, default=-1) + 1
        p2p_port, api_port = free_ports(2)
        d = self.root / f"node{i}"
        d.mkdir(exist_ok=False)
        kp = KeyPair.generate()
        write_key(d / "node.key", kp, overwrite=True)
        info = NodeInfo(name=f"node{i}", key=kp.public.hex(), p2p_port=p2p_port, api_port=api_port)
        self._write_config(info, [n for n in nodes if n.role == "validator"])
        import dataclasses

        m["nodes"].append(dataclasses.asdict(info))
        self.manifest_path.write_text(json.dumps(m, indent=2) + "\n")
        return info

    # ------------------------------------------------------------------ processes
    def pid(self, name: str) -> int | None:
        p = self.root / name / "node.pid"
        if not p.exists():
            return None
        try:
            pid = int(p.read_text().strip())
        except ValueError:
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        # a recycled pid would not be running our command line
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return pid
        return pid if b"node.toml" in cmd else None

    def start(self, name: str, *, extra_env: dict[str, str] | None = None, entry: str = "afterchain.node.cli") -> int:
        """Start node `name` as `python -m ENTRY node run --config ...` (`entry`: another
        module with that command line, e.g. a test-only node) unless it is running."""
        existing = self.pid(name)
        if existing is not None:
            return existing
        d = self.root / name
        log = open(d / "node.log", "ab")  # noqa: SIM115 - handed to the child
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
        proc = subprocess.Popen(
            [sys.executable, "-m", entry, "node", "run", "--config", str(d / "node.toml")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(d), env=env,
            start_new_session=True,
        )
        log.close()
        _CHILDREN[proc.pid] = proc
        (d / "node.pid").write_text(f"{proc.pid}\n")
        return proc.pid

    def validators(self) -> list[NodeInfo]:
        return [n for n in self.nodes() if n.role == "validator"]

    def members(self) -> list[NodeInfo]:
        return [n for n in self.nodes() if n.role == "member"]

    def set_peers(self, name: str, peers: list[str]) -> None:
        """Rewrite node `name`'s static peers (node names) in its node.toml (drills)."""
        self._write_config(self.node(name), [self.node(p) for p in peers])

    def start_all(self, *, timeout_s: float = 90.0, progress: Any = None,
                  entries: dict[str, tuple[str, dict[str, str]]] | None = None) -> None:
        """Start every node. With member nodes: start the validators, wait until they are
        healthy, have each member's organisation register its key (`register_members`),
        then start the members (a validator admits a member once the registration has
        committed). `progress(text)` is told each step. `entries`: nodes started from
        another module with extra environment variables (test-only nodes, `start`)."""
        entries = entries or {}

        def start(name: str) -> None:
            entry, env = entries.get(name, ("afterchain.node.cli", {}))
            self.start(name, extra_env=env, entry=entry)

        members = self.members()
        for n in self.validators():
            start(n.name)
        if not members:
            return
        if any(self.pid(m.name) is None for m in members):
            self.wait_healthy([n.name for n in self.validators()], timeout_s=timeout_s)
            done = self.register_members(timeout_s=timeout_s)
            if progress is not None and done:
                progress(f"registered {len(done)} member node keys on the ledger: "
                         + ", ".join(f"{m} ({org})" for m, org in done))
        for m in members:
            start(m.name)
        # a member answers reads (an organisation's next nonce among them) from its own
        # state: wait until each has executed what the validators had when it started
        target = max((int(st["executed_height"]) for v in self.validators() if (st := self.status(v.name)) is not None),
                     default=0)
        self.wait_executed([m.name for m in members], target, timeout_s=timeout_s)

    def wait_executed(self, names: list[str], height: int, *, timeout_s: float = 60.0) -> None:
        """Wait until every named node has executed `height` (raises `TimeoutError`, or
        `RuntimeError` when one exited)."""
        deadline = time.monotonic() + timeout_s
        for n in names:
            while (st := self.status(n)) is None or int(st["executed_height"]) < height:
                if self.pid(n) is None:
                    tail = (self.root / n / "node.log").read_text(errors="replace").splitlines()[-15:]
                    raise RuntimeError(f"{n} exited; last log lines:\n" + "\n".join(tail))
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{n} has not executed height {height} after {timeout_s:.0f} s "
                                       f"(at {st['executed_height'] if st else 'not answering'})")
                time.sleep(0.1)

    def register_members(self, *, timeout_s: float = 60.0) -> list[tuple[str, str]]:
        """Have each member node's organisation register the node's key on the ledger
        (`node.register`, signed with the organisation's member key, through the SDK
        against the validators), unless it is registered already. Returns the (node, org)
        pairs registered now; raises `RuntimeError` if a registration is not committed."""
        from afterchain.node.client.sdk import Client

        urls = [n.api_url for n in self.validators()]
        by_org: dict[str, list[NodeInfo]] = {}
        for m in self.members():
            if m.org is None:
                raise RuntimeError(f"{m.name} has no organisation in {self.manifest_path} (laid out by an older version?)")
            by_org.setdefault(m.org, []).append(m)
        done: list[tuple[str, str]] = []
        for org, nodes in by_org.items():
            with Client(urls, key=self.member_key(org)) as c:
                have = {r["key"] for r in c.node_keys(org)}
                todo = [n for n in nodes if n.key not in have]
                if not todo:
                    continue
                out = c.send(c.build.node_register(keys=[n.key for n in todo]), timeout_s=timeout_s)
                if not out.committed:
                    raise RuntimeError(f"{org} could not register node keys of {', '.join(n.name for n in todo)}: "
                                       f"{out.status} {out.code} {out.message}")
                done += [(n.name, org) for n in todo]
        return done

    def stop(self, name: str, *, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> bool:
        pid = self.pid(name)
        if pid is None:
            return False
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return False
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _alive(pid):
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        (self.root / name / "node.pid").unlink(missing_ok=True)
        return True

    def kill(self, name: str) -> bool:
        return self.stop(name, sig=signal.SIGKILL)

    def stop_all(self) -> list[str]:
        return [n.name for n in self.nodes() if self.stop(n.name)]

    def running(self) -> dict[str, int | None]:
        return {n.name: self.pid(n.name) for n in self.nodes()}

    # ------------------------------------------------------------------ health and status
    def status(self, name: str, *, timeout_s: float = 2.0) -> dict[str, Any] | None:
        n = self.node(name)
        try:
            r = httpx.get(f"{n.api_url}/v1/status", timeout=timeout_s)
            return r.json() if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    def healthy(self, name: str) -> tuple[bool, str]:
        n = self.node(name)
        try:
            r = httpx.get(f"{n.api_url}/health", timeout=2.0)
            return r.status_code == 200, r.json().get("reason", "")
        except (httpx.HTTPError, ValueError) as exc:
            return False, f"not answering ({type(exc).__name__})"

    def wait_healthy(self, names: list[str] | None = None, *, timeout_s: float = 60.0, progress: Any = None) -> None:
        names = names or [n.name for n in self.nodes()]
        deadline = time.monotonic() + timeout_s
        while True:
            states = {n: self.healthy(n) for n in names}
            if progress is not None:
                progress(states)
            if all(ok for ok, _ in states.values()):
                return
            for n in names:
                if self.pid(n) is None:
                    tail = (self.root / n / "node.log").read_text(errors="replace").splitlines()[-15:]
                    raise RuntimeError(f"{n} exited; last log lines:\n" + "\n".join(tail))
            if time.monotonic() > deadline:
                bad = {n: why for n, (ok, why) in states.items() if not ok}
                raise TimeoutError(f"nodes not healthy after {timeout_s:.0f} s: {bad}")
            time.sleep(0.25)


def _alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _CHILDREN[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        st = Path(f"/proc/{pid}/stat").read_text().split()
        if st[2] == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            return False
    except OSError:
        return False
    return True
