"""structlog set-up: fixed snake_case event names, JSON when not on a terminal.

Call `configure()` once at start; bind node id / height / view with
`log = get_logger().bind(node=...)`. Secrets (key seeds, tokens) are never logged: the
`_redact` processor drops any field whose name looks like a secret.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

__all__ = ["configure", "get_logger"]

_SECRET_WORDS = ("seed", "secret", "token", "password", "private")


def _redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for k in list(event_dict):
        if any(w in k.lower() for w in _SECRET_WORDS):
            event_dict[k] = "[redacted]"
    return event_dict


def configure(*, json: bool | None = None, level: str = "info", stream: Any = None) -> None:
    out = stream if stream is not None else sys.stderr
    if json is None:
        json = not out.isatty()
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def get_logger(**bound: Any) -> Any:
    return structlog.get_logger().bind(**bound)
