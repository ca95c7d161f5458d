"""`./scripts/cluster`: a local network of afterchain nodes for operators and demos.

    ./scripts/cluster up [--nodes N] [--members M] [--dir DIR] [--demo]
                                                            create (first time) and start, wait until healthy
    ./scripts/cluster status [--json]                       role, height, lag, view, primary, peers, last commit, mempool
    ./scripts/cluster logs [NODE] [-f]                      a node's log (all nodes' last lines without NODE)
    ./scripts/cluster stop NODE | start NODE                for drills
    ./scripts/cluster down                                  stop every node (data kept)
    ./scripts/cluster reset                                 stop and delete the network directory

The network lives in `.cluster/` in the working directory (`./scripts/cluster` runs from
the repository root) unless `--dir` (or `AFTERCHAIN_CLUSTER_DIR`) says otherwise; never in
the installation (site-packages). See docs/OPERATIONS.md.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from afterchain.node.tools.localnet import MAX_MEMBER_NODES, LocalNet

DEFAULT_DIR = Path(".cluster")
"""Relative to the working directory at use (where the client CLI looks for it too)."""
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _net(dir_: Path | None) -> LocalNet:
    d = dir_ or Path(os.environ.get("AFTERCHAIN_CLUSTER_DIR", DEFAULT_DIR)).absolute()
    return LocalNet(d)


def _need(net: LocalNet) -> None:
    if not net.exists():
        console.print(f"no network in {net.root}; create one with: ./scripts/cluster up")
        sys.exit(1)


dir_option = click.option("--dir", "dir_", type=click.Path(file_okay=False, path_type=Path), default=None,
                          help="Network directory (default: $AFTERCHAIN_CLUSTER_DIR, else .cluster in the working directory).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cluster() -> None:
    """Run a local afterchain network on 127.0.0.1."""


def _progress_printer() -> Any:
    last: dict[str, str] = {}

    def show(states: dict[str, tuple[bool, str]]) -> None:
        for name, (ok, why) in states.items():
            line = "healthy" if ok else why
            if last.get(name) != line:
                last[name] = line
                console.print(f"  {name}: {line}")

    return show


def _summary_table(net: LocalNet) -> Table:
    t = Table(title=f"afterchain network {net.manifest()['chain_id']} ({net.root})")
    for col in ("node", "role", "organisation", "API", "dashboard", "pid"):
        t.add_column(col)
    statuses = {n.name: net.status(n.name) for n in net.nodes()}
    for n in net.nodes():
        st = statuses[n.name]
        role = st.get("role", n.role) if st is not None else n.role
        if st is not None and st.get("is_primary"):
            role += " (primary)"
        t.add_row(n.name, role, n.org or "-", n.api_url, f"{n.api_url}/", str(net.pid(n.name) or "-"))
    return t


@cluster.command()
@click.option("--nodes", type=click.IntRange(4, 16), default=4, show_default=True, help="Validators to create (first time only).")
@click.option("--members", type=click.IntRange(0, MAX_MEMBER_NODES), default=0, show_default=True,
              help="Member nodes to create (first time only): full nodes that never vote, each registered on the "
                   "ledger by one demo organisation.")
@dir_option
@click.option("--demo", is_flag=True, help="Then run the after-sales demo story against the network.")
@click.option("--timeout", "timeout_s", type=float, default=90, show_default=True, help="Seconds to wait for health.")
def up(nodes: int, members: int, dir_: Path | None, demo: bool, timeout_s: float) -> None:
    """Create (if needed) and start the network; wait until every node is healthy."""
    net = _net(dir_)
    if net.exists():
        have = len(net.nodes())
        have_validators = sum(1 for n in net.nodes() if n.role == "validator")
        if nodes not in (4, have_validators) or members not in (0, have - have_validators):
            console.print(f"[yellow]the network in {net.root} has {have_validators} validators and "
                          f"{have - have_validators} members; --nodes/--members are ignored "
                          f"(./scripts/cluster reset first to change it)[/yellow]")
        running = [n for n, pid in net.running().items() if pid is not None]
        if len(running) == have:
            console.print(f"the network in {net.root} is already up ({have} nodes)")
        else:
            console.print(f"starting the existing network in {net.root} ({have - len(running)} of {have} nodes stopped)")
    else:
        console.print(f"creating a network of {nodes} validators and {members} member nodes in {net.root}")
        net.create(nodes, members=members)
    console.print("waiting for the nodes to connect and become healthy")
    try:
        net.start_all(timeout_s=timeout_s, progress=console.print)
        net.wait_healthy(timeout_s=timeout_s, progress=_progress_printer())
    except (TimeoutError, RuntimeError) as exc:
        console.print(f"[red]{exc}[/red]\nsee ./scripts/cluster logs NODE")
        sys.exit(1)
    console.print(_summary_table(net))
    console.print(f"member keys of the demo companies: {net.root / 'keys'}/<org>.key")
    if demo:
        from afterchain.node.tools.demo import run_demo

        sys.exit(run_demo(net, console))


@cluster.command()
@dir_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(dir_: Path | None, as_json: bool) -> None:
    """Role, height, lag, view, primary, peers, last commit and mempool of every node."""
    net = _net(dir_)
    _need(net)
    rows = []
    for n in net.nodes():
        st = net.status(n.name)
        row: dict[str, Any] = {"node": n.name, "api": n.api_url, "running": net.pid(n.name) is not None,
                               "role": n.role}
        if st is not None:
            row.update({
                "role": st.get("role", n.role), "lag": st.get("lag", 0),
                "peer_id": (st.get("p2p") or {}).get("peer_id"), "peer_keys": [p[:16] for p in st["peers"]],
                "height": st["height"], "view": st["view"], "primary": st["primary"][:16],
                "is_primary": st["is_primary"], "peers": len(st["peers"]),
                "last_commit_ms": st["last_commit_ms"], "mempool": st["mempool"]["events"],
                "state_root": st["state_root"],
            })
        rows.append(row)
    if as_json:
        click.echo(json.dumps({"chain_id": net.manifest()["chain_id"], "nodes": rows}, indent=2))
        return
    t = Table(title=f"afterchain {net.manifest()['chain_id']}")
    for col in ("node", "role", "state", "height", "lag", "view", "primary", "peers", "last commit", "mempool"):
        t.add_column(col)
    now = time.time() * 1000
    for r in rows:
        if "height" not in r:
            t.add_row(r["node"], r["role"], "running, not answering" if r["running"] else "stopped", *["-"] * 7)
            continue
        ago = f"{(now - r['last_commit_ms']) / 1000:.1f} s ago" if r["last_commit_ms"] else "never"
        t.add_row(r["node"], r["role"], "up", str(r["height"]), str(r["lag"]), str(r["view"]),
                  r["primary"] + ("  (this node)" if r["is_primary"] else ""), str(r["peers"]), ago, str(r["mempool"]))
    console.print(t)


@cluster.command()
@click.argument("node", required=False)
@dir_option
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("-n", "--lines", type=int, default=40, show_default=True)
def logs(node: str | None, dir_: Path | None, follow: bool, lines: int) -> None:
    """Print a node's log (JSON lines); without NODE, the last lines of every node."""
    net = _net(dir_)
    _need(net)
    names = [node] if node else [n.name for n in net.nodes()]
    for name in names:
        try:
            net.node(name)
        except KeyError as exc:
            raise click.ClickException(str(exc)) from None
        path = net.root / name / "node.log"
        text = path.read_text(errors="replace").splitlines() if path.exists() else []
        if not node:
            console.print(f"[bold]== {name} ==[/bold]")
        for ln in text[-lines:]:
            click.echo(ln)
    if follow and node:
        path = net.root / node / "node.log"
        with open(path, errors="replace") as fh:
            fh.seek(0, 2)
            try:
                while True:
                    ln = fh.readline()
                    if ln:
                        click.echo(ln, nl=False)
                    else:
                        time.sleep(0.2)
            except KeyboardInterrupt:
                pass


