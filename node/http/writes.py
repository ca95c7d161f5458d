"""Submitting events (``POST /v1/events``) and their status (``GET /v1/events/{id}``).

Owns the submission formats, the request-size and batch limits, and how intake outcomes
become HTTP answers. A body is accepted as:
- ``application/msgpack``: one encoded `SignedEvent`, or a msgpack array of encoded
  `SignedEvent`s (each a bin);
- ``application/json``: one signed event in JSON form (`protocol.jsonform`), or
  ``{"events": [signed event JSON, ...]}``, or ``{"raw": [hex of encoded SignedEvent, ...]}``.
Answers 202 ``{"results": [{"id", "status", "code"?, "message"?}, ...]}`` when at least
one event was accepted (or was already known); otherwise the first rejection's status
(`node.http.errors.status_for`): 400 (malformed, bad signature, wrong chain), 409
(nonce), 422 (ledger pre-check), 429 (per-sender quota) or 503 (mempool full), the last
two with Retry-After. A body over the limit is 413, before it is read in full.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import msgpack
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from afterchain.node.http.errors import REQUEST_ID, error, status_for
from afterchain.node.http.params import HEX32, Param
from afterchain.node.http.ports import Submitter
from afterchain.node.http.spec import ApiRoute, Body, Err, Op, Resp
from afterchain.node.runtime.mempool import AddOutcome
from afterchain.protocol import bodies as B
from afterchain.protocol.crypto import KeyPair
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.events import Event, SignedEvent, sign_event
from afterchain.protocol.jsonform import from_json, to_json

__all__ = ["parse_submission", "results_json", "write_routes"]


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge(int(declared))
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise _TooLarge(len(body))
    return bytes(body)


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        self.size = size


class _BadRequest(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message


def parse_submission(body: bytes, content_type: str, max_events: int) -> tuple[list[bytes], dict[int, ProtocolError]]:
    """Split a request body into encoded events; JSON events that fail to parse are
    reported by position in the second value (their slot holds b"")."""
    raws: list[bytes] = []
    errors: dict[int, ProtocolError] = {}
    if "msgpack" in content_type:
        try:
            top = msgpack.unpackb(body, raw=False, strict_map_key=True, max_array_len=max_events + 1)
        except Exception as exc:
            raise _BadRequest("decode.malformed", f"the body is not msgpack: {exc}") from None
        if isinstance(top, list) and top and all(isinstance(x, bytes) for x in top):
            raws = list(top)
        else:
            raws = [body]
    elif "json" in content_type or not content_type:
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise _BadRequest("decode.malformed", f"the body is not JSON: {exc}") from None
        except RecursionError:
            raise _BadRequest("decode.too_deep", "the JSON body is nested too deeply") from None
        if isinstance(doc, dict) and "raw" in doc:
            items = doc["raw"]
            if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
                raise _BadRequest("request.invalid", "'raw' must be a list of hex strings")
            try:
                raws = [bytes.fromhex(x) for x in items]
            except ValueError:
                raise _BadRequest("request.invalid", "'raw' holds a string that is not hex") from None
        else:
            objs = doc["events"] if isinstance(doc, dict) and "events" in doc else [doc]
            if not isinstance(objs, list):
                raise _BadRequest("request.invalid", "'events' must be a list")
            for i, obj in enumerate(objs):
                try:
                    raws.append(from_json(SignedEvent, obj).encode())
                except ProtocolError as exc:
                    errors[i] = exc
                    raws.append(b"")
    else:
        raise _BadRequest("request.content_type", f"unsupported content type {content_type!r}; use application/json or application/msgpack")
    if not raws:
        raise _BadRequest("request.empty", "no events in the request")
    if len(raws) > max_events:
        raise _BadRequest("request.too_many", f"{len(raws)} events in one request; the limit is {max_events}")
    return raws, errors


def _outcome_json(o: AddOutcome) -> dict[str, Any]:
    d: dict[str, Any] = {"id": o.event_id.hex() if o.event_id else None, "status": o.status}
    if o.code:
        d["code"] = o.code
        d["message"] = o.message
    return d


def _json_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def results_json(outcomes: Sequence[AddOutcome]) -> str:
    """The JSON array of `_outcome_json(o)` for each outcome, formatted directly (cheaper
    than dicts and `json.dumps` for a large batch). Statuses are fixed words and ids hex;
    codes and messages go through `json.dumps`."""
    parts: list[str] = []
    quoted: dict[str, str] = {}  # a refused batch repeats one code and message
    for o in outcomes:
        eid = f'"{o.event_id.hex()}"' if o.event_id else "null"
        if not o.code:
            parts.append(f'{{"id":{eid},"status":"{o.status}"}}')
            continue
        code = quoted.get(o.code) or quoted.setdefault(o.code, _json_str(o.code))
        msg = quoted.get(o.message) or quoted.setdefault(o.message, _json_str(o.message))
        parts.append(f'{{"id":{eid},"status":"{o.status}","code":{code},"message":{msg}}}')
    return "[" + ",".join(parts) + "]"


def write_routes(service: Submitter) -> list[ApiRoute]:
    async def submit(request: Request) -> Response:
        try:
            body = await _read_body(request, service.max_request_bytes)
            raws, pre = parse_submission(body, request.headers.get("content-type", ""), service.max_batch_events)
        except _TooLarge as exc:
            return error(413, "request.too_large", f"request body of {exc.size} bytes exceeds {service.max_request_bytes}")
        except _BadRequest as exc:
            return error(400, exc.code, exc.message)
        outcomes = await service.submit(raws, pre)
        results = results_json(outcomes)
        if any(o.ok for o in outcomes):
            return Response(f'{{"results":{results}}}'.encode(), status_code=202, media_type="application/json")
        first = outcomes[0]
        status = status_for(first.code)
        headers = {"Retry-After": "1"} if status in (429, 503) else None
        rid = REQUEST_ID.get()
        err = (f'{{"code":{_json_str(first.code)},"message":{_json_str(first.message)},'
               f'"request_id":{"null" if rid is None else _json_str(rid)}}}')
        return Response(f'{{"error":{err},"results":{results}}}'.encode(), status_code=status, headers=headers,
                        media_type="application/json")

    async def event_status(request: Request) -> Response:
        eid = _EVENT_ID.read(request)
        st = service.event_status(eid)
        if st is None:
            return error(404, "event.not_found", "this node has never seen that event")
        return JSONResponse(st)

    return [
        ApiRoute("/v1/events", submit, _SUBMIT, methods=["POST"]),
        ApiRoute("/v1/events/{event_id}", event_status, _STATUS),
    ]


def example_event() -> SignedEvent:
    """A signed event for the reference's examples (a product registration by a made-up key)."""
    key = KeyPair.from_seed(b"example".ljust(32, b"\0"))
    body = B.ProductRegister(gtin="00012345600012", serial="SN000001", model="M1", batch="B1",
                             production_time_ms=1_700_000_000_000)
    return sign_event(key, Event(chain_id="example-chain", type=body.EVENT_TYPE, sender=key.public, nonce=1,
                                 time_ms=1_700_000_000_000, body=body))


