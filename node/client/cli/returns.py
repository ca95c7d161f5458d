"""`afterchain return ...`, `shipment checkpoint` and `escrow ...`: returns, the shipments of
returns and repairs, and escrowed payments (deposit, release, refund, show).
"""

from __future__ import annotations

import click

from afterchain.node.client import content_hash
from afterchain.node.client.cli.common import (
    Common,
    console,
    customer_key,
    hash_text,
    kv_table,
    read,
    reading,
    send,
    signing,
)
from afterchain.protocol import bodies as B

__all__ = ["escrow", "return_", "shipment"]


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
    send(
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
    send(c, lambda cl: cl.build.return_approve(ticket_id=ticket_id), ticket=ticket_id)


@return_.command("reject")
@click.argument("ticket_id")
@click.option("--reason-code", required=True, help="Reason code, e.g. too_late.")
@click.option("--reason", default=None, help="Explanation (only its hash is recorded).")
@signing
def return_reject(c: Common, ticket_id: str, reason_code: str, reason: str | None) -> None:
    """Refuse a return (key: the assigned organisation's)."""
    send(
        c,
        lambda cl: cl.build.return_reject(ticket_id=ticket_id, reason_code=reason_code, reason_hash=hash_text(reason)),
        ticket=ticket_id,
    )


@return_.command("receive")
@click.argument("ticket_id")
@click.option("--condition", required=True, type=click.Choice(B.RETURN_CONDITIONS))
@click.option("--inspection", default=None, help="Inspection report (only its hash is recorded).")
@signing
def return_receive(c: Common, ticket_id: str, condition: str, inspection: str | None) -> None:
    """Record the returned product's arrival; the agreement then refunds or keeps the escrow."""
    send(
        c,
        lambda cl: cl.build.return_receive(ticket_id=ticket_id, condition=condition, inspection_hash=hash_text(inspection)),
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
    send(
        c,
        lambda cl: cl.build.shipment_checkpoint(
            ticket_id=ticket_id, checkpoint=checkpoint, location_hash=content_hash(location), tracking_hash=hash_text(tracking)
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
    send(
        c,
        lambda cl: cl.build.escrow_deposit(
            amount=amount,
            payee_org=payee_org,
            payee_customer=customer_key(payee_customer) if payee_customer else None,
            ticket_id=ticket_id,
            ref_hash=hash_text(ref),
        ),
        created="escrow_id",
    )


@escrow.command("release")
@click.argument("escrow_id")
@signing
def escrow_release(c: Common, escrow_id: str) -> None:
    """Release a held escrow to its payee (key: the payer's)."""
    send(c, lambda cl: cl.build.escrow_release(escrow_id=escrow_id))


@escrow.command("refund")
@click.argument("escrow_id")
@signing
def escrow_refund(c: Common, escrow_id: str) -> None:
    """Give a held escrow back to its payer (key: the payee's)."""
    send(c, lambda cl: cl.build.escrow_refund(escrow_id=escrow_id))


@escrow.command("show")
@click.argument("escrow_id")
@reading
def escrow_show(c: Common, escrow_id: str) -> None:
    """Show an escrow: amount, payer, payee, state."""
    read(
        c,
        lambda cl: cl.escrow(escrow_id),
        lambda e: console().print(kv_table(f"escrow {e['id']}", [(k, v) for k, v in e.items() if k != "id"])),
    )
