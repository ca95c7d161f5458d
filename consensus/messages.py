"""Wire and log messages of the PBFT core (tags 0x40-0x5F).

Every vote is a small *body* (view, seq, digest, replica) signed under its own domain
(`Domain.PREPREPARE`, `PREPARE`, `COMMIT`, `CHECKPOINT`, `VIEW_CHANGE`, `NEW_VIEW`; `Status`
uses `Domain.PEER`) and carried in a ``Signed*`` wrapper. The COMMIT body is
`protocol.block.Commit`, so a commit certificate is exactly the collected COMMIT
signatures. A pre-prepare travels with its block in `PrePrepareMsg`; between nodes it
usually travels as a `CompactPrePrepareMsg`, which names the block's events by hash (the
node turns it back into a `PrePrepareMsg`, asking the sender for the events it lacks with
`EventsRequest`; a replica never takes the compact form itself).

Invariants checked by the stateless `validate()` methods (nothing here needs keys or
replica state): heights/sequence numbers start at 1, a prepared proof's prepares all name
the pre-prepare's (view, seq, digest) from distinct replicas, a prepared proof's block
hashes to the digest, and every tuple is bounded (`MAX_VALIDATORS`, `MAX_WINDOW`).
Signature checks, quorum sizes and membership need the validator set and live in
`consensus.replica`.
"""

from __future__ import annotations

from typing import ClassVar

from afterchain.protocol.block import MAX_BLOCK_EVENTS, MAX_VALIDATORS, Block, BlockHeader, Commit, CommitCertificate
from afterchain.protocol.codec import Message, message
from afterchain.protocol.crypto import Domain
from afterchain.protocol.errors import Code, ValidationError
from afterchain.protocol.merkle import merkle_root
from afterchain.protocol.types import Hash32, Height, Seq, Signature, ValidatorId, View

__all__ = [
    "MAX_WINDOW",
    "BlockRequest",
    "BlockResponse",
    "CertifiedBlock",
    "CheckpointBody",
    "CheckpointProof",
    "CompactPrePrepareMsg",
    "ConsensusMessage",
    "EventsRequest",
    "EventsResponse",
    "Evidence",
    "NewViewBody",
    "PrePrepare",
    "PrePrepareMsg",
    "Prepare",
    "PreparedProof",
    "SignedCheckpoint",
    "SignedCommit",
    "SignedMessage",
    "SignedNewView",
    "SignedPrePrepare",
    "SignedPrepare",
    "SignedStatus",
    "SignedViewChange",
    "Status",
    "ViewChangeBody",
]

MAX_WINDOW = 1024
"""Largest watermark window (and so the most prepared proofs in a view change)."""
MAX_FETCH_BLOCKS = 256
"""Most blocks asked for or returned by one catch-up request."""


def _check_seq(seq: int, field: str = "seq") -> None:
    if seq < 1:
        raise ValidationError(Code.FIELD_OUT_OF_RANGE, "sequence numbers start at 1", field=field)


class ConsensusMessage(Message):
    """Base of every message a `Replica.step` accepts."""

    __slots__ = ()


class SignedMessage(ConsensusMessage):
    """A body and its signature by `body.replica` under `DOMAIN` (see `phase_key`)."""

    __slots__ = ()
    DOMAIN: ClassVar[Domain]
    PHASE: ClassVar[str]


# --------------------------------------------------------------------------- bodies


@message(tag=0x41)
class PrePrepare(Message):
    view: View
    seq: Seq
    digest: Hash32
    replica: ValidatorId

    def validate(self) -> None:
        _check_seq(self.seq)


@message(tag=0x42)
class Prepare(Message):
    view: View
    seq: Seq
    digest: Hash32
    replica: ValidatorId

    def validate(self) -> None:
        _check_seq(self.seq)


@message(tag=0x43)
class CheckpointBody(Message):
    """`replica` has committed the chain up to `seq`, whose header hash is `digest`."""

    seq: Seq
    digest: Hash32
    replica: ValidatorId

    def validate(self) -> None:
        _check_seq(self.seq)


