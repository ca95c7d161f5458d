"""`afterchain policy register` and `afterchain warranty activate`: warranty policies
(service agreements) and binding a sold product to one.
"""

from __future__ import annotations

import click

from afterchain.node.client.cli.common import Common, send, signing

__all__ = ["policy", "warranty"]


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
    send(
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
    send(c, lambda cl: cl.build.warranty_activate(gtin=gtin, serial=serial, policy_id=policy_id))
