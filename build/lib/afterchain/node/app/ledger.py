"""The after-sales ledger: a deterministic state machine over signed events.

Owns: executing committed blocks (`Ledger.apply_block`), the authenticated state (every
state key lives in the sparse Merkle tree of `protocol.smt`; values are msgpack, the tree
holds their SHA-256), the secondary indexes, per-event outcomes, and reads with proofs.

Invariants
- Determinism: the state root after a block is a function of (genesis, the blocks so
  far) only. No clock, no randomness, no dict-order or hash-seed dependence: every loop
  over several keys goes in sorted key order or event order; times are block times.
- A block is applied atomically: all writes of the block (SMT nodes, values, indexes,
  outcomes, the block's raw events, height and root) go to the store in ONE batch,
  fsync'd. A crash before the batch leaves the previous block's state intact.
- `apply_block` never raises on event content: every event gets one outcome, ``ok`` or a
  stable reason code (`node.ledger.codes`), retrievable by event id. A rejected event
  changes nothing except its own outcome record and, if its handler refused it, its
  sender's nonce (so a refused event can never be replayed later). (After `apply_block` raises for a non-content reason, e.g. a storage error or
  a broken invariant, this instance is unusable: reopen it from the store.)
- Handlers check everything before the first write, so a rejection never leaves a
  partial change (`_Rejected` is only raised before mutations).
- Money is conserved: balances and escrows are integers, never negative; only transfers
  between accounts and escrows exist (genesis is the only source).

Nonces: each signing key has a nonce; an event is accepted only with nonce = last accepted
nonce + 1 (the first is 1). Customers (non-member keys) are registered on their first
accepted event (state key ``acct/<key>`` with ``org = None``).

Block processing order: (1) due deadlines, at the START of the block, in the order of the
deadline index key (due time, kind: first_response < resolution < auto_close, ticket id),
at most ``ledger.max_deadlines_per_block``, then expired governance proposals (below);
(2) the events in block order; (3) the block
record ``blk/<height>`` whose ``outcomes`` field is the Merkle root
(`protocol.merkle.merkle_root`) over the events in order of SHA-256(event id || outcome
record), the record being msgpack ``[height, index, code, message, detail]`` (what
`event_outcome` reads; for undecodable bytes the "event id" is SHA-256 of the bytes);
(4) at a checkpoint boundary (height % K == 0), the validator schedule entry (below).

State keys (all in the SMT):
``meta/genesis`` genesis hash and chain id; ``org/<id>`` organisation; ``acct/<key>``
key -> org (None for customers) and nonce; ``bal/<account>`` balance;
``gtin/<gtin>`` manufacturer owning the GTIN; ``prod/<product>`` product;
``ph/<product>/<n:4>`` the n-th full page of its history (the newest, partial page is
the product value's ``hist``: one proof shows a product and its recent history);
``recall/<gtin>/<batch>``;
``pol/<id>`` policy; ``t/<id>`` ticket (with its status history); ``esc/<id>`` escrow;
``q/<org>`` service quality; ``con/<id>`` contract; ``code/<sha256>`` contract code;
``cs/<contract id>/<key>`` contract state; ``blk/<height:8>`` block record. ``<product>``
is ``gtin + len(serial) as 1 byte + serial``.

Historical reads (light-client proofs): each block's batch also holds its undo record
``u<height:8>`` (msgpack list of [state key, value before the block or nil] for every key
whose stored value the block changed), pruned with the root of the same height, so
`value_at` / `prove_at` read any state of the last `KEEP_ROOTS` heights. A write that
leaves a value unchanged (or deletes an absent key) is skipped: the root is the same.

Ticket life: one table, `TRANSITIONS`, maps (action, status) to (new status, who may).
SLA deadlines (first response, resolution) run from opening in block time, only for
tickets under a policy; they pause while ``waiting_customer`` (the pause is added back).
A passed deadline records a breach, escalates the ticket (if it is open and not already
escalated) and applies the policy's penalty through the agreement hooks.
Resolved tickets close themselves ``ledger.auto_close_delay_ms`` after resolution.

Governance (issue #12): a member's key or a key of a current validator proposes
(``governance.propose``; the payload is the change, see `protocol.bodies.GOVERNANCE_KINDS`;
validator keys are node keys and sign as non-members, with their own nonces). Only keys of
the CURRENT adopted validator set (``meta/validators``; the genesis set at first) vote,
once each, while the block time is at most the deadline (proposal block time +
``voting_period_ms``). A tally counts only the votes of keys in the current set (so after a
set change the earlier votes of removed validators stop counting) against its size n:
adopted as soon as ``3 * yes > 2 * n``, rejected once ``3 * no >= n``. An open proposal
whose deadline is before a block's time expires at that block's start (``expired``, no
effect), in (deadline, id) order, at most `MAX_GOV_EXPIRIES_PER_BLOCK` per block (later
votes are ``governance.closed`` anyway). Adoption applies the change in the same event,
after checking it still applies (else ``failed`` with the reason):
- admit_member (roles, keys, zero balance) / update_member (roles, keys; dropped keys are
  revoked) / remove_member (its keys revoked; tickets, balances and history stay);
- validator_change: ``meta/validators`` := the new set (votes count against it at once;
  consensus uses it by the schedule below);
- param_change: ``meta/consensus`` (by the schedule) and/or ``meta/vm`` (from the next
  block: gas limits and allowed VMs are read from state at each block start);
  checkpoint_interval / watermark_window are fixed at genesis (refused when proposed);
- policy_standard: ``meta/ledger`` (`LedgerParams`, e.g. the default return window) from
  the next block.
A proposal that changes nothing (same set / parameters as now) is refused when proposed.
``org.register`` / ``org.update`` events sent directly are rejected
(``governance.required``): they are proposal payloads. State: ``gov/<proposal id>`` =
{kind, payload, by (org or nil), by_key, created, height, deadline, yes, no (voter keys,
sorted), status (open / adopted / rejected / expired / failed), result (text), decided,
decided_height, tally [yes, no, n] at the decision, effective_height}; ``meta/members``
(member count); ``meta/validators`` / ``meta/consensus`` / ``meta/vm`` / ``meta/ledger``
(the canonical encoding of the adopted `ValidatorSet` / `ConsensusParams` / `VmParams` /
`LedgerParams`, as a msgpack bin). Indexes: ``igd<deadline:8><id>`` open proposals,
``igp<height:8><id>`` every proposal.

Validator schedule (the rule agreed with consensus): K = genesis checkpoint_interval; for
a height s, E = ((s-1)//K)*K and src(s) = max(0, E-K); the set voting on s is V(s) =
``meta/validators`` in the state after block src(s) (`consensus.epochs`).
After executing a block h with h % K == 0 the ledger writes the adopted set and consensus
parameters as the entry effective from h+K+1 (state key ``sched/<first height:8>`` =
{set: encoded ValidatorSet, consensus: encoded ConsensusParams, src: h}), only when they
differ from the previous entry; genesis writes ``sched/<1>``. So the schedule is in the
state root (provable), survives restarts (the in-memory copy is rebuilt from ``sched/``
on open) and re-execution (it is a function of the blocks). `validators_for` /
`consensus_params_for` answer None while src(s) is above the executed height.

Consensus evidence (``consensus.evidence``, sent by validator keys, which are not members:
own nonce, like customers): the body is an encoded `consensus.messages.Evidence`. It is
recorded if the reporter is in V(height of the block), both messages are of one kind
(not STATUS), name the same signer, who is in V(seq) of the slot (`validators_for`; for
view changes, V(height)), have the same (phase, view, seq) and different digests
(`consensus.messages.phase_key`), and both signatures verify under this chain's consensus
domains; otherwise ``evidence.invalid``. Recorded once per (validator, phase, view, seq)
at ``evidence/<validator:32>/<phase>/<view:8><seq:8>``; a second report is
``evidence.duplicate``.

Service quality (``q/<org>``, integers only): counts, and for first response and
resolution times a histogram over the fixed bucket bounds `QUALITY_BUCKETS_MS` plus the
largest sample; the reported median is the upper bound of the bucket holding the
ceil(n/2)-th smallest sample (the largest sample if that is the overflow bucket).
"""

from __future__ import annotations

import gc
import hashlib
import re
from bisect import bisect_right, insort
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import msgpack

from afterchain.consensus.epochs import epoch_start, set_source_height
from afterchain.consensus.messages import Evidence, SignedMessage, SignedStatus, phase_key
from afterchain.node.app.codes import OK, Reason
from afterchain.node.app.hooks import (
    AgreementHooks,
    CallContext,
    ClaimDecision,
    ClaimInput,
    ContractHost,
    ContractRef,
    HookFailure,
    Penalty,
    PenaltyInput,
    PolicyTerms,
    PolicyTermsHooks,
    ReturnDecision,
    ReturnInput,
    customer_account,
)
from afterchain.node.app.store import KV, NodeCache, open_kv
from afterchain.protocol import bodies as B
from afterchain.protocol.block import ValidatorSet
from afterchain.protocol.codec import decode_as, encode
from afterchain.protocol.crypto import sign_bytes, verify_raw
from afterchain.protocol.errors import Code, InvariantError, ProtocolError, require
from afterchain.protocol.events import EVENT_TYPES, MAX_EVENT_BYTES, SignedEvent, event_id_of_signed, verify_event
from afterchain.protocol.genesis import (
    FIXED_CONSENSUS_FIELDS,
    ConsensusParams,
    Genesis,
    LedgerParams,
    ParamChange,
    VmParams,
)
from afterchain.protocol.merkle import merkle_root
from afterchain.protocol.smt import EMPTY_ROOT, SmtProof, SparseMerkleTree
from afterchain.protocol.types import MAX_UINT64

__all__ = [
    "MAX_GOV_EXPIRIES_PER_BLOCK",
    "MAX_TICKET_CHANGES",
    "QUALITY_BUCKETS_MS",
    "TRANSITIONS",
    "BlockResult",
    "Ledger",
    "Outcome",
    "epoch_start",
    "product_key",
    "set_source_height",
]

MAX_CONTRACT_EVENT_BYTES = 512 * 1024
MAX_TICKET_CHANGES = 64
"""Status changes a ticket can take from its parties; after that it can only end (closed,
rejected, ...). With system changes (breaches) its history stays under 72 entries."""
HISTORY_PAGE = 32
"""Product history entries per page (state key ``ph/<product>/<page>``)."""
KEEP_ROOTS = 1024
"""Roots of this many recent heights are kept for `root_at`."""
MAX_WRITES = 256
MAX_GOV_EXPIRIES_PER_BLOCK = 256
"""Open proposals whose deadline passed that one block expires at its start (the rest wait)."""
MAX_PROPOSALS_LISTED = 1000
MAX_WRITE_KEY = 256
MAX_WRITE_VALUE = 64 * 1024
QUALITY_BUCKETS_MS = tuple(
    m * 60_000 for m in (1, 5, 15, 30, 60, 120, 240, 480, 720, 1440, 2880, 4320, 7200, 10080, 20160, 43200, 86400, 129600)
)
"""Upper bounds (inclusive) of the time histogram buckets; one more bucket above the last."""

# --------------------------------------------------------------------------- ticket transitions

ORG = "org"  # a member of the assigned organisation
OWNER = "owner"  # a member of the organisation owning the ticket's policy
CUSTOMER = "customer"  # the ticket's customer key
LOGISTICS = "logistics"  # any member with the logistics role
SYSTEM = "system"  # the ledger itself (deadlines, hooks)

OPEN = ("opened", "acknowledged", "in_progress", "waiting_customer", "escalated", "reopened")
RETURN_OPEN = ("return_requested", "return_approved", "shipped_back")
FINAL = ("closed", "rejected", "refunded", "return_rejected")


def _t(action: str, froms: Iterable[str], to: str | None, *who: str) -> dict[tuple[str, str], tuple[str, frozenset[str]]]:
    return {(action, f): (f if to is None else to, frozenset(who)) for f in froms}


