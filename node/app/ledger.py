"""The after-sales ledger: a deterministic state machine over signed events (the facade).

Owns: executing committed blocks (`Ledger.apply_block`: block-start work, the dispatch of
each event to its domain's handler, the block record) and the mempool pre-check
(`Ledger.check`). The state lives behind `node.app.state.State` (every state key, see
`protocol.state_keys`, is in the sparse Merkle tree); the rules live in one module per
domain: `orgs`, `products`, `policies` (policies, warranty, contracts, agreement hooks),
`lifecycle` / `tickets` / `sla`, `returns` (returns, shipments, escrow), `quality`
(quality, ratings), `governance`, `schedule` (validator schedule), `evidence`, `nodes`
(member node keys); reads in `queries`. Handlers take the environment (`context.Env`) and the event (`context.Ctx`).

Invariants
- Determinism: the state root after a block is a function of (genesis, the blocks so
  far) only. No clock, no randomness, no dict-order or hash-seed dependence: every loop
  over several keys goes in sorted key order or event order; times are block times.
- A block is applied atomically (one store batch, `State.commit`); after `apply_block`
  raises for a non-content reason (storage error, broken invariant) this instance is
  unusable: reopen it from the store.
- `apply_block` never raises on event content: every event gets one outcome, ``ok`` or a
  stable reason code (`node.app.codes`), retrievable by event id. A rejected event
  changes nothing except its outcome record and, if its handler refused it, its sender's
  nonce (so a refused event can never be replayed later).
- Money is conserved: only transfers between accounts and escrows (genesis is the only
  source); balances never go negative.

Nonces: an event is accepted only with nonce = the sender key's last accepted nonce + 1
(the first is 1). Customers (non-member keys) are registered on their first accepted
event (``acct/<key>`` with ``org = None``).

Block order: (1) due SLA deadlines, then expired governance proposals; (2) the events in
block order; (3) the block record ``blk/<height>`` whose ``outcomes`` is the Merkle root
over the events in order of SHA-256(event id || outcome record), the record being msgpack
``[height, index, code, message, detail]`` (for undecodable bytes the "event id" is
SHA-256 of the bytes); (4) at a checkpoint boundary, the validator schedule entry.
"""

from __future__ import annotations

import gc
from collections.abc import Container, Iterator, Sequence
from typing import Any

from afterchain.node.app import evidence as _evidence
from afterchain.node.app import governance, nodes, policies, products, quality, queries, returns, tickets
from afterchain.node.app.codes import OK, Reason
from afterchain.node.app.context import BlockResult, Ctx, Env, Handler, Outcome, Rejected
from afterchain.node.app.evidence import EvidenceCheck
from afterchain.node.app.governance import MAX_GOV_EXPIRIES_PER_BLOCK, load_params, meta_raw
from afterchain.node.app.hooks import AgreementHooks, ContractHost, customer_account
from afterchain.node.app.lifecycle import MAX_TICKET_CHANGES, TRANSITIONS
from afterchain.node.app.quality import QUALITY_BUCKETS_MS
from afterchain.node.app.schedule import Schedule
from afterchain.node.app.sla import process_deadlines
from afterchain.node.app.state import State, pack, sha256, unpack
from afterchain.node.app.store import KV, NodeCache, open_kv
from afterchain.protocol import state_keys as K
from afterchain.protocol.block import ValidatorSet
from afterchain.protocol.codec import encode
from afterchain.protocol.epochs import epoch_start, set_source_height
from afterchain.protocol.errors import Code, InvariantError, ProtocolError, require
from afterchain.protocol.events import (
    EVENT_TYPES,
    MAX_CONTRACT_EVENT_BYTES,
    MAX_EVENT_BYTES,
    SignedEvent,
    event_id_of_signed,
    verify_event,
)
from afterchain.protocol.genesis import ConsensusParams, Genesis, LedgerParams, VmParams
from afterchain.protocol.merkle import merkle_root
from afterchain.protocol.smt import SmtProof
from afterchain.protocol.state_keys import product_id as product_key
from afterchain.protocol.types import MAX_UINT64

__all__ = [
    "MAX_GOV_EXPIRIES_PER_BLOCK",
    "MAX_TICKET_CHANGES",
    "QUALITY_BUCKETS_MS",
    "TRANSITIONS",
    "BlockResult",
    "EvidenceCheck",
    "Ledger",
    "Outcome",
    "epoch_start",
    "iter_blocks",
    "product_key",
    "set_source_height",
]

