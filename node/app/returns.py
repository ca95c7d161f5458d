"""Returns, shipments and escrow.

A return is a ticket of kind ``return``: requested by the customer, approved within the
return window after the sale (the policy's, else ``ledger.default_return_window_ms``),
carried by one logistics member (checkpoints), received by the assigned organisation,
and then decided by the policy's ``return_decision`` hook: an escrow bound to the return
goes to the customer (refund) or back to its depositor. Escrows (``esc/<id>``) hold money
out of the payer's balance until released (by the payer) or refunded (by the payee); an
escrow bound to a return is settled only by the return's decision.
"""

from __future__ import annotations

from typing import Any

from afterchain.node.app.codes import Reason
from afterchain.node.app.context import Ctx, Env, Handler, Rejected
from afterchain.node.app.hooks import ReturnInput, customer_account
from afterchain.node.app.lifecycle import (
    LOGISTICS,
    MAX_TICKET_CHANGES,
    ORG,
    RETURN_OPEN,
    SYSTEM,
    authorise,
    load_ticket,
    on_final,
    transition,
)
from afterchain.node.app.orgs import balance, member
from afterchain.node.app.policies import policy_terms, return_decision
from afterchain.node.app.products import product
from afterchain.node.app.state import State
from afterchain.node.app.tickets import customer_product, new_ticket
from afterchain.protocol import bodies as B
from afterchain.protocol import state_keys as K

__all__ = ["HANDLERS"]


def return_request(env: Env, ctx: Ctx, b: B.ReturnRequest) -> Any:
    pk, p = customer_product(env, ctx, b.gtin, b.serial)
    tid, t = new_ticket(env, ctx, "return", pk, p, b.gtin, b.serial, "return_requested",
                        {"fault": b.reason_code, "desc": b.reason_hash, "att": [], "ship": [], "carrier": None})
    env.state.put(K.ticket(tid), t)
    return {"ticket_id": tid}


def return_approve(env: Env, ctx: Ctx, b: B.ReturnApprove) -> Any:
    st = env.state
    tid = b.ticket_id
    t = load_ticket(st, tid)
    authorise(st, ctx, t, "approve")
    _, p = product(st, t["gtin"], t["serial"])
    pol = st.get(K.policy(t["policy"])) if t["policy"] is not None else None
    window = (pol["return_ms"] if pol is not None else 0) or env.params.default_return_window_ms
    if ctx.time_ms > p["sale_ms"] + window:
        raise Rejected(Reason.RETURN_WINDOW, f"the return window of {window} ms after the sale has passed")
    transition(st, t, tid, "approve", ORG, ctx.time_ms, ctx.event_id)
    st.put(K.ticket(tid), t)
    return None


def shipment_checkpoint(env: Env, ctx: Ctx, b: B.ShipmentCheckpoint) -> Any:
    st = env.state
    tid = b.ticket_id
    t = load_ticket(st, tid)
    member(st, ctx, "logistics")
    action = "checkpoint" if t["kind"] == "return" else "ship"  # returns move on; repairs only record it
    authorise(st, ctx, t, action)
    carrier = t.get("carrier")
    if carrier is not None and carrier != ctx.org:
        raise Rejected(Reason.NOT_ASSIGNED, f"the shipment is carried by {carrier}")
    ship = t.setdefault("ship", [])
    if len(ship) >= MAX_TICKET_CHANGES:
        raise Rejected(Reason.HISTORY_FULL, f"the ticket has {MAX_TICKET_CHANGES} shipment checkpoints")
    t["carrier"] = ctx.org
    ship.append([b.checkpoint, ctx.time_ms, ctx.org, b.location_hash, b.tracking_hash])
    transition(st, t, tid, action, LOGISTICS, ctx.time_ms, ctx.event_id, f"checkpoint:{b.checkpoint}")
    st.put(K.ticket(tid), t)
    return None


