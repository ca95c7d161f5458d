"""Customer pages that verify in the browser: `page_routes()`.

- ``GET /01/{gtin}/21/{serial}``: a product passport at its GS1 Digital Link path;
- ``GET /t/{id}``: a ticket page;
- ``GET /pages/{file}``, ``/pages/vendor/{file}``, ``/pages/vendor/noble-hashes/{file}``:
  the pages' own script and style (`static/`) and the libraries vendored by
  ``scripts/vendor_page_libs`` (`static/vendor/`, with their licences and ``VERSION``);
The genesis the pages hash against the link's ``g=`` comes from ``GET /v1/genesis``
(`node.http.proofs`).

The HTML is one static shell (`static/page.html`) with the path's parameters filled in
(escaped) and a relative root, so the pages also work behind a proxy that mounts the node
under a prefix. Everything a page shows it fetches from the node's proof routes and checks
in JavaScript (`static/verify.js`, the light-client algorithm of docs/PROTOCOL.md section
8): the trust anchor is the genesis hash in the link (``?g=``), never the node; a
witness (``&w=URL``, another node) is asked for its latest header. No build step runs:
the files are served as they are in the package, gzip-compressed when the browser
accepts it (kept compressed in memory after the first request). The pages load nothing
from another origin but the witness, which their Content-Security-Policy allows.
"""

from __future__ import annotations

import gzip
import html
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from afterchain.node.http.params import GTIN, HEX32, SERIAL, Param, enum_kind
from afterchain.node.http.spec import ApiRoute, Op, Resp

__all__ = ["ASSETS", "STATIC_DIR", "page_routes"]

STATIC_DIR = Path(__file__).parent / "static"

_JS = "text/javascript; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"
ASSETS: dict[str, dict[str, str]] = {
    "": {"page.js": _JS, "verify.js": _JS, "page.css": "text/css; charset=utf-8"},
    "vendor/": {"noble-ed25519.js": _JS, "msgpack.js": _JS, "LICENSE.noble-ed25519": _TEXT,
                "LICENSE.noble-hashes": _TEXT, "LICENSE.msgpack": _TEXT, "VERSION": _TEXT},
    "vendor/noble-hashes/": {"sha2.js": _JS, "_md.js": _JS, "_u64.js": _JS, "utils.js": _JS},
}
"""The files served under /pages/, by folder, with their media types."""

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self' http: https:; base-uri 'none'; form-action 'none'; frame-ancestors *")
"""The pages run only their own scripts; they fetch from their node and the link's witness."""

GTIN_P = Param("gtin", "path", GTIN, "the product's GTIN-14 (GS1 Digital Link AI 01)")
SERIAL_P = Param("serial", "path", SERIAL, "the product's serial (GS1 Digital Link AI 21)")
TICKET_P = Param("id", "path", HEX32, "the ticket's id", "a ticket id")


def _shell(kind: str, root: str, data: dict[str, str]) -> str:
    text = (STATIC_DIR / "page.html").read_text()
    attrs = " ".join(f'data-{k}="{html.escape(v)}"' for k, v in data.items())
    return text.replace("{{ROOT}}", root).replace("{{KIND}}", kind).replace("{{DATA}}", attrs)


def page_routes() -> list[ApiRoute]:
    """The customer pages and their assets (the genesis they hash comes from ``/v1/genesis``,
    `node.http.proofs`)."""
    cache: dict[tuple[str, bool], bytes] = {}

    def page(kind: str, root: str, data: dict[str, str]) -> Response:
        return HTMLResponse(_shell(kind, root, data), headers={"Content-Security-Policy": CSP,
                                                               "Referrer-Policy": "no-referrer"})

    async def passport(request: Request) -> Response:
        return page("passport", "../../../", {"gtin": GTIN_P.read(request), "serial": SERIAL_P.read(request)})

    async def ticket(request: Request) -> Response:
        return page("ticket", "../", {"ticket": TICKET_P.read(request).hex()})

    def asset_route(folder: str) -> ApiRoute:
        names = ASSETS[folder]
        param = Param("file", "path", enum_kind(tuple(names), "one of the pages' files"), "a file of the customer pages")

        async def asset(request: Request) -> Response:
            name = param.read(request)
            gz = "gzip" in request.headers.get("accept-encoding", "")
            body = cache.get((folder + name, gz))
            if body is None:
                raw = (STATIC_DIR / folder / name).read_bytes()
                body = cache[(folder + name, gz)] = gzip.compress(raw, 9, mtime=0) if gz else raw
            headers = {"Cache-Control": "public, max-age=3600", "Vary": "Accept-Encoding"}
            if gz:
                headers["Content-Encoding"] = "gzip"
            return Response(body, media_type=names[name], headers=headers)

        return ApiRoute(f"/pages/{folder}{{file}}", asset, Op(
            "A file of the customer pages (script, style, vendored library, licence)", "pages",
            {200: Resp("the file (gzip-compressed when accepted)", {"type": "string"}, media="*/*")}, params=(param,)))

    html_ok = {200: Resp("an HTML page that fetches proofs and verifies them in the browser", {"type": "string"},
                         media="text/html")}
    routes = [
        ApiRoute("/01/{gtin}/21/{serial}", passport, Op(
            "A product passport (GS1 Digital Link path), verified in the browser", "pages", html_ok,
            params=(GTIN_P, SERIAL_P),
            description="Query: g = the genesis hash to trust (hex), w = a witness node's URL (repeatable).")),
        ApiRoute("/t/{id}", ticket, Op(
            "A ticket page, verified in the browser", "pages", html_ok, params=(TICKET_P,),
            description="Query: g = the genesis hash to trust (hex), w = a witness node's URL (repeatable).")),
        *(asset_route(folder) for folder in ASSETS),
    ]
    return routes
