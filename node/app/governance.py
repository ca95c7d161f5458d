"""Governance: proposals and votes that change membership, validators and parameters.

A member's key or a key of a current validator proposes (``governance.propose``; the
payload is the change, `protocol.bodies.GOVERNANCE_KINDS`). Only keys of the CURRENT
adopted validator set (``meta/validators``) vote, once each, while the block time is at
most the deadline. A tally counts only the votes of keys in the current set against its
size n: adopted as soon as ``3 * yes > 2 * n``, rejected once ``3 * no >= n``. An open
proposal whose deadline is before a block's time expires at that block's start, in
(deadline, id) order, at most `MAX_GOV_EXPIRIES_PER_BLOCK` per block. Adoption applies
the change in the same event after checking it still applies (else ``failed``):
membership (``org/``, ``acct/``, ``meta/members``; a removed organisation's node keys,
``node/`` and ``onodes/``, are deleted), ``meta/validators`` and
``meta/consensus`` (in force by the schedule, `node.app.schedule`), ``meta/vm`` and
``meta/ledger`` (from the next block: `load_params` reads them at each block start).
A proposal that changes nothing is refused; ``org.register`` / ``org.update`` sent
directly are ``governance.required``. Indexes: ``igd`` open proposals by deadline,
``igp`` every proposal by height.
"""

from __future__ import annotations

from bisect import insort
from typing import Any

from afterchain.node.app.codes import Reason
from afterchain.node.app.context import Ctx, Env, Handler, Rejected
from afterchain.node.app.nodes import drop_org
from afterchain.node.app.orgs import member
from afterchain.node.app.state import State
from afterchain.protocol import bodies as B
from afterchain.protocol import state_keys as K
from afterchain.protocol.block import ValidatorSet
from afterchain.protocol.codec import Message, decode_as, encode
from afterchain.protocol.epochs import effective_height
from afterchain.protocol.genesis import FIXED_CONSENSUS_FIELDS, LedgerParams, ParamChange, VmParams

__all__ = ["HANDLERS", "MAX_GOV_EXPIRIES_PER_BLOCK", "adopted_validators", "expire_proposals", "load_params", "meta_raw"]

MAX_GOV_EXPIRIES_PER_BLOCK = 256
"""Open proposals whose deadline passed that one block expires at its start (the rest wait)."""


def meta_raw(st: State, key: bytes, default: Message) -> bytes:
    """The encoding stored at a ``meta/`` key (that of `default` if absent)."""
    raw = st.get(key)
    return encode(default) if raw is None else bytes(raw)


def load_params(env: Env) -> None:
    """Ledger and VM parameters from the state (governance changes them)."""
    g = env.genesis
    raw = (meta_raw(env.state, K.META_LEDGER, g.ledger), meta_raw(env.state, K.META_VM, g.vm))
    if raw != env.params_raw:
        env.params = decode_as(LedgerParams, raw[0])
        env.vm_params = decode_as(VmParams, raw[1])
        env.params_raw = raw


def adopted_validators(env: Env) -> ValidatorSet:
    """The adopted validator set at this point of the block (``meta/validators``)."""
    raw = env.state.get(K.META_VALIDATORS)
    if raw is None:  # a store written before governance kept it: the genesis set
        return env.genesis.validators
    if raw != env.vset_cache[0]:
        env.vset_cache = (raw, decode_as(ValidatorSet, raw))
    return env.vset_cache[1]


def _members_count(st: State) -> int:
    return int(st.get(K.META_MEMBERS) or 0)


def org_direct(env: Env, ctx: Ctx, body: Any) -> Any:
    kind = "admit_member" if isinstance(body, B.OrgRegister) else "update_member"
    raise Rejected(Reason.GOVERNANCE_REQUIRED,
                   f"membership changes are voted: send governance.propose kind {kind} with this body as payload")


def gov_propose(env: Env, ctx: Ctx, b: B.GovernancePropose) -> Any:
    st = env.state
    if ctx.org is not None:
        member(st, ctx)
    elif ctx.sender not in adopted_validators(env):
        raise Rejected(Reason.NOT_MEMBER, "governance.propose needs a member's key or a current validator's key")
    _check_change(env, b.kind, b.change())
    pid = ctx.event_id
    deadline = ctx.time_ms + b.voting_period_ms
    st.put(K.proposal(pid), {
        "kind": b.kind, "payload": b.payload, "by": ctx.org, "by_key": ctx.sender, "created": ctx.time_ms,
        "height": ctx.height, "deadline": deadline, "yes": [], "no": [], "status": "open", "result": None,
        "decided": None, "decided_height": None, "tally": None, "effective_height": None,
    })
    st.index_add(K.proposal_by_deadline(deadline, pid))
    st.index_add(K.proposal_by_height(ctx.height, pid))
    return {"proposal_id": pid}