_EVENT_ID = Param("event_id", "path", HEX32, "the event's id: SHA-256 of its canonical encoding", "an event id")
_RETRY = {"Retry-After": "seconds to wait before trying again"}
_SUBMIT = Op(
    "Submit signed events", "events",
    {202: Resp("at least one event was accepted (or was already known); one result per event, in order",
               "$ref:SubmitResults"),
     400: Err("the body or an event is malformed, a signature does not verify, or the chain is wrong",
              ("decode.malformed", "request.invalid", "request.content_type", "request.empty", "request.too_many",
               "signature.invalid", "chain.wrong_id", "event.unknown_type", "field.invalid")),
     409: Err("the sender's nonce was used already, or is ahead of its first free nonce while this node holds "
              "its limit of events behind nonce gaps", ("nonce.replayed", "nonce.conflict", "nonce.gap")),
     413: Err("the body exceeds the node's request limit", ("request.too_large",)),
     422: Err("the ledger's pre-check refused the event (state: membership, permissions, ...)", ("permission.not_member", "permission.role")),
     429: Err("the sender's share of the mempool is full", ("mempool.quota",), _RETRY),
     503: Err("the mempool is full", ("mempool.full",), _RETRY)},
    description="One signed event, or a batch, as JSON (the protocol's JSON form: bytes as hex, integers exact; "
                "the signature is over the canonical binary encoding) or as msgpack (an encoded SignedEvent, or a "
                "msgpack array of them). When no event is accepted the answer is the first refusal's error, with "
                "`results` for every event.",
    body=Body("a signed event, a batch, or encoded events",
              {"application/json": "$ref:Submission",
               "application/msgpack": {"type": "string", "contentMediaType": "application/msgpack"}},
              {"application/json": to_json(example_event())}),
)
_STATUS = Op(
    "An event's status", "events",
    {200: Resp("pending (in the mempool), committed (with its block height and index) or rejected (with the code)",
               "$ref:EventStatus"),
     404: Err("this node has never seen that event", ("event.not_found",))},
    params=(_EVENT_ID,),
)