@cluster.command()
@click.argument("node")
@dir_option
@click.option("--kill", is_flag=True, help="SIGKILL instead of a clean SIGTERM (crash drill).")
def stop(node: str, dir_: Path | None, kill: bool) -> None:
    """Stop one node (for drills)."""
    net = _net(dir_)
    _need(net)
    try:
        net.node(node)
    except KeyError as exc:
        raise click.ClickException(str(exc)) from None
    if (net.kill(node) if kill else net.stop(node)):
        console.print(f"{node} stopped" + (" (SIGKILL)" if kill else ""))
    else:
        console.print(f"{node} was not running")


@cluster.command()
@click.argument("node")
@dir_option
def start(node: str, dir_: Path | None) -> None:
    """Start one stopped node and wait until it is healthy (caught up)."""
    net = _net(dir_)
    _need(net)
    try:
        net.node(node)
    except KeyError as exc:
        raise click.ClickException(str(exc)) from None
    if net.pid(node) is not None:
        console.print(f"{node} is already running")
        return
    net.start(node)
    try:
        net.wait_healthy([node], timeout_s=90, progress=_progress_printer())
    except (TimeoutError, RuntimeError) as exc:
        console.print(f"[red]{exc}[/red]")
        sys.exit(1)
    console.print(f"{node} is up and healthy")