def _check_change(env: Env, kind: str, change: Any) -> None:
    """Stateful checks of a proposed change (at proposal and again at adoption)."""
    st, g = env.state, env.genesis
    if isinstance(change, B.OrgRegister):
        if st.get(K.org(change.org_id)) is not None:
            raise Rejected(Reason.GOVERNANCE_INVALID, f"organisation {change.org_id} exists")
        for k in change.keys:
            if st.get(K.account(k)) is not None:
                raise Rejected(Reason.GOVERNANCE_INVALID, f"key {k.hex()[:16]}... is already in use")
    elif isinstance(change, B.OrgUpdate):
        _active_org(st, change.org_id)
        for k in change.keys:
            a = st.get(K.account(k))
            if a is not None and (a["org"] != change.org_id or a.get("revoked")):
                raise Rejected(Reason.GOVERNANCE_INVALID, f"key {k.hex()[:16]}... is in use elsewhere or revoked")
    elif kind == "remove_member":
        _active_org(st, str(change))
        if _members_count(st) <= 1:
            raise Rejected(Reason.GOVERNANCE_INVALID, "the last member cannot be removed")
    elif isinstance(change, ValidatorSet):
        if encode(change) == encode(adopted_validators(env)):
            raise Rejected(Reason.GOVERNANCE_INVALID, "the proposed validator set is the current one")
    elif isinstance(change, LedgerParams):
        if encode(change) == meta_raw(st, K.META_LEDGER, g.ledger):
            raise Rejected(Reason.GOVERNANCE_INVALID, "the proposed policy standard is the current one")
    elif isinstance(change, ParamChange):
        new = False
        if change.consensus is not None:
            for f in FIXED_CONSENSUS_FIELDS:
                if getattr(change.consensus, f) != getattr(g.consensus, f):
                    raise Rejected(Reason.GOVERNANCE_INVALID, f"consensus.{f} is fixed at genesis ({getattr(g.consensus, f)})")
            new = encode(change.consensus) != meta_raw(st, K.META_CONSENSUS, g.consensus)
        if change.vm is not None:
            new = new or encode(change.vm) != meta_raw(st, K.META_VM, g.vm)
        if not new:
            raise Rejected(Reason.GOVERNANCE_INVALID, "the proposed parameters are the current ones")


def _active_org(st: State, org_id: str) -> None:
    org = st.get(K.org(org_id))
    if org is None or org.get("removed") is not None:
        raise Rejected(Reason.GOVERNANCE_INVALID, f"no active organisation {org_id}")


def gov_vote(env: Env, ctx: Ctx, b: B.GovernanceVote) -> Any:
    st = env.state
    vs = adopted_validators(env)
    if ctx.sender not in vs:
        raise Rejected(Reason.NOT_VALIDATOR, "only a key of the current validator set votes on proposals")
    key = K.proposal(b.proposal_id)
    p = st.get(key)
    if p is None:
        raise Rejected(Reason.GOVERNANCE_UNKNOWN, "no such proposal")
    if p["status"] != "open" or ctx.time_ms > p["deadline"]:
        raise Rejected(Reason.GOVERNANCE_CLOSED, f"the proposal is {p['status'] if p['status'] != 'open' else 'expired'}")
    if ctx.sender in p["yes"] or ctx.sender in p["no"]:
        raise Rejected(Reason.GOVERNANCE_VOTED, "this validator already voted")
    insort(p["yes" if b.approve else "no"], ctx.sender)
    yes = sum(1 for v in p["yes"] if v in vs)
    no = sum(1 for v in p["no"] if v in vs)
    n = vs.n
    if 3 * yes > 2 * n or 3 * no >= n:
        if 3 * yes > 2 * n:
            p["status"], p["result"] = _execute(env, ctx, p)
        else:
            p["status"], p["result"] = "rejected", "votes"
        p["decided"], p["decided_height"], p["tally"] = ctx.time_ms, ctx.height, [yes, no, n]
        st.index_remove(K.proposal_by_deadline(p["deadline"], b.proposal_id))
    st.put(key, p)
    return {"status": p["status"]}


