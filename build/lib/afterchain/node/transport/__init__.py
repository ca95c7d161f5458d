"""Node-to-node transport: the `Transport` interface (base), in-memory (tests) and libp2p."""

from afterchain.node.transport.base import (
    DEFAULT_MAX_FRAME_BYTES,
    FrameTooLarge,
    PeerUnavailable,
    RemoteRequestError,
    RequestHandler,
    RequestTimeout,
    Transport,
    TransportError,
    TransportLimits,
    TransportStats,
)
from afterchain.node.transport.memory import MemoryNetwork, MemoryTransport

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "FrameTooLarge",
    "MemoryNetwork",
    "MemoryTransport",
    "PeerUnavailable",
    "RemoteRequestError",
    "RequestHandler",
    "RequestTimeout",
    "Transport",
    "TransportError",
    "TransportLimits",
    "TransportStats",
]
