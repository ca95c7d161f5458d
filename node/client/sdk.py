"""The client of participating companies: submit signed events to nodes and follow them.

Owns: talking to one or more nodes' HTTP API (`node.http`) on behalf of ONE signing key:
the key's nonce, signing (`Client.sign`; `Client.build` is the `EventBuilder` of every
event type), submission (one event or a batch, msgpack), waiting for an event's outcome,
and reads (tickets, products and their history, quality reports, escrows, balances,
accounts, blocks, governance). The logic lives once, without I/O, in `node.client.core`;
`Client` performs its steps with `httpx.Client`, `AsyncClient` (`node.client.aio`, same
methods, awaited) with `httpx.AsyncClient`. Errors and `Outcome` live in
`node.client.outcomes`, id and hash helpers in `node.client.ids`; `node.client`
re-exports the public names.

Invariants and limits
- `Client` is synchronous (`httpx.Client`): simplest for scripts and the CLI. Not
  thread-safe; use one `Client` per thread. `AsyncClient` suits services (ERP
  connectors) under trio or asyncio; one per task that signs.
- Every request goes to the first node that answers (the last one that did is tried
  first): a connection error, a timeout or a 5xx moves on to the next URL of the list;
  429/503 first wait for ``Retry-After`` (capped at `MAX_RETRY_AFTER_S`). At most
  `max_attempts` rounds over the list, with exponential back-off between rounds
  (`BACKOFF_FIRST_S` doubling up to `BACKOFF_MAX_S`); then `Unreachable`. A 4xx other
  than 429 is an answer: the node's code and message become the error.
- Waiting polls ``/v1/events/{id}`` (every `POLL_FIRST_S` doubling to `POLL_MAX_S`) until
  the outcome is final or the caller's timeout passes (`TimedOut`; the event may still commit).
- Submitting the same signed event twice is harmless (the node answers ``duplicate``),
  so a submission is retried on another node after a connection error.
- Nonces: the first event asks ``/v1/accounts/{key}`` for ``next_nonce`` (which counts
  this key's pending events), later ones count locally. Any rejection (at intake, where
  nothing is used, or at commit, where a refusal by the ledger's rules uses the nonce
  but a refused signature or nonce does not) or a ``nonce.*`` answer drops the local
  count, so the next event asks the node again.
- Personal data never leaves the caller: free text (descriptions, notes, order
  references) is reduced to `content_hash` (SHA-256) before it goes into a body.
- Ids are bytes inside the library and 64-character lowercase hex on the wire; every
  method that takes an id accepts either.

Usage::

    from afterchain.node.client import Client, content_hash

    with Client(["http://127.0.0.1:8001", "http://127.0.0.1:8002"], key="alice.key") as c:
        ev = c.build.ticket_open(kind="repair", gtin="00012345600012", serial="SN1",
                                 fault_type="no_power", description_hash=content_hash("it does not start"))
        outcome = c.submit_and_wait(ev, timeout_s=10)     # raises Rejected / TimedOut
        print(outcome.id, outcome.height)                 # the ticket id is the event id
        print(c.ticket(outcome.id)["status"])             # "opened"

    # or in one call: build + submit + wait
    with Client(["http://127.0.0.1:8001"], key=".cluster/keys/fixit.key") as fixit:
        fixit.send(fixit.build.ticket_ack(ticket_id=outcome.id))

Batches: ``c.submit([c.build.product_register(...), ...])`` signs consecutive nonces and
sends them in one msgpack request; ``c.wait_all(ids)`` follows them.

An ERP connector with the async client (trio or asyncio): follow the committed tickets
opened for the service organisation (``stream``: Server-Sent Events, resumed after each
event's ``cursor``), create a work order for each and acknowledge it on the ledger::

    from afterchain.node.client import AsyncClient, ClientError

    async def acknowledge_new_tickets(nodes, key_file, org, erp):
        async with AsyncClient(nodes, key=key_file) as c:
            # after the last event the ERP stored (None the first time: from the next block)
            async with c.stream(org=org, types="ticket.open", cursor=erp.last_cursor()) as events:
                async for ev in events:
                    ticket = await c.ticket(ev["ticket"])
                    await erp.create_work_order(ev["ticket"], ticket)  # idempotent per ticket id
                    if ticket["status"] == "opened":
                        try:
                            await c.send(await c.build.ticket_ack(ticket_id=ev["ticket"]))
                        except ClientError as exc:  # Rejected, TimedOut, Unreachable
                            print(f"ticket {ev['ticket']}: not acknowledged ({exc.code})")
                    erp.save_cursor(ev["cursor"])  # a restart resumes after it

    # trio.run(acknowledge_new_tickets, ["http://127.0.0.1:8001"], ".cluster/keys/fixit.key",
    #          "fixit", my_erp)

The stream reconnects by itself (another node, back-off) and resumes after the last event
it yielded, so each ticket is handled once; a ticket whose acknowledgement failed is
still ``opened`` and can be swept with ``org_tickets(org, status="opened")``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import httpx
from httpx_sse import SSEError, connect_sse

from afterchain.node.client.builders import BUILDERS, EventBuilder
from afterchain.node.client.core import (
    BACKOFF_FIRST_S,
    BACKOFF_MAX_S,
    DEFAULT_TIMEOUT_S,
    MAX_ATTEMPTS,
    MAX_BATCH_EVENTS,
    MAX_REMEMBERED_TYPES,
    MAX_RETRY_AFTER_S,
    POLL_FIRST_S,
    POLL_MAX_S,
    REQUEST_TIMEOUT_S,
    STREAM_READ_TIMEOUT_S,
    USER_AGENT,
    ClientCore,
    Op,
    Pause,
    StreamCut,
    StreamState,
    stream_params,
)
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
from afterchain.protocol.crypto import KeyPair
from afterchain.protocol.events import EventBody, SignedEvent

# The names this module exported before the split stay importable from here (the policy's
# constants now live in `node.client.core`).
__all__ = [
    "BACKOFF_FIRST_S",
    "BACKOFF_MAX_S",
    "BUILDERS",
    "DEFAULT_TIMEOUT_S",
    "MAX_ATTEMPTS",
    "MAX_BATCH_EVENTS",
    "MAX_REMEMBERED_TYPES",
    "MAX_RETRY_AFTER_S",
    "POLL_FIRST_S",
    "POLL_MAX_S",
    "REQUEST_TIMEOUT_S",
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

T = TypeVar("T")


class Client(ClientCore):
    """A synchronous client of a list of nodes, signing with one key (optional for reads).

    `nodes`: base URLs (``http://host:port``), tried in order with failover; the one
    that answered last is tried first next time. `key`: a `KeyPair` or a key file path.
    `chain_id`: learned from ``/v1/status`` when not given. `transport` and `sleep` replace
    httpx's transport and `time.sleep` (tests).
    """

    def __init__(
        self,
        nodes: str | Sequence[str],
        key: KeyPair | str | os.PathLike[str] | None = None,
        *,
        chain_id: str | None = None,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        max_attempts: int = MAX_ATTEMPTS,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(nodes, key, chain_id=chain_id, max_attempts=max_attempts)
        self._sleep = sleep
        self._http = httpx.Client(timeout=request_timeout_s, transport=transport, headers={"user-agent": USER_AGENT})
        self.build: EventBuilder[SignedEvent] = EventBuilder(self)

    def _run(self, op: Op[T]) -> T:
        """Perform an operation's steps: each request with `httpx.Client`, each pause with `sleep`."""
        try:
            step = next(op)
            while True:
                if isinstance(step, Pause):
                    self._sleep(step.seconds)
                    step = op.send(None)
                    continue
                try:
                    reply: httpx.Response | httpx.HTTPError = self._http.request(
                        step.method, step.url, content=step.content, headers=step.headers
                    )
                except httpx.HTTPError as exc:
                    reply = exc
                step = op.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        finally:
            op.close()

    # ---- lifecycle
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- HTTP with failover
    def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        content_type: str | None = None,
        ok: Iterable[int] = (200,),
    ) -> httpx.Response:
        """One request with failover and retries. Returns a response whose status is in `ok`,
        or a 4xx answer (the caller decides); raises `Unreachable` when no node answered."""
        return self._run(self._request(method, path, content=content, content_type=content_type, ok=ok))

    def get_json(self, path: str) -> Any:
        """GET `path` as JSON; 404 -> `NotFound`; another 4xx -> `ClientError`."""
        return self._run(self._get_json(path))

    # ---- chain and nonce
    def status(self) -> dict[str, Any]:
        return self._run(self._status())

    @property
    def chain_id(self) -> str:
        return self._run(self._get_chain_id())

    def account(self, public_key: bytes | str | None = None) -> dict[str, Any]:
        """``{"key", "nonce", "next_nonce"}`` of a key (default: the client's)."""
        return self._run(self._account(public_key))

    def next_nonce(self) -> int:
        """The nonce the next signed event gets (asks the node once, then counts)."""
        return self._run(self._get_next_nonce())

    def sign(self, body: EventBody, *, nonce: int | None = None, time_ms: int | None = None) -> SignedEvent:
        """Validate `body`, wrap it in an event with the next nonce (or `nonce`) and sign it."""
        return self._run(self._sign(body, nonce, time_ms))

    # ---- submitting
    def submit(self, events: SignedEvent | Sequence[SignedEvent]) -> list[Outcome]:
        """Send one event or a batch (msgpack, one request per `MAX_BATCH_EVENTS`).

        Returns one `Outcome` per event: ``accepted`` / ``duplicate`` (in the mempool) or
        ``rejected`` with the node's code and message (the local nonce count is dropped).
        Raises `Unreachable`, or `ClientError` for a refused request (e.g. too large).
        """
        return self._run(self._submit(events))

    def event(self, event_id: bytes | str) -> Outcome:
        """The outcome of an event as a node knows it (``pending``, ``committed``, ``rejected``)."""
        return self._run(self._event(event_id))

    def wait(self, event_id: bytes | str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Outcome:
        """Poll until the event is committed or rejected; a rejection is returned, not raised.

        A node that has not heard of the event yet (404) is asked again: gossip may lag.
        Raises `TimedOut` after `timeout_s`, `Unreachable` if no node answers.
        """
        return self._run(self._wait(event_id, timeout_s))

    def wait_all(self, event_ids: Iterable[bytes | str], *, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Outcome]:
        """`wait` for each event, within one overall `timeout_s`."""
        return self._run(self._wait_all(event_ids, timeout_s))

    def submit_and_wait(self, event: SignedEvent, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Outcome:
        """Submit one event and wait for its outcome; raise `Rejected` if it is refused
        (at intake or at commit), `TimedOut`, `Unreachable`. Returns the committed outcome."""
        return self._run(self._submit_and_wait(event, timeout_s))

    def send(self, event: SignedEvent | EventBody, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Outcome:
        """`submit_and_wait` for a signed event, or for a body (signed here first)."""
        return self._run(self._send(event, timeout_s))

    # ---- reads
    def ticket(self, ticket_id: bytes | str) -> dict[str, Any]:
        return self._run(self._ticket(ticket_id))

    def product(self, gtin: str, serial: str) -> dict[str, Any]:
        return self._run(self._product(gtin, serial))

    def product_history(self, gtin: str, serial: str) -> list[Any]:
        return self._run(self._product_history(gtin, serial))

    def quality(self, org: str) -> dict[str, Any]:
        return self._run(self._quality(org))

    def org_tickets(self, org: str, status: str | None = None) -> list[str]:
        """Ids (hex) of the tickets assigned to `org`, optionally only those in `status`
        (every page, by status then id)."""
        return self._run(self._org_tickets(org, status))

    def customer_tickets(self, customer: bytes | str | None = None) -> list[str]:
        """Ids (hex) of the tickets a customer key opened (default: the client's key; every page)."""
        return self._run(self._customer_tickets(customer))

    def orgs(self) -> list[dict[str, Any]]:
        """The member organisations (org_id, name, roles, keys), every page, by org id."""
        return self._run(self._orgs())

    def page(self, path: str, *, cursor: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """One page of a list route (e.g. ``/v1/orgs/fixit/tickets?status=opened``): its
        answer with ``next_cursor`` (None on the last page; pass it back as `cursor`)."""
        return self._run(self._page(path, cursor, limit))

    # ---- the stream of committed events
    def stream(
        self,
        *,
        org: str | None = None,
        types: Iterable[str] | str | None = None,
        ticket: bytes | str | None = None,
        gtin: str | None = None,
        serial: str | None = None,
        refused: bool = False,
        cursor: str | None = None,
        from_height: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Committed events (``GET /v1/stream``) matching the filters, in chain order, forever.

        Each is a dict (`StreamEvent` of the API: cursor, height, index, time_ms, id, type,
        sender, nonce, code, orgs, ticket, gtin, serial, body). Starts after `cursor` (an
        event's ``cursor``, e.g. the last one the caller stored), else at `from_height`,
        else with the next block. Reconnects by itself (next node, back-off) and resumes
        after the last event yielded: nothing missed, nothing repeated. Raises
        `ClientError` for a refused filter, `Unreachable` when no node serves it for
        `max_attempts` rounds. Stop by leaving the loop (``break``) or closing the iterator.
        """
        state = StreamState(self, stream_params(org=org, types=types, ticket=ticket, gtin=gtin, serial=serial,
                                                refused=refused, from_height=from_height), cursor)
        timeout = httpx.Timeout(self._http.timeout.connect, read=STREAM_READ_TIMEOUT_S)
        while True:
            url, params, headers = state.request()
            try:
                with connect_sse(self._http, "GET", url, params=params, headers=headers, timeout=timeout) as es:
                    if es.response.status_code != 200:
                        es.response.read()
                    if state.opened(es.response):
                        for sse in es.iter_sse():
                            ev = state.message(sse.event, sse.data, sse.id)
                            if ev is not None:
                                yield ev
                        state.dropped("the node closed the stream")
            except (httpx.HTTPError, SSEError) as exc:
                state.dropped(f"{type(exc).__name__}: {exc}")
            except StreamCut as cut:
                state.dropped(str(cut))
            if state.pause():
                self._sleep(state.pause())

    def escrow(self, escrow_id: bytes | str) -> dict[str, Any]:
        return self._run(self._escrow(escrow_id))

    def balance(self, account: str) -> int:
        """Balance of an account: an organisation id or ``cust:<hex>`` (see `customer_account`)."""
        return self._run(self._balance(account))

    def block(self, height: int) -> dict[str, Any]:
        return self._run(self._block(height))

    def proposals(self, status: str | None = None) -> list[dict[str, Any]]:
        """Governance proposals (oldest first), optionally only those in `status` (e.g. open)."""
        return self._run(self._proposals(status))

    def proposal(self, proposal_id: bytes | str) -> dict[str, Any]:
        """One proposal: kind, payload (JSON form), by, deadline, yes/no voters, status, result."""
        return self._run(self._proposal(proposal_id))

    def validators(self) -> dict[str, Any]:
        """The adopted validator set, the schedule (first heights) and the pending change."""
        return self._run(self._validators())

    def params(self) -> dict[str, Any]:
        """The adopted parameters: ``consensus``, ``vm``, ``ledger`` (JSON forms)."""
        return self._run(self._params())

    def org(self, org_id: str) -> dict[str, Any]:
        """A member organisation as the ledger has it now: name, roles, keys, since, removed."""
        return self._run(self._org(org_id))

    def node_keys(self, org: str | None = None) -> list[dict[str, Any]]:
        """Registered member node keys (``key``, ``org``, ``since_ms``, ``height``): every
        organisation's, or `org`'s. Register with ``build.node_register(keys=[...])``."""
        return self._run(self._node_keys(org))
