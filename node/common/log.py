"""Logging set-up: one JSON object per line, from our code and from every library.

Call `configure()` once at start. Our code logs through structlog with fixed snake_case
event names: `log = get_logger(node=name)`, then `log.info("node_started", height=h)`.
The standard `logging` records of libraries (py-libp2p, hypercorn, multiaddr, ...),
Python warnings, and exceptions nobody caught (the main thread, other threads, and
"exception ignored" reports) go through the same processors and the same renderer to the
same stream, so in JSON mode every line a node writes parses as JSON; a traceback is the
``exception`` field of its line, never lines of its own.

Field names (docs/OPERATIONS.md, "Logs"):

- ``timestamp`` (ISO 8601, UTC), ``level``, ``event``; ``logger`` for library records
  (the standard logger's name);
- ``node``: the node's configured name (bound by the runner; `bind_process` sets it for
  every line of a node process, library records included); ``node_key``: the node's own
  key, short form;
- ``peer``: another node's key, short form (`short_id`: the first 16 hex characters).

Levels change at run time (`set_level`, driven by the admin route ``/v1/admin/log``):
every bound logger reads the threshold at each call, so loggers created before a change
follow it. Secrets are never logged: `_redact` replaces any field whose name looks like a
secret.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import MutableMapping
from typing import Any

import structlog

__all__ = [
    "LEVELS",
    "NodeLogger",
    "bind_process",
    "configure",
    "current_levels",
    "get_logger",
    "module_logger",
    "set_level",
    "short_id",
]

_SECRET_WORDS = ("seed", "secret", "token", "password", "private")

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
          "critical": logging.CRITICAL}
"""The level names the configuration and the admin route accept."""
_NAMES = {v: k for k, v in LEVELS.items()}


def short_id(key: bytes) -> str:
    """A node's key in log lines and messages: its first 16 hex characters."""
    return key.hex()[:16]


def _redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for k in list(event_dict):
        if any(w in k.lower() for w in _SECRET_WORDS):
            event_dict[k] = "[redacted]"
    return event_dict


class _Threshold:
    """The level below which our structlog lines are dropped (one per process)."""

    value = logging.INFO


_threshold = _Threshold()
_process_fields: dict[str, Any] = {}


def _add_process_fields(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for k, v in _process_fields.items():
        event_dict.setdefault(k, v)
    return event_dict


class NodeLogger(structlog.BoundLoggerBase):
    """The bound logger of our code: drops a line below the current threshold before any
    processing (a comparison: debug lines on hot paths cost next to nothing when off), and
    reads the threshold at each call. structlog's own filtering logger fixes its level
    when the logger is created, so loggers bound before a level change would ignore it."""

    def debug(self, event: str | None = None, **kw: Any) -> Any:
        if _threshold.value > logging.DEBUG:
            return None
        return self._proxy_to_logger("debug", event, **kw)

    def info(self, event: str | None = None, **kw: Any) -> Any:
        if _threshold.value > logging.INFO:
            return None
        return self._proxy_to_logger("info", event, **kw)

    def warning(self, event: str | None = None, **kw: Any) -> Any:
        if _threshold.value > logging.WARNING:
            return None
        return self._proxy_to_logger("warning", event, **kw)

    warn = warning

    def error(self, event: str | None = None, **kw: Any) -> Any:
        if _threshold.value > logging.ERROR:
            return None
        return self._proxy_to_logger("error", event, **kw)

    def exception(self, event: str | None = None, **kw: Any) -> Any:
        kw.setdefault("exc_info", True)
        return self.error(event, **kw)

    def critical(self, event: str | None = None, **kw: Any) -> Any:
        return self._proxy_to_logger("critical", event, **kw)


class _Sink(logging.Handler):
    """The standard library's records, rendered by `ProcessorFormatter`, written through
    the same structlog `WriteLogger` (and so under the same lock, in one write per line)
    as our own lines."""

    def __init__(self, out: Any) -> None:
        super().__init__()
        self.out = structlog.WriteLogger(out)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.out.msg(self.format(record))
        except Exception:  # a closed stream at exit: nothing better to do
            self.handleError(record)


def _hooks(log: Any) -> None:
    """Exceptions nobody caught become log lines (`unhandled_exception`), not tracebacks."""

    def excepthook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        log.critical("unhandled_exception", exc_info=(exc_type, exc, tb))

    def thread_excepthook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        log.critical("unhandled_exception", thread=args.thread.name if args.thread else None,
                     exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    def unraisablehook(u: Any) -> None:
        info = (type(u.exc_value), u.exc_value, u.exc_traceback) if u.exc_value is not None else None
        log.error("unraisable_exception", where=u.err_msg or repr(u.object), exc_info=info)

    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook
    sys.unraisablehook = unraisablehook


def configure(*, json: bool | None = None, level: str = "info", stream: Any = None) -> None:
    """Set up logging for this process: our structlog lines and the standard `logging`
    records of every library, rendered alike (JSON, or the console renderer when `json`
    is False; None: JSON unless `stream` is a terminal), at `level`, to `stream` (stderr).
    Calling it again replaces the previous set-up."""
    out = stream if stream is not None else sys.stderr
    if json is None:
        json = not out.isatty()
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_process_fields,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=NodeLogger,
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder(), *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.processors.format_exc_info,
                    renderer],
    )
    _reattach_library_loggers()
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, _Sink):
            root.removeHandler(h)
    sink = _Sink(out)
    sink.setFormatter(formatter)
    root.addHandler(sink)
    # warnings.warn(...) -> the "py.warnings" logger -> a JSON line. Off, then on: a second
    # `configure` re-installs the capture over whatever replaced `warnings.showwarning` since.
    logging.captureWarnings(False)
    logging.captureWarnings(True)
    _hooks(get_logger())
    set_level(level)


