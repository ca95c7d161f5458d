"""Products and trace: registration, ownership transfers and sales, trace records, recalls.

A product (``prod/<product>``) carries its newest history entries (``hist``); every
`HISTORY_PAGE` entries move to their own page ``ph/<product>/<n>``, so one proof shows a
product and its recent history. The record's ``hh`` is the head of a hash chain over its
whole history (`protocol.passport.history_link`), so it commits to every entry in order. A GTIN belongs to the manufacturer that first registers
it. A recalled batch cannot be sold; a decommissioned product cannot move or be traced.
"""

from __future__ import annotations

from typing import Any

from afterchain.node.app.codes import Reason
from afterchain.node.app.context import Ctx, Env, Handler, Rejected
from afterchain.node.app.hooks import customer_account
from afterchain.node.app.orgs import member, org_with_role
from afterchain.node.app.state import State
from afterchain.protocol import bodies as B
from afterchain.protocol import state_keys as K
from afterchain.protocol.errors import require
from afterchain.protocol.passport import HISTORY_PAGE, HISTORY_ZERO, history_link

__all__ = ["HANDLERS", "HISTORY_PAGE", "append_history", "product", "recalled"]

_DECOMMISSIONED = ("destroyed", "inactive")


def product(st: State, gtin: str, serial: str) -> tuple[bytes, dict[str, Any]]:
    """(product id, record) of a registered product; refuses an unknown one."""
    pk = K.product_id(gtin, serial)
    p = st.get(K.product(pk))
    if p is None:
        raise Rejected(Reason.PRODUCT_UNKNOWN, f"no product {gtin}/{serial}")
    return pk, p


def append_history(st: State, pk: bytes, p: dict[str, Any], entry: list[Any]) -> None:
    """Append to the product's recent history (and its chain head ``hh``); a full page moves
    to its own state key."""
    p["hh"] = history_link(p["hh"], entry)
    recent = p["hist"]
    recent.append(entry)
    if len(recent) >= HISTORY_PAGE:
        st.put(K.product_page(pk, p["pages"]), recent)
        p["pages"] += 1
        p["hist"] = []


def recalled(st: State, gtin: str, batch: str) -> bool:
    return st.get(K.recall(gtin, batch)) is not None


def product_register(env: Env, ctx: Ctx, b: B.ProductRegister) -> Any:
    st = env.state
    member(st, ctx, "manufacturer")
    gkey = K.gtin_owner(b.gtin)
    owner = st.get(gkey)
    if owner is not None and owner != ctx.org:
        raise Rejected(Reason.NOT_MANUFACTURER, f"GTIN {b.gtin} belongs to {owner}")
    pk = K.product_id(b.gtin, b.serial)
    if st.get(K.product(pk)) is not None:
        raise Rejected(Reason.PRODUCT_EXISTS, f"product {b.gtin}/{b.serial} is already registered")
    if owner is None:
        st.put(gkey, ctx.org)
    p: dict[str, Any] = {
        "mfr": ctx.org, "model": b.model, "batch": b.batch, "prod_ms": b.production_time_ms, "reg_ms": ctx.time_ms,
        "owner": ctx.org, "seller": None, "sale_ms": 0, "order": None, "policy": None, "w_start": 0,
        "disp": "active", "hist": [], "pages": 0, "hh": HISTORY_ZERO,
    }
    append_history(st, pk, p, ["register", ctx.time_ms, ctx.event_id, ctx.org])
    st.put(K.product(pk), p)
    return None


def product_transfer(env: Env, ctx: Ctx, b: B.ProductTransfer) -> Any:
    st = env.state
    pk, p = product(st, b.gtin, b.serial)
    if p["owner"] != ctx.account:
        raise Rejected(Reason.NOT_OWNER, f"{b.gtin}/{b.serial} is owned by {p['owner']}, not the sender")
    if p["disp"] in _DECOMMISSIONED:
        raise Rejected(Reason.PRODUCT_DECOMMISSIONED, "the product is decommissioned")
    if b.kind == "sale":
        member(st, ctx, "retailer", "manufacturer")
        if recalled(st, b.gtin, p["batch"]):
            raise Rejected(Reason.PRODUCT_RECALLED, f"batch {p['batch']} of {b.gtin} is recalled")
    if b.to_org is not None:
        org_with_role(st, b.to_org, ("manufacturer", "retailer", "service_provider", "logistics"), "to_org")
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
    append_history(st, pk, p, [b.kind, ctx.time_ms, ctx.event_id, new_owner])
    st.put(K.product(pk), p)
    return None


def trace_record(env: Env, ctx: Ctx, b: B.TraceRecord) -> Any:
    st = env.state
    member(st, ctx, "manufacturer", "retailer", "service_provider", "logistics")
    pk, p = product(st, b.gtin, b.serial)
    if p["disp"] in _DECOMMISSIONED:
        raise Rejected(Reason.PRODUCT_DECOMMISSIONED, "the product is decommissioned")
    p["disp"] = b.disposition
    append_history(st, pk, p, ["trace", ctx.time_ms, ctx.event_id, ctx.org, b.biz_step, b.disposition, b.location_hash,
                               b.ref_hash])
    st.put(K.product(pk), p)
    return None


def product_recall(env: Env, ctx: Ctx, b: B.ProductRecall) -> Any:
    st = env.state
    member(st, ctx, "manufacturer")
    owner = st.get(K.gtin_owner(b.gtin))
    if owner is None:
        raise Rejected(Reason.PRODUCT_UNKNOWN, f"no product with GTIN {b.gtin}")
    if owner != ctx.org:
        raise Rejected(Reason.NOT_MANUFACTURER, f"GTIN {b.gtin} belongs to {owner}")
    rkey = K.recall(b.gtin, b.batch)
    if st.get(rkey) is not None:
        raise Rejected(Reason.RECALL_EXISTS, f"batch {b.batch} of {b.gtin} is already recalled")
    st.put(rkey, {"by": ctx.org, "time": ctx.time_ms, "reason": b.reason_hash, "event": ctx.event_id})
    return None


HANDLERS: dict[str, Handler] = {
    "product.register": product_register, "product.transfer": product_transfer,
    "trace.record": trace_record, "product.recall": product_recall,
}
