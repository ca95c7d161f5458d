"""Node configuration (`node.toml`): parsed and validated at start.

Every error names the offending field (``api.listen: ...``) so an operator can fix it
without reading code. Paths are resolved relative to the config file's directory.

Example::

    [node]
    name = "acme-repairs"           # free text, shown in logs and the dashboard
    data_dir = "data"                # RocksDB stores live here
    key_file = "node.key"            # Ed25519 validator/member key (mode 0600)
    # key_passphrase_file = "/run/secrets/key_passphrase"  # when the key file is encrypted
    genesis_file = "genesis.json"

    [p2p]
    listen = "127.0.0.1:7001"
    # every other validator: its public key (hex) and where to reach it
    peers = [{ key = "ab12...", addr = "127.0.0.1:7002" }]

    [api]
    listen = "127.0.0.1:8001"
    admin_token_file = "admin.token" # optional; admin endpoints need it unless called from localhost
    cors_origins = ["*"]             # origins whose pages may GET read and proof routes ([] = none)
    stream_max_subscribers = 256     # GET /v1/stream: open streams in total (503 stream.busy past it)
    stream_max_per_client = 16       # ... from one client address (429 stream.too_many past it)
    stream_queue_events = 10000      # undelivered events a stream may hold before it is cut off (stream.too_slow)

    [mempool]
    max_events = 200000
    max_bytes = 268435456
    per_sender_quota = 20000
    max_gapped_events = 20000        # events waiting behind a sender's nonce gap, in all
    max_gapped_per_sender = 5000     # ... and per sender (beyond: rejected, nonce.gap)

    [consensus]                      # request timers (docs/PROTOCOL.md, "Censorship resistance")
    request_forward_ms = 2000        # T1: relay an event held this long to the other validators
    request_timeout_ms = 8000        # T2: vote the primary out when one is held this long (0 = off)
    slow_blocks = 3                  # ... or after this many underfilled blocks in a row (0 = off)

    [log]
    level = "info"
    format = "auto"                  # auto | json | console
    access_log = false               # one http_access line per API request

    [member]                         # read while this node's key is not a validator's
    verify_event_signatures = false  # true: re-check every event of a certified block
    poll_ms = 100                    # how often a member asks a peer for new blocks
    relay = true                     # the dissemination relay (PROTOCOL.md section 11); false: poll only

Addresses (`p2p.listen`, `p2p.peers[].addr`, `api.listen`): `host:port` where host is an
IPv4 address or a DNS name, `[IPv6]:port`, or (p2p only) a multiaddr `/ip4/A/tcp/P`,
`/ip6/A/tcp/P`, `/dns4/NAME/tcp/P`, `/dns6/NAME/tcp/P`, `/dns/NAME/tcp/P`. Names are
checked for form here and resolved by the system resolver (hosts file, then DNS) at each
dial (`node.transport.p2p`), so a peer whose address changes after a restart is found
again; a listen name is resolved once at start.

Environment: every setting can be overridden by `AFTERCHAIN_<SECTION>_<KEY>` (upper
case: `AFTERCHAIN_P2P_LISTEN`, `AFTERCHAIN_MEMPOOL_MAX_EVENTS`, `AFTERCHAIN_NODE_DATA_DIR`).
The value is read as a TOML value (`5000`, `true`, `[{ key = "..", addr = ".." }]`) and
taken as a plain string when it is not one; `AFTERCHAIN_P2P_PEERS` also takes
`KEYHEX@ADDR,KEYHEX@ADDR`. Relative paths are relative to the config file's directory. An
`AFTERCHAIN_<SECTION>_...` name that is not a setting is an error (a typo would otherwise
be ignored); variables outside the sections (`AFTERCHAIN_KEY`, `AFTERCHAIN_NODE`, ...) are
not the node's configuration and are left alone.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ENV_PREFIX", "SECTIONS", "ApiConfig", "ConfigError", "ConsensusConfig", "LogConfig", "MemberConfig", "MempoolConfig",
           "NodeConfig", "P2PConfig", "PeerAddr", "StateSyncConfig", "env_overrides", "load_config", "multiaddr_of", "parse_address",
           "parse_hostport"]

ENV_PREFIX = "AFTERCHAIN_"
SECTIONS = ("node", "p2p", "api", "mempool", "log", "member", "statesync", "consensus")


class ConfigError(ValueError):
    """A bad configuration; the message names the field."""

    def __init__(self, field_name: str, message: str) -> None:
        self.field = field_name
        super().__init__(f"{field_name}: {message}")


def multiaddr_of(kind: str, host: str, port: int) -> str:
    """`/ip4/1.2.3.4/tcp/7001`, `/ip6/::1/tcp/7001`, `/dns4/v1/tcp/7001`, ..."""
    return f"/{kind}/{host}/tcp/{port}"


@dataclass(frozen=True, slots=True)
class PeerAddr:
    key: bytes
    host: str
    port: int
    kind: str = "ip4"
    """`ip4` | `ip6` (literal addresses) | `dns` | `dns4` | `dns6` (a name, resolved at each dial)."""

    @property
    def multiaddr(self) -> str:
        return multiaddr_of(self.kind, self.host, self.port)


@dataclass(frozen=True, slots=True)
class P2PConfig:
    host: str = "127.0.0.1"
    port: int = 7001
    peers: tuple[PeerAddr, ...] = ()
    kind: str = "ip4"

    @property
    def listen_multiaddr(self) -> str:
        return multiaddr_of(self.kind, self.host, self.port)


@dataclass(frozen=True, slots=True)
class ApiConfig:
    host: str = "127.0.0.1"
    port: int = 8001
    admin_token_file: Path | None = None
    max_request_bytes: int = 8 * 1024 * 1024
    max_batch_events: int = 5000
    cors_origins: tuple[str, ...] = ("*",)
    """Origins allowed to GET the read and proof routes from a browser (never writes or admin)."""
    stream_max_subscribers: int = 256
    stream_max_per_client: int = 16
    stream_queue_events: int = 10_000
    """The bounds of ``GET /v1/stream`` (`node.http.stream`, docs/INTEGRATION.md)."""


@dataclass(frozen=True, slots=True)
class MempoolConfig:
    max_events: int = 200_000
    max_bytes: int = 256 * 1024 * 1024
    per_sender_quota: int = 20_000
    max_gapped_events: int = 20_000
    max_gapped_per_sender: int = 5_000


@dataclass(frozen=True, slots=True)
class MemberConfig:
    verify_event_signatures: bool = False
    poll_ms: int = 100
    relay: bool = True


@dataclass(frozen=True, slots=True)
class StateSyncConfig:
    """`[statesync]` (node.runtime.statesync): `enable` fetches a snapshot from peers when
    the node starts on an empty data directory; `snapshot_interval` (blocks, 0 = none) and
    `snapshot_keep` are the snapshots this node offers to peers."""

    enable: bool = False
    snapshot_interval: int = 0
    snapshot_keep: int = 2
    discovery_s: int = 10


@dataclass(frozen=True, slots=True)
class ConsensusConfig:
    """Request timers (`NodeOptions.request_forward_ms` etc.)."""

    request_forward_ms: int = 2000
    request_timeout_ms: int = 8000
    slow_blocks: int = 3


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
    key_passphrase_file: Path | None = None
    p2p: P2PConfig = field(default_factory=P2PConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    mempool: MempoolConfig = field(default_factory=MempoolConfig)
    log: LogConfig = field(default_factory=LogConfig)
    member: MemberConfig = field(default_factory=MemberConfig)
    statesync: StateSyncConfig = field(default_factory=StateSyncConfig)
    consensus: ConsensusConfig = field(default_factory=ConsensusConfig)
    source: Path | None = None


_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_ADDR_FORMS = "'host:port', '[IPv6]:port' or a multiaddr such as '/dns4/NAME/tcp/PORT'"


def _port(port_s: str, field_name: str) -> int:
    if not port_s.isdigit():
        raise ConfigError(field_name, f"port {port_s!r} is not a number")
    port = int(port_s)
    if not 0 <= port <= 65535:
        raise ConfigError(field_name, f"port {port} is not in 0..65535")
    return port


def _host_kind(host: str, field_name: str) -> str:
    """`ip4`, `ip6` or `dns` for a host given in `host:port` form (checked)."""
    if not host:
        raise ConfigError(field_name, "the host is empty")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return "ip4" if ip.version == 4 else "ip6"
    _check_name(host, field_name)
    return "dns"


def _check_name(name: str, field_name: str) -> None:
    labels = name.removesuffix(".").split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ConfigError(field_name, f"{name!r} is neither an IP address nor a DNS name (dot-separated labels of letters, digits and '-')")
    if all(label.isdigit() for label in labels):
        raise ConfigError(field_name, f"{name!r} is not a valid IPv4 address")


def parse_address(value: Any, field_name: str, *, multiaddr: bool = True) -> tuple[str, str, int]:
    """`(kind, host, port)` of an address: `host:port` (IPv4 address or DNS name),
    `[IPv6]:port`, or (with `multiaddr`) `/ip4|ip6|dns|dns4|dns6/HOST/tcp/PORT`.
    `kind` is `ip4`, `ip6`, `dns`, `dns4` or `dns6`; names are checked, not resolved."""
    forms = _ADDR_FORMS if multiaddr else "'host:port' or '[IPv6]:port'"
    if not isinstance(value, str) or not value:
        raise ConfigError(field_name, f"expected {forms}, got {value!r}")
    if value.startswith("/"):
        if not multiaddr:
            raise ConfigError(field_name, f"expected {forms}, got the multiaddr {value!r}")
        parts = value.split("/")
        if len(parts) != 5 or parts[3] != "tcp" or parts[1] not in {"ip4", "ip6", "dns", "dns4", "dns6"}:
            raise ConfigError(field_name, f"{value!r}: a multiaddr here is /ip4|ip6|dns|dns4|dns6/HOST/tcp/PORT")
        kind, host, port = parts[1], parts[2], _port(parts[4], field_name)
        if kind in {"ip4", "ip6"}:
            try:
                ip = ipaddress.ip_address(host)
            except ValueError:
                raise ConfigError(field_name, f"{value!r}: {host!r} is not an IP address (for a name use /dns/{host}/tcp/{port})") from None
            if ip.version != int(kind[2]):
                raise ConfigError(field_name, f"{value!r}: {host} is an IPv{ip.version} address (use /ip{ip.version}/)")
        else:
            _check_name(host, field_name)
        return kind, host, port
    if value.startswith("["):
        inner, sep, port_s = value[1:].partition("]:")
        try:
            ok = bool(sep) and ipaddress.ip_address(inner).version == 6
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError(field_name, f"{value!r}: expected '[IPv6]:port', for example '[::1]:7001'")
        return "ip6", inner, _port(port_s, field_name)
    if value.count(":") > 1:
        raise ConfigError(field_name, f"{value!r}: an IPv6 address goes in brackets, as in '[::1]:7001'")
    if value.count(":") != 1:
        raise ConfigError(field_name, f"expected {forms}, got {value!r}")
    host, _, port_s = value.partition(":")
    port = _port(port_s, field_name)
    return _host_kind(host, field_name), host, port


def parse_hostport(value: Any, field_name: str) -> tuple[str, int]:
    """`(host, port)` of `host:port` or `[IPv6]:port` (the host without brackets)."""
    _, host, port = parse_address(value, field_name, multiaddr=False)
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


def _env_value(name: str, key: str, text: str) -> Any:
    if key == "peers" and not text.lstrip().startswith("["):
        peers = []
        for i, item in enumerate(x.strip() for x in text.split(",")):
            k, sep, addr = item.partition("@")
            if not sep:
                raise ConfigError(name, f"entry {i} {item!r}: expected KEYHEX@ADDR (comma-separated) or a TOML array")
            peers.append({"key": k.strip(), "addr": addr.strip()})
        return peers
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def env_overrides(env: Mapping[str, str]) -> dict[tuple[str, str], tuple[str, Any]]:
    """`{(section, key): (VAR, value)}` from `AFTERCHAIN_<SECTION>_<KEY>` variables."""
    out: dict[tuple[str, str], tuple[str, Any]] = {}
    for name, text in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        section, sep, key = name[len(ENV_PREFIX):].partition("_")
        if not sep or not key or section.lower() not in SECTIONS:
            continue
        out[(section.lower(), key.lower())] = (name, _env_value(name, key.lower(), text))
    return out


def load_config(path: str | Path, *, check_files: bool = True, env: Mapping[str, str] | None = None) -> NodeConfig:
    """Read `path`, apply the `AFTERCHAIN_<SECTION>_<KEY>` overrides of `env` (default:
    the process environment; pass `{}` for none) and validate. An error in an overridden
    setting names the variable."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError("config", f"{p} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{p} is not valid TOML: {exc}") from None
    overrides = env_overrides(os.environ if env is None else env)
    for (section, key), (_, value) in overrides.items():
        sec = raw.setdefault(section, {})
        if not isinstance(sec, dict):
            raise ConfigError(section, "must be a table")
        sec[key] = value
    try:
        return parse_config(raw, base=p.parent, source=p, check_files=check_files)
    except ConfigError as exc:
        for (section, key), (name, _) in overrides.items():
            f = f"{section}.{key}"
            if exc.field == f or exc.field.startswith((f + "[", f + ".")):
                raise ConfigError(exc.field, f"{str(exc).removeprefix(exc.field + ': ')} (the value of ${name})") from None
        raise


