"""The client's logic without its I/O, shared by `Client` (sync) and `AsyncClient` (async).

Owns everything of the SDK that is not waiting on a socket or a clock: the node list and
its failover order, the retry / back-off policy, request building, error mapping, the nonce
count, signing, outcome bookkeeping and the reads' paths and answers. Each operation is a
generator (an `Op`) that yields `Send` (one HTTP request to one node) and `Pause` (sleep)
steps and is sent back the `httpx.Response`, or the `httpx.HTTPError` the request raised,
or None after a pause; its return value is the operation's result. `Client` drives the
steps with `httpx.Client` and `time.sleep`, `AsyncClient` with `httpx.AsyncClient` and
`anyio.sleep`; neither holds any other logic, so both behave the same by construction.

Invariants: one `ClientCore` per signing key and caller (not thread- or task-safe: the nonce
count is plain state); the retry policy is bounded (`max_attempts` rounds, waits capped
by `BACKOFF_MAX_S` and `MAX_RETRY_AFTER_S`); a 4xx other than 429 is an answer, never
retried. The policy itself is described in `node.client.sdk`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar
from urllib.parse import quote

import httpx
import msgpack

from afterchain.node.client.ids import as_id, as_key, load_signing_key
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
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.events import Event, EventBody, SignedEvent, sign_event
from afterchain.protocol.types import PublicKey

__all__ = ["ClientCore", "Op", "Pause", "Reply", "Send", "Step", "StreamCut", "StreamState", "stream_params"]

DEFAULT_TIMEOUT_S = 30.0
"""How long `wait` / `send` wait for an outcome by default."""
REQUEST_TIMEOUT_S = 5.0
"""One HTTP request's timeout (connect, read)."""
MAX_ATTEMPTS = 3
"""Rounds over the node list before giving up on a request."""
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 2.0
MAX_RETRY_AFTER_S = 5.0
POLL_FIRST_S = 0.02
POLL_MAX_S = 0.1
MAX_REMEMBERED_TYPES = 10_000
"""Types of the most recent events this client signed, kept to label their outcomes."""
MAX_BATCH_EVENTS = 5000
"""Events in one submission (the node's default ``api.max_batch_events``)."""
USER_AGENT = "afterchain-client/0.1"
PAGE_LIMIT = 1000
"""Items asked for per page when a read follows a list to its end."""
STREAM_READ_TIMEOUT_S = 45.0
"""A stream with nothing, not even the node's ping (every 15 s), for this long is reconnected."""


@dataclass(frozen=True, slots=True)
class Send:
    """Step: send one HTTP request to one node; reply with the response or the httpx error."""

    method: str
    url: str
    content: bytes | None = None
    headers: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Pause:
    """Step: sleep `seconds` (back-off, Retry-After, polling); reply with None."""

    seconds: float


Step: TypeAlias = Send | Pause
Reply: TypeAlias = httpx.Response | httpx.HTTPError | None
T = TypeVar("T")
Op: TypeAlias = Generator[Step, Reply, T]
"""An operation: yields steps, is sent their replies, returns its result."""


def node_urls(nodes: str | Sequence[str]) -> list[str]:
    """The base URLs of `nodes` (one or a list), checked: ``http(s)://host:port``, no trailing slash."""
    urls = [nodes] if isinstance(nodes, str) else list(nodes)
    urls = [u.strip().rstrip("/") for u in urls if u.strip()]
    if not urls:
        raise InvalidInput("client.no_nodes", "give at least one node URL")
    for u in urls:
        if not u.startswith(("http://", "https://")):
            raise InvalidInput("client.bad_url", f"a node URL starts with http:// or https:// (got {u!r})")
    return urls


