"""Client subcommands of `afterchain`: build, sign, submit and follow after-sales events.

Owns the command line face of `node.client`. Every command takes ``--node URL``
(repeatable, failover; default: ``$AFTERCHAIN_NODE`` (comma-separated), else the nodes of
``network.json`` in ``$AFTERCHAIN_CLUSTER_DIR`` or ``./.cluster``, written by
``./scripts/cluster up``), ``--json`` (machine
output) and, when it signs, ``--key FILE``. The chain id comes from the node.

Exit codes (`node.cli`): 0 committed / found, 1 rejected or not found (the node's code
and message are printed), 2 usage or bad input, 3 no node reachable, 4 timed out waiting
for the outcome (the event may still commit; ``afterchain event wait ID`` follows it).

Free text (descriptions, notes, order references, reasons) is hashed locally
(`node.client.content_hash`); only the hash goes on the ledger.
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

from afterchain.node.client.sdk import (
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
    customer_account,
)
from afterchain.node.common.keys import load_key
from afterchain.protocol import bodies as B
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.types import PublicKey

__all__ = ["register"]

EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_TIMEOUT = 0, 1, 2, 3, 4
CLUSTER_MANIFEST = Path(".cluster") / "network.json"


# --------------------------------------------------------------------------- common options


@dataclass
class Common:
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


def _node_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--node",
        "node",
        multiple=True,
        metavar="URL",
        help="Node API URL; repeat for failover. Default: $AFTERCHAIN_NODE, else ./.cluster/network.json.",
    )(f)


def _json_option(f: Callable[..., Any]) -> Callable[..., Any]:
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
        _node_option,
        click.option(
            "--key",
            "key",
            envvar="AFTERCHAIN_KEY",
            metavar="FILE",
            type=click.Path(dir_okay=False),
            help="Key file to sign with (default: $AFTERCHAIN_KEY).",
        ),
        _json_option,
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

    return _node_option(_json_option(wrapper))


# --------------------------------------------------------------------------- output and exit codes


def _console() -> Console:
    # CliRunner swaps sys.stdout per invocation: bind a console to the current one
    return Console(file=sys.stdout, highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 120)


def _echo_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, sort_keys=True))


def _fail(
    c: Common, code: int, what: str, err_code: str, message: str, extra: dict[str, Any] | None = None
) -> NoReturn:
    if c.as_json:
        _echo_json({"status": what, "code": err_code, "message": message, **(extra or {})})
    click.echo(f"{what}: {err_code}: {message}", err=True)
    sys.exit(code)


@contextlib.contextmanager
def _errors(c: Common) -> Iterator[None]:
    """Map client errors to the stable exit codes, printing the node's code and message."""
    try:
        yield
    except Rejected as exc:
        extra = {"id": exc.event_id.hex()} if exc.event_id else {}
        _fail(c, EXIT_REJECTED, "rejected", exc.code, exc.message, extra)
    except TimedOut as exc:
        _fail(
            c,
            EXIT_TIMEOUT,
            "timeout",
            exc.code,
            exc.message + " (it may still commit: afterchain event wait ID)",
            {"id": exc.event_id.hex()},
        )
    except Unreachable as exc:
        _fail(c, EXIT_UNREACHABLE, "unreachable", exc.code, exc.message)
    except InvalidInput as exc:
        _fail(c, EXIT_USAGE, "invalid", exc.code, exc.message)
    except NotFound as exc:
        _fail(c, EXIT_REJECTED, "not_found", exc.code, exc.message)
    except ClientError as exc:
        _fail(c, EXIT_REJECTED, "error", exc.code, exc.message)


