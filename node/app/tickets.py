"""Tickets: opening (with the policy's claim-eligibility hook), the parties' actions, and
assignment. The life of a ticket is the table in `node.app.lifecycle`; its SLA deadlines
are `node.app.sla`.

A ticket (``t/<id>``, id = the opening event's id) is opened by the customer owning the
product, assigned to the policy's service organisation (else the seller, else the
manufacturer), and indexed by organisation and status (``ito``), product (``itp``) and
customer (``itc``). A claim the policy does not cover goes straight to ``rejected``.
"""

from __future__ import annotations

from typing import Any

from afterchain.node.app.codes import Reason
from afterchain.node.app.context import Ctx, Env, Handler, Rejected
from afterchain.node.app.hooks import ClaimDecision, ClaimInput
from afterchain.node.app.lifecycle import (
    CUSTOMER,
    FINAL,
    MAX_TICKET_CHANGES,
    ORG,
    SYSTEM,
    authorise,
    load_ticket,
    on_final,
    transition,
)
from afterchain.node.app.orgs import org_with_role
from afterchain.node.app.policies import claim_eligibility, policy_terms
from afterchain.node.app.products import append_history, product, recalled
from afterchain.node.app.quality import load_quality, sample
from afterchain.node.app.sla import DL_AUTO_CLOSE, DL_FIRST, DL_RESOLUTION, clear_sla, deadline_add, deadline_remove
from afterchain.protocol import bodies as B
from afterchain.protocol import state_keys as K

__all__ = ["HANDLERS", "customer_product", "new_ticket"]

_SIMPLE_ACTIONS = {
    "ticket.ack": "ack", "ticket.escalate": "escalate", "ticket.resolve": "resolve", "ticket.reject": "reject",
    "ticket.confirm": "confirm", "ticket.reopen": "reopen", "ticket.close": "close", "return.reject": "return_reject",
}


