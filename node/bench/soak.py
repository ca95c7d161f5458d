"""Soak: a long run on real processes at a steady rate, with crash drills and member nodes
leaving and joining; reports RSS and disk per node over time, and what was lost.

    ./scripts/bench soak                          # 1 hour, 550 events/s, a drill every 5 min
    ./scripts/bench soak --duration 600 --drill-every 60 --rate 200 --json soak.json --plot soak.png

A 4-validator network with two member nodes (``member0``, ``member1``, registered by their
organisations) runs on 127.0.0.1. Paced writers (one per organisation, batches through the
SDK, failing over between nodes) offer ``--rate`` events/s; every event the API acknowledges
is remembered. Every ``--drill-every`` seconds one node is SIGKILLed and restarted, in turn
``node0``..``node3``, ``member0``; half-way between two drills ``member1`` leaves (its
organisation withdraws its key with ``node.remove``, the node stops) or, the next time, joins
again (``node.register``, the node restarts and catches up). Every ``--sample-every`` seconds
each node's resident memory (``/proc/PID/status`` VmRSS), its data directory's size and its
height are recorded.

At the end the load stops, ``member1`` is back, and the nemesis checker runs over every node:
every acknowledged event committed or rejected with a reason on every node (lost), no event
in two blocks (duplicated), the same blocks and the same state root everywhere. The summary
gives, per node, RSS at the first and last sample after warm-up and its peak, and the data
directory's growth against the ledger's own growth (bytes per committed event).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from afterchain.node.bench.cpu_profile import proc_status
from afterchain.node.client.sdk import Client, ClientError, content_hash
from afterchain.node.tools.demo import gtin14
from afterchain.node.tools.localnet import LocalNet
from afterchain.node.tools.nemesis import Load, check

__all__ = ["PacedLoad", "main", "run"]

GTIN = gtin14("0950600088888")
WRITERS = ("acme", "shopmart", "quickship")
"""The organisations that write (each signs with its own key and nonce sequence)."""
BATCH = 100
"""Events per request (at most): two per product, its registration and a trace record."""
MEMBER_DRILLED = "member1"
MANUFACTURER = "acme"
TRACE_STEPS = {"shopmart": ("receiving", "inspecting"), "quickship": ("shipping", "receiving")}
"""The trace records the retailer and the carrier add to each product (two each: their
batches are as large as the manufacturer's, which carry two events per product)."""
TRACE_AFTER_S = 3.0
"""A product is traced this long after its registration was acknowledged (committed by
then, unless a drill holds the chain: a trace of a product not yet registered is committed
as rejected, which the checker counts as final, not lost)."""


@dataclass
class PacedLoad:
    """Offers `rate` events/s in batches, split evenly between the writers; remembers every
    id the API acknowledged (accepted or duplicate)."""

    net: LocalNet
    rate: float
    acked: set[bytes] = field(default_factory=set)
    sent: int = 0
    errors: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    registered: list[tuple[float, str]] = field(default_factory=list)
    """(monotonic time, serial) of every product the manufacturer's writer registered."""
    traced: dict[str, int] = field(default_factory=dict)
    """Per tracing writer, how many of `registered` it has traced."""

    def start(self) -> None:
        per_writer = self.rate / len(WRITERS)
        for i, org in enumerate(WRITERS):
            t = threading.Thread(target=self._run, args=(org, i, per_writer), daemon=True, name=f"load-{org}")
            t.start()
            self.threads.append(t)

    def _urls(self, i: int) -> list[str]:
        nodes = self.net.nodes()
        urls = [n.api_url for n in nodes if n.role == "validator"]
        return urls[i % len(urls):] + urls[:i % len(urls)]

    def _run(self, org: str, i: int, rate: float) -> None:
        interval = BATCH / rate
        n = 0
        next_at = time.monotonic()
        with Client(self._urls(i), key=self.net.member_key(org), request_timeout_s=10, max_attempts=3) as c:
            while not self.stop.is_set():
                evs = self._batch(c, org, n)
                if not evs:  # a tracer waits for the manufacturer's first products
                    self.stop.wait(0.2)
                    continue
                n += 1
                try:
                    outs = c.submit(evs)
                    ok = [e.id for e, o in zip(evs, outs, strict=True) if o.status in ("accepted", "duplicate")]
                    with self.lock:
                        self.acked.update(ok)
                        self.sent += len(evs)
                        if org == MANUFACTURER:  # the products the tracers may now trace
                            self.registered.extend((time.monotonic(), e.event.body.serial)
                                                   for e, o in zip(evs[::2], outs[::2], strict=True)
                                                   if o.status in ("accepted", "duplicate"))
                    if len(ok) < len(evs):
                        c.resync_nonce()
                except ClientError:
                    with self.lock:
                        self.errors += 1
                    self.stop.wait(0.5)
                    with contextlib.suppress(ClientError):
                        c.resync_nonce()
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    self.stop.wait(delay)
                elif delay < -5 * interval:
                    next_at = time.monotonic()  # behind (a drill): do not burst to catch up

    def _batch(self, c: Client, org: str, n: int) -> list[Any]:
        """The `n`th batch of writer `org`: the manufacturer registers products (and their
        commissioning record); the retailer and the carrier add trace records to products it
        registered at least `TRACE_AFTER_S` earlier (what their roles allow: a product
        registration from them is refused at intake)."""
        evs: list[Any] = []
        if org == MANUFACTURER:
            for k in range(BATCH // 2):
                serial = f"S{os.getpid() % 100000}-{n}-{k}"  # <= 20 characters (GS1 serial)
                evs.append(c.build.product_register(gtin=GTIN, serial=serial, model="SOAK", batch=org,
                                                    production_time_ms=1))
                evs.append(c.build.trace_record(gtin=GTIN, serial=serial, biz_step="commissioning",
                                                disposition="active", location_hash=content_hash(org)))
            return evs
        steps = TRACE_STEPS[org]
        ripe = time.monotonic() - TRACE_AFTER_S
        with self.lock:
            start = self.traced.get(org, 0)
            end = start
            while end < len(self.registered) and end - start < BATCH // len(steps) and self.registered[end][0] <= ripe:
                end += 1
            if end - start < BATCH // len(steps):
                return []  # not enough ripe products yet: keep batches full
            self.traced[org] = end
            serials = [sn for _t, sn in self.registered[start:end]]
        for serial in serials:
            for step in steps:
                evs.append(c.build.trace_record(gtin=GTIN, serial=serial, biz_step=step, disposition="active",
                                                location_hash=content_hash(org)))
        return evs

    def halt(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)


def _dir_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, f)).st_size
    return total


