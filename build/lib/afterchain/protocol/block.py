"""Validator sets, block headers, blocks, COMMIT votes and commit certificates.

Invariants:
- a `ValidatorSet` has n >= 1 distinct 32-byte keys in a fixed order; f = (n - 1) // 3 and
  a quorum is n - f, which is 2f + 1 when n = 3f + 1 (any two quorums share f + 1
  validators, so at least one correct one, for every n); the primary of view v is
  ``validators[v % n]``;
- a header's hash is SHA-256 of its canonical encoding; `Block.validate` checks the
  header's `events_root` and `event_count` against the events it carries;
- `Block.event_hashes()` is SHA-256 of each encoded event, computed once per block value
  and cached on it (the Merkle root, the node's caches of verified events and its commit
  path all key on these hashes);
- a `CommitCertificate` for a header is at least a quorum of valid COMMIT signatures
  over ``Commit(view, seq=height, digest=header hash, replica)``, from distinct members
  of the validator set that the header's parent announced (`validators_hash`).
"""

from __future__ import annotations

from .codec import Message, message, sha256
from .crypto import Domain, sign_bytes, validate_chain_id, verify_raw
from .errors import Code, SignatureError, ValidationError
from .merkle import merkle_root
from .types import Hash32, Height, Seq, Signature, ValidatorId, View

__all__ = [
    "ZERO_HASH",
    "Block",
    "BlockHeader",
    "Commit",
    "CommitCertificate",
    "CommitSig",
    "ValidatorSet",
]

ZERO_HASH = Hash32(b"\0" * 32)
MAX_VALIDATORS = 256
MAX_BLOCK_EVENTS = 100_000


@message(tag=0x10)
class ValidatorSet(Message):
    """The ordered validators; position i is primary of views v with v % n == i."""

    validators: tuple[ValidatorId, ...]

    def validate(self) -> None:
        n = len(self.validators)
        if not 1 <= n <= MAX_VALIDATORS:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, f"a validator set has 1..{MAX_VALIDATORS} members, got {n}", field="validators")
        if len(set(self.validators)) != n:
            raise ValidationError(Code.FIELD_INVALID, "a validator is listed twice", field="validators")

    @property
    def n(self) -> int:
        return len(self.validators)

    @property
    def f(self) -> int:
        return (len(self.validators) - 1) // 3

    @property
    def quorum(self) -> int:
        """n - f: any two quorums share at least f + 1 validators, one of them correct.
        (2f + 1 is the same when n = 3f + 1 and too small otherwise: for n = 5 two sets of
        3 can share just one, possibly faulty, validator.)"""
        return self.n - self.f

    def primary(self, view: int) -> ValidatorId:
        return self.validators[view % len(self.validators)]

    def index(self, validator: bytes) -> int | None:
        try:
            return self.validators.index(ValidatorId(validator))
        except ValueError:
            return None

    def __contains__(self, validator: object) -> bool:
        return validator in self.validators


@message(tag=0x11)
class BlockHeader(Message):
    """What a commit certificate signs (through its hash).

    `state_root` is the application's state root after executing block `state_height`
    (``state_height < height``): with several blocks in flight the proposer commits to
    the latest state it has executed. `validators_hash` is the hash of the set that votes
    on this block; `next_validators_hash` the set that votes on the next one.
    """

    chain_id: str
    height: Height
    view: View
    time_ms: int
    prev_hash: Hash32
    events_root: Hash32
    event_count: int
    state_height: Height
    state_root: Hash32
    validators_hash: Hash32
    next_validators_hash: Hash32
    proposer: ValidatorId

    def validate(self) -> None:
        validate_chain_id(self.chain_id)
        if self.height < 1:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, "block heights start at 1", field="height")
        if self.state_height >= self.height:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, "state_height must be below height", field="state_height")
        if self.event_count > MAX_BLOCK_EVENTS:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, f"at most {MAX_BLOCK_EVENTS} events per block", field="event_count")


class _CachedEventHashes(Message):
    """Holds a `Block`'s cached event hashes (not a field: equality and `replace` ignore it)."""

    __slots__ = ("_event_hashes",)
    _event_hashes: tuple[bytes, ...]


_SET = object.__setattr__


@message(tag=0x12)
class Block(_CachedEventHashes):
    """A header and the encoded signed events it orders (opaque to consensus)."""

    header: BlockHeader
    events: tuple[bytes, ...]

    def validate(self) -> None:
        if len(self.events) != self.header.event_count:
            raise ValidationError(Code.FIELD_INVALID, f"header says {self.header.event_count} events, block has {len(self.events)}", field="header.event_count")
        if merkle_root(self.event_hashes()) != self.header.events_root:
            raise ValidationError(Code.FIELD_INVALID, "events_root does not match the events", field="header.events_root")

    def event_hashes(self) -> tuple[bytes, ...]:
        """SHA-256 of each encoded event, in order (computed once per block value)."""
        try:
            return self._event_hashes
        except AttributeError:
            pass
        hashes = tuple(map(sha256, self.events))
        _SET(self, "_event_hashes", hashes)
        return hashes


@message(tag=0x13)
class Commit(Message):
    """PBFT COMMIT vote: replica says the block with header hash `digest` commits at `seq`."""

    view: View
    seq: Seq
    digest: Hash32
    replica: ValidatorId


@message(tag=0x14)
class CommitSig(Message):
    replica: ValidatorId
    signature: Signature


@message(tag=0x15)
class CommitCertificate(Message):
    """A quorum (n - f) of COMMIT signatures for one (view, height, header hash)."""

    view: View
    height: Height
    header_hash: Hash32
    signatures: tuple[CommitSig, ...]

    def validate(self) -> None:
        if len({s.replica for s in self.signatures}) != len(self.signatures):
            raise ValidationError(Code.FIELD_INVALID, "a validator signs twice", field="signatures")

    def verify(self, chain_id: str, validators: ValidatorSet, header_hash: bytes | None = None) -> None:
        """Raise `SignatureError` / `ValidationError` unless this certifies the header.

        Checks: the hash matches (if given), every signer is a distinct member of
        `validators`, every signature verifies, and there are at least a quorum.
        """
        if header_hash is not None and header_hash != self.header_hash:
            raise ValidationError(Code.FIELD_INVALID, "certificate is for another header", field="header_hash")
        seen: set[bytes] = set()
        for i, sig in enumerate(self.signatures):
            if sig.replica not in validators:
                raise SignatureError(Code.BAD_SIGNATURE, f"signer {sig.replica.hex()[:16]}... is not a validator", field=f"signatures[{i}].replica")
            if sig.replica in seen:
                raise ValidationError(Code.FIELD_INVALID, "a validator signs twice", field=f"signatures[{i}].replica")
            seen.add(sig.replica)
            vote = Commit(view=self.view, seq=Seq(self.height), digest=self.header_hash, replica=sig.replica)
            if not verify_raw(sig.replica, sig.signature, sign_bytes(Domain.COMMIT, chain_id, vote)):
                raise SignatureError(Code.BAD_SIGNATURE, f"COMMIT signature of {sig.replica.hex()[:16]}... does not verify", field=f"signatures[{i}].signature")
        if len(seen) < validators.quorum:
            raise SignatureError(Code.BAD_SIGNATURE, f"{len(seen)} signatures, a quorum is {validators.quorum} of {validators.n}", field="signatures")
