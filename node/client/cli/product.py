"""`afterchain product ...`: register, transfer, sell, trace and recall products; show one
and its history.
"""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from afterchain.node.client import content_hash
from afterchain.node.client.cli.common import (
    Common,
    client_errors,
    console,
    customer_key,
    echo_json,
    fmt_count,
    fmt_ms,
    hash_text,
    kv_table,
    link_anchor,
    link_base,
    link_options,
    read,
    reading,
    send,
    short,
    signing,
)
from afterchain.protocol import bodies as B

__all__ = ["product"]


@click.group()
def product() -> None:
    """Products: register, transfer, sell, trace, recall, show, history, QR codes."""


@product.command("qr")
@click.argument("gtin")
@click.argument("serial")
@link_options
@click.option("--out", "out", required=True, metavar="FILE", help="The QR code file: FILE.svg or FILE.png.")
@reading
def product_qr(c: Common, gtin: str, serial: str, base_url: str | None, genesis_file: str | None,
               witnesses: tuple[str, ...], out: str) -> None:
    """Write a QR code of product GTIN/SERIAL's GS1 Digital Link
    (BASE/01/GTIN/21/SERIAL?g=GENESIS_HASH[&w=WITNESS]), which opens its verified passport;
    print the link."""
    from afterchain.node.client.links import product_link, write_qr

    with client_errors(c):
        base = link_base(c, base_url)
        link = product_link(base, gtin, serial, link_anchor(c, genesis_file), witnesses)
        path = write_qr(link, out)
    if c.as_json:
        echo_json({"link": link, "file": str(path)})
    else:
        click.echo(f"{link}\nQR code written to {path}")


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
    send(
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
    send(
        c,
        lambda cl: cl.build.product_transfer(
            gtin=gtin,
            serial=serial,
            kind="transfer",
            to_org=to_org,
            to_customer=customer_key(to_customer) if to_customer else None,
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
    send(
        c,
        lambda cl: cl.build.product_sell(
            gtin=gtin, serial=serial, to_customer=customer_key(to_customer), order_ref_hash=content_hash(order)
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
    send(
        c,
        lambda cl: cl.build.trace_record(
            gtin=gtin,
            serial=serial,
            biz_step=biz_step,
            disposition=disposition,
            location_hash=content_hash(location),
            ref_hash=hash_text(ref),
        ),
    )


@product.command("recall")
@click.argument("gtin")
@click.argument("batch")
@click.option("--reason", required=True, help="Why (only its hash is recorded).")
@signing
def product_recall(c: Common, gtin: str, batch: str, reason: str) -> None:
    """Recall every product of GTIN in BATCH (key: its manufacturer's)."""
    send(c, lambda cl: cl.build.product_recall(gtin=gtin, batch=batch, reason_hash=content_hash(reason)))


@product.command("show")
@click.argument("gtin")
@click.argument("serial")
@reading
def product_show(c: Common, gtin: str, serial: str) -> None:
    """Show product GTIN/SERIAL: maker, model, batch, owner, warranty."""

    def show(p: dict[str, Any]) -> None:
        console().print(
            kv_table(
                f"product {gtin}/{serial}",
                [
                    ("manufacturer", p.get("mfr")),
                    ("model", p.get("model")),
                    ("batch", p.get("batch")),
                    ("produced", fmt_ms(p.get("prod_ms"))),
                    ("registered", fmt_ms(p.get("reg_ms"))),
                    ("owner", p.get("owner")),
                    ("seller", p.get("seller")),
                    ("sold", fmt_ms(p.get("sale_ms"))),
                    ("disposition", p.get("disp")),
                    ("warranty policy", p.get("policy")),
                    ("warranty from", fmt_ms(p.get("w_start"))),
                    ("history entries", fmt_count(p.get("hist"))),
                ],
            )
        )

    read(c, lambda cl: cl.product(gtin, serial), show)


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
            t.add_row(str(i), str(what), fmt_ms(at), short(eid), " ".join(short(x, 24) for x in rest))
        console().print(t)

    read(c, lambda cl: {"gtin": gtin, "serial": serial, "history": cl.product_history(gtin, serial)}, show)
