"""Benchmark of the protocol layer, all figures from one run (one thread, one core).

    ./scripts/bench protocol              # full: SMT at 100k and 1M keys (~1 min, ~1.5 GB)
    ./scripts/bench protocol --quick      # smoke run, a few seconds (used by the tests)
    ./scripts/bench protocol --json out.json
    git show REV:protocol/smt.py > /tmp/old_smt.py
    ./scripts/bench protocol --smt-compare /tmp/old_smt.py   # old and new SMT, one run

Figures:
- raw PyNaCl verifies/s: ``VerifyKey(pk).verify(sign_bytes, sig)`` on prepared inputs;
- the per-event path: ``SignedEvent.decode(raw)`` (unpack, types, schema, canonical
  check), its id (SHA-256) and ``verify_event`` (chain id, sign bytes, Ed25519), in
  events/s, and its ratio to the raw figure (target >= 0.85). Raw and path runs are
  interleaved over several rounds and the best round of each is kept, so a busy machine
  skews both alike;
- SMT: ms per 500-key block (half updates of existing keys, half new keys; one
  `update` call per block) on trees of 100k and 1M keys in a `MemoryNodeStore`;
- all times are CPU time of the process (`time.process_time`), so other load on the
  machine does not count against the figures (cache contention still does);
- SMT proofs: encoded size (median and max over a sample of present and absent keys) and
  `verify_smt_proof` time.

`--smt-layout paged` runs only the SMT figure, for the binary node layout
(`protocol.smt.SparseMerkleTree`) and the paged one (`protocol.smt_paged`, 4 levels per
record), in one process at 100k and 1M keys: each tree in its own `MemoryNodeStore`, built
from the same keys, then the same 500-key blocks through both (the order alternating), the
roots compared after every block and a sample of proofs at the end; it prints both medians,
their ratio and what each store holds (~1 min, ~1.4 GB: two 1M-key trees).

`--smt-compare FILE` runs only the SMT figure, for the tree of this checkout and the one
in FILE (another revision's protocol/smt.py), in one process: one 1M-key tree in one
store, then blocks of each implementation in turn (each its own random blocks on its own
copy of the root, the order alternating), and prints both medians and their ratio. The
roots of a few shared blocks are compared first: they must be equal.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import nacl.signing

from afterchain.protocol import bodies
from afterchain.protocol.codec import encode, sha256
from afterchain.protocol.crypto import Domain, KeyPair, sign_bytes
from afterchain.protocol.events import Event, EventBody, SignedEvent, sign_event, verify_event
from afterchain.protocol.smt import MemoryNodeStore, SparseMerkleTree, verify_smt_proof
from afterchain.protocol.types import Hash32

__all__ = ["main", "run"]

CHAIN_ID = "afterchain-bench"
BLOCK_KEYS = 500
BUILD_BATCH = 1_000_000
TARGET_RATIO = 0.85
TARGET_SMT_MS = 10.0

_clock = time.process_time
"""Every figure is CPU time of this (single-threaded) process: on a machine shared with
other work, wall-clock time would measure the neighbours. On an idle core they agree."""


def _body(kind: str, i: int) -> EventBody:
    h = Hash32(sha256(b"%s %d" % (kind.encode(), i)))
    if kind == "ticket.open":
        return bodies.TicketOpen(
            kind="repair", gtin="09506000134352", serial=f"SN-{i:08d}", fault_type="screen",
            description_hash=h, attachments=(Hash32(sha256(b"photo %d" % i)),),
        )
    if kind == "ticket.ack":
        return bodies.TicketAck(ticket_id=h, note_hash=None)
    if kind == "ticket.update":
        return bodies.TicketUpdate(ticket_id=h, status="in_progress", note_hash=Hash32(sha256(b"note %d" % i)))
    if kind == "shipment.checkpoint":
        return bodies.ShipmentCheckpoint(ticket_id=h, checkpoint="in_transit", location_hash=Hash32(sha256(b"loc")), tracking_hash=None)
    if kind == "trace.record":
        return bodies.TraceRecord(
            gtin="09506000134352", serial=f"SN-{i:08d}", biz_step="repairing", disposition="in_progress",
            location_hash=Hash32(sha256(b"loc")), ref_hash=None,
        )
    if kind == "rating.submit":
        return bodies.RatingSubmit(ticket_id=h, score=1 + i % 5, comment_hash=None)
    raise ValueError(kind)


MIX = ("ticket.open", "ticket.ack", "ticket.update", "shipment.checkpoint", "trace.record", "rating.submit")
"""The event mix of the headline per-event figure (one of each in turn)."""


def _events(n: int, kinds: tuple[str, ...]) -> list[bytes]:
    keys = [KeyPair.from_seed(bytes([i + 1]) * 32) for i in range(8)]
    out = []
    for i in range(n):
        key = keys[i % len(keys)]
        kind = kinds[i % len(kinds)]
        event = Event(chain_id=CHAIN_ID, type=kind, sender=key.public, nonce=i, time_ms=1_760_000_000_000 + i, body=_body(kind, i))
        out.append(encode(sign_event(key, event)))
    return out


def _best_per_item(fn: Callable[[], None], items: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = _clock()
        fn()
        best = min(best, _clock() - start)
    return best / items


def bench_events(n: int, rounds: int, kinds: tuple[str, ...]) -> dict[str, Any]:
    raws = _events(n, kinds)
    prepared = []
    for raw in raws:
        se = SignedEvent.decode(raw)
        prepared.append((bytes(se.event.sender), bytes(se.signature), sign_bytes(Domain.EVENT, CHAIN_ID, se.event)))
    verify_key = nacl.signing.VerifyKey

    def raw_verify() -> None:
        for pk, sig, data in prepared:
            verify_key(pk).verify(data, sig)

    decode = SignedEvent.decode

    def path() -> None:
        for raw in raws:
            se = decode(raw)
            _ = se.id
            verify_event(se, CHAIN_ID)

    def decode_only() -> None:
        for raw in raws:
            decode(raw)

    raw_s, path_s, dec_s = float("inf"), float("inf"), float("inf")
    for _ in range(rounds):  # interleaved, best of each
        raw_s = min(raw_s, _best_per_item(raw_verify, n, 1))
        path_s = min(path_s, _best_per_item(path, n, 1))
        dec_s = min(dec_s, _best_per_item(decode_only, n, 1))
    return {
        "kinds": list(kinds),
        "event_mean_bytes": sum(map(len, raws)) / len(raws),
        "events": n,
        "raw_verifies_per_s": 1 / raw_s,
        "path_events_per_s": 1 / path_s,
        "path_ratio": raw_s / path_s,
        "decode_us": dec_s * 1e6,
        "path_overhead_us": (path_s - raw_s) * 1e6,
    }


def _key(i: int) -> bytes:
    return b"bench/" + i.to_bytes(8, "big")


def _block_batch(rng: random.Random, next_key: int) -> tuple[dict[bytes, bytes | None], int]:
    """One benchmark block: BLOCK_KEYS // 2 updates of existing keys (below `next_key`),
    the rest new keys from `next_key` on. Returns the batch and the next new key."""
    batch: dict[bytes, bytes | None] = {}
    while len(batch) < BLOCK_KEYS // 2:
        batch[_key(rng.randrange(next_key))] = rng.randbytes(32)
    for _ in range(BLOCK_KEYS - len(batch)):
        batch[_key(next_key)] = rng.randbytes(32)
        next_key += 1
    return batch, next_key


def bench_smt(size: int, blocks: int, rng: random.Random) -> tuple[dict[str, Any], SparseMerkleTree, int]:
    store = MemoryNodeStore()
    tree = SparseMerkleTree(store)
    start = _clock()
    for lo in range(0, size, BUILD_BATCH):
        tree.update({_key(i): b"v%d" % i for i in range(lo, min(size, lo + BUILD_BATCH))})
    build_s = _clock() - start
    next_key = size
    times = []
    for _ in range(blocks):
        batch, next_key = _block_batch(rng, next_key)
        start = _clock()
        tree.update(batch)
        times.append(_clock() - start)
    times.sort()
    return {
        "keys": size,
        "build_s": build_s,
        "blocks": blocks,
        "block_median_ms": statistics.median(times) * 1e3,
        "block_p90_ms": times[int(len(times) * 0.9)] * 1e3 if len(times) > 1 else times[0] * 1e3,
        "block_min_ms": times[0] * 1e3,
        "store_nodes": len(store),
    }, tree, next_key


def bench_proofs(tree: SparseMerkleTree, key_count: int, samples: int, rng: random.Random) -> dict[str, Any]:
    """Proofs for `samples` keys: 3/4 present (given known values first), 1/4 absent."""
    values = {_key(rng.randrange(key_count)): b"proof value %d" % j for j in range(samples * 3 // 4)}
    tree.update(values)
    cases: list[tuple[bytes, bytes | None, Any]] = [(k, v, tree.prove(k)) for k, v in values.items()]
    cases += [(b"absent/%d" % j, None, tree.prove(b"absent/%d" % j)) for j in range(samples - len(cases))]
    sizes = sorted(len(encode(p)) for _, _, p in cases)
    root = tree.root
    ok = all(verify_smt_proof(root, k, v, p) for k, v, p in cases)
    start = _clock()
    reps = 0
    while reps < 3 or _clock() - start < 0.3:
        for k, v, p in cases:
            verify_smt_proof(root, k, v, p)
        reps += 1
    verify_us = (_clock() - start) / (reps * len(cases)) * 1e6
    return {
        "samples": len(cases),
        "proof_median_bytes": statistics.median(sizes),
        "proof_max_bytes": sizes[-1],
        "verify_us": verify_us,
        "all_proofs_verify": ok,
    }


def _load_smt(path: str) -> Any:
    """Import another revision's protocol/smt.py under a private name (its `SmtProof`
    takes tag 0x30 while it is defined; the registry is given back to this checkout's)."""
    import importlib.util

    from afterchain.protocol import codec

    spec = importlib.util.spec_from_file_location("afterchain.protocol._smt_compared", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    saved = codec._BY_TAG.pop(0x30)
    sys.modules[spec.name] = module  # (dataclasses look their module up there)
    try:
        spec.loader.exec_module(module)
    finally:
        codec._BY_TAG[0x30] = saved
        del sys.modules[spec.name]
    return module


def compare_smt(path: str, size: int, blocks: int) -> dict[str, Any]:
    from afterchain.protocol import smt as new_mod

    old_mod = _load_smt(path)
    store = MemoryNodeStore()
    start = _clock()
    root = SparseMerkleTree(store).update({_key(i): b"v%d" % i for i in range(size)})
    build_s = _clock() - start
    check = random.Random(1)
    for _ in range(3):  # same blocks through both: same roots
        batch: dict[bytes, bytes | None] = {_key(check.randrange(size * 2)): check.randbytes(8) for _ in range(BLOCK_KEYS)}
        batch.update({_key(check.randrange(size)): None for _ in range(5)})
        a = old_mod.SparseMerkleTree(store, root).update(batch)
        if new_mod.SparseMerkleTree(store, root).update(batch) != a:
            raise RuntimeError("the two trees give different roots")
    streams = []
    for mod, seed in ((old_mod, 11), (new_mod, 12)):
        streams.append({"tree": mod.SparseMerkleTree(store, root), "rng": random.Random(seed), "next": size, "times": []})

    def step(s: dict[str, Any]) -> None:
        batch, s["next"] = _block_batch(s["rng"], s["next"])
        t = _clock()
        s["tree"].update(batch)
        s["times"].append(_clock() - t)

    for i in range(blocks):
        for s in (streams if i % 2 else streams[::-1]):
            step(s)
    old_ms, new_ms = (statistics.median(s["times"]) * 1e3 for s in streams)
    return {"keys": size, "blocks": blocks, "build_s": build_s, "old_median_ms": old_ms, "new_median_ms": new_ms,
            "new_over_old": new_ms / old_ms, "old_file": path}


def compare_layouts(size: int, blocks: int) -> dict[str, Any]:
    """The binary and the paged SMT layouts over the same keys and blocks, in one process."""
    from afterchain.protocol.smt_paged import PagedSparseMerkleTree

    trees: dict[str, Any] = {}
    stores: dict[str, MemoryNodeStore] = {}
    build: dict[str, float] = {}
    for name, cls in (("binary", SparseMerkleTree), ("paged", PagedSparseMerkleTree)):
        stores[name] = MemoryNodeStore()
        trees[name] = cls(stores[name])
        start = _clock()
        for lo in range(0, size, BUILD_BATCH):
            trees[name].update({_key(i): b"v%d" % i for i in range(lo, min(size, lo + BUILD_BATCH))})
        build[name] = _clock() - start
    if trees["binary"].root != trees["paged"].root:
        raise RuntimeError("the two layouts give different roots")
    built_mib = {name: sum(map(len, st.nodes.values())) / 2**20 for name, st in stores.items()}
    built_records = {name: len(st) for name, st in stores.items()}
    rng = random.Random(size)
    next_key = size
    times: dict[str, list[float]] = {"binary": [], "paged": []}
    for i in range(blocks):
        batch, next_key = _block_batch(rng, next_key)
        for name in ("binary", "paged") if i % 2 else ("paged", "binary"):
            start = _clock()
            trees[name].update(batch)
            times[name].append(_clock() - start)
        if trees["binary"].root != trees["paged"].root:
            raise RuntimeError(f"the two layouts give different roots after block {i}")
    for _ in range(50):
        k = _key(rng.randrange(next_key + 10))
        if trees["binary"].prove(k) != trees["paged"].prove(k):
            raise RuntimeError(f"the two layouts give different proofs for {k!r}")
    out: dict[str, Any] = {"keys": size, "blocks": blocks}
    for name, ts in times.items():
        ts.sort()
        mib = sum(map(len, stores[name].nodes.values())) / 2**20
        out[name] = {
            "block_median_ms": statistics.median(ts) * 1e3,
            "block_p90_ms": ts[int(len(ts) * 0.9)] * 1e3,
            "block_min_ms": ts[0] * 1e3,
            "build_s": build[name],
            "records": len(stores[name]),
            "record_mib": mib,
            "records_per_block": (len(stores[name]) - built_records[name]) / blocks,
            "kib_per_block": (mib - built_mib[name]) * 1024 / blocks,
        }
    out["paged_over_binary"] = out["paged"]["block_median_ms"] / out["binary"]["block_median_ms"]
    return out


def report_layouts(results: list[dict[str, Any]]) -> str:
    lines = [f"SMT update, {BLOCK_KEYS}-key blocks (half updates, half new keys), binary vs paged layout, one process, CPU ms"]
    for c in results:
        for name in ("binary", "paged"):
            f = c[name]
            ok = "" if c["keys"] < 1_000_000 else (
                f"; target <= {TARGET_SMT_MS:g} ms ({'ok' if f['block_median_ms'] <= TARGET_SMT_MS else 'above target'})")
            lines.append(
                f"  {c['keys']:>9,} keys {name:<6} median {f['block_median_ms']:6.2f}  p90 {f['block_p90_ms']:6.2f}"
                f"  min {f['block_min_ms']:6.2f}  ({c['blocks']} blocks; build {f['build_s']:.1f} s;"
                f" {f['records']:,} records, {f['record_mib']:.0f} MiB; per block {f['records_per_block']:,.0f} new records,"
                f" {f['kib_per_block']:,.0f} KiB{ok})")
        lines.append(f"  {c['keys']:>9,} keys paged / binary {c['paged_over_binary']:.3f}")
    return "\n".join(lines)


def run(quick: bool) -> dict[str, Any]:
    rng = random.Random(7)
    result: dict[str, Any] = {"quick": quick}
    n, rounds = (300, 3) if quick else (3000, 7)
    result["events"] = bench_events(n, rounds, MIX)
    result["events_ticket_open"] = bench_events(n, rounds, ("ticket.open",))
    result["smt"] = []
    tree: SparseMerkleTree | None = None
    key_count = 0
    for size in (2_000, 20_000) if quick else (100_000, 1_000_000):
        figures, tree, key_count = bench_smt(size, blocks=3 if quick else 20, rng=rng)
        result["smt"].append(figures)
    if tree is None:
        raise RuntimeError("no SMT size was benchmarked")
    result["proofs"] = bench_proofs(tree, key_count, samples=100 if quick else 400, rng=rng)
    return result


def report(result: dict[str, Any]) -> str:
    lines = [f"protocol benchmark{' (quick)' if result['quick'] else ''}, one thread, CPU time", ""]
    lines.append(f"{'what':<52} {'figure':>14}  note")
    for key, label in (("events", "event mix"), ("events_ticket_open", "ticket.open only")):
        ev = result[key]
        ratio_ok = "ok" if ev["path_ratio"] >= TARGET_RATIO else "BELOW TARGET"
        if key == "events":
            lines.append(f"{'raw PyNaCl Ed25519 verifies/s':<52} {ev['raw_verifies_per_s']:>14,.0f}")
        what = f"per-event path (decode, hash, verify), {label}"
        lines += [
            f"{what:<52} {ev['path_events_per_s']:>14,.0f}  events/s; mean {ev['event_mean_bytes']:.0f} B; {', '.join(ev['kinds'])}",
            f"{'  ratio to raw verifies/s':<52} {ev['path_ratio']:>14.3f}  target >= {TARGET_RATIO} ({ratio_ok})",
            f"{'  decode alone (us/event)':<52} {ev['decode_us']:>14.2f}",
            f"{'  path minus raw verify (us/event)':<52} {ev['path_overhead_us']:>14.2f}",
        ]
    for s in result["smt"]:
        ok = "ok" if s["block_median_ms"] <= TARGET_SMT_MS else "above target"
        what = f"SMT update, {BLOCK_KEYS}-key block at {s['keys']:,} keys (ms)"
        lines.append(
            f"{what:<52} {s['block_median_ms']:>14.2f}"
            f"  median of {s['blocks']}; p90 {s['block_p90_ms']:.2f}, min {s['block_min_ms']:.2f}"
            + (f"; target <= {TARGET_SMT_MS:g} ms at 1M ({ok})" if s["keys"] >= 1_000_000 else "")
        )
        lines.append(f"{'  tree build (s), batches of up to 1M keys':<52} {s['build_s']:>14.2f}  {s['store_nodes']:,} nodes stored")
    p = result["proofs"]
    lines += [
        f"{'SMT proof size, median (bytes)':<52} {p['proof_median_bytes']:>14.0f}  over {p['samples']} keys (3/4 present)",
        f"{'SMT proof size, max (bytes)':<52} {p['proof_max_bytes']:>14.0f}",
        f"{'SMT proof verify (us)':<52} {p['verify_us']:>14.2f}",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="./scripts/bench protocol", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    parser.add_argument("--json", metavar="FILE", help="also save the figures as JSON")
    parser.add_argument("--smt-compare", metavar="FILE", help="only the SMT figure: this tree against FILE's (another smt.py)")
    parser.add_argument("--blocks", type=int, default=60, help="blocks per tree with --smt-compare or --smt-layout (default 60)")
    parser.add_argument("--smt-layout", choices=["paged"], help="only the SMT figure: binary against paged layout, one process")
    args = parser.parse_args(argv)
    if args.smt_layout:
        sizes = (2_000, 20_000) if args.quick else (100_000, 1_000_000)
        results = [compare_layouts(size, 4 if args.quick else args.blocks) for size in sizes]
        print(report_layouts(results))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)
        return 0
    if args.smt_compare:
        size = 20_000 if args.quick else 1_000_000
        c = compare_smt(args.smt_compare, size, 4 if args.quick else args.blocks)
        print(f"SMT update, {BLOCK_KEYS}-key block at {size:,} keys, {c['blocks']} blocks each, alternating, CPU ms: "
              f"{c['old_file']} {c['old_median_ms']:.2f}, this checkout {c['new_median_ms']:.2f}, "
              f"ratio {c['new_over_old']:.3f} (build {c['build_s']:.1f} s)")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(c, f, indent=2)
        return 0
    result = run(args.quick)
    print(report(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    if not result["proofs"]["all_proofs_verify"]:
        print("error: a proof failed to verify", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
