"""How a route documents itself: `ApiRoute` is a starlette `Route` that carries its `Op`.

Every route of the app is an `ApiRoute`; `node.http.openapi` walks the app's routes and
turns each `Op` into an OpenAPI operation, so a route cannot be served undocumented and a
documented route cannot be missing. An `Op` names its parameters (`node.http.params.Param`,
the same objects the handler parses with), its request body and its answers by status;
``"$ref:Name"`` in a schema position names a shared schema of `node.http.schemas`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from afterchain.node.http.errors import invalid
from afterchain.node.http.params import BadParam, Param

__all__ = ["JSON", "ApiRoute", "Body", "Err", "Op", "Resp"]

JSON = "application/json"


@dataclass(frozen=True)
class Resp:
    """A successful (or non-error) answer: its schema per media type and an example."""

    description: str
    schema: Any = None
    media: str = JSON
    example: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    """Response header name -> description."""


@dataclass(frozen=True)
class Err:
    """An error answer in the error shape, with the codes it may carry."""

    description: str
    codes: tuple[str, ...]
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Body:
    """A request body: schema (and example) per media type."""

    description: str
    content: Mapping[str, Any]
    examples: Mapping[str, Any] = field(default_factory=dict)
    """Media type -> example."""


@dataclass(frozen=True)
class Op:
    summary: str
    tag: str
    responses: Mapping[int, Resp | Err]
    params: tuple[Param, ...] = ()
    description: str = ""
    body: Body | None = None


class ApiRoute(Route):
    """A starlette `Route` with its documentation (`op`). A `BadParam` raised by the
    handler is answered here (400 ``request.invalid``), so the route behaves the same in
    any starlette app (tests mount route families alone)."""

    def __init__(self, path: str, endpoint: Callable[[Request], Awaitable[Response]], op: Op, *,
                 methods: list[str] | None = None) -> None:
        @functools.wraps(endpoint)
        async def checked(request: Request) -> Response:
            try:
                return await endpoint(request)
            except BadParam as exc:
                return invalid(exc.message)

        super().__init__(path, checked, methods=methods)
        self.op = op
