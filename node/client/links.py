"""Links customers open, and their QR codes.

- A product passport: the GS1 Digital Link ``BASE/01/{gtin}/21/{serial}`` (AI 01 the
  GTIN-14, AI 21 the serial, percent-encoded as GS1 Digital Link 1.2 asks for characters
  outside its safe set).
- A ticket page: ``BASE/t/{ticket id as 64 hex}``.

Both carry the trust anchor: ``?g={genesis hash as 64 hex}`` (the pages refuse a link
without it, ``light.no_anchor``: the node that serves a page must not choose the chain
it is checked against), and optionally ``&w={witness URL}``, repeated, the nodes the page
asks for their latest header to bound how stale the answer can be.

`BASE` is the URL of a node that serves the pages (or the company's site forwarding to
one), without a trailing slash. `write_qr` draws a link as a QR code with `segno` (error
correction M, at least 4 modules of quiet zone) as SVG or PNG, chosen by the file's suffix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

from afterchain.node.client.ids import as_id
from afterchain.node.client.outcomes import InvalidInput
from afterchain.protocol.bodies import validate_gtin, validate_serial
from afterchain.protocol.errors import ProtocolError

__all__ = ["QR_FORMATS", "check_base_url", "link_query", "product_link", "ticket_link", "write_qr"]

QR_FORMATS = (".svg", ".png")


def check_base_url(base_url: str) -> str:
    """`base_url` without trailing slashes; `InvalidInput` unless it is an http(s) URL."""
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise InvalidInput("client.invalid_url", f"the base URL must be http(s)://host[:port][/path], got {base_url!r}")
    return base_url.strip().rstrip("/")


def link_query(genesis_hash: bytes | str, witnesses: Sequence[str] = ()) -> str:
    """``?g=<genesis hash>[&w=<witness URL>...]``: the trust anchor and the witnesses of a link."""
    try:
        g = as_id(genesis_hash, "genesis hash").hex()
    except InvalidInput:
        raise InvalidInput("client.invalid_genesis", f"the genesis hash is 64 hex characters, got {genesis_hash!r}") from None
    return "?" + urlencode([("g", g), *(("w", check_base_url(w)) for w in witnesses)], safe=":/")


def product_link(base_url: str, gtin: str, serial: str, genesis_hash: bytes | str, witnesses: Sequence[str] = ()) -> str:
    """The GS1 Digital Link of product GTIN/SERIAL under `base_url`, anchored at the genesis
    of hash `genesis_hash`, with `witnesses` (node URLs) for freshness."""
    try:
        validate_gtin(gtin)
        validate_serial(serial)
    except ProtocolError as exc:
        raise InvalidInput("client.invalid_product", exc.message) from None
    query = link_query(genesis_hash, witnesses)
    return f"{check_base_url(base_url)}/01/{gtin}/21/{quote(serial, safe='')}{query}"


def ticket_link(base_url: str, ticket_id: bytes | str, genesis_hash: bytes | str, witnesses: Sequence[str] = ()) -> str:
    """The link of a ticket's page under `base_url`, anchored and witnessed as `product_link`."""
    query = link_query(genesis_hash, witnesses)
    return f"{check_base_url(base_url)}/t/{as_id(ticket_id, 'ticket id').hex()}{query}"


def write_qr(link: str, path: str | Path, *, scale: int = 8) -> Path:
    """Write `link` as a QR code to `path` (``.svg`` or ``.png``); returns the path."""
    import segno

    p = Path(path)
    if p.suffix.lower() not in QR_FORMATS:
        raise InvalidInput("client.invalid_file", f"the QR code file must end in .svg or .png, got {p.name!r}")
    qr = segno.make_qr(link, error="m")
    try:
        qr.save(str(p), scale=scale, border=4)
    except OSError as exc:
        raise InvalidInput("client.invalid_file", f"cannot write {p}: {exc.strerror or exc}") from None
    return p
