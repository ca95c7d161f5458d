"""`afterchain event ...`: what became of an event (show), submitting a signed event from a
file, waiting for an outcome.
"""

from __future__ import annotations

import contextlib
from typing import Any

import click

from afterchain.node.client import DEFAULT_TIMEOUT_S, InvalidInput
from afterchain.node.client.cli.common import Common, client_errors, console, kv_table, print_outcome, read, reading

__all__ = ["event"]


@click.group()
def event() -> None:
    """Events: show an outcome, wait for one."""


@event.command("show")
@click.argument("event_id")
@reading
def event_show(c: Common, event_id: str) -> None:
    """Show what became of an event: pending, committed (block, index) or rejected (code, message)."""
    read(
        c,
        lambda cl: cl.event(event_id).to_json(),
        lambda d: console().print(kv_table(f"event {d['id']}", [(k, v) for k, v in d.items() if k != "id"])),
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
    with client_errors(c), c.client(signing=False) as cl:
        try:
            signed = SignedEvent.decode(data)
        except ProtocolError as exc:
            raise InvalidInput(str(exc.code), f"not a signed event: {exc}") from None
        cl.types[signed.id] = signed.event.type
        print_outcome(c, cl.submit_and_wait(signed, timeout_s=timeout), None)


@event.command("wait")
@click.argument("event_id")
@click.option("--timeout", type=click.FloatRange(0.1, 3600), default=DEFAULT_TIMEOUT_S, show_default=True)
@reading
def event_wait(c: Common, event_id: str, timeout: float) -> None:
    """Wait for an event's outcome; exit 0 committed, 1 rejected, 4 timed out."""
    c.timeout_s = timeout
    with client_errors(c), c.client(signing=False) as cl:
        o = cl.wait(event_id, timeout_s=timeout).raise_if_rejected()
        print_outcome(c, o, None)
