"""``GET /v1/stream``: committed events as Server-Sent Events, filtered, resumable.

Why SSE (not WebSocket): it is one long HTTP GET answered ``text/event-stream``, so it
passes every proxy, load balancer and firewall an ERP's HTTP calls already pass, needs no
upgrade handshake, works with ``curl`` and with any HTTP client (and every browser's
``EventSource``), and carries resumption in the protocol: each event's ``id`` is its
cursor and a client that reconnects sends it back as ``Last-Event-ID``. The stream only
flows one way (acknowledgements are ordinary signed events, ``POST /v1/events``), so a
WebSocket's second direction would buy nothing (docs/INTEGRATION.md).

Each event is a frame::

    id: <height>-<index>
    event: committed
    data: {"cursor": ..., "height", "index", "time_ms", "id", "type", "sender", "nonce",
           "code", "orgs", "ticket", "gtin", "serial", "body"}

(``data`` is one line of JSON: `node.http.schemas` ``StreamEvent``), in chain order. A
comment line (``: ping``) is sent every `PING_S` seconds while idle. The stream starts
after ``Last-Event-ID`` (a header, as ``EventSource`` sends it), else after ``cursor``,
else at ``from_height``, else with the next block; it replays what is stored and then
follows new blocks, with nothing missed and nothing repeated. Filters (all must hold):
``org``, ``type`` (a comma list), ``ticket``, ``gtin``, ``serial``; ``refused=1`` adds
events the ledger refused (``code`` says why). What an event concerns:
`node.runtime.feed`.

Bounds: a client whose queue of undelivered events passes the node's
``stream_queue_events`` gets a last ``event: error`` frame (``stream.too_slow``, with the
cursor to resume from) and the stream ends; 503 ``stream.busy`` when the node serves
``stream_max_subscribers`` streams, 429 ``stream.too_many`` past ``stream_max_per_client``
from one address.
"""

from __future__ import annotations

from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from afterchain.node.http.errors import error
from afterchain.node.http.params import BOOL_FLAG, GTIN, HEIGHT, HEX32, ORG_ID, SERIAL, BadParam, Kind, Param
from afterchain.node.http.ports import EventStream
from afterchain.node.http.spec import ApiRoute, Err, Op, Resp
from afterchain.node.runtime.feed import MAX_INDEX, EventFilter, SubscribeRefused, Subscription, parse_cursor
from afterchain.protocol.events import EVENT_TYPES

__all__ = ["PING_S", "stream_routes"]

PING_S = 15.0
MAX_TYPES = 32


def _types(text: str) -> frozenset[str] | None:
    names = text.split(",")
    if len(names) > MAX_TYPES or any(n not in EVENT_TYPES for n in names):
        return None
    return frozenset(names)


STREAM_CURSOR = Kind("[0-9]{1,20}-[0-9]{1,10}", 31, "<height>-<index>, as an event's id", parse_cursor,
                     example="12-0")
TYPES = Kind("[a-z_.]{1,32}(?:,[a-z_.]{1,32}){0,31}", 1055, f"a comma-separated list of event types (at most {MAX_TYPES})",
             _types, example="ticket.open")

ORG_P = Param("org", "query", ORG_ID, "only events that concern this organisation", "org")
TYPE_P = Param("type", "query", TYPES, "only events of these types (comma-separated)", "type")
TICKET_P = Param("ticket", "query", HEX32, "only events about this ticket", "ticket")
GTIN_P = Param("gtin", "query", GTIN, "only events about products of this GTIN-14", "gtin")
SERIAL_P = Param("serial", "query", SERIAL, "only events about products with this serial", "serial")
REFUSED_P = Param("refused", "query", BOOL_FLAG, "1 or true: also events the ledger refused")
CURSOR_P = Param("cursor", "query", STREAM_CURSOR, "start after this event (a frame's id; the Last-Event-ID "
                 "header wins)", "cursor")
FROM_P = Param("from_height", "query", HEIGHT, "start with the events of this height (not with cursor)",
               "from_height")
PARAMS = (ORG_P, TYPE_P, TICKET_P, GTIN_P, SERIAL_P, REFUSED_P, CURSOR_P, FROM_P)


class _SseResponse(StreamingResponse):
    """Drops the subscription however the response ends (done, client gone, cancelled)."""

    def __init__(self, sub: Subscription, ping_s: float) -> None:
        self.frames = sub.frames(ping_s=ping_s, batch=True)  # a write per block, not per event
        super().__init__(self.frames, media_type="text/event-stream",
                         headers={"cache-control": "no-cache", "x-accel-buffering": "no"})
        self.sub = sub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.sub.close()
            with anyio.CancelScope(shield=True):
                await self.frames.aclose()  # (its clean-up is synchronous: nothing to wait for)


def read_filter(request: Request) -> EventFilter:
    return EventFilter(types=TYPE_P.read(request), org=ORG_P.read(request), ticket=TICKET_P.read(request),
                       gtin=GTIN_P.read(request), serial=SERIAL_P.read(request), refused=REFUSED_P.flag(request))


def read_start(request: Request) -> tuple[int, int] | None:
    header = request.headers.get("last-event-id")
    if header is not None and header != "":
        pos = STREAM_CURSOR.parse(header)
        if pos is None:
            raise BadParam(f"Last-Event-ID is {STREAM_CURSOR.what}")
        return pos  # type: ignore[no-any-return]
    cursor, start = CURSOR_P.read(request), FROM_P.read(request)
    if cursor is not None and start is not None:
        raise BadParam("give cursor or from_height, not both")
    if cursor is not None:
        return cursor  # type: ignore[no-any-return]
    if start is not None:
        return (max(start, 1) - 1, MAX_INDEX)
    return None


def stream_routes(feed: EventStream, *, ping_s: float = PING_S) -> list[ApiRoute]:
    async def stream(request: Request) -> Response:
        flt = read_filter(request)
        after = read_start(request)
        client = request.client.host if request.client is not None else "unknown"
        try:
            sub = feed.subscribe(flt, after, client)
        except SubscribeRefused as exc:
            return error(503 if exc.busy else 429, exc.code, exc.message, {"Retry-After": "5"})
        return _SseResponse(sub, ping_s)

    retry: dict[str, Any] = {"Retry-After": "seconds to wait before trying again"}
    return [
        ApiRoute("/v1/stream", stream, Op(
            "A stream of committed events (Server-Sent Events)", "events",
            {200: Resp("``text/event-stream``: a frame per committed event (id: its cursor; event: committed; "
                       "data: a StreamEvent as one line of JSON), ``: ping`` comments while idle, and, when the "
                       "node cuts a slow subscriber off, a last ``event: error`` frame (data: code, message, "
                       "cursor)", {"type": "string"}, media="text/event-stream",
                       example="id: 12-0\nevent: committed\ndata: {\"cursor\":\"12-0\",...}\n\n"),
             429: Err("this client has too many streams open", ("stream.too_many",), retry),
             503: Err("this node serves as many streams as it may", ("stream.busy",), retry)},
            params=PARAMS,
            description="Replays the stored blocks after the start position, then follows new blocks; nothing "
                        "is missed or repeated across reconnects that resume from the last id received "
                        "(Last-Event-ID header or cursor). See docs/INTEGRATION.md, \"Subscribing\".")),
    ]
