"""The log set-up (node.common.log): every line one JSON object, library records, warnings
and uncaught exceptions included; fields named alike; levels changed at run time reach
loggers bound before the change."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from afterchain.node.common import log as nlog


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    """A configured JSON log into a buffer; the test process's logging restored after."""
    saved_config = structlog.get_config()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, sys.excepthook, threading.excepthook, sys.unraisablehook,
             nlog.current_levels()["level"])
    buf = io.StringIO()
    nlog.configure(json=True, level="info", stream=buf)
    try:
        yield buf
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        sys.excepthook, threading.excepthook, sys.unraisablehook = saved[2], saved[3], saved[4]
        nlog.set_level(saved[5])
        nlog._process_fields.clear()
        logging.captureWarnings(False)
        structlog.configure(**saved_config)


def lines(buf: io.StringIO) -> list[dict[str, Any]]:
    text = buf.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]  # each line parses on its own


def test_our_lines_and_library_records_are_json_with_the_same_fields(out: io.StringIO) -> None:
    nlog.bind_process(node="acme-1", node_key="51fd05d4337bee16")
    nlog.get_logger(peer=nlog.short_id(bytes(range(32)))).info("transport_peer_connected", seed="00" * 32)
    logging.getLogger("vendorlib.net").warning("dial failed:\n  Error: %s\n  more", "refused")
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        logging.getLogger("hypercorn.error").exception("Error in ASGI Framework")
        nlog.get_logger().exception("handler_failed")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
    ours, lib, lib_exc, our_exc, warn = lines(out)
    assert ours["event"] == "transport_peer_connected" and ours["peer"] == "0001020304050607"
    assert ours["seed"] == "[redacted]"
    assert lib["event"] == "dial failed:\n  Error: refused\n  more" and lib["logger"] == "vendorlib.net"
    assert lib_exc["level"] == "error" and "ValueError: bad\nthing" in lib_exc["exception"]
    assert our_exc["event"] == "handler_failed" and "Traceback" in our_exc["exception"]
    assert warn["logger"] == "py.warnings" and "deprecated thing" in warn["event"]
    for entry in (ours, lib, lib_exc, our_exc, warn):
        assert entry["node"] == "acme-1" and entry["node_key"] == "51fd05d4337bee16"
        assert {"timestamp", "level", "event"} <= set(entry)


def test_a_library_logger_cut_off_from_the_root_is_reattached() -> None:
    # what py-libp2p does at import: its logger without a handler, not propagating (its
    # records went to Python's last-resort handler: plain text on stderr)
    lib = logging.getLogger("somelib.cut_off")
    lib.handlers.clear()
    lib.propagate = False
    own = logging.StreamHandler(sys.stderr)
    chatty = logging.getLogger("otherlib")
    chatty.addHandler(own)
    buf = io.StringIO()
    saved_config = structlog.get_config()
    root = logging.getLogger()
    saved = list(root.handlers), sys.excepthook, threading.excepthook, sys.unraisablehook
    try:
        nlog.configure(json=True, stream=buf)
        lib.warning("from the cut-off library")
        chatty.warning("from the library with its own console handler")
    finally:
        root.handlers[:] = saved[0]
        sys.excepthook, threading.excepthook, sys.unraisablehook = saved[1], saved[2], saved[3]
        logging.captureWarnings(False)
        structlog.configure(**saved_config)
        chatty.removeHandler(own)
    assert lib.propagate and own not in chatty.handlers
    assert [e["logger"] for e in lines(buf)] == ["somelib.cut_off", "otherlib"]


def test_the_libp2p_transport_routes_py_libp2p_records_to_the_log() -> None:
    from afterchain.node.transport.p2p import P2PTransport

    logging.getLogger("libp2p").propagate = False  # as py-libp2p leaves it at import
    P2PTransport(seed=bytes(32), listen_addr="/ip4/127.0.0.1/tcp/0", peers={})
    assert logging.getLogger("libp2p").propagate and not logging.getLogger("libp2p").handlers


def test_uncaught_exceptions_become_log_lines(out: io.StringIO) -> None:
    def boom() -> None:
        raise RuntimeError("in a thread")

    t = threading.Thread(target=boom, name="worker-7")
    t.start()
    t.join()
    try:
        raise KeyError("main")
    except KeyError:
        sys.excepthook(*sys.exc_info())  # type: ignore[arg-type]  # what Python calls for an uncaught one
    thread, main = lines(out)
    assert thread["event"] == "unhandled_exception" and thread["thread"] == "worker-7"
    assert "RuntimeError: in a thread" in thread["exception"] and thread["level"] == "critical"
    assert main["event"] == "unhandled_exception" and "KeyError: 'main'" in main["exception"]


def test_a_level_change_reaches_loggers_bound_before_it(out: io.StringIO) -> None:
    early = nlog.get_logger(node="n0")
    early.debug("hidden")
    logging.getLogger("vendorlib.x").debug("hidden too")
    nlog.set_level("debug")
    early.debug("shown")
    logging.getLogger("vendorlib.x").debug("shown too")
    nlog.set_level("warning")
    early.info("hidden again")
    early.warning("shown again")
    nlog.set_level("error", "vendorlib")
    logging.getLogger("vendorlib.x").warning("quiet library")
    assert [e["event"] for e in lines(out)] == ["shown", "shown too", "shown again"]
    assert nlog.current_levels()["loggers"]["vendorlib"] == "error"
    logging.getLogger("vendorlib").setLevel(logging.NOTSET)
    with pytest.raises(ValueError, match="not one of"):
        nlog.set_level("loud")


def test_a_module_logger_follows_a_later_configure() -> None:
    mod = nlog.module_logger()  # as at import time, before the node configures logging
    buf = io.StringIO()
    saved_config = structlog.get_config()
    root = logging.getLogger()
    saved = list(root.handlers), sys.excepthook, threading.excepthook, sys.unraisablehook
    try:
        nlog.configure(json=True, stream=buf)
        mod.info("after_configure", n=1)
    finally:
        root.handlers[:] = saved[0]
        sys.excepthook, threading.excepthook, sys.unraisablehook = saved[1], saved[2], saved[3]
        logging.captureWarnings(False)
        structlog.configure(**saved_config)
    assert json.loads(buf.getvalue())["event"] == "after_configure"