def _sample(net: LocalNet, t: float) -> dict[str, Any]:
    row: dict[str, Any] = {"t": round(t, 1), "nodes": {}}
    for n in net.nodes():
        st = net.status(n.name, timeout_s=3)
        proc = proc_status(net.pid(n.name))
        row["nodes"][n.name] = {
            "rss": proc.get("VmRSS"),
            # what an RSS step is made of, if one shows: heap or mapped files, threads, queues
            "rss_anon": proc.get("RssAnon"), "rss_file": proc.get("RssFile"), "threads": proc.get("Threads"),
            "disk": _dir_bytes(net.root / n.name / "data"),
            "height": int(st["height"]) if st else None,
            "view": int(st["view"]) if st else None,
            "mempool": int(st["mempool"]["events"]) if st else None,
            "intake_pending": st["intake"].get("pending") if st else None,
            "gossip_backlog": st["intake"].get("gossip_backlog") if st else None,
        }
    return row


def _member_leave(net: LocalNet, name: str) -> None:
    m = net.node(name)
    assert m.org is not None
    with Client([v.api_url for v in net.validators()], key=net.member_key(m.org)) as c:
        out = c.send(c.build.node_remove(keys=[m.key]), timeout_s=60)
        if not out.committed:
            raise RuntimeError(f"{m.org} could not withdraw {name}'s key: {out.status} {out.code} {out.message}")
    net.stop(name)


def _member_join(net: LocalNet, name: str) -> None:
    net.register_members(timeout_s=60)
    net.start(name)
    net.wait_healthy([name], timeout_s=120)


