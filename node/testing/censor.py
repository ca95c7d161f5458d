"""TEST ONLY: a censoring or slow primary, for the nemesis `censor` / `slow` scenarios and tests.

Never reachable from production: no production module imports this one. A test applies a
mode to a built node (`apply(node, mode, senders)`); a real process runs the ordinary node
with the mode through this module's own entry point,

    AFTERCHAIN_TEST_CENSOR=censor AFTERCHAIN_TEST_CENSOR_SENDERS=HEX,HEX \\
    AFTERCHAIN_TEST_SWITCHES=1 python -m afterchain.node.testing.censor node run --config node.toml

which refuses to start unless ``AFTERCHAIN_TEST_SWITCHES=1`` is set too (`censor_mode`).

- ``censor``: while primary, the node's proposals leave out every event signed by one of
  the given sender keys (an organisation's keys); everything else is proposed as usual,
  on time, so no view timer notices.
- ``slow``: while primary, one event per block, and a block only when the view timeout is
  nearly over (`SLOW_FRACTION` of it since the last proposal), so no view timer fires.

The replica, its signer and every vote stay honest: only what the primary proposes, and
when, changes. The honest backups' request timers (docs/PROTOCOL.md, "Censorship
resistance") must replace such a primary.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

from afterchain.protocol.events import SignedEvent

__all__ = ["ENTRY_MODULE", "ENV_MODE", "ENV_SENDERS", "ENV_SWITCHES", "MODES", "SLOW_FRACTION", "apply", "censor_mode", "main"]

ENV_MODE = "AFTERCHAIN_TEST_CENSOR"
ENV_SENDERS = "AFTERCHAIN_TEST_CENSOR_SENDERS"
ENV_SWITCHES = "AFTERCHAIN_TEST_SWITCHES"
MODES = ("censor", "slow")
SLOW_FRACTION = 0.8
"""A slow primary proposes once this fraction of the view timeout has passed."""
EXIT_USAGE = 2
ENTRY_MODULE = "afterchain.node.testing.censor"
"""`python -m` this module to run a censoring / slow node process."""


def censor_mode(environ: dict[str, str] | None = None) -> tuple[str, frozenset[bytes]] | None:
    """(mode, sender keys) from the environment, None when unset. Raises `ValueError` if it
    is set without ``AFTERCHAIN_TEST_SWITCHES=1``, to an unknown mode, or ``censor``
    without sender keys."""
    env = os.environ if environ is None else environ
    mode = env.get(ENV_MODE)
    if not mode:
        return None
    if env.get(ENV_SWITCHES) != "1":
        raise ValueError(f"{ENV_MODE} is a test-only switch: refused unless {ENV_SWITCHES}=1 is also set")
    if mode not in MODES:
        raise ValueError(f"{ENV_MODE}={mode!r}: the modes are {', '.join(MODES)}")
    try:
        senders = frozenset(bytes.fromhex(h) for h in env.get(ENV_SENDERS, "").split(",") if h)
    except ValueError:
        raise ValueError(f"{ENV_SENDERS}: a comma list of hex public keys") from None
    if mode == "censor" and not senders:
        raise ValueError(f"{ENV_MODE}=censor needs {ENV_SENDERS}")
    return mode, senders


def apply(node: Any, mode: str, senders: frozenset[bytes] = frozenset()) -> None:
    """Make `node` (a `node.runtime.runner.Node`, built, not yet running) censor or be slow
    while it is primary."""
    app = node.app
    build: Callable[[int, int], tuple[bytes, ...]] = app.build_payload
    if mode == "censor":
        def censored(max_events: int, max_bytes: int) -> tuple[bytes, ...]:
            out = []
            for raw in build(max_events, max_bytes):
                if SignedEvent.decode(raw).event.sender in senders:
                    node.counters["test_censored"] = node.counters.get("test_censored", 0) + 1
                    continue
                out.append(raw)
            return tuple(out)
        app.build_payload = censored
    elif mode == "slow":
        app.build_payload = lambda max_events, max_bytes: build(1, max_bytes)
        proposer = node.proposer
        propose = proposer.maybe_propose

        def slow_propose() -> None:
            r = proposer.replica
            wait_s = SLOW_FRACTION * r.params.view_timeout_ticks * node.options.tick_ms / 1000
            if r.is_primary and time.monotonic() - proposer.last_propose_s < wait_s:
                return
            propose()
        proposer.maybe_propose = slow_propose
    else:
        raise ValueError(f"unknown mode {mode!r}")
    node.log.warning("test_switch_on", switch=ENV_MODE, mode=mode, senders=len(senders))


def main(argv: list[str] | None = None) -> int:
    """``node run --config PATH``, as `afterchain node run`, with the test-only mode applied
    to the node it builds."""

    from afterchain.node.common.log import get_logger
    from afterchain.node.runtime import runner
    from afterchain.node.runtime.config import ConfigError, load_config
    from afterchain.node.testing.entry import serve

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 4 or args[:3] != ["node", "run", "--config"]:
        print(f"usage: python -m {ENTRY_MODULE} node run --config PATH", file=sys.stderr)
        return EXIT_USAGE
    try:
        got = censor_mode()
        if got is None:
            raise ValueError(f"{ENV_MODE} is not set: run the ordinary node with `afterchain node run`")
        config = load_config(args[3])
    except (ValueError, ConfigError) as exc:
        print(f"cannot start the test node: {exc}", file=sys.stderr)
        return EXIT_USAGE
    mode, senders = got
    get_logger(node=config.name).warning("censor_test_mode", mode=mode, note="this node misbehaves on purpose (test only)")
    original = runner.Node.__init__

    def patched(self: Any, *a: Any, **kw: Any) -> None:
        original(self, *a, **kw)
        apply(self, mode, senders)

    runner.Node.__init__ = patched  # type: ignore[method-assign]
    return serve(config)


if __name__ == "__main__":
    sys.exit(main())
