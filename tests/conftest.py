"""Shared test settings: Hypothesis profiles (the CI profile is derandomized, so runs
repeat), and the process's logging set-up restored after every test.

Tests run the CLI in-process (click's `CliRunner`), and a command configures logging for
the whole process: the root logger's sink, every logger's level, structlog, the warnings
capture, the exception hooks. Left in place, that set-up leaked into later tests: records
of one test landed in the next one's captured output (a `--json` document that no longer
parsed), and a warning went to a stale `warnings.showwarning`."""

import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, settings

from afterchain.node.common import log as nlog

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "default")


def _loggers() -> dict[str, logging.Logger]:
    return {n: lg for n, lg in logging.root.manager.loggerDict.items() if isinstance(lg, logging.Logger)}


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    root = logging.getLogger()
    # a node log sink left on the root logger by an earlier set-up writes to a stream that
    # pytest may have closed since ("I/O operation on closed file"): each test starts without
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, nlog._Sink)]
    saved_root = (list(root.handlers), root.level)
    saved_loggers: dict[str, tuple[Any, ...]] = {
        n: (lg.level, lg.propagate, list(lg.handlers), lg.disabled) for n, lg in _loggers().items()}
    saved_structlog = structlog.get_config()
    saved_hooks = (sys.excepthook, threading.excepthook, sys.unraisablehook)
    saved_fields = dict(nlog._process_fields)
    saved_threshold = nlog._threshold.value
    saved_showwarning = warnings.showwarning
    try:
        yield
    finally:
        logging.captureWarnings(False)
        warnings.showwarning = saved_showwarning
        root.handlers[:] = saved_root[0]
        root.setLevel(saved_root[1])
        for n, lg in _loggers().items():
            if n in saved_loggers:  # (a logger created during the test, at an import, keeps its set-up)
                lg.level, lg.propagate, handlers, lg.disabled = saved_loggers[n]
                lg.handlers[:] = handlers
        logging.root.manager._clear_cache()  # type: ignore[attr-defined]
        structlog.configure(**saved_structlog)
        sys.excepthook, threading.excepthook, sys.unraisablehook = saved_hooks
        nlog._process_fields.clear()
        nlog._process_fields.update(saved_fields)
        nlog._threshold.value = saved_threshold
