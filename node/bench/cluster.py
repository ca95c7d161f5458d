"""End-to-end benchmark of a local cluster: committed events/s, finality latency, CPU and
peak RSS per node, view changes, and this machine's ceiling, all from one run.

    ./scripts/bench cluster [--nodes 4] [--duration 60] [--rate R|max] [--out DIR] [--quick]

What it does:
1. measures the machine's ceiling: the per-event verification path (decode, hash,
   Ed25519 verify) on every core at once (one process per core), in events/s; with N
   nodes sharing the machine and each verifying every event, the cluster cannot beat
   ceiling / N (`bound`). It is measured before the cluster starts and again after it
   stopped, and the bound uses the mean (a shared machine's speed drifts);
2. starts a fresh N-node `LocalNet` (libp2p, PBFT, ledger, contracts, RocksDB with fsync);
3. pre-signs a realistic event mix in a separate process (signing is not charged to the
   nodes): per product, Acme registers it, records its production trace and ships it to
   ShopMart; ShopMart sells it to a customer and activates a warranty whose policy names
   the service-agreement contract (so ticket openings run the contract's eligibility
   hook); for 30% of products the customer opens a repair ticket, FixIt acknowledges,
   works and resolves it, and the customer confirms and rates it. Each stage of a
   product's life is scheduled `stage_gap_s` after the previous one, so the events it
   depends on are committed first;
4. submits in batches over the HTTP API (msgpack) at `--rate` events/s (or as fast as the
   nodes accept with `max`), spread over the nodes; honours 429/503 (backpressure);
5. follows the committed blocks on one node (their event ids) to time each event from
   submission to commit, and samples CPU and RSS of every node process.

Sustained throughput is measured after a warm-up (the first 20% of the run). Results go
to `DIR/cluster.json` and a plot `DIR/cluster.png` (throughput and latency over time).

`--members M` (issue 23) runs the cluster twice at the same offered rate, without and with
M member nodes (registered on the ledger by the demo organisations; the load still goes
to the validators), and compares: the validators' CPU and upload bytes (the transport's
`bytes_sent`, from `/v1/status`) per committed event, the members' CPU per event, and
how far each member's executed height trails the validators' (seconds from the first
validator executing a height to the member executing it: p50, p99; status polled every
`LAG_POLL_S`). With `--rate max` a first validators-only run at full speed finds the
sustained rate S and both compared runs offer 0.8 S (the issue's operating point).
Results: `DIR/cluster-members.json` and `DIR/cluster-members.png`.

`--profile` also samples every node in the middle of the run and prints where its CPU
goes, in microseconds per committed event by component (`node/bench/cpu_profile.py`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import msgpack

from afterchain.node.bench.cluster_load import TICKET_SHARE, measure_ceiling, presign
from afterchain.node.bench.cpu_profile import Sampler, account, format_table, proc_status, stat_cpu_s

__all__ = ["main"]

LAG_POLL_S = 0.1
"""How often every node's executed height is read for the member lag (its resolution)."""



def _proc_sample(pid: int) -> tuple[float, int]:
    """CPU seconds so far and peak RSS (bytes) of a process."""
    try:
        cpu = stat_cpu_s(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, IndexError, ValueError):
        return 0.0, 0
    return cpu, proc_status(pid).get("VmHWM", 0)


