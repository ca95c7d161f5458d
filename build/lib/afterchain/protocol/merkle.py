"""Binary Merkle tree over a block's event hashes (RFC 6962 layout) and inclusion proofs.

- empty tree: ``SHA-256(b"")``
- leaf: ``SHA-256(0x00 || event_hash)`` where event_hash = SHA-256(encoded signed event)
- node: ``SHA-256(0x01 || left || right)``; for n > 1 leaves the left subtree holds the
  largest power of two strictly below n (so an odd leaf is never duplicated, which avoids
  the CVE-2012-2459 ambiguity).
An inclusion proof is the list of sibling hashes from the leaf up; `verify_inclusion`
recomputes the root from (index, size, leaf, path) exactly as RFC 6962 section 2.1.1.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from .codec import Message, message, sha256
from .errors import Code, ValidationError
from .types import Hash32

__all__ = ["EventProof", "inclusion_path", "merkle_root", "verify_inclusion"]

EMPTY_ROOT = sha256(b"")


def _leaf(h: bytes) -> bytes:
    return sha256(b"\x00" + h)


def _node(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _root(leaves: Sequence[bytes]) -> bytes:
    n = len(leaves)
    if n == 1:
        return leaves[0]
    k = _split(n)
    return _node(_root(leaves[:k]), _root(leaves[k:]))


def merkle_root(event_hashes: Sequence[bytes]) -> Hash32:
    if not event_hashes:
        return Hash32(EMPTY_ROOT)
    sha = hashlib.sha256  # `_leaf` and `_node` inlined: ~2 hashes per event, once per block
    level = [sha(b"\x00" + h).digest() for h in event_hashes]
    # Bottom-up is equivalent to the recursive split when pairing left to right and
    # promoting a lone last node; this keeps it iterative for large blocks.
    while len(level) > 1:
        pairs = iter(level)
        nxt = [sha(b"\x01" + left + right).digest() for left, right in zip(pairs, pairs, strict=False)]  # a lone last node waits
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return Hash32(level[0])


def inclusion_path(event_hashes: Sequence[bytes], index: int) -> tuple[Hash32, ...]:
    """Sibling hashes from the leaf at `index` up to the root."""
    if not 0 <= index < len(event_hashes):
        raise IndexError(index)
    path: list[Hash32] = []
    level = [_leaf(h) for h in event_hashes]
    i = index
    while len(level) > 1:
        sibling = i ^ 1
        if sibling < len(level):
            path.append(Hash32(level[sibling]))
        nxt = [_node(level[j], level[j + 1]) for j in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
        i //= 2
    return tuple(path)


def verify_inclusion(root: bytes, event_hash: bytes, index: int, size: int, path: Sequence[bytes]) -> bool:
    """True if `event_hash` is leaf `index` of a tree of `size` leaves with this root."""
    if not 0 <= index < size:
        return False
    h = _leaf(event_hash)
    i, last = index, size - 1
    it = iter(path)
    while last > 0:
        if i % 2 == 1:
            sib = next(it, None)
            if sib is None:
                return False
            h = _node(sib, h)
        elif i < last:
            sib = next(it, None)
            if sib is None:
                return False
            h = _node(h, sib)
        i //= 2
        last //= 2
    return next(it, None) is None and h == root


@message(tag=0x16)
class EventProof(Message):
    """Proof that an event is the `index`-th of the block whose header has `events_root`."""

    index: int
    size: int
    path: tuple[Hash32, ...]

    def validate(self) -> None:
        if not self.index < self.size:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, "index must be below size", field="index")
        if len(self.path) > 64:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, "path longer than 64", field="path")