@message(tag=0x44)
class Status(Message):
    """Periodic heartbeat: lets peers relay a NEW-VIEW or serve catch-up."""

    view: View
    active: bool
    committed_seq: Seq
    stable_seq: Seq
    replica: ValidatorId


# --------------------------------------------------------------------------- signed wrappers


@message(tag=0x48)
class SignedPrePrepare(SignedMessage):
    DOMAIN = Domain.PREPREPARE
    PHASE = Domain.PREPREPARE.value
    body: PrePrepare
    signature: Signature


@message(tag=0x49)
class SignedPrepare(SignedMessage):
    DOMAIN = Domain.PREPARE
    PHASE = Domain.PREPARE.value
    body: Prepare
    signature: Signature


@message(tag=0x4A)
class SignedCommit(SignedMessage):
    DOMAIN = Domain.COMMIT
    PHASE = Domain.COMMIT.value
    body: Commit
    signature: Signature

    def validate(self) -> None:
        _check_seq(self.body.seq, "body.seq")


@message(tag=0x4B)
class SignedCheckpoint(SignedMessage):
    DOMAIN = Domain.CHECKPOINT
    PHASE = Domain.CHECKPOINT.value
    body: CheckpointBody
    signature: Signature


@message(tag=0x4C)
class SignedStatus(SignedMessage):
    DOMAIN = Domain.PEER
    PHASE = Domain.PEER.value
    body: Status
    signature: Signature


@message(tag=0x4D)
class PrePrepareMsg(ConsensusMessage):
    """A signed pre-prepare and the block whose header hash is its digest."""

    preprepare: SignedPrePrepare
    block: Block

    def validate(self) -> None:
        if self.block.header.hash() != self.preprepare.body.digest:
            raise ValidationError(Code.FIELD_INVALID, "the block does not hash to the digest", field="block")
        if self.block.header.height != int(self.preprepare.body.seq):
            raise ValidationError(Code.FIELD_INVALID, "block height is not the sequence number", field="block.header.height")


@message(tag=0x4E)
class PreparedProof(Message):
    """P-set entry (Castro & Liskov 4.4): a pre-prepare, its block and 2f matching prepares."""

    preprepare: SignedPrePrepare
    block: Block
    prepares: tuple[SignedPrepare, ...]

    def validate(self) -> None:
        pp = self.preprepare.body
        if len(self.prepares) > MAX_VALIDATORS:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, "too many prepares", field="prepares")
        seen: set[bytes] = set()
        for i, p in enumerate(self.prepares):
            b = p.body
            if (b.view, b.seq, b.digest) != (pp.view, pp.seq, pp.digest):
                raise ValidationError(Code.FIELD_INVALID, "prepare does not match the pre-prepare", field=f"prepares[{i}]")
            if b.replica in seen:
                raise ValidationError(Code.FIELD_INVALID, "a replica prepares twice", field=f"prepares[{i}]")
            seen.add(b.replica)
        if self.block.header.hash() != pp.digest or self.block.header.height != int(pp.seq):
            raise ValidationError(Code.FIELD_INVALID, "the block is not the pre-prepared one", field="block")


@message(tag=0x4F)
class CheckpointProof(Message):
    """A stable checkpoint: a quorum of matching signed CHECKPOINT messages."""

    seq: Seq
    digest: Hash32
    checkpoints: tuple[SignedCheckpoint, ...]

    def validate(self) -> None:
        if len(self.checkpoints) > MAX_VALIDATORS:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, "too many checkpoints", field="checkpoints")
        seen: set[bytes] = set()
        for i, c in enumerate(self.checkpoints):
            if (c.body.seq, c.body.digest) != (self.seq, self.digest):
                raise ValidationError(Code.FIELD_INVALID, "checkpoint does not match", field=f"checkpoints[{i}]")
            if c.body.replica in seen:
                raise ValidationError(Code.FIELD_INVALID, "a replica signs twice", field=f"checkpoints[{i}]")
            seen.add(c.body.replica)


