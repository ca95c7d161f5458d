"""A multi-host rehearsal on one machine: four validators and a member node, each in its
own network namespace with its own addresses, joined by a bridge in a namespace of its own;
every node knows its peers by DNS name only (`/etc/netns/NAME/hosts`), over IPv4 and, where
the machine has it, IPv6 (then one validator is reachable and reaches out over IPv6 only). The network commits events submitted from a sixth namespace; a
validator restarted at another address (its name moved) comes back and commits again.

Traffic stays inside the namespaces made here (10.252.0.0/24 and fd52:25b::/64, assigned
only inside them; no namespace has a route elsewhere; a name missing from the hosts files
would go to a resolver at 127.0.0.1 inside the namespace, where nothing listens). Needs
root and `ip`; skipped, with the reason, otherwise. Everything it made is removed on exit,
on failure too.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

from afterchain.node.common.keys import load_key, write_key
from afterchain.node.tools.localnet import LocalNet
from tests.cluster.test_libp2p_cluster import product_events

pytestmark = pytest.mark.cluster

TAG = f"ac{os.getpid() % 100000}"
NODES = ["v1", "v2", "v3", "v4", "m1"]
CLIENT = "c"
V4 = {"v1": "10.252.0.1", "v2": "10.252.0.2", "v3": "10.252.0.3", "v4": "10.252.0.4", "m1": "10.252.0.11", CLIENT: "10.252.0.100"}
V6 = {n: f"fd52:25b::{a.rsplit('.', 1)[1]}" for n, a in V4.items()}
P2P, API = 7001, 8001

CHECK = r"""
import json, sys, time
import httpx, msgpack
urls, events_path, want, timeout = sys.argv[1].split(","), sys.argv[2], sys.argv[3], float(sys.argv[4])
events = msgpack.unpackb(open(events_path, "rb").read())
deadline = time.monotonic() + timeout
last = {}
while True:  # submit once a node takes it (nodes are starting)
    try:
        r = httpx.post(urls[0] + "/v1/events", content=msgpack.packb(events), headers={"content-type": "application/msgpack"}, timeout=10)
        if r.status_code == 202:
            break
        last["submit"] = r.text[:200]
    except httpx.HTTPError as e:
        last["submit"] = repr(e)
    if time.monotonic() > deadline:
        print(json.dumps({"ok": False, "stage": "submit", "last": last})); sys.exit(1)
    time.sleep(0.5)
pending = set(urls)
while pending:
    for u in list(pending):
        try:
            r = httpx.get(f"{u}/v1/events/{want}", timeout=5)
            last[u] = r.json().get("status") if r.status_code == 200 else r.status_code
            if last[u] == "committed":
                pending.discard(u)
        except (httpx.HTTPError, ValueError) as e:
            last[u] = repr(e)
    if time.monotonic() > deadline:
        print(json.dumps({"ok": False, "stage": "commit", "pending": sorted(pending), "last": last})); sys.exit(1)
    time.sleep(0.25)
