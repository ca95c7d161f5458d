"""The feed of committed events: what each executed block's events concern (their tags),
kept beside the block, and the subscribers that follow them (`node.http.stream` serves
them as Server-Sent Events).

Owns:
- the tags of each event (`EventTags`): its outcome (accepted or not), the organisations
  it concerns, its ticket and its product. They are taken when the block executes, from
  the state right after it (and, for ``ticket.assign``, the ticket's organisation right
  before it), and written to the chain store beside the block (`ChainStore.put_feed_tags`,
  not synced: a block whose tags are missing is tagged again from the current state when
  it is replayed, see `tags_now`). Tags are a node-local view, never consensus input;
  a ticket's organisation as of each event is what makes a replay deliver what the live
  stream delivered.
- `Subscription`: one client's filter and position; `frames()` replays the stored blocks
  after its position, then switches to live delivery with nothing missed and nothing
  repeated (it registers for live blocks only when the replay has reached the executed
  height, with no await in between), each event as one SSE frame.
- bounds: at most `max_subscribers` in total and `max_per_client` per client address
  (`SubscribeRefused`), and a queue of `queue_events` events per subscriber: a live block
  that does not fit cuts the subscriber off (an empty queue takes any block) (`Cut`, code ``stream.too_slow``) instead of
  slowing the node; it resumes from its cursor.

What an event concerns (`EventTags.orgs`): the sender's organisation; the organisation a
ticket event's ticket is assigned to (after the block; for ``ticket.assign`` also before
it); organisations named in the body (``to_org``, ``org_id``, ``service_org``,
``payee_org``). Its ticket: the ticket it opens (``ticket.open``, ``return.request``, when
accepted) or names (``ticket_id``). Its product: the body's ``gtin``/``serial``, else its
ticket's product. An undecodable event (refused at execution) is not in the feed.

Cursor: ``"<height>-<index>"`` of the last event delivered (`cursor_text`); the stream
resumes strictly after it.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
import trio

from afterchain.node.app.context import BlockResult
from afterchain.node.app.ledger import Ledger
from afterchain.node.runtime.chain_store import ChainStore
from afterchain.protocol import state_keys as K
from afterchain.protocol.block import Block
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.events import SignedEvent
from afterchain.protocol.jsonform import to_json

__all__ = [
    "Cut",
    "EventFeed",
    "EventFilter",
    "EventTags",
    "Position",
    "SubscribeRefused",
    "Subscription",
    "cursor_text",
    "parse_cursor",
]

Position = tuple[int, int]
"""(height, index) of an event; a subscription delivers events strictly after its position."""

_ORG_FIELDS = ("to_org", "org_id", "service_org", "payee_org")
_OPENS_TICKET = ("ticket.open", "return.request")
MAX_INDEX = 2**32


def cursor_text(pos: Position) -> str:
    return f"{pos[0]}-{pos[1]}"


def parse_cursor(text: str) -> Position | None:
    h, sep, i = text.partition("-")
    if not sep or not (h.isascii() and h.isdigit() and i.isascii() and i.isdigit()) or len(h) > 20 or len(i) > 10:
        return None
    return int(h), int(i)


@dataclass(frozen=True, slots=True)
class EventTags:
    ok: bool
    orgs: tuple[str, ...]
    ticket: bytes | None
    gtin: str | None
    serial: str | None

    def pack(self) -> list[Any]:
        return [self.ok, list(self.orgs), self.ticket, self.gtin, self.serial]

    @classmethod
    def unpack(cls, v: list[Any]) -> EventTags:
        return cls(bool(v[0]), tuple(v[1]), v[2], v[3], v[4])


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a subscriber gets: all given conditions hold (None: any)."""

    types: frozenset[str] | None = None
    org: str | None = None
    ticket: bytes | None = None
    gtin: str | None = None
    serial: str | None = None
    refused: bool = False
    """Also events the ledger refused (their ``code`` says why)."""

    def match(self, type_: str, t: EventTags) -> bool:
        return ((t.ok or self.refused)
                and (self.types is None or type_ in self.types)
                and (self.org is None or self.org in t.orgs)
                and (self.ticket is None or self.ticket == t.ticket)
                and (self.gtin is None or self.gtin == t.gtin)
                and (self.serial is None or self.serial == t.serial))


