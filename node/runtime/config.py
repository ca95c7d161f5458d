"""Node configuration (`node.toml`): parsed and validated at start.

Every error names the offending field (``api.listen: ...``) so an operator can fix it
without reading code. Paths are resolved relative to the config file's directory.

Example::

    [node]
    name = "acme-repairs"           # free text, shown in logs and the dashboard
    data_dir = "data"                # RocksDB stores live here
    key_file = "node.key"            # Ed25519 validator/member key (mode 0600)
    genesis_file = "genesis.json"

    [p2p]
    listen = "127.0.0.1:7001"
    # every other validator: its public key (hex) and where to reach it
    peers = [{ key = "ab12...", addr = "127.0.0.1:7002" }]

    [api]
    listen = "127.0.0.1:8001"
    admin_token_file = "admin.token" # optional; admin endpoints need it unless called from localhost
    cors_origins = ["*"]             # origins whose pages may GET read and proof routes ([] = none)

    [mempool]
    max_events = 200000
    max_bytes = 268435456
    per_sender_quota = 20000

    [log]
    level = "info"
    format = "auto"                  # auto | json | console
    access_log = false               # one http_access line per API request

    [member]                         # read while this node's key is not a validator's
    verify_event_signatures = false  # true: re-check every event of a certified block
    poll_ms = 100                    # how often a member asks a peer for new blocks
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ApiConfig", "ConfigError", "LogConfig", "MemberConfig", "MempoolConfig", "NodeConfig", "P2PConfig", "PeerAddr", "load_config", "parse_hostport"]


class ConfigError(ValueError):
    """A bad configuration; the message names the field."""

    def __init__(self, field_name: str, message: str) -> None:
        self.field = field_name
        super().__init__(f"{field_name}: {message}")


@dataclass(frozen=True, slots=True)
class PeerAddr:
    key: bytes
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class P2PConfig:
    host: str = "127.0.0.1"
    port: int = 7001
    peers: tuple[PeerAddr, ...] = ()


@dataclass(frozen=True, slots=True)
class ApiConfig:
    host: str = "127.0.0.1"
    port: int = 8001
    admin_token_file: Path | None = None
    max_request_bytes: int = 8 * 1024 * 1024
    max_batch_events: int = 5000
    cors_origins: tuple[str, ...] = ("*",)
    """Origins allowed to GET the read and proof routes from a browser (never writes or admin)."""


@dataclass(frozen=True, slots=True)
class MempoolConfig:
    max_events: int = 200_000
    max_bytes: int = 256 * 1024 * 1024
    per_sender_quota: int = 20_000


@dataclass(frozen=True, slots=True)
class MemberConfig:
    verify_event_signatures: bool = False
    poll_ms: int = 100


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str = "info"
    format: str = "auto"
    access_log: bool = False


@dataclass(frozen=True, slots=True)
class NodeConfig:
    name: str
    data_dir: Path
    key_file: Path
    genesis_file: Path
    p2p: P2PConfig = field(default_factory=P2PConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    mempool: MempoolConfig = field(default_factory=MempoolConfig)
    log: LogConfig = field(default_factory=LogConfig)
    member: MemberConfig = field(default_factory=MemberConfig)
    source: Path | None = None


def parse_hostport(value: Any, field_name: str) -> tuple[str, int]:
    if not isinstance(value, str) or value.count(":") != 1:
        raise ConfigError(field_name, f"expected 'host:port', got {value!r}")
    host, _, port_s = value.partition(":")
    if not host:
        raise ConfigError(field_name, "the host is empty")
    try:
        port = int(port_s)
    except ValueError:
        raise ConfigError(field_name, f"port {port_s!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ConfigError(field_name, f"port {port} is not in 0..65535")
    return host, port


def _section(raw: dict[str, Any], name: str, known: set[str]) -> dict[str, Any]:
    sec = raw.get(name, {})
    if not isinstance(sec, dict):
        raise ConfigError(name, "must be a table")
    unknown = set(sec) - known
    if unknown:
        raise ConfigError(f"{name}.{sorted(unknown)[0]}", f"unknown setting (known: {', '.join(sorted(known))})")
    return sec


def _int(sec: dict[str, Any], name: str, key: str, default: int, lo: int, hi: int) -> int:
    v = sec.get(key, default)
    if type(v) is not int:
        raise ConfigError(f"{name}.{key}", f"expected an integer, got {v!r}")
    if not lo <= v <= hi:
        raise ConfigError(f"{name}.{key}", f"{v} is not in {lo}..{hi}")
    return v


def _str(sec: dict[str, Any], name: str, key: str, default: str | None = None) -> str:
    v = sec.get(key, default)
    if not isinstance(v, str) or not v:
        raise ConfigError(f"{name}.{key}", "is required" if v is None else f"expected a non-empty string, got {v!r}")
    return v


def load_config(path: str | Path, *, check_files: bool = True) -> NodeConfig:
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError("config", f"{p} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{p} is not valid TOML: {exc}") from None
    return parse_config(raw, base=p.parent, source=p, check_files=check_files)


def parse_config(raw: dict[str, Any], *, base: Path, source: Path | None = None, check_files: bool = True) -> NodeConfig:
    unknown = set(raw) - {"node", "p2p", "api", "mempool", "log", "member"}
    if unknown:
        raise ConfigError(sorted(unknown)[0], "unknown section (known: node, p2p, api, mempool, log, member)")
    node = _section(raw, "node", {"name", "data_dir", "key_file", "genesis_file"})
    if "node" not in raw:
        raise ConfigError("node", "the [node] section is required")

    def path_of(key: str, must_exist: bool) -> Path:
        q = Path(_str(node, "node", key))
        q = q if q.is_absolute() else (base / q)
        if must_exist and check_files and not q.exists():
            raise ConfigError(f"node.{key}", f"{q} does not exist")
        return q

    p2p = _section(raw, "p2p", {"listen", "peers"})
    host, port = parse_hostport(p2p.get("listen", "127.0.0.1:7001"), "p2p.listen")
    peers_raw = p2p.get("peers", [])
    if not isinstance(peers_raw, list):
        raise ConfigError("p2p.peers", "must be a list of { key = HEX, addr = 'host:port' }")
    peers: list[PeerAddr] = []
    for i, pr in enumerate(peers_raw):
        fname = f"p2p.peers[{i}]"
        if not isinstance(pr, dict) or set(pr) != {"key", "addr"}:
            raise ConfigError(fname, "must be { key = HEX, addr = 'host:port' }")
        try:
            key = bytes.fromhex(pr["key"])
        except (TypeError, ValueError):
            raise ConfigError(f"{fname}.key", "is not hex") from None
        if len(key) != 32:
            raise ConfigError(f"{fname}.key", f"an Ed25519 public key is 32 bytes, got {len(key)}")
        ph, pp = parse_hostport(pr["addr"], f"{fname}.addr")
        peers.append(PeerAddr(key=key, host=ph, port=pp))
    if len({pa.key for pa in peers}) != len(peers):
        raise ConfigError("p2p.peers", "a peer key is listed twice")

    api = _section(raw, "api", {"listen", "admin_token_file", "max_request_bytes", "max_batch_events", "cors_origins"})
    cors = api.get("cors_origins", ["*"])
    if not isinstance(cors, list) or not all(isinstance(o, str) and o and o == o.strip() for o in cors):
        raise ConfigError("api.cors_origins", f'expected a list of origins ("*" or e.g. "https://shop.example"), got {cors!r}')
    for o in cors:
        if o != "*" and not (o.startswith(("http://", "https://")) and "/" not in o.split("://", 1)[1]):
            raise ConfigError("api.cors_origins", f'{o!r} is not "*" or an origin like "https://shop.example" (no path)')
    ahost, aport = parse_hostport(api.get("listen", "127.0.0.1:8001"), "api.listen")
    tok = api.get("admin_token_file")
    token_path = None
    if tok is not None:
        token_path = Path(_str(api, "api", "admin_token_file"))
        token_path = token_path if token_path.is_absolute() else base / token_path
    mp = _section(raw, "mempool", {"max_events", "max_bytes", "per_sender_quota"})
    lg = _section(raw, "log", {"level", "format", "access_log"})
    level = _str(lg, "log", "level", "info")
    if level not in {"debug", "info", "warning", "error"}:
        raise ConfigError("log.level", f"{level!r} is not one of debug, info, warning, error")
    mb = _section(raw, "member", {"verify_event_signatures", "poll_ms"})
    verify_events = mb.get("verify_event_signatures", False)
    if not isinstance(verify_events, bool):
        raise ConfigError("member.verify_event_signatures", "must be true or false")
    fmt = _str(lg, "log", "format", "auto")
    if fmt not in {"auto", "json", "console"}:
        raise ConfigError("log.format", f"{fmt!r} is not one of auto, json, console")
    access_log = lg.get("access_log", False)
    if not isinstance(access_log, bool):
        raise ConfigError("log.access_log", f"expected true or false, got {access_log!r}")

    return NodeConfig(
        name=_str(node, "node", "name", "node"),
        data_dir=path_of("data_dir", False),
        key_file=path_of("key_file", True),
        genesis_file=path_of("genesis_file", True),
        p2p=P2PConfig(host=host, port=port, peers=tuple(peers)),
        api=ApiConfig(
            host=ahost, port=aport, admin_token_file=token_path,
            max_request_bytes=_int(api, "api", "max_request_bytes", 8 * 1024 * 1024, 1024, 256 * 1024 * 1024),
            max_batch_events=_int(api, "api", "max_batch_events", 5000, 1, 100_000),
            cors_origins=tuple(cors),
        ),
        mempool=MempoolConfig(
            max_events=_int(mp, "mempool", "max_events", 200_000, 1, 10_000_000),
            max_bytes=_int(mp, "mempool", "max_bytes", 256 * 1024 * 1024, 1024, 16 * 1024**3),
            per_sender_quota=_int(mp, "mempool", "per_sender_quota", 20_000, 1, 10_000_000),
        ),
        log=LogConfig(level=level, format=fmt, access_log=access_log),
        member=MemberConfig(verify_event_signatures=verify_events, poll_ms=_int(mb, "member", "poll_ms", 100, 10, 10_000)),
        source=source,
    )
