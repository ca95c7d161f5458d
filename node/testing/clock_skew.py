"""TEST ONLY: a node on a skewed clock, for the nemesis `clock-jump` scenario and tests.

Never reachable from production: no production module imports this one. A real process
runs the ordinary node with `afterchain.node.runtime.clock.wall_ms` replaced by
`SkewedClock.wall_ms`,

    AFTERCHAIN_TEST_CLOCK_FILE=/path/offset AFTERCHAIN_TEST_SWITCHES=1 \\
        python -m afterchain.node.testing.clock_skew node run --config node.toml

which refuses to start unless both variables are set. The file (absent: no skew) holds
``OFFSET_MS [DRIFT_MS_PER_S]``: the node's clock reads the machine's plus OFFSET_MS, plus
DRIFT_MS_PER_S for every second since the file last changed (a drifting clock). The node
re-reads it at most every 200 ms, so a drill changes a running node's clock by writing it
(a jump) without a restart.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["ENTRY_MODULE", "ENV_FILE", "ENV_SWITCHES", "SkewedClock", "main", "write_skew"]

ENV_FILE = "AFTERCHAIN_TEST_CLOCK_FILE"
ENV_SWITCHES = "AFTERCHAIN_TEST_SWITCHES"
ENTRY_MODULE = "afterchain.node.testing.clock_skew"
EXIT_USAGE = 2


def write_skew(path: str | Path, offset_ms: int, drift_ms_per_s: float = 0.0) -> None:
    """Set the skew of the node reading `path` (atomically: it never reads half a line)."""
    p = Path(path)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(f"{int(offset_ms)} {float(drift_ms_per_s)}\n")
    os.replace(tmp, p)


class SkewedClock:
    """The machine's clock plus the offset and drift the file says."""

    def __init__(self, path: str | Path, real_ms: Callable[[], int] | None = None) -> None:
        self.path = Path(path)
        self._real = real_ms or (lambda: time.time_ns() // 1_000_000)
        self._text: str | None = None
        self._offset = 0
        self._drift = 0.0
        self._since = time.monotonic()
        self._next_read = 0.0

    def _refresh(self) -> None:
        now = time.monotonic()
        if now < self._next_read:
            return
        self._next_read = now + 0.2
        try:
            text = self.path.read_text()
        except OSError:
            text = ""
        if text == self._text:
            return
        self._text = text
        parts = text.split()
        try:
            self._offset = int(parts[0]) if parts else 0
            self._drift = float(parts[1]) if len(parts) > 1 else 0.0
        except ValueError:
            self._offset, self._drift = 0, 0.0
        self._since = now

    def wall_ms(self) -> int:
        self._refresh()
        return int(self._real() + self._offset + self._drift * (time.monotonic() - self._since))


def main(argv: list[str] | None = None) -> int:
    """``node run --config PATH``, as `afterchain node run`, on the skewed clock."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 4 or args[:3] != ["node", "run", "--config"]:
        print(f"usage: python -m {ENTRY_MODULE} node run --config PATH", file=sys.stderr)
        return EXIT_USAGE
    path = os.environ.get(ENV_FILE)
    if not path or os.environ.get(ENV_SWITCHES) != "1":
        print(f"cannot start the skewed-clock node: {ENV_FILE} is a test-only switch, refused unless it and "
              f"{ENV_SWITCHES}=1 are both set", file=sys.stderr)
        return EXIT_USAGE
    from afterchain.node import cli
    from afterchain.node.common.log import get_logger
    from afterchain.node.runtime import clock

    skewed = SkewedClock(path)
    clock.wall_ms = skewed.wall_ms
    get_logger().warning("clock_skew_test_mode", file=path, note="this node's clock is skewed on purpose (test only)")
    # the ordinary `afterchain node run` (its exit codes and storage-fault handling included)
    cli.cli.main(args=args, prog_name="afterchain", standalone_mode=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