# --------------------------------------------------------------------------- the run
def run(args: argparse.Namespace, *, members: int = 0, sample_heights: bool = False) -> dict[str, Any]:
    """One cluster run. `sample_heights`: poll every node's status every `LAG_POLL_S`
    (always with members, for their lag): the validators-only run of a members comparison
    does it too, so both runs put the same polling load on the validators."""
    from afterchain.node.app.vm.contracts import source
    from afterchain.node.client.sdk import Client
    from afterchain.node.tools.localnet import LocalNet

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"measuring this machine's ceiling ({args.ceiling_s:.0f} s on every core) ...", flush=True)
    ceiling = measure_ceiling(args.ceiling_s)
    bound = ceiling["events_per_s"] / args.nodes
    print(f"  per-event verification path: {ceiling['events_per_s']:,.0f} events/s on {ceiling['cores']} cores"
          f" -> bound for {args.nodes} nodes sharing it: {bound:,.0f} events/s", flush=True)

    net_dir = Path(tempfile.mkdtemp(prefix="afterchain-bench-"))
    net = LocalNet(net_dir / "net")
    # debug: every node logs `block_committed` with its time as it executes a block (the member lag)
    net.create(args.nodes, chain_id="afterchain-bench", block_interval_ms=args.block_interval_ms, members=members,
               log_level="debug")
    try:
        net.start_all(timeout_s=120)
        net.wait_healthy(timeout_s=120)
        urls = [n.api_url for n in net.validators()]  # the load goes to the validators (members: --members)
        chain_id = net.manifest()["chain_id"]
        with Client(urls, key=net.member_key("acme")) as acme:
            cid = acme.send(acme.build.contract_deploy(vm_id="wasm", name="bench-service", code=source("service", "wasm"))).id
            pid = acme.send(acme.build.policy_register(
                name="bench warranty", service_org="fixit", coverage_period_ms=10**12, covered_faults=("heating",),
                first_response_ms=10**10, resolution_ms=10**11, penalty_amount=100, return_window_ms=10**9,
                contract_id=cid)).id
            start = {org: int(acme.account(net.member_key(org).public)["next_nonce"]) - 1 for org in ("acme", "shopmart", "fixit")}
        rate = None if args.rate == "max" else float(args.rate)
        per_product = 5 + TICKET_SHARE * 6
        target = rate if rate is not None else max(bound, 1000)
        products = max(50, int(target * args.duration / per_product * 1.1))
        if args.events is not None:
            products = max(50, int(args.events / per_product * 1.05) + 1)
        print(f"pre-signing ~{int(products * per_product):,} events for {products:,} products in a separate process ...", flush=True)
        mix_path = str(net_dir / "mix.msgpack")
        p = mp.get_context("spawn").Process(target=presign, args=(str(net.root), products, start, pid, chain_id, 1, mix_path))
        p.start()
        p.join()
        records = msgpack.unpackb(Path(mix_path).read_bytes())
        print(f"  {len(records):,} events signed", flush=True)
        return _drive(net, urls, records, rate, args, ceiling, bound, out_dir, sample_heights=sample_heights)
    finally:
        net.stop_all()
        shutil.rmtree(net_dir, ignore_errors=True)  # a 1M-event run leaves ~2 GB of node data


