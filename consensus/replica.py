"""A PBFT replica (Castro & Liskov, OSDI'99 / TOCS'02) as a pure state machine over blocks.

The shell drives it with `step(message, sender)`, `tick()`, `propose(time_ms)`,
`executed(height)` and `deliver_block(certified_block)`, then drains `ready()` and calls
`advance(ready)` after doing, in this order: append `persist` records to the WAL and sync
them, send `sends`, store and execute `commits` (strictly in height order, each with a
commit certificate of 2f+1 COMMIT signatures), hand `evidence` to the application, and run
`fetches` (catch-up requests answered from peers' block stores with `deliver_block`).

Quorums: q = n - f replicas (= 2f+1 when n = 3f+1; "2f+1" below means q, "2f" means
q - 1). With n - f any two quorums share f+1 replicas for every n >= 4; plain 2f+1 does not
(n = 6: two disjoint sets of 3). Commit certificates therefore carry >= n - f signatures,
which `CommitCertificate.verify` (>= n - f, `ValidatorSet.quorum`) accepts.

Protocol (sequence number = block height; digest = header hash):
- 4.2 normal case: the primary of view v (validators[v % n]) pre-prepares blocks for up to L
  sequence numbers above the stable checkpoint; backups prepare, everyone commits; a
  block commits locally with a prepared certificate (pre-prepare + 2f prepares) and 2f+1
  matching commits, and blocks are handed out strictly in order.
- Chain rule (our addition for hash-chained blocks): a replica prepares / becomes prepared
  at s only once s-1 is prepared in the same view (or committed) with the digest that
  block s names as `prev_hash`. So if s commits, s-1 is prepared at f+1 correct replicas
  with that digest, and the O set of a new view can be cut at the first gap or hash
  mismatch instead of being filled with null requests: nothing above such a point can
  have committed (see `compute_new_view_o`). Null requests would break the hash chain.
- 4.3 checkpoints every K heights: digest = header hash at that height; 2f+1 matching
  signed CHECKPOINTs make it stable: the log below it is dropped and the watermarks move.
- 4.4 view change: on timeout (no commit for `timeout` ticks while active) a replica sends
  VIEW-CHANGE(v+1, stable checkpoint proof, P set); the new primary sends NEW-VIEW with
  2f+1 view changes and O (re-issued pre-prepares for the highest-view prepared block at
  each sequence number above the highest stable checkpoint). Backups recompute O and
  reject a NEW-VIEW that differs. f+1 view changes for higher views make a replica join.
  The timeout doubles for each view change that does not complete (capped) and resets to
  `view_timeout_ticks` after a commit.
- 4.5.2 request timers (`consensus.requests`, off unless `timers` is given): the shell
  says which events it holds (`hold` / `release`); an active backup relays an event held
  for T1 ticks (`Ready.forwards`) and votes for a view change when one is held for T2
  ticks, or after `slow_blocks` underfilled blocks in a row (`Ready.expired`); the timers
  restart with every new view.
- Catch-up: STATUS heartbeats and stable checkpoints above the committed height make a
  replica request blocks; a fetched block is accepted only as the next height, chained to
  the committed header and with a commit certificate verified against the validator set.
  Requests go out at most every 2 x retransmit_ticks (a range still arriving, i.e. with
  fetched blocks applied in the last interval, is not asked for again), except that the
  next range is asked for at once (pipelined, while the rest of the current one is still
  arriving) when fetched blocks have been applied since the last request and the committed
  height has passed the middle of the requested range. Each such early request needs at
  least one fetched block applied since the previous request, so their number is bounded
  by the blocks applied: a fetch that brings nothing falls back to the periodic interval.
- Evidence: two validly signed, different messages from one validator for one (phase,
  view, seq) inside the evidence window (`in_evidence_window`) yield an `Evidence` record.
- Signer guard: every signed message is keyed (phase, view, seq) and persisted before it
  is sent; a replica restored from its WAL re-sends the same message and refuses to sign
  a different one for that key.

Validator-set changes (`consensus.epochs`, issue #12): the set voting on height s is
V(s) = `Application.validators_for(s)`. One set at a time: `validators` = V(stable + 1)
(the current set). The window is capped at the first boundary b > stable whose V(b + 1)
is unknown or differs from the current set, so nothing in flight ever needs another set;
headers name hash(V(h)) and hash(V(h + 1)) (the proposer waits, a backup DEFERs while
unknown). When checkpoint b (signed by a quorum of V(b)) becomes stable the replica
switches to V(b + 1): same view number, view-change state and per-view logs dropped,
active, timer reset. A replica not in its current set is an observer: it signs nothing
but STATUS, follows the chain by catch-up (certificates checked against V(h)) and moves
its epoch over the boundaries it commits while it is not in the next set; it becomes a
member when a checkpoint starting an epoch it belongs to is stable (the members relay
their stable checkpoint's signatures to a known node that lacks it). Votes only from the
current set; CHECKPOINTs from members of V(seq) (relayed by known nodes too); STATUS from
`known_nodes()` (previous, current and next sets). A restarted replica derives its epoch
from its stable checkpoint (WAL) and committed header with `validators_for`. An
application without `validators_for` keeps the genesis set forever.

Every peer message is checked (decodes, sender is a validator and is the signer, the
signature verifies, view and sequence number inside the window) and otherwise dropped
without effect (`rejected` counts them by reason).

Restoring: `Replica(..., persisted=PersistedState(records=WAL records in order,
committed_header=header of the highest block in the block store or None))`. The WAL
holds: own signed messages (pre-prepares as `PrePrepareMsg` with their block), accepted
`SignedNewView`s, `PreparedProof`s and stable `CheckpointProof`s. `prunable(record,
stable_seq)` says which records the shell may drop after a stable checkpoint.

The shell's duties besides Ready: call `propose(now_ms)` as primary at least once every
view_timeout_ticks / 2 ticks (empty blocks are fine: backups time out on a primary that
proposes nothing); call `executed(h)` after executing; reject blocks whose `time_ms` is
too far ahead of its clock in `Application.verify_payload` (consensus has no clock and
only requires time > parent's time).

Safety rules: `rules` (`consensus.safety.SafetyRules`) says which checks are enforced;
production passes nothing (`ALL_RULES`, every rule on). Only the fault simulator switches
one off (`consensus.sim.mutations`) to show that its checkers notice.

Limits: the views a replica remembers messages for are [view - 1, view + MAX_VIEW_AHEAD];
sequence numbers (stable, stable + L]; fetched-but-not-yet-applicable blocks at most
MAX_FETCH_BLOCKS.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from afterchain.protocol.block import (
    MAX_VALIDATORS,
    Block,
    BlockHeader,
    Commit,
    CommitCertificate,
    CommitSig,
    ValidatorSet,
)
from afterchain.protocol.codec import Message, decode_as, sha256
from afterchain.protocol.crypto import Domain, KeyPair
from afterchain.protocol.errors import ProtocolError, require
from afterchain.protocol.merkle import merkle_root
from afterchain.protocol.types import Hash32, Height, Seq, Signature, ValidatorId, View

from .app import Application, Verdict
from .epochs import boundaries_after, is_boundary
from .messages import (
    MAX_FETCH_BLOCKS,
    CertifiedBlock,
    CheckpointBody,
    CheckpointProof,
    ConsensusMessage,
    Evidence,
    NewViewBody,
    Prepare,
    PreparedProof,
    PrePrepare,
    PrePrepareMsg,
    SignedCheckpoint,
    SignedCommit,
    SignedMessage,
    SignedNewView,
    SignedPrepare,
    SignedPrePrepare,
    SignedStatus,
    SignedViewChange,
    Status,
    ViewChangeBody,
    phase_key,
)
from .params import ConsensusParams
from .requests import NO_TIMERS, HeldRequests, RequestTimers
from .safety import ALL_RULES, SafetyRules
from .signer import CachingVerifier, Ed25519Signer, Ed25519Verifier, Signer, Verifier, quorum_size, verify_certificate

__all__ = [
    "FetchRequest",
    "PersistedState",
    "Ready",
    "Replica",
    "Send",
    "compute_new_view_o",
    "prunable",
]

MAX_VIEW_AHEAD = 16
"""Messages for views beyond view + this are dropped (bounds memory)."""

_SEQ_PHASES = (Domain.PREPREPARE.value, Domain.PREPARE.value, Domain.COMMIT.value, Domain.CHECKPOINT.value)
_WINDOWED = (SignedPrePrepare, SignedPrepare, SignedCommit)
"""Votes the handlers take only inside the window (stable checkpoint, high watermark]."""


@dataclass(frozen=True, slots=True)
class Send:
    """Send `message` to `to`, or to every other member of the replica's current validator
    set (`Replica.validators`) when `to` is None."""

    to: ValidatorId | None
    message: ConsensusMessage


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """Ask `peer` for committed blocks from_height .. from_height + count - 1."""

    peer: ValidatorId
    from_height: int
    count: int


@dataclass(slots=True)
class Ready:
    persist: list[Message] = field(default_factory=list)
    sends: list[Send] = field(default_factory=list)
    commits: list[CertifiedBlock] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    fetches: list[FetchRequest] = field(default_factory=list)
    stable_seq: int = 0
    """The stable checkpoint when this Ready was made (for `prunable`)."""
    view: int = 0
    """The replica's view when this Ready was made (for `prunable`)."""
    forwards: list[bytes] = field(default_factory=list)
    """Request timers: digests of held events to relay to the other validators (T1)."""
    expired: list[tuple[bytes, ValidatorId, str]] = field(default_factory=list)
    """Request timers: (event digest, primary, reason) of a view change this replica voted
    for because of them; reason ``request_timeout`` (T2) or ``slow_primary``."""

    def empty(self) -> bool:
        return not (self.persist or self.sends or self.commits or self.evidence or self.fetches
                    or self.forwards or self.expired)


