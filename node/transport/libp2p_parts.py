"""The libp2p pieces of the transport that hold no connection state: protocol ids and
versions, the node key as a libp2p identity and peer id, address resolution (DNS names
and IPv6, at each dial), the Noise transport that enforces the allowlist, buffered reads,
yamux tuning and the routing of py-libp2p's logs. `node.transport.p2p` builds the
transport on them (docs/ARCHITECTURE.md, "The transport")."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import multiaddr
import structlog
import trio
from libp2p.abc import IRawConnection, ISecureConn
from libp2p.crypto.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from libp2p.crypto.keys import KeyPair as Libp2pKeyPair
from libp2p.crypto.x25519 import create_new_key_pair as new_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.security.exceptions import HandshakeFailure
from libp2p.security.noise.transport import Transport as NoiseTransport

from afterchain.node.common.log import short_id
from afterchain.node.common.version import SUPPORTED_PROTOCOL_VERSIONS
from afterchain.node.transport.base import (
    PEER_KEY_BYTES,
    TransportStats,
)

__all__ = ["PROTOCOL_ID", "PROTOCOL_PREFIX", "AddressError", "AllowlistNoise", "libp2p_key_pair", "peer_id_for", "protocol_id", "quiet_libp2p_logging", "resolve_addr", "route_libp2p_logging", "tune_yamux"]

PROTOCOL_PREFIX = "/afterchain/transport/"


def protocol_id(version: int) -> TProtocol:
    """The libp2p protocol id of node-to-node protocol `version`."""
    return TProtocol(f"{PROTOCOL_PREFIX}{version}.0.0")


PROTOCOL_ID = protocol_id(SUPPORTED_PROTOCOL_VERSIONS[0])
"""The newest version's protocol id."""

_log = structlog.get_logger("afterchain.transport.p2p")
_READ_CHUNK_BYTES = 256 * 1024


def libp2p_key_pair(seed: bytes) -> Libp2pKeyPair:
    """The libp2p identity key pair of the validator whose Ed25519 seed is `seed`."""
    if len(seed) != 32:
        raise ValueError("an Ed25519 seed is 32 bytes")
    private = Ed25519PrivateKey.new(seed)
    return Libp2pKeyPair(private, private.get_public_key())


def peer_id_for(key: bytes) -> ID:
    """The libp2p peer id of the validator with this 32-byte Ed25519 public key."""
    if len(key) != PEER_KEY_BYTES:
        raise ValueError(f"a validator key is {PEER_KEY_BYTES} bytes")
    return ID.from_pubkey(Ed25519PublicKey.from_bytes(key))


_NAME_FAMILIES = {"dns": socket.AF_UNSPEC, "dns4": socket.AF_INET, "dns6": socket.AF_INET6}


class AddressError(ValueError):
    """An address whose name the system resolver cannot resolve (the message says which)."""


