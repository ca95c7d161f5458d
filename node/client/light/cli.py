"""`afterchain light ...`: verified reads from one untrusted node.

    afterchain light ticket ID [--node URL] [--genesis FILE] [--state FILE] [--witness URL] [--json]
    afterchain light product GTIN SERIAL ... | light quality ORG ... | light state KEYHEX ...
    afterchain light status [--genesis FILE] [--state FILE]

Without --node / --genesis, the first node and the genesis of the local network in
``$AFTERCHAIN_CLUSTER_DIR`` (default ``.cluster``: ``network.json``, ``genesis.json``) are
used. The trusted state lives in ``~/.afterchain/light/<chain id>-<genesis hash>.json``
unless --state names a file.

Exit codes: 0 verified (including a key proven absent), 1 refused (the reason is printed:
``refused: light.<reason>: ...``; with --json ``{"verified": false, "reason": ...}``), 2 usage
or local file error, 3 the node (or the witness) could not be reached.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from afterchain.node.client.light.client import (
    LightClient,
    Verified,
    default_state_path,
    load_trust,
    save_trust,
    trust_from_genesis,
    trust_from_hash,
)
from afterchain.node.client.light.passport import passport_lines, passport_view, quality_lines
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.light import DEFAULT_TRUSTING_PERIOD_MS, LightError, Reason
from afterchain.protocol.passport import quality_report

__all__ = ["light", "register"]

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
DAY_MS = 24 * 3600 * 1000


def _out(as_json: bool, doc: dict[str, Any], text: str) -> None:
    click.echo(json.dumps(doc, indent=1, sort_keys=True) if as_json else text)


def _load_genesis(path: str) -> Any:
    from afterchain.node.common.files import load_genesis

    try:
        return load_genesis(path)
    except ValueError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)


def _cluster_dir() -> Path:
    return Path(os.environ.get("AFTERCHAIN_CLUSTER_DIR", ".cluster"))


def _genesis_path(given: str | None) -> str:
    if given:
        return given
    path = _cluster_dir() / "genesis.json"
    if not path.exists():
        click.echo(f"error: no --genesis given and no {path} (run inside a directory with a local network, or pass "
                   "--genesis FILE)", err=True)
        sys.exit(EXIT_USAGE)
    return str(path)


def _node_url(given: str | None) -> str:
    if given:
        return given
    manifest = _cluster_dir() / "network.json"
    try:
        nodes = json.loads(manifest.read_text())["nodes"]
        return f"http://127.0.0.1:{int(nodes[0]['api_port'])}"
    except FileNotFoundError:
        click.echo(f"error: no --node given and no {manifest} (pass --node URL)", err=True)
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        click.echo(f"error: cannot read the first node's URL from {manifest}: {exc!r}", err=True)
    sys.exit(EXIT_USAGE)


def _client(opts: dict[str, Any]) -> LightClient:
    g = _load_genesis(_genesis_path(opts["genesis"]))
    opts["node"] = _node_url(opts["node"])
    state_path = Path(opts["state"]) if opts["state"] else default_state_path(g.chain_id, g.hash())
    try:
        trust = load_trust(state_path, g)
    except ValueError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    if trust is None:
        if opts["trust_hash"]:
            if opts["trust_height"] is None:
                click.echo("error: --trust-hash needs --trust-height", err=True)
                sys.exit(EXIT_USAGE)
            try:
                trust = trust_from_hash(opts["node"], g, opts["trust_height"], bytes.fromhex(opts["trust_hash"]))
            except ValueError:
                click.echo("error: --trust-hash is 64 hex characters", err=True)
                sys.exit(EXIT_USAGE)
            except LightError as exc:
                _refused(opts["json"], exc)
        else:
            trust = trust_from_genesis(g)
        save_trust(state_path, trust)
    return LightClient(opts["node"], trust, state_path=state_path, witness_url=opts["witness"],
                       trusting_period_ms=int(opts["trusting_period_days"] * DAY_MS))


def _refused(as_json: bool, exc: LightError) -> NoReturn:
    code = EXIT_UNREACHABLE if exc.reason == Reason.NODE_UNAVAILABLE else EXIT_REFUSED
    if as_json:
        click.echo(json.dumps({"verified": False, **exc.to_dict()}, indent=1, sort_keys=True))
    click.echo(f"refused: {exc}", err=True)
    sys.exit(code)


def _run(opts: dict[str, Any], read: Callable[[LightClient], tuple[dict[str, Any], str]]) -> None:
    try:
        with _client(opts) as lc:
            doc, text = read(lc)
    except LightError as exc:
        _refused(opts["json"], exc)
        return
    except ProtocolError as exc:  # pragma: no cover - the library maps these to LightError
        _refused(opts["json"], LightError(Reason.MALFORMED, str(exc)))
        return
    _out(opts["json"], {"verified": True, **doc}, text)


def _common(f: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed([
        click.option("--node", "node", default=None,
                     help="URL of the node to ask (not trusted; default: the first node of .cluster/network.json)"),
        click.option("--genesis", "genesis", default=None, type=click.Path(dir_okay=False),
                     help="genesis file (trusted; default: .cluster/genesis.json)"),
        click.option("--state", "state", default=None,
                     help="trusted-state file (default ~/.afterchain/light/<chain>-<genesis hash>.json)"),
        click.option("--witness", "witness", default=None, help="a second node: its header at the answer's height must match"),
        click.option("--trust-hash", "trust_hash", default=None, help="start from this header hash (hex) instead of genesis (when there is no state file yet)"),
        click.option("--trust-height", "trust_height", type=int, default=None, help="height of --trust-hash"),
        click.option("--trusting-period-days", "trusting_period_days", type=float,
                     default=DEFAULT_TRUSTING_PERIOD_MS / DAY_MS, show_default=True),
        click.option("--json", "json", is_flag=True, help="machine-readable output"),
    ]):
        f = opt(f)
    return f


def _verified_text(v: Verified) -> str:
    return (f"verified at block {v.height} ({v.header_hash.hex()[:16]}...), state of block {v.state_height}, "
            f"proof {v.proof_bytes} bytes, {v.downloads} download(s)")


@click.group()
def light() -> None:
    """Verified reads from one untrusted node (light client)."""


@light.command("ticket")
@click.argument("ticket_id")
@_common
def ticket_cmd(ticket_id: str, **opts: Any) -> None:
    """A ticket's verified status and timeline (or its proven absence)."""
    try:
        tid = bytes.fromhex(ticket_id)
    except ValueError:
        tid = b""
    if len(tid) != 32:
        click.echo("error: a ticket id is 64 hex characters", err=True)
        sys.exit(EXIT_USAGE)

    def read(lc: LightClient) -> tuple[dict[str, Any], str]:
        view, v = lc.ticket(tid)
        lines = [f"ticket {tid.hex()}"]
        if not view.exists:
            lines.append("does not exist (proven absent)")
        else:
            lines.append(f"status: {view.status} ({view.kind}, product {view.product}, org {view.org})")
            lines.append("timeline:")
            for e in view.timeline:
                note = f"  {e['note']}" if e["note"] else ""
                lines.append(f"  {e['time']}  {e['status']}{note}")
        lines.append(_verified_text(v))
        return {**view.to_json(), "proof": v.to_json()}, "\n".join(lines)

    _run(opts, read)


