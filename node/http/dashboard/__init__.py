"""The operator dashboard: ``GET /`` serves `index.html` (a static page that polls the API),
read from the package at each request."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from afterchain.node.http.spec import ApiRoute, Op, Resp

__all__ = ["DASHBOARD_HTML", "dashboard_routes"]

DASHBOARD_HTML = Path(__file__).parent / "index.html"


def dashboard_routes() -> list[ApiRoute]:
    async def dashboard(request: Request) -> Response:
        return HTMLResponse(DASHBOARD_HTML.read_text())

    return [ApiRoute("/", dashboard, Op("The operator dashboard", "reference",
                                        {200: Resp("an HTML page that polls the API", {"type": "string"},
                                                   media="text/html")}))]
