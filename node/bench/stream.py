"""Benchmark of ``GET /v1/stream``: events delivered to 1, 10 and 100 subscribers, and what
they cost the node.

    ./scripts/bench stream                 # 200 events/s offered, 10 s per phase (~1 min)
    ./scripts/bench stream --quick         # smoke run (used by the tests)
    ./scripts/bench stream --rate 500 --seconds 20 --subscribers 0,1,10,100 --json out.json

The node: one validator (a one-validator chain: it commits alone) with its HTTP API
(hypercorn, as `afterchain node` serves it) in this process, on 127.0.0.1. Events (product
registrations of one member, signed before the run) are submitted to it at a steady offered
rate by `Node.submit` (the intake path without HTTP, the same in every phase).

The subscribers: a separate process (this module with ``--subscribe``) holding N SSE
connections over real HTTP (httpx; no filter, so every event goes to every subscriber),
counting the frames it receives; it is not part of the node's figures.

Per phase (N = 0, then each subscriber count): the node process's CPU time (user + system,
all threads, `resource.getrusage`) from the moment the N streams are open until every
subscriber has received every event of the phase; events/s delivered per subscriber (its
events over the time from the first submission to its last event) and in total. The cost of
the subscribers is the CPU over the N = 0 phase: per subscriber (in % of one core) and per
delivered event (µs).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

__all__ = ["main", "run"]

_CHAIN = "bench-stream"
_T0 = 1_700_000_000_000


def _key(name: str) -> Any:
    from afterchain.protocol.crypto import KeyPair

    return KeyPair.from_seed(name.encode().ljust(32, b"\0")[:32])


def _events(n: int) -> list[bytes]:
    from afterchain.protocol import bodies as B
    from afterchain.protocol.events import Event, sign_event

    key = _key("acme")
    out = []
    for i in range(1, n + 1):
        body = B.ProductRegister(gtin="00012345600012", serial=f"SN{i:07d}", model="M1", batch="B1",
                                 production_time_ms=_T0)
        out.append(sign_event(key, Event(chain_id=_CHAIN, type=body.EVENT_TYPE, sender=key.public, nonce=i,
                                         time_ms=_T0, body=body)).encode())
    return out


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)  # this process, every thread; not the subscribers' process
    return r.ru_utime + r.ru_stime


# ---------------------------------------------------------------------------- subscribers
async def _subscribe(url: str, n: int, expect: int, timeout_s: float) -> dict[str, Any]:
    """N streams from the next block on; each reads until it has `expect` events. Prints
    ``ready`` once every stream is open (the node has subscribed them), then waits for
    ``go`` on stdin (the first submission) and reports each stream's count and time."""
    import httpx

    counts = [0] * n
    last = [0.0] * n
    opened = 0
    all_open = trio.Event()
    go_at: list[float] = []

    async def one(c: httpx.AsyncClient, i: int) -> None:
        nonlocal opened
        async with c.stream("GET", url + "/v1/stream", headers={"accept": "text/event-stream"}) as r:
            if r.status_code != 200:
                raise RuntimeError(f"stream {i}: HTTP {r.status_code} {(await r.aread())[:200]!r}")
            opened += 1
            if opened == n:
                all_open.set()
            tail = b""
            async for chunk in r.aiter_raw():
                frames = (tail + chunk).split(b"\n\n")
                tail = frames.pop()
                got = sum(1 for f in frames if f.startswith(b"id: "))
                if got:
                    counts[i] += got
                    last[i] = time.perf_counter()
                    if counts[i] >= expect:
                        return

    async def start_signal() -> None:
        await all_open.wait()
        print("ready", flush=True)
        line = await trio.to_thread.run_sync(sys.stdin.readline)
        if line.strip() == "go":
            go_at.append(time.perf_counter())

    limits = httpx.Limits(max_connections=n + 1, max_keepalive_connections=0)
    timeout = httpx.Timeout(30.0, read=timeout_s)
    with trio.fail_after(timeout_s):
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as c, trio.open_nursery() as nursery:
            nursery.start_soon(start_signal)
            for i in range(n):
                nursery.start_soon(one, c, i)
    t0 = go_at[0] if go_at else min(last)
    return {"counts": counts, "seconds": [max(t - t0, 1e-9) for t in last]}