def _ms(t: Any) -> str:
    if not isinstance(t, int) or t <= 0:
        return "-"
    return datetime.fromtimestamp(t / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _count(value: Any) -> Any:
    return len(value) if isinstance(value, list) else value


def _short(value: Any, n: int = 16) -> str:
    text = "-" if value is None else str(value)
    return text if len(text) <= n + 1 else text[:n] + "…"


def _dur(ms: Any) -> str:
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


def _kv_table(title: str, rows: list[tuple[str, Any]]) -> Table:
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column("field", style="bold")
    t.add_column("value", overflow="fold")
    for k, v in rows:
        t.add_row(k, "-" if v is None else str(v))
    return t


def _print_outcome(c: Common, o: Outcome, created: str | None) -> None:
    if c.quiet:
        click.echo(o.id.hex())
        return
    doc = o.to_json()
    if created:
        doc[created] = o.id.hex()
    if c.as_json:
        _echo_json(doc)
        return
    rows: list[tuple[str, Any]] = [("status", o.status), ("event", o.type), ("id", o.id.hex())]
    if o.height is not None:
        rows.append(("block", f"{o.height} (index {o.index})"))
    if created:
        rows.append((created, o.id.hex()))
    rows.extend((k.replace("_", " "), v) for k, v in o.extra.items())
    _console().print(_kv_table(f"{o.type or 'event'}: {o.status}", rows))


def _send(
    c: Common, make: Callable[[Client], Any], *, created: str | None = None, ticket: str | bool | None = None,
    proposal: str | bool | None = None,
) -> None:
    """Sign the event `make` builds, submit it, wait for its outcome (unless --no-wait), print.

    `ticket`: the event is about this ticket (True: it creates it); its new status is shown.
    `proposal`: likewise for a governance proposal (its status and result are shown)."""
    with _errors(c), c.client() as cl:
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
        _print_outcome(c, o, created)


def _read(c: Common, fetch: Callable[[Client], Any], show: Callable[[Any], None]) -> None:
    with _errors(c), c.client(signing=False) as cl:
        doc = fetch(cl)
        if c.as_json:
            _echo_json(doc)
        else:
            show(doc)


def _h(text: str | None) -> bytes | None:
    return None if text is None else content_hash(text)


def _customer_key(value: str) -> bytes:
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


# --------------------------------------------------------------------------- product


@click.group()
def product() -> None:
    """Products: register, transfer, sell, trace, recall, show, history."""


@product.command("register")
@click.argument("gtin")
@click.argument("serial")
@click.option("--model", required=True, help="Model name.")
@click.option("--batch", required=True, help="Batch / lot (GS1 AI 10).")
@click.option("--produced-ms", type=int, default=None, help="Production time, ms since the epoch (default: now).")
@signing
def product_register(c: Common, gtin: str, serial: str, model: str, batch: str, produced_ms: int | None) -> None:
    """Register product GTIN/SERIAL you made (key: a manufacturer's)."""
    import time

    produced = int(time.time() * 1000) if produced_ms is None else produced_ms
    _send(
        c,
        lambda cl: cl.build.product_register(
            gtin=gtin, serial=serial, model=model, batch=batch, production_time_ms=produced
        ),
    )


@product.command("transfer")
@click.argument("gtin")
@click.argument("serial")
@click.option("--to-org", default=None, help="Organisation receiving the product.")
@click.option("--to-customer", default=None, metavar="KEY", help="Customer public key (hex) or key file.")
@signing
def product_transfer(c: Common, gtin: str, serial: str, to_org: str | None, to_customer: str | None) -> None:
    """Hand product GTIN/SERIAL to an organisation or a customer (key: its current owner's)."""
    _send(
        c,
        lambda cl: cl.build.product_transfer(
            gtin=gtin,
            serial=serial,
            kind="transfer",
            to_org=to_org,
            to_customer=_customer_key(to_customer) if to_customer else None,
        ),
    )


@product.command("sell")
@click.argument("gtin")
@click.argument("serial")
@click.option("--to-customer", required=True, metavar="KEY", help="The buyer's public key (hex) or key file.")
@click.option("--order", required=True, metavar="REF", help="Order reference (only its hash is recorded).")
@signing
def product_sell(c: Common, gtin: str, serial: str, to_customer: str, order: str) -> None:
    """Sell product GTIN/SERIAL to a customer (key: a retailer's or manufacturer's that owns it)."""
    _send(
        c,
        lambda cl: cl.build.product_sell(
            gtin=gtin, serial=serial, to_customer=_customer_key(to_customer), order_ref_hash=content_hash(order)
        ),
    )


@product.command("trace")
@click.argument("gtin")
@click.argument("serial")
@click.option("--step", "biz_step", required=True, type=click.Choice(B.BIZ_STEPS), help="EPCIS business step.")
@click.option("--disposition", required=True, type=click.Choice(B.DISPOSITIONS), help="State the product is left in.")
@click.option("--location", required=True, help="Location (only its hash is recorded).")
@click.option("--ref", default=None, help="A reference document (only its hash is recorded).")
@signing
def product_trace(
    c: Common, gtin: str, serial: str, biz_step: str, disposition: str, location: str, ref: str | None
) -> None:
    """Record an observation of product GTIN/SERIAL (key: a member's)."""
    _send(
        c,
        lambda cl: cl.build.trace_record(
            gtin=gtin,
            serial=serial,
            biz_step=biz_step,
            disposition=disposition,
            location_hash=content_hash(location),
            ref_hash=_h(ref),
        ),
    )


@product.command("recall")
@click.argument("gtin")
@click.argument("batch")
@click.option("--reason", required=True, help="Why (only its hash is recorded).")
@signing
def product_recall(c: Common, gtin: str, batch: str, reason: str) -> None:
    """Recall every product of GTIN in BATCH (key: its manufacturer's)."""
    _send(c, lambda cl: cl.build.product_recall(gtin=gtin, batch=batch, reason_hash=content_hash(reason)))


@product.command("show")
@click.argument("gtin")
@click.argument("serial")
@reading
def product_show(c: Common, gtin: str, serial: str) -> None:
    """Show product GTIN/SERIAL: maker, model, batch, owner, warranty."""

    def show(p: dict[str, Any]) -> None:
        _console().print(
            _kv_table(
                f"product {gtin}/{serial}",
                [
                    ("manufacturer", p.get("mfr")),
                    ("model", p.get("model")),
                    ("batch", p.get("batch")),
                    ("produced", _ms(p.get("prod_ms"))),
                    ("registered", _ms(p.get("reg_ms"))),
                    ("owner", p.get("owner")),
                    ("seller", p.get("seller")),
                    ("sold", _ms(p.get("sale_ms"))),
                    ("disposition", p.get("disp")),
                    ("warranty policy", p.get("policy")),
                    ("warranty from", _ms(p.get("w_start"))),
                    ("history entries", _count(p.get("hist"))),
                ],
            )
        )

    _read(c, lambda cl: cl.product(gtin, serial), show)


@product.command("history")
@click.argument("gtin")
@click.argument("serial")
@reading
def product_history(c: Common, gtin: str, serial: str) -> None:
    """Everything that happened to product GTIN/SERIAL since it was registered."""

    def show(doc: dict[str, Any]) -> None:
        t = Table(title=f"history of {gtin}/{serial}", title_justify="left")
        for col in ("#", "what", "time (UTC)", "event", "detail"):
            t.add_column(col, overflow="fold")
        for i, e in enumerate(doc["history"]):
            what, at, eid, *rest = e
            t.add_row(str(i), str(what), _ms(at), _short(eid), " ".join(_short(x, 24) for x in rest))
        _console().print(t)

    _read(c, lambda cl: {"gtin": gtin, "serial": serial, "history": cl.product_history(gtin, serial)}, show)


# --------------------------------------------------------------------------- policy and warranty


@click.group()
def policy() -> None:
    """Warranty policies / service agreements."""


@policy.command("register")
@click.option("--name", required=True, help="Policy name.")
@click.option("--service-org", required=True, help="Organisation that works tickets under this policy.")
@click.option("--coverage-days", type=click.IntRange(1), required=True, help="Coverage period from activation, days.")
@click.option("--fault", "faults", multiple=True, help="A covered fault type; repeat (none given: every fault).")
@click.option(
    "--first-response-hours", type=click.FloatRange(0.001), required=True, help="First-response deadline, hours."
)
@click.option("--resolution-hours", type=click.FloatRange(0.001), required=True, help="Resolution deadline, hours.")
@click.option("--penalty", type=click.IntRange(0), default=0, help="SLA breach penalty, minor units.")
@click.option(
    "--return-days", type=click.IntRange(0), default=0, help="Return window from the sale, days (0: chain default)."
)
@click.option(
    "--contract", "contract_id", default=None, help="Id of a deployed contract deciding instead of these terms."
)
@signing
def policy_register(
    c: Common,
    name: str,
    service_org: str,
    coverage_days: int,
    faults: tuple[str, ...],
    first_response_hours: float,
    resolution_hours: float,
    penalty: int,
    return_days: int,
    contract_id: str | None,
) -> None:
    """Register a warranty policy owned by your organisation; prints its id."""
    day, hour = 86_400_000, 3_600_000
    _send(
        c,
        lambda cl: cl.build.policy_register(
            name=name,
            service_org=service_org,
            coverage_period_ms=coverage_days * day,
            covered_faults=faults,
            first_response_ms=int(first_response_hours * hour),
            resolution_ms=int(resolution_hours * hour),
            penalty_amount=penalty,
            return_window_ms=return_days * day,
            contract_id=contract_id,
        ),
        created="policy_id",
    )


@click.group()
def warranty() -> None:
    """Warranties: bind a sold product to a policy."""


@warranty.command("activate")
@click.argument("gtin")
@click.argument("serial")
@click.option("--policy", "policy_id", required=True, help="Policy id.")
@signing
def warranty_activate(c: Common, gtin: str, serial: str, policy_id: str) -> None:
    """Start the warranty of sold product GTIN/SERIAL under a policy (key: its seller's)."""
    _send(c, lambda cl: cl.build.warranty_activate(gtin=gtin, serial=serial, policy_id=policy_id))


# --------------------------------------------------------------------------- tickets


@click.group()
def ticket() -> None:
    """Tickets: open, ack, update, assign, escalate, resolve, reject, confirm, reopen, close, rate, show, list."""


@ticket.command("open")
@click.argument("gtin")
@click.argument("serial")
@click.option("--kind", type=click.Choice(B.TICKET_KINDS[:-1]), default="repair", show_default=True)
@click.option("--fault", "fault_type", default="other", show_default=True, help="Fault type code (a-z 0-9 _ . -).")
@click.option("--description", default="", help="What is wrong (only its hash is recorded).")
@click.option(
    "--attach",
    "attachments",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A file (photo, invoice) to attach; only its hash is recorded. Repeat.",
)
@signing
def ticket_open(
    c: Common, gtin: str, serial: str, kind: str, fault_type: str, description: str, attachments: tuple[str, ...]
) -> None:
    """Open a ticket about product GTIN/SERIAL you own (key: the customer's). Its id is printed."""
    atts = [content_hash(Path(a).read_bytes()) for a in attachments]
    _send(
        c,
        lambda cl: cl.build.ticket_open(
            kind=kind,
            gtin=gtin,
            serial=serial,
            fault_type=fault_type,
            description_hash=content_hash(description),
            attachments=atts,
        ),
        created="ticket_id",
        ticket=True,
    )


@ticket.command("ack")
@click.argument("ticket_id")
@click.option("--note", default=None, help="A note (only its hash is recorded).")
@signing
def ticket_ack(c: Common, ticket_id: str, note: str | None) -> None:
    """Acknowledge ticket TICKET_ID (first response; key: the assigned organisation's)."""
    _send(c, lambda cl: cl.build.ticket_ack(ticket_id=ticket_id, note_hash=_h(note)), ticket=ticket_id)


@ticket.command("update")
@click.argument("ticket_id")
@click.option("--status", required=True, type=click.Choice(B.TICKET_UPDATE_STATUSES))
@click.option("--note", default=None, help="A note (only its hash is recorded).")
@signing
def ticket_update(c: Common, ticket_id: str, status: str, note: str | None) -> None:
    """Move a ticket to in_progress / waiting_customer (or answer while it waits on you)."""
    _send(
        c, lambda cl: cl.build.ticket_update(ticket_id=ticket_id, status=status, note_hash=_h(note)), ticket=ticket_id
    )


@ticket.command("assign")
@click.argument("ticket_id")
@click.argument("org")
@signing
def ticket_assign(c: Common, ticket_id: str, org: str) -> None:
    """Hand a ticket to organisation ORG (key: the assignee's or the policy owner's)."""
    _send(c, lambda cl: cl.build.ticket_assign(ticket_id=ticket_id, org_id=org), ticket=ticket_id)


@ticket.command("escalate")
@click.argument("ticket_id")
@click.option("--reason", required=True, help="Why you dispute the handling (only its hash is recorded).")
@signing
def ticket_escalate(c: Common, ticket_id: str, reason: str) -> None:
    """Dispute the handling of a ticket (key: the customer's)."""
    _send(
        c, lambda cl: cl.build.ticket_escalate(ticket_id=ticket_id, reason_hash=content_hash(reason)), ticket=ticket_id
    )


@ticket.command("resolve")
@click.argument("ticket_id")
@click.option("--resolution", type=click.Choice(B.RESOLUTIONS), default="repaired", show_default=True)
@click.option("--details", default="", help="What was done (only its hash is recorded).")
@signing
def ticket_resolve(c: Common, ticket_id: str, resolution: str, details: str) -> None:
    """Resolve a ticket (key: the assigned organisation's)."""
    _send(
        c,
        lambda cl: cl.build.ticket_resolve(
            ticket_id=ticket_id, resolution=resolution, resolution_hash=content_hash(details)
        ),
        ticket=ticket_id,
    )


@ticket.command("reject")
@click.argument("ticket_id")
@click.option("--reason-code", required=True, help="Reason code, e.g. warranty_void.")
@click.option("--reason", default=None, help="Explanation (only its hash is recorded).")
@signing
def ticket_reject(c: Common, ticket_id: str, reason_code: str, reason: str | None) -> None:
    """Refuse a claim (key: the assigned organisation's)."""
    _send(
        c,
        lambda cl: cl.build.ticket_reject(ticket_id=ticket_id, reason_code=reason_code, reason_hash=_h(reason)),
        ticket=ticket_id,
    )


@ticket.command("confirm")
@click.argument("ticket_id")
@signing
def ticket_confirm(c: Common, ticket_id: str) -> None:
    """Confirm the resolution; the ticket closes (key: the customer's)."""
    _send(c, lambda cl: cl.build.ticket_confirm(ticket_id=ticket_id), ticket=ticket_id)


@ticket.command("reopen")
@click.argument("ticket_id")
@click.option("--reason", required=True, help="Why (only its hash is recorded).")
@signing
def ticket_reopen(c: Common, ticket_id: str, reason: str) -> None:
    """Reopen a resolved ticket (key: the customer's)."""
    _send(c, lambda cl: cl.build.ticket_reopen(ticket_id=ticket_id, reason_hash=content_hash(reason)), ticket=ticket_id)


@ticket.command("close")
@click.argument("ticket_id")
@signing
def ticket_close(c: Common, ticket_id: str) -> None:
    """Withdraw an open ticket (key: the customer's)."""
    _send(c, lambda cl: cl.build.ticket_close(ticket_id=ticket_id), ticket=ticket_id)


@ticket.command("rate")
@click.argument("ticket_id")
@click.argument("score", type=click.IntRange(1, 5))
@click.option("--comment", default=None, help="A comment (only its hash is recorded).")
@signing
def ticket_rate(c: Common, ticket_id: str, score: int, comment: str | None) -> None:
    """Rate the handling of a closed ticket, 1-5, once (key: the customer's)."""
    _send(
        c,
        lambda cl: cl.build.rating_submit(ticket_id=ticket_id, score=score, comment_hash=_h(comment)),
        ticket=ticket_id,
    )


def _show_ticket(t: dict[str, Any]) -> None:
    con = _console()
    con.print(
        _kv_table(
            f"ticket {t['id']}",
            [
                ("status", t.get("status")),
                ("kind", t.get("kind")),
                ("product", f"{t.get('gtin')}/{t.get('serial')}"),
                ("customer", t.get("cust")),
                ("assigned to", t.get("org")),
                ("policy", t.get("policy")),
                ("opened", _ms(t.get("opened"))),
                ("acknowledged", _ms(t.get("ack"))),
                ("resolved", _ms(t.get("resolved"))),
                ("closed", _ms(t.get("closed"))),
                ("first response due", _ms(t.get("fr_due"))),
                ("resolution due", _ms(t.get("res_due"))),
                ("resolution", t.get("resolution")),
                ("reason", t.get("reason")),
                ("breaches", t.get("breaches")),
                ("penalties", t.get("penalties")),
                ("rating", t.get("rating")),
                ("escrow", t.get("escrow")),
            ],
        )
    )
    h = Table(title="history", title_justify="left")
    for col in ("status", "time (UTC)", "event", "note"):
        h.add_column(col, overflow="fold")
    for entry in t.get("hist", []):
        status, at, eid, note = (list(entry) + [None] * 4)[:4]
        h.add_row(str(status), _ms(at), "-" if eid is None else str(eid), "-" if note is None else str(note))
    con.print(h)
    ship = t.get("ship") or []
    if ship:
        st = Table(title=f"shipment checkpoints (carrier {t.get('carrier')})", title_justify="left")
        for col in ("checkpoint", "time (UTC)", "by", "location hash"):
            st.add_column(col, overflow="fold")
        for entry in ship:
            cp, at, by, loc = (list(entry) + [None] * 4)[:4]
            st.add_row(str(cp), _ms(at), str(by), str(loc))
        con.print(st)


@ticket.command("show")
@click.argument("ticket_id")
@reading
def ticket_show(c: Common, ticket_id: str) -> None:
    """Show a ticket: status, parties, deadlines, and every status change."""
    _read(c, lambda cl: cl.ticket(ticket_id), _show_ticket)


@ticket.command("list")
@click.option("--org", default=None, help="Organisation the tickets are assigned to.")
@click.option("--status", default=None, help="With --org: only tickets in this status (e.g. opened).")
@click.option(
    "--customer", default=None, metavar="KEY", help="Tickets a customer opened: public key (hex) or key file."
)
@reading
def ticket_list(c: Common, org: str | None, status: str | None, customer: str | None) -> None:
    """List the tickets assigned to an organisation (optionally in one status), or a customer's tickets."""
    if (org is None) == (customer is None):
        raise click.UsageError("give exactly one of --org and --customer")
    title = f"tickets of {org}" + (f" ({status})" if status else "") if org else "tickets of the customer"

    def fetch(cl: Client) -> dict[str, Any]:
        if org is not None:
            return {"org": org, "status": status, "tickets": cl.org_tickets(org, status)}
        key = _customer_key(customer or "")
        return {"customer": key.hex(), "tickets": cl.customer_tickets(key)}

    def show(doc: dict[str, Any]) -> None:
        t = Table(title=title, title_justify="left")
        t.add_column("ticket id")
        for tid in doc["tickets"]:
            t.add_row(tid)
        _console().print(t)

    _read(c, fetch, show)


# --------------------------------------------------------------------------- returns and shipments


@click.group("return")
def return_() -> None:
    """Returns: request, approve, reject, receive."""


@return_.command("request")
@click.argument("gtin")
@click.argument("serial")
@click.option("--reason-code", required=True, help="Reason code, e.g. changed_mind.")
@click.option("--reason", default="", help="Explanation (only its hash is recorded).")
@signing
def return_request(c: Common, gtin: str, serial: str, reason_code: str, reason: str) -> None:
    """Ask to return product GTIN/SERIAL you own; creates a return ticket (key: the customer's)."""
    _send(
        c,
        lambda cl: cl.build.return_request(
            gtin=gtin, serial=serial, reason_code=reason_code, reason_hash=content_hash(reason)
        ),
        created="ticket_id",
        ticket=True,
    )


@return_.command("approve")
@click.argument("ticket_id")
@signing
def return_approve(c: Common, ticket_id: str) -> None:
    """Approve a return within its window (key: the assigned organisation's)."""
    _send(c, lambda cl: cl.build.return_approve(ticket_id=ticket_id), ticket=ticket_id)


@return_.command("reject")
@click.argument("ticket_id")
@click.option("--reason-code", required=True, help="Reason code, e.g. too_late.")
@click.option("--reason", default=None, help="Explanation (only its hash is recorded).")
@signing
def return_reject(c: Common, ticket_id: str, reason_code: str, reason: str | None) -> None:
    """Refuse a return (key: the assigned organisation's)."""
    _send(
        c,
        lambda cl: cl.build.return_reject(ticket_id=ticket_id, reason_code=reason_code, reason_hash=_h(reason)),
        ticket=ticket_id,
    )


@return_.command("receive")
@click.argument("ticket_id")
@click.option("--condition", required=True, type=click.Choice(B.RETURN_CONDITIONS))
@click.option("--inspection", default=None, help="Inspection report (only its hash is recorded).")
@signing
def return_receive(c: Common, ticket_id: str, condition: str, inspection: str | None) -> None:
    """Record the returned product's arrival; the agreement then refunds or keeps the escrow."""
    _send(
        c,
        lambda cl: cl.build.return_receive(ticket_id=ticket_id, condition=condition, inspection_hash=_h(inspection)),
        ticket=ticket_id,
    )


@click.group()
def shipment() -> None:
    """Shipments of returns and repairs."""


@shipment.command("checkpoint")
@click.argument("ticket_id")
@click.option("--checkpoint", required=True, type=click.Choice(B.CHECKPOINTS))
@click.option("--location", required=True, help="Where (only its hash is recorded).")
@click.option("--tracking", default=None, help="Tracking number (only its hash is recorded).")
@signing
def shipment_checkpoint(c: Common, ticket_id: str, checkpoint: str, location: str, tracking: str | None) -> None:
    """Report where the shipment of a ticket is (key: a logistics member's)."""
    _send(
        c,
        lambda cl: cl.build.shipment_checkpoint(
            ticket_id=ticket_id, checkpoint=checkpoint, location_hash=content_hash(location), tracking_hash=_h(tracking)
        ),
        ticket=ticket_id,
    )


# --------------------------------------------------------------------------- escrow


@click.group()
def escrow() -> None:
    """Escrow: deposit, release, refund, show."""


@escrow.command("deposit")
@click.option("--amount", type=click.IntRange(1), required=True, help="Amount in minor units.")
@click.option("--payee-org", default=None, help="Organisation to be paid.")
@click.option(
    "--payee-customer", default=None, metavar="KEY", help="Customer to be paid: public key (hex) or key file."
)
@click.option("--ticket", "ticket_id", default=None, help="Bind to a return ticket: its outcome decides the escrow.")
@click.option("--ref", default=None, help="Order reference (only its hash is recorded).")
@signing
def escrow_deposit(
    c: Common, amount: int, payee_org: str | None, payee_customer: str | None, ticket_id: str | None, ref: str | None
) -> None:
    """Hold AMOUNT of your balance in a new escrow; prints its id."""
    _send(
        c,
        lambda cl: cl.build.escrow_deposit(
            amount=amount,
            payee_org=payee_org,
            payee_customer=_customer_key(payee_customer) if payee_customer else None,
            ticket_id=ticket_id,
            ref_hash=_h(ref),
        ),
        created="escrow_id",
    )


@escrow.command("release")
@click.argument("escrow_id")
@signing
def escrow_release(c: Common, escrow_id: str) -> None:
    """Release a held escrow to its payee (key: the payer's)."""
    _send(c, lambda cl: cl.build.escrow_release(escrow_id=escrow_id))


@escrow.command("refund")
@click.argument("escrow_id")
@signing
def escrow_refund(c: Common, escrow_id: str) -> None:
    """Give a held escrow back to its payer (key: the payee's)."""
    _send(c, lambda cl: cl.build.escrow_refund(escrow_id=escrow_id))


@escrow.command("show")
@click.argument("escrow_id")
@reading
def escrow_show(c: Common, escrow_id: str) -> None:
    """Show an escrow: amount, payer, payee, state."""
    _read(
        c,
        lambda cl: cl.escrow(escrow_id),
        lambda e: _console().print(_kv_table(f"escrow {e['id']}", [(k, v) for k, v in e.items() if k != "id"])),
    )


# --------------------------------------------------------------------------- organisations, accounts, events


@click.group()
def org() -> None:
    """Organisations: service quality, tickets, balance."""


@org.command("quality")
@click.argument("org_id")
@reading
def org_quality(c: Common, org_id: str) -> None:
    """Service quality of ORG_ID, computed from the ledger: response, resolution, breaches, rating."""

    def show(q: dict[str, Any]) -> None:
        rate = q.get("resolution_rate_permille")
        mean = q.get("mean_rating_centi")
        _console().print(
            _kv_table(
                f"service quality of {org_id}",
                [
                    ("since", _ms(q.get("since_ms"))),
                    ("tickets", q.get("tickets")),
                    ("resolved", q.get("resolved")),
                    ("resolution rate", f"{rate / 10:.1f} %" if isinstance(rate, int) else None),
                    ("median first response", _dur(q.get("median_first_response_ms"))),
                    ("median resolution", _dur(q.get("median_resolution_ms"))),
                    ("first responses", q.get("first_responses")),
                    ("SLA breaches", q.get("breaches")),
                    ("ratings", q.get("ratings")),
                    ("mean rating", f"{mean / 100:.2f} / 5" if isinstance(mean, int) and q.get("ratings") else None),
                ],
            )
        )

    _read(c, lambda cl: cl.quality(org_id), show)


@org.command("balance")
@click.argument("account")
@reading
def org_balance(c: Common, account: str) -> None:
    """Balance of ACCOUNT: an organisation id, a customer public key (hex) or key file."""

    def fetch(cl: Client) -> dict[str, Any]:
        acct = account
        if len(account) == 64 or Path(account).exists():
            acct = customer_account(_customer_key(account))
        return {"account": acct, "balance": cl.balance(acct)}

    _read(c, fetch, lambda d: click.echo(f"{d['account']}: {d['balance']}"))


@click.group()
def account() -> None:
    """Your key's account: nonce, balance."""


@account.command("show")
@click.option("--key", "key", envvar="AFTERCHAIN_KEY", required=True, type=click.Path(dir_okay=False), help="Key file.")
@reading
def account_show(c: Common, key: str) -> None:
    """Show the public key, nonce and balance of a key file (customers' balances hold refunds and penalties)."""

    def fetch(cl: Client) -> dict[str, Any]:
        try:
            kp = load_key(key)
        except Exception as exc:
            raise InvalidInput("key.file", str(exc)) from None
        a = cl.account(kp.public)
        return {
            **a,
            "customer_account": customer_account(kp.public),
            "balance": cl.balance(customer_account(kp.public)),
        }

    _read(c, fetch, lambda d: _console().print(_kv_table("account", list(d.items()))))


@click.group()
def event() -> None:
    """Events: show an outcome, wait for one."""


@event.command("show")
@click.argument("event_id")
@reading
def event_show(c: Common, event_id: str) -> None:
    """Show what became of an event: pending, committed (block, index) or rejected (code, message)."""
    _read(
        c,
        lambda cl: cl.event(event_id).to_json(),
        lambda d: _console().print(_kv_table(f"event {d['id']}", [(k, v) for k, v in d.items() if k != "id"])),
    )


@event.command("submit")
@click.argument("event_file", type=click.File("rb"))
@reading
@click.option("--timeout", type=click.FloatRange(0.1, 3600), default=DEFAULT_TIMEOUT_S, show_default=True)
def event_submit(c: Common, event_file: Any, timeout: float) -> None:
    """Submit a signed event from EVENT_FILE (its encoding, binary or hex; '-' reads stdin) and wait."""
    from afterchain.protocol.errors import ProtocolError
    from afterchain.protocol.events import SignedEvent

    data = event_file.read()
    with contextlib.suppress(ValueError):
        data = bytes.fromhex(data.decode().strip())
    with _errors(c), c.client(signing=False) as cl:
        try:
            signed = SignedEvent.decode(data)
        except ProtocolError as exc:
            raise InvalidInput(str(exc.code), f"not a signed event: {exc}") from None
        cl.types[signed.id] = signed.event.type
        _print_outcome(c, cl.submit_and_wait(signed, timeout_s=timeout), None)


@event.command("wait")
@click.argument("event_id")
@click.option("--timeout", type=click.FloatRange(0.1, 3600), default=DEFAULT_TIMEOUT_S, show_default=True)
@reading
def event_wait(c: Common, event_id: str, timeout: float) -> None:
    """Wait for an event's outcome; exit 0 committed, 1 rejected, 4 timed out."""
    c.timeout_s = timeout
    with _errors(c), c.client(signing=False) as cl:
        o = cl.wait(event_id, timeout_s=timeout).raise_if_rejected()
        _print_outcome(c, o, None)


# --------------------------------------------------------------------------- contracts


@click.group()
def contract() -> None:
    """Contracts: deploy code, call an entry point."""


@contract.command("deploy")
@click.argument("code_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--vm", "vm_id", type=click.Choice(["lua", "wasm"]), required=True)
@click.option("--vm-version", type=int, default=1, show_default=True)
@click.option("--name", required=True, help="Contract name.")
@signing
def contract_deploy(c: Common, code_file: str, vm_id: str, vm_version: int, name: str) -> None:
    """Deploy contract code from CODE_FILE; prints the contract id."""
    code = Path(code_file).read_bytes()
    _send(
        c,
        lambda cl: cl.build.contract_deploy(vm_id=vm_id, vm_version=vm_version, name=name, code=code),
        created="contract_id",
    )


@contract.command("call")
@click.argument("contract_id")
@click.argument("entry")
@click.option("--args-hex", default="", help="msgpack-encoded arguments, hex.")
@click.option("--gas", "gas_limit", type=click.IntRange(1), default=1_000_000, show_default=True)
@signing
def contract_call(c: Common, contract_id: str, entry: str, args_hex: str, gas_limit: int) -> None:
    """Call ENTRY of a deployed contract."""
    try:
        args = bytes.fromhex(args_hex)
    except ValueError:
        raise click.BadParameter("not hex", param_hint="--args-hex") from None
    _send(c, lambda cl: cl.build.contract_call(contract_id=contract_id, entry=entry, args=args, gas_limit=gas_limit))


# --------------------------------------------------------------------------- governance

_DURATION_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def duration_ms(text: str) -> int:
    """A duration such as ``90m``, ``12h``, ``30d``, ``1w``, ``1500ms`` (a bare number: ms) in ms."""
    t = text.strip().lower()
    num = t.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = t[len(num):] or "ms"
    if unit not in _DURATION_UNITS_MS:
        raise click.BadParameter(f"{text!r}: the unit is one of {', '.join(_DURATION_UNITS_MS)}")
    try:
        value = float(num)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a duration like 30d, 12h, 90m") from None
    ms = int(value * _DURATION_UNITS_MS[unit])
    if ms <= 0:
        raise click.BadParameter(f"{text!r} must be positive")
    return ms


class _Duration(click.ParamType):  # type: ignore[type-arg]
    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return duration_ms(str(value))
        except click.BadParameter as exc:
            self.fail(exc.message, param, ctx)


DURATION = _Duration()


@click.group("gov")
def gov() -> None:
    """Governance: propose a change, vote on it (validator keys), show proposals.

    Members and validators propose; only keys of the current validator set vote. A
    proposal is adopted when more than 2/3 of the current validators vote yes before its
    deadline (block time), rejected when 1/3 or more vote no, otherwise it expires with no
    effect. Validator and consensus changes take effect at a checkpoint boundary."""


@gov.group("propose")
def gov_propose() -> None:
    """Propose a change; prints the proposal id (= the event id)."""


def _proposing(f: Callable[..., Any]) -> Callable[..., Any]:
    """`signing` plus ``--voting-period``."""
    f = click.option("--voting-period", "voting_period_ms", type=DURATION, default="7d", show_default=True,
                     help="How long validators may vote (block time), e.g. 1h, 3d.")(f)
    return signing(f)


def _propose(c: Common, make: Callable[[Client], Any]) -> None:
    _send(c, make, created="proposal_id", proposal=True)


def _current_set(cl: Client) -> list[str]:
    return list(cl.validators()["adopted"]["validators"])


@gov_propose.command("add-validator")
@click.argument("key_hex")
@_proposing
def gov_add_validator(c: Common, key_hex: str, voting_period_ms: int) -> None:
    """Add the node key KEY_HEX (64 hex) to the current validator set (appended)."""
    key = as_key(key_hex).hex()

    def make(cl: Client) -> Any:
        current = _current_set(cl)
        if key in current:
            raise InvalidInput("gov.no_change", f"{key[:16]}... is already a validator")
        return cl.build.governance_validator_change(validators=[*current, key], voting_period_ms=voting_period_ms)

    _propose(c, make)


@gov_propose.command("remove-validator")
@click.argument("key_hex")
@_proposing
def gov_remove_validator(c: Common, key_hex: str, voting_period_ms: int) -> None:
    """Remove the node key KEY_HEX from the current validator set."""
    key = as_key(key_hex).hex()

    def make(cl: Client) -> Any:
        current = _current_set(cl)
        if key not in current:
            raise InvalidInput("gov.no_change", f"{key[:16]}... is not a validator")
        if len(current) == 1:
            raise InvalidInput("gov.invalid", "the last validator cannot be removed")
        rest = [v for v in current if v != key]
        return cl.build.governance_validator_change(validators=rest, voting_period_ms=voting_period_ms)

    _propose(c, make)


def _roles(text: str) -> tuple[str, ...]:
    roles = tuple(sorted({r.strip() for r in text.split(",") if r.strip()}))
    bad = [r for r in roles if r not in B.ROLES]
    if not roles or bad:
        raise click.BadParameter(f"roles are a comma-separated subset of {', '.join(B.ROLES)}")
    return roles


def _keys(values: tuple[str, ...]) -> list[bytes]:
    return [_customer_key(v) for v in values]


@gov_propose.command("admit-member")
@click.option("--org", "org_id", required=True, help="The new organisation's id (a-z 0-9 . _ -).")
@click.option("--name", required=True, help="Its display name.")
@click.option("--roles", required=True, help=f"Comma-separated roles: {', '.join(B.ROLES)}.")
@click.option("--member-key", "member_keys", multiple=True, required=True, metavar="KEY",
              help="Its event-signing public key (64 hex or a key file); repeatable.")
@_proposing
def gov_admit_member(c: Common, org_id: str, name: str, roles: str, member_keys: tuple[str, ...], voting_period_ms: int) -> None:
    """Admit a member organisation."""
    rs, ks = _roles(roles), _keys(member_keys)
    _propose(c, lambda cl: cl.build.governance_propose(
        kind="admit_member", voting_period_ms=voting_period_ms,
        payload=B.OrgRegister(org_id=org_id, name=name, roles=rs, keys=tuple(PublicKey(k) for k in ks)).encode()))


@gov_propose.command("remove-member")
@click.argument("org_id")
@_proposing
def gov_remove_member(c: Common, org_id: str, voting_period_ms: int) -> None:
    """Remove member ORG_ID (its keys are revoked; its history stays)."""
    _propose(c, lambda cl: cl.build.governance_propose(kind="remove_member", payload=org_id.encode(),
                                                       voting_period_ms=voting_period_ms))


@gov_propose.command("set-roles")
@click.argument("org_id")
@click.argument("roles")
@click.option("--member-key", "member_keys", multiple=True, metavar="KEY",
              help="Replace its keys with these (64 hex or key files; repeatable). Default: keep its keys.")
@_proposing
def gov_set_roles(c: Common, org_id: str, roles: str, member_keys: tuple[str, ...], voting_period_ms: int) -> None:
    """Set the roles of member ORG_ID (comma-separated), optionally its keys."""
    rs, ks = _roles(roles), _keys(member_keys)

    def make(cl: Client) -> Any:
        keys = ks or [bytes.fromhex(k) for k in cl.org(org_id)["keys"]]
        upd = B.OrgUpdate(org_id=org_id, roles=rs, keys=tuple(PublicKey(k) for k in keys))
        return cl.build.governance_propose(kind="update_member", payload=upd.encode(), voting_period_ms=voting_period_ms)

    _propose(c, make)


def _assignments(values: tuple[str, ...], cls: type, what: str) -> dict[str, int]:
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, int] = {}
    for v in values:
        k, sep, raw = v.partition("=")
        k = k.strip().replace("-", "_")
        if not sep or k not in names:
            raise click.BadParameter(f"{v!r}: use NAME=VALUE with NAME one of {', '.join(sorted(names))}", param_hint=what)
        try:
            out[k] = duration_ms(raw) if k.endswith("_ms") and not raw.strip().isdigit() else int(raw)
        except (ValueError, click.BadParameter):
            raise click.BadParameter(f"{v!r}: the value is an integer (or a duration for *_ms)", param_hint=what) from None
    return out