@message(tag=0x50)
class ViewChangeBody(Message):
    """VIEW-CHANGE for `new_view`: the sender's stable checkpoint (seq 0 = genesis, no proof)
    and its prepared proofs above it (the P set)."""

    new_view: View
    stable: CheckpointProof
    prepared: tuple[PreparedProof, ...]
    replica: ValidatorId

    def validate(self) -> None:
        if self.new_view < 1:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, "a view change goes to view >= 1", field="new_view")
        if len(self.prepared) > MAX_WINDOW:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, f"at most {MAX_WINDOW} prepared proofs", field="prepared")
        seqs = [p.preprepare.body.seq for p in self.prepared]
        if len(set(seqs)) != len(seqs):
            raise ValidationError(Code.FIELD_INVALID, "two prepared proofs for one sequence number", field="prepared")
        for i, p in enumerate(self.prepared):
            if p.preprepare.body.seq <= self.stable.seq:
                raise ValidationError(Code.FIELD_INVALID, "prepared proof at or below the stable checkpoint", field=f"prepared[{i}]")
            if p.preprepare.body.view >= self.new_view:
                raise ValidationError(Code.FIELD_INVALID, "prepared proof from a view not below new_view", field=f"prepared[{i}]")


@message(tag=0x51)
class SignedViewChange(SignedMessage):
    DOMAIN = Domain.VIEW_CHANGE
    PHASE = Domain.VIEW_CHANGE.value
    body: ViewChangeBody
    signature: Signature


@message(tag=0x52)
class NewViewBody(Message):
    """NEW-VIEW: 2f+1 view changes (V) and the re-issued pre-prepares (O) with blocks."""

    view: View
    view_changes: tuple[SignedViewChange, ...]
    preprepares: tuple[PrePrepareMsg, ...]
    replica: ValidatorId

    def validate(self) -> None:
        if len(self.view_changes) > MAX_VALIDATORS:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, "too many view changes", field="view_changes")
        if len(self.preprepares) > MAX_WINDOW:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, "too many pre-prepares", field="preprepares")
        for i, vc in enumerate(self.view_changes):
            if vc.body.new_view != self.view:
                raise ValidationError(Code.FIELD_INVALID, "view change for another view", field=f"view_changes[{i}]")
        for i, pp in enumerate(self.preprepares):
            if pp.preprepare.body.view != self.view or pp.preprepare.body.replica != self.replica:
                raise ValidationError(Code.FIELD_INVALID, "pre-prepare not issued by this new view", field=f"preprepares[{i}]")


@message(tag=0x53)
class SignedNewView(SignedMessage):
    DOMAIN = Domain.NEW_VIEW
    PHASE = Domain.NEW_VIEW.value
    body: NewViewBody
    signature: Signature


# --------------------------------------------------------------------------- evidence, catch-up


@message(tag=0x58)
class Evidence(Message):
    """Two different messages signed by one validator for one (phase, view, seq)."""

    first: SignedMessage
    second: SignedMessage

    def validate(self) -> None:
        if type(self.first) is not type(self.second) or self.first == self.second:
            raise ValidationError(Code.FIELD_INVALID, "evidence needs two different messages of one kind", field="second")


@message(tag=0x59)
class CertifiedBlock(Message):
    block: Block
    certificate: CommitCertificate

    def validate(self) -> None:
        if self.certificate.height != self.block.header.height:
            raise ValidationError(Code.FIELD_INVALID, "certificate for another height", field="certificate.height")


@message(tag=0x5A)
class BlockRequest(Message):
    """Catch-up: ask a peer for committed blocks ``from_height .. from_height + count - 1``."""

    from_height: Height
    count: int

    def validate(self) -> None:
        _check_seq(self.from_height, "from_height")
        if not 1 <= self.count <= MAX_FETCH_BLOCKS:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, f"count is 1..{MAX_FETCH_BLOCKS}", field="count")


@message(tag=0x5B)
class BlockResponse(Message):
    blocks: tuple[CertifiedBlock, ...]

    def validate(self) -> None:
        if len(self.blocks) > MAX_FETCH_BLOCKS:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, f"at most {MAX_FETCH_BLOCKS} blocks", field="blocks")