class ClientCore:
    """The state and the operations of a client, without I/O (see the module docstring).

    Subclasses add a driver that performs the steps and one public method per operation.
    """

    def __init__(
        self,
        nodes: str | Sequence[str],
        key: KeyPair | str | os.PathLike[str] | None,
        *,
        chain_id: str | None,
        max_attempts: int,
    ) -> None:
        self.nodes = node_urls(nodes)
        self.key = load_signing_key(key)
        self._chain_id = chain_id
        self.max_attempts = max(1, max_attempts)
        self._next_nonce: int | None = None
        self.types: dict[bytes, str] = {}
        """Event id -> type of the events this client signed (for printing outcomes)."""

    # ---- state without I/O
    def _require_key(self) -> KeyPair:
        if self.key is None:
            raise InvalidInput("client.no_key", "this action signs an event: give a key (--key FILE)")
        return self.key

    def set_next_nonce(self, nonce: int) -> None:
        """Sign the next event with `nonce` (and count on from there)."""
        self._next_nonce = nonce

    def resync_nonce(self) -> None:
        """Forget the local count: the next event asks the node again."""
        self._next_nonce = None

    # ---- HTTP with failover
    def _request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        content_type: str | None = None,
        ok: Iterable[int] = (200,),
    ) -> Op[httpx.Response]:
        ok = set(ok)
        headers = {"content-type": content_type} if content_type else None
        last_error = "no attempt made"
        backoff = BACKOFF_FIRST_S
        for attempt in range(self.max_attempts):
            for i, base in enumerate(list(self.nodes)):
                r = yield Send(method, base + path, content, headers)
                if isinstance(r, httpx.HTTPError):
                    last_error = f"{base}: {type(r).__name__}: {r}"
                    continue
                assert isinstance(r, httpx.Response)
                if r.status_code in ok or (400 <= r.status_code < 500 and r.status_code != 429):
                    if i:  # prefer the node that answered
                        self.nodes.insert(0, self.nodes.pop(i))
                    return r
                last_error = f"{base}: HTTP {r.status_code} {error_text(r)}"
                if r.status_code in (429, 503):
                    yield Pause(min(retry_after(r), MAX_RETRY_AFTER_S))
            if attempt + 1 < self.max_attempts:
                yield Pause(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
        raise Unreachable(
            f"no node answered {method} {path} after {self.max_attempts} rounds over "
            f"{len(self.nodes)} node(s); last: {last_error}"
        )

    def _get_json(self, path: str) -> Op[Any]:
        r = yield from self._request("GET", path)
        if r.status_code == 200:
            return r.json()
        code, message = error_of(r)
        if r.status_code == 404:
            raise NotFound(code, message)
        raise ClientError(code, message)

    # ---- chain and nonce
    def _status(self) -> Op[dict[str, Any]]:
        return (yield from self._get_json("/v1/status"))  # type: ignore[no-any-return]

    def _get_chain_id(self) -> Op[str]:
        if self._chain_id is None:
            self._chain_id = str((yield from self._status())["chain_id"])
        return self._chain_id

    def _account(self, public_key: bytes | str | None) -> Op[dict[str, Any]]:
        k = self._require_key().public if public_key is None else as_key(public_key)
        return (yield from self._get_json(f"/v1/accounts/{k.hex()}"))  # type: ignore[no-any-return]

    def _get_next_nonce(self) -> Op[int]:
        if self._next_nonce is None:
            self._next_nonce = int((yield from self._account(None))["next_nonce"])
        return self._next_nonce

    def _sign(self, body: EventBody, nonce: int | None, time_ms: int | None) -> Op[SignedEvent]:
        key = self._require_key()
        try:
            body.validate()
        except ProtocolError as exc:
            raise InvalidInput(str(exc.code), str(exc)) from None
        n = (yield from self._get_next_nonce()) if nonce is None else nonce
        ev = Event(
            chain_id=(yield from self._get_chain_id()),
            type=body.EVENT_TYPE,
            sender=PublicKey(key.public),
            nonce=n,
            time_ms=int(time.time() * 1000) if time_ms is None else time_ms,
            body=body,
        )
        try:
            ev.validate()
            signed = sign_event(key, ev)
        except ProtocolError as exc:
            raise InvalidInput(str(exc.code), str(exc)) from None
        if nonce is None:
            self._next_nonce = n + 1
        self.types[signed.id] = body.EVENT_TYPE
        if len(self.types) > MAX_REMEMBERED_TYPES:
            del self.types[next(iter(self.types))]  # oldest first (dicts keep insertion order)
        return signed

    # ---- submitting
    def _submit(self, events: SignedEvent | Sequence[SignedEvent]) -> Op[list[Outcome]]:
        evs = [events] if isinstance(events, SignedEvent) else list(events)
        out: list[Outcome] = []
        for start in range(0, len(evs), MAX_BATCH_EVENTS):
            chunk = evs[start : start + MAX_BATCH_EVENTS]
            body = (
                chunk[0].encode() if len(chunk) == 1 else msgpack.packb([e.encode() for e in chunk], use_bin_type=True)
            )
            r = yield from self._request(
                "POST", "/v1/events", content=body, content_type="application/msgpack", ok=(202,)
            )
            out.extend(self._outcomes_of_submission(chunk, r))
        return out

    def _outcomes_of_submission(self, chunk: Sequence[SignedEvent], r: httpx.Response) -> list[Outcome]:
        """The node's answer to one submission -> one `Outcome` per event (a rejection drops the nonce count)."""
        try:
            doc = r.json()
        except ValueError:
            raise ClientError("client.bad_answer", f"HTTP {r.status_code}: the node's answer is not JSON") from None
        results = doc.get("results") if isinstance(doc, dict) else None
        if not isinstance(results, list) or len(results) != len(chunk):
            code, message = error_of(r)
            raise ClientError(code, message)
        out = []
        for e, res in zip(chunk, results, strict=True):
            o = Outcome(
                id=e.id, status=str(res.get("status")), code=res.get("code"), message=res.get("message"), type=e.event.type
            )
            if o.status == "rejected":
                self.resync_nonce()
            out.append(o)
        return out

    def _event(self, event_id: bytes | str) -> Op[Outcome]:
        eid = as_id(event_id, "event id")
        d = yield from self._get_json(f"/v1/events/{eid.hex()}")
        return Outcome.from_json(d, self.types.get(eid))

    def _wait(self, event_id: bytes | str, timeout_s: float) -> Op[Outcome]:
        eid = as_id(event_id, "event id")
        deadline = time.monotonic() + timeout_s
        delay = POLL_FIRST_S
        while True:
            try:
                o: Outcome | None = yield from self._event(eid)
            except NotFound:
                o = None
            if o is not None and o.final:
                if o.status == "rejected":
                    self.resync_nonce()
                return o
            if time.monotonic() + delay > deadline:
                raise TimedOut(eid, timeout_s)
            yield Pause(delay)
            delay = min(delay * 2, POLL_MAX_S)

    def _wait_all(self, event_ids: Iterable[bytes | str], timeout_s: float) -> Op[list[Outcome]]:
        deadline = time.monotonic() + timeout_s
        out = []
        for e in event_ids:
            out.append((yield from self._wait(e, max(0.0, deadline - time.monotonic()))))
        return out

    def _submit_and_wait(self, event: SignedEvent, timeout_s: float) -> Op[Outcome]:
        sub = (yield from self._submit(event))[0]
        if sub.status == "rejected":
            raise Rejected(sub.code or "rejected", sub.message or "", event.id)
        if sub.code and sub.code.startswith("nonce."):
            self.resync_nonce()
        return (yield from self._wait(event.id, timeout_s)).raise_if_rejected()

    def _send(self, event: SignedEvent | EventBody, timeout_s: float) -> Op[Outcome]:
        signed = event if isinstance(event, SignedEvent) else (yield from self._sign(event, None, None))
        return (yield from self._submit_and_wait(signed, timeout_s))

    # ---- reads: the path of each, and what of its answer is returned
    def _ticket(self, ticket_id: bytes | str) -> Op[dict[str, Any]]:
        return (yield from self._get_json(f"/v1/tickets/{as_id(ticket_id, 'ticket id').hex()}"))  # type: ignore[no-any-return]

    def _product(self, gtin: str, serial: str) -> Op[dict[str, Any]]:
        return (yield from self._get_json(f"/v1/products/{seg(gtin)}/{seg(serial)}"))  # type: ignore[no-any-return]

    def _product_history(self, gtin: str, serial: str) -> Op[list[Any]]:
        return (yield from self._get_json(f"/v1/products/{seg(gtin)}/{seg(serial)}/history"))["history"]  # type: ignore[no-any-return]

    def _quality(self, org: str) -> Op[dict[str, Any]]:
        return (yield from self._get_json(f"/v1/orgs/{seg(org)}/quality"))  # type: ignore[no-any-return]

    def _page(self, path: str, cursor: str | None, limit: int | None) -> Op[dict[str, Any]]:
        """One page of a list route: its answer, with ``next_cursor`` (None: the last page)."""
        q = [f"cursor={seg(cursor)}"] if cursor else []
        if limit is not None:
            q.append(f"limit={int(limit)}")
        sep = "&" if "?" in path else "?"
        return (yield from self._get_json(path + (sep + "&".join(q) if q else "")))  # type: ignore[no-any-return]

    def _all(self, path: str, field: str) -> Op[list[Any]]:
        """Every item of a list route, following ``next_cursor`` page by page."""
        out: list[Any] = []
        cursor: str | None = None
        while True:
            page = yield from self._page(path, cursor, PAGE_LIMIT)
            out.extend(page[field])
            cursor = page.get("next_cursor")
            if not cursor:
                return out

    def _org_tickets(self, org: str, status: str | None) -> Op[list[str]]:
        q = f"?status={seg(status)}" if status else ""
        return (yield from self._all(f"/v1/orgs/{seg(org)}/tickets{q}", "tickets"))

    def _customer_tickets(self, customer: bytes | str | None) -> Op[list[str]]:
        k = self._require_key().public if customer is None else as_key(customer)
        return (yield from self._all(f"/v1/customers/{k.hex()}/tickets", "tickets"))

    def _orgs(self) -> Op[list[dict[str, Any]]]:
        return (yield from self._all("/v1/orgs", "orgs"))

    def _escrow(self, escrow_id: bytes | str) -> Op[dict[str, Any]]:
        return (yield from self._get_json(f"/v1/escrows/{as_id(escrow_id, 'escrow id').hex()}"))  # type: ignore[no-any-return]

    def _balance(self, account: str) -> Op[int]:
        return int((yield from self._get_json(f"/v1/balances/{seg(account)}"))["balance"])

    def _block(self, height: int) -> Op[dict[str, Any]]:
        return (yield from self._get_json(f"/v1/blocks/{int(height)}"))  # type: ignore[no-any-return]

    def _proposals(self, status: str | None) -> Op[list[dict[str, Any]]]:
        q = f"?status={seg(status)}" if status else ""
        return (yield from self._all(f"/v1/governance/proposals{q}", "proposals"))

    def _proposal(self, proposal_id: bytes | str) -> Op[dict[str, Any]]:
        pid = as_id(proposal_id, "proposal id").hex()
        return (yield from self._get_json(f"/v1/governance/proposals/{pid}"))  # type: ignore[no-any-return]

    def _validators(self) -> Op[dict[str, Any]]:
        return (yield from self._get_json("/v1/validators"))  # type: ignore[no-any-return]

    def _params(self) -> Op[dict[str, Any]]:
        return (yield from self._get_json("/v1/params"))  # type: ignore[no-any-return]

    def _org(self, org_id: str) -> Op[dict[str, Any]]:
        return (yield from self._get_json(f"/v1/orgs/{seg(org_id)}"))  # type: ignore[no-any-return]

    def _node_keys(self, org: str | None) -> Op[list[dict[str, Any]]]:
        path = "/v1/nodes" if org is None else f"/v1/orgs/{seg(org)}/nodes"
        return (yield from self._get_json(path))["nodes"]  # type: ignore[no-any-return]


class StreamCut(Exception):
    """The node ended a stream with a reason (``event: error``): reconnect from the cursor."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class StreamState:
    """A stream subscription's logic without its I/O (`Client.stream` / `AsyncClient.stream`):
    the request to make (the node, the filters, where to resume), what an answer and each
    SSE message mean, and when and how long to wait before reconnecting.

    Resuming: every delivered event's ``cursor`` is remembered; a reconnect (a dropped
    connection, a node that stops answering, a cut-off as too slow) asks the next node for
    the events after it (``Last-Event-ID``), so the caller sees every event of its filter
    once, in chain order, across reconnects and nodes. A 4xx other than 429 raises
    `ClientError` (a bad filter: retrying cannot help); `max_attempts` rounds over the nodes
    without an answer raise `Unreachable`.
    """

    def __init__(self, core: ClientCore, params: dict[str, str], cursor: str | None) -> None:
        self.core = core
        self.params = params
        self.cursor = cursor
        self.failed_rounds = 0
        self.failures_in_round = 0
        self.backoff = BACKOFF_FIRST_S
        self.last_error = "no attempt made"
        self.wait_s = 0.0

    def request(self) -> tuple[str, dict[str, str], dict[str, str]]:
        """(URL, query, headers) of the next connection."""
        params = dict(self.params)
        headers = {"accept": "text/event-stream"}
        if self.cursor is not None:
            params.pop("from_height", None)
            headers["last-event-id"] = self.cursor
        return self.core.nodes[0] + "/v1/stream", params, headers

    def opened(self, r: httpx.Response) -> bool:
        """The answer to a connection (its body read unless it is 200): True to read its
        events; False to try again (after `pause`); raises `ClientError` for a refusal that
        retrying cannot mend."""
        if r.status_code == 200:
            self.failed_rounds = self.failures_in_round = 0
            self.backoff = BACKOFF_FIRST_S
            return True
        code, message = error_of(r)
        if 400 <= r.status_code < 500 and r.status_code != 429:
            raise ClientError(code, message)
        self._failed(f"HTTP {r.status_code} {code}: {message}",
                     min(retry_after(r), MAX_RETRY_AFTER_S) if r.status_code in (429, 503) else 0.0)
        return False

    def message(self, event: str, data: str, id_: str) -> dict[str, Any] | None:
        """One SSE message: a committed event (returned, its cursor remembered), or None for
        anything else; raises `StreamCut` for the node's ``error`` frame."""
        if event == "error":
            try:
                doc = json.loads(data)
                code, message = str(doc.get("code", "stream.error")), str(doc.get("message", ""))
            except (ValueError, AttributeError):
                code, message = "stream.error", data[:200]
            raise StreamCut(code, message)
        if event != "committed":
            return None
        ev: dict[str, Any] = json.loads(data)
        self.cursor = str(ev.get("cursor") or id_)
        return ev

    def dropped(self, why: str) -> None:
        """The connection ended (error, cut-off, or the node closed it): move on."""
        self._failed(why, 0.0)

    def _failed(self, why: str, wait_s: float) -> None:
        self.last_error = f"{self.core.nodes[0]}: {why}"
        nodes = self.core.nodes
        nodes.append(nodes.pop(0))  # the next node first
        self.failures_in_round += 1
        self.wait_s = wait_s
        if self.failures_in_round >= len(nodes):
            self.failures_in_round = 0
            self.failed_rounds += 1
            if self.failed_rounds >= self.core.max_attempts:
                raise Unreachable(f"no node served the stream after {self.core.max_attempts} rounds over "
                                  f"{len(nodes)} node(s); last: {self.last_error}")
            self.wait_s = max(wait_s, self.backoff)
            self.backoff = min(self.backoff * 2, BACKOFF_MAX_S)

    def pause(self) -> float:
        """Seconds to wait before the next connection."""
        return self.wait_s