def run(workdir: Path, *, duration_s: float, rate: float, drill_every_s: float, sample_every_s: float,
        warmup_s: float = 60.0, log: Any = print) -> dict[str, Any]:
    net = LocalNet(workdir / "net")
    net.create(4, chain_id="soak", members=2)
    report: dict[str, Any] = {"scenario": "soak", "faults": [], "resume_s": [], "problems": [], "samples": [],
                              "duration_s": duration_s, "rate": rate, "drill_every_s": drill_every_s}
    load = PacedLoad(net, rate)
    try:
        net.start_all(timeout_s=120)
        net.wait_healthy(timeout_s=120)
        load.start()
        t0 = time.monotonic()
        drill_targets = [n.name for n in net.validators()] + ["member0"]
        next_drill, next_member, next_sample = drill_every_s, drill_every_s / 2, 0.0
        drills = member_moves = 0
        member_in = True
        while (now := time.monotonic() - t0) < duration_s:
            if now >= next_sample:
                report["samples"].append(_sample(net, now))
                s = report["samples"][-1]["nodes"]
                log(f"t={now:6.0f} s  height {max((v['height'] or 0) for v in s.values())}  acked {len(load.acked)}  "
                    f"rss MB " + " ".join(f"{k}:{(v['rss'] or 0) / 1e6:.0f}" for k, v in s.items()))
                next_sample += sample_every_s
            if now >= next_drill:
                target = drill_targets[drills % len(drill_targets)]
                drills += 1
                net.kill(target)
                report["faults"].append({"t": round(now, 1), "fault": f"SIGKILL {target}"})
                time.sleep(2.0)
                net.start(target)
                try:
                    net.wait_healthy([target], timeout_s=120)
                except (TimeoutError, RuntimeError) as exc:
                    report["problems"].append(f"{target} not healthy after restart: {exc}")
                report["faults"][-1]["healthy_after_s"] = round(time.monotonic() - t0 - now, 1)
                next_drill += drill_every_s
            elif now >= next_member:
                try:
                    if member_in:
                        _member_leave(net, MEMBER_DRILLED)
                    else:
                        _member_join(net, MEMBER_DRILLED)
                    report["faults"].append({"t": round(now, 1),
                                             "fault": f"{MEMBER_DRILLED} {'leaves' if member_in else 'joins'}"})
                    member_in = not member_in
                    member_moves += 1
                except (RuntimeError, TimeoutError, ClientError) as exc:
                    report["problems"].append(f"{MEMBER_DRILLED} could not {'leave' if member_in else 'join'}: {exc}")
                next_member += drill_every_s
            time.sleep(0.5)
        if not member_in:
            _member_join(net, MEMBER_DRILLED)
            report["faults"].append({"t": round(time.monotonic() - t0, 1), "fault": f"{MEMBER_DRILLED} joins"})
        load.halt()
        report["sent"], report["load_errors"] = load.sent, load.errors
        report["samples"].append(_sample(net, time.monotonic() - t0))
        # a member that just joined must have caught up before the checker compares it
        top = max((int(st["executed_height"]) for v in net.validators() if (st := net.status(v.name))), default=0)
        net.wait_executed([n.name for n in net.nodes()], top, timeout_s=180)
        rest = load.acked
        try:
            # the checker asks every node for every acknowledged event: too slow for hours of
            # events; those in the first node's blocks are committed on every node the checker
            # finds with the same blocks, so it is asked only about the others
            committed = _committed_ids(net)
            rest = {i for i in load.acked if i not in committed}
            report["acknowledged_in_blocks"] = len(load.acked) - len(rest)
            check(net, cast(Load, _Acked(rest)), report)  # the checker reads only .acked
            report["ok"] = True
        except AssertionError as exc:
            report["ok"] = False
            report["error"] = str(exc)
            report["not_final"] = _not_final(net, rest)
        report["acknowledged"] = len(load.acked)
    finally:
        load.halt()
        net.stop_all()
    report["summary"] = summarize(report, warmup_s=min(warmup_s, duration_s / 4))
    return report


@dataclass
class _Acked:
    """What the nemesis checker reads of a load."""

    acked: set[bytes]


def _committed_ids(net: LocalNet) -> set[bytes]:
    """Event ids in the blocks of the first node, up to the lowest height any node has."""
    import httpx

    nodes = net.nodes()
    with httpx.Client(timeout=10) as http:
        top = min(int(http.get(f"{n.api_url}/v1/status").json()["height"]) for n in nodes)
        out: set[bytes] = set()
        for h in range(1, top + 1):
            out.update(bytes.fromhex(e) for e in http.get(f"{nodes[0].api_url}/v1/blocks/{h}").json()["event_ids"])
    return out


def _not_final(net: LocalNet, acked: set[bytes]) -> dict[str, dict[str, int]]:
    """Per node, how many acknowledged events it does not report committed or rejected, by
    what it answers (a status, or the HTTP code): what an operator would look at first."""
    import httpx

    out: dict[str, dict[str, int]] = {}
    with httpx.Client(timeout=10) as http:
        for n in net.nodes():
            counts: dict[str, int] = {}
            for i in acked:
                r = http.get(f"{n.api_url}/v1/events/{i.hex()}")
                what = r.json().get("status", "?") if r.status_code == 200 else f"http {r.status_code}"
                if what not in ("committed", "rejected"):
                    counts[what] = counts.get(what, 0) + 1
            out[n.name] = counts
    return out


