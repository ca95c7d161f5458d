"""Service quality and ratings: per-organisation counters (``q/<org>``, integers only).

Counts tickets handled and resolved, SLA breaches and ratings; for first response and
resolution times a histogram over the fixed bucket bounds `QUALITY_BUCKETS_MS` plus the
largest sample. The reported median is the upper bound of the bucket holding the
ceil(n/2)-th smallest sample (the largest sample if that is the overflow bucket).
A ticket's customer rates it once, after it ended.
"""

from __future__ import annotations

from typing import Any

from afterchain.node.app.codes import Reason
from afterchain.node.app.context import Ctx, Env, Handler, Rejected
from afterchain.node.app.lifecycle import FINAL, load_ticket
from afterchain.node.app.state import State
from afterchain.protocol import bodies as B
from afterchain.protocol import state_keys as K

__all__ = ["HANDLERS", "QUALITY_BUCKETS_MS", "load_quality", "report", "sample"]

QUALITY_BUCKETS_MS = tuple(
    m * 60_000 for m in (1, 5, 15, 30, 60, 120, 240, 480, 720, 1440, 2880, 4320, 7200, 10080, 20160, 43200, 86400, 129600)
)
"""Upper bounds (inclusive) of the time histogram buckets; one more bucket above the last."""


def load_quality(st: State, org: str, time_ms: int) -> dict[str, Any]:
    """The counters of `org` (new, zero counters since `time_ms` if it has none yet)."""
    q = st.get(K.quality(org))
    if q is None:
        n = len(QUALITY_BUCKETS_MS) + 1
        q = {"since": time_ms, "handled": 0, "resolved": 0, "breaches": 0, "fr": [0] * n, "fr_n": 0, "fr_max": 0,
             "res": [0] * n, "res_n": 0, "res_max": 0, "r_sum": 0, "r_n": 0}
    return q  # type: ignore[no-any-return]


def sample(q: dict[str, Any], name: str, ms: int) -> None:
    """Count a time sample in histogram `name` (``fr`` or ``res``)."""
    i = 0
    while i < len(QUALITY_BUCKETS_MS) and ms > QUALITY_BUCKETS_MS[i]:
        i += 1
    q[name][i] += 1
    q[name + "_n"] += 1
    q[name + "_max"] = max(q[name + "_max"], ms)


def report(q: dict[str, Any]) -> dict[str, Any]:
    """The service-quality report of stored counters."""
    return {
        "since_ms": q["since"], "tickets": q["handled"], "resolved": q["resolved"],
        "resolution_rate_permille": q["resolved"] * 1000 // q["handled"] if q["handled"] else 0,
        "median_first_response_ms": _median(q["fr"], q["fr_n"], q["fr_max"]),
        "median_resolution_ms": _median(q["res"], q["res_n"], q["res_max"]),
        "first_responses": q["fr_n"], "breaches": q["breaches"], "ratings": q["r_n"],
        "mean_rating_centi": q["r_sum"] * 100 // q["r_n"] if q["r_n"] else 0,
    }


def _median(hist: list[int], n: int, largest: int) -> int | None:
    if n == 0:
        return None
    rank = (n + 1) // 2
    seen = 0
    for i, c in enumerate(hist):
        seen += c
        if seen >= rank:
            return QUALITY_BUCKETS_MS[i] if i < len(QUALITY_BUCKETS_MS) else largest
    return largest  # pragma: no cover - counts always add up to n


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
