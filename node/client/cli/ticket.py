"""`afterchain ticket ...`: the life of a service ticket (open, ack, update, assign, escalate,
resolve, reject, confirm, reopen, close, rate) and reading tickets (show, list, link).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from afterchain.node.client import Client, content_hash
from afterchain.node.client.cli.common import (
    Common,
    client_errors,
    console,
    customer_key,
    echo_json,
    fmt_ms,
    hash_text,
    kv_table,
    link_anchor,
    link_base,
    link_options,
    read,
    reading,
    send,
    signing,
)
from afterchain.protocol import bodies as B

__all__ = ["ticket"]


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
    send(
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
    send(c, lambda cl: cl.build.ticket_ack(ticket_id=ticket_id, note_hash=hash_text(note)), ticket=ticket_id)


@ticket.command("update")
@click.argument("ticket_id")
@click.option("--status", required=True, type=click.Choice(B.TICKET_UPDATE_STATUSES))
@click.option("--note", default=None, help="A note (only its hash is recorded).")
@signing
def ticket_update(c: Common, ticket_id: str, status: str, note: str | None) -> None:
    """Move a ticket to in_progress / waiting_customer (or answer while it waits on you)."""
    send(
        c, lambda cl: cl.build.ticket_update(ticket_id=ticket_id, status=status, note_hash=hash_text(note)), ticket=ticket_id
    )


@ticket.command("assign")
@click.argument("ticket_id")
@click.argument("org")
@signing
def ticket_assign(c: Common, ticket_id: str, org: str) -> None:
    """Hand a ticket to organisation ORG (key: the assignee's or the policy owner's)."""
    send(c, lambda cl: cl.build.ticket_assign(ticket_id=ticket_id, org_id=org), ticket=ticket_id)


@ticket.command("escalate")
@click.argument("ticket_id")
@click.option("--reason", required=True, help="Why you dispute the handling (only its hash is recorded).")
@signing
def ticket_escalate(c: Common, ticket_id: str, reason: str) -> None:
    """Dispute the handling of a ticket (key: the customer's)."""
    send(
        c, lambda cl: cl.build.ticket_escalate(ticket_id=ticket_id, reason_hash=content_hash(reason)), ticket=ticket_id
    )


@ticket.command("resolve")
@click.argument("ticket_id")
@click.option("--resolution", type=click.Choice(B.RESOLUTIONS), default="repaired", show_default=True)
@click.option("--details", default="", help="What was done (only its hash is recorded).")
@signing
def ticket_resolve(c: Common, ticket_id: str, resolution: str, details: str) -> None:
    """Resolve a ticket (key: the assigned organisation's)."""
    send(
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
    send(
        c,
        lambda cl: cl.build.ticket_reject(ticket_id=ticket_id, reason_code=reason_code, reason_hash=hash_text(reason)),
        ticket=ticket_id,
    )


@ticket.command("confirm")
@click.argument("ticket_id")
@signing
def ticket_confirm(c: Common, ticket_id: str) -> None:
    """Confirm the resolution; the ticket closes (key: the customer's)."""
    send(c, lambda cl: cl.build.ticket_confirm(ticket_id=ticket_id), ticket=ticket_id)


@ticket.command("reopen")
@click.argument("ticket_id")
@click.option("--reason", required=True, help="Why (only its hash is recorded).")
@signing
def ticket_reopen(c: Common, ticket_id: str, reason: str) -> None:
    """Reopen a resolved ticket (key: the customer's)."""
    send(c, lambda cl: cl.build.ticket_reopen(ticket_id=ticket_id, reason_hash=content_hash(reason)), ticket=ticket_id)


@ticket.command("close")
@click.argument("ticket_id")
@signing
def ticket_close(c: Common, ticket_id: str) -> None:
    """Withdraw an open ticket (key: the customer's)."""
    send(c, lambda cl: cl.build.ticket_close(ticket_id=ticket_id), ticket=ticket_id)


@ticket.command("rate")
@click.argument("ticket_id")
@click.argument("score", type=click.IntRange(1, 5))
@click.option("--comment", default=None, help="A comment (only its hash is recorded).")
@signing
def ticket_rate(c: Common, ticket_id: str, score: int, comment: str | None) -> None:
    """Rate the handling of a closed ticket, 1-5, once (key: the customer's)."""
    send(
        c,
        lambda cl: cl.build.rating_submit(ticket_id=ticket_id, score=score, comment_hash=hash_text(comment)),
        ticket=ticket_id,
    )


_FINAL = ("closed", "rejected", "refunded", "return_rejected")


def _breach_time(t: dict[str, Any], name: str) -> int | None:
    """When the ledger recorded a breach of deadline `name` (``first_response``/``resolution``)."""
    for entry in [*t.get("hist", []), *([None, None, None, n] for n in t.get("notes", []))]:
        _status, at, _eid, note = (list(entry) + [None] * 4)[:4]
        if isinstance(note, str) and note.startswith(f"breach:{name}"):
            return at if isinstance(at, int) else -1
    return None


def _due_text(t: dict[str, Any], field: str, name: str, met: str | None) -> str:
    """A deadline for people: pending (with its date), met, missed, paused, or none."""
    due = t.get(field)
    breach = _breach_time(t, name)
    missed = "" if breach is None else f"missed (breach recorded {fmt_ms(breach)} UTC)" if breach > 0 else "missed"
    if isinstance(due, int):
        return f"by {fmt_ms(due)} UTC" + (f"; earlier {missed}" if missed else "")
    if missed:
        return missed
    if t.get("policy") is None or t.get("kind") == "return":
        return "no deadline (no warranty policy with service times)"
    if t.get("paused") is not None:
        return f"paused since {fmt_ms(t['paused'])} UTC (waiting for the customer)"
    if met is not None and isinstance(t.get(met), int):
        return f"met ({'acknowledged' if met == 'ack' else 'resolved'} {fmt_ms(t[met])} UTC)"
    if t.get("status") in _FINAL:
        return f"none (the ticket is {t['status']})"
    return "none"


def _rating_text(r: Any) -> str:
    if not isinstance(r, list | tuple) or not r:
        return "not rated yet"
    score, comment, at = (list(r) + [None] * 3)[:3]
    return f"{score} / 5, {fmt_ms(at)} UTC" + (", with a comment (its hash is on the ledger)" if comment else "")


def _show_ticket(t: dict[str, Any]) -> None:
    con = console()
    con.print(
        kv_table(
            f"ticket {t['id']}",
            [
                ("status", t.get("status")),
                ("kind", t.get("kind")),
                ("product", f"{t.get('gtin')}/{t.get('serial')}"),
                ("customer", t.get("cust")),
                ("assigned to", t.get("org")),
                ("policy", t.get("policy") or "none (no warranty)"),
                ("opened", f"{fmt_ms(t.get('opened'))} UTC"),
                ("acknowledged", f"{fmt_ms(t['ack'])} UTC" if t.get("ack") else "not yet"),
                ("resolved", f"{fmt_ms(t['resolved'])} UTC" if t.get("resolved") else "not yet"),
                ("closed", f"{fmt_ms(t['closed'])} UTC" if t.get("closed") else "not yet"),
                ("first response deadline", _due_text(t, "fr_due", "first_response", "ack")),
                ("resolution deadline", _due_text(t, "res_due", "resolution", "resolved")),
                ("auto-close", f"on {fmt_ms(t['ac_due'])} UTC unless the customer reopens"
                 if isinstance(t.get("ac_due"), int) else "-"),
                ("resolution", t.get("resolution") or "not yet"),
                ("reason", t.get("reason") or "-"),
                ("SLA breaches", t.get("breaches")),
                ("penalties paid", t.get("penalties")),
                ("rating", _rating_text(t.get("rating"))),
                ("escrow", t.get("escrow") or "none"),
                ("notes", "; ".join(str(n) for n in t.get("notes") or []) or "-"),
            ],
        )
    )
    h = Table(title="history", title_justify="left")
    for col in ("status", "time (UTC)", "event", "note"):
        h.add_column(col, overflow="fold")
    for entry in t.get("hist", []):
        status, at, eid, note = (list(entry) + [None] * 4)[:4]
        h.add_row(str(status), fmt_ms(at), "-" if eid is None else str(eid), "-" if note is None else str(note))
    con.print(h)
    ship = t.get("ship") or []
    if ship:
        st = Table(title=f"shipment checkpoints (carrier {t.get('carrier')})", title_justify="left")
        for col in ("checkpoint", "time (UTC)", "by", "location hash"):
            st.add_column(col, overflow="fold")
        for entry in ship:
            cp, at, by, loc = (list(entry) + [None] * 4)[:4]
            st.add_row(str(cp), fmt_ms(at), str(by), str(loc))
        con.print(st)


@ticket.command("show")
@click.argument("ticket_id")
@reading
def ticket_show(c: Common, ticket_id: str) -> None:
    """Show a ticket: status, parties, deadlines, and every status change."""
    read(c, lambda cl: cl.ticket(ticket_id), _show_ticket)


@ticket.command("link")
@click.argument("ticket_id")
@link_options
@reading
def ticket_link_cmd(c: Common, ticket_id: str, base_url: str | None, genesis_file: str | None,
                    witnesses: tuple[str, ...]) -> None:
    """Print the link of ticket TICKET_ID's page (BASE/t/ID?g=GENESIS_HASH[&w=WITNESS]), for a
    service email or SMS."""
    from afterchain.node.client.links import ticket_link

    with client_errors(c):
        base = link_base(c, base_url)
        link = ticket_link(base, ticket_id, link_anchor(c, genesis_file), witnesses)
    if c.as_json:
        echo_json({"link": link})
    else:
        click.echo(link)


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
        key = customer_key(customer or "")
        return {"customer": key.hex(), "tickets": cl.customer_tickets(key)}

    def show(doc: dict[str, Any]) -> None:
        t = Table(title=title, title_justify="left")
        t.add_column("ticket id")
        for tid in doc["tickets"]:
            t.add_row(tid)
        console().print(t)

    read(c, fetch, show)
