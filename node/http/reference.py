"""The API's reference: ``GET /openapi.json`` (the OpenAPI 3.1 document) and ``GET /docs``
(Swagger UI over it, from assets vendored in ``swagger_ui/`` by
``scripts/vendor_swagger_ui``, so the page works offline and makes no third-party request).

The document is built from the app's own routes at the first request and kept (the routes
do not change while the app runs). The page and its assets use relative URLs, so the
reference also works behind a reverse proxy that mounts the API under a prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute

from afterchain.node.http.openapi import openapi_document
from afterchain.node.http.params import Param, enum_kind
from afterchain.node.http.spec import ApiRoute, Op, Resp

__all__ = ["ASSETS", "ASSETS_DIR", "DOCS_HTML", "reference_routes"]

ASSETS_DIR = Path(__file__).parent / "swagger_ui"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "LICENSE": "text/plain; charset=utf-8",
    "NOTICE": "text/plain; charset=utf-8",
    "VERSION": "text/plain; charset=utf-8",
}
"""The vendored files /docs/assets serves, with their media types."""

DOCS_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>afterchain node API reference</title>
<link rel="stylesheet" href="docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({
  url: "openapi.json", dom_id: "#swagger-ui", deepLinking: true, validatorUrl: null,
  tryItOutEnabled: false, defaultModelsExpandDepth: 0,
});
</script>
</body>
</html>
"""

_ASSET = Param("file", "path", enum_kind(tuple(ASSETS), "one of the vendored files"), "a vendored file of the page")


def reference_routes(app_routes: Callable[[], Sequence[BaseRoute]], *, version: str = "0.1.0") -> list[ApiRoute]:
    """The reference routes; `app_routes` gives the whole app's routes (these included)."""
    cache: dict[str, Any] = {}

    async def openapi(request: Request) -> Response:
        doc = cache.get("doc")
        if doc is None:
            doc = cache["doc"] = openapi_document(app_routes(), version=version)
        return JSONResponse(doc)

    async def docs(request: Request) -> Response:
        return HTMLResponse(DOCS_HTML)

    async def asset(request: Request) -> Response:
        name = _ASSET.read(request)
        body = cache.get(name)
        if body is None:
            body = cache[name] = (ASSETS_DIR / name).read_bytes()
        return Response(body, media_type=ASSETS[name], headers={"Cache-Control": "public, max-age=3600"})

    return [
        ApiRoute("/openapi.json", openapi, Op(
            "This document (OpenAPI 3.1)", "reference",
            {200: Resp("the OpenAPI document", {"type": "object"})})),
        ApiRoute("/docs", docs, Op(
            "The API reference page (Swagger UI, works offline)", "reference",
            {200: Resp("an HTML page", {"type": "string"}, media="text/html")})),
        ApiRoute("/docs/assets/{file}", asset, Op(
            "A vendored asset of the reference page (Swagger UI, its licence and version)", "reference",
            {200: Resp("the file (JavaScript, CSS or text)", {"type": "string"}, media="*/*")}, params=(_ASSET,))),
    ]