def _generic(v: Verified, what: str) -> tuple[dict[str, Any], str]:
    from afterchain.node.common.files import jsonable

    value = v.decoded()
    text = f"{what}: " + ("does not exist (proven absent)" if value is None else json.dumps(jsonable(value), sort_keys=True))
    return {"value": jsonable(value), "proof": v.to_json()}, text + "\n" + _verified_text(v)


@light.command("product")
@click.argument("gtin")
@click.argument("serial")
@_common
def product_cmd(gtin: str, serial: str, **opts: Any) -> None:
    """A product's verified passport: maker, model, batch, trace and custody, sale, warranty,
    recall, tickets and the service organisation's quality figures, all proven against one
    certified header (the history against the record's hash chain)."""

    def read(lc: LightClient) -> tuple[dict[str, Any], str]:
        from afterchain.node.common.files import jsonable

        values, v = lc.passport(gtin, serial)
        view = passport_view(gtin, serial, values)
        # "value": the verified product record itself (as `light state` shows it)
        return ({**view, "value": jsonable(v.decoded()), "proof": v.to_json()},
                "\n".join([*passport_lines(view), _verified_text(v)]))

    _run(opts, read)


@light.command("quality")
@click.argument("org")
@_common
def quality_cmd(org: str, **opts: Any) -> None:
    """An organisation's verified service-quality figures (which medians are exact, which bounds)."""

    def read(lc: LightClient) -> tuple[dict[str, Any], str]:
        v = lc.quality(org)
        raw = v.decoded()
        q = None if raw is None else quality_report(raw)
        from afterchain.node.common.files import jsonable

        return {"org": org, "quality": q, "value": jsonable(raw), "proof": v.to_json()}, "\n".join(
            [f"service quality of {org}", *quality_lines(org, q), _verified_text(v)])

    _run(opts, read)


@light.command("state")
@click.argument("key_hex")
@_common
def state_cmd(key_hex: str, **opts: Any) -> None:
    """Any state key (hex), verified."""
    try:
        key = bytes.fromhex(key_hex)
    except ValueError:
        click.echo("error: the key is hex", err=True)
        sys.exit(EXIT_USAGE)
    _run(opts, lambda lc: _generic(lc.state(key), f"key {key_hex}"))


@light.command("status")
@click.option("--genesis", "genesis", default=None, type=click.Path(dir_okay=False))
@click.option("--state", "state", default=None)
@click.option("--json", "as_json", is_flag=True)
def status_cmd(genesis: str | None, state: str | None, as_json: bool) -> None:
    """What this light client trusts now."""
    g = _load_genesis(_genesis_path(genesis))
    path = Path(state) if state else default_state_path(g.chain_id, g.hash())
    try:
        trust = load_trust(path, g) or trust_from_genesis(g)
    except ValueError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    doc = {"chain_id": trust.chain_id, "height": trust.height, "header_hash": trust.header_hash.hex(), "time_ms": trust.time_ms,
           "state_height": trust.state_height, "validators": [v.hex() for v in trust.validators.validators], "file": str(path)}
    _out(as_json, doc, f"chain {trust.chain_id}: trusted header {trust.height} ({trust.header_hash.hex()[:16]}...), "
                       f"{trust.validators.n} validators, file {path}")


def register(cli: click.Group) -> None:
    cli.add_command(light)