@dataclass(frozen=True, slots=True)
class PersistedState:
    records: Sequence[Message]
    committed_header: BlockHeader | None = None


def prunable(record: Message, stable_seq: int, view: int | None = None) -> bool:
    """True if the shell may drop this WAL record once `stable_seq` is stable (and the
    record holding that stable checkpoint proof has been written). With `view` (the
    replica's current view, `Ready.view`), records of older views are prunable too, except
    prepared proofs above the stable checkpoint (a later VIEW-CHANGE needs them)."""
    if isinstance(record, PreparedProof):
        return record.preprepare.body.seq <= stable_seq
    if isinstance(record, CheckpointProof):
        return record.seq < stable_seq
    if isinstance(record, PrePrepareMsg):
        b = record.preprepare.body
        return b.seq <= stable_seq or (view is not None and b.view < view)
    if isinstance(record, SignedPrepare | SignedCommit):
        return record.body.seq <= stable_seq or (view is not None and record.body.view < view)
    if isinstance(record, SignedCheckpoint):
        return record.body.seq <= stable_seq
    if isinstance(record, SignedViewChange):
        return view is not None and record.body.new_view < view
    if isinstance(record, SignedNewView):
        return view is not None and record.body.view < view
    return False


class _Slot:
    """A pre-prepared block at one sequence number in the current view."""

    __slots__ = ("block", "from_new_view", "pp", "prepared", "rejected", "verified")

    def __init__(self, pp: PrePrepareMsg, *, from_new_view: bool) -> None:
        self.pp = pp
        self.block = pp.block
        self.from_new_view = from_new_view
        self.verified = from_new_view
        self.rejected = False
        self.prepared = False

    @property
    def digest(self) -> bytes:
        return self.pp.preprepare.body.digest


def compute_new_view_o(
    vcs: Sequence[SignedViewChange], genesis_hash: bytes, window: int
) -> tuple[int, bytes, list[tuple[SignedPrePrepare, Block]]]:
    """From 2f+1 (already verified) view changes: the highest stable checkpoint (h, digest)
    and the blocks to re-issue, in order: for each s = h+1, h+2, ... the prepared proof with
    the highest view; stop at the first s without one or whose block does not chain to the
    one chosen at s-1 (nothing there can have committed, see the module docstring)."""
    h: int = 0
    h_digest = genesis_hash
    for vc in vcs:
        if vc.body.stable.seq > h:
            h, h_digest = vc.body.stable.seq, vc.body.stable.digest
    best: dict[int, PreparedProof] = {}
    for vc in vcs:
        for p in vc.body.prepared:
            s: int = p.preprepare.body.seq
            cur = best.get(s)
            key = (p.preprepare.body.view, p.preprepare.body.digest)
            if cur is None or key > (cur.preprepare.body.view, cur.preprepare.body.digest):
                best[s] = p
    out: list[tuple[SignedPrePrepare, Block]] = []
    prev = h_digest
    for s in range(h + 1, h + window + 1):
        chosen = best.get(s)
        if chosen is None or chosen.block.header.prev_hash != prev:
            break
        out.append((chosen.preprepare, chosen.block))
        prev = chosen.preprepare.body.digest
    return h, h_digest, out