heights = {u: httpx.get(u + "/v1/status", timeout=5).json()["executed_height"] for u in urls}
print(json.dumps({"ok": True, "heights": heights}))
"""


def ip(*args: str) -> None:
    r = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")


def ns(name: str) -> str:
    return f"{TAG}-{name}"


def hosts_text(v6: bool) -> str:
    lines = ["127.0.0.1 localhost"]
    for n in NODES:
        lines.append(f"{V4[n]} {n}")
        if v6:
            lines.append(f"{V6[n]} {n}")
    return "\n".join(lines) + "\n"


def write_in_place(path: Path, text: str) -> None:
    """`ip netns exec` bind-mounts the file: rewrite its inode, do not replace it."""
    with open(path, "r+") as f:
        f.truncate(0)
        f.write(text)


@contextlib.contextmanager
def namespaces() -> Iterator[bool]:
    """Build the namespaces; yield whether IPv6 is up in them. Remove everything after."""
    if os.geteuid() != 0:
        pytest.skip(f"network namespaces need root (this test runs as uid {os.geteuid()})")
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command (iproute2) on this machine")
    made: list[str] = []
    try:
        try:
            ip("netns", "add", ns("br"))
        except RuntimeError as e:
            pytest.skip(f"cannot create a network namespace here: {e}")
        made.append(ns("br"))
        ip("-n", ns("br"), "link", "add", "br0", "type", "bridge")
        ip("-n", ns("br"), "link", "set", "br0", "up")
        v6 = True
        for i, n in enumerate([*NODES, CLIENT]):
            ip("netns", "add", ns(n))
            made.append(ns(n))
            host_end, node_end = f"{TAG}h{i}", f"{TAG}e{i}"
            ip("link", "add", host_end, "type", "veth", "peer", "name", node_end)
            ip("link", "set", host_end, "netns", ns("br"))
            ip("link", "set", node_end, "netns", ns(n))
            ip("-n", ns("br"), "link", "set", host_end, "master", "br0")
            ip("-n", ns("br"), "link", "set", host_end, "up")
            ip("-n", ns(n), "link", "set", node_end, "name", "eth0")
            ip("-n", ns(n), "addr", "add", f"{V4[n]}/24", "dev", "eth0")
            if v6:
                try:
                    ip("-n", ns(n), "-6", "addr", "add", f"{V6[n]}/64", "dev", "eth0", "nodad")
                except RuntimeError as e:
                    print(f"no IPv6 in the namespaces ({e}): IPv4 only")
                    v6 = False
            ip("-n", ns(n), "link", "set", "eth0", "up")
            ip("-n", ns(n), "link", "set", "lo", "up")
            etc = Path("/etc/netns") / ns(n)
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text(hosts_text(False))
            (etc / "resolv.conf").write_text("nameserver 127.0.0.1\n")  # no DNS query leaves the namespace
        if not v6:  # a node made before IPv6 failed has an address the hosts files must not name
            for n in [*NODES, CLIENT]:
                subprocess.run(["ip", "-n", ns(n), "-6", "addr", "flush", "dev", "eth0", "scope", "global"], check=False)
        for n in [*NODES, CLIENT]:
            write_in_place(Path("/etc/netns") / ns(n) / "hosts", hosts_text(v6))
        yield v6
    finally:
        for name in reversed(made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        for n in [*NODES, CLIENT]:
            shutil.rmtree(Path("/etc/netns") / ns(n), ignore_errors=True)
        with contextlib.suppress(OSError):
            Path("/etc/netns").rmdir()  # only if empty (other namespaces may have files there)


def configure(net: LocalNet, v6: bool) -> dict[str, Path]:
    """Rewrite the local network's configs: names instead of 127.0.0.1, in every form
    (`name:port`, `/dns4`, `/dns6`, `/dns`); v1's key encrypted with a passphrase file."""
    m = net.manifest()
    name_of = {}
    for n, info in zip(NODES, m["nodes"], strict=True):
        name_of[info["key"]] = n
    dirs = {}
    for n, info in zip(NODES, m["nodes"], strict=True):
        d = net.root / info["name"]
        old = tomllib.loads((d / "node.toml").read_text())
        peers = []
        for j, p in enumerate(old["p2p"]["peers"]):
            host = name_of[p["key"]]
            form = [f"{host}:{P2P}", f"/dns6/{host}/tcp/{P2P}" if v6 else f"/dns4/{host}/tcp/{P2P}",
                    f"/dns/{host}/tcp/{P2P}", f"/dns4/{host}/tcp/{P2P}"][j % 4]
            if v6 and n == "v2":  # v2 is reachable over IPv6 only and reaches its peers over IPv6 only
                form = f"/dns6/{host}/tcp/{P2P}"
            peers.append(f'{{ key = "{p["key"]}", addr = "{form}" }}')
        if n != "m1":  # the rehearsal admits its member by the validators' static peers (what a
            # company does before its organisation's node.register is on the ledger; see
            # tests/cluster/test_members.py for admission by registration)
            member = next(k for k, v in name_of.items() if v == "m1")
            if all(p["key"] != member for p in old["p2p"]["peers"]):
                peers.append(f'{{ key = "{member}", addr = "m1:{P2P}" }}')
        listen = f"[::]:{P2P}" if v6 else f"0.0.0.0:{P2P}"
        if v6 and n == "v2":
            listen = f"/dns6/v2/tcp/{P2P}"
        extra = ""
        if n == "v1":
            kp = load_key(d / "node.key")
            pw = d / "passphrase"
            pw.write_text("rehearsal passphrase\n")
            pw.chmod(0o600)
            write_key(d / "node.key", kp, overwrite=True, passphrase=b"rehearsal passphrase", kdf="interactive")
            extra = 'key_passphrase_file = "passphrase"\n'
        peer_lines = ",\n  ".join(peers)
        (d / "node.toml").write_text(
            f'[node]\nname = "{n}"\ndata_dir = "data"\nkey_file = "node.key"\ngenesis_file = "../genesis.json"\n{extra}\n'
            f'[p2p]\nlisten = "{listen}"\npeers = [\n  {peer_lines}\n]\n\n'
            f'[api]\nlisten = "0.0.0.0:{API}"\n\n[log]\nformat = "json"\n'
        )
        dirs[n] = d
    return dirs


