"""Shared by the client command groups: the common options as `Common` (``--node``,
``--key``, ``--json``, ``-q``, ``--timeout``, ``--no-wait``, ``--nonce``; `signing` and `reading`
add them to a command), the exit codes and the mapping of client errors to them
(`client_errors`), output (tables, JSON, times, durations), and the two shapes of a command:
`send` (sign, submit, wait, print the outcome) and `read` (fetch, print).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table

from afterchain.node.client import (
    DEFAULT_TIMEOUT_S,
    Client,
    ClientError,
    InvalidInput,
    NotFound,
    Outcome,
    Rejected,
    TimedOut,
    Unreachable,
    as_key,
    content_hash,
)
from afterchain.node.common.keys import load_key

__all__ = [
    "CLUSTER_MANIFEST", "EXIT_OK", "EXIT_REJECTED", "EXIT_TIMEOUT", "EXIT_UNREACHABLE", "EXIT_USAGE",
    "Common", "base_url_option", "client_errors", "console", "customer_key", "echo_json", "fail", "fmt_count", "fmt_dur",
    "fmt_ms", "hash_text", "json_option", "kv_table", "link_anchor", "link_base", "link_options", "node_option", "print_outcome", "read", "reading",
    "send", "short", "signing",
]

EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_TIMEOUT = 0, 1, 2, 3, 4
CLUSTER_MANIFEST = Path(".cluster") / "network.json"


# --------------------------------------------------------------------------- common options


@dataclass
class Common:
    """The options every client command shares, and the `Client` they make."""

    nodes: tuple[str, ...]
    key: str | None
    as_json: bool
    quiet: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S
    wait: bool = True
    nonce: int | None = None

    def node_urls(self) -> list[str]:
        urls = [u for n in self.nodes for u in n.replace(",", " ").split()]
        if not urls:
            env = os.environ.get("AFTERCHAIN_NODE", "")
            urls = env.replace(",", " ").split()
        if not urls:
            manifest = Path(os.environ.get("AFTERCHAIN_CLUSTER_DIR", ".cluster")) / "network.json"
            if manifest.exists():
                try:
                    urls = [f"http://127.0.0.1:{n['api_port']}" for n in json.loads(manifest.read_text())["nodes"]]
                except (ValueError, KeyError, TypeError) as exc:
                    raise InvalidInput("client.no_nodes", f"cannot read node URLs from {manifest}: {exc}") from None
        if not urls:
            raise InvalidInput(
                "client.no_nodes",
                "no node given: pass --node URL (repeatable), set AFTERCHAIN_NODE, "
                "or run inside a directory with .cluster/network.json",
            )
        return urls

    def client(self, *, signing: bool = True) -> Client:
        if signing and not self.key:
            raise InvalidInput("client.no_key", "this command signs an event: pass --key FILE (or set AFTERCHAIN_KEY)")
        return Client(self.node_urls(), key=self.key if signing else None)


def node_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--node",
        "node",
        multiple=True,
        metavar="URL",
        help="Node API URL; repeat for failover. Default: $AFTERCHAIN_NODE, else ./.cluster/network.json.",
    )(f)


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of tables.")(f)


def signing(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options of a command that signs and submits one event; passes a `Common` first."""

    @functools.wraps(f)
    def wrapper(
        *args: Any,
        node: tuple[str, ...],
        key: str | None,
        as_json: bool,
        quiet: bool,
        timeout: float,
        no_wait: bool,
        nonce: int | None,
        **kw: Any,
    ) -> Any:
        return f(Common(node, key, as_json, quiet, timeout, not no_wait, nonce), *args, **kw)

    opts: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        node_option,
        click.option(
            "--key",
            "key",
            envvar="AFTERCHAIN_KEY",
            metavar="FILE",
            type=click.Path(dir_okay=False),
            help="Key file to sign with (default: $AFTERCHAIN_KEY).",
        ),
        json_option,
        click.option("-q", "--quiet", is_flag=True, help="Print only the event id (= the id of what it creates)."),
        click.option(
            "--timeout",
            type=click.FloatRange(0.1, 3600),
            default=DEFAULT_TIMEOUT_S,
            show_default=True,
            help="Seconds to wait for the outcome.",
        ),
        click.option("--no-wait", is_flag=True, help="Return once a node accepted the event (exit 0), do not wait."),
        click.option(
            "--nonce",
            type=click.IntRange(1),
            default=None,
            help="Sign with this nonce (expert: normally learned from the node and counted).",
        ),
    ]
    for opt in reversed(opts):
        wrapper = opt(wrapper)
    return wrapper