@gov_propose.command("params")
@click.option("--consensus", "consensus", multiple=True, metavar="NAME=VALUE",
              help="A consensus parameter, e.g. view_timeout_ms=2000 (repeatable).")
@click.option("--vm", "vm", multiple=True, metavar="NAME=VALUE", help="A VM parameter, e.g. max_gas_per_call=5000000.")
@_proposing
def gov_params(c: Common, consensus: tuple[str, ...], vm: tuple[str, ...], voting_period_ms: int) -> None:
    """Change consensus and/or VM parameters (the others keep their current values).

    Consensus parameters take effect at a checkpoint boundary (like validator changes), VM
    parameters from the block after adoption; checkpoint_interval and watermark_window are
    fixed at genesis."""
    from afterchain.protocol.genesis import ConsensusParams, VmParams
    from afterchain.protocol.jsonform import from_json

    if not consensus and not vm:
        raise click.UsageError("give at least one --consensus NAME=VALUE or --vm NAME=VALUE")
    cset = _assignments(consensus, ConsensusParams, "--consensus")
    vset = _assignments(vm, VmParams, "--vm")
    if "vms" in vset:
        raise click.BadParameter("the allowed VMs cannot be set from the command line", param_hint="--vm")

    def make(cl: Client) -> Any:
        cur = cl.params()
        try:
            cp = from_json(ConsensusParams, {**cur["consensus"], **cset}) if cset else None
            vp = from_json(VmParams, {**cur["vm"], **vset}) if vset else None
        except ProtocolError as exc:
            raise InvalidInput(str(exc.code), str(exc)) from None
        return cl.build.governance_param_change(consensus=cp, vm=vp, voting_period_ms=voting_period_ms)

    _propose(c, make)