class SubscribeRefused(Exception):
    def __init__(self, code: str, message: str, *, busy: bool) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.busy = busy
        """True: the node's total is reached (503); False: this client's share (429)."""


@dataclass(frozen=True, slots=True)
class Cut:
    """Why a subscription ended: sent to the client as its last frame."""

    code: str
    message: str


def _sender_org(ledger: Ledger, sender: bytes) -> str | None:
    a = ledger.state.read(K.account(sender))
    return None if a is None else a.get("org")


def _ticket_org(ledger: Ledger, tid: bytes | None) -> str | None:
    if tid is None:
        return None
    t = ledger.ticket(tid)
    return None if t is None else t.get("org")


def event_tags(ledger: Ledger, signed: SignedEvent, ok: bool, before: str | None = None) -> EventTags:
    """The tags of one event from the ledger's current state (see the module docstring);
    `before`: the ticket's organisation before the block (``ticket.assign``)."""
    ev = signed.event
    body = ev.body
    ticket = getattr(body, "ticket_id", None)
    if ev.type in _OPENS_TICKET and ok:
        ticket = signed.id
    orgs = {_sender_org(ledger, ev.sender), before}
    for f in _ORG_FIELDS:
        orgs.add(getattr(body, f, None))
    gtin, serial = getattr(body, "gtin", None), getattr(body, "serial", None)
    if ticket is not None:
        t = ledger.ticket(ticket)
        if t is not None:
            orgs.add(t.get("org"))
            if gtin is None:
                gtin, serial = t.get("gtin"), t.get("serial")
    return EventTags(ok, tuple(sorted(o for o in orgs if o is not None)), None if ticket is None else bytes(ticket),
                     gtin, serial)


class Subscription:
    """One client's subscription (see the module docstring). Iterate `frames()` once."""

    def __init__(self, feed: EventFeed, flt: EventFilter, after: Position, client: str) -> None:
        self.feed = feed
        self.filter = flt
        self.pos = after
        self.client = client
        self.cut: Cut | None = None
        self._send, self._recv = trio.open_memory_channel[tuple[Position, bytes]](math.inf)
        self.queued = 0
        self.delivered = 0

    def close(self) -> None:
        """End the subscription (its response is over): it leaves the feed at once."""
        self.feed._drop(self)
        self._send.close()

    # called by the feed, synchronously, for each executed block
    def _offer(self, items: list[tuple[Position, bytes]]) -> None:
        if self.cut is not None:
            return
        if self.queued and self.queued + len(items) > self.feed.queue_events:  # (an empty queue takes a block)
            self.cut = Cut("stream.too_slow", f"more than {self.feed.queue_events} events waited for this "
                                              "subscriber; resume from the last cursor received")
            self.feed._drop(self)
            self._send.close()
            return
        for it in items:
            self._send.send_nowait(it)
        self.queued += len(items)

    async def frames(self, *, ping_s: float = 15.0, batch: bool = False) -> AsyncGenerator[bytes, None]:
        """SSE frames: a retry hint, the replay, then live events (a comment line every
        `ping_s` while idle); ends with an ``error`` frame if the subscriber is cut off.

        `batch`: each item is every frame ready at that moment joined (a stored block's, or
        the live ones waiting in the queue), so a block's events cost the HTTP server one
        write, not one per event (`node.http.stream` uses it; the bytes are the same)."""
        feed = self.feed
        try:
            yield b"retry: 1000\n\n"
            h = max(self.pos[0], 1) if self.pos[1] < MAX_INDEX else self.pos[0] + 1
            while True:  # replay the stored blocks the ledger has executed, until caught up
                top = feed.ledger.height
                while h <= top:
                    ready = []
                    for pos, frame in feed.replay_block(h, self.filter):
                        if pos > self.pos:
                            self.pos = pos
                            self.delivered += 1
                            if batch:
                                ready.append(frame)
                            else:
                                yield frame
                    if ready:
                        yield b"".join(ready)
                    h += 1
                    await trio.lowlevel.checkpoint()
                if feed.ledger.height == top:  # no await since the check: nothing can slip between
                    feed._register(self)
                    break
            while True:
                with trio.move_on_after(ping_s) as idle:
                    try:
                        pos, frame = await self._recv.receive()
                    except trio.EndOfChannel:
                        break
                if idle.cancelled_caught:
                    yield b": ping\n\n"
                    continue
                self.queued -= 1
                ready = []
                while True:
                    if pos > self.pos:
                        self.pos = pos
                        self.delivered += 1
                        ready.append(frame)
                    if not batch:
                        break
                    try:
                        pos, frame = self._recv.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):  # (the next receive sees the end)
                        break
                    self.queued -= 1
                if ready:
                    yield b"".join(ready)
            if self.cut is not None:
                body = {"code": self.cut.code, "message": self.cut.message, "cursor": cursor_text(self.pos)}
                yield b"event: error\ndata: " + json.dumps(body).encode() + b"\n\n"
        finally:
            feed._drop(self)


