"""Benchmark of the libp2p transport: round trips/s, messages/s and MB/s between 2 hosts.

    ./scripts/bench transport              # ~2 s per measurement
    ./scripts/bench transport --quick      # a smoke run
    ./scripts/bench transport --json out.json
    python -m afterchain.node.bench.transport --seconds 5

Two `P2PTransport` hosts (Noise, yamux, one persistent stream per direction) run in this
one process on 127.0.0.1, so both ends share one core: the figures are a floor for two
processes. Wall-clock rates depend on how busy the (shared) machine is; the "per CPU-s"
rates divide by this process's CPU time instead, which is steadier under load. Measured:
- `rtt_seq`: sequential `request` round trips (100 B each way), and their p50/p99 latency;
- `rtt_conc`: round trips with 32 requests in flight;
- `send_small`: one-way `send` of 300 B messages (the writer coalesces queued frames);
- `broadcast_batch`: `broadcast` of 150 KB batches (the node's event-gossip shape);
- `send_1mib`: one-way 1 MiB frames (raw stream throughput).
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import statistics
import time

import trio

from afterchain.node.common.log import configure
from afterchain.node.transport.base import TransportLimits
from afterchain.node.transport.p2p import P2PTransport
from afterchain.protocol.crypto import KeyPair

__all__ = ["main", "run"]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


async def _one_way(a: P2PTransport, b: P2PTransport, payload: bytes, seconds: float, *, topic: str | None) -> dict[str, float]:
    """Send `payload` from a to b for `seconds`; count what b received."""
    recv = b.subscribe(topic) if topic else b.inbox()
    received = 0
    sent = 0
    done = trio.Event()

    async def consume() -> None:
        nonlocal received
        async for _sender, data in recv:
            received += len(data)
            if done.is_set() and received >= sent * len(payload):
                return

    start, cpu0 = trio.current_time(), time.process_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        while trio.current_time() - start < seconds:
            if topic:
                await a.broadcast(topic, payload)
            else:
                await a.send(b.me, payload)
            sent += 1
        done.set()
        with trio.move_on_after(30):
            while received < sent * len(payload):
                await trio.sleep(0.005)
        elapsed, cpu = trio.current_time() - start, time.process_time() - cpu0
        nursery.cancel_scope.cancel()
    lost = sent - received // len(payload)
    return {"messages": float(sent), "messages_per_s": sent / elapsed, "mb_per_s": received / elapsed / 1e6, "lost": float(lost),
            "messages_per_cpu_s": sent / cpu, "mb_per_cpu_s": received / cpu / 1e6}


async def _round_trips(a: P2PTransport, b: P2PTransport, seconds: float, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    payload = b"q" * 100
    start, cpu0 = trio.current_time(), time.process_time()

    async def worker() -> None:
        while trio.current_time() - start < seconds:
            t0 = trio.current_time()
            await a.request(b.me, payload, timeout_s=10)
            latencies.append(trio.current_time() - t0)

    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
    elapsed, cpu = trio.current_time() - start, time.process_time() - cpu0
    latencies.sort()
    return {
        "round_trips": float(len(latencies)),
        "round_trips_per_s": len(latencies) / elapsed,
        "round_trips_per_cpu_s": len(latencies) / cpu,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1 if len(latencies) > 1 else 0] * 1000,
    }


async def _run(seconds: float) -> dict[str, dict[str, float]]:
    seeds = [bytes([0xB0 + i]) * 32 for i in range(2)]
    keys = [KeyPair.from_seed(s).public for s in seeds]
    ports = _free_ports(2)
    peers = {k: f"/ip4/127.0.0.1/tcp/{p}" for k, p in zip(keys, ports, strict=True)}
    limits = TransportLimits(max_frame_bytes=2 * 1024 * 1024)
    a, b = (P2PTransport(seed=s, listen_addr=peers[k], peers=peers, limits=limits) for s, k in zip(seeds, keys, strict=True))

    async def echo(sender: bytes, data: bytes) -> bytes:
        return data

    b.on_request(echo)
    results: dict[str, dict[str, float]] = {}
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await nursery.start(b.run)
        with trio.fail_after(10):
            while b.me not in a.connected_peers() or a.me not in b.connected_peers():
                await trio.sleep(0.01)
        results["rtt_seq"] = await _round_trips(a, b, seconds, 1)
        results["rtt_conc"] = await _round_trips(a, b, seconds, 32)
        results["send_small"] = await _one_way(a, b, b"s" * 300, seconds, topic=None)
        results["broadcast_batch"] = await _one_way(a, b, b"e" * 150_000, seconds, topic="events")
        results["send_1mib"] = await _one_way(a, b, b"m" * (1 << 20), seconds, topic=None)
        nursery.cancel_scope.cancel()
    return results


def run(seconds: float) -> dict[str, dict[str, float]]:
    return trio.run(_run, seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench transport", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (0.1 s per measurement)")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    parser.add_argument("--json", metavar="FILE", help="also save the figures as JSON")
    opts = parser.parse_args(argv)
    seconds = 0.1 if opts.quick else opts.seconds
    configure(level="warning")
    logging.getLogger("libp2p").setLevel(logging.CRITICAL)  # dial failures before both listen
    r = run(seconds)
    print("libp2p transport, 2 hosts in one process on 127.0.0.1 (Noise + yamux, one stream per direction)")
    for name in ("rtt_seq", "rtt_conc"):
        x = r[name]
        print(f"{name:<16} {x['round_trips_per_s']:>10,.0f} round trips/s ({x['round_trips_per_cpu_s']:,.0f} per CPU-s)"
              f"   p50 {x['p50_ms']:.2f} ms   p99 {x['p99_ms']:.2f} ms")
    for name in ("send_small", "broadcast_batch", "send_1mib"):
        x = r[name]
        print(f"{name:<16} {x['messages_per_s']:>10,.0f} msgs/s   {x['mb_per_s']:>8.1f} MB/s"
              f" ({x['messages_per_cpu_s']:,.0f} msgs, {x['mb_per_cpu_s']:.1f} MB per CPU-s)   lost {x['lost']:.0f}")
    if opts.json:
        with open(opts.json, "w", encoding="utf-8") as f:
            json.dump({"bench": "transport", "seconds_per_measurement": seconds, "results": r}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
