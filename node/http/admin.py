"""Admin HTTP routes (operators and drills): the transport's fault switch.

Owns: who may call an admin route, and the routes themselves.

- Access: a request from the loopback interface (127.0.0.1, ::1), or one carrying
  ``Authorization: Bearer <token>`` where the token is the content of the file named by
  ``api.admin_token_file`` (read at start, refused if readable by group or others; no
  file = loopback only). Anything else is 403 ``admin.forbidden``. The token is compared in
  constant time and never logged.
- ``GET /v1/admin/faults``: ``{"block": [peer key hex], "drop_rate": r}``.
- ``POST /v1/admin/faults`` with ``{"block": [peer key hex, ...]}`` and/or
  ``{"drop_rate": 0..1}``: replaces what it names (``{"block": []}`` heals); answers the
  new state. Bad input is 400 ``request.invalid`` and changes nothing. Each change is
  logged by the transport (``transport_faults_set``) and here (``admin_faults_set``).
- ``GET /v1/admin/log``: ``{"level": the node's level, "loggers": {name: level}}`` (the
  standard loggers of libraries that have a level of their own).
- ``POST /v1/admin/log`` with ``{"level": "debug"}`` (the node's own lines and every
  library's default) or ``{"level": "debug", "logger": "libp2p"}`` (one library's standard
  logger and those below it): takes effect at once, until changed again or the node
  restarts (``log.level`` in the configuration is the level at start). Logged
  (``admin_log_level_set``); bad input is 400 ``request.invalid`` and changes nothing.
- ``POST /v1/admin/snapshot`` with ``{"dir": "/absolute/path"}`` (or ``{"offer": true}``: a
  complete snapshot in ``data_dir/snapshots/``, offered to peers, `node.runtime.statesync`): RocksDB checkpoints of
  the node's state store and chain store into that directory (on the node's own
  file system; absent or empty), consistent between two blocks
  (`node.runtime.snapshot.take_checkpoints`); answers ``{"dir", "state_height",
  "chain_height"}``. ``afterchain node snapshot`` calls it, then finishes the snapshot
  offline. 400 ``request.invalid`` for a bad path, 409 ``snapshot.failed`` when it
  cannot be taken (the message says why); nothing is left in the directory then.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from afterchain.node.common.log import LEVELS, current_levels, module_logger, set_level
from afterchain.node.http.errors import error
from afterchain.node.http.ports import FaultControl
from afterchain.node.http.spec import ApiRoute, Body, Err, Op, Resp

__all__ = ["LOOPBACK_HOSTS", "MAX_ADMIN_BODY_BYTES", "admin_routes", "is_admin", "load_admin_token"]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
MAX_ADMIN_BODY_BYTES = 256 * 1024
MAX_TOKEN_BYTES = 4096

_log = module_logger()


def load_admin_token(path: str | os.PathLike[str] | None) -> str | None:
    """The admin token from its file (stripped), None without a file. Raises `ValueError`
    for a missing, too-open, empty or oversized file."""
    if path is None:
        return None
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise ValueError(f"api.admin_token_file: cannot read {p}: {exc.strerror}") from None
    if st.st_mode & 0o077:
        raise ValueError(f"api.admin_token_file: {p} has mode {stat.S_IMODE(st.st_mode):04o}; run: chmod 600 {p}")
    if st.st_size > MAX_TOKEN_BYTES:
        raise ValueError(f"api.admin_token_file: {p} is larger than {MAX_TOKEN_BYTES} bytes")
    token = p.read_text().strip()
    if len(token) < 16:
        raise ValueError(f"api.admin_token_file: {p} holds fewer than 16 characters")
    return token


def _loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None  # ::ffff:127.0.0.1 on a dual-stack socket
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def is_admin(request: Request, token: str | None) -> bool:
    client = request.client
    if client is not None and _loopback(client.host):
        return True
    if token is None:
        return False
    given = request.headers.get("authorization", "")
    if not given.startswith("Bearer "):
        return False
    return hmac.compare_digest(given[len("Bearer "):].strip().encode(), token.encode())


SnapshotTaker = Callable[[str | None], Awaitable[dict[str, Any]]]
"""Takes the node's checkpoints into a directory; raises `ValueError` (bad path) or another
exception whose text says why it failed."""


def admin_routes(switch: FaultControl | None, token: str | None,
                 snapshot: SnapshotTaker | None = None) -> list[ApiRoute]:
    """The admin routes over the transport's fault switch (None: the transport has none,
    and the routes answer 501 ``admin.unsupported`` to an admin) and the node's snapshot
    taker (None: 501)."""

    async def faults(request: Request) -> Response:
        if not is_admin(request, token):
            return _forbidden(request)
        if switch is None:
            return error(501, "admin.unsupported", "this transport has no fault switch")
        if request.method == "GET":
            return JSONResponse(switch.describe())
        doc, bad = await _json_body(request)
        if bad is not None:
            return bad
        if not isinstance(doc, dict) or not doc or set(doc) - {"block", "drop_rate"}:
            return error(400, "request.invalid", 'expected {"block": [peer key hex, ...]} and/or {"drop_rate": 0..1}')
        block = doc.get("block")
        keys: list[bytes] | None = None
        if block is not None:
            if not isinstance(block, list) or not all(isinstance(x, str) for x in block):
                return error(400, "request.invalid", "'block' is a list of peer keys (64 hex characters)")
            try:
                keys = [bytes.fromhex(x) for x in block]
            except ValueError:
                return error(400, "request.invalid", "'block' holds a string that is not hex")
        try:
            switch.set(block=keys, drop_rate=doc.get("drop_rate"))
        except ValueError as exc:
            return error(400, "request.invalid", str(exc))
        state = switch.describe()
        _log.warning("admin_faults_set", blocked=len(state["block"]), drop_rate=state["drop_rate"])
        return JSONResponse(state)

    async def log_levels(request: Request) -> Response:
        if not is_admin(request, token):
            return _forbidden(request)
        if request.method == "GET":
            return JSONResponse(current_levels())
        doc, bad = await _json_body(request)
        if bad is not None:
            return bad
        if not isinstance(doc, dict) or set(doc) - {"level", "logger"} or "level" not in doc:
            return error(400, "request.invalid", 'expected {"level": "debug|info|warning|error|critical"} '
                                                 'and optionally "logger": a library logger\'s name')
        level, logger = doc["level"], doc.get("logger")
        if not isinstance(level, str) or level not in LEVELS:
            return error(400, "request.invalid", f"'level' is not one of {', '.join(LEVELS)}")
        if logger is not None and not (isinstance(logger, str) and 0 < len(logger) <= 200):
            return error(400, "request.invalid", "'logger' is a logger's name (1-200 characters)")
        set_level(level, logger)
        _log.warning("admin_log_level_set", level=level, logger=logger)
        return JSONResponse(current_levels())

    async def take_snapshot(request: Request) -> Response:
        if not is_admin(request, token):
            return _forbidden(request)
        if snapshot is None:
            return error(501, "admin.unsupported", "this node cannot take snapshots")
        doc, bad = await _json_body(request)
        if bad is not None:
            return bad
        offer = doc == {"offer": True}  # a snapshot offered to peers for state sync (node.runtime.statesync)
        if not offer and (not isinstance(doc, dict) or set(doc) != {"dir"} or not isinstance(doc["dir"], str)
                          or not os.path.isabs(doc["dir"]) or len(doc["dir"]) > 4096):
            return error(400, "request.invalid", 'expected {"dir": an absolute path on the node\'s file system} '
                                                 'or {"offer": true}')
        try:
            taken = await snapshot(None if offer else doc["dir"])  # type: ignore[index]
        except ValueError as exc:
            return error(400, "request.invalid", str(exc))
        except Exception as exc:  # the taker's own refusals and the file system's
            _log.warning("admin_snapshot_failed", dir=None if offer else doc["dir"], error=str(exc))  # type: ignore[index]
            return error(409, "snapshot.failed", str(exc))
        _log.warning("admin_snapshot_taken", **taken)
        return JSONResponse(taken)

    return [ApiRoute("/v1/admin/faults", faults, _FAULTS_OP, methods=["GET", "POST"]),
            ApiRoute("/v1/admin/log", log_levels, _LOG_OP, methods=["GET", "POST"]),
            ApiRoute("/v1/admin/snapshot", take_snapshot, _SNAPSHOT_OP, methods=["POST"])]


def _forbidden(request: Request) -> Response:
    _log.warning("admin_forbidden", path=request.url.path, client=request.client.host if request.client else None)
    return error(403, "admin.forbidden", "admin routes answer loopback clients or a valid bearer token only")


async def _json_body(request: Request) -> tuple[object, Response | None]:
    body = await request.body()
    if len(body) > MAX_ADMIN_BODY_BYTES:
        return None, error(413, "request.too_large", f"at most {MAX_ADMIN_BODY_BYTES} bytes")
    try:
        return json.loads(body), None
    except (ValueError, RecursionError):
        return None, error(400, "decode.malformed", "the body is not JSON")


_FAULTS_OP = Op(
    "The transport's fault switch (drills)", "admin",
    {200: Resp("the switch's state (after the change, for POST)", "$ref:Faults"),
     400: Err("the change is malformed; nothing changed", ("request.invalid", "decode.malformed")),
     403: Err("neither a loopback client nor a valid bearer token", ("admin.forbidden",)),
     413: Err("the body is too large", ("request.too_large",)),
     501: Err("this transport has no fault switch", ("admin.unsupported",))},
    description="Loopback clients, or `Authorization: Bearer <token>` (the node's api.admin_token_file). POST "
                "replaces what the body names: `block` (peer keys to cut off; [] heals) and/or `drop_rate` (0..1).",
    body=Body("the change", {"application/json": "$ref:FaultsChange"}, {"application/json": {"block": []}}),
)

_LOG_OP = Op(
    "Log levels, changed at run time", "admin",
    {200: Resp("the levels (after the change, for POST)", "$ref:LogLevels"),
     400: Err("the change is malformed; nothing changed", ("request.invalid", "decode.malformed")),
     403: Err("neither a loopback client nor a valid bearer token", ("admin.forbidden",)),
     413: Err("the body is too large", ("request.too_large",))},
    description="Loopback clients, or `Authorization: Bearer <token>`. POST `{\"level\": \"debug\"}` sets the node's "
                "level (its own lines and every library's default); with `\"logger\"` (e.g. `libp2p`), that library "
                "logger's level. It lasts until changed again or the node restarts.",
    body=Body("the change", {"application/json": "$ref:LogLevelChange"}, {"application/json": {"level": "debug"}}),
)

_SNAPSHOT_OP = Op(
    "Checkpoint the node's stores for a snapshot", "admin",
    {200: Resp("the checkpoints taken", {"type": "object", "required": ["dir", "state_height", "chain_height"],
                                         "properties": {"dir": {"type": "string"},
                                                        "state_height": {"type": "integer", "minimum": 0},
                                                        "chain_height": {"type": "integer", "minimum": 0}}}),
     400: Err("the body or the path is malformed; nothing written", ("request.invalid", "decode.malformed")),
     403: Err("neither a loopback client nor a valid bearer token", ("admin.forbidden",)),
     409: Err("the snapshot could not be taken (the message says why); nothing left in the directory",
              ("snapshot.failed",)),
     413: Err("the body is too large", ("request.too_large",)),
     501: Err("this node cannot take snapshots", ("admin.unsupported",))},
    description="Loopback clients, or `Authorization: Bearer <token>`. Writes RocksDB checkpoints of the state store "
                "and the chain store into `dir` (absent or empty, on the node's file system), consistent between two "
                "blocks; `afterchain node snapshot` calls this and then completes the snapshot (docs/OPERATIONS.md, "
                "\"Backups and upgrades\"). `{\"offer\": true}` instead takes a complete snapshot under the node's "
                "`data_dir/snapshots/` and offers it to peers for state sync (docs/OPERATIONS.md, \"State sync\").",
    body=Body("where to write", {"application/json": {"type": "object",
                                                      "properties": {"dir": {"type": "string"},
                                                                     "offer": {"type": "boolean"}}}},
              {"application/json": {"dir": "/var/lib/afterchain/snapshots/2026-12-07"}}),
)
