"""Building a genesis document with sensible defaults (used by `afterchain genesis`,
`scripts/cluster` and tests)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from afterchain.protocol.block import ValidatorSet
from afterchain.protocol.genesis import ConsensusParams, Genesis, LedgerParams, Member, VmAllowed, VmParams
from afterchain.protocol.types import PublicKey, ValidatorId

__all__ = ["DEFAULT_CONSENSUS", "DEFAULT_LEDGER", "DEFAULT_VM", "MemberSpec", "build_genesis"]

DAY_MS = 24 * 3600 * 1000

DEFAULT_CONSENSUS = ConsensusParams(
    checkpoint_interval=16,
    watermark_window=64,
    view_timeout_ms=2000,
    view_timeout_max_ms=30_000,
    max_block_events=2000,
    max_block_bytes=4 * 1024 * 1024,
    block_interval_ms=100,
)
DEFAULT_VM = VmParams(
    vms=(VmAllowed(vm_id="lua", version=1), VmAllowed(vm_id="wasm", version=1)),
    max_gas_per_call=10_000_000,
    max_gas_per_block=200_000_000,
    hook_gas_limit=1_000_000,
)
DEFAULT_LEDGER = LedgerParams(auto_close_delay_ms=7 * DAY_MS, default_return_window_ms=30 * DAY_MS, max_deadlines_per_block=1000)


@dataclass(frozen=True, slots=True)
class MemberSpec:
    org_id: str
    name: str
    roles: tuple[str, ...]
    keys: tuple[bytes, ...]
    balance: int = 0


def build_genesis(
    *,
    chain_id: str,
    genesis_time_ms: int,
    validators: Sequence[bytes],
    members: Sequence[MemberSpec],
    consensus: ConsensusParams = DEFAULT_CONSENSUS,
    vm: VmParams = DEFAULT_VM,
    ledger: LedgerParams = DEFAULT_LEDGER,
) -> Genesis:
    g = Genesis(
        chain_id=chain_id,
        genesis_time_ms=genesis_time_ms,
        validators=ValidatorSet(validators=tuple(ValidatorId(v) for v in validators)),
        members=tuple(
            Member(org_id=m.org_id, name=m.name, roles=tuple(sorted(set(m.roles))),
                   keys=tuple(PublicKey(k) for k in m.keys), balance=m.balance)
            for m in sorted(members, key=lambda m: m.org_id)
        ),
        consensus=consensus,
        vm=vm,
        ledger=ledger,
    )
    g.validate()
    g.validators.validate()
    return g