TRANSITIONS: dict[tuple[str, str], tuple[str, frozenset[str]]] = {
    **_t("ack", ["opened"], "acknowledged", ORG),
    **_t("progress", ["acknowledged", "reopened", "escalated"], "in_progress", ORG),
    **_t("progress", ["waiting_customer"], "in_progress", ORG, CUSTOMER),
    **_t("wait", ["acknowledged", "in_progress"], "waiting_customer", ORG),
    **_t("assign", [*OPEN, *RETURN_OPEN], None, ORG, OWNER),
    **_t("escalate", ["opened", "acknowledged", "in_progress", "waiting_customer", "reopened"], "escalated", CUSTOMER),
    **_t("resolve", ["acknowledged", "in_progress", "escalated", "reopened"], "resolved", ORG),
    **_t("reject", ["opened", "acknowledged", "in_progress", "escalated"], "rejected", ORG),
    **_t("confirm", ["resolved"], "closed", CUSTOMER),
    **_t("reopen", ["resolved"], "reopened", CUSTOMER),
    **_t("close", [*OPEN, "resolved", "return_requested"], "closed", CUSTOMER),
    **_t("approve", ["return_requested"], "return_approved", ORG),
    **_t("return_reject", ["return_requested"], "return_rejected", ORG),
    **_t("checkpoint", ["return_approved", "shipped_back"], "shipped_back", LOGISTICS),
    **_t("ship", ["acknowledged", "in_progress", "waiting_customer", "escalated", "reopened", "resolved"], None, LOGISTICS),
    **_t("receive", ["return_approved", "shipped_back"], "received", ORG),
    **_t("breach", ["opened", "acknowledged", "in_progress", "reopened"], "escalated", SYSTEM),
    **_t("breach", ["escalated", "waiting_customer"], None, SYSTEM),
    **_t("auto_close", ["resolved"], "closed", SYSTEM),
    **_t("refund", ["received"], "refunded", SYSTEM),
    **_t("keep", ["received"], "return_rejected", SYSTEM),
    **_t("claim_reject", ["opened"], "rejected", SYSTEM),
}
"""(action, current status) -> (new status, who may). The one place ticket life is defined."""

RETURN_ACTIONS = frozenset({"approve", "return_reject", "checkpoint", "receive"})
"""Actions for ``return`` tickets only; every other non-system action is for the other kinds,
except `ANY_KIND_ACTIONS`. (``ship`` is the repair-shipment checkpoint: no status change.)"""
ANY_KIND_ACTIONS = frozenset({"assign", "close"})
DL_FIRST, DL_RESOLUTION, DL_AUTO_CLOSE = 0, 1, 2
_DL_NAMES = {DL_FIRST: "first_response", DL_RESOLUTION: "resolution"}

_pack = msgpack.Packer(use_bin_type=True).pack
_REASON = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def product_key(gtin: str, serial: str) -> bytes:
    s = serial.encode()
    return gtin.encode() + bytes([len(s)]) + s


def _ticket_index_org(org: str, status: str, tid: bytes) -> bytes:
    return b"ito" + org.encode() + b"\0" + status.encode() + b"\0" + tid


class _Rejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


@dataclass(slots=True)
class Outcome:
    """What happened to one event: ``code == "ok"`` or a reason code, with a message.

    Treat it as immutable. Not a frozen dataclass: one is built per event on every node,
    and a frozen dataclass's ``__init__`` (``object.__setattr__`` per field) took 1.14 us
    against 0.18 us."""

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

    @property
    def accepted(self) -> int:
        return sum(1 for o in self.outcomes if o.code == OK)


@dataclass(slots=True)
class _Ctx:
    event_id: bytes
    sender: bytes
    org: str | None  # the sender's organisation, None for a customer
    account: str  # the sender's account (org id or cust:hex)
    time_ms: int
    height: int


class _Deleted:
    pass


_DELETED = _Deleted()