# ---------------------------------------------------------------------------- the node
async def _phase(node: Any, url: str, evs: list[bytes], n_subs: int, rate: float, timeout_s: float) -> dict[str, Any]:
    proc = None
    if n_subs:
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "afterchain.node.bench.stream", "--subscribe", url, "--n", str(n_subs),
             "--expect", str(len(evs)), "--timeout", str(timeout_s)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdin is not None
        out = b""
        with trio.fail_after(60):
            while b"\n" not in out:
                chunk = await proc.stdout.receive_some()
                if not chunk:
                    raise RuntimeError("the subscribers' process ended before its streams were open")
                out += chunk
        if out.split(b"\n", 1)[0] != b"ready":
            raise RuntimeError(f"subscribers: {out!r}")
        await proc.stdin.send_all(b"go\n")
    cpu0, t0 = _cpu_s(), time.perf_counter()
    step = max(1, round(rate / 20))  # a batch every 50 ms
    start = trio.current_time()
    for k, i in enumerate(range(0, len(evs), step)):
        await trio.sleep_until(start + k * step / rate)  # on schedule: no drift
        await node.submit(evs[i:i + step])
    submitted_s = time.perf_counter() - t0
    from afterchain.protocol.events import SignedEvent

    ids = [SignedEvent.decode(e).id for e in (evs[0], evs[-1])]
    with trio.fail_after(timeout_s):
        while any((node.event_status(i) or {}).get("status") != "committed" for i in ids):
            await trio.sleep(0.01)
    committed_s = time.perf_counter() - t0
    subs: dict[str, Any] = {"counts": [], "seconds": []}
    if proc is not None:
        assert proc.stdout is not None
        rest = out.split(b"\n", 1)[1]
        with trio.fail_after(timeout_s):
            while True:
                chunk = await proc.stdout.receive_some()
                if not chunk:
                    break
                rest += chunk
            code = await proc.wait()
        if code != 0:
            raise RuntimeError(f"the subscribers' process exited {code}")
        subs = json.loads(rest)
    cpu, wall = _cpu_s() - cpu0, time.perf_counter() - t0
    counts, secs = subs["counts"], subs["seconds"]
    per_sub = [c / s for c, s in zip(counts, secs, strict=True)]
    return {
        "subscribers": n_subs, "events": len(evs), "offered_per_s": rate, "submitted_s": round(submitted_s, 3),
        "committed_per_s": round(len(evs) / committed_s, 1), "wall_s": round(wall, 3),
        "node_cpu_s": round(cpu, 3), "node_cpu_pct": round(100 * cpu / wall, 1),
        "delivered": sum(counts), "all_delivered": all(c == len(evs) for c in counts),
        "per_subscriber_per_s_min": round(min(per_sub), 1) if per_sub else None,
        "per_subscriber_per_s_mean": round(sum(per_sub) / len(per_sub), 1) if per_sub else None,
        "total_per_s": round(sum(per_sub), 1) if per_sub else None,
        "stats": node.feed.stats(),
    }


