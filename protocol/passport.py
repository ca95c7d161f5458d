"""Product passports: the product-history commitment, the keys a passport proves, and the
service-quality report of the stored counters (pure functions; the app writes what these
functions read, light clients and the browser page check it).

History commitment. A product record (``prod/<product>``, `state_keys.product`) carries
``hh``: the head of a hash chain over every history entry of the product, oldest first::

    hh_0     = 32 zero bytes
    hh_(i+1) = SHA-256(hh_i || msgpack(entry_i))

where ``msgpack(entry)`` is the entry (an array of integers, strings, byte strings and
nils) in canonical msgpack: smallest integer form, strings as str, bytes as bin
(``use_bin_type``). The entries are the full pages ``ph/<product>/<n>`` (n = 0 ..
``pages`` - 1, `HISTORY_PAGE` entries each) followed by the record's own ``hist``. One
state proof of the record thus commits to the whole, ordered history.

Passport. `passport_keys` names, from the verified values themselves, every state key a
passport shows: the product, its newest `MAX_PASSPORT_PAGES` history pages, its policy,
the recall of its batch (usually proven absent), its newest `MAX_PASSPORT_TICKETS`
tickets (history entries of kind ``ticket`` / ``return``; entry[2] is the ticket id) and
the quality counters of the service organisation and of every listed ticket's
organisation. A node answers all of them against one certified header
(``/v1/proofs/passports/{gtin}/{serial}``); a client recomputes the list from the proven
values and refuses an answer that leaves one out (`Reason.INCOMPLETE`).

Quality. The counters (``q/<org>``) keep a histogram over `QUALITY_BUCKETS_MS` for first
response and resolution times, the smallest and largest sample, and the samples themselves
(sorted) while there are at most `EXACT_SAMPLES`. `quality_report` gives the exact median
while the samples are kept and otherwise null, and always the bounds ``[lo, hi]`` that
hold the median (equal when exact).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgpack

from . import state_keys as K
from .light import (
    DEFAULT_MAX_CLOCK_DRIFT_MS,
    DEFAULT_TRUSTING_PERIOD_MS,
    CertifiedHeader,
    LightError,
    Reason,
    TrustedState,
    verify_header,
)
from .smt import MAX_KEY_BYTES, SmtProof, verify_smt_proof

__all__ = [
    "EXACT_SAMPLES",
    "HISTORY_PAGE",
    "HISTORY_ZERO",
    "MAX_PASSPORT_PAGES",
    "MAX_PASSPORT_TICKETS",
    "QUALITY_BUCKETS_MS",
    "history_head",
    "history_link",
    "median_bounds",
    "passport_keys",
    "quality_report",
    "service_org",
    "ticket_ids",
    "unpack_value",
    "verify_history",
    "verify_passport",
]

HISTORY_PAGE = 32
"""History entries per full page (state key ``ph/<product>/<page>``)."""
HISTORY_ZERO = bytes(32)
"""The head of an empty history."""
MAX_PASSPORT_PAGES = 32
"""A passport proves at most the newest this many full history pages (1,024 entries)."""
MAX_PASSPORT_TICKETS = 32
"""A passport proves at most the newest this many tickets of the product."""
EXACT_SAMPLES = 64
"""Quality counters keep their time samples (so medians are exact) up to this many."""
QUALITY_BUCKETS_MS = tuple(
    m * 60_000 for m in (1, 5, 15, 30, 60, 120, 240, 480, 720, 1440, 2880, 4320, 7200, 10080, 20160, 43200, 86400, 129600)
)
"""Upper bounds (inclusive) of the time histogram buckets; one more bucket above the last."""
TICKET_ENTRY_KINDS = ("ticket", "return")
"""History entry kinds that open a ticket (entry[2] is the ticket id)."""

_pack = msgpack.Packer(use_bin_type=True).pack


def unpack_value(raw: bytes) -> Any:
    """A stored state value (msgpack) decoded."""
    return msgpack.unpackb(raw, raw=False, strict_map_key=False)


def history_link(head: bytes, entry: Sequence[Any]) -> bytes:
    """The chain head after appending `entry` to a history whose head is `head`."""
    return hashlib.sha256(head + _pack(list(entry))).digest()


def history_head(entries: Iterable[Sequence[Any]], head: bytes = HISTORY_ZERO) -> bytes:
    for e in entries:
        head = history_link(head, e)
    return head


# --------------------------------------------------------------------------- passports


def service_org(product: dict[str, Any], policy: dict[str, Any] | None) -> str:
    """The organisation a product's tickets go to: the policy's service organisation, else
    the seller, else the manufacturer (as `ticket.open` assigns them)."""
    if policy is not None:
        return str(policy["service_org"])
    return str(product.get("seller") or product["mfr"])


def ticket_ids(entries: Iterable[Sequence[Any]], limit: int = MAX_PASSPORT_TICKETS) -> list[bytes]:
    """The ids of the newest `limit` tickets among history `entries` (oldest first)."""
    ids = [bytes(e[2]) for e in entries if len(e) > 2 and e[0] in TICKET_ENTRY_KINDS and isinstance(e[2], bytes)]
    return ids[-limit:] if limit else []


def passport_keys(gtin: str, serial: str, read: Callable[[bytes], bytes | None]) -> list[bytes]:
    """Every state key of a product's passport, in answer order; `read` gives a key's stored
    value (None: absent) and is only asked for keys already in the list.

    Order: product, pages (oldest first), policy, recall, tickets (oldest first), quality
    (by organisation id). An unregistered product's passport is its key alone (proven absent).
    """
    pid = K.product_id(gtin, serial)
    pkey = K.product(pid)
    keys = [pkey]
    raw = read(pkey)
    if raw is None:
        return keys
    p = unpack_value(raw)
    pages = int(p["pages"])
    first = max(0, pages - MAX_PASSPORT_PAGES)
    entries: list[Sequence[Any]] = []
    for n in range(first, pages):
        k = K.product_page(pid, n)
        keys.append(k)
        page = read(k)
        if page is not None:
            entries.extend(unpack_value(page))
    entries.extend(p["hist"])
    policy = None
    if p.get("policy") is not None:
        k = K.policy(bytes(p["policy"]))
        keys.append(k)
        praw = read(k)
        policy = None if praw is None else unpack_value(praw)
    keys.append(K.recall(gtin, str(p["batch"])))
    orgs = {service_org(p, policy)}
    for tid in ticket_ids(entries):
        k = K.ticket(tid)
        keys.append(k)
        traw = read(k)
        if traw is not None:
            orgs.add(str(unpack_value(traw)["org"]))
    keys.extend(K.quality(o) for o in sorted(orgs))
    return keys


def verify_history(product: dict[str, Any], pages: Sequence[Sequence[Sequence[Any]]]) -> list[Sequence[Any]]:
    """The whole history of a proven product record, given ALL its full pages (oldest first):
    checks each page's length and that the entries hash to the record's ``hh``. Raises
    `LightError` (``light.history_mismatch``)."""
    if len(pages) != int(product["pages"]):
        raise LightError(Reason.HISTORY_MISMATCH, f"{len(pages)} history pages given, the record has {product['pages']}")
    entries: list[Sequence[Any]] = []
    for n, page in enumerate(pages):
        if len(page) != HISTORY_PAGE:
            raise LightError(Reason.HISTORY_MISMATCH, f"history page {n} has {len(page)} entries, not {HISTORY_PAGE}")
        entries.extend(page)
    entries.extend(product["hist"])
    try:
        head = history_head(entries)
    except (TypeError, ValueError) as exc:
        raise LightError(Reason.HISTORY_MISMATCH, f"a history entry cannot be encoded: {exc}") from None
    if head != product.get("hh"):
        raise LightError(Reason.HISTORY_MISMATCH, f"the history hashes to {head.hex()[:16]}..., the record commits to "
                                                  f"{bytes(product.get('hh') or b'').hex()[:16]}...")
    return entries


def verify_passport(trust: TrustedState, gtin: str, serial: str, header: CertifiedHeader, state_root: bytes,
                    entries: Sequence[tuple[bytes, bytes | None, SmtProof]], changes: Sequence[CertifiedHeader] = (), *,
                    now_ms: int, trusting_period_ms: int = DEFAULT_TRUSTING_PERIOD_MS,
                    max_clock_drift_ms: int = DEFAULT_MAX_CLOCK_DRIFT_MS) -> tuple[dict[bytes, bytes | None], TrustedState]:
    """Verify a passport answer: (every passport key -> its verified value or None, new trust).

    In order: the header (`protocol.light.verify_header`); each entry's proof against the
    header's ``state_root`` (``light.wrong_root`` / ``light.value_tampered`` /
    ``light.absence_forged``); the keys are exactly `passport_keys` of the proven values,
    each once (``light.incomplete``); when every history page is in the answer, the history
    hashes to the record's ``hh`` (``light.history_mismatch``).
    """
    new_trust = verify_header(trust, header, changes, now_ms=now_ms, trusting_period_ms=trusting_period_ms,
                              max_clock_drift_ms=max_clock_drift_ms)
    root = header.header.state_root
    if state_root != root:
        raise LightError(Reason.WRONG_ROOT, f"the proofs are against root {state_root.hex()[:16]}..., the header's "
                                            f"state_root is {root.hex()[:16]}...")
    values: dict[bytes, bytes | None] = {}
    for key, value, proof in entries:
        if len(key) > MAX_KEY_BYTES:
            raise LightError(Reason.MALFORMED, f"a state key is at most {MAX_KEY_BYTES} bytes")
        if key in values:
            raise LightError(Reason.INCOMPLETE, f"key {key.hex()} is answered twice")
        if not verify_smt_proof(root, key, value, proof):
            if value is None:
                raise LightError(Reason.ABSENCE_FORGED, f"key {key.hex()}: the proof does not show it absent")
            raise LightError(Reason.VALUE_TAMPERED, f"key {key.hex()}: the value does not verify under the state root")
        values[key] = value

    def read(key: bytes) -> bytes | None:
        if key not in values:
            raise LightError(Reason.INCOMPLETE, f"the answer leaves out key {key.hex()}")
        return values[key]

    try:
        wanted = passport_keys(gtin, serial, read)
    except LightError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, msgpack.UnpackException) as exc:
        raise LightError(Reason.MALFORMED, f"a proven value is not a ledger record of its kind: {exc!r}") from None
    missing = [k for k in wanted if k not in values]
    if missing:
        raise LightError(Reason.INCOMPLETE, f"the answer leaves out key {missing[0].hex()}")
    extra = sorted(set(values) - set(wanted))
    if extra:
        raise LightError(Reason.INCOMPLETE, f"the answer adds key(s) a passport does not show: {extra[0].hex()}")
    pid = K.product_id(gtin, serial)
    raw = values[K.product(pid)]
    if raw is not None:
        p = unpack_value(raw)
        pages = int(p["pages"])
        if pages <= MAX_PASSPORT_PAGES:
            try:
                page_entries = [unpack_value(values[K.product_page(pid, n)] or b"\xc0") or [] for n in range(pages)]
            except (TypeError, ValueError, msgpack.UnpackException) as exc:
                raise LightError(Reason.MALFORMED, f"a history page is not a list: {exc!r}") from None
            verify_history(p, page_entries)
    return values, new_trust


# --------------------------------------------------------------------------- quality


def median_bounds(q: dict[str, Any], name: str) -> tuple[int | None, list[int] | None]:
    """(exact median or None, [lo, hi] bounds of the median or None) of histogram `name`.

    The median is the ceil(n/2)-th smallest sample (the lower median). Exact while the
    samples are kept (``<name>_s``); otherwise the bucket holding that rank, narrowed by
    the smallest and largest sample.
    """
    n = int(q[name + "_n"])
    if n == 0:
        return None, None
    rank = (n + 1) // 2
    samples = q.get(name + "_s")
    if isinstance(samples, list) and len(samples) == n:
        v = int(samples[rank - 1])
        return v, [v, v]
    seen = 0
    hist = q[name]
    for i, c in enumerate(hist):
        seen += c
        if seen >= rank:
            lo = QUALITY_BUCKETS_MS[i - 1] + 1 if i > 0 else 0
            hi = QUALITY_BUCKETS_MS[i] if i < len(QUALITY_BUCKETS_MS) else int(q[name + "_max"])
            lo = max(lo, int(q.get(name + "_min", 0)))
            hi = min(hi, int(q[name + "_max"]))
            if lo == hi:
                return lo, [lo, hi]
            return None, [lo, hi]
    return None, None  # pragma: no cover - counts always add up to n


def quality_report(q: dict[str, Any]) -> dict[str, Any]:
    """The service-quality report of stored counters (``q/<org>``).

    ``median_*_ms`` is exact or null; ``median_*_bounds_ms`` = [lo, hi] always holds the
    median (lo == hi when exact); null when there is no sample.
    """
    fr, fr_b = median_bounds(q, "fr")
    res, res_b = median_bounds(q, "res")
    return {
        "since_ms": q["since"], "tickets": q["handled"], "resolved": q["resolved"],
        "resolution_rate_permille": q["resolved"] * 1000 // q["handled"] if q["handled"] else 0,
        "median_first_response_ms": fr, "median_first_response_bounds_ms": fr_b,
        "median_resolution_ms": res, "median_resolution_bounds_ms": res_b,
        "first_responses": q["fr_n"], "breaches": q["breaches"], "ratings": q["r_n"],
        "mean_rating_centi": q["r_sum"] * 100 // q["r_n"] if q["r_n"] else 0,
        "exact_samples_max": EXACT_SAMPLES,
    }