class EventFeed:
    """The node's feed: tags each executed block (`prepare` / `executed`, called by the
    block executor around `Ledger.apply_block`) and serves `Subscription`s."""

    def __init__(self, *, store: ChainStore, ledger: Ledger, max_subscribers: int = 256, max_per_client: int = 16,
                 queue_events: int = 10_000, log: Any = None) -> None:
        self.store = store
        self.ledger = ledger
        self.max_subscribers = max_subscribers
        self.max_per_client = max_per_client
        self.queue_events = queue_events
        self.log = log
        self.subscribers: set[Subscription] = set()
        self._live: set[Subscription] = set()
        self._per_client: dict[str, int] = {}
        self.cut_off = 0
        """Subscribers cut off as too slow (counted)."""
        self.untagged_replays = 0
        """Stored blocks replayed without their tags (tagged again from the current state)."""

    # ------------------------------------------------------------------ the executor's hook
    def prepare(self, decoded: Sequence[SignedEvent | None]) -> dict[bytes, str | None]:
        """Before a block executes: the organisation of each ticket it reassigns."""
        out: dict[bytes, str | None] = {}
        for d in decoded:
            if d is not None and d.event.type == "ticket.assign":
                tid = d.event.body.ticket_id  # type: ignore[attr-defined]
                if tid not in out:
                    out[tid] = _ticket_org(self.ledger, tid)
        return out

    def executed(self, block: Block, decoded: Sequence[SignedEvent | None], result: BlockResult,
                 before: dict[bytes, str | None]) -> None:
        """After a block executed: tag its events, store the tags, hand them to live subscribers."""
        if not block.events:
            return
        h = block.header.height
        tags: list[list[Any] | None] = []
        tagged: list[tuple[int, SignedEvent, EventTags]] = []
        for i, (pre, o) in enumerate(zip(decoded, result.outcomes, strict=True)):
            d = pre if pre is not None else _decode(block.events[i])
            if d is None:
                tags.append(None)
                continue
            prior = before.get(d.event.body.ticket_id) if d.event.type == "ticket.assign" else None  # type: ignore[attr-defined]
            t = event_tags(self.ledger, d, o.code == "ok", prior)
            tags.append(t.pack())
            tagged.append((i, d, t))
        self.store.put_feed_tags(h, msgpack.packb(tags, use_bin_type=True))
        if self._live:
            codes = [o.code for o in result.outcomes]
            self._publish(h, block.header.time_ms, tagged, codes)

    def _publish(self, h: int, time_ms: int, tagged: list[tuple[int, SignedEvent, EventTags]],
                 codes: list[str]) -> None:
        frames: dict[int, bytes] = {}
        for sub in list(self._live):
            items = []
            for i, d, t in tagged:
                if sub.filter.match(d.event.type, t):
                    f = frames.get(i)
                    if f is None:
                        f = frames[i] = frame((h, i), time_ms, d, t, codes[i])
                    items.append(((h, i), f))
            if items:
                sub._offer(items)

    # ------------------------------------------------------------------ replay
    def replay_block(self, h: int, flt: EventFilter) -> list[tuple[Position, bytes]]:
        """The frames of the stored block at `h` that `flt` matches (its stored tags, or
        tags taken now when they are missing)."""
        block = self.store.block(h)
        if block is None or not block.events:
            return []
        raw = self.store.feed_tags(h)
        stored = msgpack.unpackb(raw, raw=False) if raw is not None else None
        if stored is None:
            self.untagged_replays += 1
        out = []
        for i, ev_raw in enumerate(block.events):
            if stored is not None and stored[i] is None:
                continue
            d = _decode(ev_raw)
            if d is None:
                continue
            if stored is not None:
                t = EventTags.unpack(stored[i])
                code = "ok" if t.ok else self._code(d.id, h, i)
            else:
                code = self._code(d.id, h, i)
                t = event_tags(self.ledger, d, code == "ok")
            if flt.match(d.event.type, t):
                out.append(((h, i), frame((h, i), block.header.time_ms, d, t, code)))
        return out

    def _code(self, eid: bytes, h: int, i: int) -> str:
        o = self.ledger.event_outcome(eid)
        if o is None:
            return "unknown"
        if (o.height, o.index) != (h, i):  # a refused copy of an event accepted elsewhere
            return "event.duplicate" if o.code == "ok" else o.code
        return o.code

    # ------------------------------------------------------------------ subscribers
    def subscribe(self, flt: EventFilter, after: Position | None, client: str) -> Subscription:
        """A new subscription after `after` (None: from the next executed block on);
        `SubscribeRefused` beyond the bounds."""
        if len(self.subscribers) >= self.max_subscribers:
            raise SubscribeRefused("stream.busy", f"this node serves {self.max_subscribers} streams already; "
                                                  "try again later or another node", busy=True)
        if self._per_client.get(client, 0) >= self.max_per_client:
            raise SubscribeRefused("stream.too_many", f"at most {self.max_per_client} streams per client",
                                   busy=False)
        sub = Subscription(self, flt, after if after is not None else (self.ledger.height, MAX_INDEX), client)
        self.subscribers.add(sub)
        self._per_client[client] = self._per_client.get(client, 0) + 1
        return sub

    def _register(self, sub: Subscription) -> None:
        if sub in self.subscribers:
            self._live.add(sub)

    def _drop(self, sub: Subscription) -> None:
        if sub.cut is not None and sub in self._live:
            self.cut_off += 1
            if self.log is not None:
                self.log.info("stream_cut_off", client=sub.client, code=sub.cut.code, cursor=cursor_text(sub.pos))
        self._live.discard(sub)
        if sub in self.subscribers:
            self.subscribers.discard(sub)
            n = self._per_client.get(sub.client, 1) - 1
            if n:
                self._per_client[sub.client] = n
            else:
                self._per_client.pop(sub.client, None)

    def stats(self) -> dict[str, int]:
        return {"subscribers": len(self.subscribers), "live": len(self._live), "cut_off": self.cut_off,
                "untagged_replays": self.untagged_replays}


