"""`./scripts/bench cluster --members M`: the same offered rate without and then with M
member nodes, compared against issue 23's targets (validators' CPU and upload per event,
member lag, members' CPU per event). The runs themselves are `node.bench.cluster.run`."""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from afterchain.node.bench.cluster import run

__all__ = ["MEMBER_TARGETS", "compare_members", "report_members"]

MEMBER_TARGETS = {"validator_overhead_max": 0.15, "member_lag_p99_s_max": 1.0, "member_cpu_ratio_max": 0.5,
                  "member_cpu_ratio_max_issue27": 0.4}
"""The targets for member nodes: members add at most 15% to validators' CPU and upload per
event; member lag p99 <= 1 s; a member's CPU per event <= half a validator's (issue 23),
and <= 0.40 of it (issue 27, performance)."""


def _to_members(res: dict[str, Any], vals: list[str], events: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for k in vals:
        for label, (_frames, nbytes) in res.get("sent_by", {}).get(k, {}).items():
            if label.startswith("member:"):
                out[label[len("member:"):]] = out.get(label[len("member:"):], 0.0) + nbytes / len(vals) / events
    return {k: round(v, 1) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}


def compare_members(args: argparse.Namespace) -> dict[str, Any]:
    """`--members M`: the cluster without and with M member nodes at the same offered rate."""
    out_dir = Path(args.out)
    rate = args.rate
    calibration = None
    if rate == "max":
        print("members: a validators-only run at full speed to find the sustained rate ...", flush=True)
        calibration = run(args)
        rate = str(round(0.8 * calibration["sustained_events_per_s"], 1))
        print(f"  sustained {calibration['sustained_events_per_s']} events/s: both runs offer 80% of it, {rate}/s", flush=True)
    phase = argparse.Namespace(**{**vars(args), "rate": rate})
    print(f"members: validators only at {rate} events/s ...", flush=True)
    # the same status polling as the run with members (it samples every node's height for
    # the members' lag): the validators serve it in both runs
    without = run(phase, sample_heights=True)
    print(f"members: {args.members} member nodes at {rate} events/s ...", flush=True)
    with_m = run(phase, members=args.members)

    def side(res: dict[str, Any]) -> dict[str, Any]:
        n = max(1, res["committed"])
        roles = res["roles"]
        vals = [k for k, r in roles.items() if r == "validator"]
        mems = [k for k, r in roles.items() if r == "member"]
        def mean(xs: list[float]) -> float | None:
            return round(statistics.mean(xs), 3) if xs else None
        return {
            "committed": res["committed"], "sustained_events_per_s": res["sustained_events_per_s"],
            "latency_s": res["latency_s"],
            "validator_cpu_ms_per_event": mean([1000 * res["per_node"][k]["cpu_s"] / n for k in vals if k in res["per_node"]]),
            "validator_upload_bytes_per_event": mean([res["bytes_sent"][k] / n for k in vals if k in res["bytes_sent"]]),
            "member_cpu_ms_per_event": mean([1000 * res["per_node"][k]["cpu_s"] / n for k in mems if k in res["per_node"]]),
            "member_upload_bytes_per_event": mean([res["bytes_sent"][k] / n for k in mems if k in res["bytes_sent"]]),
            "member_lag_s": res["member_lag_s"],
            "member_lag_polled_s": res.get("member_lag_polled_s"),
            # what validators wrote to members, by message: bytes per committed event (all validators' mean)
            "validator_to_members_bytes_per_event": _to_members(res, vals, n),
        }

    a, b = side(without), side(with_m)

    def ratio(x: float | None, y: float | None) -> float | None:
        return round(x / y, 3) if x is not None and y else None

    cpu_over = ratio(b["validator_cpu_ms_per_event"], a["validator_cpu_ms_per_event"])
    up_over = ratio(b["validator_upload_bytes_per_event"], a["validator_upload_bytes_per_event"])
    mem_ratio = ratio(b["member_cpu_ms_per_event"], b["validator_cpu_ms_per_event"])
    lag = b["member_lag_s"] or {}
    t = MEMBER_TARGETS
    result = {
        "nodes": args.nodes, "members": args.members, "offered_rate": float(rate), "duration_s": args.duration,
        "calibration_sustained_events_per_s": calibration["sustained_events_per_s"] if calibration else None,
        "without_members": a, "with_members": b,
        "validator_cpu_per_event_ratio": cpu_over, "validator_upload_per_event_ratio": up_over,
        "member_to_validator_cpu_ratio": mem_ratio,
        "targets": t,
        "targets_met": {
            "validator_cpu": cpu_over is not None and cpu_over <= 1 + t["validator_overhead_max"],
            "validator_upload": up_over is not None and up_over <= 1 + t["validator_overhead_max"],
            "member_lag_p99": lag.get("p99") is not None and lag["p99"] <= t["member_lag_p99_s_max"],
            "member_cpu": mem_ratio is not None and mem_ratio <= t["member_cpu_ratio_max"],
            "member_cpu_issue27": mem_ratio is not None and mem_ratio <= t["member_cpu_ratio_max_issue27"],
        },
        "runs": {"without_members": without, "with_members": with_m, **({"calibration": calibration} if calibration else {})},
    }
    (out_dir / "cluster-members.json").write_text(json.dumps(result, indent=2) + "\n")
    _plot_members(result, out_dir / "cluster-members.png")
    return result


def _plot_members(result: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    a, b = result["without_members"], result["with_members"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
    ax = axes[0]
    labels = ["validators only", f"+{result['members']} members"]
    ax.bar(labels, [a["validator_cpu_ms_per_event"] or 0, b["validator_cpu_ms_per_event"] or 0], color="#2f6fde")
    ax.axhline((a["validator_cpu_ms_per_event"] or 0) * 1.15, color="#b54708", ls="--", label="+15%")
    ax.set_title("validator CPU ms / event")
    ax.legend()
    ax = axes[1]
    ax.bar(labels, [(a["validator_upload_bytes_per_event"] or 0) / 1000, (b["validator_upload_bytes_per_event"] or 0) / 1000],
           color="#2f6fde")
    ax.axhline((a["validator_upload_bytes_per_event"] or 0) * 1.15 / 1000, color="#b54708", ls="--", label="+15%")
    ax.set_title("validator upload kB / event")
    ax.legend()
    ax = axes[2]
    lag = b["member_lag_s"] or {}
    ax.bar(["lag p50 (s)", "lag p99 (s)", "member/validator CPU"],
           [lag.get("p50") or 0, lag.get("p99") or 0, result["member_to_validator_cpu_ratio"] or 0], color="#12b76a")
    ax.axhline(1.0, color="#b54708", ls="--", label="lag p99 target 1 s")
    ax.axhline(0.5, color="#7a5af8", ls=":", label="CPU ratio target 0.5")
    ax.set_title("members")
    ax.legend(fontsize=8)
    fig.suptitle(f"{result['nodes']} validators, {result['members']} members, {result['offered_rate']:.0f} events/s offered")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report_members(r: dict[str, Any], args: argparse.Namespace) -> int:
    a, b = r["without_members"], r["with_members"]
    print(f"\n{r['nodes']} validators, offered {r['offered_rate']} events/s for {r['duration_s']} s"
          + (f" (80% of the {r['calibration_sustained_events_per_s']} events/s sustained validators-only)"
             if r["calibration_sustained_events_per_s"] else ""))
    for name, x in (("validators only", a), (f"with {r['members']} members", b)):
        print(f"  {name}: committed {x['committed']:,}, sustained {x['sustained_events_per_s']} events/s, finality p50 "
              f"{x['latency_s']['p50']} s p99 {x['latency_s']['p99']} s; validator CPU {x['validator_cpu_ms_per_event']} ms and "
              f"upload {x['validator_upload_bytes_per_event']} B per event")
    lag = b["member_lag_s"] or {}
    print(f"  members: CPU {b['member_cpu_ms_per_event']} ms per event ({r['member_to_validator_cpu_ratio']} of a validator's), "
          f"upload {b['member_upload_bytes_per_event']} B per event; lag behind the validators p50 {lag.get('p50')} s, "
          f"p99 {lag.get('p99')} s, max {lag.get('max')} s ({lag.get('samples')} samples, {lag.get('heights_not_reached')} "
          f"heights never reached, from {lag.get('source')}; polled: p99 {(b.get('member_lag_polled_s') or {}).get('p99')} s)")
    print(f"  validators to members, bytes per event by message: {b['validator_to_members_bytes_per_event']}")
    print(f"validators with members / without: CPU per event x{r['validator_cpu_per_event_ratio']}, upload per event "
          f"x{r['validator_upload_per_event_ratio']}; targets met: {r['targets_met']}")
    print(f"results: {Path(args.out) / 'cluster-members.json'}, plot: {Path(args.out) / 'cluster-members.png'}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(r, indent=2) + "\n")
    return 0