def reading(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options of a read-only command; passes a `Common` first."""

    @functools.wraps(f)
    def wrapper(*args: Any, node: tuple[str, ...], as_json: bool, **kw: Any) -> Any:
        return f(Common(node, None, as_json), *args, **kw)

    return node_option(json_option(wrapper))


# --------------------------------------------------------------------------- output and exit codes


def console() -> Console:
    # CliRunner swaps sys.stdout per invocation: bind a console to the current one
    return Console(file=sys.stdout, highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 120)


def echo_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, sort_keys=True))


def fail(
    c: Common, code: int, what: str, err_code: str, message: str, extra: dict[str, Any] | None = None
) -> NoReturn:
    if c.as_json:
        echo_json({"status": what, "code": err_code, "message": message, **(extra or {})})
    click.echo(f"{what}: {err_code}: {message}", err=True)
    sys.exit(code)


@contextlib.contextmanager
def client_errors(c: Common) -> Iterator[None]:
    """Map client errors to the stable exit codes, printing the node's code and message."""
    try:
        yield
    except Rejected as exc:
        extra = {"id": exc.event_id.hex()} if exc.event_id else {}
        fail(c, EXIT_REJECTED, "rejected", exc.code, exc.message, extra)
    except TimedOut as exc:
        fail(
            c,
            EXIT_TIMEOUT,
            "timeout",
            exc.code,
            exc.message + " (it may still commit: afterchain event wait ID)",
            {"id": exc.event_id.hex()},
        )
    except Unreachable as exc:
        fail(c, EXIT_UNREACHABLE, "unreachable", exc.code, exc.message)
    except InvalidInput as exc:
        fail(c, EXIT_USAGE, "invalid", exc.code, exc.message)
    except NotFound as exc:
        fail(c, EXIT_REJECTED, "not_found", exc.code, exc.message)
    except ClientError as exc:
        fail(c, EXIT_REJECTED, "error", exc.code, exc.message)


def fmt_ms(t: Any) -> str:
    if not isinstance(t, int) or t <= 0:
        return "-"
    return datetime.fromtimestamp(t / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def fmt_count(value: Any) -> Any:
    return len(value) if isinstance(value, list) else value


def short(value: Any, n: int = 16) -> str:
    text = "-" if value is None else str(value)
    return text if len(text) <= n + 1 else text[:n] + "…"


def fmt_dur(ms: Any) -> str:
    if not isinstance(ms, int):
        return "-"
    s = ms / 1000
    if s < 120:
        return f"{s:g} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172_800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def kv_table(title: str, rows: list[tuple[str, Any]]) -> Table:
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column("field", style="bold")
    t.add_column("value", overflow="fold")
    for k, v in rows:
        t.add_row(k, "-" if v is None else str(v))
    return t


def print_outcome(c: Common, o: Outcome, created: str | None) -> None:
    if c.quiet:
        click.echo(o.id.hex())
        return
    doc = o.to_json()
    if created:
        doc[created] = o.id.hex()
    if c.as_json:
        echo_json(doc)
        return
    rows: list[tuple[str, Any]] = [("status", o.status), ("event", o.type), ("id", o.id.hex())]
    if o.height is not None:
        rows.append(("block", f"{o.height} (index {o.index})"))
    if created:
        rows.append((created, o.id.hex()))
    rows.extend((k.replace("_", " "), v) for k, v in o.extra.items())
    console().print(kv_table(f"{o.type or 'event'}: {o.status}", rows))


def send(
    c: Common, make: Callable[[Client], Any], *, created: str | None = None, ticket: str | bool | None = None,
    proposal: str | bool | None = None,
) -> None:
    """Sign the event `make` builds, submit it, wait for its outcome (unless --no-wait), print.

    `ticket`: the event is about this ticket (True: it creates it); its new status is shown.
    `proposal`: likewise for a governance proposal (its status and result are shown)."""
    with client_errors(c), c.client() as cl:
        if c.nonce is not None:
            cl.set_next_nonce(c.nonce)
        ev = make(cl)
        if c.wait:
            o = cl.submit_and_wait(ev, timeout_s=c.timeout_s)
            if ticket and not c.quiet:
                with contextlib.suppress(ClientError):
                    t = cl.ticket(ev.id if ticket is True else ticket)
                    o = dataclasses.replace(o, extra={"ticket_status": t["status"]})
            if proposal and o.committed and not c.quiet:
                with contextlib.suppress(ClientError):
                    p = cl.proposal(ev.id if proposal is True else proposal)
                    o = dataclasses.replace(o, extra={"proposal_status": p["status"], "proposal_result": p["result"]})
        else:
            o = cl.submit(ev)[0]
            if o.status == "rejected":
                raise Rejected(o.code or "rejected", o.message or "", ev.id)
        print_outcome(c, o, created)


def read(c: Common, fetch: Callable[[Client], Any], show: Callable[[Any], None]) -> None:
    with client_errors(c), c.client(signing=False) as cl:
        doc = fetch(cl)
        if c.as_json:
            echo_json(doc)
        else:
            show(doc)


def link_base(c: Common, base_url: str | None) -> str:
    """The base URL of customer links: --base-url, else $AFTERCHAIN_LINK_BASE, else the
    first node's URL (a node serves the passport and ticket pages itself)."""
    from afterchain.node.client.links import check_base_url

    return check_base_url(base_url or os.environ.get("AFTERCHAIN_LINK_BASE") or c.node_urls()[0])


def base_url_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--base-url", "base_url", default=None, metavar="URL",
                        help="Where customers open the pages (default: $AFTERCHAIN_LINK_BASE, else the first node).")(f)


def link_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--base-url, --genesis FILE and --witness URL (repeatable) of a command that makes a customer link."""
    f = click.option("--witness", "witnesses", multiple=True, metavar="URL",
                     help="Another node the page asks for its latest header (freshness); repeatable.")(f)
    f = click.option("--genesis", "genesis_file", default=None, metavar="FILE",
                     help="The network's genesis file: its hash is the link's trust anchor (?g=). Default: "
                          "$AFTERCHAIN_CLUSTER_DIR/genesis.json (.cluster), else the node's /v1/genesis (unverified).")(f)
    return base_url_option(f)


def link_anchor(c: Common, genesis_file: str | None) -> str:
    """The genesis hash (hex) a customer link carries as its trust anchor: of --genesis FILE,
    else of the local network's genesis.json, else of the genesis the node serves: then a
    warning on stderr says it was not verified (a node could serve another chain's)."""
    from afterchain.node.common.files import load_genesis
    from afterchain.protocol.errors import ProtocolError
    from afterchain.protocol.genesis import Genesis

    local = Path(os.environ.get("AFTERCHAIN_CLUSTER_DIR", ".cluster")) / "genesis.json"
    path = genesis_file or (str(local) if local.exists() else None)
    if path is not None:
        try:
            return load_genesis(path).hash().hex()
        except ValueError as exc:
            raise InvalidInput("client.invalid_genesis", str(exc)) from None
    with c.client(signing=False) as cl:
        doc = cl.get_json("/v1/genesis")
        url = cl.nodes[0]  # the node that answered
    try:
        g = Genesis.decode(bytes.fromhex(doc["encoded"]))
    except (KeyError, TypeError, ValueError, ProtocolError) as exc:
        raise ClientError("client.bad_answer", f"{url}/v1/genesis is not a genesis: {exc}") from None
    if g.hash().hex() != doc.get("hash"):
        raise ClientError("client.bad_answer", f"{url}/v1/genesis: its hash does not match its encoding")
    click.echo(f"warning: the link's trust anchor (genesis {g.hash().hex()[:16]}..., chain {g.chain_id!r}) was taken "
               f"from {url} without verification; compare it with your network's genesis, or pass --genesis FILE",
               err=True)
    return g.hash().hex()


def hash_text(text: str | None) -> bytes | None:
    return None if text is None else content_hash(text)


def customer_key(value: str) -> bytes:
    """A customer public key from 64 hex characters or a key file."""
    if len(value) == 64:
        with contextlib.suppress(ClientError):
            return as_key(value)
    p = Path(value)
    if p.exists():
        try:
            return load_key(p).public
        except Exception as exc:
            raise InvalidInput("key.file", str(exc)) from None
    raise InvalidInput("client.invalid_key", f"{value!r} is neither a public key (64 hex) nor a key file")