class Replica:
    """One validator's PBFT state machine. See the module docstring."""

    def __init__(
        self,
        me: KeyPair | Signer,
        validators: ValidatorSet,
        params: ConsensusParams,
        app: Application,
        persisted: PersistedState | None = None,
        *,
        chain_id: str,
        genesis_hash: bytes,
        genesis_time_ms: int = 0,
        verifier: Verifier | None = None,
        rules: SafetyRules = ALL_RULES,
        timers: RequestTimers = NO_TIMERS,
    ) -> None:
        self.signer: Signer = Ed25519Signer(me) if isinstance(me, KeyPair) else me
        self.me = ValidatorId(self.signer.public)
        self.genesis_validators = validators
        self.params = params
        self.app = app
        self.chain_id = chain_id
        self.genesis_hash = Hash32(genesis_hash)
        self.genesis_time_ms = genesis_time_ms
        # a vote that arrives again (retransmitted, relayed) is not checked again
        self.verifier: CachingVerifier = CachingVerifier(verifier if verifier is not None else Ed25519Verifier())
        self.rules = rules
        """The safety rules enforced: all of them except in the fault simulator's mutation runs."""
        self.held = HeldRequests(timers)
        """Request timers (`consensus.requests`): the events this node holds, by digest."""
        self._slow_vote = False
        # an application without validators_for keeps the genesis set forever
        self._vsets_fn: Callable[[int], ValidatorSet | None] | None = getattr(app, "validators_for", None)
        self._vset_cache: dict[int, ValidatorSet] = {}
        self._hash_cache: dict[tuple[bytes, ...], bytes] = {}
        self._top_cache: tuple[tuple[int, int, int, int, int], int] | None = None
        self._known_cache: tuple[tuple[int, int, int], frozenset[bytes]] | None = None
        self._use_set(validators)
        self.observed_base = 0
        """Observers only: the highest boundary committed here after which this replica is
        still not a member (its current set is V(observed_base + 1) when above `stable`)."""
        self.epoch_pending = False
        """V(stable + 1) is not known yet (execution lags): the window is empty until it is."""
        self.epoch_switches = 0
        self.status_answered: dict[bytes, int] = {}
        self.ahead: dict[tuple[int, int, bytes], tuple[int, ConsensusMessage, bytes]] = {}
        """Votes for heights up to one window above the high watermark, in this view, kept
        unchecked until the window reaches them: (kind, seq, replica) -> (view, message,
        sender). A replica just behind the tip would otherwise drop the next heights'
        pre-prepares and prepares, which are not sent again once their height committed."""
        self._taking_up = False
        self._ahead_mark = (-1, -1)  # (view, high watermark) at the last take-up

        self.view = 0
        self.active = True
        self.ticks = 0
        self.committed_seq = 0
        self.committed_hash: bytes = self.genesis_hash
        self.committed_header: BlockHeader | None = None
        self.stable = CheckpointProof(seq=Seq(0), digest=self.genesis_hash, checkpoints=())
        self.slots: dict[int, _Slot] = {}
        self.next_seq = 1
        self.prepares: dict[tuple[int, int, bytes], dict[bytes, SignedPrepare]] = {}
        self.commits: dict[tuple[int, int, bytes], dict[bytes, SignedCommit]] = {}
        self.checkpoints: dict[tuple[int, bytes], dict[bytes, SignedCheckpoint]] = {}
        self.prepared_certs: dict[int, PreparedProof] = {}
        self.view_changes: dict[int, dict[bytes, SignedViewChange]] = {}
        self.new_view_msg: SignedNewView | None = None
        self.signed: dict[tuple[str, int, int], SignedMessage] = {}
        self.own_pp: dict[tuple[int, int], PrePrepareMsg] = {}
        self.voted: dict[tuple[str, int, int, bytes], bytes] = {}
        self.seen: dict[tuple[bytes, str, int, int], SignedMessage] = {}
        self.reported: set[tuple[bytes, str, int, int]] = set()
        self.fetched: dict[int, CertifiedBlock] = {}
        self.peer_committed: dict[bytes, int] = {}
        self.peer_view: dict[bytes, int] = {}
        self.nv_relayed: dict[bytes, int] = {}
        self.last_fetch_tick = -(10**9)
        self.fetch_count = 0
        self.fetch_from = 0
        """First height of the last block range requested (0: none yet)."""
        self.fetch_end = 0
        """Last height of the last block range requested."""
        self.fetch_applied = 0
        """Fetched blocks applied since the last request (an early request needs >= 1)."""
        self.fetch_early = 0
        """Requests made at once after progress (the rest waited for the fetch interval)."""
        self.vc_attempt = 0
        self.deadline = params.view_timeout_ticks
        self.last_commit_tick = 0
        self.rejected: dict[str, int] = {}

        self._out = Ready()
        self._given: Ready | None = None
        if persisted is not None:
            self._restore_epoch(persisted)
            self._restore(persisted)
        else:
            self._sync_epoch()

    # ------------------------------------------------------------------ public API

    @property
    def primary(self) -> ValidatorId:
        return self.validators.primary(self.view)

    @property
    def is_primary(self) -> bool:
        return self.primary == self.me

    @property
    def stable_seq(self) -> int:
        return self.stable.seq

    @property
    def high_watermark(self) -> int:
        """The top of the window of sequence numbers in flight: stable + L, capped at the
        first boundary b > stable whose V(b + 1) is unknown or differs from the current set
        (so nothing in the window ever needs another set); `stable` (an empty window) for
        an observer or while the current set is unknown."""
        p = self.params  # (the shell may replace the params object: part of the key)
        key = (self.stable.seq, self.app.executed_height(), self.observed_base, p.watermark_window, p.checkpoint_interval)
        if self._top_cache is not None and self._top_cache[0] == key:
            return self._top_cache[1]
        stable = self.stable.seq
        top = stable + self.params.watermark_window
        if self.epoch_pending or not self.is_member:
            top = stable
        elif self.rules.epoch_window:
            for b in boundaries_after(stable, self.params.checkpoint_interval, top):
                nxt = self.vset(b + 1)
                if nxt is None or nxt.validators != self.validators.validators:
                    top = b
                    break
        self._top_cache = (key, top)
        return top


    @property
    def epoch_base(self) -> int:
        """The boundary whose next height starts the current set: V(epoch_base + 1)."""
        return max(self.stable.seq, self.observed_base)

    def vset(self, height: int) -> ValidatorSet | None:
        """V(height) from the application (`consensus.epochs`), or None while unknown."""
        if height < 1 or self._vsets_fn is None or not self.rules.epoch_check:
            return self.genesis_validators
        hit = self._vset_cache.get(height)
        if hit is not None:
            return hit
        vs = self._vsets_fn(height)
        if vs is not None:
            if len(self._vset_cache) >= 256:
                self._vset_cache.clear()
            self._vset_cache[height] = vs
        return vs

    def vset_hash_of(self, vs: ValidatorSet) -> bytes:
        h = self._hash_cache.get(vs.validators)
        if h is None:
            if len(self._hash_cache) >= 64:
                self._hash_cache.clear()
            h = self._hash_cache[vs.validators] = vs.hash()
        return h

    def known_nodes(self) -> frozenset[bytes]:
        """Whom the shell connects to and accepts STATUS from: the previous set (the one
        that signed the stable checkpoint), the current set and the next sets once known
        (V(b + 1) for the next two boundaries b); never this replica itself."""
        key = (self.epoch_base, self.app.executed_height(), len(self.validators.validators))
        if self._known_cache is not None and self._known_cache[0] == key:
            return self._known_cache[1]
        base = self.epoch_base
        k = self.params.checkpoint_interval
        out: set[bytes] = set(self.validators.validators)
        for h in (base, base + k + 1, base + 2 * k + 1):
            vs = self.vset(h) if h >= 1 else None
            if vs is not None:
                out.update(vs.validators)
        out.discard(self.me)
        known = frozenset(out)
        self._known_cache = (key, known)
        return known

    def accepts_from(self, signed: SignedMessage, sender: bytes) -> bool:
        """Whether a signed message from `sender` is taken at all (before its signature is
        checked): STATUS from known nodes; a CHECKPOINT for seq signed by a member of V(seq),
        sent by its signer or relayed by a known node (a stable proof for a new member);
        every other vote only from members of the current set, and only by a member."""
        if sender == self.me:
            return False
        if isinstance(signed, SignedStatus):
            return sender in self.known_nodes()
        if isinstance(signed, SignedCheckpoint):
            vs = self.vset(signed.body.seq)
            return vs is not None and signed.body.replica in vs and (
                sender == signed.body.replica or sender in self.known_nodes())
        return self.is_member and not self.epoch_pending and sender in self.validators

    def ready(self) -> Ready:
        """What to do now, in order (persist, send, commit, evidence, fetch)."""
        require(self._given is None, "advance() the previous Ready before asking for another")
        out = self._out
        out.stable_seq = self.stable.seq
        out.view = self.view
        self._out = Ready()
        self._given = out
        return out

    def has_ready(self) -> bool:
        return not self._out.empty()

    def advance(self, ready: Ready) -> None:
        """The shell has persisted, sent and stored everything in `ready`."""
        require(ready is self._given, "advance() takes the Ready last returned by ready()")
        self._given = None

    def hold(self, digests: Iterable[bytes]) -> None:
        """Request timers: the shell now holds these events (valid, proposable, not
        committed); their timers start at this tick (see `consensus.requests`)."""
        if self.held.timers.enabled:
            self.held.hold(digests, self.ticks)

    def release(self, digests: Iterable[bytes]) -> None:
        """Request timers: the shell no longer holds these events (committed, superseded).
        Events of committed blocks are released here too."""
        self.held.release(digests)

    def greet(self, peer: bytes) -> None:
        """The shell's link to `peer` has just opened: if `peer` is a known node (a
        validator of the previous, current or next sets), send it this replica's STATUS
        now rather than at the next retransmission (up to `retransmit_ticks` later). A
        replica that restarted learns from its peers' STATUS how far the chain went, so its
        catch-up starts one round trip after it connects. Member nodes are not greeted:
        they follow the chain by asking (`FollowRequest`)."""
        if peer in self.known_nodes():
            self._send(peer, self._status())

    def tick(self) -> None:
        self.ticks += 1
        if not self.is_member or self.epoch_pending:
            self.deadline = self.ticks + self._timeout()  # observers keep no view timer
        elif self.ticks >= self.deadline:
            if self.active or len(self.view_changes.get(self.view, {})) >= self.quorum:
                self._start_view_change(self.view + 1)
            else:
                # 4.5.2: the timer for v+1 runs only once 2f+1 view changes for v are in;
                # until then keep waiting (and re-sending), so one replica cannot run ahead.
                self.deadline = self.ticks + self._timeout()
        if self.held.timers.enabled:
            self._request_timers()
        if self.ticks % self.params.retransmit_ticks == 0:
            self._retransmit()
        self._progress()

    def _request_timers(self) -> None:
        """PBFT's request timers (`consensus.requests`): relay at T1, vote out at T2 or
        after `slow_blocks` underfilled blocks in a row. Only an active backup acts."""
        held = self.held
        if not self.is_member or self.epoch_pending or (self.is_primary and self.active):
            self._slow_vote = False
            return
        fwd = held.due_forwards(self.ticks)  # relaying helps even during a view change
        if fwd:
            self._out.forwards.extend(fwd)
        if not self.active or self._behind():
            # a replica catching up has not seen the blocks that carry its held events:
            # it has nothing to judge the primary by yet
            self._slow_vote = False
            return
        late = held.expired(self.ticks)
        reason = "request_timeout"
        if late is None and self._slow_vote:
            oldest = held.oldest()
            late, reason = (oldest[0] if oldest is not None else b""), "slow_primary"
        self._slow_vote = False
        if late is not None:
            held.expiries += 1
            self._out.expired.append((late, self.primary, reason))
            self._start_view_change(self.view + 1)

    def _behind(self) -> bool:
        """f+1 peers (so at least one correct one) say they committed more than K blocks
        above this replica (STATUS and CHECKPOINT heights lag a little: K is the margin)."""
        f = len(self.validators.validators) - self.quorum
        floor = self.committed_seq + self.params.checkpoint_interval
        above = sum(1 for h in self.peer_committed.values() if h > floor)
        return above >= f + 1

    def executed(self, height: int) -> None:
        """The application has executed up to `height`: re-check deferred pre-prepares,
        deferred fetched blocks and whether the next validator set is known now."""
        self._sync_epoch()
        if self.fetched:
            self._apply_fetched_queue()
        self._progress()

    def preprepared_blocks(self) -> dict[int, Block]:
        """The blocks pre-prepared in this view and not yet committed, by sequence number
        (a copy: the shell reads which events are proposed already, or serves them)."""
        return {s: slot.block for s, slot in self.slots.items()}

    def own_proposal(self, seq: int) -> Block | None:
        """The block this replica pre-prepared at `seq` in this view, if any (read-only: the
        shell marks its events proposed after `propose`)."""
        msg = self.own_pp.get((self.view, seq))
        return None if msg is None else msg.block

    def can_propose(self) -> bool:
        return self._proposal_parent() is not None

    def propose(self, time_ms: int) -> bool:
        """As the primary, pre-prepare the next block (time = max(time_ms, parent + 1)).
        Returns False when not primary, not active, outside the window or the state lags."""
        parent = self._proposal_parent()
        if parent is None:
            return False
        seq = self.next_seq
        parent_hash, parent_time, parent_state_height = parent
        state_height = self.app.executed_height()
        state_root = self.app.state_root_at(state_height)
        if state_root is None or state_height < parent_state_height or seq - state_height > self.params.max_state_lag:
            return False
        next_hash = self._next_hash(seq)
        if next_hash is None:
            return False  # V(seq + 1) not known yet: wait
        events = self.app.build_payload(self.params.max_block_events, self.params.max_block_bytes)
        header = BlockHeader(
            chain_id=self.chain_id, height=Height(seq), view=View(self.view), time_ms=max(time_ms, parent_time + 1),
            prev_hash=Hash32(parent_hash), events_root=Hash32(merkle_root([sha256(e) for e in events])),
            event_count=len(events), state_height=Height(state_height), state_root=Hash32(state_root),
            validators_hash=self.vset_hash, next_validators_hash=Hash32(next_hash), proposer=self.me,
        )
        block = Block(header=header, events=tuple(events))
        digest = Hash32(header.hash())
        body = PrePrepare(view=View(self.view), seq=Seq(seq), digest=digest, replica=self.me)
        spp = self._sign(SignedPrePrepare, body, persist=False)
        if not isinstance(spp, SignedPrePrepare):
            return False
        msg = PrePrepareMsg(preprepare=spp, block=block)
        self._out.persist.append(msg)
        self.own_pp[(self.view, seq)] = msg
        self.slots[seq] = _Slot(msg, from_new_view=False)
        self.slots[seq].verified = True
        self.next_seq = seq + 1
        self._send(None, msg)
        self._progress()
        return True

    def step(self, message: ConsensusMessage | bytes, sender: bytes) -> bool:
        """Handle one peer message from authenticated transport peer `sender`. Bytes are
        decoded here (bounded by `max_message_bytes`); a message object must come from
        `protocol.codec.decode` (so its stateless `validate()` has run). Returns False (and
        changes nothing but the `rejected` counters and the evidence table) if rejected."""
        if isinstance(message, bytes | bytearray):
            try:
                message = decode_as(ConsensusMessage, bytes(message), max_bytes=self.max_message_bytes)
            except ProtocolError as exc:
                return self._reject(f"decode:{exc.code}")
        if isinstance(message, PrePrepareMsg):
            signed: SignedMessage = message.preprepare
        elif isinstance(message, SignedMessage):
            signed = message
        else:
            return self._reject("unexpected_type")
        if not self.accepts_from(signed, sender):
            return self._reject("sender_not_validator")
        body = signed.body  # type: ignore[attr-defined]
        if body.replica != sender and not isinstance(signed, SignedCheckpoint):
            return self._reject("signer_not_sender")
        if type(signed) in _WINDOWED and not self._in_window(body.seq):
            # refused before the signature check (the handlers of these three take only
            # heights in the window): a replica far behind gets its peers' votes for heights
            # it cannot use yet (those just above the window are kept for when it moves: `ahead`)
            self._keep_ahead(message, signed, sender)
            return self._reject("outside_window")
        if not self.verifier.verify(body.replica, signed.signature, signed.DOMAIN, self.chain_id, body):  # type: ignore[attr-defined]
            return self._reject("bad_signature")
        if not isinstance(signed, SignedStatus):
            self._note_for_evidence(body.replica, signed)
        if isinstance(message, PrePrepareMsg):
            ok = self._on_preprepare(message)
        elif isinstance(message, SignedPrepare):
            ok = self._on_prepare(message)
        elif isinstance(message, SignedCommit):
            ok = self._on_commit(message)
        elif isinstance(message, SignedCheckpoint):
            ok = self._on_checkpoint(message)
        elif isinstance(message, SignedViewChange):
            ok = self._on_view_change(message)
        elif isinstance(message, SignedNewView):
            ok = self._on_new_view(message)
        elif isinstance(message, SignedStatus):
            ok = self._on_status(message)
        else:
            ok = self._reject("unexpected_type")
        if ok:
            self._progress()
        return ok

    def deliver_block(self, cb: CertifiedBlock) -> bool:
        """A committed block fetched from a peer (catch-up). Applied if it is the next
        height, chains to the committed header and its certificate verifies; blocks a
        little ahead are kept until their turn."""
        h = cb.block.header.height
        for old in [k for k in self.fetched if k <= self.committed_seq]:
            del self.fetched[old]
        if h <= self.committed_seq or h > self.committed_seq + MAX_FETCH_BLOCKS:
            return False
        self.fetched[h] = cb
        return self._apply_fetched_queue()

    def _apply_fetched_queue(self) -> bool:
        applied = False
        while (nxt := self.fetched.get(self.committed_seq + 1)) is not None:
            verdict = self._apply_fetched(nxt)
            if verdict is None:
                break  # V(h) or V(h + 1) not known yet: retried after executed()
            del self.fetched[nxt.block.header.height]
            if not verdict:
                break
            applied = True
            self.fetch_applied += 1
        if applied:
            self._progress()
        return applied

    def in_evidence_window(self, phase: str, view: int, seq: int) -> bool:
        """Whether a signed message with this key is remembered for equivocation checks."""
        if view > self.view + MAX_VIEW_AHEAD:
            return False
        if phase in _SEQ_PHASES:
            if not self.stable.seq < seq <= self.high_watermark:
                return False
            return phase == Domain.CHECKPOINT.value or view >= self.view - 1
        return view >= self.view

    # ------------------------------------------------------------------ restore

    def _restore_epoch(self, ps: PersistedState) -> None:
        """Come back in the right epoch: the committed header and the stable checkpoint
        (from the WAL) with the application's `validators_for` give the current set, before
        the other records are read under it."""
        if ps.committed_header is not None:
            self.committed_header = ps.committed_header
            self.committed_seq = ps.committed_header.height
            self.committed_hash = ps.committed_header.hash()
        for rec in ps.records:
            if isinstance(rec, CheckpointProof) and rec.seq > self.stable.seq:
                self.stable = rec
        self._sync_epoch()

    def _restore(self, ps: PersistedState) -> None:
        if ps.committed_header is not None:
            self.committed_header = ps.committed_header
            self.committed_seq = ps.committed_header.height
            self.committed_hash = ps.committed_header.hash()
        guard = self.rules.signer_guard
        new_views: dict[int, SignedNewView] = {}
        view = 0
        for rec in ps.records:
            if isinstance(rec, PrePrepareMsg):
                b = rec.preprepare.body
                view = max(view, b.view)
                if guard:
                    self.signed[(Domain.PREPREPARE.value, b.view, b.seq)] = rec.preprepare
                    self.own_pp[(b.view, b.seq)] = rec
            elif isinstance(rec, SignedNewView):
                new_views[rec.body.view] = rec
                view = max(view, rec.body.view)
                if guard and rec.body.replica == self.me:
                    self.signed[(Domain.NEW_VIEW.value, rec.body.view, 0)] = rec
                    for o in rec.body.preprepares:  # the O set is signed inside the NEW-VIEW
                        self.signed[(Domain.PREPREPARE.value, rec.body.view, o.preprepare.body.seq)] = o.preprepare
            elif isinstance(rec, SignedMessage):
                phase, v, s, _ = phase_key(rec)
                if phase != Domain.CHECKPOINT.value:
                    view = max(view, v)
                if guard:
                    self.signed[(phase, v, s)] = rec
            elif isinstance(rec, PreparedProof):
                s = rec.preprepare.body.seq
                cur = self.prepared_certs.get(s)
                if cur is None or cur.preprepare.body.view < rec.preprepare.body.view:
                    self.prepared_certs[s] = rec
        for s in [s for s in self.prepared_certs if s <= self.stable.seq]:
            del self.prepared_certs[s]
        for k in [k for k in self.signed if k[0] in _SEQ_PHASES and k[2] <= self.stable.seq]:
            del self.signed[k]
        for k2 in [k for k in self.own_pp if k[1] <= self.stable.seq]:
            del self.own_pp[k2]
        for key, rec in self.signed.items():  # own checkpoints above the stable one still count
            if key[0] == Domain.CHECKPOINT.value and isinstance(rec, SignedCheckpoint):
                self.checkpoints.setdefault((rec.body.seq, rec.body.digest), {})[self.me] = rec
        self.view = view
        self.next_seq = max(self.committed_seq, self.stable.seq) + 1
        own_vc = next((r for r in ps.records if isinstance(r, SignedViewChange) and r.body.replica == self.me
                       and r.body.new_view == view), None)
        nv_here = new_views.get(view)
        if nv_here is not None and not self._same_epoch(nv_here.body.view_changes):
            nv_here = None  # a NEW-VIEW of an earlier epoch: this view was entered by the switch
        # a view entered at an epoch switch (or, for a new member, taken from its peers'
        # STATUS) has no NEW-VIEW and no own VIEW-CHANGE of this epoch: it is active
        switched_in = nv_here is None and (own_vc is None or not self._same_epoch((own_vc,)))
        if view == 0 or nv_here is not None or switched_in:
            self.active = True
            if nv_here is not None and view > 0:
                self._install_new_view(nv_here, persist=False)
            for (v, s), msg in sorted(self.own_pp.items()):
                if v == view and s > self.committed_seq:
                    self.slots[s] = _Slot(msg, from_new_view=False)
                    self.slots[s].verified = True
                    self.next_seq = max(self.next_seq, s + 1)
            self.deadline = self.ticks + self._timeout()
        else:
            self.active = False
            self.deadline = self.ticks + self._timeout()
            guarded = self.signed.get((Domain.VIEW_CHANGE.value, view, 0))
            if isinstance(guarded, SignedViewChange):
                self.view_changes[view] = {self.me: guarded}

    # ------------------------------------------------------------------ epochs

    def _use_set(self, validators: ValidatorSet) -> None:
        self.validators = validators
        self.is_member = self.me in validators
        """This replica's key is in its current set (otherwise it is an observer)."""
        self.vset_hash = Hash32(self.vset_hash_of(validators))
        f = validators.f
        self.f = f
        # n - f, not 2f+1: two quorums must share f+1 replicas for every n >= 3f+1 (with
        # n = 6, f = 1 two sets of 2f+1 = 3 can be disjoint; the simulator finds that at once)
        self.quorum = quorum_size(validators)
        self.prepare_quorum = self.quorum - 1
        # a NEW-VIEW carries 2f+1 view changes of up to L blocks each, plus up to L blocks
        p = self.params
        per_block = p.max_block_bytes + 64 * p.max_block_events + 16 * 1024
        self.max_message_bytes = (2 * f + 2) * p.watermark_window * per_block + (1 << 20)
        self.commit_quorum = self.quorum if self.rules.commit_quorum else f + 1
        self._top_cache = None
        self._known_cache = None

    def _sync_epoch(self) -> None:
        """Make the current set V(epoch_base + 1). An observer moves its base over the
        boundaries it has committed after which it is still not a member; a member moves
        only with its stable checkpoint (signed by the old set)."""
        k = self.params.checkpoint_interval
        if not self.is_member:
            for b in boundaries_after(self.epoch_base, k, self.committed_seq):
                nxt = self.vset(b + 1)
                if nxt is None or self.me in nxt:
                    break  # a member from b + 1 on: wait for checkpoint b to be stable
                self.observed_base = b
        want = self.vset(self.epoch_base + 1)
        if want is None:
            self.epoch_pending = True
            self._top_cache = None
            return
        self.epoch_pending = False
        if want.validators != self.validators.validators:
            self._switch(want)

    def _switch(self, new: ValidatorSet) -> None:
        """Current set := `new` at the epoch base: keep the view number (the primary of view v
        is new[v % n]), drop view-change state and the per-view logs of the old set, reset
        the view timer. Nothing above the base is in flight (the window was capped there)."""
        self._use_set(new)
        self.epoch_switches += 1
        base = self.epoch_base
        self.view_changes.clear()
        self.new_view_msg = None
        self.prepares.clear()
        self.commits.clear()
        self.slots.clear()
        self.own_pp.clear()
        for k in [k for k in self.voted if k[0] != Domain.CHECKPOINT.value]:
            del self.voted[k]
        for s in [s for s in self.prepared_certs if s <= base]:
            del self.prepared_certs[s]
        self.peer_view.clear()
        self.nv_relayed.clear()
        self.active = True
        self.vc_attempt = 0
        self.deadline = self.ticks + self._timeout()
        self.held.restart(self.ticks)
        self.next_seq = max(self.next_seq, base + 1, self.committed_seq + 1)
        self._gc_evidence()

    def _same_epoch(self, vcs: Iterable[SignedViewChange]) -> bool:
        """The view changes' stable checkpoints start the current set (an unknown set counts
        as the current one: a restored replica then waits rather than skipping a view change)."""
        for vc in vcs:
            nxt = self.vset(vc.body.stable.seq + 1)
            if nxt is not None and nxt.validators != self.validators.validators:
                return False
        return True

    def _next_hash(self, height: int) -> bytes | None:
        """hash(V(height + 1)) for a height in the window (None while unknown)."""
        if not is_boundary(height, self.params.checkpoint_interval):
            return self.vset_hash
        nxt = self.vset(height + 1)
        return None if nxt is None else self.vset_hash_of(nxt)

    # ------------------------------------------------------------------ helpers

    def _reject(self, reason: str) -> bool:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        return False

    def _send(self, to: bytes | None, msg: ConsensusMessage) -> None:
        self._out.sends.append(Send(None if to is None else ValidatorId(to), msg))

    def _timeout(self) -> int:
        p = self.params
        return min(p.view_timeout_ticks << min(self.vc_attempt, 30), p.view_timeout_max_ticks)

    def _sign(self, wrapper: type[SignedMessage], body: Message, *, persist: bool = True) -> SignedMessage | None:
        """Sign through the guard: the same key returns the earlier message if it is the
        same, and None (refusal) if it differs."""
        candidate = wrapper(body=body, signature=Signature(b"\0" * 64))  # type: ignore[call-arg]
        phase, view, seq, digest = phase_key(candidate)
        prev = self.signed.get((phase, view, seq))
        if prev is not None:
            if phase_key(prev)[3] == digest:
                return prev
            self.rejected["guard_refused"] = self.rejected.get("guard_refused", 0) + 1
            return None
        sig = self.signer.sign(wrapper.DOMAIN, self.chain_id, body)
        msg = wrapper(body=body, signature=sig)  # type: ignore[call-arg]
        self.signed[(phase, view, seq)] = msg
        if persist:
            self._out.persist.append(msg)
        return msg

    def _note_for_evidence(self, sender: bytes, msg: SignedMessage) -> None:
        phase, view, seq, digest = phase_key(msg)
        if not self.in_evidence_window(phase, view, seq):
            return
        key = (sender, phase, view, seq)
        prev = self.seen.get(key)
        if prev is None:
            self.seen[key] = msg
            return
        if phase_key(prev)[3] != digest and key not in self.reported:
            self.reported.add(key)
            if self.rules.evidence:
                self._out.evidence.append(Evidence(first=prev, second=msg))

    def _gc_evidence(self) -> None:
        for key in [k for k in self.seen if not self.in_evidence_window(k[1], k[2], k[3])]:
            del self.seen[key]
            self.reported.discard(key)

    def _in_window(self, seq: int) -> bool:
        return self.stable.seq < seq <= self.high_watermark

    def _view_ok(self, view: int) -> bool:
        return self.active and view == self.view

    # ------------------------------------------------------------------ normal case (4.2)

    def _on_preprepare(self, msg: PrePrepareMsg) -> bool:
        b = msg.preprepare.body
        if not self._view_ok(b.view):
            return self._reject("wrong_view")
        if b.replica != self.primary:
            return self._reject("not_primary")
        if b.seq <= self.committed_seq:
            return self._reject("already_committed")
        slot = self.slots.get(b.seq)
        if slot is not None:
            return self._reject("duplicate" if slot.digest == b.digest else "conflicting_preprepare")
        h = msg.block.header
        if h.view != self.view or h.proposer != b.replica:
            return self._reject("header_view")
        self.slots[b.seq] = _Slot(msg, from_new_view=False)
        return True

    def _on_prepare(self, msg: SignedPrepare) -> bool:
        b = msg.body
        if not self._view_ok(b.view):
            return self._reject("wrong_view")
        if b.replica == self.primary:
            return self._reject("primary_prepare")
        if not self._first_vote(msg.PHASE, b.view, b.seq, b.replica, b.digest):
            return self._reject("conflicting_vote")
        votes = self.prepares.setdefault((b.view, b.seq, b.digest), {})
        if b.replica in votes:
            return self._reject("duplicate")
        votes[b.replica] = msg
        return True

    def _on_commit(self, msg: SignedCommit) -> bool:
        b = msg.body
        if not self._view_ok(b.view):
            return self._reject("wrong_view")
        if not self._first_vote(msg.PHASE, b.view, b.seq, b.replica, b.digest):
            return self._reject("conflicting_vote")
        votes = self.commits.setdefault((b.view, b.seq, b.digest), {})
        if b.replica in votes:
            return self._reject("duplicate")
        votes[b.replica] = msg
        return True

    def _first_vote(self, phase: str, view: int, seq: int, replica: bytes, digest: bytes) -> bool:
        """One vote per (phase, view, seq, replica) is kept: a second one for another digest
        is an equivocation (already reported as evidence) and is not stored, which bounds
        the vote tables to n * L entries per phase and view."""
        return self.voted.setdefault((phase, view, seq, replica), digest) == digest

    def _parent(self, seq: int) -> tuple[bytes, BlockHeader | None] | None:
        """(hash, header) of the block at seq-1 if it is committed or prepared in this view."""
        if seq - 1 == self.committed_seq:
            return self.committed_hash, self.committed_header
        slot = self.slots.get(seq - 1)
        if slot is not None and slot.prepared:
            return slot.digest, slot.block.header
        return None

    def _proposal_parent(self) -> tuple[bytes, int, int] | None:
        if not self.active or not self.is_primary:
            return None
        seq = self.next_seq
        if seq <= self.committed_seq or not self._in_window(seq):
            return None
        if seq - 1 == self.committed_seq:
            hdr = self.committed_header
            phash = self.committed_hash
        else:
            slot = self.slots.get(seq - 1)
            if slot is None:
                return None
            hdr = slot.block.header
            phash = slot.digest
        if hdr is None:
            return phash, self.genesis_time_ms, 0
        return phash, hdr.time_ms, hdr.state_height

    def _check_block(self, slot: _Slot, parent: BlockHeader | None) -> Verdict:
        h = slot.block.header
        p = self.params
        parent_time = self.genesis_time_ms if parent is None else parent.time_ms
        parent_state = 0 if parent is None else parent.state_height
        ok = (
            h.chain_id == self.chain_id and h.time_ms > parent_time and h.validators_hash == self.vset_hash
            and parent_state <= h.state_height
            and h.height - h.state_height <= p.max_state_lag and h.event_count <= p.max_block_events
            and sum(len(e) for e in slot.block.events) <= p.max_block_bytes
        )
        if not ok:
            return Verdict.REJECT
        next_hash = self._next_hash(h.height)
        if next_hash is None:
            return Verdict.DEFER
        if h.next_validators_hash != next_hash:
            return Verdict.REJECT
        root = self.app.state_root_at(h.state_height)
        if root is None:
            return Verdict.DEFER if h.state_height > self.app.executed_height() else Verdict.REJECT
        if root != h.state_root:
            return Verdict.REJECT
        return self.app.verify_payload(slot.block).verdict

    def _progress(self) -> None:
        if self.active and self.is_member and not self.epoch_pending:
            s = self.committed_seq + 1
            hi = self.high_watermark
            primary = self.primary
            while s <= hi:
                slot = self.slots.get(s)
                if slot is None or slot.rejected:
                    break
                parent = self._parent(s)
                if parent is None:
                    break
                if slot.block.header.prev_hash != parent[0]:
                    if not slot.from_new_view:
                        slot.rejected = True
                    break
                if not slot.verified:
                    verdict = self._check_block(slot, parent[1])
                    if verdict is Verdict.DEFER:
                        break
                    if verdict is Verdict.REJECT:
                        slot.rejected = True
                        self.rejected["block_rejected"] = self.rejected.get("block_rejected", 0) + 1
                        break
                    slot.verified = True
                key = (self.view, s, slot.digest)
                if self.me != primary and self.me not in self.prepares.get(key, {}):
                    # the guard returns the message already signed for (PREPARE, view, s), or
                    # None if that was for another digest (then this replica cannot help here)
                    sp = self._sign(SignedPrepare, Prepare(view=View(self.view), seq=Seq(s), digest=Hash32(slot.digest), replica=self.me))
                    if not isinstance(sp, SignedPrepare):
                        break
                    self._send(None, sp)
                    self.prepares.setdefault(key, {})[self.me] = sp
                if not slot.prepared:
                    votes = self.prepares.get(key, {})
                    if len(votes) < self.prepare_quorum:
                        break
                    chosen = sorted(votes.values(), key=lambda m: m.body.replica)[: self.prepare_quorum]
                    proof = PreparedProof(preprepare=slot.pp.preprepare, block=slot.block, prepares=tuple(chosen))
                    slot.prepared = True
                    self.prepared_certs[s] = proof
                    self._out.persist.append(proof)
                    sc = self._sign(SignedCommit, Commit(view=View(self.view), seq=Seq(s), digest=Hash32(slot.digest), replica=self.me))
                    if sc is not None:
                        self._send(None, sc)
                        self.commits.setdefault(key, {})[self.me] = sc  # type: ignore[assignment]
                s += 1
            self._commit_in_order()
        self._maybe_fetch()
        if self.ahead and not self._taking_up and (self.view, self.high_watermark) != self._ahead_mark:
            self._take_up_ahead()

    def _keep_ahead(self, message: ConsensusMessage, signed: SignedMessage, sender: bytes) -> None:
        b = signed.body  # type: ignore[attr-defined]
        hw = self.high_watermark
        if not (self.active and b.view == self.view and hw < b.seq <= hw + self.params.watermark_window):
            return
        if self._far_behind():
            return  # it fetches those heights (checking a kept pre-prepare's block costs a dry run)
        if type(signed) is SignedPrePrepare and b.replica != self.primary:
            return
        self.ahead.setdefault((_WINDOWED.index(type(signed)), b.seq, b.replica), (b.view, message, sender))

    def _far_behind(self) -> bool:
        """Some peer said it committed more than a window beyond this replica: it catches up
        by fetching, not by voting."""
        return max(self.peer_committed.values(), default=0) - self.committed_seq > self.params.watermark_window

    def _take_up_ahead(self) -> None:
        """Step the kept votes the window now reaches (checked as any peer message); drop
        those of another view or of a height committed or being fetched."""
        hw = self.high_watermark
        self._ahead_mark = (self.view, hw)
        if self._far_behind():
            self.ahead = {}
            return
        # heights committed or being fetched come as certified blocks: their votes would
        # only cost signature checks (and a pre-prepare's block its events' checks)
        floor = max(self.committed_seq, self.fetch_end)
        due: list[tuple[int, int, ConsensusMessage, bytes]] = []
        keep: dict[tuple[int, int, bytes], tuple[int, ConsensusMessage, bytes]] = {}
        for key, (view, message, sender) in self.ahead.items():
            kind, seq, _ = key
            if view != self.view or seq <= floor:
                continue
            if seq <= hw:
                due.append((seq, kind, message, sender))
            else:
                keep[key] = (view, message, sender)
        self.ahead = keep
        if not due:
            return
        self._taking_up = True
        try:
            for _, _, message, sender in sorted(due, key=lambda d: (d[0], d[1])):
                self.step(message, sender)
        finally:
            self._taking_up = False

    def _commit_in_order(self) -> None:
        while True:
            s = self.committed_seq + 1
            slot = self.slots.get(s)
            if slot is None or not slot.prepared:
                return
            votes = self.commits.get((self.view, s, slot.digest), {})
            if len(votes) < self.commit_quorum:
                return
            chosen = sorted(votes.values(), key=lambda m: m.body.replica)
            cert = CommitCertificate(
                view=View(self.view), height=Height(s), header_hash=Hash32(slot.digest),
                signatures=tuple(CommitSig(replica=m.body.replica, signature=m.signature) for m in chosen),
            )
            self._commit(CertifiedBlock(block=slot.block, certificate=cert))

    def _commit(self, cb: CertifiedBlock) -> None:
        s = cb.block.header.height
        require(s == self.committed_seq + 1, "blocks commit strictly in order")
        self.slots.pop(s, None)
        self.committed_seq = s
        self.committed_header = cb.block.header
        self.committed_hash = cb.certificate.header_hash
        self.next_seq = max(self.next_seq, s + 1)
        self._out.commits.append(cb)
        if len(self.held):
            self.held.release(sha256(e) for e in cb.block.events)
            hdr = cb.block.header
            if self.active and hdr.view == self.view and hdr.proposer == self.primary != self.me:
                room = (hdr.event_count < self.params.max_block_events
                        and 2 * sum(len(e) for e in cb.block.events) <= self.params.max_block_bytes)
                if self.held.on_block(self.ticks, has_room=room):
                    self._slow_vote = True
        self.vc_attempt = 0
        self.last_commit_tick = self.ticks
        if self.active:
            self.deadline = self.ticks + self._timeout()
        if s % self.params.checkpoint_interval == 0 and s > self.stable.seq and self.is_member and not self.epoch_pending:
            sc = self._sign(SignedCheckpoint, CheckpointBody(seq=Seq(s), digest=Hash32(self.committed_hash), replica=self.me))
            if isinstance(sc, SignedCheckpoint):
                self._send(None, sc)
                for peer in sorted(self.known_nodes() - set(self.validators.validators)):
                    self._send(peer, sc)  # next (and previous) sets: a new member switches on it
                self._add_checkpoint(sc)
        elif not self.is_member and is_boundary(s, self.params.checkpoint_interval):
            self._sync_epoch()

    # ------------------------------------------------------------------ checkpoints (4.3)

    def _on_checkpoint(self, msg: SignedCheckpoint) -> bool:
        b = msg.body
        two_l = 2 * self.params.watermark_window
        lo = max(self.stable.seq, self.committed_seq - two_l)
        if not lo < b.seq <= max(self.stable.seq, self.committed_seq) + two_l:
            return self._reject("outside_window")
        votes = self.checkpoints.get((b.seq, b.digest), {})
        if b.replica in votes:
            return self._reject("duplicate")
        if not self._first_vote(msg.PHASE, 0, b.seq, b.replica, b.digest):
            return self._reject("conflicting_vote")
        self.peer_committed[b.replica] = max(self.peer_committed.get(b.replica, 0), b.seq)
        self._add_checkpoint(msg)
        return True

    def _add_checkpoint(self, msg: SignedCheckpoint) -> None:
        b = msg.body
        votes = self.checkpoints.setdefault((b.seq, b.digest), {})
        votes[b.replica] = msg
        floor = self.committed_seq - 2 * self.params.watermark_window
        for old in [k for k in self.checkpoints if k[0] <= floor]:
            del self.checkpoints[old]
        vs = self.vset(b.seq)  # the set that voted on b.seq signs its checkpoint
        if vs is None:
            return
        quorum = quorum_size(vs)
        if len(votes) >= quorum and b.seq > self.stable.seq:
            chosen = tuple(sorted(votes.values(), key=lambda m: m.body.replica)[:quorum])
            self._make_stable(CheckpointProof(seq=b.seq, digest=b.digest, checkpoints=chosen))

    def _make_stable(self, proof: CheckpointProof) -> None:
        self.stable = proof
        self._out.persist.append(proof)
        s = proof.seq
        for d in (self.prepares, self.commits):
            for k in [k for k in d if k[1] <= s]:
                del d[k]
        for k2 in [k for k in self.checkpoints if k[0] <= s]:
            del self.checkpoints[k2]
        for k5 in [k for k in self.voted if k[2] <= s]:
            del self.voted[k5]
        for s2 in [x for x in self.prepared_certs if x <= s]:
            del self.prepared_certs[s2]
        for s3 in [x for x in self.slots if x <= s]:
            del self.slots[s3]
        for k3 in [k for k in self.signed if k[0] in _SEQ_PHASES and k[2] <= s]:
            del self.signed[k3]
        for k4 in [k for k in self.own_pp if k[1] <= s]:
            del self.own_pp[k4]
        self.next_seq = max(self.next_seq, s + 1)
        self._top_cache = None
        self._sync_epoch()
        self._gc_evidence()

    # ------------------------------------------------------------------ view change (4.4)

    def _start_view_change(self, new_view: int) -> None:
        if new_view <= self.view:
            return
        self.vc_attempt += 1
        self.view = new_view
        self.active = False
        self.slots.clear()
        self.new_view_msg = None
        self.deadline = self.ticks + self._timeout()
        key = (Domain.VIEW_CHANGE.value, new_view, 0)
        vc = self.signed.get(key)
        if vc is None:
            prepared = tuple(p for s, p in sorted(self.prepared_certs.items()) if s > self.stable.seq)
            body = ViewChangeBody(new_view=View(new_view), stable=self.stable, prepared=prepared, replica=self.me)
            vc = self._sign(SignedViewChange, body)
        if isinstance(vc, SignedViewChange):
            self._send(None, vc)
            self.view_changes.setdefault(new_view, {})[self.me] = vc
        self._gc_views()
        self._gc_evidence()
        self._maybe_new_view()

    def _gc_views(self) -> None:
        for v in [v for v in self.view_changes if v < self.view]:
            del self.view_changes[v]
        for d in (self.prepares, self.commits):
            for k in [k for k in d if k[0] != self.view]:
                del d[k]
        for k1 in [k for k in self.voted if k[0] != Domain.CHECKPOINT.value and k[1] != self.view]:
            del self.voted[k1]
        for k2 in [k for k in self.signed if k[0] != Domain.CHECKPOINT.value and k[1] < self.view - 1]:
            del self.signed[k2]
        for k3 in [k for k in self.own_pp if k[0] < self.view]:
            del self.own_pp[k3]

    def _verify_signed(self, msg: SignedMessage, signer: bytes, vs: ValidatorSet | None = None) -> bool:
        body = msg.body  # type: ignore[attr-defined]
        members = self.validators if vs is None else vs
        return body.replica == signer and signer in members and self.verifier.verify(
            signer, msg.signature, msg.DOMAIN, self.chain_id, body  # type: ignore[attr-defined]
        )

    def _check_view_change(self, vc: SignedViewChange) -> bool:
        b = vc.body
        if not self._verify_signed(vc, b.replica):
            return False
        st = b.stable
        # the sender's stable checkpoint starts the current set (same epoch) and is signed
        # by a quorum of the set that voted on it
        nxt = self.vset(st.seq + 1)
        if nxt is None or nxt.validators != self.validators.validators:
            return False
        if st.seq == 0:
            if st.digest != self.genesis_hash or st.checkpoints:
                return False
        else:
            signers = self.vset(st.seq)
            if signers is None or len(st.checkpoints) < quorum_size(signers):
                return False
            for c in st.checkpoints:
                if not self._verify_signed(c, c.body.replica, signers):
                    return False
        for p in b.prepared:
            pp = p.preprepare.body
            if pp.seq > st.seq + self.params.watermark_window:
                return False
            primary = self.validators.primary(pp.view)
            if pp.replica != primary or not self._verify_signed(p.preprepare, primary):
                return False
            if len(p.prepares) < self.prepare_quorum:
                return False
            for pr in p.prepares:
                if pr.body.replica == primary or not self._verify_signed(pr, pr.body.replica):
                    return False
        return True

    def _on_view_change(self, msg: SignedViewChange) -> bool:
        v = msg.body.new_view
        if v < self.view or (v == self.view and self.active) or v > self.view + MAX_VIEW_AHEAD:
            return self._reject("wrong_view")
        if msg.body.replica in self.view_changes.get(v, {}):
            return self._reject("duplicate")
        if not self._check_view_change(msg):
            return self._reject("bad_view_change")
        self.view_changes.setdefault(v, {})[msg.body.replica] = msg
        self._maybe_join()
        self._maybe_new_view()
        return True

    def _maybe_join(self) -> None:
        """4.5.2: f+1 replicas are in higher views (view changes or signed statuses): at
        least one correct replica is there, so move to the smallest of those views."""
        higher: dict[bytes, int] = {r: v for r, v in self.peer_view.items() if v > self.view}
        for view, vcs in self.view_changes.items():
            if view > self.view:
                for r in vcs:
                    higher[r] = min(higher.get(r, view), view)
        if len(higher) >= self.f + 1:
            self._start_view_change(min(higher.values()))

    def _maybe_new_view(self) -> None:
        if self.active or not self.is_primary or (Domain.NEW_VIEW.value, self.view, 0) in self.signed:
            return
        vcs = self.view_changes.get(self.view, {})
        if len(vcs) < self.quorum or self.me not in vcs:
            return
        chosen = [vcs[self.me], *[vcs[r] for r in sorted(vcs) if r != self.me][:self.quorum - 1]]
        if not self.rules.new_view_prepared_check:
            o: list[tuple[SignedPrePrepare, Block]] = []
        else:
            _, _, o = compute_new_view_o(chosen, self.genesis_hash, self.params.watermark_window)
        pps: list[PrePrepareMsg] = []
        for old, block in o:
            body = PrePrepare(view=View(self.view), seq=old.body.seq, digest=old.body.digest, replica=self.me)
            spp = self._sign(SignedPrePrepare, body, persist=False)
            if not isinstance(spp, SignedPrePrepare):
                return
            pps.append(PrePrepareMsg(preprepare=spp, block=block))
        nv_body = NewViewBody(view=View(self.view), view_changes=tuple(chosen), preprepares=tuple(pps), replica=self.me)
        nv = self._sign(SignedNewView, nv_body)
        if isinstance(nv, SignedNewView):
            self._send(None, nv)
            self._install_new_view(nv, persist=False)

    def _on_new_view(self, msg: SignedNewView) -> bool:
        b = msg.body
        if b.view < self.view or (b.view == self.view and self.active) or b.view > self.view + MAX_VIEW_AHEAD:
            return self._reject("wrong_view")
        if b.replica != self.validators.primary(b.view):
            return self._reject("not_primary")
        senders = {vc.body.replica for vc in b.view_changes}
        if len(senders) != len(b.view_changes) or len(senders) < self.quorum:
            return self._reject("bad_new_view")
        for vc in b.view_changes:
            if not self._check_view_change(vc):
                return self._reject("bad_new_view")
        if self.rules.new_view_prepared_check:
            _, _, o = compute_new_view_o(b.view_changes, self.genesis_hash, self.params.watermark_window)
            mine = [(old.body.seq, old.body.digest) for old, _ in o]
            theirs = [(pp.preprepare.body.seq, pp.preprepare.body.digest) for pp in b.preprepares]
            if mine != theirs:
                return self._reject("new_view_o_mismatch")
        for pp in b.preprepares:
            if not self._verify_signed(pp.preprepare, b.replica):
                return self._reject("bad_new_view")
        if b.view > self.view:
            self.view = b.view
            self.slots.clear()
        self._out.persist.append(msg)
        self._install_new_view(msg, persist=False)
        return True

    def _install_new_view(self, nv: SignedNewView, *, persist: bool) -> None:
        b = nv.body
        self.view = b.view
        self.active = True
        self.new_view_msg = nv
        self.slots.clear()
        # adopt a higher stable checkpoint carried by the view changes (before the window is used)
        best = max((vc.body.stable for vc in b.view_changes), key=lambda c: c.seq, default=None)
        if best is not None and best.seq > self.stable.seq:
            self._make_stable(best)
        h = max(vc.body.stable.seq for vc in b.view_changes) if b.view_changes else 0
        top = h
        for pp in b.preprepares:
            s = pp.preprepare.body.seq
            top = max(top, s)
            if s > self.committed_seq and self._in_window(s):
                self.slots[s] = _Slot(pp, from_new_view=True)
        if self.is_primary:
            for pp in b.preprepares:
                self.own_pp[(b.view, pp.preprepare.body.seq)] = pp
        # never below the stable checkpoint: the guard forgets keys at or below it
        self.next_seq = max(top, self.committed_seq, self.stable.seq) + 1
        self.deadline = self.ticks + self._timeout()
        self.held.restart(self.ticks)
        self._gc_views()
        self._gc_evidence()

    # ------------------------------------------------------------------ status, catch-up

    def _on_status(self, msg: SignedStatus) -> bool:
        b = msg.body
        self.peer_committed[b.replica] = max(self.peer_committed.get(b.replica, 0), b.committed_seq)
        outsider = b.replica not in self.validators
        # a known node that is behind hears from us (once per retransmit period): a
        # non-member our STATUS (so it learns what to fetch); a node that lacks our stable
        # checkpoint and could use it (a non-member, or one that has the block) its
        # signatures, relayed, so a new member can switch to the set it belongs to
        last = self.status_answered.get(b.replica, -(10**9))
        if self.is_member and self.ticks - last >= self.params.retransmit_ticks:
            answered = False
            if outsider and b.committed_seq < self.committed_seq:
                self._send(b.replica, self._status())
                answered = True
            if b.stable_seq < self.stable.seq and (outsider or b.committed_seq >= self.stable.seq):
                for c in self.stable.checkpoints:  # its own too: a restarted replica lost its vote
                    self._send(b.replica, c)
                answered = True
            if answered:
                if len(self.status_answered) >= 4 * MAX_VALIDATORS:
                    self.status_answered.clear()
                self.status_answered[b.replica] = self.ticks
        if outsider:
            return True
        if not self.is_member:
            # an observer follows the members' view, so it starts in it when it joins
            if b.active and b.view > self.view:
                self.peer_view[b.replica] = b.view
                views = sorted(self.peer_view.values(), reverse=True)
                if len(views) > self.f:
                    self.view = max(self.view, views[self.f])
            return True
        if b.view > self.view and b.view <= self.view + MAX_VIEW_AHEAD:
            self.peer_view[b.replica] = b.view
            self._maybe_join()
        behind = b.view < self.view or (b.view == self.view and not b.active)
        if self.active and self.new_view_msg is not None and behind:
            last = self.nv_relayed.get(b.replica, -(10**9))
            if self.ticks - last >= self.params.retransmit_ticks:
                self.nv_relayed[b.replica] = self.ticks
                self._send(b.replica, self.new_view_msg)
        return True

    def _maybe_fetch(self) -> None:
        target = max(self.stable.seq, max(self.peer_committed.values(), default=0))
        if target <= self.committed_seq:
            return
        if self.ticks - self.last_fetch_tick < 2 * self.params.retransmit_ticks:
            self._maybe_fetch_next(target)
            return
        if self.fetch_applied and self.committed_seq < self.fetch_end:
            # the requested range is still arriving and being applied: asking for it again
            # would make peers serve it twice. Check again one interval later; a range
            # that stops arriving is asked for again then (no fetched block applied).
            self.fetch_applied = 0
            self.last_fetch_tick = self.ticks
            return
        # a replica that is committing on its own does not fetch what is about to commit
        stalled = self.ticks - self.last_commit_tick >= self.params.retransmit_ticks
        if not stalled and target <= self.committed_seq + self.params.watermark_window:
            return
        self._request_blocks(self.committed_seq + 1, min(MAX_FETCH_BLOCKS, target - self.committed_seq))

    def _maybe_fetch_next(self, target: int) -> None:
        """Pipelined catch-up: once fetched blocks are being applied and the committed height
        has passed the middle of the last requested range, ask for the range after it now
        instead of after the fetch interval. Cannot loop: it needs a fetched block applied
        since the previous request (`fetch_applied`), i.e. progress, each time."""
        if self.fetch_applied == 0 or self.fetch_from == 0:
            return
        if self.committed_seq < (self.fetch_from + self.fetch_end) // 2:
            return
        lo = max(self.committed_seq, self.fetch_end) + 1
        hi = min(target, self.committed_seq + MAX_FETCH_BLOCKS)  # what `deliver_block` keeps
        if hi < lo:
            return
        self.fetch_early += 1
        self._request_blocks(lo, hi - lo + 1)

    def _request_blocks(self, from_height: int, count: int) -> None:
        peers = sorted(r for r, c in self.peer_committed.items() if c >= from_height)
        if not peers:
            peers = sorted(c.body.replica for c in self.stable.checkpoints if c.body.replica != self.me)
        if not peers:
            return
        self.fetch_count += 1
        peer = peers[self.fetch_count % len(peers)]
        self.last_fetch_tick = self.ticks
        self.fetch_from, self.fetch_end, self.fetch_applied = from_height, from_height + count - 1, 0
        self._out.fetches.append(FetchRequest(peer=ValidatorId(peer), from_height=from_height, count=count))

    def _apply_fetched(self, cb: CertifiedBlock) -> bool | None:
        """Commit a fetched block that is the next height: chained, its header naming V(h)
        and V(h + 1), its certificate verified against V(h). None: a set is unknown yet."""
        hdr = cb.block.header
        digest = hdr.hash()
        if hdr.prev_hash != self.committed_hash or hdr.chain_id != self.chain_id:
            return self._reject("fetched_not_chained")
        if self.rules.certificate_check:
            vs = self.vset(hdr.height)
            nxt = vs if not is_boundary(hdr.height, self.params.checkpoint_interval) else self.vset(hdr.height + 1)
            if vs is None or nxt is None:
                return None
            if hdr.validators_hash != self.vset_hash_of(vs) or hdr.next_validators_hash != self.vset_hash_of(nxt):
                return self._reject("fetched_bad_validators_hash")
            try:
                verify_certificate(cb.certificate, self.chain_id, vs, digest, self.verifier)
            except ProtocolError:
                return self._reject("fetched_bad_certificate")
        self._commit(cb)
        return True

    # ------------------------------------------------------------------ retransmission

    def _status(self) -> SignedStatus:
        status = Status(view=View(self.view), active=self.active and self.is_member, committed_seq=Seq(self.committed_seq),
                        stable_seq=Seq(self.stable.seq), replica=self.me)
        return SignedStatus(body=status, signature=self.signer.sign(Domain.PEER, self.chain_id, status))

    def _send_behind(self, seq: int, msg: ConsensusMessage) -> None:
        """Send a vote for `seq` again to the members whose STATUS or CHECKPOINT does not
        say they committed it (one that did holds a quorum of commits for it already)."""
        peers = [r for r in self.validators.validators if r != self.me]
        behind = [r for r in peers if self.peer_committed.get(r, 0) < seq]
        if len(behind) == len(peers):
            self._send(None, msg)
        else:
            for r in behind:
                self._send(r, msg)

    def _retransmit(self) -> None:
        status = self._status()
        if not self.is_member or self.epoch_pending:
            # observers (and a replica that does not know its set yet) only tell the
            # members where they are; members answer with their own STATUS
            for peer in self.validators.validators:
                if peer != self.me:
                    self._send(peer, status)
            return
        self._send(None, status)
        if not self.active:
            for v in (self.view - 1, self.view):
                vc = self.signed.get((Domain.VIEW_CHANGE.value, v, 0))
                if vc is not None:
                    self._send(None, vc)
            return
        for s in sorted(self.slots):
            slot = self.slots[s]
            if self.is_primary and not slot.from_new_view:
                own = self.own_pp.get((self.view, s))
                if own is not None:
                    # blocks are big: only to the backups whose PREPARE is still missing
                    have = self.prepares.get((self.view, s, slot.digest), {})
                    for r in self.validators.validators:
                        if r != self.me and r not in have:
                            self._send(r, own)
            m = self.signed.get((Domain.PREPARE.value, self.view, s))
            if m is not None:
                self._send(None, m)
        # commits, also of recently committed blocks: peers may still be collecting them
        for s in range(self.stable.seq + 1, self.high_watermark + 1):
            m = self.signed.get((Domain.COMMIT.value, self.view, s))
            if m is not None:
                self._send_behind(s, m)
        if self.is_primary and self.new_view_msg is not None and any(s.from_new_view for s in self.slots.values()):
            self._send(None, self.new_view_msg)
        last_cp = max((k for k in self.signed if k[0] == Domain.CHECKPOINT.value), default=None, key=lambda k: k[2])
        if last_cp is not None:
            self._send(None, self.signed[last_cp])
            for other in sorted(self.known_nodes() - set(self.validators.validators)):
                self._send(other, self.signed[last_cp])
