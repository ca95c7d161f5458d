"""A verified product passport decoded for people (`passport_view`, `passport_lines`).

Input: the values `protocol.passport.verify_passport` returned (state key -> msgpack bytes
or None), all proven against one certified header. Output: maker, model, batch, trace and
custody (history entries; a customer owner is shown as "a customer", never its key), sale
date, warranty policy and coverage dates, recall status, the product's tickets and their
status, and the quality figures of the organisations that service it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from afterchain.protocol import state_keys as K
from afterchain.protocol.passport import (
    HISTORY_PAGE,
    MAX_PASSPORT_PAGES,
    quality_report,
    service_org,
    ticket_ids,
    unpack_value,
)

__all__ = ["fmt_duration", "passport_lines", "passport_view", "quality_lines"]


def _iso(ms: int | None) -> str | None:
    if not isinstance(ms, int) or ms <= 0:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_duration(ms: int | None) -> str:
    """A duration for people: ``1 s``, ``12 min 5 s``, ``3 h 20 min``, ``2 d 4 h``."""
    if ms is None:
        return "-"
    s = ms // 1000
    if ms < 1000:
        return f"{ms} ms"
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min" + (f" {s % 60} s" if s % 60 else "")
    if s < 86400:
        return f"{s // 3600} h" + (f" {s // 60 % 60} min" if s // 60 % 60 else "")
    return f"{s // 86400} d" + (f" {s // 3600 % 24} h" if s // 3600 % 24 else "")


def _party(owner: Any) -> str:
    return "a customer" if isinstance(owner, str) and owner.startswith("cust:") else str(owner)


def _hex(v: Any) -> str | None:
    return v.hex() if isinstance(v, bytes) else None


def _entry(e: list[Any]) -> dict[str, Any]:
    kind, t, eid = (list(e) + [None] * 3)[:3]
    d: dict[str, Any] = {"kind": kind, "time_ms": t, "time": _iso(t), "event_id": _hex(eid)}
    if kind == "register":
        d["by"] = e[3]
    elif kind == "trace":
        d.update(by=e[3], biz_step=e[4], disposition=e[5], location_hash=_hex(e[6]))
    elif kind == "warranty":
        d.update(by=e[3], policy_id=_hex(e[4]))
    elif kind in ("ticket", "return"):
        d.update(ticket_id=_hex(eid), ticket_kind=e[3])
    else:  # an ownership transfer (sale, shipment, ...)
        d["to"] = _party(e[3])
    return d


def passport_view(gtin: str, serial: str, values: Mapping[bytes, bytes | None]) -> dict[str, Any]:
    """The passport of a verified answer (``exists`` False: the product is proven absent)."""
    pid = K.product_id(gtin, serial)
    raw = values.get(K.product(pid))
    if raw is None:
        return {"gtin": gtin, "serial": serial, "exists": False}
    p = unpack_value(raw)
    pages = int(p["pages"])
    first = max(0, pages - MAX_PASSPORT_PAGES)
    hist: list[list[Any]] = []
    for n in range(first, pages):
        page = values.get(K.product_page(pid, n))
        hist.extend(unpack_value(page) if page is not None else [])
    hist.extend(p["hist"])
    policy = None
    warranty: dict[str, Any] | None = None
    if p.get("policy") is not None:
        praw = values.get(K.policy(bytes(p["policy"])))
        policy = None if praw is None else unpack_value(praw)
        if policy is not None:
            start = int(p["w_start"])
            end = start + int(policy["coverage_ms"])
            warranty = {"policy_id": bytes(p["policy"]).hex(), "name": policy["name"], "issued_by": policy["owner"],
                        "service_org": policy["service_org"], "start_ms": start, "start": _iso(start), "end_ms": end,
                        "end": _iso(end), "covered_faults": list(policy["faults"]),
                        "first_response_ms": policy["fr_ms"], "resolution_ms": policy["res_ms"]}
    recall_raw = values.get(K.recall(gtin, str(p["batch"])))
    recall = None if recall_raw is None else unpack_value(recall_raw)
    tickets = []
    for tid in ticket_ids(hist):
        traw = values.get(K.ticket(tid))
        t = None if traw is None else unpack_value(traw)
        if t is None:
            continue
        tickets.append({"ticket_id": tid.hex(), "kind": t["kind"], "status": t["status"], "org": t["org"],
                        "opened_ms": t["opened"], "opened": _iso(t["opened"]), "breaches": t["breaches"]})
    quality = {}
    for org in sorted({service_org(p, policy), *(t["org"] for t in tickets)}):
        qraw = values.get(K.quality(org))
        quality[org] = None if qraw is None else quality_report(unpack_value(qraw))
    return {
        "gtin": gtin, "serial": serial, "exists": True, "maker": p["mfr"], "model": p["model"], "batch": p["batch"],
        "produced_ms": p["prod_ms"], "produced": _iso(p["prod_ms"]), "registered_ms": p["reg_ms"],
        "owner": _party(p["owner"]), "seller": p["seller"], "sale_ms": p["sale_ms"] or None, "sold": _iso(p["sale_ms"]),
        "disposition": p["disp"], "warranty": warranty,
        "recall": None if recall is None else {"by": recall["by"], "time_ms": recall["time"], "time": _iso(recall["time"]),
                                               "reason_hash": _hex(recall["reason"])},
        "history": [_entry(e) for e in hist], "history_entries": pages * HISTORY_PAGE + len(p["hist"]),
        "history_complete": first == 0, "history_head": _hex(p.get("hh")), "tickets": tickets,
        "service_org": service_org(p, policy), "quality": quality,
    }


def _median_text(q: dict[str, Any], name: str) -> str:
    exact, bounds = q[f"median_{name}_ms"], q[f"median_{name}_bounds_ms"]
    if bounds is None:
        return "no samples yet"
    if exact is not None:
        return f"{fmt_duration(exact)} (exact)"
    return f"between {fmt_duration(bounds[0])} and {fmt_duration(bounds[1])} (bound: more than {q['exact_samples_max']} samples)"


def quality_lines(org: str, q: dict[str, Any] | None) -> list[str]:
    """An organisation's quality figures, saying which medians are exact and which bounds."""
    if q is None:
        return [f"  {org}: no tickets yet"]
    rate = q["resolution_rate_permille"] / 10
    rating = f"{q['mean_rating_centi'] / 100:.2f} / 5 ({q['ratings']} ratings)" if q["ratings"] else "no ratings yet"
    return [f"  {org}: {q['tickets']} tickets, {q['resolved']} resolved ({rate:.1f} %), {q['breaches']} SLA breaches",
            f"    median first response: {_median_text(q, 'first_response')}",
            f"    median resolution: {_median_text(q, 'resolution')}",
            f"    rating: {rating}"]


