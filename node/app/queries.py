"""Read-only queries of the committed state and the store (what the HTTP API and clients
ask): records by id, the secondary indexes, outcomes, stored blocks, governance state.

Nothing here writes; every answer is as of the last committed block.
"""

from __future__ import annotations

from typing import Any

from afterchain.node.app.context import Outcome
from afterchain.node.app.quality import report
from afterchain.node.app.state import State, unpack
from afterchain.protocol import state_keys as K
from afterchain.protocol.block import ValidatorSet
from afterchain.protocol.codec import decode_as
from afterchain.protocol.genesis import ConsensusParams, Genesis, LedgerParams, VmParams

__all__ = [
    "MAX_PROPOSALS_LISTED",
    "balance",
    "current_params",
    "event_outcome",
    "evidence",
    "evidence_page",
    "id_page",
    "ids",
    "nonce",
    "orgs",
    "product_history",
    "proposal_ids",
    "proposal_page",
    "quality",
    "stored_block",
    "upcoming_deadlines",
    "validators",
]

MAX_PROPOSALS_LISTED = 1000
_DEADLINE_NAMES = ("first_response", "resolution", "auto_close")


def _start(prefix: bytes, after: bytes | None) -> bytes:
    """The first store key to scan: `prefix`, or the key right after ``prefix + after``
    (start-after: any bytes are a valid `after`; keys sort bytewise)."""
    return prefix if after is None else prefix + after + b"\x00"


def ids(st: State, prefix: bytes, limit: int) -> list[bytes]:
    """The 32-byte ids ending the index keys under `prefix`, in key order."""
    return [i for _, i in id_page(st, prefix, limit, None)]


def id_page(st: State, prefix: bytes, limit: int, after: bytes | None) -> list[tuple[bytes, bytes]]:
    """(key suffix after `prefix`, 32-byte id) of up to `limit` index keys under `prefix`,
    in key order, starting after the suffix `after` (a page's last suffix is the next
    page's `after`)."""
    out = []
    n = len(prefix)
    for k, _ in st.scan(_start(prefix, after), prefix + b"\xff" * 80):
        out.append((k[n:], k[-32:]))
        if len(out) >= limit:
            break
    return out


def upcoming_deadlines(st: State, until_ms: int, org: str | None, limit: int) -> list[tuple[int, str, bytes]]:
    """(due ms, kind, ticket id) of pending deadlines due by `until_ms`, soonest first;
    with `org`, only tickets assigned to it."""
    out = []
    for k, _ in st.scan(K.DEADLINES, K.DEADLINES + K.u64(until_ms + 1)):
        tid = k[12:]
        if org is not None and (st.read(K.ticket(tid)) or {}).get("org") != org:
            continue
        out.append((int.from_bytes(k[3:11], "big"), _DEADLINE_NAMES[k[11]], tid))
        if len(out) >= limit:
            break
    return out


def product_history(st: State, gtin: str, serial: str) -> list[Any]:
    pk = K.product_id(gtin, serial)
    p = st.read(K.product(pk))
    if p is None:
        return []
    out: list[Any] = []
    for i in range(p["pages"]):
        out.extend(st.read(K.product_page(pk, i)))
    return out + list(p["hist"])


def orgs(st: State, limit: int, after: bytes | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(org id, record) of every organisation ever a member, in org id order (after the
    org id `after`, as bytes)."""
    start = K.stored_value(K.ORG)
    out = []
    for k, raw in st.scan(_start(start, after), start[:-1] + b"0"):
        out.append((k[len(start):].decode(), unpack(raw)))
        if len(out) >= limit:
            break
    return out


def balance(st: State, account: str) -> int:
    v = st.read(K.balance(account))
    return 0 if v is None else int(v)


def nonce(st: State, key: bytes) -> int:
    a = st.read(K.account(key))
    return 0 if a is None else int(a["nonce"])


def event_outcome(st: State, event_id: bytes) -> Outcome | None:
    raw = st.kv.get(K.outcome(event_id))
    if raw is None:
        return None
    h, i, code, message, detail = unpack(raw)
    return Outcome(event_id, h, i, code, message, detail)


def stored_block(st: State, height: int) -> tuple[int, list[bytes]] | None:
    raw = st.kv.get(K.raw_block(height))
    if raw is None:
        return None
    t, evs = unpack(raw)
    return t, list(evs)


def quality(st: State, org: str) -> dict[str, Any] | None:
    q = st.read(K.quality(org))
    return None if q is None else report(q)


def evidence(st: State, validator: bytes | None, limit: int) -> list[dict[str, Any]]:
    """Recorded equivocation evidence, by validator, phase, view, seq."""
    return [r for _, r in evidence_page(st, validator, limit, None)]


def evidence_page(st: State, validator: bytes | None, limit: int,
                  after: bytes | None) -> list[tuple[bytes, dict[str, Any]]]:
    """(key suffix, record) of recorded evidence by validator, phase, view, seq, starting
    after the key suffix `after` (relative to the validator's prefix when one is given)."""
    prefix = K.stored_value(K.EVIDENCE) + (validator + b"/" if validator is not None else b"")
    out = []
    n = len(prefix)
    for k, raw in st.scan(_start(prefix, after), prefix + b"\xff" * 80):
        out.append((k[n:], unpack(raw)))
        if len(out) >= limit:
            break
    return out


def validators(st: State, genesis: Genesis) -> ValidatorSet:
    """The committed adopted set (``meta/validators``)."""
    raw = st.value(K.META_VALIDATORS)
    return genesis.validators if raw is None else decode_as(ValidatorSet, unpack(raw))


def current_params(st: State, genesis: Genesis) -> tuple[ConsensusParams, VmParams, LedgerParams]:
    """The committed adopted consensus, VM and ledger parameters (``meta/*``)."""
    def raw(key: bytes) -> bytes | None:
        v = st.value(key)
        return None if v is None else bytes(unpack(v))

    cp, vm, lp = raw(K.META_CONSENSUS), raw(K.META_VM), raw(K.META_LEDGER)
    return (genesis.consensus if cp is None else decode_as(ConsensusParams, cp),
            genesis.vm if vm is None else decode_as(VmParams, vm),
            genesis.ledger if lp is None else decode_as(LedgerParams, lp))


def proposal_ids(st: State, open_only: bool, limit: int) -> list[bytes]:
    """Proposal ids: all in proposal order (oldest first), or the open ones by deadline."""
    return ids(st, K.PROPOSALS_BY_DEADLINE if open_only else K.PROPOSALS_BY_HEIGHT, limit)


def proposal_page(st: State, open_only: bool, limit: int, after: bytes | None) -> list[tuple[bytes, bytes]]:
    """`proposal_ids` as (key suffix, id), starting after the key suffix `after`."""
    return id_page(st, K.PROPOSALS_BY_DEADLINE if open_only else K.PROPOSALS_BY_HEIGHT, limit, after)