class Ledger:
    """The state machine. Open with `Ledger.open(path, genesis)`; ``path=None`` is in-memory."""

    def __init__(self, kv: KV, genesis: Genesis, hooks: AgreementHooks | None, contracts: ContractHost | None,
                 *, keep_blocks: bool = True, node_cache_nodes: int = 131_072, state_cache_entries: int = 32_768) -> None:
        self.kv = kv
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.params = genesis.ledger
        self.vm_params = genesis.vm
        self._params_raw: tuple[bytes, bytes] = (encode(genesis.ledger), encode(genesis.vm))
        self._k = genesis.consensus.checkpoint_interval
        # the validator schedule (committed): (first height, set, consensus params, raw set, raw params)
        self._schedule: list[tuple[int, ValidatorSet, ConsensusParams, bytes, bytes]] = [
            (1, genesis.validators, genesis.consensus, encode(genesis.validators), encode(genesis.consensus))]
        self._sched_firsts: list[int] = [1]
        self._sets_by_hash: dict[bytes, ValidatorSet] = {genesis.validators.hash(): genesis.validators}
        self._sched_pending: tuple[int, ValidatorSet, ConsensusParams, bytes, bytes] | None = None
        self._vset_cache: tuple[bytes, ValidatorSet] = (encode(genesis.validators), genesis.validators)
        self.hooks = hooks
        self.contracts = contracts
        self.keep_blocks = keep_blocks
        self._default_hooks = PolicyTermsHooks()
        self._nodes = NodeCache(kv, node_cache_nodes)
        # committed state key -> decoded value (shared objects), two generations (see NodeCache)
        self._cache: dict[bytes, Any] = {}
        self._cache_old: dict[bytes, Any] = {}
        self._cache_max = state_cache_entries
        self._dirty: dict[bytes, Any] = {}  # this block's writes: state key -> value or _DELETED
        self._idx: dict[bytes, bytes | None] = {}  # this block's index writes (KV keys)
        # state keys the store was found not to hold since the last commit (the store only
        # changes at a commit): `_commit` need not read them again for the undo record
        self._absent: set[bytes] = set()
        self._code_cache: dict[bytes, bytes] = {}
        self._undo_cache: dict[int, dict[bytes, bytes | None]] = {}  # height -> decoded undo record (bounded)
        self._block_gas = 0
        self._block_breaches = 0
        self.height = 0
        self.time_ms = genesis.genesis_time_ms
        self.state_root: bytes = EMPTY_ROOT
        self.last_block_state_keys = 0
        """State keys written by the last block (a metric: the SMT batch size)."""
        self._handlers: dict[str, Callable[[_Ctx, Any], Any]] = {
            "org.register": self._org_direct, "org.update": self._org_direct,
            "governance.propose": self._gov_propose, "governance.vote": self._gov_vote,
            "product.register": self._product_register, "product.transfer": self._product_transfer,
            "trace.record": self._trace_record, "product.recall": self._product_recall,
            "policy.register": self._policy_register, "warranty.activate": self._warranty_activate,
            "contract.deploy": self._contract_deploy, "contract.call": self._contract_call,
            "ticket.open": self._ticket_open, "ticket.ack": self._ticket_simple, "ticket.update": self._ticket_update,
            "ticket.assign": self._ticket_assign, "ticket.escalate": self._ticket_simple,
            "ticket.resolve": self._ticket_simple, "ticket.reject": self._ticket_simple,
            "ticket.confirm": self._ticket_simple, "ticket.reopen": self._ticket_simple,
            "ticket.close": self._ticket_simple, "return.request": self._return_request,
            "return.approve": self._return_approve, "return.reject": self._ticket_simple,
            "return.receive": self._return_receive, "shipment.checkpoint": self._shipment_checkpoint,
            "escrow.deposit": self._escrow_deposit, "escrow.release": self._escrow_settle,
            "escrow.refund": self._escrow_settle, "rating.submit": self._rating_submit,
            "consensus.evidence": self._consensus_evidence,
        }
        missing = set(EVENT_TYPES) - set(self._handlers)
        require(not missing, f"event types without a handler: {sorted(missing)}")

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, path: str | None, genesis: Genesis, hooks: AgreementHooks | None = None,
             contracts: ContractHost | None = None, *, sync: bool = True, keep_blocks: bool = True,
             node_cache_nodes: int = 131_072, state_cache_entries: int = 32_768) -> Ledger:
        """Open (or create from `genesis`) the ledger at `path` (None: in memory).

        Raises `InvariantError` if the store was created from another genesis.
        `sync=False` skips fsync (benchmarks of the CPU path only). `keep_blocks` also stores
        each block's raw events (for `stored_block` / replay; a node that stores blocks
        itself can turn it off). The caches hold at most twice `node_cache_nodes` SMT nodes
        (~100 B each) and twice `state_cache_entries` decoded values (~1-3 KB each).
        """
        kv = open_kv(path, sync=sync)
        led = cls(kv, genesis, hooks, contracts, keep_blocks=keep_blocks, node_cache_nodes=node_cache_nodes,
                  state_cache_entries=state_cache_entries)
        ghash = kv.get(b"mgenesis")
        if ghash is None:
            led._init_genesis()
        else:
            if ghash != genesis.hash():
                kv.close()
                raise InvariantError("the store at this path was created from another genesis")
            h = kv.get(b"mheight")
            require(h is not None, "store has a genesis but no height")
            led.height = int.from_bytes(h or b"", "big")
            root = kv.get(b"r" + _u64(led.height))
            require(root is not None, "store has no root for its height")
            led.state_root = root or EMPTY_ROOT
            tm = kv.get(b"mtime")
            led.time_ms = int.from_bytes(tm, "big") if tm else genesis.genesis_time_ms
            led._load_schedule()
            led._load_params()
        return led

    def close(self) -> None:
        self.kv.close()

    def _init_genesis(self) -> None:
        g = self.genesis
        total = sum(m.balance for m in g.members)
        require(total <= MAX_UINT64, "genesis balances overflow u64")
        self._put(b"meta/genesis", {"hash": g.hash(), "chain_id": g.chain_id, "time": g.genesis_time_ms})
        for m in g.members:
            self._put(b"org/" + m.org_id.encode(), {"name": m.name, "roles": list(m.roles), "keys": list(m.keys), "since": g.genesis_time_ms})
            for k in m.keys:
                self._put(b"acct/" + k, {"org": m.org_id, "nonce": 0})
            self._put(b"bal/" + m.org_id.encode(), m.balance)
        self._put(b"meta/members", len(g.members))
        vs_raw, cp_raw = encode(g.validators), encode(g.consensus)
        self._put(b"meta/validators", vs_raw)
        self._put(b"meta/consensus", cp_raw)
        self._put(b"meta/vm", encode(g.vm))
        self._put(b"meta/ledger", encode(g.ledger))
        self._put(b"sched/" + _u64(1), {"set": vs_raw, "consensus": cp_raw, "src": 0})
        self._commit(0, g.genesis_time_ms, extra={b"mgenesis": g.hash()})

    # ------------------------------------------------------------------ state access

    def _get(self, key: bytes) -> Any:
        v = self._dirty.get(key)
        if v is not None:
            return None if v is _DELETED else v
        v = self._cache.get(key)
        if v is not None:
            return v
        v = self._cache_old.pop(key, None)
        if v is None:
            raw = self.kv.get(b"v" + key)
            if raw is None:
                self._absent.add(key)
                return None
            v = _unpack(raw)
        if len(self._cache) >= self._cache_max:
            self._cache_old = self._cache
            self._cache = {}
        self._cache[key] = v
        return v

    def _put(self, key: bytes, value: Any) -> None:
        self._dirty[key] = value

    def _delete(self, key: bytes) -> None:
        self._dirty[key] = _DELETED

    def _commit(self, height: int, time_ms: int, extra: dict[bytes, bytes | None] | None = None) -> None:
        """Write the block's state, SMT nodes and indexes in one batch; advance height/root."""
        updates: dict[bytes, bytes | None] = {}
        batch: dict[bytes, bytes | None] = {}
        kv_get = self.kv.get
        absent = self._absent
        undo: list[Any] = []  # [key, value before this block or None], for `value_at`
        for key, v in self._dirty.items():  # (the tree sorts; the batch is applied atomically)
            vkey = b"v" + key
            prev = None if key in absent else kv_get(vkey)
            if v is _DELETED:
                if prev is None:
                    continue  # deleting an absent key: no change, nothing to undo
                updates[key] = None
                batch[vkey] = None
            else:
                enc = _pack(v)
                if enc == prev:
                    continue  # rewritten unchanged: the tree would not change either
                updates[key] = enc
                batch[vkey] = enc
            undo.append([key, prev])
        tree = SparseMerkleTree(self._nodes, self.state_root)
        root = tree.update(updates)
        self.last_block_state_keys = len(updates)
        batch.update(self._nodes.take_pending())
        batch.update(self._idx)
        if extra:
            batch.update(extra)
        batch[b"r" + _u64(height)] = root
        batch[b"u" + _u64(height)] = _pack(undo)
        if height >= KEEP_ROOTS:
            batch[b"r" + _u64(height - KEEP_ROOTS)] = None
            batch[b"u" + _u64(height - KEEP_ROOTS)] = None
        batch[b"mheight"] = _u64(height)
        batch[b"mtime"] = _u64(time_ms)
        self.kv.write(batch)
        self._absent = set()
        if len(self._cache) + len(self._dirty) > self._cache_max:
            self._cache_old = self._cache
            self._cache = {}
        for key, v in self._dirty.items():
            if v is _DELETED:
                self._cache.pop(key, None)
                self._cache_old.pop(key, None)
            else:
                self._cache[key] = v
                self._cache_old.pop(key, None)
        self._dirty = {}
        self._idx = {}
        self.height = height
        self.time_ms = time_ms
        self.state_root = root

    def _abort(self) -> None:
        self._dirty = {}
        self._idx = {}
        self._absent = set()
        self._cache.clear()
        self._cache_old.clear()
        self._nodes.drop_pending()

    # ------------------------------------------------------------------ blocks

    def apply_block(self, height: int, time_ms: int, events: Sequence[bytes], *,
                    preverified: Container[bytes] = (), decoded: Sequence[SignedEvent | None] | None = None) -> BlockResult:
        """Execute a committed block and persist it atomically; returns the new root and outcomes.

        `events` are raw encoded `SignedEvent`s. Ids in `preverified` skip the signature
        check (the node verified them already). `decoded`, if given, holds the already
        decoded event at each position (None where unknown) to avoid decoding twice;
        a decoded event must be the decoding of the raw bytes at the same position.
        """
        require(height == self.height + 1, f"block {height} does not follow {self.height}")
        require(time_ms >= self.time_ms, "block time went backwards")
        require(decoded is None or len(decoded) == len(events), "decoded must match events")
        # The cyclic GC would scan every cached state object many times per block; the
        # ledger makes no reference cycles, so it is paused during a block (and restored).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            self._block_gas = 0
            self._block_breaches = 0
            self._load_params()
            processed = self._process_deadlines(height, time_ms)
            expired = self._expire_proposals(height, time_ms)
            outcomes: list[Outcome] = []
            out_records: dict[bytes, bytes | None] = {}
            leaf_hashes: list[bytes] = []
            for index, raw in enumerate(events):
                pre = decoded[index] if decoded is not None else None
                oc = self._apply_event(height, time_ms, index, raw, preverified, pre)
                outcomes.append(oc)
                okey = b"o" + oc.event_id
                record = _pack([height, index, oc.code, oc.message, oc.detail])
                if oc.code == OK or not self._accepted_before(okey, out_records):
                    # a replay of an accepted event never hides its accepted outcome
                    out_records[okey] = record
                leaf_hashes.append(_sha(oc.event_id + record))
            accepted = sum(1 for o in outcomes if o.code == OK)
            self._put(b"blk/" + _u64(height), {
                "time": time_ms, "events": len(events), "accepted": accepted, "deadlines": processed,
                "outcomes": merkle_root(leaf_hashes),
            })
            if self.keep_blocks:
                out_records[b"b" + _u64(height)] = _pack([time_ms, list(events)])
            if height % self._k == 0:
                self._record_schedule(height)
            self._commit(height, time_ms, out_records)
            if self._sched_pending is not None:
                self._remember_schedule(self._sched_pending)
                self._sched_pending = None
        except BaseException:
            self._sched_pending = None
            self._abort()
            raise
        finally:
            if gc_was_enabled:
                gc.enable()
        return BlockResult(height=height, time_ms=time_ms, state_root=self.state_root, outcomes=tuple(outcomes),
                           deadlines_processed=processed, sla_breaches=self._block_breaches, proposals_expired=expired)

    def _accepted_before(self, okey: bytes, pending: dict[bytes, bytes | None]) -> bool:
        raw = pending.get(okey) or self.kv.get(okey)
        return raw is not None and _unpack(raw)[2] == OK

    def _apply_event(self, height: int, time_ms: int, index: int, raw: bytes, preverified: Container[bytes],
                     signed: SignedEvent | None) -> Outcome:
        if signed is None:
            try:
                signed = SignedEvent.decode(raw, max_bytes=MAX_CONTRACT_EVENT_BYTES)
            except ProtocolError as exc:
                return Outcome(_sha(raw), height, index, str(exc.code), str(exc))
        ev = signed.event
        # the id the node computed at intake (cached on the decoded event), else from the bytes
        eid = ev.cached_id() or event_id_of_signed(raw)
        if len(raw) > MAX_EVENT_BYTES and ev.type != "contract.deploy":
            return Outcome(eid, height, index, Reason.EVENT_TOO_LARGE, f"{len(raw)} bytes exceed {MAX_EVENT_BYTES}")
        if eid not in preverified or ev.chain_id != self.chain_id:
            try:
                verify_event(signed, self.chain_id)
            except ProtocolError as exc:
                return Outcome(eid, height, index, str(exc.code), str(exc))
        akey = b"acct/" + ev.sender
        acct = self._get(akey)
        last = acct["nonce"] if acct is not None else 0
        if ev.nonce != last + 1:
            return Outcome(eid, height, index, Reason.NONCE_WRONG, f"nonce {ev.nonce}, expected {last + 1}")
        if acct is not None and acct.get("revoked"):
            return Outcome(eid, height, index, Reason.REVOKED, "this key was revoked by governance")
        org = acct["org"] if acct is not None else None
        ctx = _Ctx(eid, ev.sender, org, org if org is not None else customer_account(ev.sender), time_ms, height)
        try:
            detail = self._handlers[ev.type](ctx, ev.body)
        except _Rejected as rej:
            # A validly signed event with the right nonce uses its nonce even when the
            # ledger refuses it: otherwise anyone could replay it later, when the state
            # has changed and it would be accepted (the event is public once in a block).
            self._put(akey, {"org": None, "nonce": ev.nonce, "since": time_ms} if acct is None else {**acct, "nonce": ev.nonce})
            return Outcome(eid, height, index, rej.code, rej.message)
        if acct is None:
            self._put(akey, {"org": None, "nonce": 1, "since": time_ms})
        else:
            acct["nonce"] = ev.nonce
            self._put(akey, acct)
        return Outcome(eid, height, index, OK, "", detail)

    def check(self, signed: SignedEvent, *, verify_signature: bool = True) -> Outcome | None:
        """Stateful pre-check for the mempool against committed state: chain id, signature,
        size class, nonce not already used, and membership/role for member-only events.
        Returns a rejection outcome or None. (Transitions are only checked at execution.)"""
        ev = signed.event
        eid = ev.id
        if verify_signature:
            try:
                verify_event(signed, self.chain_id)
            except ProtocolError as exc:
                return Outcome(eid, 0, 0, str(exc.code), str(exc))
        elif ev.chain_id != self.chain_id:
            return Outcome(eid, 0, 0, str(Code.WRONG_CHAIN_ID), f"event is for chain {ev.chain_id!r}")
        acct = self._committed(b"acct/" + ev.sender)
        last = acct["nonce"] if acct is not None else 0
        if ev.nonce <= last:
            return Outcome(eid, 0, 0, Reason.NONCE_WRONG, f"nonce {ev.nonce} already used (last {last})")
        if acct is not None and acct.get("revoked"):
            return Outcome(eid, 0, 0, Reason.REVOKED, "this key was revoked by governance")
        if ev.type == "consensus.evidence":  # checked in full at intake: bad evidence never reaches a block
            try:
                key, rec = self._evidence_key(ev.sender, ev.body, self.height + 1)  # type: ignore[arg-type]
                if self._committed(key) is not None:
                    raise self._evidence_duplicate(key, rec)
            except _Rejected as rej:
                return Outcome(eid, 0, 0, rej.code, rej.message)
        if ev.type in ("governance.propose", "governance.vote"):
            member = acct is not None and acct["org"] is not None
            if ev.sender not in self.validators() and (ev.type == "governance.vote" or not member):
                code = Reason.NOT_VALIDATOR if ev.type == "governance.vote" else Reason.NOT_MEMBER
                return Outcome(eid, 0, 0, code, f"{ev.type} needs a current validator's key"
                               + (" or a member's key" if ev.type == "governance.propose" else ""))
            return None
        need = _MEMBER_ROLES.get(ev.type)
        if need is not None:
            if acct is None or acct["org"] is None:
                return Outcome(eid, 0, 0, Reason.NOT_MEMBER, f"{ev.type} needs a member key")
            o = self._committed(b"org/" + acct["org"].encode())
            if need and o is not None and not set(need) & set(o["roles"]):
                return Outcome(eid, 0, 0, Reason.ROLE, f"{ev.type} needs one of the roles {', '.join(need)}")
        return None

    def _committed(self, key: bytes) -> Any:
        """A committed state value (read only). Between blocks (no pending writes) it comes
        from the state cache (`check` runs once per incoming event: two RocksDB reads and
        two decodes saved per event); during a block, from the store."""
        if not self._dirty:
            return self._get(key)
        raw = self.kv.get(b"v" + key)
        return None if raw is None else _unpack(raw)

    # ------------------------------------------------------------------ deadlines

    def _dl_key(self, due: int, kind: int, tid: bytes) -> bytes:
        return b"idl" + _u64(due) + bytes([kind]) + tid

    def _dl_add(self, due: int, kind: int, tid: bytes) -> None:
        self._idx[self._dl_key(due, kind, tid)] = b""

    def _dl_del(self, due: int | None, kind: int, tid: bytes) -> None:
        if due is not None:
            self._idx[self._dl_key(due, kind, tid)] = None

    def _process_deadlines(self, height: int, time_ms: int) -> int:
        limit = self.params.max_deadlines_per_block
        due_keys = []
        for k, _ in self.kv.scan(b"idl", b"idl" + _u64(time_ms + 1)):
            due_keys.append(k)
            if len(due_keys) >= limit:
                break
        for k in due_keys:
            due = int.from_bytes(k[3:11], "big")
            kind = k[11]
            tid = k[12:]
            self._idx[k] = None
            t = self._get(b"t/" + tid)
            if t is None:
                continue
            field = ("fr_due", "res_due", "ac_due")[kind]
            if t.get(field) != due:
                continue  # stale entry (deadline moved or cancelled)
            t[field] = None
            if kind == DL_AUTO_CLOSE:
                self._transition(t, tid, "auto_close", SYSTEM, time_ms, None, "auto_close")
                self._on_final(t, tid, time_ms)
            else:
                self._breach(t, tid, kind, due, time_ms)
            self._put(b"t/" + tid, t)
        return len(due_keys)

    def _breach(self, t: dict[str, Any], tid: bytes, kind: int, due: int, time_ms: int) -> None:
        t["breaches"] += 1
        self._block_breaches += 1
        q = self._quality(t["org"], time_ms)
        q["breaches"] += 1
        self._put(b"q/" + t["org"].encode(), q)
        note = f"breach:{_DL_NAMES[kind]}"
        policy = self._policy_terms(t["policy"]) if t["policy"] is not None else None
        if policy is not None:
            inp = PenaltyInput(policy=policy, ticket_id=tid, deadline=_DL_NAMES[kind], deadline_ms=due, now_ms=time_ms,
                               assigned_org=t["org"], customer=customer_account(t["cust"]), breaches_before=t["breaches"] - 1)
            pen, failure = self._call_hook("sla_penalty", policy, inp)
            if failure:
                note += f";hook_failed:{failure}"
            if pen.amount > 0 and pen.payer != pen.payee:
                moved = self._transfer(pen.payer, pen.payee, pen.amount)
                t["penalties"] += moved
                note += f";penalty:{moved}"
                if moved < pen.amount:
                    note += f";shortfall:{pen.amount - moved}"
        if TRANSITIONS.get(("breach", t["status"])) is not None:
            self._transition(t, tid, "breach", SYSTEM, time_ms, None, note)
        elif len(t["notes"]) < MAX_TICKET_CHANGES:
            t["notes"].append(note)

    # ------------------------------------------------------------------ hooks

    def _call_hook(self, name: str, policy: PolicyTerms | None, inp: Any) -> tuple[Any, str | None]:
        """Run hook `name` for `policy`: its contract if it has one, else the built-in terms.
        Returns (decision, failure reason or None); on failure the decision is the fallback's."""
        fallback = getattr(self._default_hooks, name)(None, inp, None, 0)
        if policy is None or policy.contract_id is None:
            return fallback, None
        ref = self._contract_ref(policy.contract_id)
        if ref is None:
            return fallback, "no_contract"
        if self.hooks is None:
            return fallback, "no_vm"
        state = _ContractState(self, policy.contract_id)
        try:
            res: Any = getattr(self.hooks, name)(ref, inp, state, self.vm_params.hook_gas_limit)
        except Exception as exc:  # a VM bug must not split the chain: treated as a failed call
            return fallback, f"error:{type(exc).__name__}"
        if isinstance(res, HookFailure):
            self._block_gas += max(0, res.gas_used)
            return fallback, res.reason[:64] or "failed"
        expected: type = {"claim_eligibility": ClaimDecision, "sla_penalty": Penalty, "return_decision": ReturnDecision}[name]
        right_type = isinstance(res, expected)
        if not right_type or not self._valid_writes(res.writes):
            return fallback, "invalid_output"
        if isinstance(res, Penalty) and (type(res.amount) is not int or not 0 <= res.amount <= MAX_UINT64
                                         or not self._account_ok(res.payer) or not self._account_ok(res.payee)):
            return fallback, "invalid_output"
        if isinstance(res, ClaimDecision | ReturnDecision) and (
                type(getattr(res, "covered", getattr(res, "refund", None))) is not bool
                or not isinstance(res.reason, str) or not _REASON.match(res.reason)):
            return fallback, "invalid_output"
        self._block_gas += max(0, res.gas_used)
        self._apply_writes(policy.contract_id, res.writes)
        return res, None

    def _valid_writes(self, writes: Any) -> bool:
        if not isinstance(writes, tuple) or len(writes) > MAX_WRITES:
            return False
        for w in writes:
            if not (isinstance(w, tuple) and len(w) == 2 and isinstance(w[0], bytes) and 1 <= len(w[0]) <= MAX_WRITE_KEY
                    and (w[1] is None or (isinstance(w[1], bytes) and len(w[1]) <= MAX_WRITE_VALUE))):
                return False
        return True

    def _apply_writes(self, cid: bytes, writes: Iterable[tuple[bytes, bytes | None]]) -> None:
        for k, v in writes:
            key = b"cs/" + cid + b"/" + k
            if v is None:
                self._delete(key)
            else:
                self._put(key, v)

    def _contract_ref(self, cid: bytes) -> ContractRef | None:
        c = self._get(b"con/" + cid)
        if c is None:
            return None
        code = self._code_cache.get(c["code_hash"])
        if code is None:
            code = self._get(b"code/" + c["code_hash"])
            require(code is not None, "contract code missing from state")
            if len(self._code_cache) > 32:
                self._code_cache.clear()
            self._code_cache[c["code_hash"]] = code
        return ContractRef(contract_id=cid, vm_id=c["vm"], vm_version=c["version"], code_hash=c["code_hash"], code=code,
                           owner_org=c["owner"])

    def _account_ok(self, account: Any) -> bool:
        if not isinstance(account, str):
            return False
        if account.startswith("cust:"):
            h = account[5:]
            return len(h) == 64 and all(c in "0123456789abcdef" for c in h)
        return self._get(b"org/" + account.encode()) is not None

    def _balance(self, account: str) -> int:
        v = self._get(b"bal/" + account.encode())
        return 0 if v is None else int(v)

    def _transfer(self, payer: str, payee: str, amount: int) -> int:
        """Move up to `amount` (never more than the payer has); returns what moved."""
        have = self._balance(payer)
        moved = min(have, amount)
        if moved:
            self._put(b"bal/" + payer.encode(), have - moved)
            self._put(b"bal/" + payee.encode(), self._balance(payee) + moved)
        return moved

    # ------------------------------------------------------------------ permission helpers

    def _member(self, ctx: _Ctx, *roles: str) -> dict[str, Any]:
        if ctx.org is None:
            raise _Rejected(Reason.NOT_MEMBER, "this event needs a member organisation's key")
        org = self._get(b"org/" + ctx.org.encode())
        require(org is not None, f"key of unknown org {ctx.org}")
        if roles and not set(roles) & set(org["roles"]):
            raise _Rejected(Reason.ROLE, f"organisation {ctx.org} needs one of the roles {', '.join(roles)}")
        return org  # type: ignore[no-any-return]

    def _org_with_role(self, org_id: str, roles: tuple[str, ...], what: str) -> dict[str, Any]:
        org = self._get(b"org/" + org_id.encode())
        if org is None or org.get("removed") is not None:
            raise _Rejected(Reason.ORG_UNKNOWN, f"{what}: no organisation {org_id!r}")
        if not set(roles) & set(org["roles"]):
            raise _Rejected(Reason.ORG_WRONG_ROLE, f"{what}: {org_id} needs one of the roles {', '.join(roles)}")
        return org  # type: ignore[no-any-return]

    def _product(self, gtin: str, serial: str) -> tuple[bytes, dict[str, Any]]:
        pk = product_key(gtin, serial)
        p = self._get(b"prod/" + pk)
        if p is None:
            raise _Rejected(Reason.PRODUCT_UNKNOWN, f"no product {gtin}/{serial}")
        return pk, p

    def _history(self, pk: bytes, p: dict[str, Any], entry: list[Any]) -> None:
        """Append to the product's recent history; a full page moves to its own state key."""
        recent = p["hist"]
        recent.append(entry)
        if len(recent) >= HISTORY_PAGE:
            self._put(b"ph/" + pk + p["pages"].to_bytes(4, "big"), recent)
            p["pages"] += 1
            p["hist"] = []

    def _recalled(self, gtin: str, batch: str) -> bool:
        return self._get(b"recall/" + gtin.encode() + b"/" + batch.encode()) is not None

    # ------------------------------------------------------------------ governance

    def _org_direct(self, ctx: _Ctx, body: Any) -> None:
        kind = "admit_member" if isinstance(body, B.OrgRegister) else "update_member"
        raise _Rejected(Reason.GOVERNANCE_REQUIRED,
                        f"membership changes are voted: send governance.propose kind {kind} with this body as payload")

    def _members_count(self) -> int:
        return int(self._get(b"meta/members") or 0)

    def _validators(self) -> ValidatorSet:
        """The adopted validator set at this point of the block (``meta/validators``)."""
        raw = self._get(b"meta/validators")
        if raw is None:  # a store written before governance kept it: the genesis set
            return self.genesis.validators
        if raw != self._vset_cache[0]:
            self._vset_cache = (raw, decode_as(ValidatorSet, raw))
        return self._vset_cache[1]

    def _meta_raw(self, name: bytes, default: Any) -> bytes:
        raw = self._get(b"meta/" + name)
        return encode(default) if raw is None else bytes(raw)

    def _load_params(self) -> None:
        """Ledger and VM parameters from the committed state (governance changes them)."""
        raw = (self._meta_raw(b"ledger", self.genesis.ledger), self._meta_raw(b"vm", self.genesis.vm))
        if raw != self._params_raw:
            self.params = decode_as(LedgerParams, raw[0])
            self.vm_params = decode_as(VmParams, raw[1])
            self._params_raw = raw

    def _gov_propose(self, ctx: _Ctx, b: B.GovernancePropose) -> Any:
        if ctx.org is not None:
            self._member(ctx)
        elif ctx.sender not in self._validators():
            raise _Rejected(Reason.NOT_MEMBER, "governance.propose needs a member's key or a current validator's key")
        change = b.change()
        self._check_change(b.kind, change)
        pid = ctx.event_id
        deadline = ctx.time_ms + b.voting_period_ms
        self._put(b"gov/" + pid, {
            "kind": b.kind, "payload": b.payload, "by": ctx.org, "by_key": ctx.sender, "created": ctx.time_ms,
            "height": ctx.height, "deadline": deadline, "yes": [], "no": [], "status": "open", "result": None,
            "decided": None, "decided_height": None, "tally": None, "effective_height": None,
        })
        self._idx[b"igd" + _u64(deadline) + pid] = b""
        self._idx[b"igp" + _u64(ctx.height) + pid] = b""
        return {"proposal_id": pid}

    def _check_change(self, kind: str, change: Any) -> None:
        """Stateful checks of a proposed change (at proposal and again at adoption)."""
        if isinstance(change, B.OrgRegister):
            self._check_admit(change)
        elif isinstance(change, B.OrgUpdate):
            self._check_update(change)
        elif kind == "remove_member":
            self._check_remove(str(change))
        elif isinstance(change, ValidatorSet):
            if encode(change) == encode(self._validators()):
                raise _Rejected(Reason.GOVERNANCE_INVALID, "the proposed validator set is the current one")
        elif isinstance(change, LedgerParams):
            if encode(change) == self._meta_raw(b"ledger", self.genesis.ledger):
                raise _Rejected(Reason.GOVERNANCE_INVALID, "the proposed policy standard is the current one")
        elif isinstance(change, ParamChange):
            new = False
            if change.consensus is not None:
                fixed = self.genesis.consensus
                for f in FIXED_CONSENSUS_FIELDS:
                    if getattr(change.consensus, f) != getattr(fixed, f):
                        raise _Rejected(Reason.GOVERNANCE_INVALID, f"consensus.{f} is fixed at genesis ({getattr(fixed, f)})")
                new = encode(change.consensus) != self._meta_raw(b"consensus", self.genesis.consensus)
            if change.vm is not None:
                new = new or encode(change.vm) != self._meta_raw(b"vm", self.genesis.vm)
            if not new:
                raise _Rejected(Reason.GOVERNANCE_INVALID, "the proposed parameters are the current ones")

    def _check_admit(self, c: B.OrgRegister) -> None:
        if self._get(b"org/" + c.org_id.encode()) is not None:
            raise _Rejected(Reason.GOVERNANCE_INVALID, f"organisation {c.org_id} exists")
        for k in c.keys:
            if self._get(b"acct/" + k) is not None:
                raise _Rejected(Reason.GOVERNANCE_INVALID, f"key {k.hex()[:16]}... is already in use")

    def _check_update(self, c: B.OrgUpdate) -> None:
        org = self._get(b"org/" + c.org_id.encode())
        if org is None or org.get("removed") is not None:
            raise _Rejected(Reason.GOVERNANCE_INVALID, f"no active organisation {c.org_id}")
        for k in c.keys:
            a = self._get(b"acct/" + k)
            if a is not None and (a["org"] != c.org_id or a.get("revoked")):
                raise _Rejected(Reason.GOVERNANCE_INVALID, f"key {k.hex()[:16]}... is in use elsewhere or revoked")

    def _check_remove(self, org_id: str) -> None:
        org = self._get(b"org/" + org_id.encode())
        if org is None or org.get("removed") is not None:
            raise _Rejected(Reason.GOVERNANCE_INVALID, f"no active organisation {org_id}")
        if self._members_count() <= 1:
            raise _Rejected(Reason.GOVERNANCE_INVALID, "the last member cannot be removed")

    def _gov_vote(self, ctx: _Ctx, b: B.GovernanceVote) -> Any:
        vs = self._validators()
        if ctx.sender not in vs:
            raise _Rejected(Reason.NOT_VALIDATOR, "only a key of the current validator set votes on proposals")
        key = b"gov/" + b.proposal_id
        p = self._get(key)
        if p is None:
            raise _Rejected(Reason.GOVERNANCE_UNKNOWN, "no such proposal")
        if p["status"] != "open" or ctx.time_ms > p["deadline"]:
            raise _Rejected(Reason.GOVERNANCE_CLOSED, f"the proposal is {p['status'] if p['status'] != 'open' else 'expired'}")
        if ctx.sender in p["yes"] or ctx.sender in p["no"]:
            raise _Rejected(Reason.GOVERNANCE_VOTED, "this validator already voted")
        insort(p["yes" if b.approve else "no"], ctx.sender)
        yes = sum(1 for v in p["yes"] if v in vs)
        no = sum(1 for v in p["no"] if v in vs)
        n = vs.n
        if 3 * yes > 2 * n or 3 * no >= n:
            if 3 * yes > 2 * n:
                p["status"], p["result"] = self._gov_execute(ctx, p)
            else:
                p["status"], p["result"] = "rejected", "votes"
            p["decided"], p["decided_height"], p["tally"] = ctx.time_ms, ctx.height, [yes, no, n]
            self._idx[b"igd" + _u64(p["deadline"]) + b.proposal_id] = None
        self._put(key, p)
        return {"status": p["status"]}

    def _effective_height(self, height: int) -> int:
        """First height voted by a set (or run under consensus params) adopted in block `height`:
        recorded at the first checkpoint boundary m >= height, effective from m + K + 1."""
        m = -(-height // self._k) * self._k
        return m + self._k + 1

    def _gov_execute(self, ctx: _Ctx, p: dict[str, Any]) -> tuple[str, str]:
        """Apply an adopted proposal; a change no longer valid leaves it ``failed`` (reason)."""
        change = B.GovernancePropose(kind=p["kind"], payload=p["payload"], voting_period_ms=1).change()
        try:
            self._check_change(p["kind"], change)
            if isinstance(change, B.OrgRegister):
                self._put(b"org/" + change.org_id.encode(), {"name": change.name, "roles": list(change.roles),
                                                             "keys": list(change.keys), "since": ctx.time_ms})
                for k in change.keys:
                    self._put(b"acct/" + k, {"org": change.org_id, "nonce": 0})
                self._put(b"meta/members", self._members_count() + 1)
            elif isinstance(change, B.OrgUpdate):
                org = self._get(b"org/" + change.org_id.encode())
                for k in org["keys"]:
                    if k not in change.keys:
                        a = self._get(b"acct/" + k)
                        a["revoked"] = True
                        self._put(b"acct/" + k, a)
                for k in change.keys:
                    if self._get(b"acct/" + k) is None:
                        self._put(b"acct/" + k, {"org": change.org_id, "nonce": 0})
                org["roles"], org["keys"] = list(change.roles), list(change.keys)
                self._put(b"org/" + change.org_id.encode(), org)
            elif p["kind"] == "remove_member":
                org_id = str(change)
                org = self._get(b"org/" + org_id.encode())
                for k in org["keys"]:
                    a = self._get(b"acct/" + k)
                    a["revoked"] = True
                    self._put(b"acct/" + k, a)
                org["removed"] = ctx.time_ms
                self._put(b"org/" + org_id.encode(), org)
                self._put(b"meta/members", self._members_count() - 1)
            elif isinstance(change, ValidatorSet):
                self._put(b"meta/validators", encode(change))
                p["effective_height"] = self._effective_height(ctx.height)
                return "adopted", f"validators from height {p['effective_height']}"
            elif isinstance(change, LedgerParams):
                self._put(b"meta/ledger", encode(change))
                p["effective_height"] = ctx.height + 1
                return "adopted", f"policy standard from block {ctx.height + 1}"
            elif isinstance(change, ParamChange):
                parts = []
                if change.vm is not None:
                    self._put(b"meta/vm", encode(change.vm))
                    parts.append(f"vm from block {ctx.height + 1}")
                    p["effective_height"] = ctx.height + 1
                if change.consensus is not None:
                    self._put(b"meta/consensus", encode(change.consensus))
                    p["effective_height"] = self._effective_height(ctx.height)
                    parts.append(f"consensus from height {p['effective_height']}")
                return "adopted", "; ".join(parts)
        except _Rejected as rej:
            return "failed", rej.message
        return "adopted", "applied"

    def _expire_proposals(self, height: int, time_ms: int) -> int:
        """At block start: open proposals whose deadline is before the block time expire with
        no effect, in (deadline, proposal id) order, at most `MAX_GOV_EXPIRIES_PER_BLOCK`."""
        keys = []
        for k, _ in self.kv.scan(b"igd", b"igd" + _u64(time_ms)):
            keys.append(k)
            if len(keys) >= MAX_GOV_EXPIRIES_PER_BLOCK:
                break
        expired = 0
        for k in keys:
            self._idx[k] = None
            deadline, pid = int.from_bytes(k[3:11], "big"), k[11:]
            p = self._get(b"gov/" + pid)
            if p is None or p["status"] != "open" or p["deadline"] != deadline:
                continue
            vs = self._validators()
            tally = [sum(1 for v in p["yes"] if v in vs), sum(1 for v in p["no"] if v in vs), vs.n]
            p["status"], p["result"] = "expired", "no quorum before the deadline"
            p["decided"], p["decided_height"], p["tally"] = time_ms, height, tally
            self._put(b"gov/" + pid, p)
            expired += 1
        return expired

    # ------------------------------------------------------------------ validator schedule

    def _record_schedule(self, height: int) -> None:
        """At a checkpoint boundary `height` (h % K == 0): the adopted set and consensus
        parameters become the entry effective from h + K + 1, if they differ from the last."""
        vs_raw = self._meta_raw(b"validators", self.genesis.validators)
        cp_raw = self._meta_raw(b"consensus", self.genesis.consensus)
        last = self._schedule[-1]
        if vs_raw == last[3] and cp_raw == last[4]:
            return
        first = height + self._k + 1
        self._put(b"sched/" + _u64(first), {"set": vs_raw, "consensus": cp_raw, "src": height})
        self._sched_pending = (first, decode_as(ValidatorSet, vs_raw), decode_as(ConsensusParams, cp_raw), vs_raw, cp_raw)

    def _remember_schedule(self, entry: tuple[int, ValidatorSet, ConsensusParams, bytes, bytes]) -> None:
        require(entry[0] > self._schedule[-1][0], "schedule entries must be added in height order")
        self._schedule.append(entry)
        self._sched_firsts.append(entry[0])
        self._sets_by_hash[entry[1].hash()] = entry[1]

    def _load_schedule(self) -> None:
        """Rebuild the in-memory schedule from the committed ``sched/`` state keys."""
        entries = []
        for k, raw in self.kv.scan(b"vsched/", b"vsched0"):
            v = _unpack(raw)
            vs_raw, cp_raw = bytes(v["set"]), bytes(v["consensus"])
            entries.append((int.from_bytes(k[7:15], "big"), decode_as(ValidatorSet, vs_raw),
                            decode_as(ConsensusParams, cp_raw), vs_raw, cp_raw))
        if not entries:  # a store written before governance kept a schedule: genesis only
            return
        require(entries[0][0] == 1, "the validator schedule must start at height 1")
        self._schedule, self._sched_firsts = entries[:1], [1]
        self._sets_by_hash = {entries[0][1].hash(): entries[0][1]}
        for e in entries[1:]:
            self._remember_schedule(e)

    def _schedule_entry(self, height: int) -> tuple[int, ValidatorSet, ConsensusParams, bytes, bytes] | None:
        if height < 1:
            return self._schedule[0]
        if set_source_height(height, self._k) > self.height:
            return None
        return self._schedule[max(0, bisect_right(self._sched_firsts, height) - 1)]

    def validators_for(self, height: int) -> ValidatorSet | None:
        """V(height): the set voting on block `height`, i.e. the adopted set after block
        ``set_source_height(height)``; None while that block is not executed here."""
        e = self._schedule_entry(height)
        return None if e is None else e[1]

    def consensus_params_for(self, height: int) -> ConsensusParams | None:
        """The consensus parameters in force at `height` (same schedule as `validators_for`)."""
        e = self._schedule_entry(height)
        return None if e is None else e[2]

    def validator_schedule(self) -> list[tuple[int, ValidatorSet]]:
        """(first height, set) of every schedule entry, genesis (height 1) first. An entry
        may repeat the previous set when only the consensus parameters changed."""
        return [(e[0], e[1]) for e in self._schedule]

    def consensus_schedule(self) -> list[tuple[int, ConsensusParams]]:
        return [(e[0], e[2]) for e in self._schedule]

    def validator_sets_by_hash(self) -> dict[bytes, ValidatorSet]:
        """Every validator set ever scheduled, by `ValidatorSet.hash()` (headers' validators_hash)."""
        return dict(self._sets_by_hash)

    def pending_schedule_entry(self) -> tuple[int, ValidatorSet, ConsensusParams] | None:
        """(first height, set, consensus params) of the schedule entry the next checkpoint
        boundary will write, if the committed adopted set or consensus parameters differ
        from the last entry; None if nothing is pending."""
        vs_raw = self.state_value(b"meta/validators")
        cp_raw = self.state_value(b"meta/consensus")
        last = self._schedule[-1]
        vs = last[3] if vs_raw is None else bytes(_unpack(vs_raw))
        cp = last[4] if cp_raw is None else bytes(_unpack(cp_raw))
        if vs == last[3] and cp == last[4]:
            return None
        boundary = (self.height // self._k + 1) * self._k
        return boundary + self._k + 1, decode_as(ValidatorSet, vs), decode_as(ConsensusParams, cp)

    def validators(self) -> ValidatorSet:
        """The committed adopted set (``meta/validators``): votes on proposals count against it."""
        raw = self.state_value(b"meta/validators")
        return self.genesis.validators if raw is None else decode_as(ValidatorSet, _unpack(raw))

    def current_params(self) -> tuple[ConsensusParams, VmParams, LedgerParams]:
        """The committed adopted consensus, VM and ledger parameters (``meta/*``)."""
        def get(name: bytes, cls: Any, default: Any) -> Any:
            raw = self.state_value(b"meta/" + name)
            return default if raw is None else decode_as(cls, _unpack(raw))
        g = self.genesis
        return get(b"consensus", ConsensusParams, g.consensus), get(b"vm", VmParams, g.vm), get(b"ledger", LedgerParams, g.ledger)

    def proposal(self, proposal_id: bytes) -> dict[str, Any] | None:
        """The committed proposal record ``gov/<id>`` (see the module docstring)."""
        return self._read(b"gov/" + proposal_id)  # type: ignore[no-any-return]

    def proposal_ids(self, *, open_only: bool = False, limit: int = MAX_PROPOSALS_LISTED) -> list[bytes]:
        """Proposal ids: all in proposal order (oldest first), or the open ones by deadline.
        (An open one whose deadline passed stays listed until a block expires it.)"""
        prefix = b"igd" if open_only else b"igp"
        return self._ids(prefix, limit)

    # ------------------------------------------------------------------ products

    def _product_register(self, ctx: _Ctx, b: B.ProductRegister) -> Any:
        self._member(ctx, "manufacturer")
        gkey = b"gtin/" + b.gtin.encode()
        owner = self._get(gkey)
        if owner is not None and owner != ctx.org:
            raise _Rejected(Reason.NOT_MANUFACTURER, f"GTIN {b.gtin} belongs to {owner}")
        pk = product_key(b.gtin, b.serial)
        if self._get(b"prod/" + pk) is not None:
            raise _Rejected(Reason.PRODUCT_EXISTS, f"product {b.gtin}/{b.serial} is already registered")
        if owner is None:
            self._put(gkey, ctx.org)
        p: dict[str, Any] = {"mfr": ctx.org, "model": b.model, "batch": b.batch, "prod_ms": b.production_time_ms, "reg_ms": ctx.time_ms,
             "owner": ctx.org, "seller": None, "sale_ms": 0, "order": None, "policy": None, "w_start": 0,
             "disp": "active", "hist": [], "pages": 0}
        self._history(pk, p, ["register", ctx.time_ms, ctx.event_id, ctx.org])
        self._put(b"prod/" + pk, p)
        return None

    def _product_transfer(self, ctx: _Ctx, b: B.ProductTransfer) -> Any:
        pk, p = self._product(b.gtin, b.serial)
        if p["owner"] != ctx.account:
            raise _Rejected(Reason.NOT_OWNER, f"{b.gtin}/{b.serial} is owned by {p['owner']}, not the sender")
        if p["disp"] == "destroyed" or p["disp"] == "inactive":
            raise _Rejected(Reason.PRODUCT_DECOMMISSIONED, "the product is decommissioned")
        if b.kind == "sale":
            self._member(ctx, "retailer", "manufacturer")
            if self._recalled(b.gtin, p["batch"]):
                raise _Rejected(Reason.PRODUCT_RECALLED, f"batch {p['batch']} of {b.gtin} is recalled")
        if b.to_org is not None:
            self._org_with_role(b.to_org, ("manufacturer", "retailer", "service_provider", "logistics"), "to_org")
            new_owner = b.to_org
        else:
            require(b.to_customer is not None, "schema: one recipient")
            new_owner = customer_account(b.to_customer or b"")
        if b.kind == "sale":
            p["seller"] = ctx.org
            p["sale_ms"] = ctx.time_ms
            p["order"] = b.order_ref_hash
            p["disp"] = "retail_sold"
        p["owner"] = new_owner
        self._history(pk, p, [b.kind, ctx.time_ms, ctx.event_id, new_owner])
        self._put(b"prod/" + pk, p)
        return None

    def _trace_record(self, ctx: _Ctx, b: B.TraceRecord) -> Any:
        self._member(ctx, "manufacturer", "retailer", "service_provider", "logistics")
        pk, p = self._product(b.gtin, b.serial)
        if p["disp"] in ("destroyed", "inactive"):
            raise _Rejected(Reason.PRODUCT_DECOMMISSIONED, "the product is decommissioned")
        p["disp"] = b.disposition
        self._history(pk, p, ["trace", ctx.time_ms, ctx.event_id, ctx.org, b.biz_step, b.disposition, b.location_hash, b.ref_hash])
        self._put(b"prod/" + pk, p)
        return None

    def _product_recall(self, ctx: _Ctx, b: B.ProductRecall) -> Any:
        self._member(ctx, "manufacturer")
        owner = self._get(b"gtin/" + b.gtin.encode())
        if owner is None:
            raise _Rejected(Reason.PRODUCT_UNKNOWN, f"no product with GTIN {b.gtin}")
        if owner != ctx.org:
            raise _Rejected(Reason.NOT_MANUFACTURER, f"GTIN {b.gtin} belongs to {owner}")
        rkey = b"recall/" + b.gtin.encode() + b"/" + b.batch.encode()
        if self._get(rkey) is not None:
            raise _Rejected(Reason.RECALL_EXISTS, f"batch {b.batch} of {b.gtin} is already recalled")
        self._put(rkey, {"by": ctx.org, "time": ctx.time_ms, "reason": b.reason_hash, "event": ctx.event_id})
        return None

    # ------------------------------------------------------------------ policies, warranty

    def _policy_register(self, ctx: _Ctx, b: B.PolicyRegister) -> Any:
        self._member(ctx, "manufacturer", "retailer", "service_provider")
        self._org_with_role(b.service_org, ("service_provider", "manufacturer", "retailer"), "service_org")
        if b.contract_id is not None and self._get(b"con/" + b.contract_id) is None:
            raise _Rejected(Reason.CONTRACT_UNKNOWN, "the policy names an unknown contract")
        self._put(b"pol/" + ctx.event_id, {
            "owner": ctx.org, "name": b.name, "service_org": b.service_org, "coverage_ms": b.coverage_period_ms,
            "faults": list(b.covered_faults), "fr_ms": b.first_response_ms, "res_ms": b.resolution_ms,
            "penalty": b.penalty_amount, "return_ms": b.return_window_ms, "contract": b.contract_id, "since": ctx.time_ms,
        })
        return {"policy_id": ctx.event_id}

    def _policy_terms(self, pid: bytes) -> PolicyTerms | None:
        p = self._get(b"pol/" + pid)
        if p is None:
            return None
        return PolicyTerms(policy_id=pid, owner_org=p["owner"], service_org=p["service_org"], coverage_period_ms=p["coverage_ms"],
                           covered_faults=tuple(p["faults"]), first_response_ms=p["fr_ms"], resolution_ms=p["res_ms"],
                           penalty_amount=p["penalty"], return_window_ms=p["return_ms"], contract_id=p["contract"])

    def _warranty_activate(self, ctx: _Ctx, b: B.WarrantyActivate) -> Any:
        self._member(ctx)
        pk, p = self._product(b.gtin, b.serial)
        pol = self._get(b"pol/" + b.policy_id)
        if pol is None:
            raise _Rejected(Reason.POLICY_UNKNOWN, "no such policy")
        if ctx.org not in (pol["owner"], p["seller"], p["mfr"]):
            raise _Rejected(Reason.NOT_OWNER, "only the policy owner, the seller or the manufacturer activates a warranty")
        if not p["owner"].startswith("cust:"):
            raise _Rejected(Reason.PRODUCT_NOT_SOLD, "the product is not owned by a customer")
        if p["policy"] is not None:
            raise _Rejected(Reason.WARRANTY_ACTIVE, "the product already has a warranty")
        p["policy"] = b.policy_id
        p["w_start"] = ctx.time_ms
        self._history(pk, p, ["warranty", ctx.time_ms, ctx.event_id, ctx.org, b.policy_id])
        self._put(b"prod/" + pk, p)
        return None

    # ------------------------------------------------------------------ contracts

    def _vm_allowed(self, vm_id: str, version: int) -> bool:
        return any(v.vm_id == vm_id and v.version == version for v in self.vm_params.vms)

    def _contract_deploy(self, ctx: _Ctx, b: B.ContractDeploy) -> Any:
        self._member(ctx, "manufacturer", "retailer", "service_provider", "logistics")
        if self.contracts is None:
            raise _Rejected(Reason.NO_HOST, "this chain's nodes run no contract host")
        if not self._vm_allowed(b.vm_id, b.vm_version) or not self.contracts.allowed(b.vm_id, b.vm_version):
            raise _Rejected(Reason.VM_NOT_ALLOWED, f"VM {b.vm_id} v{b.vm_version} is not allowed on this chain")
        try:
            reason = self.contracts.validate_code(b.vm_id, b.vm_version, b.code)
        except Exception as exc:
            reason = f"host error {type(exc).__name__}"
        if reason is not None:
            raise _Rejected(Reason.INVALID_CODE, reason[:200])
        code_hash = _sha(b.code)
        if self._get(b"code/" + code_hash) is None:
            self._put(b"code/" + code_hash, b.code)
        self._put(b"con/" + ctx.event_id, {"vm": b.vm_id, "version": b.vm_version, "code_hash": code_hash, "owner": ctx.org,
                                           "name": b.name, "since": ctx.time_ms})
        return {"contract_id": ctx.event_id}

    def _contract_call(self, ctx: _Ctx, b: B.ContractCall) -> Any:
        if self.contracts is None:
            raise _Rejected(Reason.NO_HOST, "this chain's nodes run no contract host")
        ref = self._contract_ref(b.contract_id)
        if ref is None:
            raise _Rejected(Reason.CONTRACT_UNKNOWN, "no such contract")
        if b.gas_limit > self.vm_params.max_gas_per_call or self._block_gas + b.gas_limit > self.vm_params.max_gas_per_block:
            raise _Rejected(Reason.GAS_LIMIT, f"gas limit {b.gas_limit} over the per-call or remaining block limit")
        cctx = CallContext(contract_id=b.contract_id, caller=ctx.account, caller_org=ctx.org, height=ctx.height,
                           time_ms=ctx.time_ms, event_id=ctx.event_id)
        try:
            res = self.contracts.call(ref, b.entry, b.args, _ContractState(self, b.contract_id), cctx, b.gas_limit)
        except Exception as exc:
            raise _Rejected(Reason.CALL_FAILED, f"host error {type(exc).__name__}") from None
        self._block_gas += min(max(0, res.gas_used), b.gas_limit)
        if res.status != "ok":
            raise _Rejected(Reason.CALL_FAILED, f"{res.status}: {res.error[:200]} (gas {res.gas_used})")
        if not self._valid_writes(res.writes):
            raise _Rejected(Reason.CALL_FAILED, "invalid_output: writes break the limits")
        self._apply_writes(b.contract_id, res.writes)
        return {"status": res.status, "gas_used": res.gas_used, "output": res.output[:MAX_WRITE_VALUE]}

    # ------------------------------------------------------------------ tickets

    def _quality(self, org: str, time_ms: int) -> dict[str, Any]:
        q = self._get(b"q/" + org.encode())
        if q is None:
            n = len(QUALITY_BUCKETS_MS) + 1
            q = {"since": time_ms, "handled": 0, "resolved": 0, "breaches": 0, "fr": [0] * n, "fr_n": 0, "fr_max": 0,
                 "res": [0] * n, "res_n": 0, "res_max": 0, "r_sum": 0, "r_n": 0}
        return q  # type: ignore[no-any-return]

    @staticmethod
    def _sample(q: dict[str, Any], name: str, ms: int) -> None:
        i = 0
        while i < len(QUALITY_BUCKETS_MS) and ms > QUALITY_BUCKETS_MS[i]:
            i += 1
        q[name][i] += 1
        q[name + "_n"] += 1
        q[name + "_max"] = max(q[name + "_max"], ms)

    def _ticket(self, tid: bytes) -> dict[str, Any]:
        t = self._get(b"t/" + tid)
        if t is None:
            raise _Rejected(Reason.TICKET_UNKNOWN, f"no ticket {tid.hex()[:16]}")
        return t  # type: ignore[no-any-return]

    def _authorise(self, ctx: _Ctx, t: dict[str, Any], action: str) -> str:
        """Check (action, status) is in the table and the sender may do it; return the new status."""
        is_return = t["kind"] == "return"
        if action not in ANY_KIND_ACTIONS and (action in RETURN_ACTIONS) != is_return:
            raise _Rejected(Reason.TICKET_KIND, f"{action} does not apply to a {t['kind']} ticket")
        entry = TRANSITIONS.get((action, t["status"]))
        if entry is None:
            raise _Rejected(Reason.TRANSITION, f"cannot {action} a ticket that is {t['status']}")
        to, who = entry
        ok = (
            (CUSTOMER in who and ctx.sender == t["cust"])
            or (ORG in who and ctx.org is not None and ctx.org == t["org"])
            or (OWNER in who and ctx.org is not None and t["policy"] is not None
                and (self._get(b"pol/" + t["policy"]) or {}).get("owner") == ctx.org)
        )
        if not ok and LOGISTICS in who and ctx.org is not None:
            self._member(ctx, "logistics")
            ok = True
        if not ok:
            if who == {CUSTOMER}:
                raise _Rejected(Reason.NOT_CUSTOMER, "only the ticket's customer may do this")
            raise _Rejected(Reason.NOT_ASSIGNED, f"only the assigned organisation ({t['org']}) may do this")
        if len(t["hist"]) >= MAX_TICKET_CHANGES and to != t["status"] and to not in FINAL:
            raise _Rejected(Reason.HISTORY_FULL, f"the ticket has {MAX_TICKET_CHANGES} status changes; it can only end")
        return to

    def _transition(self, t: dict[str, Any], tid: bytes, action: str, who: str, time_ms: int, event_id: bytes | None,
                    note: str | None = None) -> None:
        entry = TRANSITIONS.get((action, t["status"]))
        require(entry is not None and who in entry[1], f"transition {action} from {t['status']} by {who} is not in the table")
        to = entry[0] if entry is not None else t["status"]
        if to != t["status"]:
            self._idx[_ticket_index_org(t["org"], t["status"], tid)] = None
            self._idx[_ticket_index_org(t["org"], to, tid)] = b""
            t["status"] = to
            if len(t["hist"]) < MAX_TICKET_CHANGES + 8:  # room for system changes and the end
                t["hist"].append([to, time_ms, event_id, note])
        elif note is not None and len(t["notes"]) < MAX_TICKET_CHANGES:
            t["notes"].append(note)

    def _new_ticket(self, ctx: _Ctx, kind: str, pk: bytes, p: dict[str, Any], gtin: str, serial: str, status: str,
                    extra: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
        tid = ctx.event_id
        policy = p["policy"]
        pol = self._get(b"pol/" + policy) if policy is not None else None
        org = pol["service_org"] if pol is not None else (p["seller"] or p["mfr"])
        t = {"kind": kind, "gtin": gtin, "serial": serial, "cust": ctx.sender, "org": org, "policy": policy,
             "status": status, "opened": ctx.time_ms, "ack": None, "resolved": None, "closed": None,
             "fr_due": None, "res_due": None, "ac_due": None, "paused": None, "breaches": 0, "penalties": 0,
             "escrow": None, "rating": None, "reason": None, "resolution": None,
             "hist": [[status, ctx.time_ms, ctx.event_id, None]], "notes": [], **extra}
        if pol is not None and kind != "return":
            t["fr_due"] = ctx.time_ms + pol["fr_ms"]
            t["res_due"] = ctx.time_ms + pol["res_ms"]
        self._idx[_ticket_index_org(org, status, tid)] = b""
        self._idx[b"itp" + pk + tid] = b""
        self._idx[b"itc" + ctx.sender + tid] = b""
        q = self._quality(org, ctx.time_ms)
        q["handled"] += 1
        self._put(b"q/" + org.encode(), q)
        self._history(pk, p, [(kind == "return" and "return") or "ticket", ctx.time_ms, ctx.event_id, kind])
        self._put(b"prod/" + pk, p)
        return tid, t

    def _customer_product(self, ctx: _Ctx, gtin: str, serial: str) -> tuple[bytes, dict[str, Any]]:
        if ctx.org is not None:
            raise _Rejected(Reason.NOT_CUSTOMER, "tickets are opened by customers (the product's owner)")
        pk, p = self._product(gtin, serial)
        if not p["owner"].startswith("cust:"):
            raise _Rejected(Reason.PRODUCT_NOT_SOLD, "the product is not owned by a customer")
        if p["owner"] != ctx.account:
            raise _Rejected(Reason.NOT_OWNER, "only the product's owner opens tickets about it")
        return pk, p

    def _ticket_open(self, ctx: _Ctx, b: B.TicketOpen) -> Any:
        pk, p = self._customer_product(ctx, b.gtin, b.serial)
        decision: ClaimDecision | None = None
        failure = None
        policy = self._policy_terms(p["policy"]) if p["policy"] is not None else None
        if policy is not None and b.kind in ("repair", "refund"):
            inp = ClaimInput(policy=policy, ticket_id=ctx.event_id, kind=b.kind, fault_type=b.fault_type, gtin=b.gtin,
                             serial=b.serial, batch=p["batch"], recalled=self._recalled(b.gtin, p["batch"]),
                             customer=ctx.account, warranty_start_ms=p["w_start"], sale_time_ms=p["sale_ms"],
                             now_ms=ctx.time_ms)
            decision, failure = self._call_hook("claim_eligibility", policy, inp)
        tid, t = self._new_ticket(ctx, b.kind, pk, p, b.gtin, b.serial, "opened",
                                  {"fault": b.fault_type, "desc": b.description_hash, "att": list(b.attachments)})
        if failure:
            t["notes"].append(f"hook_failed:{failure}")
        if decision is not None and not decision.covered:
            t["reason"] = decision.reason
            t["fr_due"] = t["res_due"] = None
            self._transition(t, tid, "claim_reject", SYSTEM, ctx.time_ms, None, f"claim:{decision.reason}")
            self._on_final(t, tid, ctx.time_ms)
        elif t["fr_due"] is not None:
            self._dl_add(t["fr_due"], DL_FIRST, tid)
            self._dl_add(t["res_due"], DL_RESOLUTION, tid)
        self._put(b"t/" + tid, t)
        return {"ticket_id": tid, "status": t["status"]}

    _SIMPLE_ACTIONS: ClassVar[dict[str, str]] = {
        "ticket.ack": "ack", "ticket.escalate": "escalate", "ticket.resolve": "resolve", "ticket.reject": "reject",
        "ticket.confirm": "confirm", "ticket.reopen": "reopen", "ticket.close": "close", "return.reject": "return_reject",
    }

    def _ticket_simple(self, ctx: _Ctx, b: Any) -> Any:
        action = self._SIMPLE_ACTIONS[b.EVENT_TYPE]
        tid = b.ticket_id
        t = self._ticket(tid)
        self._authorise(ctx, t, action)
        now = ctx.time_ms
        if action == "ack":
            self._dl_del(t["fr_due"], DL_FIRST, tid)
            t["fr_due"] = None
            t["ack"] = now
            q = self._quality(t["org"], now)
            self._sample(q, "fr", now - t["opened"])
            self._put(b"q/" + t["org"].encode(), q)
        elif action == "resolve":
            self._clear_sla(t, tid)
            if t["resolved"] is None:
                q = self._quality(t["org"], now)
                q["resolved"] += 1
                self._sample(q, "res", now - t["opened"])
                self._put(b"q/" + t["org"].encode(), q)
            t["resolved"] = now
            t["resolution"] = b.resolution
            t["ac_due"] = now + self.params.auto_close_delay_ms
            self._dl_add(t["ac_due"], DL_AUTO_CLOSE, tid)
        elif action in ("reject", "return_reject"):
            self._clear_sla(t, tid)
            t["reason"] = b.reason_code
        elif action == "reopen":
            self._dl_del(t["ac_due"], DL_AUTO_CLOSE, tid)
            t["ac_due"] = None
            pol = self._get(b"pol/" + t["policy"]) if t["policy"] is not None else None
            if pol is not None:
                t["res_due"] = now + pol["res_ms"]
                self._dl_add(t["res_due"], DL_RESOLUTION, tid)
        elif action in ("confirm", "close"):
            self._clear_sla(t, tid)
            self._dl_del(t["ac_due"], DL_AUTO_CLOSE, tid)
            t["ac_due"] = None
        self._transition(t, tid, action, CUSTOMER if ctx.org is None else ORG, now, ctx.event_id)
        if t["status"] in FINAL:
            self._on_final(t, tid, now)
        self._put(b"t/" + tid, t)
        return None

    def _clear_sla(self, t: dict[str, Any], tid: bytes) -> None:
        self._dl_del(t["fr_due"], DL_FIRST, tid)
        self._dl_del(t["res_due"], DL_RESOLUTION, tid)
        t["fr_due"] = t["res_due"] = None
        t["paused"] = None

    def _on_final(self, t: dict[str, Any], tid: bytes, now: int) -> None:
        if t["closed"] is None:
            t["closed"] = now

    def _ticket_update(self, ctx: _Ctx, b: B.TicketUpdate) -> Any:
        tid = b.ticket_id
        t = self._ticket(tid)
        action = "progress" if b.status == "in_progress" else "wait"
        self._authorise(ctx, t, action)
        now = ctx.time_ms
        if action == "wait":
            self._dl_del(t["fr_due"], DL_FIRST, tid)
            self._dl_del(t["res_due"], DL_RESOLUTION, tid)
            t["paused"] = now
        elif t["status"] == "waiting_customer" and t["paused"] is not None:
            delta = now - t["paused"]
            t["paused"] = None
            if t["fr_due"] is not None:
                t["fr_due"] += delta
                self._dl_add(t["fr_due"], DL_FIRST, tid)
            if t["res_due"] is not None:
                t["res_due"] += delta
                self._dl_add(t["res_due"], DL_RESOLUTION, tid)
        self._transition(t, tid, action, CUSTOMER if ctx.org is None else ORG, now, ctx.event_id,
                         None if b.note_hash is None else "note")
        self._put(b"t/" + tid, t)
        return None

    def _ticket_assign(self, ctx: _Ctx, b: B.TicketAssign) -> Any:
        tid = b.ticket_id
        t = self._ticket(tid)
        self._authorise(ctx, t, "assign")
        self._org_with_role(b.org_id, ("service_provider", "manufacturer", "retailer"), "org_id")
        if b.org_id != t["org"]:
            self._idx[_ticket_index_org(t["org"], t["status"], tid)] = None
            self._idx[_ticket_index_org(b.org_id, t["status"], tid)] = b""
            q = self._quality(b.org_id, ctx.time_ms)
            q["handled"] += 1
            self._put(b"q/" + b.org_id.encode(), q)
            t["org"] = b.org_id
        if len(t["notes"]) < MAX_TICKET_CHANGES:
            t["notes"].append(f"assign:{b.org_id}")
        self._put(b"t/" + tid, t)
        return None

    # ------------------------------------------------------------------ returns, shipments

    def _return_request(self, ctx: _Ctx, b: B.ReturnRequest) -> Any:
        pk, p = self._customer_product(ctx, b.gtin, b.serial)
        tid, t = self._new_ticket(ctx, "return", pk, p, b.gtin, b.serial, "return_requested",
                                  {"fault": b.reason_code, "desc": b.reason_hash, "att": [], "ship": [], "carrier": None})
        self._put(b"t/" + tid, t)
        return {"ticket_id": tid}

    def _return_approve(self, ctx: _Ctx, b: B.ReturnApprove) -> Any:
        tid = b.ticket_id
        t = self._ticket(tid)
        self._authorise(ctx, t, "approve")
        _, p = self._product(t["gtin"], t["serial"])
        pol = self._get(b"pol/" + t["policy"]) if t["policy"] is not None else None
        window = (pol["return_ms"] if pol is not None else 0) or self.params.default_return_window_ms
        if ctx.time_ms > p["sale_ms"] + window:
            raise _Rejected(Reason.RETURN_WINDOW, f"the return window of {window} ms after the sale has passed")
        self._transition(t, tid, "approve", ORG, ctx.time_ms, ctx.event_id)
        self._put(b"t/" + tid, t)
        return None

    def _shipment_checkpoint(self, ctx: _Ctx, b: B.ShipmentCheckpoint) -> Any:
        tid = b.ticket_id
        t = self._ticket(tid)
        self._member(ctx, "logistics")
        action = "checkpoint" if t["kind"] == "return" else "ship"  # returns move on; repairs only record it
        self._authorise(ctx, t, action)
        carrier = t.get("carrier")
        if carrier is not None and carrier != ctx.org:
            raise _Rejected(Reason.NOT_ASSIGNED, f"the shipment is carried by {carrier}")
        ship = t.setdefault("ship", [])
        if len(ship) >= MAX_TICKET_CHANGES:
            raise _Rejected(Reason.HISTORY_FULL, f"the ticket has {MAX_TICKET_CHANGES} shipment checkpoints")
        t["carrier"] = ctx.org
        ship.append([b.checkpoint, ctx.time_ms, ctx.org, b.location_hash, b.tracking_hash])
        self._transition(t, tid, action, LOGISTICS, ctx.time_ms, ctx.event_id, f"checkpoint:{b.checkpoint}")
        self._put(b"t/" + tid, t)
        return None

    def _return_receive(self, ctx: _Ctx, b: B.ReturnReceive) -> Any:
        tid = b.ticket_id
        t = self._ticket(tid)
        self._authorise(ctx, t, "receive")
        esc = self._get(b"esc/" + t["escrow"]) if t["escrow"] is not None else None
        policy = self._policy_terms(t["policy"]) if t["policy"] is not None else None
        _, p = self._product(t["gtin"], t["serial"])
        inp = ReturnInput(policy=policy, ticket_id=tid, condition=b.condition,
                          escrow_amount=esc["amount"] if esc is not None and esc["state"] == "held" else 0,
                          customer=customer_account(t["cust"]), requested_ms=t["opened"], received_ms=ctx.time_ms,
                          sale_time_ms=p["sale_ms"])
        decision, failure = self._call_hook("return_decision", policy, inp)
        now = ctx.time_ms
        self._transition(t, tid, "receive", ORG, now, ctx.event_id, f"condition:{b.condition}")
        note = f"decision:{decision.reason}" + (f";hook_failed:{failure}" if failure else "")
        if esc is not None and esc["state"] == "held":
            if decision.refund:
                self._settle(esc, "released")
            else:
                self._settle(esc, "refunded")
            self._put(b"esc/" + t["escrow"], esc)
        self._transition(t, tid, "refund" if decision.refund else "keep", SYSTEM, now, None, note)
        t["reason"] = decision.reason
        self._on_final(t, tid, now)
        self._put(b"t/" + tid, t)
        return {"refund": decision.refund, "reason": decision.reason}

    # ------------------------------------------------------------------ escrow

    def _settle(self, esc: dict[str, Any], state: str) -> None:
        to = esc["payee"] if state == "released" else esc["payer"]
        self._put(b"bal/" + to.encode(), self._balance(to) + esc["amount"])
        esc["state"] = state

    def _escrow_deposit(self, ctx: _Ctx, b: B.EscrowDeposit) -> Any:
        if b.payee_org is not None:
            if self._get(b"org/" + b.payee_org.encode()) is None:
                raise _Rejected(Reason.ORG_UNKNOWN, f"payee_org: no organisation {b.payee_org!r}")
            payee = b.payee_org
        else:
            payee = customer_account(b.payee_customer or b"")
        t = None
        if b.ticket_id is not None:
            t = self._ticket(b.ticket_id)
            if t["kind"] != "return" or t["status"] not in RETURN_OPEN or t["escrow"] is not None:
                raise _Rejected(Reason.ESCROW_TICKET, "the ticket is not an open return without an escrow")
            if payee != customer_account(t["cust"]):
                raise _Rejected(Reason.ESCROW_TICKET, "a return's escrow is payable to its customer")
        have = self._balance(ctx.account)
        if have < b.amount:
            raise _Rejected(Reason.INSUFFICIENT_FUNDS, f"balance {have} is below {b.amount}")
        self._put(b"bal/" + ctx.account.encode(), have - b.amount)
        self._put(b"esc/" + ctx.event_id, {"amount": b.amount, "payer": ctx.account, "payee": payee, "state": "held",
                                          "ticket": b.ticket_id, "ref": b.ref_hash, "since": ctx.time_ms})
        if t is not None and b.ticket_id is not None:
            t["escrow"] = ctx.event_id
            self._put(b"t/" + b.ticket_id, t)
        return {"escrow_id": ctx.event_id}

    def _escrow_settle(self, ctx: _Ctx, b: B.EscrowRelease | B.EscrowRefund) -> Any:
        esc = self._get(b"esc/" + b.escrow_id)
        if esc is None:
            raise _Rejected(Reason.ESCROW_UNKNOWN, "no such escrow")
        release = isinstance(b, B.EscrowRelease)
        party = esc["payer"] if release else esc["payee"]
        if ctx.account != party:
            raise _Rejected(Reason.NOT_PARTY, f"only the {'payer' if release else 'payee'} may do this")
        if esc["state"] != "held":
            raise _Rejected(Reason.ESCROW_NOT_HELD, f"the escrow is {esc['state']}")
        if esc["ticket"] is not None:
            raise _Rejected(Reason.ESCROW_BOUND, "the escrow is bound to a return; its outcome decides it")
        self._settle(esc, "released" if release else "refunded")
        self._put(b"esc/" + b.escrow_id, esc)
        return None

    # ------------------------------------------------------------------ ratings

    def _rating_submit(self, ctx: _Ctx, b: B.RatingSubmit) -> Any:
        t = self._ticket(b.ticket_id)
        if ctx.sender != t["cust"]:
            raise _Rejected(Reason.NOT_CUSTOMER, "only the ticket's customer rates it")
        if t["status"] not in FINAL:
            raise _Rejected(Reason.RATING_NOT_CLOSED, f"the ticket is {t['status']}, not finished")
        if t["rating"] is not None:
            raise _Rejected(Reason.RATING_EXISTS, "the ticket is already rated")
        t["rating"] = [b.score, b.comment_hash, ctx.time_ms]
        q = self._quality(t["org"], ctx.time_ms)
        q["r_sum"] += b.score
        q["r_n"] += 1
        self._put(b"q/" + t["org"].encode(), q)
        self._put(b"t/" + b.ticket_id, t)
        return None

    # ------------------------------------------------------------------ consensus evidence

    def _validator_keys(self, height: int) -> frozenset[bytes]:
        """Keys of V(height) (`validators_for`); for a height whose set is not known yet
        here, the newest set of the schedule."""
        vs = self.validators_for(height) if height >= 1 else None
        if vs is None:
            vs = self._schedule[-1][1] if self._schedule else self.genesis.validators
        return frozenset(bytes(v) for v in vs.validators)

    def _evidence_key(self, sender: bytes, b: B.ConsensusEvidence, height: int) -> tuple[bytes, dict[str, Any]]:
        """The state key and record of valid, new-looking evidence reported by `sender` in
        block `height`; raises `_Rejected`. The reporter must be in V(height), the signer
        in V(seq) of the slot (V(height) for view changes / new views, whose seq is 0)."""
        if sender not in self._validator_keys(height):
            raise _Rejected(Reason.NOT_VALIDATOR, "consensus.evidence needs a validator key")
        try:
            ev = decode_as(Evidence, b.evidence, max_bytes=B.MAX_EVIDENCE_BYTES)
        except ProtocolError as exc:
            raise _Rejected(Reason.EVIDENCE_INVALID, f"not an encoded consensus Evidence: {exc}") from None
        first, second = ev.first, ev.second
        if not isinstance(first, SignedMessage) or isinstance(first, SignedStatus):
            raise _Rejected(Reason.EVIDENCE_INVALID, "evidence must be two signed votes or proposals (not STATUS)")
        phase, view, seq, digest1 = phase_key(first)
        if phase_key(second)[:3] != (phase, view, seq):
            raise _Rejected(Reason.EVIDENCE_INVALID, "the two messages are for different (phase, view, seq)")
        if phase_key(second)[3] == digest1:
            raise _Rejected(Reason.EVIDENCE_INVALID, "the two messages do not conflict (same digest)")
        signer = bytes(first.body.replica)  # type: ignore[attr-defined]
        if bytes(second.body.replica) != signer:  # type: ignore[attr-defined]
            raise _Rejected(Reason.EVIDENCE_INVALID, "the two messages name different signers")
        if signer not in self._validator_keys(seq if seq >= 1 else height):
            raise _Rejected(Reason.EVIDENCE_INVALID, f"signer {signer.hex()[:16]} is not a validator at that height")
        for i, m in enumerate((first, second)):
            if not verify_raw(signer, m.signature, sign_bytes(m.DOMAIN, self.chain_id, m.body)):  # type: ignore[attr-defined]
                raise _Rejected(Reason.EVIDENCE_INVALID, f"signature of message {i + 1} does not verify for the signer")
        key = b"evidence/" + signer + b"/" + phase.encode() + b"/" + _u64(view) + _u64(seq)
        return key, {"validator": signer, "phase": phase, "view": view, "seq": seq, "reporter": sender}

    def _evidence_duplicate(self, key: bytes, rec: dict[str, Any]) -> _Rejected:
        return _Rejected(Reason.EVIDENCE_DUPLICATE, f"evidence against {rec['validator'].hex()[:16]} for {rec['phase']} "
                                                    f"view {rec['view']} seq {rec['seq']} is already recorded")

    def _consensus_evidence(self, ctx: _Ctx, b: B.ConsensusEvidence) -> Any:
        key, rec = self._evidence_key(ctx.sender, b, ctx.height)
        if self._get(key) is not None:
            raise self._evidence_duplicate(key, rec)
        self._put(key, {**rec, "event": ctx.event_id, "height": ctx.height, "time": ctx.time_ms})
        return {"validator": rec["validator"]}

    def evidence(self, *, validator: bytes | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Recorded equivocation evidence (committed state), by validator, phase, view, seq."""
        prefix = b"vevidence/" + (validator + b"/" if validator is not None else b"")
        out = []
        for _, raw in self.kv.scan(prefix, prefix + b"\xff" * 80):
            out.append(_unpack(raw))
            if len(out) >= limit:
                break
        return out

    # ------------------------------------------------------------------ reads (committed state)

    def state_value(self, key: bytes) -> bytes | None:
        """The committed msgpack value of a state key (what the SMT commits to)."""
        return self.kv.get(b"v" + key)

    def _read(self, key: bytes) -> Any:
        raw = self.state_value(key)
        return None if raw is None else _unpack(raw)

    def prove(self, key: bytes) -> tuple[bytes | None, SmtProof]:
        """(value, proof) of a state key against `state_root` (membership or absence)."""
        tree = SparseMerkleTree(self._nodes, self.state_root)
        return self.state_value(key), tree.prove(key)

    def root_at(self, height: int) -> bytes | None:
        return self.kv.get(b"r" + _u64(height))

    def history_window(self) -> tuple[int, int]:
        """(lowest, highest) height whose state `value_at` / `prove_at` can read: the last
        `KEEP_ROOTS` heights (the oldest one only if its undo records are all stored)."""
        return max(0, self.height - KEEP_ROOTS + 1), self.height

    def value_at(self, key: bytes, height: int) -> bytes | None:
        """The committed msgpack value of a state key as of `height` (None: absent then).

        Reads the current value, then undoes the blocks ``height+1 .. self.height`` that
        changed the key (newest first; the undo record of block j holds each changed key's
        value before j). Raises `LookupError` if `height` is outside `history_window` or
        an undo record is missing (a store written before undo records existed).
        """
        lo, hi = self.history_window()
        if not lo <= height <= hi:
            raise LookupError(f"height {height} is outside the readable window {lo}..{hi}")
        value = self.state_value(key)
        for h in range(self.height, height, -1):
            prev = self._undo(h)
            if key in prev:
                value = prev[key]
        return value

    def prove_at(self, key: bytes, height: int) -> tuple[bytes | None, SmtProof]:
        """(value, proof) of a state key against `root_at(height)` (see `value_at`)."""
        root = self.root_at(height)
        if root is None:
            raise LookupError(f"no state root kept for height {height}")
        value = self.value_at(key, height)
        return value, SparseMerkleTree(self._nodes, root).prove(key)

    def _undo(self, height: int) -> dict[bytes, bytes | None]:
        cached = self._undo_cache.get(height)
        if cached is not None:
            return cached
        raw = self.kv.get(b"u" + _u64(height))
        if raw is None:
            raise LookupError(f"no undo record for height {height}")
        rec = {bytes(k): v for k, v in msgpack.unpackb(raw, raw=True)}
        if len(self._undo_cache) >= 64:
            self._undo_cache.pop(next(iter(self._undo_cache)))
        self._undo_cache[height] = rec
        return rec

    def ticket(self, ticket_id: bytes) -> dict[str, Any] | None:
        return self._read(b"t/" + ticket_id)  # type: ignore[no-any-return]

    def _ids(self, prefix: bytes, limit: int) -> list[bytes]:
        out = []
        for k, _ in self.kv.scan(prefix, prefix + b"\xff" * 40):
            out.append(k[-32:])
            if len(out) >= limit:
                break
        return out

    def tickets_by_org(self, org: str, status: str | None = None, *, limit: int = 1000) -> list[bytes]:
        prefix = b"ito" + org.encode() + b"\0" + (status.encode() + b"\0" if status is not None else b"")
        return self._ids(prefix, limit)

    def tickets_by_customer(self, customer: bytes, *, limit: int = 1000) -> list[bytes]:
        return self._ids(b"itc" + customer, limit)

    def tickets_by_product(self, gtin: str, serial: str, *, limit: int = 1000) -> list[bytes]:
        return self._ids(b"itp" + product_key(gtin, serial), limit)

    def upcoming_deadlines(self, until_ms: int, *, org: str | None = None, limit: int = 1000) -> list[tuple[int, str, bytes]]:
        """(due ms, kind, ticket id) of pending deadlines due by `until_ms`, soonest first;
        with `org`, only tickets assigned to it ("which are about to breach?")."""
        out = []
        for k, _ in self.kv.scan(b"idl", b"idl" + _u64(until_ms + 1)):
            tid = k[12:]
            if org is not None and (self.ticket(tid) or {}).get("org") != org:
                continue
            out.append((int.from_bytes(k[3:11], "big"), ("first_response", "resolution", "auto_close")[k[11]], tid))
            if len(out) >= limit:
                break
        return out

    def product(self, gtin: str, serial: str) -> dict[str, Any] | None:
        return self._read(b"prod/" + product_key(gtin, serial))  # type: ignore[no-any-return]

    def product_history(self, gtin: str, serial: str) -> list[Any]:
        pk = product_key(gtin, serial)
        p = self._read(b"prod/" + pk)
        if p is None:
            return []
        out: list[Any] = []
        for i in range(p["pages"]):
            out.extend(self._read(b"ph/" + pk + i.to_bytes(4, "big")))
        return out + list(p["hist"])

    def recall(self, gtin: str, batch: str) -> dict[str, Any] | None:
        """The recall of (gtin, batch), if any: who, when, reason hash."""
        return self._read(b"recall/" + gtin.encode() + b"/" + batch.encode())  # type: ignore[no-any-return]

    def org(self, org_id: str) -> dict[str, Any] | None:
        return self._read(b"org/" + org_id.encode())  # type: ignore[no-any-return]

    def orgs(self, *, limit: int = 4096) -> list[tuple[str, dict[str, Any]]]:
        """(org id, record) of every organisation ever a member (removed ones carry
        ``removed``), in org id order: genesis members and those admitted by governance."""
        out = []
        for k, raw in self.kv.scan(b"vorg/", b"vorg0"):
            out.append((k[5:].decode(), _unpack(raw)))
            if len(out) >= limit:
                break
        return out

    def contract(self, contract_id: bytes) -> dict[str, Any] | None:
        """vm, version, code_hash, owner, name, since (the code itself is ``code/<code_hash>``)."""
        return self._read(b"con/" + contract_id)  # type: ignore[no-any-return]

    def escrow(self, escrow_id: bytes) -> dict[str, Any] | None:
        return self._read(b"esc/" + escrow_id)  # type: ignore[no-any-return]

    def balance(self, account: str) -> int:
        v = self._read(b"bal/" + account.encode())
        return 0 if v is None else int(v)

    def nonce(self, key: bytes) -> int:
        a = self._read(b"acct/" + key)
        return 0 if a is None else int(a["nonce"])

    def policy(self, policy_id: bytes) -> dict[str, Any] | None:
        return self._read(b"pol/" + policy_id)  # type: ignore[no-any-return]

    def has_outcome(self, event_id: bytes) -> bool:
        """Whether an event with this id is in a block executed here (accepted or refused)."""
        return self.kv.get(b"o" + event_id) is not None

    def event_outcome(self, event_id: bytes) -> Outcome | None:
        raw = self.kv.get(b"o" + event_id)
        if raw is None:
            return None
        h, i, code, message, detail = _unpack(raw)
        return Outcome(event_id, h, i, code, message, detail)

    def stored_block(self, height: int) -> tuple[int, list[bytes]] | None:
        """(time_ms, raw events) of a block applied here (when `keep_blocks`)."""
        raw = self.kv.get(b"b" + _u64(height))
        if raw is None:
            return None
        t, evs = _unpack(raw)
        return t, list(evs)

    def quality(self, org: str) -> dict[str, Any] | None:
        """The service-quality report of `org` (integers; see the module docstring)."""
        q = self._read(b"q/" + org.encode())
        if q is None:
            return None
        return {
            "since_ms": q["since"], "tickets": q["handled"], "resolved": q["resolved"],
            "resolution_rate_permille": q["resolved"] * 1000 // q["handled"] if q["handled"] else 0,
            "median_first_response_ms": _median(q["fr"], q["fr_n"], q["fr_max"]),
            "median_resolution_ms": _median(q["res"], q["res_n"], q["res_max"]),
            "first_responses": q["fr_n"], "breaches": q["breaches"], "ratings": q["r_n"],
            "mean_rating_centi": q["r_sum"] * 100 // q["r_n"] if q["r_n"] else 0,
        }


def _median(hist: list[int], n: int, largest: int) -> int | None:
    if n == 0:
        return None
    rank = (n + 1) // 2
    seen = 0
    for i, c in enumerate(hist):
        seen += c
        if seen >= rank:
            return QUALITY_BUCKETS_MS[i] if i < len(QUALITY_BUCKETS_MS) else largest
    return largest  # pragma: no cover - counts always add up to n


class _ContractState:
    """`StateReader` over one contract's namespace at the current point of the block."""

    __slots__ = ("_cid", "_led")

    def __init__(self, led: Ledger, cid: bytes) -> None:
        self._led = led
        self._cid = cid

    def get(self, key: bytes) -> bytes | None:
        v = self._led._get(b"cs/" + self._cid + b"/" + key)
        return v if isinstance(v, bytes) else None


_MEMBER_ROLES: dict[str, tuple[str, ...]] = {
    "product.register": ("manufacturer",), "product.recall": ("manufacturer",),
    "trace.record": ("manufacturer", "retailer", "service_provider", "logistics"),
    "policy.register": ("manufacturer", "retailer", "service_provider"), "warranty.activate": (),
    "contract.deploy": ("manufacturer", "retailer", "service_provider", "logistics"),
    "ticket.ack": (), "ticket.assign": (), "ticket.resolve": (), "ticket.reject": (), "return.approve": (),
    "return.reject": (), "return.receive": (), "shipment.checkpoint": ("logistics",),
}
"""Member-only event types and the roles one of which the sender's org needs (() = any role);
used by `Ledger.check` (execution checks the same and more)."""


def iter_blocks(led: Ledger, start: int = 1) -> Iterator[tuple[int, int, list[bytes]]]:
    """(height, time_ms, raw events) of the stored blocks from `start` to the ledger's height."""
    for h in range(start, led.height + 1):
        blk = led.stored_block(h)
        if blk is None:
            return
        yield h, blk[0], blk[1]