def passport_lines(v: dict[str, Any]) -> list[str]:
    """The passport as text lines."""
    if not v["exists"]:
        return [f"product {v['gtin']}/{v['serial']}: not registered (proven absent)"]
    lines = [f"product {v['gtin']}/{v['serial']}",
             f"  maker: {v['maker']}, model {v['model']}, batch {v['batch']}, produced {v['produced'] or '-'}",
             f"  owner: {v['owner']}; condition: {v['disposition']}",
             f"  sold: {v['sold'] + ' by ' + str(v['seller']) if v['sold'] else 'not sold to a customer yet'}"]
    w = v["warranty"]
    if w is None:
        lines.append("  warranty: none")
    else:
        lines.append(f"  warranty: {w['name']} by {w['issued_by']}, serviced by {w['service_org']}: "
                     f"{w['start']} until {w['end']}")
        lines.append(f"    promises: first response within {fmt_duration(w['first_response_ms'])}, "
                     f"resolution within {fmt_duration(w['resolution_ms'])}")
    r = v["recall"]
    lines.append("  recall: none for this batch (proven absent)" if r is None else f"  RECALLED by {r['by']} on {r['time']}")
    lines.append(f"  history ({v['history_entries']} entries" + ("" if v["history_complete"] else ", oldest not shown")
                 + ("; hash chain verified)" if v["history_complete"] else ")"))
    for e in v["history"]:
        what = {"register": lambda e: f"registered by {e['by']}",
                "trace": lambda e: f"{e['biz_step']} by {e['by']} -> {e['disposition']}",
                "warranty": lambda e: f"warranty activated by {e['by']}",
                "ticket": lambda e: f"ticket {e['ticket_id']} ({e['ticket_kind']})",
                "return": lambda e: f"return {e['ticket_id']}"}.get(e["kind"], lambda e: f"{e['kind']} to {e['to']}")(e)
        lines.append(f"    {e['time'] or '-'}  {what}")
    lines.append(f"  tickets ({len(v['tickets'])}):" if v["tickets"] else "  tickets: none")
    for t in v["tickets"]:
        lines.append(f"    {t['ticket_id']}  {t['kind']}, {t['status']}, opened {t['opened']}, handled by {t['org']}"
                     + (f", {t['breaches']} SLA breach(es)" if t["breaches"] else ""))
    lines.append("  service quality:")
    for org, q in v["quality"].items():
        lines.extend(quality_lines(org, q))
    return lines
