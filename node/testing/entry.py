"""What every test-only node entry (`byzantine`, `byzantine_member`, `censor`) does once its
switches are set up: run the node as `afterchain node run` does, exit 2 with the reason
when it cannot start."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from afterchain.node.runtime.config import NodeConfig

__all__ = ["EXIT_USAGE", "serve"]

EXIT_USAGE = 2


def serve(config: NodeConfig, **run_kwargs: Any) -> int:
    import trio

    from afterchain.node.server import run_node
    from afterchain.protocol.errors import ProtocolError

    try:
        trio.run(lambda: run_node(config, **run_kwargs))
    except (ValueError, ProtocolError) as exc:
        print(f"cannot start the node: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        pass
    return 0
