"""The application boundary (in the spirit of CometBFT's ABCI): consensus orders opaque
event bytes and never reads them.

The replica calls only these methods, synchronously, and never mutates anything
through them. Execution is the shell's job: when `Ready.commits` hands it a block and its
certificate, the shell stores the block, executes it (updating the object behind this
interface), and later calls `Replica.executed(height)` so deferred pre-prepares are
re-checked.

- `build_payload(max_events, max_bytes)`: the encoded signed events for the next block
  (the primary only); may be empty.
- `verify_payload(block)`: `Verdict.ACCEPT`, `Verdict.REJECT` (with a reason) or
  `Verdict.DEFER` (cannot decide yet). Consensus itself checks the header (chain, height,
  time, state root); this checks only the events (decodable, signatures, nonces...).
- `state_root_at(height)`: the state root after executing block `height` (0 = genesis),
  or None if that height is not executed yet or no longer kept.
- `executed_height()`: the highest executed height.
- `validators_for(height)`: V(height), the set that votes on `height` (see
  `consensus.epochs`), or None while unknown (block `set_source_height(height)` not yet
  executed here). Deterministic: the same answer on every honest node. An application
  without this method keeps the genesis set forever (the replica treats it so).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from afterchain.protocol.block import Block, ValidatorSet

__all__ = ["Application", "Verdict", "VerifyResult"]


class Verdict(Enum):
    ACCEPT = "accept"
    REJECT = "reject"
    DEFER = "defer"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    verdict: Verdict
    reason: str = ""

    @classmethod
    def accept(cls) -> VerifyResult:
        return cls(Verdict.ACCEPT)

    @classmethod
    def reject(cls, reason: str) -> VerifyResult:
        return cls(Verdict.REJECT, reason)


class Application(Protocol):
    def build_payload(self, max_events: int, max_bytes: int) -> tuple[bytes, ...]: ...

    def verify_payload(self, block: Block) -> VerifyResult: ...

    def state_root_at(self, height: int) -> bytes | None: ...

    def executed_height(self) -> int: ...

    def validators_for(self, height: int) -> ValidatorSet | None:
        """V(height), or None while unknown (block set_source_height(height) not yet
        executed here). Must be deterministic: same answer on every honest node."""
        ...