def summarize(report: dict[str, Any], *, warmup_s: float) -> dict[str, Any]:
    samples = [s for s in report["samples"] if s["t"] >= warmup_s] or report["samples"]
    out: dict[str, Any] = {}
    names = sorted({k for s in samples for k in s["nodes"]})
    for name in names:
        rss = [(s["t"], s["nodes"][name]["rss"]) for s in samples if s["nodes"].get(name, {}).get("rss")]
        disk = [(s["t"], s["nodes"][name]["disk"], s["nodes"][name]["height"]) for s in samples
                if s["nodes"].get(name, {}).get("height") is not None]
        row: dict[str, Any] = {}
        if rss:
            row |= {"rss_first_mb": round(rss[0][1] / 1e6, 1), "rss_last_mb": round(rss[-1][1] / 1e6, 1),
                    "rss_peak_mb": round(max(r for _, r in rss) / 1e6, 1)}
        if len(disk) >= 2:
            row |= {"disk_first_mb": round(disk[0][1] / 1e6, 1), "disk_last_mb": round(disk[-1][1] / 1e6, 1),
                    "blocks": disk[-1][2] - disk[0][2]}
        out[name] = row
    acked = report.get("acknowledged", 0)
    dur = report["samples"][-1]["t"] if report["samples"] else 0
    out["_run"] = {"acknowledged": acked, "lost": report.get("lost"), "duplicated": report.get("duplicated"),
                   "offered_rate": report["rate"], "acknowledged_per_s": round(acked / dur, 1) if dur else None,
                   "drills": sum(1 for f in report["faults"] if f["fault"].startswith("SIGKILL")),
                   "member_moves": sum(1 for f in report["faults"] if "member" in f["fault"] and "SIGKILL" not in f["fault"])}
    return out


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = report["samples"]
    names = sorted({k for s in samples for k in s["nodes"]})
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for name in names:
        pts = [(s["t"] / 60, s["nodes"][name]["rss"] / 1e6) for s in samples if s["nodes"].get(name, {}).get("rss")]
        ax1.plot([p[0] for p in pts], [p[1] for p in pts], label=name, lw=1)
        pts = [(s["t"] / 60, s["nodes"][name]["disk"] / 1e6) for s in samples if name in s["nodes"]]
        ax2.plot([p[0] for p in pts], [p[1] for p in pts], label=name, lw=1)
    for f in report["faults"]:
        for ax in (ax1, ax2):
            ax.axvline(f["t"] / 60, color="grey", lw=0.5, ls=":" if "SIGKILL" in f["fault"] else "--")
    ax1.set_ylabel("RSS (MB)")
    ax2.set_ylabel("data directory (MB)")
    ax2.set_xlabel("minutes (dotted: SIGKILL and restart; dashed: member1 leaves / joins)")
    ax1.legend(ncol=6, fontsize=8)
    ax1.set_title(f"soak: {report['rate']:.0f} events/s offered, {report['summary']['_run']['acknowledged']} acknowledged, "
                  f"lost {report.get('lost')}, duplicated {report.get('duplicated')}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="./scripts/bench soak", description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=3600.0, help="seconds of load (default 3600)")
    ap.add_argument("--rate", type=float, default=550.0,
                    help="events/s offered (default 550: half the sustained rate measured on this machine)")
    ap.add_argument("--drill-every", type=float, default=300.0, help="seconds between crash drills (default 300)")
    ap.add_argument("--sample-every", type=float, default=15.0, help="seconds between samples (default 15)")
    ap.add_argument("--dir", default=None, help="work directory (default: a temporary one, deleted afterwards)")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: 45 s at 100 events/s, a drill every 20 s, a sample every 5 s")
    ap.add_argument("--json", dest="json_path", default=None, help="write the whole report (samples included)")
    ap.add_argument("--plot", default=None, help="write RSS and disk over time as a PNG")
    args = ap.parse_args(argv)
    if args.quick:
        args.duration, args.rate, args.drill_every, args.sample_every = 45.0, 100.0, 20.0, 5.0
    for name in ("duration", "rate", "drill_every", "sample_every"):
        if getattr(args, name) <= 0:
            ap.error(f"--{name.replace('_', '-')} must be positive")
    tmp = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="afterchain-soak-"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        report = run(tmp, duration_s=args.duration, rate=args.rate, drill_every_s=args.drill_every,
                     sample_every_s=args.sample_every, log=lambda s: print(s, flush=True))
    finally:
        if not args.dir:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(report["summary"], indent=2))
    print("ok" if report["ok"] else f"FAILED: {report.get('error')}; problems: {report['problems']}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=1) + "\n")
    if args.plot:
        plot(report, Path(args.plot))
    return 0 if report["ok"] and not report["problems"] else 1


if __name__ == "__main__":
    sys.exit(main())
