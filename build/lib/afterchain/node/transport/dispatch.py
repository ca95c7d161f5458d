"""Delivery of received frames, shared by every transport implementation.

`Dispatcher` owns what happens to a frame once the implementation has read it from an
authenticated peer: topic subscribers, the inbox of direct messages, the request handler
and the table of outstanding requests. The implementation owns the wire: it calls
`deliver(sender, frame_bytes)` from one reader task per peer stream (so delivery is in
stream order), and gives the dispatcher a `send_frame(peer, frame_bytes)` coroutine for
responses and requests.

Invariants:
- `deliver` awaits the subscriber / inbox channels: a slow reader blocks that peer's
  stream (backpressure), never a silent drop. A topic with no subscriber at all is
  counted (`stats.dropped_no_subscriber`).
- Every outstanding request ends exactly once: response, remote error, timeout, or
  `peer_lost` (the implementation calls it when a peer's connection goes away).
- Request handlers run in the transport's nursery, at most `max_concurrent_handlers` at
  once; a handler that raises becomes an ERROR response, never a crash of the transport.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Awaitable, Callable

import structlog
import trio

from afterchain.node.transport.base import (
    FrameTooLarge,
    PeerUnavailable,
    RemoteRequestError,
    RequestHandler,
    RequestTimeout,
    TransportLimits,
    TransportStats,
)
from afterchain.node.transport.frames import FrameError, Kind, decode_frame, encode_frame

__all__ = ["Dispatcher", "SendFrame"]

SendFrame = Callable[[bytes, bytes], Awaitable[None]]
"""`send_frame(peer, frame_bytes)`: queue a frame to one peer; raises `PeerUnavailable`."""

_MAX_ERROR_REASON_BYTES = 1024


class _Pending:
    __slots__ = ("done", "error", "peer", "response")

    def __init__(self, peer: bytes) -> None:
        self.peer = peer
        self.done = trio.Event()
        self.response: bytes | None = None
        self.error: Exception | None = None

    def finish(self, response: bytes | None, error: Exception | None) -> None:
        if self.done.is_set():
            return
        self.response, self.error = response, error
        self.done.set()


class Dispatcher:
    def __init__(self, me: bytes, limits: TransportLimits, stats: TransportStats, log: structlog.typing.FilteringBoundLogger) -> None:
        self.me = me
        self.limits = limits
        self.stats = stats
        self.log = log
        self._topics: dict[str, list[trio.MemorySendChannel[tuple[bytes, bytes]]]] = {}
        self._inbox_send, self._inbox_recv = trio.open_memory_channel[tuple[bytes, bytes]](limits.subscriber_queue_len)
        self._handler: RequestHandler | None = None
        self._handler_slots = trio.Semaphore(limits.max_concurrent_handlers)
        self._request_slots = trio.Semaphore(limits.max_pending_requests)
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(1)
        self.nursery: trio.Nursery | None = None
        """Set by the implementation while running: request handlers run here."""

    # ---- the node's side -------------------------------------------------------------
    def subscribe(self, topic: str) -> trio.MemoryReceiveChannel[tuple[bytes, bytes]]:
        if not topic:
            raise ValueError("a topic is a non-empty string")
        send, recv = trio.open_memory_channel[tuple[bytes, bytes]](self.limits.subscriber_queue_len)
        self._topics.setdefault(topic, []).append(send)
        return recv

    def inbox(self) -> trio.MemoryReceiveChannel[tuple[bytes, bytes]]:
        return self._inbox_recv

    def on_request(self, handler: RequestHandler) -> None:
        self._handler = handler

    def check_size(self, frame: bytes) -> None:
        if len(frame) > self.limits.max_frame_bytes:
            self.stats.refused_oversize += 1
            self.log.warning("transport_frame_too_large", direction="out", frame_bytes=len(frame), limit_bytes=self.limits.max_frame_bytes)
            raise FrameTooLarge(f"frame of {len(frame)} bytes exceeds the limit of {self.limits.max_frame_bytes}")

    def gossip_frame(self, topic: str, data: bytes) -> bytes:
        if not topic:
            raise ValueError("a topic is a non-empty string")
        frame = encode_frame(Kind.GOSSIP, data, topic=topic)
        self.check_size(frame)
        return frame

    def direct_frame(self, data: bytes) -> bytes:
        frame = encode_frame(Kind.DIRECT, data)
        self.check_size(frame)
        return frame

    async def request(self, peer: bytes, data: bytes, timeout_s: float, send_frame: SendFrame) -> bytes:
        async with self._request_slots:
            request_id = next(self._ids)
            frame = encode_frame(Kind.REQUEST, data, request_id=request_id)
            self.check_size(frame)
            pending = _Pending(peer)
            self._pending[request_id] = pending
            try:
                with trio.move_on_after(timeout_s if timeout_s >= 0 else math.inf):
                    await send_frame(peer, frame)
                    await pending.done.wait()
                if not pending.done.is_set():
                    raise RequestTimeout(f"no response from {peer.hex()[:16]} within {timeout_s} s")
            finally:
                del self._pending[request_id]
            if pending.error is not None:
                raise pending.error
            if pending.response is None:  # pragma: no cover - finish() always sets one of them
                raise RemoteRequestError("empty response")
            return pending.response

    def peer_lost(self, peer: bytes) -> None:
        """Fail every outstanding request to `peer` (its connection is gone)."""
        for pending in self._pending.values():
            if pending.peer == peer:
                pending.finish(None, PeerUnavailable(f"connection to {peer.hex()[:16]} lost"))

    # ---- the implementation's side ---------------------------------------------------
    async def deliver(self, sender: bytes, data: bytes, send_frame: SendFrame) -> None:
        """Handle one frame read from `sender`'s stream. Raises `FrameError` if malformed
        or oversized (the caller closes that stream)."""
        self.stats.frames_received += 1
        self.stats.bytes_received += len(data)
        if len(data) > self.limits.max_frame_bytes:
            self.stats.refused_oversize += 1
            self.log.warning("transport_frame_too_large", direction="in", peer=sender.hex()[:16], frame_bytes=len(data))
            raise FrameError(f"frame of {len(data)} bytes exceeds the limit of {self.limits.max_frame_bytes}")
        frame = decode_frame(data)
        if frame.kind is Kind.GOSSIP:
            self.stats.per_topic_received[frame.topic] = self.stats.per_topic_received.get(frame.topic, 0) + 1
            subscribers = self._topics.get(frame.topic, [])
            if not subscribers:
                self.stats.dropped_no_subscriber += 1
                return
            for ch in list(subscribers):
                try:
                    await ch.send((sender, frame.payload))
                except trio.BrokenResourceError:  # the subscriber closed its channel
                    subscribers.remove(ch)
        elif frame.kind is Kind.DIRECT:
            await self._inbox_send.send((sender, frame.payload))
        elif frame.kind is Kind.REQUEST:
            if self.nursery is None:  # pragma: no cover - deliver is only called while running
                raise FrameError("request received while the transport is not running")
            await self._handler_slots.acquire()
            self.nursery.start_soon(self._serve, sender, frame.request_id, frame.payload, send_frame)
        else:
            pending = self._pending.get(frame.request_id)
            if pending is None or pending.peer != sender:
                self.log.info("transport_late_response", peer=sender.hex()[:16], request_id=frame.request_id)
                return
            if frame.kind is Kind.RESPONSE:
                pending.finish(frame.payload, None)
            else:
                reason = frame.payload[:_MAX_ERROR_REASON_BYTES].decode(errors="replace")
                pending.finish(None, RemoteRequestError(reason))

    async def _serve(self, sender: bytes, request_id: int, payload: bytes, send_frame: SendFrame) -> None:
        try:
            if self._handler is None:
                reply = encode_frame(Kind.ERROR, b"no request handler", request_id=request_id)
            else:
                try:
                    response = await self._handler(sender, payload)
                    reply = encode_frame(Kind.RESPONSE, response, request_id=request_id)
                    if len(reply) > self.limits.max_frame_bytes:
                        self.stats.refused_oversize += 1
                        self.log.warning("transport_frame_too_large", direction="out", frame_bytes=len(reply))
                        reply = encode_frame(Kind.ERROR, b"response too large", request_id=request_id)
                except Exception as e:  # the handler's failure is reported to the requester
                    self.log.warning("transport_request_handler_failed", peer=sender.hex()[:16], error=repr(e))
                    reason = f"{type(e).__name__}: {e}".encode()[:_MAX_ERROR_REASON_BYTES]
                    reply = encode_frame(Kind.ERROR, reason, request_id=request_id)
            try:
                await send_frame(sender, reply)
            except PeerUnavailable:
                self.stats.dropped_not_connected += 1
                self.log.info("transport_response_dropped", peer=sender.hex()[:16], reason="not_connected")
        finally:
            self._handler_slots.release()
