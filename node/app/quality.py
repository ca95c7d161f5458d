"""Service quality and ratings: per-organisation counters (``q/<org>``, integers only).

Counts tickets handled and resolved, SLA breaches and ratings; for first response and
resolution times a histogram over the fixed bucket bounds `QUALITY_BUCKETS_MS`, the
smallest and largest sample, and the samples themselves (sorted) while there are at most
`EXACT_SAMPLES` (``fr_s`` / ``res_s``; dropped, set to nil, at the next sample). The
report (`protocol.passport.quality_report`) gives the exact median while the samples are
kept, else the bounds that hold it. A ticket's customer rates it once, after it ended.
"""

from __future__ import annotations

import bisect
from typing import Any

from afterchain.node.app.codes import Reason
from afterchain.node.app.context import Ctx, Env, Handler, Rejected
from afterchain.node.app.lifecycle import FINAL, load_ticket
from afterchain.node.app.state import State
from afterchain.protocol import bodies as B
from afterchain.protocol import state_keys as K
from afterchain.protocol.passport import EXACT_SAMPLES, QUALITY_BUCKETS_MS, quality_report

__all__ = ["EXACT_SAMPLES", "HANDLERS", "QUALITY_BUCKETS_MS", "load_quality", "report", "sample"]


def load_quality(st: State, org: str, time_ms: int) -> dict[str, Any]:
    """The counters of `org` (new, zero counters since `time_ms` if it has none yet)."""
    q = st.get(K.quality(org))
    if q is None:
        n = len(QUALITY_BUCKETS_MS) + 1
        q = {"since": time_ms, "handled": 0, "resolved": 0, "breaches": 0, "fr": [0] * n, "fr_n": 0, "fr_max": 0,
             "fr_min": 0, "fr_s": [], "res": [0] * n, "res_n": 0, "res_max": 0, "res_min": 0, "res_s": [],
             "r_sum": 0, "r_n": 0}
    return q  # type: ignore[no-any-return]


def sample(q: dict[str, Any], name: str, ms: int) -> None:
    """Count a time sample in histogram `name` (``fr`` or ``res``)."""
    i = 0
    while i < len(QUALITY_BUCKETS_MS) and ms > QUALITY_BUCKETS_MS[i]:
        i += 1
    q[name][i] += 1
    first = q[name + "_n"] == 0
    q[name + "_n"] += 1
    q[name + "_max"] = max(q[name + "_max"], ms)
    q[name + "_min"] = ms if first else min(q[name + "_min"], ms)
    kept = q[name + "_s"]
    if kept is not None:
        if len(kept) < EXACT_SAMPLES:
            bisect.insort(kept, ms)
        else:
            q[name + "_s"] = None  # beyond EXACT_SAMPLES only the histogram and bounds remain


def report(q: dict[str, Any]) -> dict[str, Any]:
    """The service-quality report of stored counters (`protocol.passport.quality_report`)."""
    return quality_report(q)


def rating_submit(env: Env, ctx: Ctx, b: B.RatingSubmit) -> Any:
    st = env.state
    t = load_ticket(st, b.ticket_id)
    if ctx.sender != t["cust"]:
        raise Rejected(Reason.NOT_CUSTOMER, "only the ticket's customer rates it")
    if t["status"] not in FINAL:
        raise Rejected(Reason.RATING_NOT_CLOSED, f"the ticket is {t['status']}, not finished")
    if t["rating"] is not None:
        raise Rejected(Reason.RATING_EXISTS, "the ticket is already rated")
    t["rating"] = [b.score, b.comment_hash, ctx.time_ms]
    q = load_quality(st, t["org"], ctx.time_ms)
    q["r_sum"] += b.score
    q["r_n"] += 1
    st.put(K.quality(t["org"]), q)
    st.put(K.ticket(b.ticket_id), t)
    return None


HANDLERS: dict[str, Handler] = {"rating.submit": rating_submit}
