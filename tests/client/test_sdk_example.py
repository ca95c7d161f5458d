"""The ERP example of `node.client.sdk`'s docstring works as written: run under trio against
the test cluster, it hands a newly opened ticket to the ERP and acknowledges it on the ledger."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import trio

from afterchain.node.client import AsyncClient, content_hash, sdk

from .cluster import Cluster

# Leaving the stream (the test cancels the connector) abandons httpx's response iterators
# mid-body; the connection is closed, but trio warns when the collector meets them.
pytestmark = pytest.mark.filterwarnings("ignore:Async generator 'http:ResourceWarning")

GTIN = "00012345600012"
HOUR_MS = 3_600_000


def erp_example() -> str:
    doc = sdk.__doc__ or ""
    after = doc.split("and acknowledge it on the ledger::\n", 1)[1].splitlines()
    block = []
    for line in after:
        if line.strip() and not line.startswith("    "):
            break
        block.append(line)
    return textwrap.dedent("\n".join(block))


async def test_the_erp_example_acknowledges_a_new_ticket(cluster: Cluster) -> None:
    code = erp_example()
    assert "AsyncClient" in code and "c.stream(" in code and "ticket_ack" in code
    assert len(code.strip().splitlines()) <= 25  # a short example
    ns: dict[str, Any] = {}
    exec(compile(code, "node/client/sdk.py (ERP example)", "exec"), ns)

    customer, _ = cluster.customer("erp")
    async with (
        AsyncClient(cluster.urls, key=cluster.key_file("acme")) as acme,
        AsyncClient(cluster.urls, key=cluster.key_file("shopmart")) as shop,
        AsyncClient(cluster.urls, key=customer) as alice,
    ):
        await acme.send(
            await acme.build.product_register(gtin=GTIN, serial="ERP1", model="Kettle", batch="E1", production_time_ms=0)
        )
        await acme.send(await acme.build.product_transfer(gtin=GTIN, serial="ERP1", to_org="shopmart"))
        await shop.send(
            await shop.build.product_sell(
                gtin=GTIN, serial="ERP1", to_customer=customer.public, order_ref_hash=content_hash("order erp-1")
            )
        )
        policy = await acme.send(
            await acme.build.policy_register(
                name="ERP warranty",
                service_org="fixit",
                coverage_period_ms=365 * 24 * HOUR_MS,
                first_response_ms=4 * HOUR_MS,
                resolution_ms=72 * HOUR_MS,
            )
        )

        activated = await shop.send(await shop.build.warranty_activate(gtin=GTIN, serial="ERP1", policy_id=policy.id))
        orders: dict[str, dict[str, Any]] = {}
        cursors: list[str] = [f"{activated.height}-{activated.index}"]  # the ERP starts after this event

        class Erp:
            def last_cursor(self) -> str:
                return cursors[-1]

            def save_cursor(self, cursor: str) -> None:
                cursors.append(cursor)

            async def create_work_order(self, tid: str, ticket: dict[str, Any]) -> None:
                orders[tid] = ticket

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ns["acknowledge_new_tickets"], cluster.urls, cluster.key_file("fixit"), "fixit", Erp())
            opened = await alice.send(
                await alice.build.ticket_open(
                    kind="repair",
                    gtin=GTIN,
                    serial="ERP1",
                    fault_type="no_power",
                    description_hash=content_hash("does not heat"),
                )
            )
            tid = opened.id.hex()
            with trio.fail_after(30):
                while (await alice.ticket(tid))["status"] != "acknowledged":
                    await trio.sleep(0.05)
                # the connector saves the cursor once its `send` has seen the ack committed on
                # its node, which can be after another node showed it to alice
                while len(cursors) == 1:
                    await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
    assert orders[tid]["status"] == "opened" and orders[tid]["org"] == "fixit"
    assert list(orders) == [tid] and cursors[-1].startswith(f"{opened.height}-")  # the ticket's event, once
