"""The OpenAPI 3.1 document of the API, generated from the app itself (`openapi_document`).

The paths and methods are the app's routes (each an `ApiRoute` carrying its `Op`): a route
without documentation, or whose documented path parameters differ from the path's, is a
`TypeError` here (and so a failing test), never a silent gap. Parameter schemas are the
`Kind`s the handlers parse with; message schemas are generated from the protocol's classes
(`node.http.schemas`). Every operation also documents 500 ``internal`` and, when it takes
parameters, 400 ``request.invalid``; every answer carries ``X-Request-Id``. Pure: builds
a dict.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute

from afterchain.node.http.errors import INTERNAL
from afterchain.node.http.schemas import answer_schemas, message_schemas
from afterchain.node.http.spec import ApiRoute, Err, Op, Resp

__all__ = ["OPENAPI_VERSION", "TAGS", "openapi_document"]

OPENAPI_VERSION = "3.1.0"
TAGS = (
    ("events", "Submitting signed events and following them to a block"),
    ("ledger", "The after-sales ledger: tickets, products, organisations, accounts, escrows"),
    ("chain", "Blocks, node status, health and metrics"),
    ("governance", "Proposals, validators and parameters"),
    ("light", "State proofs and certified headers for light clients"),
    ("admin", "Operator routes (loopback or bearer token)"),
    ("reference", "This document, its reference page and the operator dashboard"),
)
_DESCRIPTION = (
    "The HTTP API of an afterchain node. JSON unless stated; bytes are lowercase hex (paths accept "
    "either case); integers are exact (64-bit). Every error is `{\"error\": {\"code\", \"message\", "
    "\"request_id\"}}` with a stable `code`; every answer carries `X-Request-Id` (yours, if you send a sane "
    "one). Event bodies follow the protocol's JSON form: each event type's body schema is generated from "
    "the protocol's message classes."
)
_REQUEST_ID_HEADER = {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}}


def _schema(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("$ref:"):
        return {"$ref": f"#/components/schemas/{value[5:]}"}
    return value


def _response(r: Resp | Err) -> dict[str, Any]:
    if isinstance(r, Err):
        codes = ", ".join(f"`{c}`" for c in r.codes)
        media: dict[str, Any] = {"schema": {"$ref": "#/components/schemas/Error"},
                                 "example": {"error": {"code": r.codes[0], "message": "...", "request_id": "4f1c..."}}}
        headers = {**_REQUEST_ID_HEADER, **{k: {"description": v, "schema": {"type": "string"}}
                                            for k, v in r.headers.items()}}
        return {"description": f"{r.description} (codes: {codes})", "headers": headers, "content": {"application/json": media}}
    out: dict[str, Any] = {"description": r.description,
                           "headers": {**_REQUEST_ID_HEADER, **{k: {"description": v, "schema": {"type": "string"}}
                                                                for k, v in r.headers.items()}}}
    if r.schema is not None:
        content: dict[str, Any] = {"schema": _schema(r.schema)}
        if r.example is not None:
            content["example"] = r.example
        out["content"] = {r.media: content}
    return out


def _operation_id(method: str, path: str) -> str:
    return f"{method}_{re.sub(r'[^A-Za-z0-9]+', '_', path).strip('_') or 'root'}"


def _operation(op: Op, method: str, path: str) -> dict[str, Any]:
    responses: dict[int, Resp | Err] = dict(op.responses)
    if op.params and 400 not in responses:
        responses[400] = Err("a path or query parameter is malformed", ("request.invalid",))
    responses.setdefault(500, Err("the node failed; its log has the exception with this request id", (INTERNAL,)))
    out: dict[str, Any] = {
        "operationId": _operation_id(method, path),
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": [p.openapi() for p in op.params],
        "responses": {str(status): _response(r) for status, r in sorted(responses.items())},
    }
    if op.description:
        out["description"] = op.description
    if op.body is not None and method != "get":
        content = {media: {"schema": _schema(s), **({"example": op.body.examples[media]} if media in op.body.examples
                                                     else {})}
                   for media, s in op.body.content.items()}
        out["requestBody"] = {"description": op.body.description, "required": True, "content": content}
    return out


def openapi_document(routes: Sequence[BaseRoute], *, version: str = "0.1.0") -> dict[str, Any]:
    """The OpenAPI document of an app with these `routes`."""
    paths: dict[str, dict[str, Any]] = {}
    names: set[str] = set()
    for route in routes:
        if not isinstance(route, ApiRoute):
            raise TypeError(f"route {getattr(route, 'path', route)!r} is not an ApiRoute: it has no documentation")
        path_params = {p.name for p in route.op.params if p.where == "path"}
        if path_params != set(route.param_convertors):
            raise TypeError(f"{route.path}: documented path parameters {sorted(path_params)} "
                            f"differ from the path's {sorted(route.param_convertors)}")
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue  # starlette answers HEAD wherever GET is served
            op = _operation(route.op, method.lower(), route.path)
            if op["operationId"] in names:
                raise TypeError(f"operationId {op['operationId']} is used twice ({route.path})")
            names.add(op["operationId"])
            paths.setdefault(route.path, {})[method.lower()] = op
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "afterchain node API", "version": version, "description": _DESCRIPTION,
                 "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}},
        "servers": [{"url": "/", "description": "this node"}],
        "tags": [{"name": n, "description": d} for n, d in TAGS],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {**answer_schemas(), **message_schemas()},
            "headers": {"RequestId": {"description": "the request's id: the client's X-Request-Id if sane "
                                                     "(1-128 of A-Z a-z 0-9 . _ : -), else a new one; error bodies "
                                                     "and the node's log carry it too",
                                      "schema": {"type": "string"}}},
        },
    }