HANDLERS: dict[str, Handler] = {
    **governance.HANDLERS, **nodes.HANDLERS, **products.HANDLERS, **policies.HANDLERS, **tickets.HANDLERS, **returns.HANDLERS,
    **quality.HANDLERS, **_evidence.HANDLERS,
}
"""Event type -> its handler: every event type of `protocol.events` has one."""

_MEMBER_ROLES: dict[str, tuple[str, ...]] = {
    "product.register": ("manufacturer",), "product.recall": ("manufacturer",),
    "trace.record": ("manufacturer", "retailer", "service_provider", "logistics"),
    "policy.register": ("manufacturer", "retailer", "service_provider"), "warranty.activate": (),
    "contract.deploy": ("manufacturer", "retailer", "service_provider", "logistics"),
    "ticket.ack": (), "ticket.assign": (), "ticket.resolve": (), "ticket.reject": (), "return.approve": (),
    "return.reject": (), "return.receive": (), "shipment.checkpoint": ("logistics",),
    "node.register": (), "node.remove": (),
}
"""Member-only event types and the roles one of which the sender's org needs (() = any role);
used by `Ledger.check` (execution checks the same and more)."""


class Ledger:
    """The state machine. Open with `Ledger.open(path, genesis)`; ``path=None`` is in-memory."""

    def __init__(self, kv: KV, genesis: Genesis, hooks: AgreementHooks | None, contracts: ContractHost | None,
                 *, evidence_check: EvidenceCheck | None = None, keep_blocks: bool = True,
                 node_cache_nodes: int = 131_072, state_cache_entries: int = 32_768, prune_nodes: bool = True) -> None:
        missing = set(EVENT_TYPES) - set(HANDLERS)
        require(not missing, f"event types without a handler: {sorted(missing)}")
        self.state = State(kv, node_cache_nodes=node_cache_nodes, state_cache_entries=state_cache_entries,
                           prune_nodes=prune_nodes)
        self.state.time_ms = genesis.genesis_time_ms
        self.genesis = genesis
        self.keep_blocks = keep_blocks
        self.schedule = Schedule(self.state, genesis)
        self.env = Env.create(self.state, genesis, self.schedule, hooks, contracts, evidence_check)

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, path: str | None, genesis: Genesis, hooks: AgreementHooks | None = None,
             contracts: ContractHost | None = None, *, evidence_check: EvidenceCheck | None = None, sync: bool = True,
             keep_blocks: bool = True, node_cache_nodes: int = 131_072, state_cache_entries: int = 32_768,
             prune_nodes: bool = True) -> Ledger:
        """Open (or create from `genesis`) the ledger at `path` (None: in memory).

        Raises `InvariantError` if the store was created from another genesis.
        `evidence_check` checks ``consensus.evidence`` (`consensus.evidence.check_evidence`);
        without one such events are refused. `sync=False` skips fsync (benchmarks of the
        CPU path only). `keep_blocks` also stores each block's raw events (for
        `stored_block` / replay; a node that stores blocks itself can turn it off). The
        caches hold at most twice `node_cache_nodes` SMT nodes and twice
        `state_cache_entries` decoded values. `prune_nodes=False` keeps every SMT node
        (`node.app.state`; safe to turn on and off between openings).
        """
        kv = open_kv(path, sync=sync)
        led = cls(kv, genesis, hooks, contracts, evidence_check=evidence_check, keep_blocks=keep_blocks,
                  node_cache_nodes=node_cache_nodes, state_cache_entries=state_cache_entries, prune_nodes=prune_nodes)
        ghash = led.state.genesis_hash()
        if ghash is None:
            led._init_genesis()
        else:
            if ghash != genesis.hash():
                kv.close()
                raise InvariantError("the store at this path was created from another genesis")
            led.state.restore(genesis.genesis_time_ms)
            led.schedule.load()
            load_params(led.env)
        return led

    def close(self) -> None:
        self.kv.close()

    def _init_genesis(self) -> None:
        g, st = self.genesis, self.state
        total = sum(m.balance for m in g.members)
        require(total <= MAX_UINT64, "genesis balances overflow u64")
        st.put(K.META_GENESIS, {"hash": g.hash(), "chain_id": g.chain_id, "time": g.genesis_time_ms})
        for m in g.members:
            st.put(K.org(m.org_id), {"name": m.name, "roles": list(m.roles), "keys": list(m.keys), "since": g.genesis_time_ms})
            for k in m.keys:
                st.put(K.account(k), {"org": m.org_id, "nonce": 0})
            st.put(K.balance(m.org_id), m.balance)
        st.put(K.META_MEMBERS, len(g.members))
        st.put(K.META_VALIDATORS, encode(g.validators))
        st.put(K.META_CONSENSUS, encode(g.consensus))
        st.put(K.META_VM, encode(g.vm))
        st.put(K.META_LEDGER, encode(g.ledger))
        self.schedule.write_genesis()
        st.commit(0, g.genesis_time_ms, extra={K.STORE_GENESIS: g.hash()})

    # ------------------------------------------------------------------ attributes

    @property
    def kv(self) -> KV:
        return self.state.kv

    @property
    def chain_id(self) -> str:
        return self.genesis.chain_id

    @property
    def height(self) -> int:
        return self.state.height

    @property
    def time_ms(self) -> int:
        return self.state.time_ms

    @property
    def state_root(self) -> bytes:
        return self.state.root

    @property
    def last_block_state_keys(self) -> int:
        """State keys written by the last block (a metric: the SMT batch size)."""
        return self.state.last_block_state_keys

    @property
    def params(self) -> LedgerParams:
        """The adopted ledger parameters (as of the last block start)."""
        return self.env.params

    @property
    def vm_params(self) -> VmParams:
        return self.env.vm_params

    @property
    def hooks(self) -> AgreementHooks | None:
        return self.env.hooks

    @property
    def contracts(self) -> ContractHost | None:
        return self.env.contracts

    def cache_sizes(self) -> dict[str, int]:
        """Entries in the ledger's caches (memory reports)."""
        sizes = {"ledger_" + k: v for k, v in self.state.cache_sizes().items()}
        sizes["ledger_code"] = len(self.env.code_cache)
        return sizes

    # The caches under their former names, read by node/runtime/memory.py until it uses `cache_sizes`.
    @property
    def _nodes(self) -> NodeCache:
        return self.state.nodes

    @property
    def _cache(self) -> dict[bytes, Any]:
        return self.state._cache

    @property
    def _cache_old(self) -> dict[bytes, Any]:
        return self.state._cache_old

    @property
    def _undo_cache(self) -> dict[int, dict[bytes, bytes | None]]:
        return self.state._undo_cache

    @property
    def _code_cache(self) -> dict[bytes, bytes]:
        return self.env.code_cache

    # ------------------------------------------------------------------ blocks

    def apply_block(self, height: int, time_ms: int, events: Sequence[bytes], *,
                    preverified: Container[bytes] = (), decoded: Sequence[SignedEvent | None] | None = None,
                    sync: bool = True) -> BlockResult:
        """Execute a committed block and persist it atomically; returns the new root and outcomes.

        `events` are raw encoded `SignedEvent`s. Ids in `preverified` skip the signature
        check (the node verified them already). `decoded`, if given, holds the already
        decoded event at each position (None where unknown) to avoid decoding twice;
        a decoded event must be the decoding of the raw bytes at the same position.
        `sync=False` writes the block's batch without waiting for the disk (the node does
        so for all but the last block of a run it stored durably beforehand: a later synced
        write covers it, and after a crash the stored blocks are executed again).
        """
        st, env = self.state, self.env
        require(height == st.height + 1, f"block {height} does not follow {st.height}")
        require(time_ms >= st.time_ms, "block time went backwards")
        require(decoded is None or len(decoded) == len(events), "decoded must match events")
        # The cyclic GC would scan every cached state object many times per block; the
        # ledger makes no reference cycles, so it is paused during a block (and restored).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            env.block_gas = 0
            env.block_breaches = 0
            env.node_keys_changed = False
            load_params(env)
            processed = process_deadlines(env, time_ms)
            expired = governance.expire_proposals(env, height, time_ms)
            outcomes: list[Outcome] = []
            out_records: dict[bytes, bytes | None] = {}
            leaf_hashes: list[bytes] = []
            for index, raw in enumerate(events):
                pre = decoded[index] if decoded is not None else None
                oc = self._apply_event(height, time_ms, index, raw, preverified, pre)
                outcomes.append(oc)
                okey = K.outcome(oc.event_id)
                record = pack([height, index, oc.code, oc.message, oc.detail])
                if oc.code == OK or not self._accepted_before(okey, out_records):
                    # a replay of an accepted event never hides its accepted outcome
                    out_records[okey] = record
                leaf_hashes.append(sha256(oc.event_id + record))
            accepted = sum(1 for o in outcomes if o.code == OK)
            st.put(K.block(height), {
                "time": time_ms, "events": len(events), "accepted": accepted, "deadlines": processed,
                "outcomes": merkle_root(leaf_hashes),
            })
            if self.keep_blocks:
                out_records[K.raw_block(height)] = pack([time_ms, list(events)])
            if height % env.checkpoint_interval == 0:
                g = self.genesis
                self.schedule.record(height, meta_raw(st, K.META_VALIDATORS, g.validators),
                                     meta_raw(st, K.META_CONSENSUS, g.consensus))
            st.commit(height, time_ms, out_records, sync=sync)
            self.schedule.block_committed()
        except BaseException:
            self.schedule.block_aborted()
            st.abort()
            raise
        finally:
            if gc_was_enabled:
                gc.enable()
        return BlockResult(height=height, time_ms=time_ms, state_root=st.root, outcomes=tuple(outcomes),
                           deadlines_processed=processed, sla_breaches=env.block_breaches, proposals_expired=expired,
                           node_keys_changed=env.node_keys_changed)

    def _accepted_before(self, okey: bytes, pending: dict[bytes, bytes | None]) -> bool:
        raw = pending.get(okey) or self.kv.get(okey)
        return raw is not None and unpack(raw)[2] == OK

    def _apply_event(self, height: int, time_ms: int, index: int, raw: bytes, preverified: Container[bytes],
                     signed: SignedEvent | None) -> Outcome:
        if signed is None:
            try:
                signed = SignedEvent.decode(raw, max_bytes=MAX_CONTRACT_EVENT_BYTES)
            except ProtocolError as exc:
                return Outcome(sha256(raw), height, index, str(exc.code), str(exc))
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
        st = self.state
        akey = K.account(ev.sender)
        acct = st.get(akey)
        last = acct["nonce"] if acct is not None else 0
        if ev.nonce != last + 1:
            return Outcome(eid, height, index, Reason.NONCE_WRONG, f"nonce {ev.nonce}, expected {last + 1}")
        if acct is not None and acct.get("revoked"):
            return Outcome(eid, height, index, Reason.REVOKED, "this key was revoked by governance")
        org = acct["org"] if acct is not None else None
        ctx = Ctx(eid, ev.sender, org, org if org is not None else customer_account(ev.sender), time_ms, height)
        try:
            detail = HANDLERS[ev.type](self.env, ctx, ev.body)
        except Rejected as rej:
            # A validly signed event with the right nonce uses its nonce even when the
            # ledger refuses it: otherwise anyone could replay it later, when the state
            # has changed and it would be accepted (the event is public once in a block).
            st.put(akey, {"org": None, "nonce": ev.nonce, "since": time_ms} if acct is None else {**acct, "nonce": ev.nonce})
            return Outcome(eid, height, index, rej.code, rej.message)
        if acct is None:
            st.put(akey, {"org": None, "nonce": 1, "since": time_ms})
        else:
            acct["nonce"] = ev.nonce
            st.put(akey, acct)
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
        st = self.state
        acct = st.committed(K.account(ev.sender))
        last = acct["nonce"] if acct is not None else 0
        if ev.nonce <= last:
            return Outcome(eid, 0, 0, Reason.NONCE_WRONG, f"nonce {ev.nonce} already used (last {last})")
        if acct is not None and acct.get("revoked"):
            return Outcome(eid, 0, 0, Reason.REVOKED, "this key was revoked by governance")
        if ev.type == "consensus.evidence":  # checked in full at intake: bad evidence never reaches a block
            try:
                key, rec = _evidence.evidence_record(self.env, ev.sender, ev.body, st.height + 1)  # type: ignore[arg-type]
                if st.committed(key) is not None:
                    raise _evidence.refuse_duplicate(rec)
            except Rejected as rej:
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
            o = st.committed(K.org(acct["org"]))
            if need and o is not None and not set(need) & set(o["roles"]):
                return Outcome(eid, 0, 0, Reason.ROLE, f"{ev.type} needs one of the roles {', '.join(need)}")
        return None

    # ------------------------------------------------------------------ validator schedule

    def validators_for(self, height: int) -> ValidatorSet | None:
        """V(height): the set voting on block `height`, i.e. the adopted set after block
        ``set_source_height(height)``; None while that block is not executed here."""
        return self.schedule.validators_for(height)

    def consensus_params_for(self, height: int) -> ConsensusParams | None:
        """The consensus parameters in force at `height` (same schedule as `validators_for`)."""
        return self.schedule.consensus_params_for(height)

    def validator_schedule(self) -> list[tuple[int, ValidatorSet]]:
        """(first height, set) of every schedule entry, genesis (height 1) first. An entry
        may repeat the previous set when only the consensus parameters changed."""
        return self.schedule.validator_schedule()

    def consensus_schedule(self) -> list[tuple[int, ConsensusParams]]:
        return self.schedule.consensus_schedule()

    def validator_sets_by_hash(self) -> dict[bytes, ValidatorSet]:
        """Every validator set ever scheduled, by `ValidatorSet.hash()` (headers' validators_hash)."""
        return self.schedule.validator_sets_by_hash()

    def pending_schedule_entry(self) -> tuple[int, ValidatorSet, ConsensusParams] | None:
        """(first height, set, consensus params) of the entry the next checkpoint boundary
        will write, if the committed adopted set or consensus parameters differ from the
        last entry; None if nothing is pending."""
        return self.schedule.pending_entry()

    # ------------------------------------------------------------------ reads (committed state)

    def state_value(self, key: bytes) -> bytes | None:
        """The committed msgpack value of a state key (what the SMT commits to)."""
        return self.state.value(key)

    def prove(self, key: bytes) -> tuple[bytes | None, SmtProof]:
        """(value, proof) of a state key against `state_root` (membership or absence)."""
        return self.state.prove(key)

    def root_at(self, height: int) -> bytes | None:
        return self.state.root_at(height)

    def history_window(self) -> tuple[int, int]:
        """(lowest, highest) height whose state `value_at` / `prove_at` can read."""
        return self.state.history_window()

    def value_at(self, key: bytes, height: int) -> bytes | None:
        """The committed msgpack value of a state key as of `height` (None: absent then);
        `LookupError` outside `history_window`."""
        return self.state.value_at(key, height)

    def prove_at(self, key: bytes, height: int) -> tuple[bytes | None, SmtProof]:
        """(value, proof) of a state key against `root_at(height)`."""
        return self.state.prove_at(key, height)

    def ticket(self, ticket_id: bytes) -> dict[str, Any] | None:
        return self.state.read(K.ticket(ticket_id))  # type: ignore[no-any-return]

    def tickets_by_org(self, org: str, status: str | None = None, *, limit: int = 1000) -> list[bytes]:
        return queries.ids(self.state, K.tickets_by_org(org, status), limit)

    def tickets_by_customer(self, customer: bytes, *, limit: int = 1000) -> list[bytes]:
        return queries.ids(self.state, K.tickets_by_customer(customer), limit)

    def ticket_page(self, *, org: str | None = None, status: str | None = None, customer: bytes | None = None,
                    limit: int, after: bytes | None = None) -> list[tuple[bytes, bytes]]:
        """One page of an organisation's tickets (optionally of one status) or of a
        customer's: (key suffix, ticket id) in index order, after the key suffix `after`
        (the last suffix of the previous page)."""
        if org is not None and customer is None:
            prefix = K.tickets_by_org(org, status)
        elif customer is not None and org is None:
            prefix = K.tickets_by_customer(customer)
        else:
            raise ValueError("give org or customer")
        return queries.id_page(self.state, prefix, limit, after)

    def tickets_by_product(self, gtin: str, serial: str, *, limit: int = 1000) -> list[bytes]:
        return queries.ids(self.state, K.tickets_by_product(K.product_id(gtin, serial)), limit)

    def upcoming_deadlines(self, until_ms: int, *, org: str | None = None, limit: int = 1000) -> list[tuple[int, str, bytes]]:
        """(due ms, kind, ticket id) of pending deadlines due by `until_ms`, soonest first;
        with `org`, only tickets assigned to it ("which are about to breach?")."""
        return queries.upcoming_deadlines(self.state, until_ms, org, limit)

    def product(self, gtin: str, serial: str) -> dict[str, Any] | None:
        return self.state.read(K.product(K.product_id(gtin, serial)))  # type: ignore[no-any-return]

    def product_history(self, gtin: str, serial: str) -> list[Any]:
        return queries.product_history(self.state, gtin, serial)

    def recall(self, gtin: str, batch: str) -> dict[str, Any] | None:
        """The recall of (gtin, batch), if any: who, when, reason hash."""
        return self.state.read(K.recall(gtin, batch))  # type: ignore[no-any-return]

    def org(self, org_id: str) -> dict[str, Any] | None:
        return self.state.read(K.org(org_id))  # type: ignore[no-any-return]

    def orgs(self, *, limit: int = 4096, after: bytes | None = None) -> list[tuple[str, dict[str, Any]]]:
        """(org id, record) of every organisation ever a member (removed ones carry
        ``removed``), in org id order: genesis members and those admitted by governance;
        with `after`, those whose id (UTF-8) sorts after it."""
        return queries.orgs(self.state, limit, after)

    def node_keys(self, *, org: str | None = None, limit: int | None = 4096) -> list[tuple[bytes, dict[str, Any]]]:
        """(key, ``{org, since, height}``) of the registered member node keys, in key order:
        every organisation's (at most `limit`; None: all) or `org`'s (`node.app.nodes`)."""
        if org is not None:
            return nodes.org_node_keys(self.state, org)
        return nodes.all_node_keys(self.state, limit)

    def contract(self, contract_id: bytes) -> dict[str, Any] | None:
        """vm, version, code_hash, owner, name, since (the code itself is ``code/<code_hash>``)."""
        return self.state.read(K.contract(contract_id))  # type: ignore[no-any-return]

    def escrow(self, escrow_id: bytes) -> dict[str, Any] | None:
        return self.state.read(K.escrow(escrow_id))  # type: ignore[no-any-return]

    def balance(self, account: str) -> int:
        return queries.balance(self.state, account)

    def nonce(self, key: bytes) -> int:
        return queries.nonce(self.state, key)

    def policy(self, policy_id: bytes) -> dict[str, Any] | None:
        return self.state.read(K.policy(policy_id))  # type: ignore[no-any-return]

    def has_outcome(self, event_id: bytes) -> bool:
        """Whether an event with this id is in a block executed here (accepted or refused)."""
        return self.kv.get(K.outcome(event_id)) is not None

    def event_outcome(self, event_id: bytes) -> Outcome | None:
        return queries.event_outcome(self.state, event_id)

    def stored_block(self, height: int) -> tuple[int, list[bytes]] | None:
        """(time_ms, raw events) of a block applied here (when `keep_blocks`)."""
        return queries.stored_block(self.state, height)

    def quality(self, org: str) -> dict[str, Any] | None:
        """The service-quality report of `org` (integers; see `node.app.quality`)."""
        return queries.quality(self.state, org)

    def evidence(self, *, validator: bytes | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Recorded equivocation evidence (committed state), by validator, phase, view, seq."""
        return queries.evidence(self.state, validator, limit)

    def evidence_page(self, *, validator: bytes | None = None, limit: int,
                      after: bytes | None = None) -> list[tuple[bytes, dict[str, Any]]]:
        """`evidence` as (key suffix, record), after the key suffix `after`."""
        return queries.evidence_page(self.state, validator, limit, after)

    def validators(self) -> ValidatorSet:
        """The committed adopted set (``meta/validators``): votes on proposals count against it."""
        return queries.validators(self.state, self.genesis)

    def current_params(self) -> tuple[ConsensusParams, VmParams, LedgerParams]:
        """The committed adopted consensus, VM and ledger parameters (``meta/*``)."""
        return queries.current_params(self.state, self.genesis)

    def proposal(self, proposal_id: bytes) -> dict[str, Any] | None:
        """The committed proposal record ``gov/<id>`` (see `node.app.governance`)."""
        return self.state.read(K.proposal(proposal_id))  # type: ignore[no-any-return]

    def proposal_ids(self, *, open_only: bool = False, limit: int = queries.MAX_PROPOSALS_LISTED) -> list[bytes]:
        """Proposal ids: all in proposal order (oldest first), or the open ones by deadline.
        (An open one whose deadline passed stays listed until a block expires it.)"""
        return queries.proposal_ids(self.state, open_only, limit)

    def proposal_page(self, *, open_only: bool = False, limit: int,
                      after: bytes | None = None) -> list[tuple[bytes, bytes]]:
        """`proposal_ids` as (key suffix, id), after the key suffix `after`."""
        return queries.proposal_page(self.state, open_only, limit, after)


def iter_blocks(led: Ledger, start: int = 1) -> Iterator[tuple[int, int, list[bytes]]]:
    """(height, time_ms, raw events) of the stored blocks from `start` to the ledger's height."""
    for h in range(start, led.height + 1):
        blk = led.stored_block(h)
        if blk is None:
            return
        yield h, blk[0], blk[1]
