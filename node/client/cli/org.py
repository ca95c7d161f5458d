"""`afterchain org ...` and `account show`: an organisation's service quality and balance,
its member node keys (`org node add|remove|list`), a key's account (nonce, balance).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from afterchain.node.client import Client, InvalidInput, customer_account
from afterchain.node.client.cli.common import (
    Common,
    console,
    customer_key,
    fmt_dur,
    fmt_ms,
    kv_table,
    read,
    reading,
    send,
    signing,
)
from afterchain.node.common.keys import load_key
from afterchain.protocol.bodies import MAX_NODE_KEYS_PER_ORG

__all__ = ["account", "org"]


@click.group()
def org() -> None:
    """Organisations: service quality, tickets, balance."""


def _median(q: dict[str, Any], name: str) -> str:
    """An exact median, or the bounds the ledger can give (it keeps samples up to a limit)."""
    exact, bounds = q.get(f"median_{name}_ms"), q.get(f"median_{name}_bounds_ms")
    if isinstance(exact, int):
        return f"{fmt_dur(exact)} (exact)"
    if isinstance(bounds, list) and len(bounds) == 2:
        return (f"between {fmt_dur(bounds[0])} and {fmt_dur(bounds[1])} (a bound: over "
                f"{q.get('exact_samples_max')} samples the ledger keeps only a histogram)")
    return "no samples yet"


@org.command("quality")
@click.argument("org_id")
@reading
def org_quality(c: Common, org_id: str) -> None:
    """Service quality of ORG_ID, computed from the ledger: response, resolution, breaches, rating."""

    def show(q: dict[str, Any]) -> None:
        rate = q.get("resolution_rate_permille")
        mean = q.get("mean_rating_centi")
        console().print(
            kv_table(
                f"service quality of {org_id}",
                [
                    ("since", fmt_ms(q.get("since_ms"))),
                    ("tickets", q.get("tickets")),
                    ("resolved", q.get("resolved")),
                    ("resolution rate", f"{rate / 10:.1f} %" if isinstance(rate, int) else None),
                    ("median first response", _median(q, "first_response")),
                    ("median resolution", _median(q, "resolution")),
                    ("first responses", q.get("first_responses")),
                    ("SLA breaches", q.get("breaches")),
                    ("ratings", q.get("ratings")),
                    ("mean rating", f"{mean / 100:.2f} / 5" if isinstance(mean, int) and q.get("ratings") else None),
                ],
            )
        )

    read(c, lambda cl: cl.quality(org_id), show)


@org.command("balance")
@click.argument("account")
@reading
def org_balance(c: Common, account: str) -> None:
    """Balance of ACCOUNT: an organisation id, a customer public key (hex) or key file."""

    def fetch(cl: Client) -> dict[str, Any]:
        acct = account
        if len(account) == 64 or Path(account).exists():
            acct = customer_account(customer_key(account))
        return {"account": acct, "balance": cl.balance(acct)}

    read(c, fetch, lambda d: click.echo(f"{d['account']}: {d['balance']}"))


@org.group("node")
def org_node() -> None:
    """Member node keys: the nodes your organisation runs (they join every node's peer allowlist)."""


def _node_keys(values: tuple[str, ...]) -> list[bytes]:
    if len(values) > MAX_NODE_KEYS_PER_ORG:
        raise click.BadParameter(f"at most {MAX_NODE_KEYS_PER_ORG} keys per event", param_hint="NODE_KEY")
    return [customer_key(v) for v in values]


@org_node.command("add")
@click.argument("node_keys", nargs=-1, required=True, metavar="NODE_KEY...")
@signing
def org_node_add(c: Common, node_keys: tuple[str, ...]) -> None:
    """Register node keys (64 hex, or a node's key file) for your organisation; sign with a
    member key of the organisation (--key)."""
    send(c, lambda cl: cl.build.node_register(keys=_node_keys(node_keys)))


@org_node.command("remove")
@click.argument("node_keys", nargs=-1, required=True, metavar="NODE_KEY...")
@signing
def org_node_remove(c: Common, node_keys: tuple[str, ...]) -> None:
    """Withdraw registered node keys of your organisation: every node drops their connections."""
    send(c, lambda cl: cl.build.node_remove(keys=_node_keys(node_keys)))


@org_node.command("list")
@click.option("--org", "org_id", default=None, help="Only this organisation's node keys.")
@reading
def org_node_list(c: Common, org_id: str | None) -> None:
    """Registered member node keys (every organisation's, or --org's)."""

    def show(nodes: list[dict[str, Any]]) -> None:
        if not nodes:
            click.echo("no node keys registered" + (f" by {org_id}" if org_id else ""))
            return
        t = Table(title="member node keys", title_justify="left")
        for col in ("key", "org", "since", "height"):
            t.add_column(col, overflow="fold")
        for n in nodes:
            t.add_row(n["key"], n["org"], fmt_ms(n["since_ms"]), str(n["height"]))
        console().print(t)

    read(c, lambda cl: cl.node_keys(org_id), show)


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

    read(c, fetch, lambda d: console().print(kv_table("account", list(d.items()))))