def return_receive(env: Env, ctx: Ctx, b: B.ReturnReceive) -> Any:
    st = env.state
    tid = b.ticket_id
    t = load_ticket(st, tid)
    authorise(st, ctx, t, "receive")
    esc = st.get(K.escrow(t["escrow"])) if t["escrow"] is not None else None
    policy = policy_terms(st, t["policy"])
    _, p = product(st, t["gtin"], t["serial"])
    inp = ReturnInput(policy=policy, ticket_id=tid, condition=b.condition,
                      escrow_amount=esc["amount"] if esc is not None and esc["state"] == "held" else 0,
                      customer=customer_account(t["cust"]), requested_ms=t["opened"], received_ms=ctx.time_ms,
                      sale_time_ms=p["sale_ms"])
    decision, failure = return_decision(env, policy, inp)
    now = ctx.time_ms
    transition(st, t, tid, "receive", ORG, now, ctx.event_id, f"condition:{b.condition}")
    note = f"decision:{decision.reason}" + (f";hook_failed:{failure}" if failure else "")
    if esc is not None and esc["state"] == "held":
        _settle(st, esc, "released" if decision.refund else "refunded")
        st.put(K.escrow(t["escrow"]), esc)
    transition(st, t, tid, "refund" if decision.refund else "keep", SYSTEM, now, None, note)
    t["reason"] = decision.reason
    on_final(t, now)
    st.put(K.ticket(tid), t)
    return {"refund": decision.refund, "reason": decision.reason}


# --------------------------------------------------------------------------- escrow


def _settle(st: State, esc: dict[str, Any], state: str) -> None:
    to = esc["payee"] if state == "released" else esc["payer"]
    st.put(K.balance(to), balance(st, to) + esc["amount"])
    esc["state"] = state


def escrow_deposit(env: Env, ctx: Ctx, b: B.EscrowDeposit) -> Any:
    st = env.state
    if b.payee_org is not None:
        if st.get(K.org(b.payee_org)) is None:
            raise Rejected(Reason.ORG_UNKNOWN, f"payee_org: no organisation {b.payee_org!r}")
        payee = b.payee_org
    else:
        payee = customer_account(b.payee_customer or b"")
    t = None
    if b.ticket_id is not None:
        t = load_ticket(st, b.ticket_id)
        if t["kind"] != "return" or t["status"] not in RETURN_OPEN or t["escrow"] is not None:
            raise Rejected(Reason.ESCROW_TICKET, "the ticket is not an open return without an escrow")
        if payee != customer_account(t["cust"]):
            raise Rejected(Reason.ESCROW_TICKET, "a return's escrow is payable to its customer")
    have = balance(st, ctx.account)
    if have < b.amount:
        raise Rejected(Reason.INSUFFICIENT_FUNDS, f"balance {have} is below {b.amount}")
    st.put(K.balance(ctx.account), have - b.amount)
    st.put(K.escrow(ctx.event_id), {"amount": b.amount, "payer": ctx.account, "payee": payee, "state": "held",
                                    "ticket": b.ticket_id, "ref": b.ref_hash, "since": ctx.time_ms})
    if t is not None and b.ticket_id is not None:
        t["escrow"] = ctx.event_id
        st.put(K.ticket(b.ticket_id), t)
    return {"escrow_id": ctx.event_id}


def escrow_settle(env: Env, ctx: Ctx, b: B.EscrowRelease | B.EscrowRefund) -> Any:
    st = env.state
    esc = st.get(K.escrow(b.escrow_id))
    if esc is None:
        raise Rejected(Reason.ESCROW_UNKNOWN, "no such escrow")
    release = isinstance(b, B.EscrowRelease)
    party = esc["payer"] if release else esc["payee"]
    if ctx.account != party:
        raise Rejected(Reason.NOT_PARTY, f"only the {'payer' if release else 'payee'} may do this")
    if esc["state"] != "held":
        raise Rejected(Reason.ESCROW_NOT_HELD, f"the escrow is {esc['state']}")
    if esc["ticket"] is not None:
        raise Rejected(Reason.ESCROW_BOUND, "the escrow is bound to a return; its outcome decides it")
    _settle(st, esc, "released" if release else "refunded")
    st.put(K.escrow(b.escrow_id), esc)
    return None


HANDLERS: dict[str, Handler] = {
    "return.request": return_request, "return.approve": return_approve, "return.receive": return_receive,
    "shipment.checkpoint": shipment_checkpoint, "escrow.deposit": escrow_deposit,
    "escrow.release": escrow_settle, "escrow.refund": escrow_settle,
}
