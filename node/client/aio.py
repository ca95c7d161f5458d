"""The async client: `Client`'s methods, awaited, over `httpx.AsyncClient` (trio or asyncio).

Owns only the driver of `node.client.core`'s operations (each request with
`httpx.AsyncClient`, each pause with `anyio.sleep`) and one awaitable method per
operation; failover, retries, nonces, signing, waiting and error mapping are the sync
client's, from the same code (see `node.client.sdk` for the policy and an ERP example).

Differences from `Client`, all forced by ``await``: ``async with`` (or ``await aclose()``);
builders are awaited (``await c.build.ticket_ack(ticket_id=t)``: signing may first ask a
node for the nonce or the chain id); ``await c.chain_id()`` is a method, not a property.
Runs under any event loop anyio supports (trio, asyncio). Not task-safe: one
`AsyncClient` per task that signs (the nonce count is plain state).
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from contextlib import aclosing
from typing import Any, TypeVar

import anyio
import httpx
from httpx_sse import SSEError, aconnect_sse

from afterchain.node.client.builders import EventBuilder
from afterchain.node.client.core import (
    DEFAULT_TIMEOUT_S,
    MAX_ATTEMPTS,
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
from afterchain.node.client.outcomes import Outcome
from afterchain.protocol.crypto import KeyPair
from afterchain.protocol.events import EventBody, SignedEvent

__all__ = ["AsyncClient", "EventStream"]

T = TypeVar("T")


class EventStream:
    """`AsyncClient.stream`'s events: an async iterator and an async context manager whose
    exit closes the connection (an abandoned async generator would wait for the collector)."""

    def __init__(self, events: AsyncGenerator[dict[str, Any], None]) -> None:
        self._events = events

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        await self._events.aclose()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AsyncClient(ClientCore):
    """An async client of a list of nodes, signing with one key (optional for reads).

    Arguments as `Client`'s; `transport` is an `httpx.AsyncBaseTransport` and `sleep` an
    async function (default `anyio.sleep`).
    """

    def __init__(
        self,
        nodes: str | Sequence[str],
        key: KeyPair | str | os.PathLike[str] | None = None,
        *,
        chain_id: str | None = None,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        max_attempts: int = MAX_ATTEMPTS,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        super().__init__(nodes, key, chain_id=chain_id, max_attempts=max_attempts)
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            timeout=request_timeout_s, transport=transport, headers={"user-agent": USER_AGENT}
        )
        self.build: EventBuilder[Awaitable[SignedEvent]] = EventBuilder(self)

    async def _run(self, op: Op[T]) -> T:
        """Perform an operation's steps: each request with `httpx.AsyncClient`, each pause with `sleep`."""
        try:
            step = next(op)
            while True:
                if isinstance(step, Pause):
                    await self._sleep(step.seconds)
                    step = op.send(None)
                    continue
                try:
                    reply: httpx.Response | httpx.HTTPError = await self._http.request(
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
    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---- HTTP with failover
    async def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        content_type: str | None = None,
        ok: Iterable[int] = (200,),
    ) -> httpx.Response:
        """`Client.request`: one request with failover and retries."""
        return await self._run(self._request(method, path, content=content, content_type=content_type, ok=ok))

    async def get_json(self, path: str) -> Any:
        """`Client.get_json`: GET `path` as JSON; 404 -> `NotFound`; another 4xx -> `ClientError`."""
        return await self._run(self._get_json(path))

    # ---- chain and nonce
    async def status(self) -> dict[str, Any]:
        return await self._run(self._status())

    async def chain_id(self) -> str:
        """The chain id (given, or asked of a node once)."""
        return await self._run(self._get_chain_id())

    async def account(self, public_key: bytes | str | None = None) -> dict[str, Any]:
        return await self._run(self._account(public_key))

    async def next_nonce(self) -> int:
        return await self._run(self._get_next_nonce())

    async def sign(self, body: EventBody, *, nonce: int | None = None, time_ms: int | None = None) -> SignedEvent:
        """`Client.sign`: validate `body`, wrap it with the next nonce (or `nonce`) and sign it."""
        return await self._run(self._sign(body, nonce, time_ms))

    # ---- submitting
    async def submit(self, events: SignedEvent | Sequence[SignedEvent]) -> list[Outcome]:
        """`Client.submit`: one event or a batch; one `Outcome` per event."""
        return await self._run(self._submit(events))

    async def event(self, event_id: bytes | str) -> Outcome:
        return await self._run(self._event(event_id))

    async def wait(self, event_id: bytes | str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Outcome:
        """`Client.wait`: poll until committed or rejected (returned), else `TimedOut`."""
        return await self._run(self._wait(event_id, timeout_s))

    async def wait_all(
        self, event_ids: Iterable[bytes | str], *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> list[Outcome]:
        return await self._run(self._wait_all(event_ids, timeout_s))

    async def submit_and_wait(self, event: SignedEvent, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Outcome:
        """`Client.submit_and_wait`: the committed outcome, or `Rejected` / `TimedOut` / `Unreachable`."""
        return await self._run(self._submit_and_wait(event, timeout_s))

    async def send(self, event: SignedEvent | EventBody, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Outcome:
        """`Client.send`: `submit_and_wait` for a signed event, or for a body (signed here first)."""
        return await self._run(self._send(event, timeout_s))

    # ---- reads (as `Client`'s)
    async def ticket(self, ticket_id: bytes | str) -> dict[str, Any]:
        return await self._run(self._ticket(ticket_id))

    async def product(self, gtin: str, serial: str) -> dict[str, Any]:
        return await self._run(self._product(gtin, serial))

    async def product_history(self, gtin: str, serial: str) -> list[Any]:
        return await self._run(self._product_history(gtin, serial))

    async def quality(self, org: str) -> dict[str, Any]:
        return await self._run(self._quality(org))

    async def org_tickets(self, org: str, status: str | None = None) -> list[str]:
        return await self._run(self._org_tickets(org, status))

    async def customer_tickets(self, customer: bytes | str | None = None) -> list[str]:
        return await self._run(self._customer_tickets(customer))

    async def orgs(self) -> list[dict[str, Any]]:
        return await self._run(self._orgs())

    async def page(self, path: str, *, cursor: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """`Client.page`: one page of a list route, with ``next_cursor``."""
        return await self._run(self._page(path, cursor, limit))

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
    ) -> EventStream:
        """`Client.stream`: committed events matching the filters, resumed across reconnects.
        Use it in ``async with`` so that leaving the loop closes the connection at once::

            async with c.stream(org="fixit", types=["ticket.open"]) as events:
                async for ev in events:
                    ...
        """
        return EventStream(self._events(stream_params(org=org, types=types, ticket=ticket, gtin=gtin, serial=serial,
                                                      refused=refused, from_height=from_height), cursor))

    async def _events(self, params: dict[str, str], cursor: str | None) -> AsyncGenerator[dict[str, Any], None]:
        state = StreamState(self, params, cursor)
        timeout = httpx.Timeout(self._http.timeout.connect, read=STREAM_READ_TIMEOUT_S)
        while True:
            url, query, headers = state.request()
            try:
                async with aconnect_sse(self._http, "GET", url, params=query, headers=headers,
                                        timeout=timeout) as es:
                    if es.response.status_code != 200:
                        await es.response.aread()
                    if state.opened(es.response):
                        async with aclosing(es.aiter_sse()) as messages:
                            async for sse in messages:
                                ev = state.message(sse.event, sse.data, sse.id)
                                if ev is not None:
                                    yield ev
                        state.dropped("the node closed the stream")
            except (httpx.HTTPError, SSEError) as exc:
                state.dropped(f"{type(exc).__name__}: {exc}")
            except StreamCut as cut:
                state.dropped(str(cut))
            if state.pause():
                await self._sleep(state.pause())

    async def escrow(self, escrow_id: bytes | str) -> dict[str, Any]:
        return await self._run(self._escrow(escrow_id))

    async def balance(self, account: str) -> int:
        return await self._run(self._balance(account))

    async def block(self, height: int) -> dict[str, Any]:
        return await self._run(self._block(height))

    async def proposals(self, status: str | None = None) -> list[dict[str, Any]]:
        return await self._run(self._proposals(status))

    async def proposal(self, proposal_id: bytes | str) -> dict[str, Any]:
        return await self._run(self._proposal(proposal_id))

    async def validators(self) -> dict[str, Any]:
        return await self._run(self._validators())

    async def params(self) -> dict[str, Any]:
        return await self._run(self._params())

    async def org(self, org_id: str) -> dict[str, Any]:
        return await self._run(self._org(org_id))

    async def node_keys(self, org: str | None = None) -> list[dict[str, Any]]:
        return await self._run(self._node_keys(org))