def new_ticket(env: Env, ctx: Ctx, kind: str, pk: bytes, p: dict[str, Any], gtin: str, serial: str, status: str,
               extra: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """A new ticket about product `pk` (indexed, counted, in the product's history; the
    caller stores the ticket itself)."""
    st = env.state
    tid = ctx.event_id
    policy = p["policy"]
    pol = st.get(K.policy(policy)) if policy is not None else None
    org = pol["service_org"] if pol is not None else (p["seller"] or p["mfr"])
    t = {"kind": kind, "gtin": gtin, "serial": serial, "cust": ctx.sender, "org": org, "policy": policy,
         "status": status, "opened": ctx.time_ms, "ack": None, "resolved": None, "closed": None,
         "fr_due": None, "res_due": None, "ac_due": None, "paused": None, "breaches": 0, "penalties": 0,
         "escrow": None, "rating": None, "reason": None, "resolution": None,
         "hist": [[status, ctx.time_ms, ctx.event_id, None]], "notes": [], **extra}
    if pol is not None and kind != "return":
        t["fr_due"] = ctx.time_ms + pol["fr_ms"]
        t["res_due"] = ctx.time_ms + pol["res_ms"]
    st.index_add(K.ticket_by_org(org, status, tid))
    st.index_add(K.ticket_by_product(pk, tid))
    st.index_add(K.ticket_by_customer(ctx.sender, tid))
    q = load_quality(st, org, ctx.time_ms)
    q["handled"] += 1
    st.put(K.quality(org), q)
    append_history(st, pk, p, [(kind == "return" and "return") or "ticket", ctx.time_ms, ctx.event_id, kind])
    st.put(K.product(pk), p)
    return tid, t


def customer_product(env: Env, ctx: Ctx, gtin: str, serial: str) -> tuple[bytes, dict[str, Any]]:
    """The product a customer opens a ticket about: it must own it."""
    if ctx.org is not None:
        raise Rejected(Reason.NOT_CUSTOMER, "tickets are opened by customers (the product's owner)")
    pk, p = product(env.state, gtin, serial)
    if not p["owner"].startswith("cust:"):
        raise Rejected(Reason.PRODUCT_NOT_SOLD, "the product is not owned by a customer")
    if p["owner"] != ctx.account:
        raise Rejected(Reason.NOT_OWNER, "only the product's owner opens tickets about it")
    return pk, p


def ticket_open(env: Env, ctx: Ctx, b: B.TicketOpen) -> Any:
    st = env.state
    pk, p = customer_product(env, ctx, b.gtin, b.serial)
    decision: ClaimDecision | None = None
    failure = None
    policy = policy_terms(st, p["policy"])
    if policy is not None and b.kind in ("repair", "refund"):
        inp = ClaimInput(policy=policy, ticket_id=ctx.event_id, kind=b.kind, fault_type=b.fault_type, gtin=b.gtin,
                         serial=b.serial, batch=p["batch"], recalled=recalled(st, b.gtin, p["batch"]),
                         customer=ctx.account, warranty_start_ms=p["w_start"], sale_time_ms=p["sale_ms"],
                         now_ms=ctx.time_ms)
        decision, failure = claim_eligibility(env, policy, inp)
    tid, t = new_ticket(env, ctx, b.kind, pk, p, b.gtin, b.serial, "opened",
                        {"fault": b.fault_type, "desc": b.description_hash, "att": list(b.attachments)})
    if failure:
        t["notes"].append(f"hook_failed:{failure}")
    if decision is not None and not decision.covered:
        t["reason"] = decision.reason
        t["fr_due"] = t["res_due"] = None
        transition(st, t, tid, "claim_reject", SYSTEM, ctx.time_ms, None, f"claim:{decision.reason}")
        on_final(t, ctx.time_ms)
    elif t["fr_due"] is not None:
        deadline_add(st, t["fr_due"], DL_FIRST, tid)
        deadline_add(st, t["res_due"], DL_RESOLUTION, tid)
    st.put(K.ticket(tid), t)
    return {"ticket_id": tid, "status": t["status"]}


def ticket_simple(env: Env, ctx: Ctx, b: Any) -> Any:
    """The actions that are one table transition plus their SLA and quality effects."""
    st = env.state
    action = _SIMPLE_ACTIONS[b.EVENT_TYPE]
    tid = b.ticket_id
    t = load_ticket(st, tid)
    authorise(st, ctx, t, action)
    now = ctx.time_ms
    if action == "ack":
        deadline_remove(st, t["fr_due"], DL_FIRST, tid)
        t["fr_due"] = None
        t["ack"] = now
        q = load_quality(st, t["org"], now)
        sample(q, "fr", now - t["opened"])
        st.put(K.quality(t["org"]), q)
    elif action == "resolve":
        clear_sla(st, t, tid)
        if t["resolved"] is None:
            q = load_quality(st, t["org"], now)
            q["resolved"] += 1
            sample(q, "res", now - t["opened"])
            st.put(K.quality(t["org"]), q)
        t["resolved"] = now
        t["resolution"] = b.resolution
        t["ac_due"] = now + env.params.auto_close_delay_ms
        deadline_add(st, t["ac_due"], DL_AUTO_CLOSE, tid)
    elif action in ("reject", "return_reject"):
        clear_sla(st, t, tid)
        t["reason"] = b.reason_code
    elif action == "reopen":
        deadline_remove(st, t["ac_due"], DL_AUTO_CLOSE, tid)
        t["ac_due"] = None
        pol = st.get(K.policy(t["policy"])) if t["policy"] is not None else None
        if pol is not None:
            t["res_due"] = now + pol["res_ms"]
            deadline_add(st, t["res_due"], DL_RESOLUTION, tid)
    elif action in ("confirm", "close"):
        clear_sla(st, t, tid)
        deadline_remove(st, t["ac_due"], DL_AUTO_CLOSE, tid)
        t["ac_due"] = None
    transition(st, t, tid, action, CUSTOMER if ctx.org is None else ORG, now, ctx.event_id)
    if t["status"] in FINAL:
        on_final(t, now)
    st.put(K.ticket(tid), t)
    return None


def ticket_update(env: Env, ctx: Ctx, b: B.TicketUpdate) -> Any:
    st = env.state
    tid = b.ticket_id
    t = load_ticket(st, tid)
    action = "progress" if b.status == "in_progress" else "wait"
    authorise(st, ctx, t, action)
    now = ctx.time_ms
    if action == "wait":
        deadline_remove(st, t["fr_due"], DL_FIRST, tid)
        deadline_remove(st, t["res_due"], DL_RESOLUTION, tid)
        t["paused"] = now
    elif t["status"] == "waiting_customer" and t["paused"] is not None:
        delta = now - t["paused"]
        t["paused"] = None
        if t["fr_due"] is not None:
            t["fr_due"] += delta
            deadline_add(st, t["fr_due"], DL_FIRST, tid)
        if t["res_due"] is not None:
            t["res_due"] += delta
            deadline_add(st, t["res_due"], DL_RESOLUTION, tid)
    transition(st, t, tid, action, CUSTOMER if ctx.org is None else ORG, now, ctx.event_id,
               None if b.note_hash is None else "note")
    st.put(K.ticket(tid), t)
    return None


def ticket_assign(env: Env, ctx: Ctx, b: B.TicketAssign) -> Any:
    st = env.state
    tid = b.ticket_id
    t = load_ticket(st, tid)
    authorise(st, ctx, t, "assign")
    org_with_role(st, b.org_id, ("service_provider", "manufacturer", "retailer"), "org_id")
    if b.org_id != t["org"]:
        st.index_remove(K.ticket_by_org(t["org"], t["status"], tid))
        st.index_add(K.ticket_by_org(b.org_id, t["status"], tid))
        q = load_quality(st, b.org_id, ctx.time_ms)
        q["handled"] += 1
        st.put(K.quality(b.org_id), q)
        t["org"] = b.org_id
    if len(t["notes"]) < MAX_TICKET_CHANGES:
        t["notes"].append(f"assign:{b.org_id}")
    st.put(K.ticket(tid), t)
    return None


HANDLERS: dict[str, Handler] = {
    "ticket.open": ticket_open, "ticket.ack": ticket_simple, "ticket.update": ticket_update,
    "ticket.assign": ticket_assign, "ticket.escalate": ticket_simple, "ticket.resolve": ticket_simple,
    "ticket.reject": ticket_simple, "ticket.confirm": ticket_simple, "ticket.reopen": ticket_simple,
    "ticket.close": ticket_simple, "return.reject": ticket_simple,
}