@cluster.command("add-node")
@dir_option
@click.option("--no-start", is_flag=True, help="Only lay the node out (key, ports, node.toml).")
def add_node(dir_: Path | None, no_start: bool) -> None:
    """Add a node that is not (yet) a validator: it catches up as an observer. Governance
    makes it a validator: the command prints the proposal and votes to send."""
    net = _net(dir_)
    _need(net)
    info = net.add_node()
    console.print(f"{info.name}: key {info.key}, p2p 127.0.0.1:{info.p2p_port}, api {info.api_url}")
    if not no_start:
        net.start(info.name)
        deadline = time.monotonic() + 60
        while net.status(info.name) is None:  # its API answers once it has started
            if net.pid(info.name) is None or time.monotonic() > deadline:
                tail = (net.root / info.name / "node.log").read_text(errors="replace").splitlines()[-15:]
                console.print(f"[red]{info.name} did not start; last log lines:[/red]\n" + "\n".join(tail))
                sys.exit(1)
            time.sleep(0.25)
        console.print(f"{info.name} is running as an observer; the validators refuse its connections until the "
                      "change below is adopted, then it catches up")
    d = net.root
    console.print("To make it a validator, propose and vote (more than 2/3 of the current validators):")
    console.print(f"  afterchain gov propose add-validator {info.key} --key {d}/node0/node.key")
    console.print(f"  afterchain gov vote PROPOSAL_ID yes --key {d}/nodeN/node.key   # for each validator nodeN")


@cluster.command()
@dir_option
def down(dir_: Path | None) -> None:
    """Stop every node (the data stays; `up` starts them again)."""
    net = _net(dir_)
    if not net.exists():
        console.print(f"nothing to stop: no network in {net.root}")
        return
    stopped = net.stop_all()
    console.print(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")


@cluster.command()
@dir_option
@click.option("--yes", is_flag=True, help="Do not ask.")
def reset(dir_: Path | None, yes: bool) -> None:
    """Stop every node and delete the network directory (keys, chain, logs)."""
    net = _net(dir_)
    if not net.root.exists():
        console.print(f"nothing to reset: {net.root} does not exist")
        return
    if net.exists():
        net.stop_all()
    if not yes and sys.stdin.isatty() and not click.confirm(f"delete {net.root}?"):
        return
    shutil.rmtree(net.root)
    console.print(f"deleted {net.root}")


def main() -> None:
    cluster(prog_name="./scripts/cluster")


if __name__ == "__main__":
    main()