def start(n: str, d: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    log = open(d / "node.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(
            ["ip", "netns", "exec", ns(n), sys.executable, "-m", "afterchain.node.cli", "node", "run", "--config",
             str(d / "node.toml")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(d),
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}, start_new_session=True,
        )
    finally:
        log.close()


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def check(tmp_path: Path, net: LocalNet, targets: list[str], first: int, count: int, timeout_s: float = 180) -> dict[str, int]:
    """From the client namespace: submit events to the first target by name, wait until
    the last is committed on every target; the nodes' executed heights."""
    chain = net.manifest()["chain_id"]
    events = product_events(net.member_key("acme"), chain, first, count)
    path = tmp_path / f"events-{first}.msgpack"
    path.write_bytes(msgpack.packb([e.encode() for e in events]))
    urls = ",".join(f"http://{t}:{API}" for t in targets)
    r = subprocess.run(["ip", "netns", "exec", ns(CLIENT), sys.executable, "-c", CHECK, urls, str(path), events[-1].id.hex(),
                        str(timeout_s)], capture_output=True, text=True, timeout=timeout_s + 60, check=False)
    out = r.stdout.strip().splitlines()
    result = json.loads(out[-1]) if out else {"ok": False, "stderr": r.stderr[-2000:]}
    assert result["ok"], result
    return result["heights"]  # type: ignore[no-any-return]


def tail(d: Path, n: int = 20) -> str:
    p = d / "node.log"
    return "\n".join(p.read_text(errors="replace").splitlines()[-n:]) if p.exists() else "(no log)"


def test_nodes_in_their_own_namespaces_find_each_other_by_name(tmp_path: Path) -> None:
    with namespaces() as v6:
        net = LocalNet(tmp_path / "net")
        net.create(4, members=1, view_timeout_ms=1500)
        dirs = configure(net, v6)
        # the member listens by name, given in the environment (resolved at start)
        env = {"m1": {"AFTERCHAIN_P2P_LISTEN": f"/dns4/m1/tcp/{P2P}"}}
        procs = {n: start(n, dirs[n], env.get(n)) for n in NODES}
        try:
            heights = check(tmp_path, net, NODES, 1, 50)
            assert set(heights) == {f"http://{n}:{API}" for n in NODES}
            for n, p in procs.items():
                assert p.poll() is None, f"{n} exited:\n{tail(dirs[n])}"
            if v6:  # v2 listens on its IPv6 address only and dials /dns6 names only: it committed over IPv6
                v2_log = (dirs["v2"] / "node.log").read_text()
                listening = next(json.loads(ln) for ln in v2_log.splitlines() if '"transport_listening"' in ln)
                assert listening["addrs"] == [f"/ip6/{V6['v2']}/tcp/{P2P}"], listening

            # v4 restarts at another address: its name moves (hosts files rewritten), the
            # others find it again by name and it commits with them
            stop(procs["v4"])
            ip("-n", ns("v4"), "addr", "del", f"{V4['v4']}/24", "dev", "eth0")
            V4["v4"] = "10.252.0.14"
            ip("-n", ns("v4"), "addr", "add", f"{V4['v4']}/24", "dev", "eth0")
            if v6:
                ip("-n", ns("v4"), "-6", "addr", "del", f"{V6['v4']}/64", "dev", "eth0")
                V6["v4"] = "fd52:25b::14"
                ip("-n", ns("v4"), "-6", "addr", "add", f"{V6['v4']}/64", "dev", "eth0", "nodad")
            for n in [*NODES, CLIENT]:
                write_in_place(Path("/etc/netns") / ns(n) / "hosts", hosts_text(v6))
            procs["v4"] = start("v4", dirs["v4"])
            check(tmp_path, net, ["v2", "v1", "v3", "v4", "m1"], 51, 20)
        except BaseException:
            for n in NODES:
                print(f"--- {n}\n{tail(dirs[n])}")
            raise
        finally:
            for p in procs.values():
                stop(p)
            V4["v4"], V6["v4"] = "10.252.0.4", "fd52:25b::4"