def _drive(net: Any, urls: list[str], records: list[Any], rate: float | None, args: argparse.Namespace,
           ceiling: dict[str, float], bound: float, out_dir: Path, *, sample_heights: bool = False) -> dict[str, Any]:
    from afterchain.protocol.events import SignedEvent

    n_products = max(i for _, i, _ in records) + 1
    evs_per_product = len(records) / n_products
    products_per_s = (rate / evs_per_product) if rate is not None else 1.5 * bound / evs_per_product
    decoded = [SignedEvent.decode(raw) for _, _, raw in records]
    ids = [d.id for d in decoded]
    senders = [d.event.sender for d in decoded]
    del decoded
    index_of: dict[bytes, int] = {eid: k for k, eid in enumerate(ids)}
    # a product's life in stages: stage s of product i is released when its stage s-1 has
    # committed (so the mix stays valid: no event is refused by its handler for a missing
    # dependency), at the earliest (i / products_per_s) + s * stage_gap_s. Within a stage
    # products are released in order, so each sender's nonces are submitted in order.
    groups: dict[tuple[int, int], list[int]] = {}
    for k, (s, i, _) in enumerate(records):
        groups.setdefault((i, s), []).append(k)
    stages = sorted({s for s, _, _ in records})
    by_stage = {s: sorted((i, ks) for (i, s_), ks in groups.items() if s_ == s) for s in stages}
    remaining = {g: len(ks) for g, ks in groups.items()}
    submit_t: dict[bytes, float] = {}
    commit_t: dict[bytes, float] = {}
    outcome: dict[bytes, str] = {}
    pids = {n.name: net.pid(n.name) for n in net.nodes()}
    cpu0 = {name: _proc_sample(pid)[0] for name, pid in pids.items() if pid}
    bench_cpu0 = time.process_time()
    stop = threading.Event()
    lock = threading.Lock()
    view_changes0 = _view_changes(_statuses(urls))
    all_urls = {n.name: n.api_url for n in net.nodes()}
    roles = {n.name: n.role for n in net.nodes()}
    sent0, by0 = _upload(all_urls)
    reached: dict[str, dict[int, float]] = {name: {} for name in all_urls}  # node -> height -> first seen executed

    def lag_sampler() -> None:
        """Every node's executed height every LAG_POLL_S: when it first executed each height."""
        last = dict.fromkeys(all_urls, 0)
        with httpx.Client(timeout=2) as c:
            while not stop.is_set():
                for name, u in all_urls.items():
                    try:
                        h = int(c.get(f"{u}/v1/status").json()["executed_height"])
                    except (httpx.HTTPError, ValueError, KeyError):
                        continue
                    now = time.time()
                    for k in range(last[name] + 1, h + 1):
                        reached[name][k] = now
                    last[name] = max(last[name], h)
                time.sleep(LAG_POLL_S)

    lag_th = (threading.Thread(target=lag_sampler, daemon=True)
              if sample_heights or any(r == "member" for r in roles.values()) else None)
    if lag_th is not None:
        lag_th.start()
    rss_curve: list[dict[str, Any]] = []
    block_sizes: list[tuple[float, int]] = []  # (time seen, events) of every block followed

    # follow on the last node: node0 is the first primary, and reading every block (each
    # event decoded for its id, its ledger verdict read) is the benchmark's load, not the cluster's
    follow = urls[-1]

    def follower() -> None:
        client = httpx.Client(timeout=10)
        h = int(client.get(f"{follow}/v1/status").json()["executed_height"])
        last_rss = 0.0
        while not stop.is_set():
            try:
                top = int(client.get(f"{follow}/v1/status").json()["executed_height"])
                while h < top:
                    r = client.get(f"{follow}/v1/blocks/{h + 1}?outcomes=1")
                    r.raise_for_status()  # (a refused read is retried, never skipped)
                    blk = r.json()
                    codes = blk.get("outcomes") or ["?"] * len(blk["event_ids"])
                    h += 1
                    now = time.time()
                    block_sizes.append((now, len(blk["event_ids"])))
                    with lock:
                        for e, code in zip(blk["event_ids"], codes, strict=True):
                            eid = bytes.fromhex(e)
                            if eid in commit_t:
                                continue
                            commit_t[eid] = now
                            outcome[eid] = code
                            k = index_of.get(eid)
                            if k is not None:
                                remaining[(records[k][1], records[k][0])] -= 1
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            if time.time() - last_rss >= 2.0:
                last_rss = time.time()
                rss_curve.append({"t_s": round(last_rss - t_start, 1), "committed": len(commit_t),
                                  "rss_mb": {name: round(proc_status(pid).get("VmRSS", 0) / 2**20, 1) for name, pid in pids.items() if pid}})
            time.sleep(0.05)
        client.close()

    # one submitter thread per node; each sender's events all go to one node (by its key),
    # in nonce order, as a client holding that key would send them
    queues: list[deque[int]] = [deque() for _ in urls]
    pointer = dict.fromkeys(stages, 0)
    t_start = time.time()
    deadline = t_start + args.duration

    def release(now: float) -> int:
        """Move every due stage whose dependencies have committed to its node's queue."""
        moved = 0
        for s in stages:
            lst = by_stage[s]
            while pointer[s] < len(lst):
                i, ks = lst[pointer[s]]
                if now < i / products_per_s + s * args.stage_gap_s:
                    break
                prev = (i, stages[stages.index(s) - 1]) if s != stages[0] else None
                if prev is not None and remaining.get(prev, 0) > 0:
                    break
                for k in ks:
                    queues[senders[k][0] % len(urls)].append(k)
                moved += len(ks)
                pointer[s] += 1
        return moved

    def releaser() -> None:
        while not stop.is_set() and time.time() < deadline:
            with lock:
                release(time.time() - t_start)
            time.sleep(0.01)

    th = threading.Thread(target=follower, daemon=True)
    th.start()
    rel = threading.Thread(target=releaser, daemon=True)
    rel.start()
    rejected: dict[str, int] = {}
    counters = {"backoffs": 0}
    batch_max = 500
    target_events = args.events

    def done() -> bool:
        return time.time() >= deadline or (target_events is not None and len(commit_t) >= target_events)

    def submitter(u: int) -> None:
        q = queues[u]
        c = httpx.Client(timeout=60)
        while not done():
            batch: list[int] = []
            while q and len(batch) < batch_max:
                batch.append(q.popleft())
            if not batch:
                time.sleep(0.01)
                continue
            body = msgpack.packb([records[k][2] for k in batch])
            target = u
            r = None
            while not done():
                try:
                    r = c.post(f"{urls[target % len(urls)]}/v1/events", content=body,
                               headers={"content-type": "application/msgpack"})
                except httpx.HTTPError:
                    target += 1
                    continue
                if r.status_code in (429, 503):
                    with lock:
                        counters["backoffs"] += 1
                    time.sleep(float(r.headers.get("retry-after", "1")) * 0.2)
                    continue
                break
            else:  # the run ended while this batch was refused (backpressure): not submitted
                break
            t = time.time()
            results = r.json().get("results", [])
            with lock:
                for k, res in zip(batch, results, strict=False):
                    if res.get("status") in ("accepted", "duplicate"):
                        submit_t[ids[k]] = t
                    else:
                        rejected[res.get("code", "?")] = rejected.get(res.get("code", "?"), 0) + 1
        c.close()

    profile: dict[str, Any] = {}

    def profiler() -> None:
        """Sample every node in the middle of the run (after the warm-up): `cpu_profile`."""
        start_s = min(0.3 * args.duration, 30.0)
        length_s = max(5.0, min(0.5 * args.duration, 30.0))
        time.sleep(max(0.0, t_start + start_s - time.time()))
        if done():
            return
        sampler = Sampler({name: pid for name, pid in pids.items() if pid}, Path(args.out) / "profile", length_s)
        profile["t0"] = time.time()
        sampler.start()
        sampler.stop()
        profile["t1"] = time.time()
        profile["sampler"] = sampler

    prof = threading.Thread(target=profiler, daemon=True) if args.profile else None
    if prof is not None:
        prof.start()
    threads = [threading.Thread(target=submitter, args=(u,), daemon=True) for u in range(len(urls))]
    for t_ in threads:
        t_.start()
    for t_ in threads:
        t_.join()
    if prof is not None:
        prof.join()
    backoffs = counters["backoffs"]
    t_end_submit = time.time()
    # drain: wait for what was accepted to commit (bounded)
    drain_deadline = time.time() + max(30, min(args.duration, 600) / 2)
    while time.time() < drain_deadline and any(i not in commit_t for i in list(submit_t)):
        time.sleep(0.2)
    if lag_th is not None:  # the members' last blocks: let them arrive before the sampler stops
        time.sleep(3.0)
    stop.set()
    th.join(timeout=5)
    rel.join(timeout=5)
    if lag_th is not None:
        lag_th.join(timeout=10)
    sent1, by1 = _upload(all_urls)
    bench_cpu = time.process_time() - bench_cpu0
    samples = {name: _proc_sample(pid) for name, pid in pids.items() if pid}
    statuses = _statuses(urls)
    view_changes = _view_changes(statuses) - view_changes0
    timer_expiries = _timer_expiries(urls)
    intake = {st["node"]: st["intake"] for st in statuses if "node" in st and "intake" in st}
    vote_sigs = {st["node"]: st["consensus_signatures"] for st in statuses if "node" in st and "consensus_signatures" in st}
    pending = [i for i in submit_t if i not in commit_t]
    if pending:  # what each node says of a few of them, before the nodes stop
        print(f"{len(pending)} accepted events did not commit within the drain; the nodes' view of some:")
        with httpx.Client(timeout=5) as c:
            for i in pending[:5]:
                seen = []
                for u in urls:
                    try:
                        seen.append(c.get(f"{u}/v1/events/{i.hex()}").json().get("status", "?"))
                    except (httpx.HTTPError, ValueError):
                        seen.append("unreachable")
                print(f"  {i.hex()[:16]}: " + ", ".join(seen))
    # The ceiling again, with the nodes stopped: this shared machine's speed drifts by tens
    # of percent within minutes, so the bound is the mean of the ceilings before and after.
    net.stop_all()
    executed_at = {n.name: _executed_at(net.root / n.name / "node.log") for n in net.nodes()}
    after = measure_ceiling(args.ceiling_s)
    ceiling = {**ceiling, "events_per_s_before": ceiling["events_per_s"], "events_per_s_after": after["events_per_s"],
               "events_per_s": (ceiling["events_per_s"] + after["events_per_s"]) / 2}
    bound = ceiling["events_per_s"] / args.nodes

    mine = [i for i in submit_t if i in commit_t]
    lat = sorted(commit_t[i] - submit_t[i] for i in mine)
    ok_times = sorted(commit_t[i] for i in mine if outcome.get(i) == "ok")
    committed_times = sorted(commit_t[i] for i in mine)
    warm = t_start + 0.2 * (t_end_submit - t_start)
    window_end = min(t_end_submit, committed_times[-1] if committed_times else t_end_submit)
    span = max(1e-9, window_end - warm)
    sustained = sum(1 for x in ok_times if warm <= x <= window_end) / span
    sustained_all = sum(1 for x in committed_times if warm <= x <= window_end) / span
    codes: dict[str, int] = {}
    for i in mine:
        codes[outcome.get(i, "?")] = codes.get(outcome.get(i, "?"), 0) + 1
    per_s: dict[int, int] = {}
    for x in ok_times:
        per_s[int(x - t_start)] = per_s.get(int(x - t_start), 0) + 1
    lat_by_s: dict[int, list[float]] = {}
    for i in mine:
        lat_by_s.setdefault(int(commit_t[i] - t_start), []).append(commit_t[i] - submit_t[i])
    elapsed = time.time() - t_start
    n_ok = len(ok_times)
    window_blocks = [n for t, n in block_sizes if warm <= t <= window_end]
    result = {
        "nodes": args.nodes, "duration_s": round(t_end_submit - t_start, 1), "rate": args.rate,
        "submitted": len(submit_t), "committed": len(lat), "committed_ok": n_ok, "ledger_outcomes": codes,
        "rejected_at_submit": rejected, "backoffs": backoffs,
        "sustained_events_per_s": round(sustained, 1),
        "sustained_committed_incl_refused_per_s": round(sustained_all, 1),
        "latency_s": {"p50": _pct(lat, 50), "p99": _pct(lat, 99), "max": lat[-1] if lat else None},
        "ceiling": ceiling, "bound_events_per_s": round(bound, 1),
        "ratio_to_bound": round(sustained / bound, 3) if bound else None,
        "view_changes": view_changes,
        "request_timer_expiries": timer_expiries,
        "blocks_per_s": round(len(window_blocks) / span, 2),
        "events_per_block": round(statistics.mean(window_blocks), 1) if window_blocks else None,
        "block_interval_ms": args.block_interval_ms,
        "bench_cpu_s": round(bench_cpu, 1),
        "per_node": {name: {"cpu_s": round(samples[name][0] - cpu0.get(name, 0), 1),
                            "cpu_share": round((samples[name][0] - cpu0.get(name, 0)) / elapsed, 3),
                            "cpu_ms_per_committed_event": round(1000 * (samples[name][0] - cpu0.get(name, 0))
                                                                / max(1, len(commit_t)), 3),
                            "peak_rss_mb": round(samples[name][1] / 2**20, 1)} for name in samples},
        "roles": roles,
        "bytes_sent": {name: sent1[name] - sent0[name] for name in sent1 if name in sent0},
        # [frames, bytes] written by "receiver role:message" (/v1/status transport.sent_by)
        "sent_by": {name: {k: [v[0] - by0[name].get(k, [0, 0])[0], v[1] - by0[name].get(k, [0, 0])[1]]
                           for k, v in by1[name].items()} for name in by1 if name in by0},
        # from each node's own log line as it executed a height (exact); the polled figure
        # (every node's /v1/status in turn, every LAG_POLL_S) is kept beside it
        "member_lag_s": _member_lag(executed_at, roles, source="node logs", since=t_start),
        "member_lag_polled_s": _member_lag(reached, roles, source=f"status polled every {LAG_POLL_S} s"),
        "intake_counters": intake,
        "consensus_signatures": vote_sigs,
        "rss_curve": rss_curve,
        "timeline": {"committed_per_s": per_s, "latency_p50_per_s": {k: statistics.median(v) for k, v in lat_by_s.items()}},
    }
    if "sampler" in profile:
        with lock:
            in_window = sum(1 for x in commit_t.values() if profile["t0"] <= x <= profile["t1"])
        result["cpu_profile"] = account(profile["sampler"], in_window)
    (out_dir / "cluster.json").write_text(json.dumps(result, indent=2) + "\n")
    _plot(result, out_dir / "cluster.png")
    return result