def stream_params(
    *,
    org: str | None,
    types: Iterable[str] | str | None,
    ticket: bytes | str | None,
    gtin: str | None,
    serial: str | None,
    refused: bool,
    from_height: int | None,
) -> dict[str, str]:
    """The query of ``/v1/stream`` for these filters."""
    q: dict[str, str] = {}
    if org is not None:
        q["org"] = org
    if types is not None:
        q["type"] = types if isinstance(types, str) else ",".join(types)
    if ticket is not None:
        q["ticket"] = as_id(ticket, "ticket id").hex()
    if gtin is not None:
        q["gtin"] = gtin
    if serial is not None:
        q["serial"] = serial
    if refused:
        q["refused"] = "1"
    if from_height is not None:
        q["from_height"] = str(int(from_height))
    return q


# ---- error mapping and headers
def seg(text: str) -> str:
    """`text` as one URL path segment (or query value)."""
    return quote(text, safe="")


def retry_after(r: httpx.Response) -> float:
    """The answer's ``Retry-After`` in seconds (1 when absent or unreadable)."""
    try:
        return max(0.0, float(r.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


def error_of(r: httpx.Response) -> tuple[str, str]:
    """The node's error code and message of an answer (``http.<status>`` when it has none)."""
    try:
        doc = r.json()
        err = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(err, dict):
            return str(err.get("code", f"http.{r.status_code}")), str(err.get("message", ""))
    except ValueError:
        pass
    return f"http.{r.status_code}", r.text[:200]


def error_text(r: httpx.Response) -> str:
    code, message = error_of(r)
    return f"{code}: {message}" if message else code
