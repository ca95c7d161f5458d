"""SLA deadlines and breaches of tickets, in block time.

Deadlines (first response, resolution) run from opening, only for tickets under a policy;
they pause while ``waiting_customer`` (the pause is added back). Resolved tickets close
themselves ``ledger.auto_close_delay_ms`` after resolution. Pending deadlines are the index
``idl<due:8><kind:1><ticket id>``; an entry whose ticket no longer has that due time is
stale and skipped. At the START of a block, deadlines due by its time are processed in
index order (due time, kind: first_response < resolution < auto_close, ticket id), at most
``ledger.max_deadlines_per_block``. A passed deadline records a breach, escalates the
ticket (if it is open and not already escalated) and applies the policy's penalty through
the agreement hooks (``min(amount, payer balance)`` moves; the shortfall is noted).
"""

from __future__ import annotations

from typing import Any

from afterchain.node.app.context import Env
from afterchain.node.app.hooks import PenaltyInput, customer_account
from afterchain.node.app.lifecycle import MAX_TICKET_CHANGES, SYSTEM, TRANSITIONS, on_final, transition
from afterchain.node.app.orgs import transfer
from afterchain.node.app.policies import policy_terms, sla_penalty
from afterchain.node.app.quality import load_quality
from afterchain.node.app.state import State
from afterchain.protocol import state_keys as K

__all__ = ["DL_AUTO_CLOSE", "DL_FIRST", "DL_RESOLUTION", "clear_sla", "deadline_add", "deadline_remove",
           "process_deadlines"]

DL_FIRST, DL_RESOLUTION, DL_AUTO_CLOSE = 0, 1, 2
DEADLINE_NAMES = ("first_response", "resolution", "auto_close")
_DUE_FIELDS = ("fr_due", "res_due", "ac_due")


def deadline_add(st: State, due: int, kind: int, tid: bytes) -> None:
    st.index_add(K.deadline(due, kind, tid))


def deadline_remove(st: State, due: int | None, kind: int, tid: bytes) -> None:
    if due is not None:
        st.index_remove(K.deadline(due, kind, tid))


def clear_sla(st: State, t: dict[str, Any], tid: bytes) -> None:
    """Cancel the first-response and resolution deadlines (and a pause)."""
    deadline_remove(st, t["fr_due"], DL_FIRST, tid)
    deadline_remove(st, t["res_due"], DL_RESOLUTION, tid)
    t["fr_due"] = t["res_due"] = None
    t["paused"] = None


def process_deadlines(env: Env, time_ms: int) -> int:
    """Process the deadlines due by `time_ms` (block start); returns how many entries."""
    st = env.state
    due_keys = []
    for k, _ in st.scan(K.DEADLINES, K.DEADLINES + K.u64(time_ms + 1)):
        due_keys.append(k)
        if len(due_keys) >= env.params.max_deadlines_per_block:
            break
    for k in due_keys:
        due = int.from_bytes(k[3:11], "big")
        kind = k[11]
        tid = k[12:]
        st.index_remove(k)
        t = st.get(K.ticket(tid))
        if t is None:
            continue
        field = _DUE_FIELDS[kind]
        if t.get(field) != due:
            continue  # stale entry (deadline moved or cancelled)
        t[field] = None
        if kind == DL_AUTO_CLOSE:
            transition(st, t, tid, "auto_close", SYSTEM, time_ms, None, "auto_close")
            on_final(t, time_ms)
        else:
            _breach(env, t, tid, kind, due, time_ms)
        st.put(K.ticket(tid), t)
    return len(due_keys)


def _breach(env: Env, t: dict[str, Any], tid: bytes, kind: int, due: int, time_ms: int) -> None:
    st = env.state
    t["breaches"] += 1
    env.block_breaches += 1
    q = load_quality(st, t["org"], time_ms)
    q["breaches"] += 1
    st.put(K.quality(t["org"]), q)
    name = DEADLINE_NAMES[kind]
    note = f"breach:{name}"
    policy = policy_terms(st, t["policy"])
    if policy is not None:
        inp = PenaltyInput(policy=policy, ticket_id=tid, deadline=name, deadline_ms=due, now_ms=time_ms,
                           assigned_org=t["org"], customer=customer_account(t["cust"]), breaches_before=t["breaches"] - 1)
        pen, failure = sla_penalty(env, policy, inp)
        if failure:
            note += f";hook_failed:{failure}"
        if pen.amount > 0 and pen.payer != pen.payee:
            moved = transfer(st, pen.payer, pen.payee, pen.amount)
            t["penalties"] += moved
            note += f";penalty:{moved}"
            if moved < pen.amount:
                note += f";shortfall:{pen.amount - moved}"
    if TRANSITIONS.get(("breach", t["status"])) is not None:
        transition(st, t, tid, "breach", SYSTEM, time_ms, None, note)
    elif len(t["notes"]) < MAX_TICKET_CHANGES:
        t["notes"].append(note)