@gov_propose.command("policy")
@click.option("--default-return-window", "return_window", type=DURATION, default=None,
              help="Return window when a product's policy sets none, e.g. 30d.")
@click.option("--auto-close-delay", "auto_close", type=DURATION, default=None,
              help="A resolved ticket closes itself this long after resolution, e.g. 7d.")
@click.option("--max-deadlines-per-block", "max_deadlines", type=click.IntRange(1), default=None,
              help="SLA deadlines processed at most per block.")
@_proposing
def gov_policy(c: Common, return_window: int | None, auto_close: int | None, max_deadlines: int | None,
               voting_period_ms: int) -> None:
    """Adopt a shared policy standard (chain-wide after-sales rules; from the next block)."""
    from afterchain.protocol.genesis import LedgerParams
    from afterchain.protocol.jsonform import from_json

    change = {k: v for k, v in (("default_return_window_ms", return_window), ("auto_close_delay_ms", auto_close),
                                ("max_deadlines_per_block", max_deadlines)) if v is not None}
    if not change:
        raise click.UsageError("give at least one of --default-return-window, --auto-close-delay, --max-deadlines-per-block")

    def make(cl: Client) -> Any:
        try:
            params = from_json(LedgerParams, {**cl.params()["ledger"], **change})
        except ProtocolError as exc:
            raise InvalidInput(str(exc.code), str(exc)) from None
        return cl.build.governance_policy_standard(params=params, voting_period_ms=voting_period_ms)

    _propose(c, make)


