"""Node-to-node transport: the `Transport` interface (base), in-memory (tests) and libp2p."""

from .base import (
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
from .memory import MemoryNetwork, MemoryTransport

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
