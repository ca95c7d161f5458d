"""Ticket life: the one table of transitions, who may take them, and the status index.

`TRANSITIONS` maps (action, current status) to (new status, who may). `authorise` checks
an event's action against it before any write; `transition` applies it (status, the
``ito`` index, the status history). A ticket takes at most `MAX_TICKET_CHANGES` status
changes from its parties; after that it can only end.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from afterchain.node.app.codes import Reason
from afterchain.node.app.context import Ctx, Rejected
from afterchain.node.app.orgs import member
from afterchain.node.app.state import State
from afterchain.protocol import state_keys as K
from afterchain.protocol.errors import require

__all__ = [
    "ANY_KIND_ACTIONS",
    "CUSTOMER",
    "FINAL",
    "LOGISTICS",
    "MAX_TICKET_CHANGES",
    "OPEN",
    "ORG",
    "OWNER",
    "RETURN_ACTIONS",
    "RETURN_OPEN",
    "SYSTEM",
    "TRANSITIONS",
    "authorise",
    "load_ticket",
    "on_final",
    "transition",
]

MAX_TICKET_CHANGES = 64
"""Status changes a ticket can take from its parties; after that it can only end (closed,
rejected, ...). With system changes (breaches) its history stays under 72 entries."""

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


def load_ticket(st: State, tid: bytes) -> dict[str, Any]:
    t = st.get(K.ticket(tid))
    if t is None:
        raise Rejected(Reason.TICKET_UNKNOWN, f"no ticket {tid.hex()[:16]}")
    return t  # type: ignore[no-any-return]


def authorise(st: State, ctx: Ctx, t: dict[str, Any], action: str) -> str:
    """Check (action, status) is in the table and the sender may do it; return the new status."""
    is_return = t["kind"] == "return"
    if action not in ANY_KIND_ACTIONS and (action in RETURN_ACTIONS) != is_return:
        raise Rejected(Reason.TICKET_KIND, f"{action} does not apply to a {t['kind']} ticket")
    entry = TRANSITIONS.get((action, t["status"]))
    if entry is None:
        raise Rejected(Reason.TRANSITION, f"cannot {action} a ticket that is {t['status']}")
    to, who = entry
    ok = (
        (CUSTOMER in who and ctx.sender == t["cust"])
        or (ORG in who and ctx.org is not None and ctx.org == t["org"])
        or (OWNER in who and ctx.org is not None and t["policy"] is not None
            and (st.get(K.policy(t["policy"])) or {}).get("owner") == ctx.org)
    )
    if not ok and LOGISTICS in who and ctx.org is not None:
        member(st, ctx, "logistics")
        ok = True
    if not ok:
        if who == {CUSTOMER}:
            raise Rejected(Reason.NOT_CUSTOMER, "only the ticket's customer may do this")
        raise Rejected(Reason.NOT_ASSIGNED, f"only the assigned organisation ({t['org']}) may do this")
    if len(t["hist"]) >= MAX_TICKET_CHANGES and to != t["status"] and to not in FINAL:
        raise Rejected(Reason.HISTORY_FULL, f"the ticket has {MAX_TICKET_CHANGES} status changes; it can only end")
    return to


def transition(st: State, t: dict[str, Any], tid: bytes, action: str, who: str, time_ms: int, event_id: bytes | None,
               note: str | None = None) -> None:
    """Apply a table transition (already authorised); a non-change records `note` only."""
    entry = TRANSITIONS.get((action, t["status"]))
    require(entry is not None and who in entry[1], f"transition {action} from {t['status']} by {who} is not in the table")
    to = entry[0] if entry is not None else t["status"]
    if to != t["status"]:
        st.index_remove(K.ticket_by_org(t["org"], t["status"], tid))
        st.index_add(K.ticket_by_org(t["org"], to, tid))
        t["status"] = to
        if len(t["hist"]) < MAX_TICKET_CHANGES + 8:  # room for system changes and the end
            t["hist"].append([to, time_ms, event_id, note])
    elif note is not None and len(t["notes"]) < MAX_TICKET_CHANGES:
        t["notes"].append(note)


def on_final(t: dict[str, Any], now: int) -> None:
    """A ticket reached a final status: it is closed from now (once)."""
    if t["closed"] is None:
        t["closed"] = now