@gov.command("vote")
@click.argument("proposal_id")
@click.argument("choice", type=click.Choice(["yes", "no"]))
@signing
def gov_vote(c: Common, proposal_id: str, choice: str) -> None:
    """Vote yes or no on PROPOSAL_ID (--key: a current validator's node key, e.g. data/node.key)."""
    _send(c, lambda cl: cl.build.governance_vote(proposal_id=proposal_id, approve=choice == "yes"), proposal=proposal_id)


def _proposal_rows(p: dict[str, Any]) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [
        ("kind", p["kind"]), ("status", p["status"]), ("result", p.get("result")),
        ("change", json.dumps(p.get("payload"), sort_keys=True)),
        ("proposed by", p.get("by") or f"validator {_short(p.get('by_key'))}"),
        ("created", f"{_ms(p.get('created_ms'))} (block {p.get('height')})"), ("deadline", _ms(p.get("deadline_ms"))),
        ("yes", ", ".join(_short(v) for v in p["yes"]) or "-"), ("no", ", ".join(_short(v) for v in p["no"]) or "-"),
    ]
    if p.get("current"):
        cur = p["current"]
        rows.append(("tally now", f"yes {cur['yes']}/{cur['yes_needed']} needed, no {cur['no']}/{cur['no_needed']} "
                                  f"to reject, of {cur['validators']} validators"))
    if p.get("tally"):
        t = p["tally"]
        rows.append(("tally", f"yes {t['yes']}, no {t['no']}, of {t['validators']} validators"))
    if p.get("decided_ms"):
        rows.append(("decided", f"{_ms(p['decided_ms'])} (block {p.get('decided_height')})"))
    if p.get("effective_height"):
        rows.append(("effective from height", p["effective_height"]))
    return rows


