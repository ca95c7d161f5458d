"""Client subcommands of `afterchain`: build, sign, submit and follow after-sales events.

Owns the command line face of `node.client` and registers its groups in one place. Every
command takes ``--node URL`` (repeatable, failover; default: ``$AFTERCHAIN_NODE``
(comma-separated), else the nodes of ``network.json`` in ``$AFTERCHAIN_CLUSTER_DIR`` or
``./.cluster``, written by ``./scripts/cluster up``), ``--json`` (machine output) and, when
it signs, ``--key FILE``. The chain id comes from the node. The shared options, output and
exit codes are in `node.client.cli.common`; one module per command group.

Exit codes (`node.cli`): 0 committed / found, 1 rejected or not found (the node's code
and message are printed), 2 usage or bad input, 3 no node reachable, 4 timed out waiting
for the outcome (the event may still commit; ``afterchain event wait ID`` follows it).

Free text (descriptions, notes, order references, reasons) is hashed locally
(`node.client.content_hash`); only the hash goes on the ledger.
"""

from __future__ import annotations

import click

from afterchain.node.client.cli.contract import contract
from afterchain.node.client.cli.events import event
from afterchain.node.client.cli.gov import gov
from afterchain.node.client.cli.org import account, org
from afterchain.node.client.cli.product import product
from afterchain.node.client.cli.returns import escrow, return_, shipment
from afterchain.node.client.cli.ticket import ticket
from afterchain.node.client.cli.warranty import policy, warranty

__all__ = ["GROUPS", "register"]

GROUPS = (product, policy, warranty, ticket, return_, shipment, escrow, org, account, event, contract, gov)


def register(cli: click.Group) -> None:
    """Add the client command groups to the `afterchain` group (``governance`` is an alias of ``gov``)."""
    for g in GROUPS:
        cli.add_command(g)
    cli.add_command(gov, name="governance")