async def resolve_addr(addr: multiaddr.Multiaddr) -> list[multiaddr.Multiaddr]:
    """`/dns|dns4|dns6/NAME/tcp/P` -> its `/ip4|ip6/A/tcp/P` addresses, in the order of the
    system resolver (`getaddrinfo`: hosts file, then DNS); other addresses as they are.
    Raises `AddressError` naming the name and the resolver's reason."""
    protocols = [p.name for p in addr.protocols()]
    family = _NAME_FAMILIES.get(protocols[0]) if protocols else None
    if family is None:
        return [addr]
    name = addr.value_for_protocol(protocols[0])
    port = int(addr.value_for_protocol("tcp"))
    try:
        infos = await trio.socket.getaddrinfo(name, port, family=family, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        wanted = {"dns4": "an IPv4 address", "dns6": "an IPv6 address"}.get(protocols[0], "an address")
        raise AddressError(f"cannot resolve {name!r} to {wanted} ({addr}): {e.strerror}") from None
    out: list[multiaddr.Multiaddr] = []
    for fam, _, _, _, sockaddr in infos:
        ip = str(sockaddr[0])
        if "%" in ip:  # a link-local IPv6 address with a zone: not dialable by multiaddr
            continue
        a = multiaddr.Multiaddr(f"/{'ip6' if fam == socket.AF_INET6 else 'ip4'}/{ip}/tcp/{port}")
        if a not in out:
            out.append(a)
    if not out:
        raise AddressError(f"cannot resolve {name!r} ({addr}): no usable address")
    return out


def tune_yamux() -> None:
    """Yamux returns receive-window credit once half the window is read, not after every
    read (py-libp2p's `PY_YAMUX_RELEASE_ON_READ`, read by its yamux at call time; an
    operator's own setting of that variable wins). See the module docstring."""
    os.environ.setdefault("PY_YAMUX_RELEASE_ON_READ", "0")


def route_libp2p_logging() -> None:
    """Send py-libp2p's records to the process's log (node.common.log renders them like
    every other line). At import, py-libp2p detaches its ``libp2p`` logger (no handler,
    no propagation, level WARNING): its records then reached Python's last-resort handler,
    plain text on stderr. Its level (WARNING) is kept; an operator lowers it at run time
    with ``POST /v1/admin/log {"logger": "libp2p", "level": "debug"}``."""
    lg = logging.getLogger("libp2p")
    lg.handlers.clear()
    lg.propagate = True


def quiet_libp2p_logging() -> None:
    """Silence py-libp2p's ERROR lines for events this module logs itself (a dial to a peer
    that is down, a refused handshake, a stream a peer would not open): they would repeat
    at every redial."""
    for name in ("libp2p.transport.tcp.tcp", "libp2p.network.swarm", "libp2p.host.basic_host"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


async def _no_background_task(nursery: trio.Nursery) -> None:
    return None


class _BufferedReads:
    """The TCP stream under Noise, read in chunks of up to `CHUNK` bytes.

    py-libp2p reads each Noise message with two `recv` calls on the socket (its 2-byte
    length, then its body) and each small consensus message is a Noise message of its own;
    this serves those reads from one `recv` of whatever has arrived. `read(n)` keeps its
    contract (at most `n` bytes; b"" at end of stream); writes and the rest go straight
    to the stream."""

    CHUNK = 256 * 1024

    __slots__ = ("_buf", "_pos", "_stream")

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._buf = b""
        self._pos = 0

    async def read(self, n: int | None = None) -> bytes:
        if self._pos >= len(self._buf):
            data: bytes = await self._stream.read(max(n or 0, self.CHUNK))
            if n is None or len(data) <= n:
                return data  # (b"": end of stream)
            self._buf, self._pos = data, n
            return data[:n]
        buf, pos = self._buf, self._pos
        end = len(buf) if n is None else min(len(buf), pos + n)
        self._pos = end
        if end >= len(buf):
            self._buf, self._pos = b"", 0
        return buf[pos:end]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _buffer_reads(conn: IRawConnection) -> IRawConnection:
    stream = getattr(conn, "stream", None)
    if stream is not None and not isinstance(stream, _BufferedReads) and hasattr(stream, "read"):
        conn.stream = _BufferedReads(stream)  # type: ignore[attr-defined]
    return conn


class AllowlistNoise(NoiseTransport):
    """Noise, then refuse any remote whose authenticated peer id is not allowlisted."""

    def __init__(self, key_pair: Libp2pKeyPair, allowed: set[ID], stats: TransportStats, log: Any,
                 blocked: Any = None) -> None:
        super().__init__(key_pair, noise_privkey=new_x25519_key_pair().private_key)
        self.allowed = allowed  # shared with the transport (add_peers, remove_peers)
        self.blocked = blocked
        """`blocked(peer_id) -> bool`: refused for now (the fault switch), though allowlisted."""
        self.stats = stats
        self.log = log

    async def secure_inbound(self, conn: IRawConnection) -> ISecureConn:
        return await self._check(await super().secure_inbound(_buffer_reads(conn)), "in")

    async def secure_outbound(self, conn: IRawConnection, peer_id: ID) -> ISecureConn:
        return await self._check(await super().secure_outbound(_buffer_reads(conn), peer_id), "out")

    async def _check(self, secure: ISecureConn, direction: str) -> ISecureConn:
        # `get_remote_peer()` is the peer id derived from the identity key that signed the
        # Noise static key in the handshake (`get_remote_public_key()` is the Noise key).
        remote = secure.get_remote_peer()
        if remote in self.allowed and not (self.blocked is not None and self.blocked(remote)):
            return secure
        reason = "not_allowlisted" if remote not in self.allowed else "blocked_by_fault_switch"
        self.stats.refused_peers += 1
        self.log.warning("transport_peer_refused", direction=direction, **_peer_fields(remote), reason=reason)
        await secure.close()
        raise HandshakeFailure(f"peer {remote} refused: {reason}")


def _peer_fields(peer_id: ID) -> dict[str, str]:
    """A remote in log lines: ``peer`` (its key's short id) when its peer id embeds an
    Ed25519 key, as every node's does, else ``remote_peer`` (the libp2p id)."""
    try:
        key = peer_id.extract_public_key()
    except Exception:
        key = None
    if isinstance(key, Ed25519PublicKey):
        return {"peer": short_id(key.to_bytes())}
    return {"remote_peer": str(peer_id)}