def _revoke(st: State, keys: list[bytes]) -> None:
    for k in keys:
        a = st.get(K.account(k))
        a["revoked"] = True
        st.put(K.account(k), a)


def _execute(env: Env, ctx: Ctx, p: dict[str, Any]) -> tuple[str, str]:
    """Apply an adopted proposal; a change no longer valid leaves it ``failed`` (reason)."""
    st = env.state
    change = B.GovernancePropose(kind=p["kind"], payload=p["payload"], voting_period_ms=1).change()
    try:
        _check_change(env, p["kind"], change)
    except Rejected as rej:
        return "failed", rej.message
    if isinstance(change, B.OrgRegister):
        st.put(K.org(change.org_id), {"name": change.name, "roles": list(change.roles), "keys": list(change.keys),
                                      "since": ctx.time_ms})
        for k in change.keys:
            st.put(K.account(k), {"org": change.org_id, "nonce": 0})
        st.put(K.META_MEMBERS, _members_count(st) + 1)
    elif isinstance(change, B.OrgUpdate):
        org = st.get(K.org(change.org_id))
        _revoke(st, [k for k in org["keys"] if k not in change.keys])
        for k in change.keys:
            if st.get(K.account(k)) is None:
                st.put(K.account(k), {"org": change.org_id, "nonce": 0})
        org["roles"], org["keys"] = list(change.roles), list(change.keys)
        st.put(K.org(change.org_id), org)
    elif p["kind"] == "remove_member":
        org_id = str(change)
        org = st.get(K.org(org_id))
        _revoke(st, org["keys"])
        org["removed"] = ctx.time_ms
        st.put(K.org(org_id), org)
        drop_org(env, org_id)  # its member node keys leave the allowlist with it
        st.put(K.META_MEMBERS, _members_count(st) - 1)
    elif isinstance(change, ValidatorSet):
        st.put(K.META_VALIDATORS, encode(change))
        p["effective_height"] = effective_height(ctx.height, env.checkpoint_interval)
        return "adopted", f"validators from height {p['effective_height']}"
    elif isinstance(change, LedgerParams):
        st.put(K.META_LEDGER, encode(change))
        p["effective_height"] = ctx.height + 1
        return "adopted", f"policy standard from block {ctx.height + 1}"
    elif isinstance(change, ParamChange):
        parts = []
        if change.vm is not None:
            st.put(K.META_VM, encode(change.vm))
            parts.append(f"vm from block {ctx.height + 1}")
            p["effective_height"] = ctx.height + 1
        if change.consensus is not None:
            st.put(K.META_CONSENSUS, encode(change.consensus))
            p["effective_height"] = effective_height(ctx.height, env.checkpoint_interval)
            parts.append(f"consensus from height {p['effective_height']}")
        return "adopted", "; ".join(parts)
    return "adopted", "applied"


def expire_proposals(env: Env, height: int, time_ms: int) -> int:
    """At block start: open proposals whose deadline is before the block time expire with
    no effect, in (deadline, proposal id) order, at most `MAX_GOV_EXPIRIES_PER_BLOCK`."""
    st = env.state
    keys = []
    for k, _ in st.scan(K.PROPOSALS_BY_DEADLINE, K.PROPOSALS_BY_DEADLINE + K.u64(time_ms)):
        keys.append(k)
        if len(keys) >= MAX_GOV_EXPIRIES_PER_BLOCK:
            break
    expired = 0
    for k in keys:
        st.index_remove(k)
        deadline, pid = int.from_bytes(k[3:11], "big"), k[11:]
        p = st.get(K.proposal(pid))
        if p is None or p["status"] != "open" or p["deadline"] != deadline:
            continue
        vs = adopted_validators(env)
        tally = [sum(1 for v in p["yes"] if v in vs), sum(1 for v in p["no"] if v in vs), vs.n]
        p["status"], p["result"] = "expired", "no quorum before the deadline"
        p["decided"], p["decided_height"], p["tally"] = time_ms, height, tally
        st.put(K.proposal(pid), p)
        expired += 1
    return expired


HANDLERS: dict[str, Handler] = {
    "org.register": org_direct, "org.update": org_direct,
    "governance.propose": gov_propose, "governance.vote": gov_vote,
}
