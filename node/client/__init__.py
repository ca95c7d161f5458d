"""The client room: what participating companies run to use the chain.

`node.client.sdk` (`Client`: HTTP with failover, nonces, submitting, waiting, reads),
`node.client.aio` (`AsyncClient`: the same methods, awaited, under trio or asyncio), both
driving the I/O-free operations of `node.client.core`, `node.client.builders` (`EventBuilder`: one method per event type), `node.client.outcomes`
(the errors and `Outcome`), `node.client.ids` (ids, keys, `content_hash`), the `afterchain`
client subcommands (`node.client.cli`) and the light client (`node.client.light`). The
room imports only `protocol`, `node.common` and itself. The public SDK names are
re-exported here: ``from afterchain.node.client import Client, content_hash``.
"""

from afterchain.node.client.aio import AsyncClient
from afterchain.node.client.builders import BUILDERS, EventBuilder
from afterchain.node.client.ids import as_id, as_key, content_hash, customer_account, load_client_key
from afterchain.node.client.outcomes import (
    ClientError,
    InvalidInput,
    NotFound,
    Outcome,
    Rejected,
    TimedOut,
    Unreachable,
)
from afterchain.node.client.sdk import DEFAULT_TIMEOUT_S, MAX_BATCH_EVENTS, Client

__all__ = [
    "BUILDERS",
    "DEFAULT_TIMEOUT_S",
    "MAX_BATCH_EVENTS",
    "AsyncClient",
    "Client",
    "ClientError",
    "EventBuilder",
    "InvalidInput",
    "NotFound",
    "Outcome",
    "Rejected",
    "TimedOut",
    "Unreachable",
    "as_id",
    "as_key",
    "content_hash",
    "customer_account",
    "load_client_key",
]
