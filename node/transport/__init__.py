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

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "FrameTooLarge",
    "PeerUnavailable",
    "RemoteRequestError",
    "RequestHandler",
    "RequestTimeout",
    "Transport",
    "TransportError",
    "TransportLimits",
    "TransportStats",
]
