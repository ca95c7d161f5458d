"""Organisations and accounts: membership and role checks, balances and transfers.

Organisations (``org/<id>``) are admitted, updated and removed by governance
(`node.app.governance`); here only reads and the money rule. Money is conserved: balances
are integers, never negative; a transfer moves at most what the payer has.
"""

from __future__ import annotations

from typing import Any

from afterchain.node.app.codes import Reason
from afterchain.node.app.context import Ctx, Rejected
from afterchain.node.app.state import State
from afterchain.protocol import state_keys as K
from afterchain.protocol.errors import require

__all__ = ["account_ok", "balance", "member", "org_with_role", "transfer"]

_HEX = frozenset("0123456789abcdef")


def member(st: State, ctx: Ctx, *roles: str) -> dict[str, Any]:
    """The sender's organisation record; refuses a customer, or an org with none of `roles`."""
    if ctx.org is None:
        raise Rejected(Reason.NOT_MEMBER, "this event needs a member organisation's key")
    org = st.get(K.org(ctx.org))
    require(org is not None, f"key of unknown org {ctx.org}")
    if roles and not set(roles) & set(org["roles"]):
        raise Rejected(Reason.ROLE, f"organisation {ctx.org} needs one of the roles {', '.join(roles)}")
    return org  # type: ignore[no-any-return]


def org_with_role(st: State, org_id: str, roles: tuple[str, ...], what: str) -> dict[str, Any]:
    """A current organisation named in an event (field `what`) with one of `roles`."""
    org = st.get(K.org(org_id))
    if org is None or org.get("removed") is not None:
        raise Rejected(Reason.ORG_UNKNOWN, f"{what}: no organisation {org_id!r}")
    if not set(roles) & set(org["roles"]):
        raise Rejected(Reason.ORG_WRONG_ROLE, f"{what}: {org_id} needs one of the roles {', '.join(roles)}")
    return org  # type: ignore[no-any-return]


def account_ok(st: State, account: object) -> bool:
    """A well-formed customer account or a known organisation."""
    if not isinstance(account, str):
        return False
    if account.startswith("cust:"):
        h = account[5:]
        return len(h) == 64 and all(c in _HEX for c in h)
    return st.get(K.org(account)) is not None


def balance(st: State, account: str) -> int:
    v = st.get(K.balance(account))
    return 0 if v is None else int(v)


def transfer(st: State, payer: str, payee: str, amount: int) -> int:
    """Move up to `amount` (never more than the payer has); returns what moved."""
    have = balance(st, payer)
    moved = min(have, amount)
    if moved:
        st.put(K.balance(payer), have - moved)
        st.put(K.balance(payee), balance(st, payee) + moved)
    return moved
