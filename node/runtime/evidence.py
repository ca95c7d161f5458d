"""Reporting equivocation evidence on chain: `Ready.evidence` -> a `consensus.evidence` event.

`EvidenceReporter` owns the path from an `Evidence` record the replica produced to a
signed ``consensus.evidence`` event in this node's mempool (and so gossiped and proposed):

- one report per (validator, phase, view, seq) (`MAX_REMEMBERED` keys remembered, oldest
  forgotten first) and at most `MAX_QUEUED` waiting; beyond that a record is dropped and
  counted (`dropped`), with a log line;
- events are signed with the node key and submitted one at a time by one task, each
  with nonce = max(committed nonce, nonces pending in the mempool) + 1, so a refused
  submission never leaves a nonce gap. A submission refused because the node is busy
  (``mempool.full``), or for its nonce (the same key signed something else meanwhile, e.g.
  a governance vote), is retried after `RETRY_S` with a fresh nonce, at most
  `MAX_ATTEMPTS` times; another
  refusal is logged and dropped (another honest node reports the same equivocation).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import trio

from afterchain.consensus.messages import Evidence, SignedMessage, phase_key
from afterchain.node.common.log import short_id
from afterchain.node.runtime.mempool import AddOutcome
from afterchain.protocol import bodies as B
from afterchain.protocol.crypto import KeyPair
from afterchain.protocol.events import Event, sign_event

__all__ = ["MAX_ATTEMPTS", "MAX_QUEUED", "MAX_REMEMBERED", "RETRY_S", "EvidenceReporter"]

MAX_REMEMBERED = 4096
MAX_QUEUED = 256
MAX_ATTEMPTS = 20
RETRY_S = 0.5


class EvidenceReporter:
    def __init__(self, *, key: KeyPair, chain_id: str, submit: Callable[[list[bytes]], Awaitable[list[AddOutcome]]],
                 committed_nonce: Callable[[bytes], int], pending_nonces: Callable[[bytes], Iterable[int]],
                 log: Any) -> None:
        self.key = key
        self.chain_id = chain_id
        self.submit = submit
        self.committed_nonce = committed_nonce
        self.pending_nonces = pending_nonces
        self.log = log
        self._seen: OrderedDict[tuple[bytes, str, int, int], None] = OrderedDict()
        self._queue: deque[Evidence] = deque()
        self._wakeup = trio.Event()
        self.submitted = 0
        self.dropped = 0
        self.observed: dict[bytes, int] = {}
        """Equivocations seen per validator (reported or not)."""

    def record(self, ev: Evidence) -> None:
        """Queue `ev` for reporting unless its (validator, phase, view, seq) was seen."""
        first = ev.first
        if not isinstance(first, SignedMessage):
            return
        phase, view, seq, _ = phase_key(first)
        who = bytes(first.body.replica)  # type: ignore[attr-defined]
        key = (who, phase, view, seq)
        if key in self._seen:
            return
        self._seen[key] = None
        while len(self._seen) > MAX_REMEMBERED:
            self._seen.popitem(last=False)
        self.observed[who] = self.observed.get(who, 0) + 1
        if len(self._queue) >= MAX_QUEUED:
            self.dropped += 1
            self.log.warning("evidence_report_dropped", validator=short_id(who), reason="queue_full")
            return
        self._queue.append(ev)
        self._wakeup.set()

    def _next_nonce(self) -> int:
        me = self.key.public
        return max([self.committed_nonce(me), *self.pending_nonces(me)]) + 1

    async def run(self) -> None:
        while True:
            while not self._queue:
                self._wakeup = trio.Event()
                await self._wakeup.wait()
            ev = self._queue.popleft()
            body = B.ConsensusEvidence(evidence=ev.encode())
            for attempt in range(MAX_ATTEMPTS):
                me = self.key.public
                signed = sign_event(self.key, Event(chain_id=self.chain_id, type=body.EVENT_TYPE, sender=me,
                                                    nonce=self._next_nonce(), time_ms=int(time.time() * 1000), body=body))
                (out,) = await self.submit([signed.encode()])
                if out.ok:
                    self.submitted += 1
                    self.log.warning("evidence_reported", validator=short_id(bytes(ev.first.body.replica)),  # type: ignore[attr-defined]
                                     kind=type(ev.first).__name__, event_id=signed.id.hex()[:16])
                    break
                retry = out.code == "mempool.full" or out.code.startswith("nonce.")  # busy, or the key signed elsewhere
                if not retry or attempt == MAX_ATTEMPTS - 1:
                    self.dropped += 1
                    self.log.warning("evidence_report_refused", code=out.code, error=out.message)
                    break
                await trio.sleep(RETRY_S)
