"""Honest quality numbers (issue 24): exact medians while the ledger keeps the samples,
bounds that hold the median after that, and bounded memory."""

from __future__ import annotations

from typing import Any

import msgpack

from afterchain.node.app.quality import EXACT_SAMPLES, QUALITY_BUCKETS_MS, report, sample
from afterchain.protocol.passport import median_bounds


def fresh() -> dict[str, Any]:
    n = len(QUALITY_BUCKETS_MS) + 1
    return {"since": 0, "handled": 0, "resolved": 0, "breaches": 0, "fr": [0] * n, "fr_n": 0, "fr_max": 0,
            "fr_min": 0, "fr_s": [], "res": [0] * n, "res_n": 0, "res_max": 0, "res_min": 0, "res_s": [],
            "r_sum": 0, "r_n": 0}


def test_a_one_second_response_is_reported_as_one_second() -> None:
    q = fresh()
    sample(q, "fr", 1_000)
    r = report(q)
    assert r["median_first_response_ms"] == 1_000 and r["median_first_response_bounds_ms"] == [1_000, 1_000]
    assert r["median_resolution_ms"] is None and r["median_resolution_bounds_ms"] is None


def test_exact_lower_median_up_to_the_limit_in_any_order() -> None:
    q = fresh()
    values = [(i * 7919) % 1000 * 1000 + 17 for i in range(EXACT_SAMPLES)]  # a permutation, not sorted
    for v in values:
        sample(q, "fr", v)
    want = sorted(values)[(len(values) + 1) // 2 - 1]
    assert q["fr_s"] == sorted(values)
    assert median_bounds(q, "fr") == (want, [want, want])


def test_beyond_the_limit_only_bounds_that_hold_the_true_median() -> None:
    q = fresh()
    values = [30_000 + 997 * i for i in range(EXACT_SAMPLES + 1)]  # 30 s .. ~94.8 s, spanning two buckets
    for v in values:
        sample(q, "fr", v)
    assert q["fr_s"] is None  # the samples are dropped: the record stays small
    exact, bounds = median_bounds(q, "fr")
    true_median = sorted(values)[(len(values) + 1) // 2 - 1]
    assert exact is None and bounds is not None
    lo, hi = bounds
    assert lo <= true_median <= hi
    # the median (~62 s) is in the (1 min, 5 min] bucket, whose upper bound is narrowed by the
    # largest sample (~94 s): not "5 min", which the report used to call the median
    assert (lo, hi) == (60_001, max(values)) and true_median > 60_000
    r = report(q)
    assert r["median_first_response_ms"] is None and r["median_first_response_bounds_ms"] == [lo, hi]
    assert r["exact_samples_max"] == EXACT_SAMPLES


def test_lower_bound_is_the_smallest_sample_in_the_first_bucket() -> None:
    q = fresh()
    for _ in range(EXACT_SAMPLES + 1):
        sample(q, "res", 5_000)
    for _ in range(EXACT_SAMPLES):
        sample(q, "res", 50_000)
    # every sample is in the first bucket (<= 1 min): the bounds are [smallest, largest]
    assert median_bounds(q, "res") == (None, [5_000, 50_000])
    q2 = fresh()
    for _ in range(2 * EXACT_SAMPLES):
        sample(q2, "res", 5_000)
    assert median_bounds(q2, "res") == (5_000, [5_000, 5_000])  # lo == hi: exact after all


def test_the_record_is_bounded() -> None:
    q = fresh()
    sizes = []
    for i in range(10 * EXACT_SAMPLES):
        sample(q, "fr", 1_000 + i)
        sample(q, "res", 100_000 + i)
        sizes.append(len(msgpack.packb(q, use_bin_type=True)))
    assert max(sizes) < 1_500 and sizes[-1] < 400
