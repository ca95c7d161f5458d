"""Distinct scalar types of the protocol.

They are `NewType`s: free at run time, distinct for mypy. Lengths of the byte types are
enforced by the codec (see `FIXED_LENGTHS`), so a decoded value always has the right size.
"""

from __future__ import annotations

from typing import NewType

__all__ = [
    "FIXED_LENGTHS",
    "MAX_UINT64",
    "Hash32",
    "Height",
    "PublicKey",
    "Seq",
    "Signature",
    "ValidatorId",
    "View",
]

Height = NewType("Height", int)
"""Block height; genesis state is height 0, the first block is height 1."""
View = NewType("View", int)
"""PBFT view number; the primary of view v is validators[v % n]."""
Seq = NewType("Seq", int)
"""PBFT sequence number; equal to the height of the block it orders."""
Hash32 = NewType("Hash32", bytes)
"""A SHA-256 digest, 32 bytes."""
PublicKey = NewType("PublicKey", bytes)
"""An Ed25519 public key, 32 bytes."""
ValidatorId = NewType("ValidatorId", bytes)
"""A validator is identified by its Ed25519 public key, 32 bytes."""
Signature = NewType("Signature", bytes)
"""An Ed25519 signature, 64 bytes."""

MAX_UINT64 = 2**64 - 1

FIXED_LENGTHS: dict[object, int] = {
    Hash32: 32,
    PublicKey: 32,
    ValidatorId: 32,
    Signature: 64,
}