def _decode(raw: bytes) -> SignedEvent | None:
    try:
        return SignedEvent.decode(raw, max_bytes=1 << 24)
    except ProtocolError:
        return None


def event_json(pos: Position, time_ms: int, d: SignedEvent, t: EventTags, code: str) -> dict[str, Any]:
    """The JSON of one delivered event (`node.http.stream` documents it)."""
    ev = d.event
    return {
        "cursor": cursor_text(pos), "height": pos[0], "index": pos[1], "time_ms": time_ms, "id": d.id.hex(),
        "type": ev.type, "sender": ev.sender.hex(), "nonce": ev.nonce, "code": code, "orgs": list(t.orgs),
        "ticket": None if t.ticket is None else t.ticket.hex(), "gtin": t.gtin, "serial": t.serial,
        "body": to_json(ev.body),
    }


def frame(pos: Position, time_ms: int, d: SignedEvent, t: EventTags, code: str,
          dumps: Callable[[Any], str] = json.dumps) -> bytes:
    """One SSE frame: ``id`` (the cursor), ``event: committed``, ``data`` (one line of JSON)."""
    data = dumps(event_json(pos, time_ms, d, t, code), separators=(",", ":"))  # type: ignore[call-arg]
    return f"id: {cursor_text(pos)}\nevent: committed\ndata: {data}\n\n".encode()