def _reattach_library_loggers() -> None:
    """A library that gave its logger a console handler of its own, or cut it off from the
    root logger, would write plain text (or, with no handler left, reach Python's
    last-resort handler): its records go to the root logger's sink like everyone's. (A
    library imported later does the same itself: `node.transport.p2p.route_libp2p_logging`.)"""
    for lg in list(logging.root.manager.loggerDict.values()):
        if not isinstance(lg, logging.Logger):
            continue
        for h in list(lg.handlers):
            if type(h) is logging.StreamHandler and getattr(h, "stream", None) in (sys.stderr, sys.stdout):
                lg.removeHandler(h)
        if not lg.propagate and not lg.handlers:
            lg.propagate = True


def set_level(level: str, logger: str | None = None) -> None:
    """Change a level now. Without `logger`: the node's own lines and the default of every
    library (the root logger; libraries this node quiets keep their own level). With a
    standard logger's name (``libp2p``, ``libp2p.network.swarm``, ``hypercorn.error``):
    that logger and those below it. Raises `ValueError` for an unknown level name."""
    if level not in LEVELS:
        raise ValueError(f"level {level!r} is not one of {', '.join(LEVELS)}")
    value = LEVELS[level]
    if logger is None:
        _threshold.value = value
        logging.getLogger().setLevel(value)
    else:
        logging.getLogger(logger).setLevel(value)


def current_levels() -> dict[str, Any]:
    """``{"level": the node's level, "loggers": {name: level}}`` for every standard logger
    whose level was set explicitly (by this node, an operator or the library itself)."""
    loggers = {name: _NAMES.get(lg.level, str(lg.level)) for name, lg in sorted(logging.root.manager.loggerDict.items())
               if isinstance(lg, logging.Logger) and lg.level != logging.NOTSET}
    return {"level": _NAMES.get(_threshold.value, str(_threshold.value)), "loggers": loggers}


def bind_process(**fields: Any) -> None:
    """Fields on every line this process writes from now on, from any task or thread (a
    node process binds its ``node`` name and ``node_key``); a field a logger bound itself
    wins."""
    _process_fields.update(fields)


def get_logger(**bound: Any) -> Any:
    """A logger bound now, with these fields: for objects built after `configure` (a
    node's components). It keeps the set-up it was bound under."""
    return structlog.get_logger().bind(**bound)


def module_logger(**bound: Any) -> Any:
    """A module-level logger: it binds at each call, so it follows a `configure` that runs
    after the module was imported (a bound logger would keep the defaults of import time)."""
    return structlog.get_logger(**bound)
