"""The node's versions: the software's (the installed package) and the peer protocol's.

- `package_version()`: the installed distribution's version (``pyproject.toml``), what
  ``afterchain --version``, ``/v1/status``, ``afterchain_build_info`` and the OpenAPI
  document report.
- `PROTOCOL_VERSION`: the version of the node-to-node protocol (frames, consensus, gossip
  and catch-up messages) this software speaks by default; `SUPPORTED_PROTOCOL_VERSIONS`:
  every version it can speak. Nodes negotiate it when they open a stream (the libp2p
  protocol id carries it: `node.transport.p2p.protocol_id`) and refuse a peer that speaks
  none of these (docs/PROTOCOL.md, "Protocol versions"). The number changes only with
  an incompatible change of the wire; docs/CHANGELOG.md says which release changed it.
"""

from __future__ import annotations

from functools import cache
from importlib import metadata

__all__ = ["PROTOCOL_VERSION", "SUPPORTED_PROTOCOL_VERSIONS", "package_version"]

PROTOCOL_VERSION = 1
SUPPORTED_PROTOCOL_VERSIONS: tuple[int, ...] = (1,)
"""Newest first."""


@cache
def package_version() -> str:
    """The installed `afterchain` distribution's version; "0.0.0+unknown" when run from a
    source tree that was never installed."""
    try:
        return metadata.version("afterchain")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"
