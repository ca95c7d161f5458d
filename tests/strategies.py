"""Hypothesis strategies for every registered message, derived from its field types.

`message_strategy(cls)` builds values field by field; values failing the class's own
`validate()` are filtered out. Classes whose validity couples fields (a block's
events_root, ...) register a hand-written strategy in `CUSTOM`.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from hypothesis import strategies as st

from afterchain.protocol.codec import Message, registered
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.types import FIXED_LENGTHS, MAX_UINT64

CUSTOM: dict[type[Message], Callable[[], st.SearchStrategy[Any]]] = {}
"""Hand-written strategies for whole classes."""
FIELDS: dict[tuple[str, str], st.SearchStrategy[Any]] = {}
"""Hand-written strategies for single fields, keyed by (class name, field name)."""


def _valid(obj: Message) -> bool:
    try:
        obj.validate()
    except ProtocolError:
        return False
    return True


def field_strategy(tp: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    sup = getattr(tp, "__supertype__", None)
    if sup is not None:
        if sup is bytes and tp in FIXED_LENGTHS:
            n = FIXED_LENGTHS[tp]
            return st.binary(min_size=n, max_size=n)
        return field_strategy(sup, depth)
    if tp is int:
        return st.one_of(st.integers(0, 10), st.integers(0, 100_000), st.integers(0, MAX_UINT64))
    if tp is bool:
        return st.booleans()
    if tp is str:
        return st.text(max_size=20)
    if tp is bytes:
        return st.binary(max_size=40)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return st.none() | field_strategy(inner, depth)
    if origin is tuple:
        return st.lists(field_strategy(typing.get_args(tp)[0], depth + 1), max_size=3 if depth < 2 else 0).map(tuple)
    if isinstance(tp, type) and issubclass(tp, Message):
        if "TAG" in tp.__dict__:
            return message_strategy(tp, depth + 1)
        subs = [c for c in registered().values() if issubclass(c, tp)]
        return st.one_of(*[message_strategy(c, depth + 1) for c in subs])
    raise TypeError(tp)


def message_strategy(cls: type[Message], depth: int = 0) -> st.SearchStrategy[Any]:
    if cls in CUSTOM:
        return CUSTOM[cls]()
    hints = typing.get_type_hints(cls)
    kwargs = {
        f.name: FIELDS[(cls.__name__, f.name)] if (cls.__name__, f.name) in FIELDS else field_strategy(hints[f.name], depth)
        for f in fields(cls)  # type: ignore[arg-type]
    }  # type: ignore[arg-type]
    return st.builds(cls, **kwargs).filter(_valid)


# --------------------------------------------------------------------------- custom ones

from afterchain.protocol.block import Block, BlockHeader  # noqa: E402
from afterchain.protocol.codec import sha256  # noqa: E402
from afterchain.protocol.events import EVENT_TYPES, Event  # noqa: E402
from afterchain.protocol.merkle import merkle_root  # noqa: E402

chain_ids = st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,20}\Z")
hashes = st.binary(min_size=32, max_size=32)
u64 = st.one_of(st.integers(0, 10_000), st.integers(0, MAX_UINT64))


@st.composite
def headers(draw: st.DrawFn, events: tuple[bytes, ...] | None = None) -> BlockHeader:
    height = draw(st.integers(1, MAX_UINT64))
    evs = events if events is not None else ()
    return BlockHeader(
        chain_id=draw(chain_ids), height=height, view=draw(u64), time_ms=draw(u64),
        prev_hash=draw(hashes), events_root=merkle_root([sha256(e) for e in evs]) if events is not None else draw(hashes),
        event_count=len(evs) if events is not None else draw(st.integers(0, 100_000)),
        state_height=draw(st.integers(0, height - 1)), state_root=draw(hashes),
        validators_hash=draw(hashes), next_validators_hash=draw(hashes), proposer=draw(hashes),
    )


@st.composite
def blocks(draw: st.DrawFn) -> Block:
    evs = tuple(draw(st.lists(st.binary(max_size=50), max_size=5)))
    return Block(header=draw(headers(evs)), events=evs)


@st.composite
def events(draw: st.DrawFn) -> Event:
    if not EVENT_TYPES:
        raise AssertionError("no event types registered")
    name = draw(st.sampled_from(sorted(EVENT_TYPES)))
    body = draw(message_strategy(EVENT_TYPES[name]))
    return Event(chain_id=draw(chain_ids), type=name, sender=draw(hashes), nonce=draw(u64), time_ms=draw(u64), body=body)


CUSTOM[BlockHeader] = headers
CUSTOM[Block] = blocks
CUSTOM[Event] = events

FIELDS[("RatingSubmit", "score")] = st.integers(1, 5)

# --------------------------------------------------------------------------- event bodies (ledger)

import afterchain.protocol.bodies as _bodies  # noqa: E402
import afterchain.protocol.genesis as _genesis  # noqa: E402


@st.composite
def gtins(draw: st.DrawFn) -> str:
    first = draw(st.text(alphabet="0123456789", min_size=13, max_size=13))
    return first + str(_bodies.gtin_check_digit(first))


serials = st.from_regex(r"\A[A-Za-z0-9._-]{1,20}\Z")
org_ids = st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,12}\Z")
codes = st.from_regex(r"\A[a-z0-9][a-z0-9_.-]{0,10}\Z")
names = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=20).filter(str.strip)
_ENUMS = {
    "biz_step": _bodies.BIZ_STEPS, "disposition": _bodies.DISPOSITIONS, "resolution": _bodies.RESOLUTIONS,
    "condition": _bodies.RETURN_CONDITIONS, "checkpoint": _bodies.CHECKPOINTS,
}
for _cls in [*EVENT_TYPES.values(), _genesis.Member]:
    _hints = typing.get_type_hints(_cls)
    for _f in fields(_cls):  # type: ignore[arg-type]
        _n, _key = _f.name, (_cls.__name__, _f.name)
        _opt = typing.get_origin(_hints[_n]) in (typing.Union, types.UnionType)
        _s: st.SearchStrategy[Any] | None = None
        if _n == "gtin":
            _s = gtins()
        elif _n in ("serial", "batch"):
            _s = serials
        elif _n in ("org_id", "to_org", "service_org", "payee_org"):
            _s = org_ids
        elif _n in ("fault_type", "reason_code"):
            _s = codes
        elif _n in ("name", "model"):
            _s = names
        elif _n in _ENUMS:
            _s = st.sampled_from(_ENUMS[_n])
        elif _n == "roles":
            _s = st.sets(st.sampled_from(_bodies.ROLES), min_size=1, max_size=3).map(lambda r: tuple(sorted(r)))
        elif _n == "covered_faults":
            _s = st.sets(codes, max_size=3).map(lambda r: tuple(sorted(r)))
        elif _n in ("vm_id",):
            _s = st.sampled_from(("wasm", "lua"))
        elif _n in ("entry",):
            _s = st.sampled_from(("main", "on_claim", "penalty"))
        if _s is not None:
            FIELDS[_key] = (st.none() | _s) if _opt else _s
FIELDS[("TicketOpen", "kind")] = st.sampled_from(_bodies.TICKET_KINDS[:-1])
FIELDS[("TicketUpdate", "status")] = st.sampled_from(("in_progress", "waiting_customer"))
FIELDS[("ProductTransfer", "kind")] = st.just("transfer")
FIELDS[("GovernancePropose", "voting_period_ms")] = st.integers(1, _bodies.MAX_VOTING_PERIOD_MS)
FIELDS[("PolicyRegister", "first_response_ms")] = st.integers(1, 1000)
FIELDS[("PolicyRegister", "resolution_ms")] = st.integers(1000, 10**9)
FIELDS[("SnapshotFile", "name")] = st.from_regex(r"(chain|state)/[A-Za-z0-9._-]{1,20}", fullmatch=True)
FIELDS[("VmAllowed", "vm_id")] = st.sampled_from(("wasm", "lua"))
FIELDS[("VmParams", "max_gas_per_block")] = st.integers(10**12, MAX_UINT64)
FIELDS[("VmParams", "max_gas_per_call")] = st.integers(1, 10**9)
FIELDS[("ConsensusParams", "view_timeout_ms")] = st.integers(1, 1000)
FIELDS[("ConsensusParams", "view_timeout_max_ms")] = st.integers(1000, 10**6)
FIELDS[("ConsensusParams", "checkpoint_interval")] = st.integers(1, 100)
FIELDS[("ConsensusParams", "watermark_window")] = st.integers(100, 1000)
FIELDS[("ConsensusParams", "max_block_events")] = st.integers(1, 100_000)


@st.composite
def product_transfers(draw: st.DrawFn) -> _bodies.ProductTransfer:
    sale = draw(st.booleans())
    to_customer = draw(hashes) if sale or draw(st.booleans()) else None
    return _bodies.ProductTransfer(
        gtin=draw(gtins()), serial=draw(serials), kind="sale" if sale else "transfer",
        to_org=None if to_customer is not None else draw(org_ids), to_customer=to_customer,
        order_ref_hash=draw(hashes) if sale else draw(st.none() | hashes),
    )


@st.composite
def escrow_deposits(draw: st.DrawFn) -> _bodies.EscrowDeposit:
    cust = draw(st.booleans())
    return _bodies.EscrowDeposit(
        amount=draw(st.integers(1, MAX_UINT64)), payee_org=None if cust else draw(org_ids),
        payee_customer=draw(hashes) if cust else None, ticket_id=draw(st.none() | hashes), ref_hash=draw(st.none() | hashes),
    )


@st.composite
def geneses(draw: st.DrawFn) -> _genesis.Genesis:
    ids = sorted(draw(st.sets(org_ids, min_size=1, max_size=3)))
    keys = draw(st.lists(hashes, min_size=len(ids), max_size=len(ids), unique=True))
    members = tuple(
        _genesis.Member(org_id=i, name=draw(names), roles=draw(FIELDS[("Member", "roles")]), keys=(k,), balance=draw(u64))
        for i, k in zip(ids, keys, strict=True)
    )
    return _genesis.Genesis(
        chain_id=draw(chain_ids), genesis_time_ms=draw(u64), validators=draw(message_strategy(_genesis.ValidatorSet)),
        members=members, consensus=draw(message_strategy(_genesis.ConsensusParams)),
        vm=draw(message_strategy(_genesis.VmParams)), ledger=draw(message_strategy(_genesis.LedgerParams)),
    )


@st.composite
def param_changes(draw: st.DrawFn) -> _genesis.ParamChange:
    which = draw(st.sampled_from(("consensus", "vm", "both")))
    return _genesis.ParamChange(
        consensus=None if which == "vm" else draw(message_strategy(_genesis.ConsensusParams)),
        vm=None if which == "consensus" else draw(message_strategy(_genesis.VmParams)),
    )


@st.composite
def governance_proposals(draw: st.DrawFn) -> _bodies.GovernancePropose:
    from afterchain.protocol.codec import encode

    kind = draw(st.sampled_from(("validator_change", "policy_standard", "param_change", "remove_member")))
    if kind == "validator_change":
        change: Any = draw(message_strategy(_genesis.ValidatorSet))
    elif kind == "policy_standard":
        change = draw(message_strategy(_genesis.LedgerParams))
    elif kind == "param_change":
        change = draw(param_changes())
    payload = draw(org_ids).encode() if kind == "remove_member" else encode(change)
    return _bodies.GovernancePropose(kind=kind, payload=payload,
                                     voting_period_ms=draw(st.integers(1, _bodies.MAX_VOTING_PERIOD_MS)))


CUSTOM[_bodies.ProductTransfer] = product_transfers
CUSTOM[_bodies.GovernancePropose] = governance_proposals
CUSTOM[_genesis.ParamChange] = param_changes
CUSTOM[_bodies.EscrowDeposit] = escrow_deposits
CUSTOM[_genesis.Genesis] = geneses



from afterchain.protocol.smt import SmtProof  # noqa: E402


@st.composite
def smt_proofs(draw: st.DrawFn) -> SmtProof:
    depth = draw(st.integers(0, 256))
    nbytes = (depth + 7) // 8
    bits = draw(st.integers(0, 2**depth - 1)) << (nbytes * 8 - depth)
    n = bits.bit_count()
    other = draw(st.none() | st.tuples(hashes, hashes))
    return SmtProof(
        depth=depth, bitmap=bits.to_bytes(nbytes, "big"), siblings=tuple(draw(st.lists(hashes, min_size=n, max_size=n))),
        leaf_path=None if other is None else other[0], leaf_value_hash=None if other is None else other[1],
    )


CUSTOM[SmtProof] = smt_proofs


# --------------------------------------------------------------------------- consensus messages
# Their validity couples fields (a block must hash to the pre-prepare's digest, prepares
# must match it, replicas must be distinct, heights must agree), so they are built here.

from afterchain.consensus import messages as _cm  # noqa: E402
from afterchain.protocol.block import CommitCertificate, CommitSig  # noqa: E402

_replicas = st.lists(hashes, min_size=0, max_size=4, unique=True)
_sigs = st.binary(min_size=64, max_size=64)


@st.composite
def commit_certificates(draw: st.DrawFn, height: int | None = None) -> CommitCertificate:
    replicas = draw(_replicas)
    return CommitCertificate(
        view=draw(u64), height=height if height is not None else draw(st.integers(0, MAX_UINT64)),
        header_hash=draw(hashes), signatures=tuple(CommitSig(replica=r, signature=draw(_sigs)) for r in replicas),
    )


@st.composite
def preprepare_msgs(draw: st.DrawFn) -> _cm.PrePrepareMsg:
    block = draw(blocks())
    body = _cm.PrePrepare(view=draw(u64), seq=block.header.height, digest=block.header.hash(), replica=draw(hashes))
    return _cm.PrePrepareMsg(preprepare=_cm.SignedPrePrepare(body=body, signature=draw(_sigs)), block=block)


@st.composite
def compact_preprepare_msgs(draw: st.DrawFn) -> _cm.CompactPrePrepareMsg:
    pp = draw(preprepare_msgs())
    events = pp.block.events
    prefilled = tuple(draw(st.lists(st.sampled_from(events), max_size=len(events)))) if events else ()
    return _cm.CompactPrePrepareMsg.of(pp, prefilled)


@st.composite
def prepared_proofs(draw: st.DrawFn) -> _cm.PreparedProof:
    pp = draw(preprepare_msgs())
    b = pp.preprepare.body
    prepares = tuple(
        _cm.SignedPrepare(body=_cm.Prepare(view=b.view, seq=b.seq, digest=b.digest, replica=r), signature=draw(_sigs))
        for r in draw(_replicas)
    )
    return _cm.PreparedProof(preprepare=pp.preprepare, block=pp.block, prepares=prepares)


@st.composite
def certified_blocks(draw: st.DrawFn) -> _cm.CertifiedBlock:
    block = draw(blocks())
    return _cm.CertifiedBlock(block=block, certificate=draw(commit_certificates(height=block.header.height)))


CUSTOM[CommitCertificate] = commit_certificates
CUSTOM[_cm.PrePrepareMsg] = preprepare_msgs
CUSTOM[_cm.CompactPrePrepareMsg] = compact_preprepare_msgs
CUSTOM[_cm.PreparedProof] = prepared_proofs
CUSTOM[_cm.CertifiedBlock] = certified_blocks
CUSTOM[_cm.BlockResponse] = lambda: st.lists(certified_blocks(), max_size=2).map(
    lambda bs: _cm.BlockResponse(blocks=tuple(bs)))
