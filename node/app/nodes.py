"""Member node keys: the nodes an organisation runs besides the validators.

A member organisation registers the Ed25519 keys of its nodes (``node.register``, signed
by one of its member keys) and withdraws them (``node.remove``). The registered keys are
on every node's peer allowlist next to the validators' keys (the runtime recomputes the
allowlist when a block changes them: `BlockResult.node_keys_changed`).

State: ``node/<key>`` -> ``{org, since, height}`` for each registered key, and
``onodes/<org>`` -> the organisation's registered keys, sorted (absent when none). Rules,
checked for every key of the event before anything is written (one refusal refuses all):

- the sender's key belongs to a member organisation (``permission.not_member``);
- a key registered by this organisation already is ``node.registered``; one registered by
  another organisation, or a key of the adopted validator set, is ``node.key_in_use``;
- at most `MAX_NODE_KEYS_PER_ORG` keys per organisation (``node.limit``);
- only the organisation's own registered keys are removed (``node.unknown``).

When governance removes an organisation, its node keys go with it (`drop_org`).
"""

from __future__ import annotations

from typing import Any

from afterchain.node.app.codes import Reason
from afterchain.node.app.context import Ctx, Env, Handler, Rejected
from afterchain.node.app.orgs import member
from afterchain.node.app.state import State, unpack
from afterchain.protocol import bodies as B
from afterchain.protocol import state_keys as K
from afterchain.protocol.bodies import MAX_NODE_KEYS_PER_ORG

__all__ = ["HANDLERS", "MAX_NODE_KEYS_PER_ORG", "all_node_keys", "drop_org", "org_node_keys"]


def _short(key: bytes) -> str:
    return key.hex()[:16] + "..."


def node_register(env: Env, ctx: Ctx, b: B.NodeRegister) -> Any:
    from afterchain.node.app.governance import adopted_validators  # governance imports this module

    st = env.state
    member(st, ctx)
    org = str(ctx.org)
    have: list[bytes] = list(st.get(K.org_nodes(org)) or [])
    validators = adopted_validators(env)
    for i, k in enumerate(b.keys):
        rec = st.get(K.node_key(k))
        if rec is not None and rec["org"] == org:
            raise Rejected(Reason.NODE_REGISTERED, f"keys[{i}]: node key {_short(k)} is already registered by {org}")
        if rec is not None:
            raise Rejected(Reason.NODE_KEY_IN_USE, f"keys[{i}]: node key {_short(k)} is registered by another organisation")
        if k in validators:
            raise Rejected(Reason.NODE_KEY_IN_USE,
                           f"keys[{i}]: {_short(k)} is a validator's key (validators are on the allowlist already)")
    if len(have) + len(b.keys) > MAX_NODE_KEYS_PER_ORG:
        raise Rejected(Reason.NODE_LIMIT, f"{org} has {len(have)} node keys; at most {MAX_NODE_KEYS_PER_ORG} per "
                                          f"organisation (remove one first)")
    for k in b.keys:
        st.put(K.node_key(k), {"org": org, "since": ctx.time_ms, "height": ctx.height})
    st.put(K.org_nodes(org), sorted(have + list(b.keys)))
    env.node_keys_changed = True
    return {"registered": len(b.keys), "node_keys": len(have) + len(b.keys)}


def node_remove(env: Env, ctx: Ctx, b: B.NodeRemove) -> Any:
    st = env.state
    member(st, ctx)
    org = str(ctx.org)
    have: list[bytes] = list(st.get(K.org_nodes(org)) or [])
    for i, k in enumerate(b.keys):
        if k not in have:
            raise Rejected(Reason.NODE_UNKNOWN, f"keys[{i}]: {_short(k)} is not a registered node key of {org}")
    gone = set(b.keys)
    for k in b.keys:
        st.delete(K.node_key(k))
    left = [k for k in have if k not in gone]
    if left:
        st.put(K.org_nodes(org), left)
    else:
        st.delete(K.org_nodes(org))
    env.node_keys_changed = True
    return {"removed": len(b.keys), "node_keys": len(left)}


def drop_org(env: Env, org_id: str) -> None:
    """Remove every node key of `org_id` (governance removed the organisation)."""
    st = env.state
    have = st.get(K.org_nodes(org_id))
    if not have:
        return
    for k in have:
        st.delete(K.node_key(k))
    st.delete(K.org_nodes(org_id))
    env.node_keys_changed = True


# --------------------------------------------------------------------------- reads (committed state)


def org_node_keys(st: State, org_id: str) -> list[tuple[bytes, dict[str, Any]]]:
    """(key, registration record) of an organisation's node keys, in key order."""
    out = []
    for k in st.read(K.org_nodes(org_id)) or []:
        rec = st.read(K.node_key(k))
        if rec is not None:
            out.append((bytes(k), rec))
    return out


def all_node_keys(st: State, limit: int | None) -> list[tuple[bytes, dict[str, Any]]]:
    """(key, registration record) of every registered node key, in key order (at most
    `limit`; None: all, which the bound per organisation keeps to 8 per member)."""
    start = K.stored_value(K.NODE_KEY)
    end = start[:-1] + bytes([start[-1] + 1])
    out = []
    for k, raw in st.scan(start, end):
        out.append((k[len(start):], unpack(raw)))
        if limit is not None and len(out) >= limit:
            break
    return out


HANDLERS: dict[str, Handler] = {"node.register": node_register, "node.remove": node_remove}
