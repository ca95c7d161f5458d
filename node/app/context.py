"""What every event handler of the ledger works with: the environment, the event context,
the rejection, and the results of events and blocks.

A handler is ``handler(env, ctx, body) -> detail``: it reads and writes state only through
``env.state`` (`node.app.state.State`), checks everything before its first write and
raises `Rejected` (a stable reason code, `node.app.codes.Reason`) to refuse the event, so a
refusal never leaves a partial change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from afterchain.node.app.codes import OK
from afterchain.node.app.hooks import AgreementHooks, ContractHost, PolicyTermsHooks
from afterchain.node.app.state import State
from afterchain.protocol.block import ValidatorSet
from afterchain.protocol.codec import encode
from afterchain.protocol.genesis import Genesis, LedgerParams, VmParams

if TYPE_CHECKING:
    from afterchain.node.app.evidence import EvidenceCheck
    from afterchain.node.app.schedule import Schedule

__all__ = ["BlockResult", "Ctx", "Env", "Handler", "Outcome", "Rejected"]


class Rejected(Exception):
    """An event refused by its handler (raised before any write)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


@dataclass(slots=True)
class Ctx:
    """The event being executed: its id, signer and the block it is in."""

    event_id: bytes
    sender: bytes
    org: str | None  # the sender's organisation, None for a customer
    account: str  # the sender's account (org id or cust:hex)
    time_ms: int
    height: int


@dataclass(slots=True)
class Env:
    """The ledger's services and the adopted parameters, shared by the handlers.

    `params` / `vm_params` are the adopted ledger and VM parameters, reloaded from state at
    each block start (`governance.load_params`); `block_gas` and `block_breaches` count the
    current block's contract gas and SLA breaches."""

    state: State
    genesis: Genesis
    schedule: Schedule
    hooks: AgreementHooks | None
    contracts: ContractHost | None
    evidence_check: EvidenceCheck | None
    params: LedgerParams
    vm_params: VmParams
    params_raw: tuple[bytes, bytes]
    """The encodings `params` / `vm_params` were decoded from."""
    vset_cache: tuple[bytes, ValidatorSet]
    """(encoding, decoded) of the last adopted validator set read."""
    default_hooks: PolicyTermsHooks = field(default_factory=PolicyTermsHooks)
    code_cache: dict[bytes, bytes] = field(default_factory=dict)
    """Contract code by hash (bounded)."""
    block_gas: int = 0
    block_breaches: int = 0
    node_keys_changed: bool = False
    """The current block registered or removed member node keys (`node.app.nodes`)."""

    @classmethod
    def create(cls, state: State, genesis: Genesis, schedule: Schedule, hooks: AgreementHooks | None,
               contracts: ContractHost | None, evidence_check: EvidenceCheck | None) -> Env:
        return cls(state=state, genesis=genesis, schedule=schedule, hooks=hooks, contracts=contracts,
                   evidence_check=evidence_check, params=genesis.ledger, vm_params=genesis.vm,
                   params_raw=(encode(genesis.ledger), encode(genesis.vm)),
                   vset_cache=(encode(genesis.validators), genesis.validators))

    @property
    def chain_id(self) -> str:
        return self.genesis.chain_id

    @property
    def checkpoint_interval(self) -> int:
        """K: fixed at genesis."""
        return self.genesis.consensus.checkpoint_interval


Handler = Callable[[Env, Ctx, Any], Any]


@dataclass(slots=True)
class Outcome:
    """What happened to one event: ``code == "ok"`` or a reason code, with a message.

    Treat it as immutable. Not a frozen dataclass: one is built per event on every node,
    and a frozen dataclass's ``__init__`` (``object.__setattr__`` per field) is several
    times slower."""

    event_id: bytes
    height: int
    index: int
    code: str
    message: str
    detail: Any = None

    @property
    def accepted(self) -> bool:
        return self.code == OK


@dataclass(frozen=True, slots=True)
class BlockResult:
    height: int
    time_ms: int
    state_root: bytes
    outcomes: tuple[Outcome, ...]
    deadlines_processed: int
    sla_breaches: int = 0
    """SLA deadlines of this block that passed unmet (tickets escalated)."""
    proposals_expired: int = 0
    """Governance proposals this block expired (deadline passed without a decision)."""
    node_keys_changed: bool = False
    """The block registered or removed member node keys (the peer allowlist changes)."""

    @property
    def accepted(self) -> int:
        return sum(1 for o in self.outcomes if o.code == OK)