@gov.command("show")
@click.argument("proposal_id", required=False)
@click.option("--status", type=click.Choice(["open", "adopted", "rejected", "expired", "failed"]), default=None,
              help="List only proposals in this status.")
@click.option("--validators", "show_validators", is_flag=True, help="Show the validator set and its schedule instead.")
@reading
def gov_show(c: Common, proposal_id: str | None, status: str | None, show_validators: bool) -> None:
    """Show one proposal, the list of proposals, or (--validators) the validator schedule."""
    if show_validators:
        def show_v(v: dict[str, Any]) -> None:
            t = Table(title=f"validator schedule (executed height {v['height']})", title_justify="left")
            for col in ("from height", "validators", "set hash", "view timeout", "block interval"):
                t.add_column(col)
            for e in v["schedule"]:
                t.add_row(str(e["first_height"]), "\n".join(e["validators"]), _short(e["hash"]),
                          _dur(e["consensus"]["view_timeout_ms"]), _dur(e["consensus"]["block_interval_ms"]))
            _console().print(t)
            p = v.get("pending")
            if p:
                click.echo(f"pending: {len(p['validators'])} validators from height {p['first_height']} (set {_short(p['hash'])})")
            else:
                click.echo("pending: none")

        _read(c, lambda cl: cl.validators(), show_v)
        return
    if proposal_id is not None:
        _read(c, lambda cl: cl.proposal(proposal_id),
              lambda p: _console().print(_kv_table(f"proposal {p['id']}", _proposal_rows(p))))
        return

    def show(ps: list[dict[str, Any]]) -> None:
        t = Table(title=f"proposals{f' ({status})' if status else ''}", title_justify="left")
        for col in ("id", "kind", "status", "yes", "no", "deadline", "result"):
            t.add_column(col)
        for p in ps:
            t.add_row(_short(p["id"]), p["kind"], p["status"], str(len(p["yes"])), str(len(p["no"])),
                      _ms(p["deadline_ms"]), _short(p.get("result"), 40))
        _console().print(t)

    _read(c, lambda cl: cl.proposals(status), show)


GROUPS = (product, policy, warranty, ticket, return_, shipment, escrow, org, account, event, contract, gov)


def register(cli: click.Group) -> None:
    """Add the client command groups to the `afterchain` group (``governance`` is an alias of ``gov``)."""
    for g in GROUPS:
        cli.add_command(g)
    cli.add_command(gov, name="governance")