def parse_config(raw: dict[str, Any], *, base: Path, source: Path | None = None, check_files: bool = True) -> NodeConfig:
    unknown = set(raw) - set(SECTIONS)
    if unknown:
        raise ConfigError(sorted(unknown)[0], f"unknown section (known: {', '.join(SECTIONS)})")
    node = _section(raw, "node", {"name", "data_dir", "key_file", "genesis_file", "key_passphrase_file"})
    if "node" not in raw:
        raise ConfigError("node", "the [node] section is required")

    def path_of(key: str, must_exist: bool) -> Path:
        q = Path(_str(node, "node", key))
        q = q if q.is_absolute() else (base / q)
        if must_exist and check_files and not q.exists():
            raise ConfigError(f"node.{key}", f"{q} does not exist")
        return q

    p2p = _section(raw, "p2p", {"listen", "peers"})
    kind, host, port = parse_address(p2p.get("listen", "127.0.0.1:7001"), "p2p.listen")
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
        pk, ph, pp = parse_address(pr["addr"], f"{fname}.addr")
        peers.append(PeerAddr(key=key, host=ph, port=pp, kind=pk))
    if len({pa.key for pa in peers}) != len(peers):
        raise ConfigError("p2p.peers", "a peer key is listed twice")

    api = _section(raw, "api", {"listen", "admin_token_file", "max_request_bytes", "max_batch_events", "cors_origins",
                                "stream_max_subscribers", "stream_max_per_client", "stream_queue_events"})
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
    mp = _section(raw, "mempool", {"max_events", "max_bytes", "per_sender_quota", "max_gapped_events",
                                   "max_gapped_per_sender"})
    lg = _section(raw, "log", {"level", "format", "access_log"})
    level = _str(lg, "log", "level", "info")
    if level not in {"debug", "info", "warning", "error"}:
        raise ConfigError("log.level", f"{level!r} is not one of debug, info, warning, error")
    mb = _section(raw, "member", {"verify_event_signatures", "poll_ms", "relay"})
    relay = mb.get("relay", True)
    if not isinstance(relay, bool):
        raise ConfigError("member.relay", "must be true or false")
    cs = _section(raw, "consensus", {"request_forward_ms", "request_timeout_ms", "slow_blocks"})
    t1 = _int(cs, "consensus", "request_forward_ms", 2000, 10, 3_600_000)
    t2 = _int(cs, "consensus", "request_timeout_ms", 8000, 0, 3_600_000)
    if t2 and t2 <= t1:
        raise ConfigError("consensus.request_timeout_ms", f"must be greater than request_forward_ms ({t1}), or 0 (off)")
    verify_events = mb.get("verify_event_signatures", False)
    if not isinstance(verify_events, bool):
        raise ConfigError("member.verify_event_signatures", "must be true or false")
    fmt = _str(lg, "log", "format", "auto")
    if fmt not in {"auto", "json", "console"}:
        raise ConfigError("log.format", f"{fmt!r} is not one of auto, json, console")
    ss = _section(raw, "statesync", {"enable", "snapshot_interval", "snapshot_keep", "discovery_s"})
    ss_enable = ss.get("enable", False)
    if not isinstance(ss_enable, bool):
        raise ConfigError("statesync.enable", f"expected true or false, got {ss_enable!r}")
    access_log = lg.get("access_log", False)
    if not isinstance(access_log, bool):
        raise ConfigError("log.access_log", f"expected true or false, got {access_log!r}")

    return NodeConfig(
        name=_str(node, "node", "name", "node"),
        data_dir=path_of("data_dir", False),
        key_file=path_of("key_file", True),
        genesis_file=path_of("genesis_file", True),
        key_passphrase_file=path_of("key_passphrase_file", True) if "key_passphrase_file" in node else None,
        p2p=P2PConfig(host=host, port=port, peers=tuple(peers), kind=kind),
        api=ApiConfig(
            host=ahost, port=aport, admin_token_file=token_path,
            max_request_bytes=_int(api, "api", "max_request_bytes", 8 * 1024 * 1024, 1024, 256 * 1024 * 1024),
            max_batch_events=_int(api, "api", "max_batch_events", 5000, 1, 100_000),
            cors_origins=tuple(cors),
            stream_max_subscribers=_int(api, "api", "stream_max_subscribers", 256, 0, 100_000),
            stream_max_per_client=_int(api, "api", "stream_max_per_client", 16, 0, 100_000),
            stream_queue_events=_int(api, "api", "stream_queue_events", 10_000, 1, 10_000_000),
        ),
        mempool=MempoolConfig(
            max_events=_int(mp, "mempool", "max_events", 200_000, 1, 10_000_000),
            max_bytes=_int(mp, "mempool", "max_bytes", 256 * 1024 * 1024, 1024, 16 * 1024**3),
            per_sender_quota=_int(mp, "mempool", "per_sender_quota", 20_000, 1, 10_000_000),
            max_gapped_events=_int(mp, "mempool", "max_gapped_events", 20_000, 0, 10_000_000),
            max_gapped_per_sender=_int(mp, "mempool", "max_gapped_per_sender", 5_000, 0, 10_000_000),
        ),
        log=LogConfig(level=level, format=fmt, access_log=access_log),
        member=MemberConfig(verify_event_signatures=verify_events, poll_ms=_int(mb, "member", "poll_ms", 100, 10, 10_000),
                            relay=relay),
        statesync=StateSyncConfig(
            enable=ss_enable, snapshot_interval=_int(ss, "statesync", "snapshot_interval", 0, 0, 10_000_000),
            snapshot_keep=_int(ss, "statesync", "snapshot_keep", 2, 1, 100),
            discovery_s=_int(ss, "statesync", "discovery_s", 10, 1, 3600),
        ),
        consensus=ConsensusConfig(request_forward_ms=t1, request_timeout_ms=t2,
                                  slow_blocks=_int(cs, "consensus", "slow_blocks", 3, 0, 1000)),
        source=source,
    )