def _upload(urls: dict[str, str]) -> tuple[dict[str, int], dict[str, dict[str, list[int]]]]:
    """The transport's `bytes_sent` of each node that answers, and its breakdown
    (`transport.sent_by`: `[frames, bytes]` by receiver role and message), from one
    `/v1/status` each."""
    sent: dict[str, int] = {}
    by: dict[str, dict[str, list[int]]] = {}
    for name, u in urls.items():
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            t = httpx.get(f"{u}/v1/status", timeout=5).json()["transport"]
            sent[name] = int(t["bytes_sent"])
            by[name] = dict(t.get("sent_by", {}))
    return sent, by


def _executed_at(log_path: Path) -> dict[int, float]:
    """Height -> when the node executed it (unix seconds), from its `block_committed` log
    lines (JSON, level debug; the first line of a height if it appears twice)."""
    out: dict[int, float] = {}
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return out
    for ln in lines:
        if '"block_committed"' not in ln:
            continue
        try:
            rec = json.loads(ln)
            h = int(rec["height"])
            t = datetime.fromisoformat(rec["timestamp"]).timestamp()
        except (ValueError, KeyError, TypeError):
            continue
        out.setdefault(h, t)
    return out


def _member_lag(reached: dict[str, dict[int, float]], roles: dict[str, str], *, source: str,
                since: float = 0.0) -> dict[str, Any] | None:
    """Seconds from the first validator executing a height to each member executing it
    (p50, p99, max over every height and member; only heights the first validator
    executed at `since` or later: before the load, members were still joining)."""
    vals = [n for n, r in roles.items() if r == "validator"]
    mems = [n for n, r in roles.items() if r == "member"]
    if not mems:
        return None
    first: dict[int, float] = {}
    for v in vals:
        for h, t in reached[v].items():
            first[h] = min(t, first.get(h, t))
    first = {h: t for h, t in first.items() if t >= since}
    each = [(max(0.0, reached[m][h] - first[h]), h, m) for m in mems for h in reached[m] if h in first]
    lags = sorted(x[0] for x in each)
    missing = sum(1 for m in mems for h in first if h not in reached[m])
    by_member = {m: _pct(sorted(x[0] for x in each if x[2] == m), 99) for m in mems}
    # the tail: the worst samples, and for each of their heights how many members were over 0.5 s
    worst = sorted(each, reverse=True)[:12]
    late = {h: sum(1 for m in mems if h in reached[m] and reached[m][h] - first[h] > 0.5) for _, h, _ in worst}
    return {"p50": _pct(lags, 50), "p99": _pct(lags, 99), "max": round(lags[-1], 3) if lags else None,
            "samples": len(lags), "heights_not_reached": missing, "source": source, "p99_by_member": by_member,
            "worst": [{"height": h, "member": m, "lag_s": round(x, 3), "members_over_0.5_s": late[h]} for x, h, m in worst]}


