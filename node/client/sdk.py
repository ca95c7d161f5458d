"""The client of participating companies: submit signed events to nodes and follow them.

Owns: talking to one or more nodes' HTTP API (`node.http`) on behalf of ONE signing key:
the key's nonce, signing (`Client.sign`; `Client.build` is the `EventBuilder` of every
event type), submission (one event or a batch, msgpack), waiting for an event's outcome,
and reads (tickets, products and their history, quality reports, escrows, balances,
accounts, blocks, governance). Errors and `Outcome` live in `node.client.outcomes`, id
and hash helpers in `node.client.ids`; `node.client` re-exports the public names.

Invariants and limits
- Synchronous (`httpx.Client`): simplest for ERP glue, scripts and the CLI. Not
  thread-safe; use one `Client` per thread.
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
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import httpx
import msgpack

from afterchain.node.client.builders import BUILDERS, EventBuilder
from afterchain.node.client.ids import (
    as_id,
    as_key,
    content_hash,
    customer_account,
    load_client_key,
    load_signing_key,
)
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

# The names this module exported before the split stay importable from here.
__all__ = [
    "BUILDERS",
    "DEFAULT_TIMEOUT_S",
    "MAX_BATCH_EVENTS",
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


class Client:
    """A synchronous client of a list of nodes, signing with one key (optional for reads).

    `nodes`: base URLs (``http://host:port``), tried in order with failover; the one
    that answered last is tried first next time. `key`: a `KeyPair` or a key file path.
    `chain_id`: learned from ``/v1/status`` when not given.
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
        urls = [nodes] if isinstance(nodes, str) else list(nodes)
        urls = [u.strip().rstrip("/") for u in urls if u.strip()]
        if not urls:
            raise InvalidInput("client.no_nodes", "give at least one node URL")
        for u in urls:
            if not u.startswith(("http://", "https://")):
                raise InvalidInput("client.bad_url", f"a node URL starts with http:// or https:// (got {u!r})")
        self.nodes = urls
        self.key = load_signing_key(key)
        self._chain_id = chain_id
        self.max_attempts = max(1, max_attempts)
        self._sleep = sleep
        self._http = httpx.Client(
            timeout=request_timeout_s, transport=transport, headers={"user-agent": "afterchain-client/0.1"}
        )
        self._next_nonce: int | None = None
        self.build = EventBuilder(self)
        self.types: dict[bytes, str] = {}
        """Event id -> type of the events this client signed (for printing outcomes)."""

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
        ok = set(ok)
        headers = {"content-type": content_type} if content_type else None
        last_error = "no attempt made"
        backoff = BACKOFF_FIRST_S
        for attempt in range(self.max_attempts):
            for i, base in enumerate(list(self.nodes)):
                try:
                    r = self._http.request(method, base + path, content=content, headers=headers)
                except httpx.HTTPError as exc:
                    last_error = f"{base}: {type(exc).__name__}: {exc}"
                    continue
                if r.status_code in ok or (400 <= r.status_code < 500 and r.status_code != 429):
                    if i:  # prefer the node that answered
                        self.nodes.insert(0, self.nodes.pop(i))
                    return r
                last_error = f"{base}: HTTP {r.status_code} {_error_text(r)}"
                if r.status_code in (429, 503):
                    self._sleep(min(_retry_after(r), MAX_RETRY_AFTER_S))
            if attempt + 1 < self.max_attempts:
                self._sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
        raise Unreachable(
            f"no node answered {method} {path} after {self.max_attempts} rounds over "
            f"{len(self.nodes)} node(s); last: {last_error}"
        )

    def get_json(self, path: str) -> Any:
        """GET `path` as JSON; 404 -> `NotFound`; another 4xx -> `ClientError`."""
        r = self.request("GET", path)
        if r.status_code == 200:
            return r.json()
        code, message = _error_of(r)
        if r.status_code == 404:
            raise NotFound(code, message)
        raise ClientError(code, message)

    # ---- chain and nonce
    def status(self) -> dict[str, Any]:
        return self.get_json("/v1/status")  # type: ignore[no-any-return]

    @property
    def chain_id(self) -> str:
        if self._chain_id is None:
            self._chain_id = str(self.status()["chain_id"])
        return self._chain_id

    def _require_key(self) -> KeyPair:
        if self.key is None:
            raise InvalidInput("client.no_key", "this action signs an event: give a key (--key FILE)")
        return self.key

    def account(self, public_key: bytes | str | None = None) -> dict[str, Any]:
        """``{"key", "nonce", "next_nonce"}`` of a key (default: the client's)."""
        k = self._require_key().public if public_key is None else as_key(public_key)
        return self.get_json(f"/v1/accounts/{k.hex()}")  # type: ignore[no-any-return]

    def next_nonce(self) -> int:
        """The nonce the next signed event gets (asks the node once, then counts)."""
        if self._next_nonce is None:
            self._next_nonce = int(self.account()["next_nonce"])
        return self._next_nonce

    def set_next_nonce(self, nonce: int) -> None:
        """Sign the next event with `nonce` (and count on from there)."""
        self._next_nonce = nonce

    def resync_nonce(self) -> None:
        """Forget the local count: the next event asks the node again."""
        self._next_nonce = None

    def sign(self, body: EventBody, *, nonce: int | None = None, time_ms: int | None = None) -> SignedEvent:
        """Validate `body`, wrap it in an event with the next nonce (or `nonce`) and sign it."""
        key = self._require_key()
        try:
            body.validate()
        except ProtocolError as exc:
            raise InvalidInput(str(exc.code), str(exc)) from None
        n = self.next_nonce() if nonce is None else nonce
        ev = Event(
            chain_id=self.chain_id,
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
    def submit(self, events: SignedEvent | Sequence[SignedEvent]) -> list[Outcome]:
        """Send one event or a batch (msgpack, one request per `MAX_BATCH_EVENTS`).

        Returns one `Outcome` per event: ``accepted`` / ``duplicate`` (in the mempool) or
        ``rejected`` with the node's code and message (the local nonce count is dropped).
        Raises `Unreachable`, or `ClientError` for a refused request (e.g. too large).
        """
        evs = [events] if isinstance(events, SignedEvent) else list(events)
        out: list[Outcome] = []
        for start in range(0, len(evs), MAX_BATCH_EVENTS):
            chunk = evs[start : start + MAX_BATCH_EVENTS]
            body = (
                chunk[0].encode() if len(chunk) == 1 else msgpack.packb([e.encode() for e in chunk], use_bin_type=True)
            )
            r = self.request("POST", "/v1/events", content=body, content_type="application/msgpack", ok=(202,))
            try:
                doc = r.json()
            except ValueError:
                raise ClientError("client.bad_answer", f"HTTP {r.status_code}: the node's answer is not JSON") from None
            results = doc.get("results") if isinstance(doc, dict) else None
            if not isinstance(results, list) or len(results) != len(chunk):
                code, message = _error_of(r)
                raise ClientError(code, message)
            for e, res in zip(chunk, results, strict=True):
                o = Outcome(
                    id=e.id,
                    status=str(res.get("status")),
                    code=res.get("code"),
                    message=res.get("message"),
                    type=e.event.type,
                )
                if o.status == "rejected":
                    self.resync_nonce()
                out.append(o)
        return out

    def event(self, event_id: bytes | str) -> Outcome:
        """The outcome of an event as a node knows it (``pending``, ``committed``, ``rejected``)."""
        eid = as_id(event_id, "event id")
        d = self.get_json(f"/v1/events/{eid.hex()}")
        return Outcome.from_json(d, self.types.get(eid))

    def wait(self, event_id: bytes | str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Outcome:
        """Poll until the event is committed or rejected; a rejection is returned, not raised.

        A node that has not heard of the event yet (404) is asked again: gossip may lag.
        Raises `TimedOut` after `timeout_s`, `Unreachable` if no node answers.
        """
        eid = as_id(event_id, "event id")
        deadline = time.monotonic() + timeout_s
        delay = POLL_FIRST_S
        while True:
            try:
                o = self.event(eid)
            except NotFound:
                o = None
            if o is not None and o.final:
                if o.status == "rejected":
                    self.resync_nonce()
                return o
            if time.monotonic() + delay > deadline:
                raise TimedOut(eid, timeout_s)
            self._sleep(delay)
            delay = min(delay * 2, POLL_MAX_S)

    def wait_all(self, event_ids: Iterable[bytes | str], *, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Outcome]:
        """`wait` for each event, within one overall `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        return [self.wait(e, timeout_s=max(0.0, deadline - time.monotonic())) for e in event_ids]

    def submit_and_wait(self, event: SignedEvent, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Outcome:
        """Submit one event and wait for its outcome; raise `Rejected` if it is refused
        (at intake or at commit), `TimedOut`, `Unreachable`. Returns the committed outcome."""
        sub = self.submit(event)[0]
        if sub.status == "rejected":
            raise Rejected(sub.code or "rejected", sub.message or "", event.id)
        if sub.code and sub.code.startswith("nonce."):
            self.resync_nonce()
        return self.wait(event.id, timeout_s=timeout_s).raise_if_rejected()

    def send(self, event: SignedEvent | EventBody, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Outcome:
        """`submit_and_wait` for a signed event, or for a body (signed here first)."""
        signed = event if isinstance(event, SignedEvent) else self.sign(event)
        return self.submit_and_wait(signed, timeout_s=timeout_s)

    # ---- reads
    def ticket(self, ticket_id: bytes | str) -> dict[str, Any]:
        return self.get_json(f"/v1/tickets/{as_id(ticket_id, 'ticket id').hex()}")  # type: ignore[no-any-return]

    def product(self, gtin: str, serial: str) -> dict[str, Any]:
        return self.get_json(f"/v1/products/{_seg(gtin)}/{_seg(serial)}")  # type: ignore[no-any-return]

    def product_history(self, gtin: str, serial: str) -> list[Any]:
        return self.get_json(f"/v1/products/{_seg(gtin)}/{_seg(serial)}/history")["history"]  # type: ignore[no-any-return]

    def quality(self, org: str) -> dict[str, Any]:
        return self.get_json(f"/v1/orgs/{_seg(org)}/quality")  # type: ignore[no-any-return]

    def org_tickets(self, org: str, status: str | None = None) -> list[str]:
        q = f"?status={_seg(status)}" if status else ""
        return self.get_json(f"/v1/orgs/{_seg(org)}/tickets{q}")["tickets"]  # type: ignore[no-any-return]

    def customer_tickets(self, customer: bytes | str | None = None) -> list[str]:
        """Ids (hex) of the tickets a customer key opened (default: the client's key)."""
        k = self._require_key().public if customer is None else as_key(customer)
        return self.get_json(f"/v1/customers/{k.hex()}/tickets")["tickets"]  # type: ignore[no-any-return]

    def escrow(self, escrow_id: bytes | str) -> dict[str, Any]:
        return self.get_json(f"/v1/escrows/{as_id(escrow_id, 'escrow id').hex()}")  # type: ignore[no-any-return]

    def balance(self, account: str) -> int:
        """Balance of an account: an organisation id or ``cust:<hex>`` (see `customer_account`)."""
        return int(self.get_json(f"/v1/balances/{_seg(account)}")["balance"])

    def block(self, height: int) -> dict[str, Any]:
        return self.get_json(f"/v1/blocks/{int(height)}")  # type: ignore[no-any-return]

    def proposals(self, status: str | None = None) -> list[dict[str, Any]]:
        """Governance proposals (oldest first), optionally only those in `status` (e.g. open)."""
        q = f"?status={_seg(status)}" if status else ""
        return self.get_json(f"/v1/governance/proposals{q}")["proposals"]  # type: ignore[no-any-return]

    def proposal(self, proposal_id: bytes | str) -> dict[str, Any]:
        """One proposal: kind, payload (JSON form), by, deadline, yes/no voters, status, result."""
        return self.get_json(f"/v1/governance/proposals/{as_id(proposal_id, 'proposal id').hex()}")  # type: ignore[no-any-return]

    def validators(self) -> dict[str, Any]:
        """The adopted validator set, the schedule (first heights) and the pending change."""
        return self.get_json("/v1/validators")  # type: ignore[no-any-return]

    def params(self) -> dict[str, Any]:
        """The adopted parameters: ``consensus``, ``vm``, ``ledger`` (JSON forms)."""
        return self.get_json("/v1/params")  # type: ignore[no-any-return]

    def org(self, org_id: str) -> dict[str, Any]:
        """A member organisation as the ledger has it now: name, roles, keys, since, removed."""
        return self.get_json(f"/v1/orgs/{_seg(org_id)}")  # type: ignore[no-any-return]


def _seg(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def _retry_after(r: httpx.Response) -> float:
    try:
        return max(0.0, float(r.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


def _error_of(r: httpx.Response) -> tuple[str, str]:
    try:
        doc = r.json()
        err = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(err, dict):
            return str(err.get("code", f"http.{r.status_code}")), str(err.get("message", ""))
    except ValueError:
        pass
    return f"http.{r.status_code}", r.text[:200]


def _error_text(r: httpx.Response) -> str:
    code, message = _error_of(r)
    return f"{code}: {message}" if message else code