async def _run_node(data: Path, rate: float, seconds: float, counts: list[int], timeout_s: float) -> list[dict[str, Any]]:
    from afterchain.node.runtime.runner import Node, NodeOptions
    from afterchain.node.server import serve_api
    from afterchain.node.tools.genesis import MemberSpec, build_genesis
    from afterchain.node.transport.memory import MemoryNetwork

    val = _key("val0")
    g = build_genesis(chain_id=_CHAIN, genesis_time_ms=_T0, validators=[val.public],
                      members=[MemberSpec("acme", "Acme", ("manufacturer",), (_key("acme").public,), 1000)])
    per_phase = max(1, int(rate * seconds))
    evs = _events(per_phase * (len(counts) + 1))  # a warm-up phase first
    top = max(counts) + 8
    opts = NodeOptions(name="bench", stream_max_subscribers=top, stream_max_per_client=top)
    node = Node(key=val, genesis=g, data_dir=data, transport=MemoryNetwork().add(val.public), options=opts)
    results = []
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        binds = await nursery.start(serve_api, node, "127.0.0.1", 0)
        url = binds[0] if binds[0].startswith("http") else "http://" + binds[0]
        await _phase(node, url, evs[:per_phase], 0, rate, timeout_s)  # warm-up (not reported)
        for k, n in enumerate(counts, start=1):
            r = await _phase(node, url, evs[k * per_phase:(k + 1) * per_phase], n, rate, timeout_s)
            results.append(r)
            print(_row(r, results[0] if counts[0] == 0 else None), flush=True)
        nursery.cancel_scope.cancel()
    return results


def _extra(r: dict[str, Any], base: dict[str, Any] | None) -> tuple[float | None, float | None]:
    """(% of a core per subscriber, µs per delivered event) over the phase without subscribers."""
    if base is None or not r["subscribers"] or not r["delivered"]:
        return None, None
    extra = r["node_cpu_s"] - base["node_cpu_s"] * r["wall_s"] / base["wall_s"]  # the same span without them
    return 100 * extra / r["wall_s"] / r["subscribers"], 1e6 * extra / r["delivered"]


def _row(r: dict[str, Any], base: dict[str, Any] | None) -> str:
    pct, us = _extra(r, base)
    return (f"{r['subscribers']:>5} subs  {r['committed_per_s']:>7.1f} ev/s committed  "
            f"{_f(r['per_subscriber_per_s_mean']):>8} ev/s per sub (min {_f(r['per_subscriber_per_s_min'])})  "
            f"{_f(r['total_per_s']):>9} ev/s total  node CPU {r['node_cpu_pct']:>5.1f}%  "
            f"+{_f(pct, 2)}% core/sub  {_f(us)} µs/delivered event  all delivered: {r['all_delivered']}")


def _f(v: float | None, digits: int = 1) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def run(*, rate: float, seconds: float, counts: list[int], timeout_s: float) -> dict[str, Any]:
    from afterchain.node.server import _tune_gc

    _tune_gc()  # as a running node
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        phases = trio.run(_run_node, Path(tmp), rate, seconds, counts, timeout_s)
    base = phases[0] if counts and counts[0] == 0 else None
    for r in phases:
        pct, us = _extra(r, base)
        r["cpu_pct_per_subscriber"] = None if pct is None else round(pct, 3)
        r["cpu_us_per_delivered_event"] = None if us is None else round(us, 2)
    return {"rate": rate, "seconds": seconds, "phases": phases}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="bench stream", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    p.add_argument("--rate", type=float, default=200.0, help="offered events/s (default 200)")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds of events per phase (default 10)")
    p.add_argument("--subscribers", default="0,1,10,100", help="subscriber counts, one phase each (0 first: "
                                                              "the baseline)")
    p.add_argument("--json", type=Path, help="write the figures here")
    p.add_argument("--subscribe", help=argparse.SUPPRESS)  # the subscribers' process: the node's URL
    p.add_argument("--n", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--expect", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--timeout", type=float, default=120.0, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.subscribe:
        print(json.dumps(trio.run(_subscribe, a.subscribe, a.n, a.expect, a.timeout)), flush=True)
        return 0
    from afterchain.node.common.log import configure

    configure(json=False, level="warning")
    rate, seconds, counts = a.rate, a.seconds, [int(x) for x in a.subscribers.split(",")]
    if a.quick:
        rate, seconds, counts = 50.0, 1.0, [0, 1, 3]
    print(f"stream bench: {rate:g} events/s offered, {seconds:g} s per phase, subscribers {counts} "
          f"(node: 1 validator + HTTP in this process; subscribers in another process)", flush=True)
    figures = run(rate=rate, seconds=seconds, counts=counts, timeout_s=max(120.0, 12 * seconds))
    if a.json:
        a.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