@message(tag=0x5C)
class CompactPrePrepareMsg(ConsensusMessage):
    """A `PrePrepareMsg` whose block's events are named by their SHA-256 (`event_hashes`, in
    block order) instead of carried, except `prefilled`: encoded events the sender had not
    gossiped yet when it sent this (any order). The receiver takes the other events from
    those it already has (gossip) and asks the sender for the rest (`EventsRequest`).

    Stateless checks: the header hashes to the pre-prepare's digest, its height is the
    sequence number, it counts `len(event_hashes)` events and its `events_root` is the
    Merkle root of `event_hashes`. So the block rebuilt from events with those hashes is
    the block the pre-prepare signs."""

    preprepare: SignedPrePrepare
    header: BlockHeader
    event_hashes: tuple[Hash32, ...]
    prefilled: tuple[bytes, ...]

    def validate(self) -> None:
        if self.header.hash() != self.preprepare.body.digest:
            raise ValidationError(Code.FIELD_INVALID, "the header does not hash to the digest", field="header")
        if self.header.height != int(self.preprepare.body.seq):
            raise ValidationError(Code.FIELD_INVALID, "block height is not the sequence number", field="header.height")
        if len(self.event_hashes) != self.header.event_count:
            raise ValidationError(Code.FIELD_INVALID, f"header says {self.header.event_count} events, "
                                  f"{len(self.event_hashes)} are named", field="event_hashes")
        if len(self.prefilled) > len(self.event_hashes):
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, "more prefilled events than the block has", field="prefilled")
        if merkle_root(self.event_hashes) != self.header.events_root:
            raise ValidationError(Code.FIELD_INVALID, "events_root does not match event_hashes", field="event_hashes")

    @classmethod
    def of(cls, msg: PrePrepareMsg, prefilled: tuple[bytes, ...] = ()) -> CompactPrePrepareMsg:
        return cls(preprepare=msg.preprepare, header=msg.block.header,
                   event_hashes=msg.block.event_hashes(), prefilled=prefilled)  # type: ignore[arg-type]

    def expand(self, events: tuple[bytes, ...]) -> PrePrepareMsg:
        """The `PrePrepareMsg`, given the block's events in order. The caller guarantees
        SHA-256(events[i]) == event_hashes[i] (it found each event by that hash), so with
        this message's checks the result is valid; the hashes are not computed again."""
        block = Block(header=self.header, events=events)
        object.__setattr__(block, "_event_hashes", tuple(self.event_hashes))
        return PrePrepareMsg(preprepare=self.preprepare, block=block)


MAX_EVENTS_REQUESTED = MAX_BLOCK_EVENTS
"""Most event hashes in one `EventsRequest`."""


@message(tag=0x5D)
class EventsRequest(Message):
    """Ask a peer for encoded events by their SHA-256 (those of a compact pre-prepare that
    the asker lacks)."""

    hashes: tuple[Hash32, ...]

    def validate(self) -> None:
        if len(self.hashes) > MAX_EVENTS_REQUESTED:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, f"at most {MAX_EVENTS_REQUESTED} hashes", field="hashes")


@message(tag=0x5E)
class EventsResponse(Message):
    """The encoded events of an `EventsRequest` the peer has, in any order (the asker
    checks each one's hash; missing ones are left out)."""

    events: tuple[bytes, ...]


def phase_key(msg: SignedMessage) -> tuple[str, int, int, bytes]:
    """(phase, view, seq, digest) of a signed message: two messages with one (phase, view,
    seq) and different digests are an equivocation."""
    body = msg.body  # type: ignore[attr-defined]
    cls = type(msg)
    if cls is SignedPrepare or cls is SignedCommit or cls is SignedPrePrepare:
        return (msg.PHASE, body.view, body.seq, body.digest)
    if cls is SignedCheckpoint:
        return (msg.PHASE, 0, body.seq, body.digest)
    if cls is SignedViewChange:
        return (msg.PHASE, body.new_view, 0, body.hash())
    if cls is SignedNewView:
        return (msg.PHASE, body.view, 0, body.hash())
    return (msg.PHASE, body.view, body.committed_seq, body.hash())

