"""A member node: a full node that never votes (issue 23).

The role follows from chain state: a node whose key is not in its replica's current
validator set is a *member*. A member signs no consensus message (`MemberSendGate`: the
replica's STATUS of a key in no scheduled validator set is dropped, counted, never sent)
and follows the chain by receiving committed blocks with their commit certificates:

- `BlockReceiver` is the one door certified blocks come in by (`receive(peer, blocks)`):
  the follower below feeds it (`receive`) and so does the dissemination relay
  (`offer`, one block at a time: `node.runtime.relay`). Each block
  must be the next height after the last one accepted, chain to it (`prev_hash`), name the
  validator sets V(h) and V(h + 1) the ledger tracks (validator changes included, the same
  sets the replica uses) and carry a certificate of a quorum of V(h), checked with
  `protocol.light.verify_certificate` (the light client's rules). A refused block is
  logged (`member_block_refused`), counted (`afterchain_member_blocks_refused{reason}`)
  and a strike against the peer; at `MAX_STRIKES` strikes within `STRIKE_WINDOW_S` the
  peer is disconnected for `BAN_S` through the transport's fault switch (its connections
  closed and refused). Older strikes are forgotten: an honest peer's rare refusal (a
  second over a rate limit after a restart) does not add up over weeks to a ban.
  Accepted blocks go to the consensus loop as one `FetchedBlocks` input: the replica
  commits them (checking the certificate again) and the executor stores and executes
  them, checking each header's `state_root` against this node's own state at
  `state_height` (`executor.StateDivergence` stops the node).
- `verify_event_signatures` (node.toml `[member]`): off by default, a member relies on the
  certificate (docs/PROTOCOL.md, "Member nodes", has the trust argument); on, it checks
  every event signature of a certified block it did not already verify, and a certified
  block with an event that fails stops the node (`CertifiedBlockInvalid`): more than f
  validators signed an invalid block.
- `Follower`: polls a connected peer (validators of the current set first, round robin)
  with `FollowRequest(from_height, count)`; the answer `FollowResponse(head, blocks)` is
  served from the chain store's bytes (`catchup.follow_response_bytes`) like a catch-up answer,
  plus the server's committed height, which gives the member its lag. The highest
  certified height it knows is the (f+1)-th highest head claimed by current validators
  (at least one of them is honest), or its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import trio

from afterchain.consensus.epochs import is_boundary
from afterchain.consensus.messages import MAX_FETCH_BLOCKS, CertifiedBlock
from afterchain.node.runtime.catchup import FETCH_TIMEOUT_S, FollowRequest, FollowResponse
from afterchain.node.runtime.chain_store import ChainStore
from afterchain.node.runtime.inputs import PEER_MESSAGE_MAX_BYTES, FetchedBlocks, InputQueue
from afterchain.node.runtime.intake import KnownEvents
from afterchain.node.runtime.mempool import decode_and_verify
from afterchain.node.runtime.metrics import NodeMetrics
from afterchain.node.transport.base import Transport, TransportError
from afterchain.protocol.block import ValidatorSet
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.light import LightError, verify_certificate
from afterchain.protocol.types import Height

__all__ = ["BAN_S", "FOLLOW_BATCH_BLOCKS", "MAX_STRIKES", "RELAY_POLL_S", "STRIKE_WINDOW_S", "BlockReceiver", "CertifiedBlockInvalid", "CertifiedBlockSink",
           "Follower", "MemberSendGate"]

MAX_STRIKES = 3
"""Refused blocks from one peer within `STRIKE_WINDOW_S` before it is disconnected."""
STRIKE_WINDOW_S = 600.0
"""How long a strike counts."""
BAN_S = 60.0
"""How long a disconnected peer stays refused."""
FOLLOW_BATCH_BLOCKS = MAX_FETCH_BLOCKS // 2
"""Blocks asked for at once; also how far accepted blocks may run ahead of execution."""
POLL_S = 0.1
"""Pause between polls when the last one brought nothing new (bounds a member's lag)."""
VALIDATOR_POLL_EVERY = 5
"""With the relay on but not delivering (catching up), one poll in this many goes to a
validator, the others to members. While it delivers, the gap-filling polls go to members
only (a validator's upload is the scarce one; the validators' heads come from their relay
statuses), to a validator only when no member is connected."""
RELAY_POLL_S = 2.0
"""Pause between polls while the dissemination relay delivers blocks (the poll only fills gaps)."""


class CertifiedBlockInvalid(Exception):
    """A block with a valid certificate carries an event whose signature fails: more than
    f validators signed an invalid block. The member stops (it trusts no such chain)."""


class CertifiedBlockSink(Protocol):
    """The one interface certified blocks enter a member by (the follower today, the
    dissemination relay later): returns how many of `blocks` were accepted."""

    async def receive(self, peer: bytes, blocks: Sequence[CertifiedBlock]) -> int: ...


class VsetSource(Protocol):
    def validators_for(self, height: int) -> ValidatorSet | None: ...


class _Unknown(Exception):
    """V(h) or V(h + 1) is not known here yet (not a fault: wait for execution)."""


class BlockReceiver:
    """See the module docstring. `tip_*`: the last block accepted (ahead of execution)."""

    def __init__(self, *, chain_id: str, genesis_hash: bytes, store: ChainStore, ledger: VsetSource, known: KnownEvents,
                 inputs: InputQueue, transport: Transport, checkpoint_interval: Callable[[], int],
                 verify_event_signatures: bool, metrics: NodeMetrics, counters: dict[str, int], log: Any) -> None:
        self.chain_id = chain_id
        self.genesis_hash = genesis_hash
        self.store = store
        self.ledger = ledger
        self.known = known
        self.inputs = inputs
        self.transport = transport
        self.checkpoint_interval = checkpoint_interval
        self.verify_event_signatures = verify_event_signatures
        self.metrics = metrics
        self.counters = counters
        self.log = log
        self.tip_height = 0
        self.tip_hash = genesis_hash
        self.strikes: dict[bytes, list[float]] = {}  # peer -> monotonic times of its strikes within the window
        self.banned: dict[bytes, float] = {}  # peer -> monotonic time its ban ends
        self._vset_hashes: dict[tuple[bytes, ...], bytes] = {}
        self.on_accept: Callable[[Sequence[CertifiedBlock]], None] | None = None
        """Told of the blocks `receive` accepted (the relay follows them: `node.runtime.relay`)."""
        self._recent: dict[int, bytes] = {}  # height -> header hash of blocks accepted and maybe not stored yet
        self._relayed: set[int] = set()  # heights of those `offer` accepted
        self._lock = trio.Lock()
        """`receive` and `offer` one at a time: blocks reach the consensus loop in height order."""
        self.resync()

    def resync(self) -> None:
        """Start again from the committed head (at start, and when accepted blocks did not
        commit: the replica is the judge of what is committed)."""
        head = self.store.head
        block = self.store.block(head) if head else None
        self.tip_height = head
        self.tip_hash = block.header.hash() if block is not None else self.genesis_hash

    def _vhash(self, vs: ValidatorSet) -> bytes:
        h = self._vset_hashes.get(vs.validators)
        if h is None:
            if len(self._vset_hashes) > 64:
                self._vset_hashes.clear()
            h = self._vset_hashes[vs.validators] = vs.hash()
        return h

    def check(self, cb: CertifiedBlock) -> str | None:
        """None if `cb` may follow the tip, else the reason it is refused. Raises `_Unknown`
        while V(h) or V(h + 1) is not known here."""
        hdr = cb.block.header
        if hdr.chain_id != self.chain_id:
            return "wrong_chain"
        if hdr.height <= self.tip_height:
            return "replay"
        if hdr.height != self.tip_height + 1 or hdr.prev_hash != self.tip_hash:
            return "not_chained"
        vs = self.ledger.validators_for(hdr.height)
        nxt = vs if not is_boundary(hdr.height, self.checkpoint_interval()) else self.ledger.validators_for(hdr.height + 1)
        if vs is None or nxt is None:
            raise _Unknown
        if hdr.validators_hash != self._vhash(vs) or hdr.next_validators_hash != self._vhash(nxt):
            return "bad_validators_hash"
        try:
            verify_certificate(self.chain_id, vs, hdr, cb.certificate)
        except LightError as exc:
            return str(exc.reason.value).removeprefix("light.")
        return None

    def _verify_events(self, cb: CertifiedBlock) -> None:
        cache = self.known.verified
        for raw, h in zip(cb.block.events, cb.block.event_hashes(), strict=True):
            if h in cache:
                continue
            self.counters["verified_member"] = self.counters.get("verified_member", 0) + 1
            res = decode_and_verify(raw, self.chain_id)
            if isinstance(res, ProtocolError):
                self.log.critical("certified_block_invalid", height=cb.block.header.height, event=h.hex()[:16], error=str(res))
                raise CertifiedBlockInvalid(
                    f"block {cb.block.header.height} has a valid commit certificate but event {h.hex()[:16]}... fails its "
                    f"check ({res}): more than f validators signed an invalid block; this node stops")
            self.known.remember_verified(h, res, raw)

    def banned_now(self, peer: bytes) -> bool:
        until = self.banned.get(peer)
        if until is None:
            return False
        if time.monotonic() < until:
            return True
        del self.banned[peer]
        self.strikes.pop(peer, None)
        faults = self.transport.faults
        if peer in faults.blocked:
            faults.set(block=faults.blocked - {peer})
        self.log.info("member_peer_unbanned", peer=peer.hex()[:12])
        return False

    def refuse(self, peer: bytes, reason: str, height: int | None = None) -> None:
        self.metrics.member_blocks_refused.labels(reason).inc()
        now = time.monotonic()
        recent = [t for t in self.strikes.get(peer, ()) if now - t < STRIKE_WINDOW_S]
        recent.append(now)
        self.strikes[peer] = recent
        n = len(recent)
        self.log.warning("member_block_refused", peer=peer.hex()[:12], reason=reason, height=height, strikes=n)
        if n >= MAX_STRIKES and peer not in self.banned:
            self.banned[peer] = now + BAN_S
            self.metrics.member_peers_banned.inc()
            self.log.warning("member_peer_banned", peer=peer.hex()[:12], strikes=n, ban_s=BAN_S)
            faults = self.transport.faults
            faults.set(block=faults.blocked | {peer})  # closes its connections, refuses it until unbanned

    async def receive(self, peer: bytes, blocks: Sequence[CertifiedBlock]) -> int:
        async with self._lock:
            return await self._receive(peer, blocks)

    async def _receive(self, peer: bytes, blocks: Sequence[CertifiedBlock]) -> int:
        if self.banned_now(peer):
            return 0
        if self.store.head > self.tip_height:
            self.resync()
        good: list[CertifiedBlock] = []
        for cb in blocks:
            h = cb.block.header.height
            if h in self._relayed and h <= self.tip_height and self.accepted_hash(h) == cb.block.header.hash():
                continue  # the relay brought it first (not a fault)
            try:
                reason = self.check(cb)
            except _Unknown:
                break  # asked again once the ledger has executed far enough to know the set
            if reason is not None:
                self.refuse(peer, reason, cb.block.header.height)
                break
            if self.verify_event_signatures:
                self._verify_events(cb)
            good.append(cb)
            self._set_tip(cb)
        if good:
            await self.inputs.put(FetchedBlocks(good))
            if self.on_accept is not None:
                self.on_accept(good)
        return len(good)

    def _set_tip(self, cb: CertifiedBlock) -> None:
        self.tip_height = h = cb.block.header.height
        self.tip_hash = cb.block.header.hash()
        recent = self._recent
        recent[h] = self.tip_hash
        if len(recent) > 2 * FOLLOW_BATCH_BLOCKS:
            for old in sorted(recent)[: len(recent) - FOLLOW_BATCH_BLOCKS]:
                del recent[old]
                self._relayed.discard(old)

    def accepted_hash(self, height: int) -> bytes | None:
        """The header hash of the block this node accepted (or stored) at `height`, if known."""
        h = self._recent.get(height)
        if h is None and 0 < height <= self.store.head:
            block = self.store.block(height)
            h = block.header.hash() if block is not None else None
        return h

    async def offer(self, peer: bytes, cb: CertifiedBlock, *, executed: int) -> str:
        """One block from the dissemination relay (`node.runtime.relay`), through the same
        checks as `receive`: "accepted" (handed on to be committed), "known" (this node
        accepted the same block already, by the follower: not a fault), "refused" (logged,
        counted, a strike), "wait" (V(h) or V(h + 1) not known yet, or execution is
        `FOLLOW_BATCH_BLOCKS` behind: offer it again later), "banned" (the peer is)."""
        async with self._lock:
            return await self._offer(peer, cb, executed)

    async def _offer(self, peer: bytes, cb: CertifiedBlock, executed: int) -> str:
        if self.banned_now(peer):
            return "banned"
        if self.store.head > self.tip_height:
            self.resync()
        h = cb.block.header.height
        if h <= self.tip_height:
            mine = self.accepted_hash(h)
            if mine == cb.block.header.hash():
                return "known"
            self.refuse(peer, "replay", h)
            return "refused"
        if h == self.tip_height + 1 and self.tip_height - executed >= FOLLOW_BATCH_BLOCKS:
            return "wait"
        try:
            reason = self.check(cb)
        except _Unknown:
            return "wait"
        if reason is not None:
            self.refuse(peer, reason, h)
            return "refused"
        if self.verify_event_signatures:
            self._verify_events(cb)
        self._set_tip(cb)
        self._relayed.add(h)
        await self.inputs.put(FetchedBlocks([cb]))
        return "accepted"


class MemberSendGate:
    """Whether the replica's sends leave this node: not while its key is in no validator
    set the chain has scheduled (a member, not a validator-to-be). `update` at start and
    at each checkpoint (`Node._sync_peers`)."""

    def __init__(self, me: bytes) -> None:
        self.me = me
        self.scheduled = True

    def update(self, sets: Sequence[ValidatorSet]) -> None:
        self.scheduled = any(self.me in vs for vs in sets)

    def allows(self) -> bool:
        return self.scheduled


class Follower:
    """See the module docstring. Runs on every node; idle while the node is a validator."""

    def __init__(self, *, me: bytes, receiver: BlockReceiver, transport: Transport, store: ChainStore,
                 executed: Callable[[], int], validators: Callable[[], ValidatorSet], log: Any,
                 poll_s: float = POLL_S) -> None:
        self.me = me
        self.receiver = receiver
        self.transport = transport
        self.store = store
        self.executed = executed
        self.validators = validators
        self.log = log
        self.poll_s = poll_s
        self.heads: dict[bytes, int] = {}
        self.polls = 0
        self.polls_validators_gap = 0
        """Gap-filling polls (the relay delivers) that went to a validator."""
        self.relay_active: Callable[[], bool] | None = None
        """Set when the dissemination relay runs (`node.runtime.relay`): while it delivers,
        the follower only fills gaps, polling every `RELAY_POLL_S`."""
        self._turn = 0
        self._fed_at = 0.0  # monotonic time accepted blocks were last handed on

    def is_member(self) -> bool:
        return self.me not in self.validators()

    def known_head(self) -> int:
        """The highest certified height this node knows: its own, or the (f+1)-th highest
        head claimed by validators of the current set (at least one of them is honest)."""
        vs = self.validators()
        claims = sorted((h for p, h in self.heads.items() if p in vs), reverse=True)
        f = vs.f
        best = claims[f] if len(claims) > f else (claims[-1] if claims else 0)
        return max(self.store.head, best)

    def pick_peer(self, *, gap_only: bool = False) -> bytes | None:
        vs = self.validators()
        connected = self.transport.connected_peers() - {self.me}
        ok = [p for p in connected if not self.receiver.banned_now(p)]
        if not ok:
            return None
        self._turn += 1
        if gap_only or (self.relay_active is not None and self._turn % VALIDATOR_POLL_EVERY):
            # with the relay on, the poll fills gaps: members first (they have the blocks; the
            # validators' upload is the scarce one), a validator every VALIDATOR_POLL_EVERY-th
            first = sorted(p for p in ok if p not in vs) or sorted(ok)
        else:
            first = sorted(p for p in ok if p in vs) or sorted(ok)
        return first[self._turn % len(first)]

    async def step(self, *, gap_only: bool = False) -> bool:
        """One poll; True if it brought new blocks. `gap_only`: the relay delivers, this
        poll only fills gaps (members are asked; a validator, only when no member is
        connected, for one block)."""
        r = self.receiver
        if self.store.head > r.tip_height:
            r.resync()
        elif r.tip_height > self.store.head and time.monotonic() - self._fed_at > 5 * FETCH_TIMEOUT_S:
            self.log.info("member_resync", tip=r.tip_height, head=self.store.head)
            r.resync()  # what we accepted did not commit (the replica refused it): ask again
        if r.tip_height - self.executed() >= FOLLOW_BATCH_BLOCKS:
            return False  # execution is behind: let it catch up first
        peer = self.pick_peer(gap_only=gap_only)
        if peer is None:
            return False
        self.polls += 1
        count = FOLLOW_BATCH_BLOCKS
        if gap_only and peer in self.validators():
            count = 1  # no member connected: its head, and one block if the relay lost it
            self.polls_validators_gap += 1
        try:
            data = await self.transport.request(
                peer, FollowRequest(from_height=Height(r.tip_height + 1), count=count).encode(),
                timeout_s=FETCH_TIMEOUT_S)
            resp = FollowResponse.decode(data, max_bytes=PEER_MESSAGE_MAX_BYTES)
        except ProtocolError as exc:
            r.refuse(peer, "malformed")
            self.log.info("member_follow_malformed", peer=peer.hex()[:12], error=str(exc))
            return False
        except TransportError as exc:
            self.log.debug("member_follow_failed", peer=peer.hex()[:12], error=str(exc))
            return False
        self.heads[peer] = resp.head
        n = await r.receive(peer, resp.blocks)
        if n:
            self._fed_at = time.monotonic()
        return n > 0

    async def run(self) -> None:
        while True:
            if not self.is_member():
                await trio.sleep(self.poll_s * 10)
                continue
            if self.relay_active is not None and self.relay_active():
                await trio.sleep(RELAY_POLL_S)
                if self.relay_active():
                    await self.step(gap_only=True)  # gap filling only: the relay delivers
                    continue
            if not await self.step():
                await trio.sleep(self.poll_s)