def _statuses(urls: list[str]) -> list[dict[str, Any]]:
    """`GET /v1/status` of each node that answers."""
    out = []
    for u in urls:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            out.append(httpx.get(f"{u}/v1/status", timeout=5).json())
    return out


def _timer_expiries(urls: list[str]) -> dict[str, int]:
    """Request-timer votes against the primary (false alarms under an honest load), by
    reason, summed over the nodes (`afterchain_request_timer_expiries_total`)."""
    out: dict[str, int] = {}
    with httpx.Client(timeout=5) as c:
        for u in urls:
            try:
                text = c.get(f"{u}/metrics").text
            except httpx.HTTPError:
                continue
            for line in text.splitlines():
                if line.startswith("afterchain_request_timer_expiries_total{"):
                    reason = line.split('reason="', 1)[1].split('"', 1)[0]
                    out[reason] = out.get(reason, 0) + int(float(line.rsplit(" ", 1)[1]))
    return out


def _view_changes(statuses: list[dict[str, Any]]) -> int:
    return max((int(st.get("view", 0)) for st in statuses), default=0)


def _pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    return round(xs[min(len(xs) - 1, int(len(xs) * p / 100))], 3)


def _plot(result: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    tl = result["timeline"]
    xs = sorted(tl["committed_per_s"])
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.plot(xs, [tl["committed_per_s"][x] for x in xs], color="#2f6fde", label="committed events/s")
    ax.set_xlabel("seconds since the start of submission")
    ax.set_ylabel("committed events/s")
    ax2 = ax.twinx()
    ls = sorted(tl["latency_p50_per_s"])
    ax2.plot(ls, [tl["latency_p50_per_s"][x] for x in ls], color="#b54708", label="finality p50 (s)")
    ax2.set_ylabel("finality latency p50 (s)")
    ax.set_title(f"{result['nodes']} nodes: {result['sustained_events_per_s']:.0f} events/s sustained, "
                 f"p50 {result['latency_s']['p50']} s, p99 {result['latency_s']['p99']} s")
    fig.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="./scripts/bench cluster", description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--members", type=int, default=0,
                    help="compare runs without and with this many member nodes at the same offered rate (issue 23)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of submission")
    ap.add_argument("--rate", default="max", help="events/s to offer, or 'max'")
    ap.add_argument("--out", default="bench-out", help="directory for cluster.json and cluster.png")
    ap.add_argument("--stage-gap-s", type=float, default=0.0,
                    help="minimum delay between dependent stages of a product's life (a stage is released only"
                         " once the previous one has committed)")
    ap.add_argument("--events", type=int, default=None,
                    help="run until this many events have committed (or --duration, default then 3600 s);"
                         " reports the RSS of every node along the way (`rss_curve`)")
    ap.add_argument("--ceiling-s", type=float, default=5.0)
    ap.add_argument("--block-interval-ms", type=int, default=None,
                    help="the network's block interval (genesis consensus parameter; default: the node's default)")
    ap.add_argument("--profile", action="store_true",
                    help="sample every node with py-spy in the middle of the run and print where its CPU goes, in us"
                         " per committed event by component (DIR/profile/*.raw; `cpu_profile` in cluster.json)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 8 s at 200 events/s")
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args(argv)
    if args.events is not None and "--duration" not in argv:
        args.duration = 3600.0
    if args.quick:
        args.duration, args.rate, args.ceiling_s, args.stage_gap_s = 8.0, "200", 1.0, 2.0
    if args.members:
        from afterchain.node.bench.cluster_members import compare_members, report_members

        return report_members(compare_members(args), args)
    res = run(args)
    lat = res["latency_s"]
    print(f"\nsubmitted {res['submitted']:,}  committed {res['committed']:,} (ok {res['committed_ok']:,})"
          f"  rejected at submit {res['rejected_at_submit']}")
    print(f"sustained throughput: {res['sustained_events_per_s']:,.0f} committed events/s accepted by their handlers "
          f"({res['ratio_to_bound']:.2f} of the bound {res['bound_events_per_s']:,.0f}; ceiling"
          f" {res['ceiling']['events_per_s_before']:,.0f} events/s before the run, {res['ceiling']['events_per_s_after']:,.0f}"
          f" after, bound = mean / {res['nodes']} nodes)")
    print(f"  (committed incl. events their handler refused: {res['sustained_committed_incl_refused_per_s']:,.0f}/s)")
    print(f"finality (submit -> commit): p50 {lat['p50']} s, p99 {lat['p99']} s, max {lat['max']} s")
    print(f"view changes: {res['view_changes']}; request timer expiries (false alarms): {res['request_timer_expiries']}")
    print(f"ledger verdicts on the committed events: {res['ledger_outcomes']}")
    print(f"blocks: {res['blocks_per_s']}/s, {res['events_per_block']} events per block on average"
          f" (block interval {res['block_interval_ms'] or 'default'} ms)")
    print(f"the bench process itself used {res['bench_cpu_s']} CPU s")
    for name, v in res["per_node"].items():
        print(f"  {name}: CPU {v['cpu_s']} s ({v['cpu_share'] * 100:.0f}% of one core over the run and its drain, "
              f"{v['cpu_ms_per_committed_event']} ms per committed event), peak RSS {v['peak_rss_mb']} MB")
    sigs = {name: {k[len("verified_"):]: v for k, v in c.items() if k.startswith("verified_")}
            for name, c in res.get("intake_counters", {}).items()}
    if sigs:
        print("event signatures checked per committed event, by path: " + "; ".join(
            f"{name} {sum(v.values()) / max(1, res['committed']):.2f} ({', '.join(f'{k} {n:,}' for k, n in v.items())})"
            for name, v in sigs.items()))
    if res.get("consensus_signatures"):
        print("vote signatures checked (repeats answered from memory) since start: " + "; ".join(
            f"{name} {v['checked']:,} ({v['repeats_skipped']:,})" for name, v in res["consensus_signatures"].items()))
    if "cpu_profile" in res:
        print(format_table(res["cpu_profile"]))
    elif args.profile:
        print("no profile: the run ended before its profiling window")
    print(f"results: {Path(args.out) / 'cluster.json'}, plot: {Path(args.out) / 'cluster.png'}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
