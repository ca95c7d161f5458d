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
from starlette.routing import Route

from afterchain.node.http.errors import error, hex32, status_for
from afterchain.node.http.ports import Submitter
from afterchain.node.runtime.mempool import AddOutcome
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.events import SignedEvent
from afterchain.protocol.jsonform import from_json

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


def write_routes(service: Submitter) -> list[Route]:
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
        err = f'{{"code":{_json_str(first.code)},"message":{_json_str(first.message)}}}'
        return Response(f'{{"error":{err},"results":{results}}}'.encode(), status_code=status, headers=headers,
                        media_type="application/json")

    async def event_status(request: Request) -> Response:
        eid = hex32(request.path_params["event_id"])
        if eid is None:
            return error(400, "request.invalid", "an event id is 64 hex characters")
        st = service.event_status(eid)
        if st is None:
            return error(404, "event.not_found", "this node has never seen that event")
        return JSONResponse(st)

    return [
        Route("/v1/events", submit, methods=["POST"]),
        Route("/v1/events/{event_id}", event_status),
    ]
